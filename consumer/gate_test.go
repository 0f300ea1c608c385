package consumer

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

type faultErr struct{}

func (faultErr) Error() string { return "401 token revoked" }

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestConfigurationFaultPausesEverything: while the handler reports a fault
// that no record can get past, one record probes and the others wait: no
// record finishes, nothing more is committed, one log line per probe; when
// the fault clears, everything goes through by itself.
func TestConfigurationFaultPausesEverything(t *testing.T) {
	brokers, topic := setupKeyed(t, 2, 50, 50)
	var revoked atomic.Bool
	revoked.Store(true)
	var calls, finished atomic.Int64
	h := HandlerFunc(func(ctx context.Context, m kafka.Message, slot *Slot) error {
		calls.Add(1)
		if revoked.Load() {
			return Pause(faultErr{})
		}
		finished.Add(1)
		return nil
	})
	logs := &syncBuf{}
	log := zerolog.New(logs)
	c, _ := New(Config{Brokers: brokers, GroupID: "g", Topic: topic, MaxInFlight: 8, RetryInitialInterval: 100 * time.Millisecond,
		RetryMaxInterval: 100 * time.Millisecond, CommitInterval: 20 * time.Millisecond, Logger: &log}, h)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()

	deadline := time.Now().Add(10 * time.Second)
	for !c.Stats().Paused && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !c.Stats().Paused {
		t.Fatal("the consumer did not pause on the fault")
	}
	before := calls.Load()
	time.Sleep(time.Second)
	probes := calls.Load() - before
	// About one probe per 100 ms; far fewer than 8 in flight retrying would make.
	if probes < 3 || probes > 15 {
		t.Errorf("%d handler calls in 1s while paused, want about 10 (one probe per interval)", probes)
	}
	if n := strings.Count(logs.String(), "configuration fault"); n > int(calls.Load()) || n == 0 {
		t.Errorf("%d fault log lines for %d calls", n, calls.Load())
	}
	if n := strings.Count(logs.String(), "order not finished"); n != 0 {
		t.Errorf("%d per-record retry lines during the fault, want none", n)
	}
	for _, p := range c.Stats().Partitions {
		if p.Committed > 0 {
			t.Errorf("partition %d committed %d during the fault", p.Partition, p.Committed)
		}
	}
	s := c.Stats()
	if s.PauseCause == nil || !errors.Is(s.PauseCause, faultErr{}) {
		t.Errorf("pause cause = %v", s.PauseCause)
	}

	revoked.Store(false) // the token works again
	deadline = time.Now().Add(10 * time.Second)
	for finished.Load() < 50 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if finished.Load() != 50 {
		t.Fatalf("%d of 50 records finished after the fault cleared", finished.Load())
	}
	if c.Stats().Paused {
		t.Error("still paused after the fault cleared")
	}
	if !strings.Contains(logs.String(), "taking orders again") {
		t.Error("no log line saying consumption resumed")
	}
	cancel()
	<-errc
}

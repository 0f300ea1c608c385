package consumer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

// TestKeyOrderUnderConcurrency is a property test: with random handler
// latencies and many records in flight, every key's records complete in offset
// order, every record completes once, and different keys really run in parallel.
func TestKeyOrderUnderConcurrency(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run("seed"+strconv.FormatUint(seed, 10), func(t *testing.T) {
			const n, keys = 1500, 40
			brokers, topic := setupKeyed(t, 4, n, keys)
			r := rand.New(rand.NewPCG(seed, seed))
			var rmu sync.Mutex
			delay := func() time.Duration {
				rmu.Lock()
				defer rmu.Unlock()
				return time.Duration(r.IntN(3000)) * time.Microsecond
			}
			var (
				mu        sync.Mutex
				completed = map[string][]int64{} // key -> offsets in completion order (per partition of the key)
				count     int
				now, peak atomic.Int64
			)
			done := make(chan struct{})
			h := HandlerFunc(func(ctx context.Context, m kafka.Message, slot *Slot) error {
				c := now.Add(1)
				for p := peak.Load(); c > p && !peak.CompareAndSwap(p, c); p = peak.Load() {
				}
				time.Sleep(delay())
				now.Add(-1)
				mu.Lock()
				defer mu.Unlock()
				completed[string(m.Key)] = append(completed[string(m.Key)], m.Offset)
				if count++; count == n {
					close(done)
				}
				return nil
			})
			c, err := New(Config{Brokers: brokers, GroupID: "g", Topic: topic, MaxInFlight: 32, MaxBufferedPerPartition: 200, MaxBuffered: 400, CommitInterval: 50 * time.Millisecond}, h)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- c.Run(ctx) }()
			select {
			case <-done:
			case <-ctx.Done():
				t.Fatalf("only %d of %d records completed", count, n)
			}
			cancel()
			<-errc
			mu.Lock()
			defer mu.Unlock()
			for k, offs := range completed {
				for i := 1; i < len(offs); i++ {
					if offs[i] <= offs[i-1] {
						t.Fatalf("key %s completed out of offset order: %v", k, offs)
					}
				}
			}
			if len(completed) != keys {
				t.Errorf("%d keys completed, want %d", len(completed), keys)
			}
			if p := peak.Load(); p < 8 {
				t.Errorf("at most %d records ran at once: the keys did not run in parallel", p)
			}
			if p := peak.Load(); p > 32 {
				t.Errorf("%d records ran at once, above MaxInFlight 32", p)
			}
		})
	}
}

// TestBackPressureBoundsBuffering: with a handler that blocks, the consumer
// fetches no more than its buffers allow.
func TestBackPressureBoundsBuffering(t *testing.T) {
	brokers, topic := setupKeyed(t, 2, 2000, 2000)
	release := make(chan struct{})
	var started atomic.Int64
	h := HandlerFunc(func(ctx context.Context, m kafka.Message, slot *Slot) error {
		started.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	c, _ := New(Config{Brokers: brokers, GroupID: "g", Topic: topic, MaxInFlight: 10, MaxBufferedPerPartition: 50, MaxBuffered: 80, ShutdownTimeout: 100 * time.Millisecond}, h)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for started.Load() < 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // let the fetchers run into the limits
	s := c.Stats()
	total := 0
	for _, p := range s.Partitions {
		if p.Buffered > 50 {
			t.Errorf("partition %d buffers %d records, above 50", p.Partition, p.Buffered)
		}
		total += p.Buffered
	}
	if total > 80 || total < 10 {
		t.Errorf("%d records buffered, want between 10 and the limit 80", total)
	}
	if s.InFlight != 10 {
		t.Errorf("in flight %d, want MaxInFlight 10", s.InFlight)
	}
	close(release)
	cancel()
	<-errc
}

func setupKeyed(t *testing.T, partitions int32, n, keys int) ([]string, string) {
	t.Helper()
	brokers, topic := setup(t, partitions, 0)
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: kafka.Murmur2Balancer{Consistent: true}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: 1000}
	defer w.Close()
	var msgs []kafka.Message
	for i := 0; i < n; i++ {
		msgs = append(msgs, kafka.Message{Key: []byte("key-" + strconv.Itoa(i%keys)), Value: []byte(strconv.Itoa(i))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	return brokers, topic
}

// TestWaitingRecordGivesItsSlotBack: with one worker, a record that waits
// (a retry backoff, through its Slot) lets another key's record run.
func TestWaitingRecordGivesItsSlotBack(t *testing.T) {
	brokers, topic := setupKeyed(t, 1, 2, 2) // two records, two keys
	var order []string
	var mu sync.Mutex
	done := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, m kafka.Message, slot *Slot) error {
		if string(m.Value) == "0" {
			slot.Release()
			time.Sleep(500 * time.Millisecond) // backing off
			if err := slot.Acquire(ctx); err != nil {
				return err
			}
		}
		mu.Lock()
		defer mu.Unlock()
		order = append(order, string(m.Value))
		if len(order) == 2 {
			close(done)
		}
		return nil
	})
	c, _ := New(Config{Brokers: brokers, GroupID: "g", Topic: topic, MaxInFlight: 1}, h)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("records not finished")
	}
	cancel()
	<-errc
	if fmt.Sprint(order) != "[1 0]" {
		t.Errorf("finish order %v: the waiting record 0 held the only worker", order)
	}
}

// TestWorkersDoNotGrowWithTheBacklog: a deep buffer of records of distinct
// keys waits in queues, not in goroutines: while MaxInFlight records run, the
// goroutines grow by about MaxInFlight, not by the number of buffered records.
func TestWorkersDoNotGrowWithTheBacklog(t *testing.T) {
	const inFlight, buffered, n = 8, 1000, 3000
	brokers, topic := setupKeyed(t, 2, n, n)
	before := runtime.NumGoroutine()
	var handled atomic.Int64
	release := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, m kafka.Message, slot *Slot) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		handled.Add(1)
		return nil
	})
	c, _ := New(Config{Brokers: brokers, GroupID: "g", Topic: topic, MaxInFlight: inFlight, MaxBufferedPerPartition: buffered / 2, MaxBuffered: buffered}, h)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	waitUntil(t, "the buffers to fill", func() bool {
		total := 0
		for _, p := range c.Stats().Partitions {
			total += p.Buffered
		}
		return total == buffered
	})
	grew := runtime.NumGoroutine() - before
	close(release)
	waitUntil(t, "every record to be handled", func() bool { return handled.Load() == n })
	cancel()
	<-errc
	// The group, the fetchers and the workers: tens, whatever the backlog.
	if grew > 100 {
		t.Errorf("goroutines grew by %d with %d records buffered and %d in flight: buffered records hold goroutines", grew, buffered, inFlight)
	}
	t.Logf("goroutines grew by %d with %d records buffered and %d in flight", grew, buffered, inFlight)
}

// waitUntil polls ok for up to 20 s.
func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestPartitionsTakeTurns: a partition whose records arrive behind a full
// backlog of another's (a crashed member's partitions taken over by one
// that already works) starts at once, not after that backlog.
func TestPartitionsTakeTurns(t *testing.T) {
	const backlog = 200
	var (
		mu    sync.Mutex
		order []int
	)
	gate := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, m kafka.Message, slot *Slot) error {
		<-gate
		mu.Lock()
		order = append(order, m.Partition)
		mu.Unlock()
		return nil
	})
	s := newScheduler(h, 1, func() backoff.BackOff { return &backoff.ZeroBackOff{} }, zerolog.Nop())
	part := func(id int) *partition {
		return &partition{id: id, ctx: context.Background(), stop: make(chan struct{}), tracker: newTracker(0),
			buffered: make(chan struct{}, backlog+1), global: make(chan struct{}, 2*backlog+2)}
	}
	a, b := part(0), part(1)
	global := make(chan struct{}, 2*backlog+2)
	a.global, b.global = global, global
	submit := func(p *partition, off int64) {
		p.buffered <- struct{}{}
		p.global <- struct{}{}
		if err := p.tracker.add(off, time.Now()); err != nil {
			t.Fatal(err)
		}
		s.submit(&item{msg: kafka.Message{Partition: p.id, Offset: off}, key: fmt.Sprintf("%d/%d", p.id, off), part: p})
	}
	for i := range backlog {
		submit(a, int64(i))
	}
	submit(b, 0)
	close(gate)
	s.wait()
	at := slices.Index(order, 1)
	if len(order) != backlog+1 || at < 0 || at > 2 {
		t.Fatalf("partition 1's record ran %dth of %d: want among the first, taking turns with partition 0", at+1, len(order))
	}
}

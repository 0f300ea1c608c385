package app

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/acme-sp/wholesale-provisioner/internal/kafkatest"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

// Two instances on 6 partitions each of 12, both busy, share a real budget
// topic. While both write heartbeats each keeps half; when one stops (a
// SIGKILL: no leaving, nothing more written) the other takes the whole
// budget within seconds, and gives half back as soon as a successor in the
// same generation is heard (a static member restarted).
func TestRealKafkaSurvivorTakesASilentMembersShare(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.Name(t, "budget")
	kafkatest.CreateTopic(t, brokers, topic, 1)

	a, b := startMember(t, brokers, topic, "a", true), startMember(t, brokers, topic, "b", true)
	heard := func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		_, ok := a.roster.claims["b"]
		return ok
	}
	for began := time.Now(); !heard(); time.Sleep(20 * time.Millisecond) {
		if time.Since(began) > 20*time.Second {
			t.Fatal("a never read b's heartbeat")
		}
	}
	// Both alive for more than silentBeats heartbeats: neither takes more.
	for end := time.Now().Add((silentBeats + 2) * beatEvery); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if s, sb := a.share(), b.share(); s != 0.5 || sb != 0.5 {
			t.Fatalf("both alive: shares %v and %v, want a half each", s, sb)
		}
	}

	b.stop()
	took := a.waitShare(t, 1, 10*time.Second, "b silent")
	t.Logf("a took b's share %v after b stopped", took.Round(time.Millisecond))
	if took < beatEvery {
		t.Errorf("a took b's share after %v: sooner than two of its heartbeats can be read", took)
	}

	startMember(t, brokers, topic, "b-restarted", true)
	back := a.waitShare(t, 0.5, 10*time.Second, "b's successor heard")
	t.Logf("a gave half back %v after b's successor started", back.Round(time.Millisecond))
}

// Two instances on 6 partitions each of 12 share a real budget topic, one
// calling as fast as its share allows and one idle. The idle one lends most
// of its half to the busy one within seconds, and has it back within a
// second or two of its own calls starting.
func TestRealKafkaAnIdleMemberLendsItsShare(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.Name(t, "budget")
	kafkatest.CreateTopic(t, brokers, topic, 1)
	busy, idle := startMember(t, brokers, topic, "busy", true), startMember(t, brokers, topic, "idle", false)

	lent := 0.5 + lendPart*0.5
	took := busy.waitShare(t, lent, 15*time.Second, "idle lends")
	t.Logf("busy borrowed idle's share %v after both started", took.Round(time.Millisecond))
	if s := idle.share(); s > 0.5-lendPart*0.5+0.01 {
		t.Errorf("idle lends and keeps %v, want at most a tenth of its half", s)
	}
	if sum := busy.share() + idle.share(); sum > 1.001 {
		t.Errorf("the shares add up to %v of the budget", sum)
	}

	idle.busy.Store(true)
	back := idle.waitShare(t, 0.5, 10*time.Second, "idle busy again")
	t.Logf("idle had its half back %v after its calls started", back.Round(time.Millisecond))
	busy.waitShare(t, 0.5, 5*time.Second, "idle busy again, seen by busy")
	if st := busy.limiter.Stats(); st.Acquired == 0 {
		t.Error("busy made no calls")
	}
}

// member is one instance's peers on a real budget topic, with 6 of 12
// partitions in generation 5; while busy it calls as fast as its
// share of 300/s allows. stop silences it as a SIGKILL would: nothing more
// is written. The test's end stops it if the test did not.
type member struct {
	*peers
	busy atomic.Bool
	stop func()
}

func startMember(t *testing.T, brokers []string, topic, name string, busy bool) *member {
	log := zerolog.Nop()
	p := newPeers(name, 300, time.Minute, &log)
	p.limiter = provisioning.NewLimiter(provisioning.LimiterConfig{Rate: 300})
	p.assigned(5, 6, 12, time.Now())
	m := &member{peers: p}
	m.busy.Store(busy)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.run(ctx, brokers, topic, nil, nil) }()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if !m.busy.Load() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if release, err := p.limiter.Acquire(ctx); err == nil {
				release()
			}
		}
	}()
	m.stop = sync.OnceFunc(func() { stop(); wg.Wait() })
	t.Cleanup(m.stop)
	return m
}

func (m *member) share() float64 { return m.limiter.Stats().Share }

// waitShare waits for the member's share to be want, within some error.
func (m *member) waitShare(t *testing.T, want float64, within time.Duration, what string) time.Duration {
	t.Helper()
	began := time.Now()
	for math.Abs(m.share()-want) > 0.01 {
		if time.Since(began) > within {
			t.Fatalf("%s: share %v after %v, want %v", what, m.share(), within, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(began)
}

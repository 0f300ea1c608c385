package app

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/acme-sp/wholesale-provisioner/internal/kafkatest"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

// Two instances on 6 partitions each of 12 share a real budget topic. While
// both write heartbeats each keeps half; when one stops (a SIGKILL: no
// leaving, nothing more written) the other takes the whole budget within
// seconds, and gives half back as soon as a successor in the same
// generation is heard (a static member restarted).
func TestRealKafkaSurvivorTakesASilentMembersShare(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.Name(t, "budget")
	kafkatest.CreateTopic(t, brokers, topic, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	type member struct {
		*peers
		stop func()
	}
	start := func(name string) member {
		log := zerolog.Nop()
		p := newPeers(name, time.Minute, &log)
		p.limiter = provisioning.NewLimiter(provisioning.LimiterConfig{Rate: 300})
		p.assigned(5, 6, 12, time.Now())
		pctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); p.run(pctx, brokers, topic, nil, nil) }()
		return member{p, func() { stop(); <-done }}
	}
	share := func(m member) float64 { return m.limiter.Stats().Share }
	waitShare := func(m member, want float64, within time.Duration, what string) time.Duration {
		t.Helper()
		began := time.Now()
		for share(m) != want {
			if time.Since(began) > within {
				t.Fatalf("%s: share %v after %v, want %v", what, share(m), within, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(began)
	}

	a, b := start("a"), start("b")
	defer a.stop()
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
		if s, sb := share(a), share(b); s != 0.5 || sb != 0.5 {
			t.Fatalf("both alive: shares %v and %v, want a half each", s, sb)
		}
	}

	b.stop()
	took := waitShare(a, 1, 10*time.Second, "b silent")
	t.Logf("a took b's share %v after b stopped", took.Round(time.Millisecond))
	if took < beatEvery {
		t.Errorf("a took b's share after %v: sooner than two of its heartbeats can be read", took)
	}

	successor := start("b-restarted")
	defer successor.stop()
	back := waitShare(a, 0.5, 10*time.Second, "b's successor heard")
	t.Logf("a gave half back %v after b's successor started", back.Round(time.Millisecond))
}

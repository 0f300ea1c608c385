package reliability

import (
	"fmt"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/internal/testkit"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// TestCrash kills `provisioner run` with SIGKILL a third of the way through
// 10,000 orders and starts it again. Every order ends with an outcome, no
// subscriber is created twice, and an order answered twice (finished but not
// yet committed at the crash) carries the same event id both times.
func TestCrash(t *testing.T) {
	const n = 10000
	start := time.Now()
	e := newEnv(t, envConfig{partitions: 8, timeout: 5 * time.Minute, sim: webexsim.Config{Latency: 20 * time.Millisecond}})
	s := e.makeOrders(n, 20) // 5% rejected by the precheck: failed outcome + dead letter
	outs, dlq := e.collect(e.outs, true, 3), e.collect(e.dlt, false, 1)
	e.publish(s.msgs)

	// The restart waits until the group expels the killed member: at its
	// rebalance timeout (--shutdown-timeout + 15 s) or session timeout (30 s).
	env := map[string]string{"PROVISIONER_SHUTDOWN_TIMEOUT": "5s"}
	first := e.startProc("first", env)
	testkit.WaitFor(e.ctx, t, "a third of the outcomes", func() error {
		if !first.running() {
			return fmt.Errorf("the provisioner exited: %s", tail(first.logs.Bytes(), 5))
		}
		if _, d := outs.count(); d < n/3 {
			return fmt.Errorf("%d of %d", d, n)
		}
		return nil
	})
	first.kill()
	killed := time.Now()
	_, atKill := outs.count()
	var sum int64
	for _, c := range committed(e.lag()) {
		sum += max(c, 0)
	}
	if sum <= 0 || sum >= n {
		t.Fatalf("%d orders committed at the crash: want part of the run", sum)
	}

	second := e.startProc("second", env)
	second.waitReady(e.ctx)
	rejoined := time.Since(killed)
	e.waitAnswered(outs, n)
	e.waitAnswered(dlq, len(s.rejected))
	e.waitNoLag()
	if code, _ := second.terminate(30 * time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM %d, want 0", code)
	}

	redelivered, lost := e.checkOutcomes(outs, s)
	e.checkCreates(s.valid())
	_, dead := dlq.snapshot()
	deadLetters := 0
	for id, ds := range dead {
		if !s.rejected[id] {
			t.Errorf("dead letter for %q, which should not fail", id)
		}
		deadLetters += len(ds)
	}
	for id := range s.rejected {
		if len(dead[id]) == 0 {
			t.Errorf("rejected order %s has no dead letter", id)
		}
	}
	records, answered := outs.count()
	t.Logf("killed with %d of %d orders answered and %d committed; the second process was ready %s after the kill; %d orders answered again (same event ids)",
		atKill, n, sum, rejoined.Round(100*time.Millisecond), redelivered)
	figures{orders: n, faults: fmt.Sprintf("SIGKILL with %d of %d answered (%d committed), restart; 20 ms API latency", atKill, n, sum),
		outcomes: records, answered: answered, redelivered: redelivered, deadLetters: deadLetters,
		duplicates: e.sim.Stats().EmailsCreatedMoreThanOnce, lost: lost, took: time.Since(start)}.log(t)
}

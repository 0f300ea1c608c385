package reliability

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/internal/testkit"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// TestGracefulShutdown sends SIGTERM to `provisioner run` while orders are in
// flight. It stops taking orders, lets the ones in flight finish (well within
// --shutdown-timeout), commits exactly what finished and exits 0; after a
// restart the rest is answered.
func TestGracefulShutdown(t *testing.T) {
	const (
		n           = 2000
		maxInFlight = 16
	)
	t.Parallel()
	start := time.Now()
	e := newEnv(t, envConfig{partitions: 6, sim: webexsim.Config{Latency: 50 * time.Millisecond}})
	s := e.makeOrders(n, 10)
	outs, dlq := e.collect(e.outs, true, 3), e.collect(e.dlt, false, 1)
	e.publish(s.msgs)
	byPart := e.positions()
	env := map[string]string{"PROVISIONER_MAX_IN_FLIGHT": strconv.Itoa(maxInFlight), "PROVISIONER_SHUTDOWN_TIMEOUT": "10s"}

	first := e.startProc("first", env)
	testkit.WaitFor(e.ctx, t, "a quarter of the outcomes", func() error {
		if !first.running() {
			return fmt.Errorf("the provisioner exited: %s", tail(first.logs.Bytes(), 5))
		}
		if _, d := outs.count(); d < n/4 {
			return fmt.Errorf("%d of %d", d, n)
		}
		return nil
	})
	inFlight := e.active.Load()
	sigterm := time.Now()
	code, took := first.terminate(30 * time.Second)
	if code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	if took > 10*time.Second {
		t.Errorf("exit %s after SIGTERM with nothing slow in flight; the shutdown timeout is 10s", took)
	}
	if lines := linesWith(first.logs.Bytes(), "records still being handled at the shutdown timeout"); len(lines) > 0 {
		t.Errorf("orders were cancelled at the shutdown timeout: %+v", lines)
	}
	t.Logf("SIGTERM with %d API calls in flight; exit code %d after %s", inFlight, code, took.Round(time.Millisecond))

	atExit := e.checkCommittedPrefix(outs, byPart)
	// Stopped taking orders: none starts once the provisioner has had time to
	// act on the signal, and what finished after SIGTERM is what was in flight
	// when it did: at most maxInFlight, plus the orders that started while the
	// signal was on its way (a few milliseconds on a loaded machine).
	if n := e.prechecksAfter(sigterm.Add(100 * time.Millisecond)); n > 0 {
		t.Errorf("%d orders started more than 100ms after SIGTERM: the provisioner kept taking orders", n)
	}
	inTransit := e.prechecksAfter(sigterm)
	got, _ := outs.snapshot()
	late := 0
	for _, o := range got {
		if o[0].ProcessedAt.After(sigterm) {
			late++
		}
	}
	if late > maxInFlight+inTransit {
		t.Errorf("%d orders finished after SIGTERM, more than the %d that can be in flight and the %d started while the signal was on its way", late, maxInFlight, inTransit)
	}

	second := e.startProc("second", env)
	e.waitAnswered(outs, n)
	e.waitAnswered(dlq, len(s.rejected))
	e.waitNoLag()
	if code, _ := second.terminate(30 * time.Second); code != 0 {
		t.Errorf("second run: exit code %d after SIGTERM, want 0", code)
	}
	redelivered, lost := e.checkOutcomes(outs, s)
	e.checkCreates(s.valid())
	records, answered := outs.count()
	deadRecords, _ := dlq.count()
	t.Logf("at the exit %d of %d orders were answered and committed exactly up to the first unanswered; %d finished after SIGTERM", atExit, n, late)
	figures{orders: n, faults: fmt.Sprintf("SIGTERM mid-run (%d API calls in flight), exit %d after %s, restart", inFlight, code, took.Round(100*time.Millisecond)),
		outcomes: records, answered: answered, redelivered: redelivered, deadLetters: deadRecords,
		duplicates: e.sim.Stats().EmailsCreatedMoreThanOnce, lost: lost, took: time.Since(start)}.log(t)
}

// TestShutdownDeadline sends SIGTERM while orders take longer than
// --shutdown-timeout: the provisioner exits 0 within about the deadline,
// commits only what was answered, and the orders it cut off are redelivered
// and answered after a restart.
func TestShutdownDeadline(t *testing.T) {
	const (
		n           = 200
		maxInFlight = 8
		deadline    = time.Second
	)
	t.Parallel()
	start := time.Now()
	e := newEnv(t, envConfig{partitions: 3, sim: webexsim.Config{Latency: 4 * time.Second}})
	s := e.makeOrders(n, 0)
	outs := e.collect(e.outs, true, 3)
	e.publish(s.msgs)
	byPart := e.positions()
	env := map[string]string{"PROVISIONER_MAX_IN_FLIGHT": strconv.Itoa(maxInFlight), "PROVISIONER_SHUTDOWN_TIMEOUT": deadline.String()}

	first := e.startProc("first", env)
	testkit.WaitFor(e.ctx, t, "orders in flight", func() error {
		if !first.running() {
			return fmt.Errorf("the provisioner exited: %s", tail(first.logs.Bytes(), 5))
		}
		if a := e.active.Load(); a < maxInFlight {
			return fmt.Errorf("%d API calls in flight", a)
		}
		return nil
	})
	inFlight := e.active.Load()
	code, took := first.terminate(30 * time.Second)
	if code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	// The deadline, then the last commit and leaving the group.
	if took > deadline+5*time.Second {
		t.Errorf("exit %s after SIGTERM, want about the shutdown timeout of %s", took, deadline)
	}
	cut := linesWith(first.logs.Bytes(), "records still being handled at the shutdown timeout")
	if len(cut) == 0 {
		t.Error("no log line says which orders were cut off at the shutdown timeout")
	}
	t.Logf("SIGTERM with %d API calls in flight (4 s each); exit code %d after %s", inFlight, code, took.Round(time.Millisecond))
	atExit := e.checkCommittedPrefix(outs, byPart)
	if atExit >= n {
		t.Fatalf("all %d orders answered before the deadline: the test did not cut any off", n)
	}

	e.sim.SetLatency(10 * time.Millisecond)
	second := e.startProc("second", env)
	e.waitAnswered(outs, n)
	e.waitNoLag()
	if code, _ := second.terminate(30 * time.Second); code != 0 {
		t.Errorf("second run: exit code %d after SIGTERM, want 0", code)
	}
	redelivered, lost := e.checkOutcomes(outs, s)
	e.checkCreates(n)
	records, answered := outs.count()
	t.Logf("at the exit %d of %d orders were answered; the restart answered the %d cut off", atExit, n, n-atExit)
	figures{orders: n, faults: fmt.Sprintf("SIGTERM with %d orders in flight for longer than --shutdown-timeout %s, exit %d after %s, restart",
		inFlight, deadline, code, took.Round(100*time.Millisecond)),
		outcomes: records, answered: answered, redelivered: redelivered,
		duplicates: e.sim.Stats().EmailsCreatedMoreThanOnce, lost: lost, took: time.Since(start)}.log(t)
}

// checkCommittedPrefix checks, once a provisioner has exited, that on every
// partition the committed offset is exactly the first order without an
// outcome: every order below it is answered (no commit past an unanswered
// order), and what finished in sequence was committed. It returns the number
// of orders answered.
func (e *env) checkCommittedPrefix(outs *collector, byPart map[int][]string) int {
	e.t.Helper()
	e.waitCollected(outs, e.outs)
	got, _ := outs.snapshot()
	lag := e.lag()
	for _, l := range lag {
		ids := byPart[l.Partition]
		first := int64(len(ids))
		for off, id := range ids {
			if len(got[id]) == 0 {
				first = int64(off)
				break
			}
		}
		c := max(l.Committed, 0)
		if c > first {
			e.t.Errorf("partition %d: committed %d past the unanswered order at offset %d", l.Partition, c, first)
		} else if c < first {
			e.t.Errorf("partition %d: committed %d, but every order up to offset %d was answered", l.Partition, c, first)
		}
	}
	return len(got)
}

// waitCollected waits until the collector has read every record of topic.
func (e *env) waitCollected(c *collector, topic string) {
	e.t.Helper()
	ls, err := lagOf(e, "reliability-none", topic)
	if err != nil {
		e.t.Fatal(err)
	}
	var end int64
	for _, l := range ls {
		end += l.End
	}
	testkit.WaitFor(e.ctx, e.t, fmt.Sprintf("the %d records of %s", end, topic), func() error {
		if r, _ := c.count(); int64(r) < end {
			return fmt.Errorf("%d read", r)
		}
		return nil
	})
}

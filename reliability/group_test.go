package reliability

import (
	"fmt"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/internal/testkit"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// groupOrders is the size of a group test's run: long enough at 4 orders
// in flight per member that its disruption falls in the middle.
const groupOrders = 6000

// groupEnv is a group test's environment: 12 partitions, 20 ms of API
// latency, 5% of the orders rejected by the precheck.
func groupEnv(t *testing.T) (*env, orderSet, *collector, *collector) {
	e := newEnv(t, envConfig{partitions: 12, timeout: 4 * time.Minute, sim: webexsim.Config{Latency: 20 * time.Millisecond}})
	s := e.makeOrders(groupOrders, 20)
	outs, dlq := e.collect(e.outs, true, 3), e.collect(e.dlt, false, 1)
	return e, s, outs, dlq
}

// groupProcEnv is the environment of a group test's members.
var groupProcEnv = map[string]string{"PROVISIONER_SHUTDOWN_TIMEOUT": "5s", "PROVISIONER_MAX_IN_FLIGHT": "4"}

// waitFifth waits until a fifth of the orders are answered while every
// member runs.
func waitFifth(e *env, outs *collector, members ...*proc) {
	testkit.WaitFor(e.ctx, e.t, "a fifth of the outcomes", func() error {
		for _, p := range members {
			if !p.running() {
				return fmt.Errorf("%s exited: %s", p.name, tail(p.logs.Bytes(), 5))
			}
		}
		if _, d := outs.count(); d < groupOrders/5 {
			return fmt.Errorf("%d of %d", d, groupOrders)
		}
		return nil
	})
}

// finishGroup waits until every order is answered and committed, stops the
// members with SIGTERM, and checks that nothing was lost or provisioned
// twice and that orders answered again carry their event ids; it returns
// how many were answered again.
func finishGroup(e *env, s orderSet, outs, dlq *collector, members ...*proc) int {
	e.waitAnswered(outs, groupOrders)
	e.waitAnswered(dlq, len(s.rejected))
	e.waitNoLag()
	for _, p := range members {
		if code, _ := p.terminate(30 * time.Second); code != 0 {
			e.t.Errorf("%s: exit code after SIGTERM %d, want 0", p.name, code)
		}
	}
	redelivered, lost := e.checkOutcomes(outs, s)
	e.checkCreates(s.valid())
	if lost > 0 {
		e.t.Errorf("%d orders lost", lost)
	}
	return redelivered
}

// TestKillInGroup kills one of two `provisioner run` members with SIGKILL
// and starts a new one 5 s later, as Kubernetes replaces a pod: the survivor
// and the newcomer take the dead member's partitions once the group expels
// it; nothing is lost, nothing provisioned twice, and the orders it had
// answered but not committed are answered again with the same event ids.
func TestKillInGroup(t *testing.T) {
	t.Parallel() // processes of its own on topics of its own: overlaps the others
	e, s, outs, dlq := groupEnv(t)
	e.publish(s.msgs)
	a, b := e.startProc("a", groupProcEnv), e.startProc("b", groupProcEnv)
	waitFifth(e, outs, a, b)
	a.kill()
	_, atKill := outs.count()
	time.Sleep(5 * time.Second)
	c := e.startProc("c", groupProcEnv)
	redelivered := finishGroup(e, s, outs, dlq, b, c)
	t.Logf("killed a with %d of %d answered; %d orders answered again (same event ids)", atKill, groupOrders, redelivered)
}

// TestRollingRestart stops each of three members with SIGTERM in turn and
// starts its replacement at once, as a Deployment rollout does. A member
// drains and commits what it finished before it gives its partitions up,
// so no order is answered twice.
func TestRollingRestart(t *testing.T) {
	t.Parallel()
	e, s, outs, dlq := groupEnv(t)
	e.publish(s.msgs)
	members := []*proc{e.startProc("a", groupProcEnv), e.startProc("b", groupProcEnv), e.startProc("c", groupProcEnv)}
	waitFifth(e, outs, members...)
	for i, p := range members {
		if code, took := p.terminate(30 * time.Second); code != 0 {
			t.Fatalf("%s: exit code after SIGTERM %d, want 0", p.name, code)
		} else {
			t.Logf("%s stopped in %s", p.name, took.Round(time.Millisecond))
		}
		members[i] = e.startProc(p.name+"2", groupProcEnv)
		members[i].waitReady(e.ctx)
	}
	_, atEnd := outs.count()
	if atEnd >= groupOrders {
		t.Fatalf("the rollout ended after the last order: it tested nothing")
	}
	if redelivered := finishGroup(e, s, outs, dlq, members...); redelivered != 0 {
		t.Errorf("%d orders answered twice across the rolling restart, want 0", redelivered)
	}
}

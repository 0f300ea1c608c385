package reliability

import (
	"fmt"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/internal/testkit"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// TestPendingAcrossACrash leaves orders pending on their end users, kills
// `provisioner run` with SIGKILL, lets the users accept while no instance
// runs, and starts a new one: it reads the follow-up topic back and answers
// every pending order with exactly one final outcome, whose event id is the
// same should it be written twice.
func TestPendingAcrossACrash(t *testing.T) {
	const n, pending = 200, 20
	t.Parallel()
	e := newEnv(t, envConfig{partitions: 4, sim: webexsim.Config{AcceptDomain: sample.AcceptDomain, PendingResolveDelay: time.Hour}})
	s := e.makeOrders(n, 0)
	var waiting []schemas.Order
	for i := range pending {
		o := sample.WithDomain(s.byID[s.ids[i]], "acc", sample.AcceptDomain)
		waiting = append(waiting, o)
		s.msgs = append(s.msgs, sample.Message(o))
	}
	outs := e.collect(e.outs, true, 3)
	e.publish(s.msgs)
	env := map[string]string{"PROVISIONER_PENDING_SWEEP_INTERVAL": "200ms", "PROVISIONER_PENDING_MAX_SWEEP_INTERVAL": "500ms",
		"PROVISIONER_SHUTDOWN_TIMEOUT": "5s"}
	first := e.startProc("first", env)
	e.waitAnswered(outs, n+pending)
	e.waitNoLag() // every pending order's follow-up record is written before its outcome
	first.kill()

	for _, o := range waiting {
		if !e.sim.ResolvePending(o.Email, provisioning.SubscriberProvisioned) {
			t.Fatalf("%s is not pending in the simulator", o.Email)
		}
	}
	second := e.startProc("second", env)
	testkit.WaitFor(e.ctx, t, "the final outcome of every pending order", func() error {
		got, _ := outs.snapshot()
		done := 0
		for _, o := range waiting {
			for _, out := range got[o.OrderID] {
				if out.PendingEventID != "" {
					done++
					break
				}
			}
		}
		if done < pending {
			return fmt.Errorf("%d of %d", done, pending)
		}
		return nil
	})
	time.Sleep(2 * time.Second) // more sweeps: nothing more may come
	if code, _ := second.terminate(30 * time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM %d, want 0", code)
	}
	got, _ := outs.snapshot()
	for _, o := range waiting {
		var first, final []schemas.Outcome
		for _, out := range got[o.OrderID] {
			if out.Status == schemas.StatusPendingUserAction {
				first = append(first, out)
			} else {
				final = append(final, out)
			}
		}
		ids := map[string]bool{}
		for _, f := range final {
			ids[f.EventID] = true
			if f.Status != schemas.StatusProvisioned || f.Subscriber == nil || f.Subscriber.PersonID == "" {
				t.Errorf("%s: final outcome %+v, want provisioned with a person id", o.OrderID, f)
			}
		}
		if len(first) == 0 || len(ids) != 1 {
			t.Errorf("%s: %d pending outcomes, final outcomes with %d event ids; want one final outcome", o.OrderID, len(first), len(ids))
		}
	}
	e.checkCreates(n + pending)
	t.Logf("%d orders, %d of them pending on their users across a SIGKILL: each answered once more when its user accepted", n+pending, pending)
}

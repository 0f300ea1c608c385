package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// TestRun runs a small demo as a library and checks what came back: every
// record answered, each kind of answer present, one event id per order, no
// subscriber created twice, no lag.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sim := DefaultSim()
	sim.Latency, sim.LatencyJitter, sim.ProvisioningDelay = time.Millisecond, time.Millisecond, 10*time.Millisecond
	rep, err := Run(ctx, Options{Orders: MinOrders, Sim: &sim})
	if err != nil {
		t.Fatal(err)
	}
	status := map[schemas.OutcomeStatus]int{}
	ids := map[string]bool{}
	for _, o := range rep.Outcomes {
		status[o.Status]++
		ids[o.EventID] = true
	}
	if status[schemas.StatusProvisioned] == 0 || status[schemas.StatusFailed] == 0 || status[schemas.StatusPendingUserAction] != 2 ||
		status[schemas.StatusUpdated] != 1 || status[schemas.StatusRemoved] != 2 {
		t.Errorf("outcomes by status %v", status)
	}
	// The redelivered order has the same event id as its first delivery.
	if len(ids) != len(rep.Outcomes)-1 {
		t.Errorf("%d distinct event ids for %d outcomes, want one fewer", len(ids), len(rep.Outcomes))
	}
	if rep.Sim.MaxCreatesPerEmail != 1 || len(rep.DeadLetters) < rep.Malformed {
		t.Errorf("max creates per email %d, %d dead letters for %d malformed records", rep.Sim.MaxCreatesPerEmail, len(rep.DeadLetters), rep.Malformed)
	}
	// The new customer, and every one of its subscribers once it was provisioned.
	if len(rep.CustomerOutcomes) != 1 || rep.CustomerOutcomes[0].Status != schemas.StatusProvisioned {
		t.Errorf("customer outcomes %+v: want the new customer provisioned", rep.CustomerOutcomes)
	}
	members := 0
	for _, o := range rep.Outcomes {
		if o.CustomerExternalID != "" && len(rep.CustomerOutcomes) == 1 && o.CustomerExternalID == rep.CustomerOutcomes[0].ExternalID {
			if o.Status != schemas.StatusProvisioned || o.CustomerID != rep.CustomerOutcomes[0].Customer.ID {
				t.Errorf("member outcome %+v: want provisioned in the new customer", o)
			}
			members++
		}
	}
	if members != rep.Members || members == 0 {
		t.Errorf("%d member outcomes, want %d", members, rep.Members)
	}
	var out bytes.Buffer
	if err := rep.WriteSummary(&out, "demo.log"); err != nil || !strings.Contains(out.String(), "(lag 0)") || !strings.Contains(out.String(), "New customer ") {
		t.Errorf("summary %v:\n%s", err, out.String())
	}
}

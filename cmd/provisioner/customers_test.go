package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"github.com/acme-sp/wholesale-provisioner/internal/demo"
	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/internal/testkit"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// customerScenario is a billing system onboarding enterprises: customer
// orders and the subscriber orders of their members, published together.
// ok is provisioned (its order delivered twice, then updated while its
// members are being provisioned); partial ends provisioned_with_errors,
// review pending_review, failing in error; ghost is removed without ever
// existing. Once the members are in, removeOK is refused by Webex.
type customerScenario struct {
	ok, partial, review, failing schemas.CustomerOrder
	update, ghost, removeOK      schemas.CustomerOrder
	members, failingMembers      []schemas.Order
}

func newCustomerScenario(runID string, members int) customerScenario {
	now := time.Now()
	s := customerScenario{
		ok:      sample.Customer(runID, 1, "", now),
		partial: sample.Customer(runID, 2, sample.CustomerPartialDomain, now),
		review:  sample.Customer(runID, 3, sample.CustomerReviewDomain, now),
		failing: sample.Customer(runID, 4, sample.CustomerErrorDomain, now),
	}
	s.update = s.ok
	s.update.OrderID, s.update.Action, s.update.CustomerInfo, s.update.ProvisioningID = s.ok.OrderID+"-upd", schemas.ActionUpdate, nil, ""
	s.update.Packages = []string{"webex_calling", "webex_meetings", "webex_suite"}
	s.ghost = schemas.CustomerOrder{SchemaVersion: 1, OrderID: runID + "-ghost-rm", Action: schemas.ActionRemove, OccurredAt: now, ExternalID: runID + "-nobody"}
	s.removeOK = schemas.CustomerOrder{SchemaVersion: 1, OrderID: s.ok.OrderID + "-rm", Action: schemas.ActionRemove, OccurredAt: now, ExternalID: s.ok.ExternalID}
	for i := range members {
		s.members = append(s.members, sample.Member(s.ok, i, now))
	}
	for i := range 3 {
		s.failingMembers = append(s.failingMembers, sample.Member(s.failing, i, now))
	}
	return s
}

// records returns the first phase: the customer orders (ok twice) and the
// subscriber orders, for their two topics.
func (s customerScenario) records() (customers, orders []kafka.Message) {
	for _, c := range []schemas.CustomerOrder{s.ok, s.partial, s.review, s.failing, s.ok, s.update, s.ghost} {
		customers = append(customers, sample.CustomerMessage(c))
	}
	for _, o := range append(append([]schemas.Order(nil), s.members...), s.failingMembers...) {
		orders = append(orders, sample.Message(o))
	}
	return customers, orders
}

// firstCustomerOutcomes is how many customer outcomes the first phase has.
const firstCustomerOutcomes = 7

func customerOutcomesOf(t *testing.T, msgs []kafka.Message) []schemas.CustomerOutcome {
	t.Helper()
	return decodeChecked(t, msgs, schemas.ValidateCustomerOutcome, func(o schemas.CustomerOutcome) string { return o.OrderID })
}

// checkFirst checks the first phase's answers and what Webex holds.
func (s customerScenario) checkFirst(t *testing.T, sim *webexsim.Server, custOuts []schemas.CustomerOutcome, outs []schemas.Outcome) {
	t.Helper()
	byOrder := map[string][]schemas.CustomerOutcome{}
	for _, o := range custOuts {
		byOrder[o.OrderID] = append(byOrder[o.OrderID], o)
	}
	for _, tc := range []struct {
		o      schemas.CustomerOrder
		n      int
		status schemas.OutcomeStatus
	}{
		{s.ok, 2, schemas.StatusProvisioned},
		{s.partial, 1, schemas.StatusProvisionedWithErrors},
		{s.review, 1, schemas.StatusPendingReview},
		{s.failing, 1, schemas.StatusFailed},
		{s.update, 1, schemas.StatusUpdated},
		{s.ghost, 1, schemas.StatusRemoved},
	} {
		got := byOrder[tc.o.OrderID]
		if len(got) < tc.n || got[0].Status != tc.status {
			t.Errorf("customer order %s: outcomes %+v, want %d with status %s", tc.o.OrderID, got, tc.n, tc.status)
			if len(got) > 0 && got[0].Failure != nil {
				t.Logf("failure: %+v", *got[0].Failure)
			}
		}
	}
	if got := byOrder[s.ok.OrderID]; len(got) == 2 && got[0].EventID != got[1].EventID {
		t.Errorf("redelivered customer order: event ids %s and %s, want one", got[0].EventID, got[1].EventID)
	}
	if got := byOrder[s.partial.OrderID]; len(got) > 0 && (got[0].Customer == nil || len(got[0].Customer.PackageDetails) == 0 ||
		len(got[0].Customer.PackageDetails[0].Errors) == 0 || got[0].Customer.PackageDetails[0].Errors[0].Code != webexsim.CustomerPackageErrorCode) {
		t.Errorf("provisioned with errors: %+v, want Webex's per-package error", got[0].Customer)
	}
	if got := byOrder[s.failing.OrderID]; len(got) > 0 && (got[0].Failure == nil || got[0].Failure.Reason != schemas.ReasonProvisioningError) {
		t.Errorf("customer in error: failure %+v, want provisioning_error", got[0].Failure)
	}
	if got := byOrder[s.ghost.OrderID]; len(got) > 0 && !got[0].AlreadyAbsent {
		t.Errorf("remove of nobody: %+v, want alreadyAbsent", got[0])
	}
	if n := sim.CustomerCreateCalls(s.ok.ExternalID); n != 1 {
		t.Errorf("%d creates sent for the customer ordered twice, want 1", n)
	}

	var okID string
	for _, c := range sim.Customers() {
		if c.ExternalID == s.ok.ExternalID {
			okID = c.ID
			if len(c.Packages) != 3 {
				t.Errorf("customer packages %v, want the update's three", c.Packages)
			}
		}
	}
	got := map[string]schemas.Outcome{}
	for _, o := range outs {
		got[o.OrderID] = o
	}
	for _, m := range s.members {
		o, ok := got[m.OrderID]
		if !ok || o.Status != schemas.StatusProvisioned || o.CustomerID != okID || o.CustomerExternalID != s.ok.ExternalID {
			t.Errorf("member %s: outcome %+v (failure %+v), want provisioned in customer %s", m.OrderID, o, o.Failure, okID)
		}
		if n := sim.SuccessfulCreates(m.Email); n != 1 {
			t.Errorf("member %s created %d times, want once", m.OrderID, n)
		}
	}
	for _, m := range s.failingMembers {
		o := got[m.OrderID]
		if o.Status != schemas.StatusFailed || o.Failure == nil || o.Failure.Reason != schemas.ReasonCustomerNotReady || o.Failure.CustomerOrderID != s.failing.OrderID {
			t.Errorf("member of the customer in error %s: outcome %+v, failure %+v; want customer_not_ready naming %s", m.OrderID, o, o.Failure, s.failing.OrderID)
		}
		if n := sim.CreateCalls(m.Email); n != 0 {
			t.Errorf("member of the customer in error %s: %d creates sent", m.OrderID, n)
		}
	}
}

// checkRemoveRefused checks the second phase: Webex's refusal to remove a
// customer with subscribers, in Cisco's words.
func (s customerScenario) checkRemoveRefused(t *testing.T, sim *webexsim.Server, out schemas.CustomerOutcome) {
	t.Helper()
	f := out.Failure
	if out.OrderID != s.removeOK.OrderID || out.Status != schemas.StatusFailed || f == nil || f.HTTPStatus != http.StatusConflict ||
		len(f.Errors) == 0 || f.Errors[0].Code != webexsim.CustomerHasSubscribersCode {
		t.Errorf("remove of a customer with subscribers: %+v, failure %+v; want failed with Webex's 409 %d", out, f, webexsim.CustomerHasSubscribersCode)
	}
	for _, c := range sim.Customers() {
		if c.ExternalID == s.ok.ExternalID && c.Status != "provisioned" {
			t.Errorf("the customer is %s after a refused remove", c.Status)
		}
	}
}

// TestCustomersInProcess: enterprises and their members ordered together,
// with the simulator's faults on.
func TestCustomersInProcess(t *testing.T) {
	env := testkit.StartApp(t, testkit.AppOptions{
		Sim: webexsim.Config{Seed: 15, CustomerProvisioningDelay: 300 * time.Millisecond, CustomerUpdateDelay: 100 * time.Millisecond,
			Faults: webexsim.FaultRates{Status429: 0.03, Status503: 0.05, LostResponse: 0.1, LostResponseAll: true}},
		Configure: func(c *app.Config) {
			c.Workflow.RetryMaxElapsed = 30 * time.Second
			c.Workflow.StatusPollInterval, c.Workflow.CustomerPollInterval = 10*time.Millisecond, 20*time.Millisecond
		},
		Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := newCustomerScenario("cust", 100)
	customers, orders := s.records()
	if err := demo.Publish(ctx, env.Cfg.Brokers, env.Cfg.CustomerOrdersTopic, customers); err != nil {
		t.Fatal(err)
	}
	if err := demo.Publish(ctx, env.Cfg.Brokers, env.Cfg.OrdersTopic, orders); err != nil {
		t.Fatal(err)
	}
	custOuts := customerOutcomesOf(t, readUntil(ctx, t, env.Cfg.Brokers, env.Cfg.CustomerOutcomesTopic, firstCustomerOutcomes))
	outs := outcomesOf(t, readUntil(ctx, t, env.Cfg.Brokers, env.Cfg.OutcomesTopic, len(orders)))
	s.checkFirst(t, env.Sim, custOuts, outs)

	if err := demo.Publish(ctx, env.Cfg.Brokers, env.Cfg.CustomerOrdersTopic, []kafka.Message{sample.CustomerMessage(s.removeOK)}); err != nil {
		t.Fatal(err)
	}
	all := customerOutcomesOf(t, readUntil(ctx, t, env.Cfg.Brokers, env.Cfg.CustomerOutcomesTopic, firstCustomerOutcomes+1))
	s.checkRemoveRefused(t, env.Sim, all[len(all)-1])
	// Dead letters: the customer in error, its three members, the refused remove.
	readUntil(ctx, t, env.Cfg.Brokers, env.Cfg.DeadLetterTopic, 5)
}

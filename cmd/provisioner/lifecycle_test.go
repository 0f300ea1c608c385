package main

import (
	"context"
	"encoding/json"
	"slices"
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

// outcomesOf decodes outcome records, checking each against its schema.
func outcomesOf(t *testing.T, msgs []kafka.Message) []schemas.Outcome {
	t.Helper()
	return decodeChecked(t, msgs, schemas.ValidateOutcome, func(o schemas.Outcome) string { return o.OrderID })
}

// decodeChecked decodes records of one kind, checking each with validate;
// id names a record in the error.
func decodeChecked[T any](t *testing.T, msgs []kafka.Message, validate func(T) error, id func(T) string) []T {
	t.Helper()
	var out []T
	for _, m := range msgs {
		var v T
		if err := json.Unmarshal(m.Value, &v); err != nil {
			t.Fatal(err)
		}
		if err := validate(v); err != nil {
			t.Errorf("record of %s breaks its schema: %v", id(v), err)
		}
		out = append(out, v)
	}
	return out
}

// TestLifecycleInProcess publishes, for each of many subscribers, a
// provision, an update and (for two in three) a remove, back to back, with
// the simulator's faults on, lost answers of creates, updates and removes
// among them. Each subscriber ends in its last ordered state, each order
// gets one outcome, in order per subscriber, and nothing is created,
// updated or removed twice.
func TestLifecycleInProcess(t *testing.T) {
	const n = 30
	env := testkit.StartApp(t, testkit.AppOptions{
		Partitions: 3,
		Sim: webexsim.Config{Seed: 11, UpdateDelay: 30 * time.Millisecond, ProvisioningDelay: 30 * time.Millisecond,
			Faults: webexsim.FaultRates{Status429: 0.05, Status503: 0.05, LostResponse: 0.15, LostResponseAll: true}},
		Configure: func(c *app.Config) {
			c.Workflow.RetryMaxElapsed = 30 * time.Second
			c.Workflow.StatusPollInterval = 10 * time.Millisecond
		},
		Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	now := time.Now()
	var msgs []kafka.Message
	want := map[string]schemas.OutcomeStatus{}
	sequence := map[string][]string{} // key -> its order ids, in order
	var emails []string
	unchanged := map[string]bool{} // emails whose update asks for what they have
	for i := range n {
		o := sample.Order("life", i, now)
		pkg := "webex_suite"
		if i%2 == 1 {
			pkg = "webex_meetings"
		}
		orders := []schemas.Order{o, sample.Update(o, "upd", pkg, now.Add(time.Second))}
		unchanged[o.Email] = o.Packages[0] == pkg
		if i%3 != 0 {
			orders = append(orders, sample.Remove(o, "rm", now.Add(2*time.Second)))
		}
		for _, oo := range orders {
			msgs = append(msgs, sample.Message(oo))
			sequence[string(sample.Key(o))] = append(sequence[string(sample.Key(o))], oo.OrderID)
			want[oo.OrderID] = map[schemas.Action]schemas.OutcomeStatus{schemas.ActionProvision: schemas.StatusProvisioned,
				schemas.ActionUpdate: schemas.StatusUpdated, schemas.ActionRemove: schemas.StatusRemoved}[oo.Action]
		}
		emails = append(emails, o.Email)
	}
	// An update of nobody, and a remove of nobody.
	ghost := sample.Order("life-ghost", 0, now)
	msgs = append(msgs, sample.Message(sample.Update(ghost, "upd", "webex_suite", now)), sample.Message(sample.Remove(ghost, "rm", now)))
	want[ghost.OrderID+"-upd"], want[ghost.OrderID+"-rm"] = schemas.StatusFailed, schemas.StatusRemoved
	if err := demo.Publish(ctx, env.Cfg.Brokers, env.Cfg.OrdersTopic, msgs); err != nil {
		t.Fatal(err)
	}

	outs := outcomesOf(t, readUntil(ctx, t, env.Cfg.Brokers, env.Cfg.OutcomesTopic, len(want)))
	got := map[string]schemas.Outcome{}
	seen := map[string][]string{}
	for _, o := range outs {
		got[o.OrderID] = o
		k := o.CustomerID + "/" + o.Email
		seen[k] = append(seen[k], o.OrderID)
	}
	for id, status := range want {
		if o, ok := got[id]; !ok || o.Status != status {
			t.Errorf("order %s: outcome %+v, want %s", id, o, status)
		}
	}
	if f := got[ghost.OrderID+"-upd"].Failure; f == nil || f.Reason != schemas.ReasonSubscriberNotFound {
		t.Errorf("update of nobody: failure %+v, want subscriber_not_found", f)
	}
	if !got[ghost.OrderID+"-rm"].AlreadyAbsent {
		t.Errorf("remove of nobody: %+v, want alreadyAbsent", got[ghost.OrderID+"-rm"])
	}
	for k, ids := range sequence {
		if !slices.Equal(seen[k], ids) {
			t.Errorf("subscriber %s: outcomes in the order %v, want %v", k, seen[k], ids)
		}
	}
	// The dead letter of the update of nobody, and no other.
	readUntil(ctx, t, env.Cfg.Brokers, env.Cfg.DeadLetterTopic, 1)

	for i, email := range emails {
		sim := env.Sim
		wantUpdates := 1
		if unchanged[email] {
			wantUpdates = 0 // in effect already: no PUT
		}
		if c, u := sim.SuccessfulCreates(email), sim.SuccessfulUpdates(email); c != 1 || u != wantUpdates {
			t.Errorf("%s: %d creates, %d updates took effect; want 1 and %d", email, c, u, wantUpdates)
		}
		if u := got[sample.Order("life", i, now).OrderID+"-upd"]; u.Changed == nil || *u.Changed == unchanged[email] {
			t.Errorf("%s: update outcome says changed %v", email, u.Changed)
		}
		removed := sim.SuccessfulRemoves(email)
		var pkgs []string
		for _, s := range sim.Subscribers() {
			if s.Email == email {
				pkgs = s.Packages
			}
		}
		switch {
		case i%3 != 0 && (removed != 1 || pkgs != nil):
			t.Errorf("%s: %d removes, packages %v; want removed once", email, removed, pkgs)
		case i%3 == 0 && (removed != 0 || len(pkgs) != 1 || pkgs[0] != map[bool]string{true: "webex_suite", false: "webex_meetings"}[i%2 == 0]):
			t.Errorf("%s: %d removes, packages %v; want the updated package", email, removed, pkgs)
		}
	}
	st := env.Sim.Stats()
	t.Logf("%d orders; %d API calls, %d lost answers", len(want), st.Requests, st.LostResponses)
}

// TestPendingFollowedInProcess: subscribers pending on their end user get
// pending_user_action at once and then exactly one final outcome: provisioned
// when the user accepts, failed when the migration fails, and failed
// (superseded) when a remove of the subscriber comes first.
func TestPendingFollowedInProcess(t *testing.T) {
	env := testkit.StartApp(t, testkit.AppOptions{
		Sim: webexsim.Config{AcceptDomain: sample.AcceptDomain, DeclineDomain: sample.DeclineDomain, PendingResolveDelay: 300 * time.Millisecond},
		Configure: func(c *app.Config) {
			c.Pipeline.FollowUp.SweepInterval, c.Pipeline.FollowUp.MaxSweepInterval = 50*time.Millisecond, 100*time.Millisecond
		},
		Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel),
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := time.Now()
	accepts := sample.WithDomain(sample.Order("pend", 1, now), "acc", sample.AcceptDomain)
	declines := sample.WithDomain(sample.Order("pend", 2, now), "dec", sample.DeclineDomain)
	waits := sample.WithDomain(sample.Order("pend", 3, now), "wait", sample.PendingDomain)
	removed := sample.Remove(waits, "rm", now.Add(time.Second))
	msgs := []kafka.Message{sample.Message(accepts), sample.Message(declines), sample.Message(waits), sample.Message(removed)}
	if err := demo.Publish(ctx, env.Cfg.Brokers, env.Cfg.OrdersTopic, msgs); err != nil {
		t.Fatal(err)
	}
	// Three pending outcomes, the remove's, and three final ones.
	outs := outcomesOf(t, readUntil(ctx, t, env.Cfg.Brokers, env.Cfg.OutcomesTopic, 7))
	byOrder := map[string][]schemas.Outcome{}
	for _, o := range outs {
		byOrder[o.OrderID] = append(byOrder[o.OrderID], o)
	}
	for _, tc := range []struct {
		o      schemas.Order
		status schemas.OutcomeStatus
		reason schemas.FailureReason
	}{
		{accepts, schemas.StatusProvisioned, ""},
		{declines, schemas.StatusFailed, schemas.ReasonProvisioningError},
		{waits, schemas.StatusFailed, schemas.ReasonSuperseded},
	} {
		got := byOrder[tc.o.OrderID]
		if len(got) != 2 || got[0].Status != schemas.StatusPendingUserAction || got[1].Status != tc.status || got[1].PendingEventID != got[0].EventID {
			t.Errorf("%s: outcomes %+v, want pending then %s", tc.o.OrderID, got, tc.status)
			continue
		}
		if tc.reason != "" && (got[1].Failure == nil || got[1].Failure.Reason != tc.reason) {
			t.Errorf("%s: final failure %+v, want %s", tc.o.OrderID, got[1].Failure, tc.reason)
		}
	}
	if n, _ := env.App.Follower.Stats(); n != 0 {
		t.Errorf("%d orders still followed", n)
	}
}

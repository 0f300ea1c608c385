package dlq

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"golang.org/x/time/rate"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/internal/testkit"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// TestReplayEndToEnd runs the real provisioner (consumer, pipeline, Webex
// workflow, writers) against the in-process broker and the Webex simulator.
// Orders fail while Webex answers 503 (retries_exhausted, dead-lettered);
// replays while it still fails dead-letter them again with a growing
// replay-count, until --max-replays refuses them. Once Webex recovers, a replay
// provisions every order, and replaying the same dead letters again
// provisions nothing twice.
func TestReplayEndToEnd(t *testing.T) {
	const n = 4
	env := testkit.StartApp(t, testkit.AppOptions{
		Partitions:           2,
		DeadLetterPartitions: 2,
		Sim:                  webexsim.Config{Token: "t0k3n", Faults: webexsim.FaultRates{Status503: 1}, Seed: 3},
		Configure: func(c *app.Config) {
			c.Workflow.RetryInitialInterval, c.Workflow.RetryMaxInterval = 5*time.Millisecond, 20*time.Millisecond
			c.Workflow.RetryMaxElapsed, c.Consumer.CommitInterval = 150*time.Millisecond, 50*time.Millisecond
			c.HTTPAddr = ""
		},
		Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel),
	})
	cfg, sim := env.Cfg, env.Sim
	ctx := testCtx(t, 2*time.Minute)

	brokers := cfg.Brokers
	var msgs []kafka.Message
	emails := map[string]string{} // order id -> email
	for i := 0; i < n; i++ {
		o := sample.Order("dlq-e2e", i, time.Now())
		emails[o.OrderID] = o.Email
		m := sample.Message(o)
		m.Headers = append(m.Headers, kafka.Header{Key: "traceparent", Value: []byte("00-e2e-01")})
		msgs = append(msgs, m)
	}
	writeRaw(t, brokers, cfg.OrdersTopic, msgs...)

	outcomes := func(t *testing.T, want int64) []schemas.Outcome {
		t.Helper()
		waitForRecords(ctx, t, brokers, cfg.OutcomesTopic, want)
		var out []schemas.Outcome
		for _, m := range readAll(t, brokers, cfg.OutcomesTopic) {
			var o schemas.Outcome
			if err := json.Unmarshal(m.Value, &o); err != nil {
				t.Fatal(err)
			}
			out = append(out, o)
		}
		if int64(len(out)) != want {
			t.Fatalf("%d outcomes, want %d", len(out), want)
		}
		return out
	}
	replay := func(t *testing.T, from Position) (ReplayReport, string) {
		t.Helper()
		var out bytes.Buffer
		rep, err := Replay(ctx, ReplayConfig{
			Reader:     ReaderConfig{Conn: Conn{Brokers: brokers}, Topic: cfg.DeadLetterTopic, From: from},
			Filter:     Filter{ErrorClasses: []string{schemas.ErrorClassTransient}},
			Rate:       rate.Inf,
			MaxReplays: 2,
			Out:        &out,
		})
		if err != nil {
			t.Fatal(err)
		}
		return rep, out.String()
	}

	// The orders fail: Webex answers 503 until the retries are spent.
	waitForRecords(ctx, t, brokers, cfg.DeadLetterTopic, n)
	for _, o := range outcomes(t, n) {
		if o.Status != schemas.StatusFailed || o.Failure == nil || o.Failure.Reason != schemas.ReasonRetriesExhausted {
			t.Fatalf("outcome of %s: %s %+v, want failed: retries_exhausted", o.OrderID, o.Status, o.Failure)
		}
	}
	gen0 := endOffsets(t, brokers, cfg.DeadLetterTopic)

	// A replay while Webex still fails: dead-lettered again, with replay-count 1.
	if rep, _ := replay(t, Position{}); rep.Replayed != n {
		t.Fatalf("first replay: %+v", rep)
	}
	waitForRecords(ctx, t, brokers, cfg.DeadLetterTopic, 2*n)
	outcomes(t, 2*n)
	gen1 := endOffsets(t, brokers, cfg.DeadLetterTopic)

	// Replaying only the new dead letters: replay-count 2, failing again.
	if rep, _ := replay(t, Position{Offsets: gen0}); rep.Read != n || rep.Replayed != n {
		t.Fatalf("second replay: %+v", rep)
	}
	waitForRecords(ctx, t, brokers, cfg.DeadLetterTopic, 3*n)
	outcomes(t, 3*n)

	// A third replay of them is beyond --max-replays 2: refused, nothing published.
	ordersBefore := total(endOffsets(t, brokers, cfg.OrdersTopic))
	rep, out := replay(t, Position{Offsets: gen1})
	if rep.Read != n || rep.Replayed != 0 || rep.Refused[RefusedMaxReplays] != n {
		t.Fatalf("third replay: %+v, want all %d refused", rep, n)
	}
	if !strings.Contains(out, "replayed 2 times already, and --max-replays is 2: find out why it keeps failing (provisioner dlq inspect --order-id dlq-e2e-") {
		t.Errorf("refusal output:\n%s", out)
	}
	if after := total(endOffsets(t, brokers, cfg.OrdersTopic)); after != ordersBefore {
		t.Errorf("refused replay published %d records", after-ordersBefore)
	}

	// Webex recovers. Replaying every dead letter re-publishes each order twice
	// (its replay-count-0 and -1 dead letters) and refuses the count-2 ones.
	sim.SetFaults(webexsim.FaultRates{})
	var provisioned []schemas.Outcome
	for round := 1; round <= 2; round++ {
		rep, _ := replay(t, Position{})
		if rep.Read != 3*n || rep.Replayed != 2*n || rep.Refused[RefusedMaxReplays] != n {
			t.Fatalf("replay %d after recovery: %+v", round, rep)
		}
		all := outcomes(t, int64(3*n+round*2*n))
		fresh := all[3*n+(round-1)*2*n:]
		got := map[string]int{}
		for _, o := range fresh {
			if o.Status != schemas.StatusProvisioned || o.Subscriber == nil {
				t.Errorf("replay %d: outcome of %s is %s %+v, want provisioned", round, o.OrderID, o.Status, o.Failure)
				continue
			}
			// The same order again: its subscriber is found by lookup, and
			// it is this order's own (created by an earlier delivery).
			if round == 2 && (!o.Subscriber.FoundByLookup || o.Subscriber.AlreadyExisted) {
				t.Errorf("second replay: %s: subscriber %+v, want found by lookup, not already existing", o.OrderID, o.Subscriber)
			}
			got[o.OrderID]++
		}
		for id := range emails {
			if got[id] != 2 {
				t.Errorf("replay %d: %d provisioned outcomes for %s, want 2", round, got[id], id)
			}
		}
		provisioned = append(provisioned, fresh...)
	}
	created := 0
	for _, o := range provisioned {
		if !o.Subscriber.AlreadyExisted && !o.Subscriber.FoundByLookup {
			created++
		}
	}
	if created != n {
		t.Errorf("%d outcomes say this order's create made the subscriber, want %d (one per order)", created, n)
	}
	if m := sim.MaxSuccessfulCreates(); m != 1 {
		t.Errorf("max creates per email = %d, want 1", m)
	}
	for id, email := range emails {
		if c := sim.SuccessfulCreates(email); c != 1 {
			t.Errorf("order %s: %d subscribers created, want 1", id, c)
		}
	}
	if got := total(endOffsets(t, brokers, cfg.DeadLetterTopic)); got != 3*n {
		t.Errorf("the dead-letter topic holds %d records after the successful replays, want still %d", got, 3*n)
	}
	// The original headers travelled through every replay.
	for _, m := range readAll(t, brokers, cfg.OrdersTopic) {
		if v, _ := headerValue(m, "traceparent"); v != "00-e2e-01" {
			t.Errorf("order record at %d/%d lost its traceparent header: %q", m.Partition, m.Offset, m.Headers)
		}
	}
}

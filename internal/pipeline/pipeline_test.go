package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/producer"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// provisionerFunc fakes the workflow.
type provisionerFunc func(ctx context.Context, o schemas.Order) (provisioning.Result, error)

func (f provisionerFunc) Run(ctx context.Context, o schemas.Order, _ provisioning.Wait) (provisioning.Result, error) {
	return f(ctx, o)
}

// recorder is a Publisher that records what it was asked to publish, using the
// real record builders, and fails the first failures calls.
type recorder struct {
	*producer.Writer
	mu       sync.Mutex
	failures int
	calls    int
	sent     []kafka.Message
	// onPublish, when set, is called with the context of every Publish call.
	onPublish func(ctx context.Context)
}

func newRecorder(t testing.TB) *recorder {
	w, err := producer.NewWriter(producer.Config{Brokers: []string{"127.0.0.1:1"}, OutcomesTopic: "out", DeadLetterTopic: "dlt"})
	if err != nil {
		t.Fatal(err)
	}
	return &recorder{Writer: w}
}

func (r *recorder) Publish(ctx context.Context, msgs ...kafka.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.onPublish != nil {
		r.onPublish(ctx)
	}
	if r.calls <= r.failures {
		return errors.New("broker unavailable")
	}
	r.sent = append(r.sent, msgs...)
	return nil
}

func (r *recorder) byTopic(topic string) []kafka.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []kafka.Message
	for _, m := range r.sent {
		if m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

var okProvisioner = provisionerFunc(func(_ context.Context, o schemas.Order) (provisioning.Result, error) {
	return provisioning.Result{Status: schemas.StatusProvisioned, Attempts: 2,
		Subscriber: provisioning.Subscriber{ID: "sub-1", PersonID: "p-1", Status: "provisioned", Packages: o.Packages}}, nil
})

func record(value []byte) kafka.Message {
	return kafka.Message{Topic: "orders", Partition: 2, Offset: 41, Key: []byte("k"), Value: value, Time: time.Unix(1700000000, 0),
		Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-x-01")}}}
}

func outcomes(t *testing.T, r *recorder) []schemas.Outcome {
	t.Helper()
	var out []schemas.Outcome
	for _, m := range r.byTopic("out") {
		var o schemas.Outcome
		if err := json.Unmarshal(m.Value, &o); err != nil {
			t.Fatal(err)
		}
		if err := schemas.ValidateOutcome(o); err != nil {
			t.Errorf("outcome breaks its schema: %v", err)
		}
		out = append(out, o)
	}
	return out
}

func deadLetters(t *testing.T, r *recorder) []schemas.DeadLetter {
	t.Helper()
	var out []schemas.DeadLetter
	for _, m := range r.byTopic("dlt") {
		var d schemas.DeadLetter
		if err := json.Unmarshal(m.Value, &d); err != nil {
			t.Fatal(err)
		}
		if err := schemas.ValidateDeadLetter(d); err != nil {
			t.Errorf("dead letter breaks its schema: %v", err)
		}
		out = append(out, d)
	}
	return out
}

func TestProvisionedOrder(t *testing.T) {
	r := newRecorder(t)
	p := New(Config{ConsumerGroup: "g"}, okProvisioner, r)
	o := sample.Order("p", 1, time.Now())
	if err := p.Handle(context.Background(), sample.Message(o), nil); err != nil {
		t.Fatal(err)
	}
	outs := outcomes(t, r)
	if len(outs) != 1 || len(r.byTopic("dlt")) != 0 {
		t.Fatalf("outcomes %d, dead letters %d; want 1 and 0", len(outs), len(r.byTopic("dlt")))
	}
	got := outs[0]
	want, err := EventIDOf(sample.Message(o))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != schemas.StatusProvisioned || got.Subscriber.ID != "sub-1" || got.EventID != want || got.OrderID != o.OrderID {
		t.Errorf("outcome = %+v", got)
	}
}

// TestOutcomeCarriesThePrecheckAndTheLookup: a passed precheck's info codes
// and a subscriber found by lookup after a lost create answer reach the
// outcome as such, within its schema.
func TestOutcomeCarriesThePrecheckAndTheLookup(t *testing.T) {
	r := newRecorder(t)
	lostAnswer := provisionerFunc(func(_ context.Context, o schemas.Order) (provisioning.Result, error) {
		return provisioning.Result{Status: schemas.StatusProvisioned, Attempts: 3, FoundByLookup: true,
			Precheck:   &provisioning.PrecheckResponse{Message: "success", Info: provisioning.PrecheckInfos{{InfoCode: 110, Description: "ok, with a note"}}},
			Subscriber: provisioning.Subscriber{ID: "sub-1", Status: "provisioned", Packages: o.Packages}}, nil
	})
	p := New(Config{ConsumerGroup: "g"}, lostAnswer, r)
	if err := p.Handle(context.Background(), sample.Message(sample.Order("p", 2, time.Now())), nil); err != nil {
		t.Fatal(err)
	}
	outs := outcomes(t, r)
	if len(outs) != 1 {
		t.Fatalf("%d outcomes", len(outs))
	}
	got := outs[0]
	if got.Subscriber.AlreadyExisted || !got.Subscriber.FoundByLookup {
		t.Errorf("subscriber %+v: want created by this order, found by lookup", got.Subscriber)
	}
	if got.Precheck == nil || got.Precheck.Message != "success" || len(got.Precheck.Info) != 1 ||
		got.Precheck.Info[0] != (schemas.PrecheckInfo{Code: 110, Description: "ok, with a note"}) {
		t.Errorf("precheck %+v, want the info code 110 and its description", got.Precheck)
	}
}

// TestEventIDsStayTheSame pins the event ids of a few orders: a release that
// changed them would answer a redelivered order under a new id, and consumers
// of the outcome topic that deduplicate by id would see it twice.
func TestEventIDsStayTheSame(t *testing.T) {
	example, err := os.ReadFile("../../schemas/examples/subscriber-order.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	// Characters encoding/json escapes (HTML, U+2028) and non-ASCII ones.
	escaped := strings.Replace(string(example), `"John"`, `"Tom & <Jerry> \u2028 Žofie"`, 1)
	for _, tc := range []struct{ file, value, want string }{
		{file: "subscriber-order.v1.json", want: "b79fc3a4-b3e2-5cd4-af1f-ef1e5d3a1077"},
		{file: "subscriber-order-meetings.v1.json", want: "f6e16c94-94e9-58d2-a6f4-243655640b9a"},
		{file: "subscriber-order-new-customer.v1.json", want: "c7bce93d-f675-50ad-869d-c85cbc66ee71"},
		{file: "escaped", value: escaped, want: "0d3e8c53-7644-5a00-b858-d4d513f59808"},
	} {
		value := []byte(tc.value)
		if tc.value == "" {
			if value, err = os.ReadFile(filepath.Join("../../schemas/examples", tc.file)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := EventIDOf(kafka.Message{Value: value})
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if got != tc.want {
			t.Errorf("%s: event id %s, want %s as in earlier releases", tc.file, got, tc.want)
		}
	}
	replayed := kafka.Message{Value: example, Headers: []kafka.Header{{Key: HeaderReplayCount, Value: []byte("2")}}}
	if got, err := EventIDOf(replayed); err != nil || got != "274666f9-7e2e-53b4-a890-d02be101454b" {
		t.Errorf("replayed twice: event id %s (%v), want 274666f9-7e2e-53b4-a890-d02be101454b as in earlier releases", got, err)
	}
}

func TestEventIDIsDeterministicAndDistinct(t *testing.T) {
	o := sample.Order("p", 1, time.Now())
	m := sample.Message(o)
	a, _ := EventIDOf(m)
	// The same order with its JSON laid out differently is the same order.
	var generic map[string]any
	_ = json.Unmarshal(m.Value, &generic)
	relaid, _ := json.MarshalIndent(generic, "", "   ")
	b, _ := EventIDOf(kafka.Message{Value: relaid})
	changed := o
	changed.Email = "someone.else@acme.example"
	c, _ := EventIDOf(sample.Message(changed))
	replayed := m
	replayed.Headers = append(replayed.Headers, kafka.Header{Key: HeaderReplayCount, Value: []byte("1")})
	d, _ := EventIDOf(replayed)
	if a != b {
		t.Errorf("re-laid JSON changed the event id: %s vs %s", a, b)
	}
	if a == c || a == d || c == d {
		t.Errorf("event ids must differ for other content (%s) and for a replay (%s); original %s", c, d, a)
	}
	if len(a) != 36 || a[14] != '5' {
		t.Errorf("event id %q is not a version-5 layout UUID", a)
	}
}

func TestDuplicateOrderIDWithDifferentContent(t *testing.T) {
	r := newRecorder(t)
	calls := 0
	p := New(Config{}, provisionerFunc(func(ctx context.Context, o schemas.Order) (provisioning.Result, error) {
		calls++
		return okProvisioner(ctx, o)
	}), r)
	o := sample.Order("p", 9, time.Now())
	changed := o
	changed.Email = "another.person@acme.example"
	for _, m := range []kafka.Message{sample.Message(o), sample.Message(o), sample.Message(changed)} {
		if err := p.Handle(context.Background(), fromOrders(m), nil); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 2 {
		t.Errorf("workflow called %d times, want 2 (the order and its redelivery; not the conflicting one)", calls)
	}
	outs, dls := outcomes(t, r), deadLetters(t, r)
	if len(outs) != 3 || len(dls) != 1 {
		t.Fatalf("outcomes %d, dead letters %d; want 3 and 1", len(outs), len(dls))
	}
	if outs[0].EventID != outs[1].EventID {
		t.Errorf("a redelivered order must keep its event id")
	}
	if outs[2].Status != schemas.StatusFailed || outs[2].Failure.Reason != schemas.ReasonInvalidOrder || outs[2].EventID == outs[0].EventID {
		t.Errorf("conflicting order's outcome = %+v", outs[2])
	}
	if dls[0].Reason != schemas.ReasonDuplicateOrderID || !strings.Contains(dls[0].Message, o.OrderID) {
		t.Errorf("dead letter = %+v", dls[0])
	}
}

func TestSeenOrdersIsBounded(t *testing.T) {
	s := newSeenOrders(3)
	d := [32]byte{1}
	for _, id := range []string{"a", "b", "c", "d"} {
		s.add(id, d)
	}
	if s.conflicts("a", [32]byte{2}) {
		t.Error("the oldest id should have been forgotten")
	}
	if !s.conflicts("d", [32]byte{2}) || s.conflicts("d", d) {
		t.Error("a recent id must be checked")
	}
	if len(s.byID) != 3 {
		t.Errorf("%d ids remembered, want 3", len(s.byID))
	}

	// An id answered again counts from its latest answer.
	s = newSeenOrders(3)
	for _, id := range []string{"a", "b", "a", "c", "d"} {
		s.add(id, d)
	}
	if !s.conflicts("a", [32]byte{2}) {
		t.Error("a was answered third of five: it must still be remembered")
	}
	if s.conflicts("b", [32]byte{2}) {
		t.Error("b is the oldest answer: it should have been forgotten")
	}
	if len(s.byID) != 3 {
		t.Errorf("%d ids remembered, want 3", len(s.byID))
	}
}

func TestInvalidRecords(t *testing.T) {
	big := make([]byte, 2048)
	for i := range big {
		big[i] = 'x'
	}
	tests := []struct {
		name        string
		value       []byte
		reason      string
		wantOutcome bool
	}{
		{"tombstone", nil, schemas.ReasonTombstone, false},
		{"empty", []byte{}, schemas.ReasonEmptyValue, false},
		{"not JSON", []byte(`{"orderId": "o-1",`), schemas.ReasonInvalidJSON, false},
		{"too large", big, schemas.ReasonRecordTooLarge, false},
		{"schema violation with an order id", []byte(`{"schemaVersion":1,"orderId":"o-2","action":"provision"}`), schemas.ReasonSchemaViolation, true},
		{"a remove that carries provisioning parameters", mustJSON(t, func() schemas.Order {
			o := sample.Order("p", 2, time.Now())
			o.Action = schemas.ActionRemove
			return o
		}()), schemas.ReasonSchemaViolation, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRecorder(t)
			called := false
			p := New(Config{ConsumerGroup: "g", MaxRecordBytes: 1024}, provisionerFunc(func(context.Context, schemas.Order) (provisioning.Result, error) {
				called = true
				return provisioning.Result{}, nil
			}), r)
			msg := record(tt.value)
			if err := p.Handle(context.Background(), msg, nil); err != nil {
				t.Fatal(err)
			}
			if called {
				t.Error("an invalid record reached the workflow")
			}
			dls := deadLetters(t, r)
			if len(dls) != 1 {
				t.Fatalf("dead letters = %d, want 1", len(dls))
			}
			d := dls[0]
			if d.Reason != tt.reason || d.Source.Offset != 41 || d.Source.Partition != 2 || d.Source.Topic != "orders" || d.ConsumerGroup != "g" {
				t.Errorf("dead letter = %+v", d)
			}
			if raw, _ := d.Source.Value.Raw(); string(raw) != string(tt.value) || (tt.value == nil) != (d.Source.Value == nil) {
				t.Errorf("original value not kept: %q", raw)
			}
			if len(d.Source.Headers) != 1 || d.Source.Headers[0].Key != "traceparent" {
				t.Errorf("original headers not kept: %+v", d.Source.Headers)
			}
			outs := outcomes(t, r)
			if tt.wantOutcome != (len(outs) == 1) {
				t.Fatalf("outcomes = %d, want outcome: %v", len(outs), tt.wantOutcome)
			}
			if tt.wantOutcome && (outs[0].Status != schemas.StatusFailed || outs[0].Failure.Reason != schemas.ReasonInvalidOrder) {
				t.Errorf("outcome = %+v", outs[0])
			}
		})
	}
}

func TestFailedOrderIsDeadLetteredWithTheAPIAnswer(t *testing.T) {
	r := newRecorder(t)
	api := &provisioning.APIError{Method: "POST", Endpoint: provisioning.PathSubscribers, StatusCode: 403, Message: "Forbidden",
		Errors: []provisioning.ErrorItem{{ErrorCode: 4003, Description: "customer not managed"}}, TrackingID: "T-9"}
	p := New(Config{}, provisionerFunc(func(context.Context, schemas.Order) (provisioning.Result, error) {
		return provisioning.Result{}, &provisioning.Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonAPIRejected,
			Step: schemas.StepProvision, Attempts: 3, Err: api}
	}), r)
	if err := p.Handle(context.Background(), fromOrders(sample.Message(sample.Order("p", 3, time.Now()))), nil); err != nil {
		t.Fatal(err)
	}
	outs, dls := outcomes(t, r), deadLetters(t, r)
	if len(outs) != 1 || len(dls) != 1 {
		t.Fatalf("outcomes %d, dead letters %d", len(outs), len(dls))
	}
	f := outs[0].Failure
	if f.Reason != schemas.ReasonAPIRejected || f.HTTPStatus != 403 || f.TrackingID != "T-9" || len(f.Errors) != 1 || f.Errors[0].Code != 4003 {
		t.Errorf("failure = %+v", f)
	}
	if d := dls[0]; d.Reason != "api_rejected" || d.ErrorClass != schemas.ErrorClassPermanent || d.Step != "provision" || d.Attempts != 3 {
		t.Errorf("dead letter = %+v", d)
	}
}

func TestConfigFaultLeavesTheRecordUnfinished(t *testing.T) {
	r := newRecorder(t)
	p := New(Config{}, provisionerFunc(func(context.Context, schemas.Order) (provisioning.Result, error) {
		return provisioning.Result{}, &provisioning.Error{Class: schemas.ErrorClassConfigFault, Step: schemas.StepPrecheck,
			Err: &provisioning.APIError{StatusCode: 401}}
	}), r)
	err := p.Handle(context.Background(), fromOrders(sample.Message(sample.Order("p", 4, time.Now()))), nil)
	if err == nil {
		t.Fatal("a configuration fault must leave the record unfinished (uncommitted)")
	}
	if len(r.sent) != 0 {
		t.Errorf("published %d records during a configuration fault, want none", len(r.sent))
	}
}

func TestPanicIsDeadLettered(t *testing.T) {
	r := newRecorder(t)
	p := New(Config{}, provisionerFunc(func(context.Context, schemas.Order) (provisioning.Result, error) {
		panic("boom: nil map")
	}), r)
	if err := p.Handle(context.Background(), fromOrders(sample.Message(sample.Order("p", 5, time.Now()))), nil); err != nil {
		t.Fatal(err)
	}
	dls := deadLetters(t, r)
	if len(dls) != 1 || dls[0].Reason != schemas.ReasonHandlerPanic || !strings.Contains(dls[0].Message, "boom: nil map") {
		t.Fatalf("dead letters = %+v", dls)
	}
	if outs := outcomes(t, r); len(outs) != 1 || outs[0].Status != schemas.StatusFailed {
		t.Errorf("outcomes = %+v", outs)
	}
}

func TestPublishIsRetriedUntilAcknowledged(t *testing.T) {
	r := newRecorder(t)
	r.failures = 2
	p := New(Config{PublishRetryMaxInterval: 10 * time.Millisecond}, okProvisioner, r)
	if err := p.Handle(context.Background(), fromOrders(sample.Message(sample.Order("p", 6, time.Now()))), nil); err != nil {
		t.Fatal(err)
	}
	if r.calls != 3 || len(r.sent) != 1 {
		t.Errorf("publish calls %d, records sent %d; want 3 and 1", r.calls, len(r.sent))
	}
}

func TestPublishFailureLeavesTheRecordUnfinished(t *testing.T) {
	r := newRecorder(t)
	r.failures = 1 << 30
	p := New(Config{PublishRetryMaxInterval: 10 * time.Millisecond}, okProvisioner, r)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := p.Handle(ctx, fromOrders(sample.Message(sample.Order("p", 7, time.Now()))), nil); err == nil {
		t.Fatal("Handle returned nil although nothing was published")
	}
	if r.calls < 2 {
		t.Errorf("publish calls = %d, want retries", r.calls)
	}
}

// slotLog is a worker slot that records what is done with it.
type slotLog struct {
	held   bool
	events []string
}

func (s *slotLog) Release() {
	if s.held {
		s.held = false
		s.events = append(s.events, "release")
	}
}

func (s *slotLog) Acquire(context.Context) error {
	if !s.held {
		s.held = true
		s.events = append(s.events, "acquire")
	}
	return nil
}

// TestPublishWaitsWithoutAWorker: the outcome write waits for its
// acknowledgement without holding the order's worker slot, so that other
// orders run and share its produce request; once a write fails, the order
// takes a worker again, so that a Kafka outage stops new orders instead of
// letting them call Webex for outcomes that cannot be written.
func TestPublishWaitsWithoutAWorker(t *testing.T) {
	for _, tc := range []struct {
		name       string
		failures   int
		heldAtCall []bool
		events     string
	}{
		{"acknowledged at once", 0, []bool{false}, "[release]"},
		{"two failed writes", 2, []bool{false, true, true}, "[release acquire]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRecorder(t)
			r.failures = tc.failures
			slot := &slotLog{held: true}
			var held []bool
			r.onPublish = func(context.Context) { held = append(held, slot.held) }
			p := New(Config{PublishRetryMaxInterval: 10 * time.Millisecond}, okProvisioner, r)
			if err := p.handleWith(context.Background(), fromOrders(sample.Message(sample.Order("p", 8, time.Now()))), slot); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(held) != fmt.Sprint(tc.heldAtCall) {
				t.Errorf("slot held at each write: %v, want %v", held, tc.heldAtCall)
			}
			if got := fmt.Sprint(slot.events); got != tc.events {
				t.Errorf("slot events %s, want %s", got, tc.events)
			}
		})
	}
}

// fromOrders sets what the consumer sets on every record it fetched.
func fromOrders(m kafka.Message) kafka.Message {
	m.Topic, m.Partition, m.Offset, m.Time = "orders", 1, 7, time.Now()
	return m
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

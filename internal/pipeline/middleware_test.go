package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/consumer"
	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// stepJob is a job of a valid order, as the handling would leave it.
func stepJob(t *testing.T) *job {
	t.Helper()
	o := sample.Order("mw", 1, time.Now())
	r := &job{msg: fromOrders(sample.Message(o)), slot: (*consumer.Slot)(nil), start: time.Now()}
	r.order = &o
	return r
}

func TestRecoverPanicMakesAFault(t *testing.T) {
	p := New(Config{}, okProvisioner, newRecorder(t))
	h := p.recoverPanic(func(context.Context, *job) (answer, error) { panic("boom") })
	_, err := h(context.Background(), stepJob(t))
	f, ok := schemas.FaultOf(err)
	if !ok || f.Reason != schemas.ReasonHandlerPanic || f.Step != schemas.StepHandle || f.Class != schemas.ErrorClassPermanent || f.Message != "handler panicked: boom" {
		t.Fatalf("err = %v (fault %+v), want the panic as a permanent handler_panic fault", err, f)
	}
	// No panic: the answer passes untouched.
	want := answer{outcome: &schemas.Outcome{OrderID: "x"}}
	h = p.recoverPanic(func(context.Context, *job) (answer, error) { return want, nil })
	if got, err := h(context.Background(), stepJob(t)); err != nil || got.outcome != want.outcome {
		t.Errorf("got %+v, %v", got, err)
	}
}

func TestDeadLetterAnswersFaults(t *testing.T) {
	p := New(Config{ConsumerGroup: "g"}, okProvisioner, newRecorder(t))
	for _, tc := range []struct {
		name    string
		err     error
		dead    bool
		outcome bool
		pause   bool
	}{
		{"workflow failure", &provisioning.Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonAPIRejected, Step: schemas.StepProvision, Attempts: 2, Message: "no"}, true, true, false},
		{"invalid record without an order id", &schemas.InvalidOrderError{Reason: schemas.ReasonInvalidJSON, Detail: "bad"}, true, false, false},
		{"configuration fault", &provisioning.Error{Class: schemas.ErrorClassConfigFault, Step: schemas.StepPrecheck, Message: "401"}, false, false, true},
		{"not a record's failure", errors.New("something else"), false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := stepJob(t)
			if _, isInvalid := tc.err.(*schemas.InvalidOrderError); isInvalid {
				r.order = nil
			}
			h := p.deadLetter(func(context.Context, *job) (answer, error) { return answer{}, tc.err })
			a, err := h(context.Background(), r)
			var pe *consumer.PauseError
			if got := errors.As(err, &pe); got != tc.pause {
				t.Errorf("err = %v: paused %v, want %v", err, got, tc.pause)
			}
			if (a.dead != nil) != tc.dead || (a.outcome != nil) != tc.outcome {
				t.Fatalf("answer dead letter %v, outcome %v; want %v, %v", a.dead != nil, a.outcome != nil, tc.dead, tc.outcome)
			}
			if tc.dead && err != nil {
				t.Errorf("a dead-lettered record is finished: err %v", err)
			}
			if !tc.dead && !tc.pause && err != tc.err {
				t.Errorf("err = %v, want the error passed through", err)
			}
			if a.dead != nil {
				if err := schemas.ValidateDeadLetter(*a.dead); err != nil {
					t.Error(err)
				}
			}
			if a.outcome != nil {
				if a.outcome.Status != schemas.StatusFailed || a.outcome.Failure.Reason != schemas.ReasonAPIRejected || a.outcome.Attempts != 2 {
					t.Errorf("outcome %+v", a.outcome)
				}
			}
		})
	}
}

func TestPublishRetriesUntilAcknowledged(t *testing.T) {
	r := newRecorder(t)
	r.failures = 2
	p := New(Config{PublishRetryMaxInterval: 5 * time.Millisecond}, okProvisioner, r)
	out := &schemas.Outcome{SchemaVersion: 1, EventID: "e", OrderID: "o", Status: schemas.StatusProvisioned}
	h := p.publish(func(context.Context, *job) (answer, error) { return answer{outcome: out}, nil })
	if _, err := h(context.Background(), stepJob(t)); err != nil {
		t.Fatal(err)
	}
	if r.calls != 3 || len(r.byTopic("out")) != 1 {
		t.Errorf("%d publish calls, %d outcomes written; want 3 and 1", r.calls, len(r.byTopic("out")))
	}
	// A failure of the handling is not published.
	calls := r.calls
	h = p.publish(func(context.Context, *job) (answer, error) { return answer{}, errors.New("not finished") })
	if _, err := h(context.Background(), stepJob(t)); err == nil || r.calls != calls {
		t.Errorf("err %v, %d more publish calls; want the error and none", err, r.calls-calls)
	}
}

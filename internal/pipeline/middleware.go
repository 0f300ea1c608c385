package pipeline

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/consumer"
	"github.com/acme-sp/wholesale-provisioner/internal/redact"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// Handler works out, and with the steps around it writes, the answer to one
// record. An error leaves the record unfinished: a *schemas.Fault (or an
// error with a Fault) is the record's failure, which the deadLetter step
// answers; any other error is returned to the consumer.
type Handler func(ctx context.Context, r *job) (answer, error)

// Middleware is one cross-cutting step around a Handler, in the shape of
// watermill's handler middleware: a new action adds a Handler, a new
// concern a Middleware, and neither a branch in the other.
type Middleware func(next Handler) Handler

// chain wraps h in the middlewares, the first one outermost.
func chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// recoverPanic turns a panic of the handling into the record's failure: a
// record that crashes the handler would crash every consumer it reaches.
func (p *Pipeline) recoverPanic(next Handler) Handler {
	return func(ctx context.Context, r *job) (a answer, err error) {
		defer func() {
			if v := recover(); v != nil {
				r.logger().Error().Interface("panic", v).Bytes("stack", debug.Stack()).Msg("handler panicked; dead-lettering the record")
				a, err = answer{}, &schemas.Fault{Class: schemas.ErrorClassPermanent, Step: schemas.StepHandle,
					Reason: schemas.ReasonHandlerPanic, Message: fmt.Sprintf("handler panicked: %v", v)}
			}
		}()
		return next(ctx, r)
	}
}

// deadLetter answers a failed record: a dead letter with the failure's
// context, and a failed outcome when its order id is known. A configuration
// fault fails no record: it becomes the consumer's pause. Other errors pass.
func (p *Pipeline) deadLetter(next Handler) Handler {
	return func(ctx context.Context, r *job) (answer, error) {
		a, err := next(ctx, r)
		if err == nil || ctx.Err() != nil {
			return a, err
		}
		f, ok := schemas.FaultOf(err)
		switch {
		case !ok:
			return answer{}, err
		case f.Class == schemas.ErrorClassConfigFault:
			return answer{}, consumer.Pause(err)
		}
		return p.failed(r, f), nil
	}
}

// failed is the answer to a record that failed as f says.
func (p *Pipeline) failed(r *job, f schemas.Fault) answer {
	orderID := r.orderID(&f)
	a := answer{dead: p.deadLetterOf(r, orderID, f)}
	if orderID != "" {
		p.failedOutcome(r, &a, orderID, f)
	}
	return a
}

// failureOf is what a failed outcome says of f.
func failureOf(f schemas.Fault) *schemas.Failure {
	if f.Failure != nil {
		return f.Failure
	}
	return &schemas.Failure{Reason: schemas.ReasonInvalidOrder, Message: f.Message}
}

func (p *Pipeline) failedSubscriberOutcome(r *job, a *answer, orderID string, f schemas.Fault) {
	out := p.outcome(r, orderID, schemas.StatusFailed)
	out.Failure = failureOf(f)
	out.Attempts = f.Attempts
	a.outcome = &out
}

// publish writes the answer, retrying until Kafka acknowledges it or ctx
// ends: the record must not be committed before its answer is durable.
// Waiting for the acknowledgement needs no worker: the slot is given back, so
// that other orders run meanwhile and their outcomes share the write's produce
// request (--publish-linger). A failed write takes a worker again, so that new
// orders wait for the broker instead of calling Webex for outcomes that cannot
// be written.
func (p *Pipeline) publish(next Handler) Handler {
	return func(ctx context.Context, r *job) (answer, error) {
		a, err := next(ctx, r)
		if err != nil {
			return a, err
		}
		msgs, err := p.records(r, a)
		if err != nil {
			return a, err
		}
		r.slot.Release()
		// Nearly every write succeeds at once: the backoff is made only after one fails.
		if err = p.pub.Publish(ctx, msgs...); err != nil {
			err = p.retryPublish(ctx, r, msgs, err)
		}
		if err == nil && p.cfg.Outages != nil {
			p.cfg.Outages.Recovered()
		}
		return a, err
	}
}

// retryPublish writes msgs again after a first failed write, with backoff,
// until they are written or ctx ends.
func (p *Pipeline) retryPublish(ctx context.Context, r *job, msgs []kafka.Message, first error) error {
	b := backoff.WithContext(backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(min(100*time.Millisecond, p.cfg.PublishRetryMaxInterval)),
		backoff.WithMaxInterval(p.cfg.PublishRetryMaxInterval),
		backoff.WithMaxElapsedTime(0),
	), ctx)
	held := 1
	failed := func(err error, wait time.Duration) {
		if p.cfg.Outages != nil {
			p.cfg.Outages.Failed(err, held)
			held = 0
		} else {
			r.logger().Error().Err(err).Dur("retry_in_ms", wait).Msg("writing the order's outcome failed; the order stays uncommitted")
		}
		// A cancelled ctx ends the retries on the next attempt.
		_ = r.slot.Acquire(ctx)
	}
	// The first attempt is the write that failed: the retries start with its
	// notice and its wait, as if they had made it.
	attempt := 0
	return backoff.RetryNotify(func() error {
		if attempt++; attempt == 1 {
			return first
		}
		return p.pub.Publish(ctx, msgs...)
	}, b, failed)
}

// records builds the Kafka records of an answer: the dead letter first.
func (p *Pipeline) records(r *job, a answer) ([]kafka.Message, error) {
	msgs := make([]kafka.Message, 0, 2)
	if a.dead != nil {
		m, err := p.pub.DeadLetter(r.msg, *a.dead)
		if err != nil {
			return nil, fmt.Errorf("building dead letter: %w", err)
		}
		msgs = append(msgs, m)
	}
	if a.followUp != nil {
		// Before the outcome: a pending outcome whose follow-up was lost
		// would never get its final one.
		m, err := p.pub.FollowUp(a.followUp.OrderID, r.msg.Partition, a.followUp)
		if err != nil {
			return nil, fmt.Errorf("building follow-up record: %w", err)
		}
		msgs = append(msgs, m)
	}
	if a.outcome != nil {
		m, err := p.pub.Outcome(r.msg.Key, *a.outcome)
		if err != nil {
			return nil, fmt.Errorf("building outcome: %w", err)
		}
		msgs = append(msgs, m)
	}
	if a.customerOutcome != nil {
		m, err := p.pub.CustomerOutcome(r.msg.Key, *a.customerOutcome)
		if err != nil {
			return nil, fmt.Errorf("building customer outcome: %w", err)
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// report tells of a published answer: the order's line, the observer, and
// the remembered order ids that catch an id reused for other content.
func (p *Pipeline) report(next Handler) Handler {
	return func(ctx context.Context, r *job) (answer, error) {
		a, err := next(ctx, r)
		if err != nil {
			return a, err
		}
		if id := r.decodedID(); id != "" && a.status() != "" && a.status() != schemas.StatusFailed {
			p.seen.add(id, r.digest)
		}
		p.logFinished(r, a, p.cfg.Now().Sub(r.start))
		if p.cfg.Observer != nil {
			var reason, dead string
			status := string(a.status())
			if f := a.failure(); f != nil {
				reason = string(f.Reason)
			}
			if a.dead != nil {
				dead = a.dead.Reason
				if reason == "" {
					reason = a.dead.Reason
				}
			}
			p.cfg.Observer.Finished(status, reason, dead)
		}
		return a, nil
	}
}

func (p *Pipeline) logFinished(r *job, a answer, took time.Duration) {
	ev := r.logger().Info()
	if st := a.status(); st != "" {
		ev = ev.Str("outcome", string(st))
	}
	if f := a.failure(); f != nil {
		ev = ev.Str("reason", string(f.Reason))
		if f.CustomerOrderID != "" {
			ev = ev.Str("customer_order_id", f.CustomerOrderID)
		}
	}
	if co := a.customerOutcome; co != nil {
		ev = ev.Int("attempts", co.Attempts)
		if c := co.Customer; c != nil {
			ev = ev.Str("customer_id", c.ID).Str("webex_status", c.WebexStatus).Bool("found_by_lookup", c.FoundByLookup)
		}
	}
	if a.outcome != nil {
		ev = ev.Int("attempts", a.outcome.Attempts)
		if a.outcome.Subscriber != nil {
			ev = ev.Str("subscriber_id", a.outcome.Subscriber.ID).Bool("already_existed", a.outcome.Subscriber.AlreadyExisted).
				Bool("found_by_lookup", a.outcome.Subscriber.FoundByLookup)
		}
		if pc := a.outcome.Precheck; pc != nil && len(pc.Info) > 0 {
			// The first code says it all nearly always; the outcome has them all.
			ev = ev.Int("precheck_info_code", pc.Info[0].Code).Str("precheck_info", pc.Info[0].Description)
		}
	}
	if a.dead != nil {
		ev = ev.Bool("dead_lettered", true).Str("dlq_reason", a.dead.Reason).Str("error", redact.Text(a.dead.Message))
		if r.decodedID() == "" && a.dead.OrderID != "" {
			ev = ev.Str("order_id", a.dead.OrderID)
		}
	}
	ev.Dur("took_ms", took).Msg("order finished")
}

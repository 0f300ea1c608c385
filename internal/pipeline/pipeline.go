// Package pipeline turns one order record into its final answer: an outcome event,
// plus a dead-letter record when the order failed, both acknowledged by Kafka
// before the record is reported finished (and so before its offset is committed).
package pipeline

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"
	fastjson "github.com/segmentio/encoding/json"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/consumer"
	"github.com/acme-sp/wholesale-provisioner/internal/redact"
	"github.com/acme-sp/wholesale-provisioner/internal/strictjson"
	"github.com/acme-sp/wholesale-provisioner/internal/yield"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// Provisioner runs the Webex workflow of one order.
type Provisioner interface {
	Provision(ctx context.Context, o schemas.Order) (provisioning.Result, error)
}

// Publisher builds and durably writes outcome and dead-letter records.
type Publisher interface {
	Outcome(key []byte, o schemas.Outcome) (kafka.Message, error)
	DeadLetter(orig kafka.Message, d schemas.DeadLetter) (kafka.Message, error)
	Publish(ctx context.Context, msgs ...kafka.Message) error
}

// Dead-letter reasons that are not an order's failure reason or a decoding reason.
const (
	ReasonRecordTooLarge    = "record_too_large"
	ReasonUnsupportedAction = "unsupported_action"
	ReasonPanic             = "handler_panic"
	// ReasonDuplicateOrderID: the order id was already used, by this instance
	// recently, for an order with other content.
	ReasonDuplicateOrderID = "duplicate_order_id"
)

// Error classes of dead-letter records.
const (
	ClassInvalidInput = "invalid_input"
	ClassPermanent    = "permanent"
	ClassTransient    = "transient"
)

// Config configures a Pipeline. The zero value of each optional field selects the
// default given in its comment.
type Config struct {
	// ConsumerGroup is recorded in dead letters.
	ConsumerGroup string
	// MaxRecordBytes is the largest order value accepted; larger ones are
	// dead-lettered unread. Default 256 KiB.
	MaxRecordBytes int
	// PublishRetryMaxInterval caps the wait between attempts to publish a record's
	// answer. Publishing is retried until it succeeds or the context ends. Default 10s.
	PublishRetryMaxInterval time.Duration
	// RememberOrders is how many recently answered order ids are remembered to
	// catch an order id reused for different content. Default 20000; negative
	// disables the check.
	RememberOrders int
	// Observer is told of every answered record (for metrics). Default: none.
	Observer Observer
	// Logger receives one line per finished order. Default: a disabled logger.
	Logger *zerolog.Logger
	// Now tells the time. Default time.Now.
	Now func() time.Time
}

// Observer is told of every answered record: its outcome status ("" when no
// outcome was written), the failure reason if any, and the dead-letter reason
// ("" when none). It must be quick and safe for concurrent use.
type Observer interface {
	Finished(outcome, reason, deadLetterReason string)
}

// Pipeline is a consumer.Handler for the orders topic. It is safe for concurrent use.
type Pipeline struct {
	cfg  Config
	wf   Provisioner
	pub  Publisher
	log  zerolog.Logger
	seen *seenOrders
}

// New returns a Pipeline.
func New(cfg Config, wf Provisioner, pub Publisher) *Pipeline {
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = 256 << 10
	}
	if cfg.PublishRetryMaxInterval <= 0 {
		cfg.PublishRetryMaxInterval = 10 * time.Second
	}
	if cfg.Logger == nil {
		l := zerolog.Nop()
		cfg.Logger = &l
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RememberOrders == 0 {
		cfg.RememberOrders = 20000
	}
	return &Pipeline{cfg: cfg, wf: wf, pub: pub, log: *cfg.Logger, seen: newSeenOrders(cfg.RememberOrders)}
}

// answer is what one record produced: an outcome, a dead letter, or both.
type answer struct {
	outcome *schemas.Outcome
	dead    *schemas.DeadLetter
}

// job is one record being handled and what is known of it so far.
type job struct {
	msg   kafka.Message
	order *schemas.Order // set once the value decoded into a valid order
	// digest identifies the order's content (its canonical JSON, or the raw
	// bytes of an invalid record), and replay counts the dead-letter replays
	// that brought it back: together with the order id they make the event id.
	digest   [sha256.Size]byte
	digested bool
	replay   int
	log      zerolog.Logger
}

// contentDigest is the order's digest, or, for a record that is not a valid
// order, the digest of its raw bytes (computed only then: most records are valid).
func (r *job) contentDigest() [sha256.Size]byte {
	if !r.digested {
		r.digest, r.digested = sha256.Sum256(r.msg.Value), true
	}
	return r.digest
}

// Handle processes one record. It returns nil once the record's answer is
// acknowledged; it returns an error, and the record stays uncommitted, when ctx
// ends or when the Webex API is in a configuration fault.
func (p *Pipeline) Handle(ctx context.Context, msg kafka.Message) (err error) {
	start := p.cfg.Now()
	r := &job{msg: msg, replay: ReplayCount(msg),
		log: p.log.With().Str("topic", msg.Topic).Int("partition", msg.Partition).Int64("offset", msg.Offset).
			Str("key", redact.Text(string(msg.Key))).Logger()}

	var a answer
	func() {
		defer func() {
			if v := recover(); v != nil {
				// A record that crashes the handler would crash every consumer it
				// reaches: dead-letter it instead.
				r.log.Error().Interface("panic", v).Bytes("stack", debug.Stack()).Msg("handler panicked; dead-lettering the record")
				a, err = p.panicked(r, v), nil
			}
		}()
		a, err = p.decide(ctx, r)
	}()
	if err != nil {
		return err
	}
	// Waiting for the write's acknowledgement needs no worker: give the slot
	// back, so that other orders run meanwhile and their outcomes share the
	// write's produce request (--publish-linger). publish takes a worker again
	// if the write fails.
	yield.Release(ctx)
	if err := p.publish(ctx, r, a); err != nil {
		return err
	}
	if a.outcome != nil && r.order != nil && a.outcome.Status != schemas.StatusFailed {
		p.seen.add(r.order.OrderID, r.digest)
	}
	p.logFinished(r, a, p.cfg.Now().Sub(start))
	if p.cfg.Observer != nil {
		var status, reason, dead string
		if a.outcome != nil {
			status = string(a.outcome.Status)
			if a.outcome.Failure != nil {
				reason = string(a.outcome.Failure.Reason)
			}
		}
		if a.dead != nil {
			dead = a.dead.Reason
			if reason == "" {
				reason = a.dead.Reason
			}
		}
		p.cfg.Observer.Finished(status, reason, dead)
	}
	return nil
}

// decide works out the answer to one record. It sets r.order as soon as the
// record is decoded, so that a later panic can still name the order.
func (p *Pipeline) decide(ctx context.Context, r *job) (answer, error) {
	if len(r.msg.Value) > p.cfg.MaxRecordBytes {
		return p.invalid(r, "", ReasonRecordTooLarge, ClassInvalidInput, "decode",
			fmt.Sprintf("record value of %d bytes exceeds the limit of %d bytes", len(r.msg.Value), p.cfg.MaxRecordBytes)), nil
	}
	o, err := schemas.DecodeOrder(r.msg.Value)
	if err != nil {
		var ie *schemas.InvalidOrderError
		if !errors.As(err, &ie) {
			return answer{}, fmt.Errorf("decoding order: %w", err)
		}
		return p.invalid(r, ie.OrderID, ie.Reason, ClassInvalidInput, "validate", ie.Detail), nil
	}
	r.order = &o
	r.digest, r.digested = orderDigest(o), true
	r.log = r.log.With().Str("order_id", o.OrderID).Str("customer_id", o.CustomerID).Str("email", redact.Email(o.Email)).Logger()
	if p.seen.conflicts(o.OrderID, r.digest) {
		return p.invalid(r, o.OrderID, ReasonDuplicateOrderID, ClassInvalidInput, "validate",
			"order id "+o.OrderID+" was already used for an order with different content; send changes under a new order id"), nil
	}
	if o.Action != schemas.ActionProvision {
		return p.invalid(r, o.OrderID, ReasonUnsupportedAction, ClassPermanent, "validate",
			fmt.Sprintf("action %q is not supported by this version of the provisioner", o.Action)), nil
	}
	res, err := p.wf.Provision(r.log.WithContext(ctx), o)
	if err != nil {
		var we *provisioning.Error
		if !errors.As(err, &we) || we.Class == provisioning.ConfigFault {
			// Not this order's fault, or the context ended: leave it uncommitted.
			return answer{}, err
		}
		return p.failed(r, we), nil
	}
	out := p.outcome(r, o.OrderID, res.Status)
	out.Attempts = res.Attempts
	out.Subscriber = &schemas.SubscriberRef{
		ID:             res.Subscriber.ID,
		PersonID:       res.Subscriber.PersonID,
		WebexStatus:    res.Subscriber.Status,
		Packages:       res.Subscriber.Packages,
		AlreadyExisted: res.AlreadyExisted,
		FoundByLookup:  res.FoundByLookup,
	}
	out.Precheck = precheckOf(res.Precheck)
	return answer{outcome: &out}, nil
}

// precheckOf is what the outcome says of a passed precheck.
func precheckOf(p *provisioning.PrecheckResponse) *schemas.Precheck {
	if p == nil {
		return nil
	}
	pc := &schemas.Precheck{Message: p.Message}
	for _, in := range p.Info {
		pc.Info = append(pc.Info, schemas.PrecheckInfo{Code: in.InfoCode, Description: in.Description})
	}
	return pc
}

// invalid answers a record that is not a processable order.
func (p *Pipeline) invalid(r *job, orderID, reason, class, step, detail string) answer {
	a := answer{dead: p.deadLetter(r, orderID, reason, class, step, detail, 1, nil)}
	if orderID != "" {
		out := p.outcome(r, orderID, schemas.StatusFailed)
		out.Failure = &schemas.Failure{Reason: schemas.ReasonInvalidOrder, Message: detail}
		a.outcome = &out
	}
	return a
}

// failed answers an order the workflow could not complete.
func (p *Pipeline) failed(r *job, we *provisioning.Error) answer {
	f := &schemas.Failure{Reason: we.Reason, Message: we.Error()}
	for _, e := range we.Errors {
		f.Errors = append(f.Errors, schemas.APIError{Code: e.ErrorCode, Description: e.Description})
	}
	if api := we.API(); api != nil {
		f.HTTPStatus = api.StatusCode
		f.TrackingID = api.TrackingID
		for _, e := range api.Errors {
			f.Errors = append(f.Errors, schemas.APIError{Code: e.ErrorCode, Description: e.Description})
		}
	}
	out := p.outcome(r, r.order.OrderID, schemas.StatusFailed)
	out.Failure = f
	out.Attempts = we.Attempts
	class := ClassPermanent
	if we.Class == provisioning.Transient {
		class = ClassTransient
	}
	dl := p.deadLetter(r, r.order.OrderID, string(we.Reason), class, string(we.Step), f.Message, we.Attempts, f)
	return answer{outcome: &out, dead: dl}
}

func (p *Pipeline) panicked(r *job, v any) answer {
	orderID := ""
	if r.order != nil {
		orderID = r.order.OrderID
	}
	return p.invalid(r, orderID, ReasonPanic, ClassPermanent, "handle", fmt.Sprintf("handler panicked: %v", v))
}

func (p *Pipeline) outcome(r *job, orderID string, status schemas.OutcomeStatus) schemas.Outcome {
	out := schemas.Outcome{
		SchemaVersion: 1,
		EventID:       EventID(orderID, r.contentDigest(), r.replay),
		OrderID:       orderID,
		Status:        status,
		ProcessedAt:   p.cfg.Now().UTC(),
	}
	if o := r.order; o != nil {
		out.Action = o.Action
		out.CustomerID = o.CustomerID
		out.Email = o.Email
		t := o.OccurredAt
		out.OrderOccurredAt = &t
	}
	return out
}

func (p *Pipeline) deadLetter(r *job, orderID, reason, class, step, message string, attempts int, f *schemas.Failure) *schemas.DeadLetter {
	msg := r.msg
	hs := make([]schemas.Header, 0, len(msg.Headers))
	for _, h := range msg.Headers {
		hs = append(hs, schemas.Header{Key: h.Key, Value: schemas.NewBytes(h.Value)})
	}
	return &schemas.DeadLetter{
		SchemaVersion: 1,
		Reason:        reason,
		ErrorClass:    class,
		Message:       message,
		Step:          step,
		Attempts:      attempts,
		OrderID:       orderID,
		Failure:       f,
		FailedAt:      p.cfg.Now().UTC(),
		ConsumerGroup: p.cfg.ConsumerGroup,
		Source: schemas.Source{
			Topic:     msg.Topic,
			Partition: msg.Partition,
			Offset:    msg.Offset,
			Timestamp: msg.Time.UTC(),
			Key:       schemas.NewBytes(msg.Key),
			Value:     schemas.NewBytes(msg.Value),
			Headers:   hs,
		},
	}
}

// publish writes the answer, retrying until Kafka acknowledges it or ctx ends:
// the record must not be committed before its answer is durable.
func (p *Pipeline) publish(ctx context.Context, r *job, a answer) error {
	msgs := make([]kafka.Message, 0, 2)
	if a.dead != nil {
		m, err := p.pub.DeadLetter(r.msg, *a.dead)
		if err != nil {
			return fmt.Errorf("building dead letter: %w", err)
		}
		msgs = append(msgs, m)
	}
	if a.outcome != nil {
		m, err := p.pub.Outcome(r.msg.Key, *a.outcome)
		if err != nil {
			return fmt.Errorf("building outcome: %w", err)
		}
		msgs = append(msgs, m)
	}
	b := backoff.WithContext(backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(min(100*time.Millisecond, p.cfg.PublishRetryMaxInterval)),
		backoff.WithMaxInterval(p.cfg.PublishRetryMaxInterval),
		backoff.WithMaxElapsedTime(0),
	), ctx)
	return backoff.RetryNotify(func() error {
		return p.pub.Publish(ctx, msgs...)
	}, b, func(err error, wait time.Duration) {
		r.log.Error().Err(err).Dur("retry_in_ms", wait).Msg("writing the order's outcome failed; the order stays uncommitted")
		// While Kafka refuses writes, hold a worker again: new orders then wait
		// for the broker instead of calling Webex for outcomes that cannot be
		// written. A cancelled ctx ends the retries on the next attempt.
		_ = yield.Acquire(ctx)
	})
}

func (p *Pipeline) logFinished(r *job, a answer, took time.Duration) {
	ev := r.log.Info()
	if a.outcome != nil {
		ev = ev.Str("outcome", string(a.outcome.Status)).Int("attempts", a.outcome.Attempts)
		if a.outcome.Failure != nil {
			ev = ev.Str("reason", string(a.outcome.Failure.Reason))
		}
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
		if r.order == nil && a.dead.OrderID != "" {
			ev = ev.Str("order_id", a.dead.OrderID)
		}
	}
	ev.Dur("took_ms", took).Msg("order finished")
}

// EventID derives an outcome's event id from its order: a name-based UUID
// (version 5 layout over SHA-1) of the order id, the digest of its content and
// its replay count. A redelivered order yields the same id, so consumers of the
// outcomes topic can drop duplicates; a replayed dead letter, or a different
// order that reused the id, yields a new one.
func EventID(orderID string, digest [sha256.Size]byte, replay int) string {
	var in [256]byte
	b := append(in[:0], "wholesale-provisioner/outcome/v1\x00"...)
	b = append(b, orderID...)
	b = append(b, 0)
	b = append(b, digest[:]...)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(replay), 10)
	sum := sha1.Sum(b)
	sum[6] = (sum[6] & 0x0f) | 0x50
	sum[8] = (sum[8] & 0x3f) | 0x80
	var id [36]byte
	hex.Encode(id[0:8], sum[0:4])
	hex.Encode(id[9:13], sum[4:6])
	hex.Encode(id[14:18], sum[6:8])
	hex.Encode(id[19:23], sum[8:10])
	hex.Encode(id[24:36], sum[10:16])
	id[8], id[13], id[18], id[23] = '-', '-', '-', '-'
	return string(id[:])
}

// EventIDOf returns the event id the pipeline gives the outcome of msg.
func EventIDOf(msg kafka.Message) (string, error) {
	o, err := schemas.DecodeOrder(msg.Value)
	if err != nil {
		return "", err
	}
	return EventID(o.OrderID, orderDigest(o), ReplayCount(msg)), nil
}

// orderDigest identifies an order's content independently of its JSON layout
// (field order, spacing): the digest of the decoded order re-encoded. The
// encoding must stay byte for byte what encoding/json.Marshal writes, or event
// ids change across releases: TestEventIDsStayTheSame pins them.
func orderDigest(o schemas.Order) [sha256.Size]byte {
	bp := digestBuffers.Get().(*[]byte)
	defer digestBuffers.Put(bp)
	// The flags are fastjson.Marshal's, which match encoding/json.Marshal.
	b, err := fastjson.Append((*bp)[:0], o, fastjson.EscapeHTML|fastjson.SortMapKeys)
	if err != nil {
		return [sha256.Size]byte{} // cannot happen: a plain struct
	}
	*bp = b
	return sha256.Sum256(b)
}

var digestBuffers = sync.Pool{New: func() any { return new([]byte) }}

// HeaderReplayCount counts how often a dead letter was replayed into the
// orders topic; dlq replay sets it.
const HeaderReplayCount = "replay-count"

// ReplayCount reads the record's replay-count header (0 when absent or unreadable).
func ReplayCount(msg kafka.Message) int {
	for _, h := range msg.Headers {
		if h.Key == HeaderReplayCount {
			if n, err := strconv.Atoi(string(h.Value)); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// OrderKey is the ordering key of an order record: its Kafka key, or, for a
// record published without one, its customerId and email, so that one
// subscriber's orders still run in order. Records with neither are not ordered.
func OrderKey(msg kafka.Message) string {
	if len(msg.Key) > 0 {
		return string(msg.Key)
	}
	// Bounded like the order's own decoding: this runs as the record is
	// fetched, before its size is checked.
	doc, err := strictjson.Parse(msg.Value, schemas.OrderLimits)
	obj, _ := doc.(map[string]any)
	customer, _ := obj["customerId"].(string)
	email, _ := obj["email"].(string)
	if err == nil && customer != "" && email != "" {
		return customer + "/" + strings.ToLower(email)
	}
	return consumer.DefaultKey(msg)
}

// Package pipeline turns one order record into its final answer: an outcome event,
// plus a dead-letter record when the order failed, both acknowledged by Kafka
// before the record is reported finished (and so before its offset is committed).
package pipeline

import (
	"context"
	"crypto/sha256"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/consumer"
	"github.com/acme-sp/wholesale-provisioner/internal/redact"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// Workflow carries out one order on Webex, waiting through wait.
type Workflow interface {
	Run(ctx context.Context, o schemas.Order, wait provisioning.Wait) (provisioning.Result, error)
}

// Publisher builds and durably writes outcome and dead-letter records.
type Publisher interface {
	Outcome(key []byte, o schemas.Outcome) (kafka.Message, error)
	DeadLetter(orig kafka.Message, d schemas.DeadLetter) (kafka.Message, error)
	// FollowUp builds the follow-up record of an order (nil f: its tombstone)
	// for the given partition of the follow-up topic.
	FollowUp(orderID string, partition int, f *schemas.FollowUp) (kafka.Message, error)
	Publish(ctx context.Context, msgs ...kafka.Message) error
}

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
	// FollowUp is the follow-up of orders left pending on their end user.
	FollowUp FollowUpConfig
	// Observer is told of every answered record (for metrics). Default: none.
	Observer Observer
	// Logger receives one line per finished order. Default: a disabled logger.
	Logger *zerolog.Logger
	// Now tells the time. Default time.Now.
	Now func() time.Time
}

// DefaultConfig returns the defaults of the optional settings, the values
// the zero fields take.
func DefaultConfig() Config {
	return Config{MaxRecordBytes: 256 << 10, PublishRetryMaxInterval: 10 * time.Second, RememberOrders: 20000, FollowUp: DefaultFollowUpConfig()}
}

func (c *Config) setDefaults() {
	d := DefaultConfig()
	if c.MaxRecordBytes <= 0 {
		c.MaxRecordBytes = d.MaxRecordBytes
	}
	if c.PublishRetryMaxInterval <= 0 {
		c.PublishRetryMaxInterval = d.PublishRetryMaxInterval
	}
	if c.Logger == nil {
		l := zerolog.Nop()
		c.Logger = &l
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.RememberOrders == 0 {
		c.RememberOrders = d.RememberOrders
	}
	c.FollowUp.setDefaults()
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
	wf   Workflow
	pub  Publisher
	log  zerolog.Logger
	seen *seenOrders
	// run is the order's handling inside its cross-cutting steps.
	run Handler
	// follower follows the orders left pending; nil when none does (tests).
	follower *Follower
}

// New returns a Pipeline.
func New(cfg Config, wf Workflow, pub Publisher) *Pipeline {
	cfg.setDefaults()
	p := &Pipeline{cfg: cfg, wf: wf, pub: pub, log: *cfg.Logger, seen: newSeenOrders(cfg.RememberOrders)}
	// Outermost first: the answer is reported once it is published; a failure
	// becomes a dead letter before that; a panic becomes a failure.
	p.run = chain(p.handle, p.report, p.publish, p.deadLetter, p.recoverPanic)
	return p
}

// answer is what one record produced: an outcome, a dead letter, or both;
// and, for an order left pending on its end user, the record that has its
// subscriber followed to the end (followup.go).
type answer struct {
	outcome  *schemas.Outcome
	dead     *schemas.DeadLetter
	followUp *schemas.FollowUp
}

// workerSlot is the consumer's worker slot of one record (consumer.Slot),
// given back while the record waits for something other than work.
type workerSlot interface {
	Release()
	Acquire(ctx context.Context) error
}

// job is one record being handled and what is known of it so far.
type job struct {
	msg   kafka.Message
	slot  workerSlot
	start time.Time
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

// orderID is the id of the record's order: the decoded order's, or the one a
// failure could read from an invalid record.
func (r *job) orderID(f *schemas.Fault) string {
	if r.order != nil {
		return r.order.OrderID
	}
	if f != nil {
		return f.OrderID
	}
	return ""
}

// Handle processes one record. It returns nil once the record's answer is
// acknowledged; it returns an error, and the record stays uncommitted, when ctx
// ends or when the Webex API is in a configuration fault (a *consumer.PauseError).
func (p *Pipeline) Handle(ctx context.Context, msg kafka.Message, slot *consumer.Slot) error {
	return p.handleWith(ctx, msg, slot)
}

var _ consumer.Handler = (*Pipeline)(nil)

func (p *Pipeline) handleWith(ctx context.Context, msg kafka.Message, slot workerSlot) error {
	r := &job{msg: msg, slot: slot, start: p.cfg.Now(), replay: ReplayCount(msg),
		log: p.log.With().Str("topic", msg.Topic).Int("partition", msg.Partition).Int64("offset", msg.Offset).
			Str("key", redact.Text(string(msg.Key))).Logger()}
	_, err := p.run(ctx, r)
	return err
}

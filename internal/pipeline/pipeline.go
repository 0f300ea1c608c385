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

// CustomerWorkflow carries out one customer order on Webex, waiting through wait.
type CustomerWorkflow interface {
	RunCustomer(ctx context.Context, o schemas.CustomerOrder, wait provisioning.Wait) (provisioning.CustomerResult, error)
}

// Publisher builds and durably writes outcome and dead-letter records.
type Publisher interface {
	Outcome(key []byte, o schemas.Outcome) (kafka.Message, error)
	CustomerOutcome(key []byte, o schemas.CustomerOutcome) (kafka.Message, error)
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
	// Outages is told when writing to Kafka fails and when it works again,
	// so that an outage is a few log lines, not one per order and attempt.
	// Default: every failed write logged on its order's line.
	Outages Outages
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

// Outages is told of failed and successful writes to Kafka (see
// outage.Tracker); held is the number of orders a failure makes wait.
type Outages interface {
	Failed(err error, held int)
	Recovered()
}

// Observer is told of every answered record: its outcome status ("" when no
// outcome was written), the failure reason if any, and the dead-letter reason
// ("" when none). It must be quick and safe for concurrent use.
type Observer interface {
	Finished(outcome, reason, deadLetterReason string)
}

// Pipeline is a consumer.Handler for the orders topic, or for the customer
// orders topic. It is safe for concurrent use.
type Pipeline struct {
	cfg  Config
	wf   Workflow
	cwf  CustomerWorkflow
	pub  Publisher
	log  zerolog.Logger
	seen *seenOrders
	// run is the order's handling inside its cross-cutting steps.
	run Handler
	// failedOutcome sets the failed outcome of an order in a.
	failedOutcome func(r *job, a *answer, orderID string, f schemas.Fault)
	// follower follows the orders left pending; nil when none does (tests).
	follower *Follower
}

// New returns a Pipeline for subscriber orders.
func New(cfg Config, wf Workflow, pub Publisher) *Pipeline {
	p := newPipeline(cfg, pub)
	p.wf = wf
	p.failedOutcome = p.failedSubscriberOutcome
	p.run = p.chain(p.handle)
	return p
}

// NewCustomers returns a Pipeline for customer orders: the same steps
// around another handler, with customer outcomes.
func NewCustomers(cfg Config, wf CustomerWorkflow, pub Publisher) *Pipeline {
	p := newPipeline(cfg, pub)
	p.cwf = wf
	p.failedOutcome = p.failedCustomerOutcome
	p.run = p.chain(p.handleCustomer)
	return p
}

func newPipeline(cfg Config, pub Publisher) *Pipeline {
	cfg.setDefaults()
	return &Pipeline{cfg: cfg, pub: pub, log: *cfg.Logger, seen: newSeenOrders(cfg.RememberOrders)}
}

// chain puts h inside the cross-cutting steps. Outermost first: the answer
// is reported once it is published; a failure becomes a dead letter before
// that; a panic becomes a failure.
func (p *Pipeline) chain(h Handler) Handler {
	return chain(h, p.report, p.publish, p.deadLetter, p.recoverPanic)
}

// answer is what one record produced: an outcome, a dead letter, or both;
// and, for an order left pending on its end user, the record that has its
// subscriber followed to the end (followup.go).
type answer struct {
	outcome         *schemas.Outcome
	customerOutcome *schemas.CustomerOutcome
	dead            *schemas.DeadLetter
	followUp        *schemas.FollowUp
}

// status is the answer's outcome status, "" when it has no outcome.
func (a answer) status() schemas.OutcomeStatus {
	switch {
	case a.outcome != nil:
		return a.outcome.Status
	case a.customerOutcome != nil:
		return a.customerOutcome.Status
	}
	return ""
}

// failure is the answer's outcome failure, nil when none.
func (a answer) failure() *schemas.Failure {
	switch {
	case a.outcome != nil:
		return a.outcome.Failure
	case a.customerOutcome != nil:
		return a.customerOutcome.Failure
	}
	return nil
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
	// order, or customer for a customer order, is set once the value
	// decoded into a valid order.
	order    *schemas.Order
	customer *schemas.CustomerOrder
	// digest identifies the order's content (its canonical JSON, or the raw
	// bytes of an invalid record), and replay counts the dead-letter replays
	// that brought it back: together with the order id they make the event id.
	digest   [sha256.Size]byte
	digested bool
	replay   int
	// parent is the pipeline's logger; log, the record's, is built from it at
	// its first use (see logger).
	parent   *zerolog.Logger
	log      zerolog.Logger
	logBuilt bool
}

// logger returns the record's logger: the record's place and, once decoded,
// its order. It is built at its first use, which for most records comes
// after the decoding, so that a record costs one child logger (a 500-byte
// buffer each) instead of one per step.
func (r *job) logger() *zerolog.Logger {
	if !r.logBuilt {
		if r.parent == nil {
			r.log = zerolog.Nop()
		} else {
			c := r.parent.With().Str("topic", r.msg.Topic).Int("partition", r.msg.Partition).Int64("offset", r.msg.Offset).
				Str("key", redact.Text(string(r.msg.Key)))
			r.log = r.orderFields(c).Logger()
		}
		r.logBuilt = true
	}
	return &r.log
}

// decoded adds the order's fields to a logger built before the order was
// decoded, which is rare: a later first use adds them itself.
func (r *job) decoded() {
	if r.logBuilt && r.parent != nil {
		r.log = r.orderFields(r.log.With()).Logger()
	}
}

// orderFields adds the decoded order's identity to c: its id and the masked
// subscriber (or customer) on every line of an order.
func (r *job) orderFields(c zerolog.Context) zerolog.Context {
	switch o := r.order; {
	case o != nil:
		c = c.Str("order_id", o.OrderID).Str("email", redact.Email(o.Email))
		if o.CustomerID != "" {
			return c.Str("customer_id", o.CustomerID)
		}
		return c.Str("customer_external_id", o.CustomerExternalID)
	case r.customer != nil:
		c = c.Str("order_id", r.customer.OrderID).Str("customer_external_id", r.customer.ExternalID)
		if ci := r.customer.CustomerInfo; ci != nil {
			c = c.Str("customer_email", redact.Email(ci.PrimaryEmail))
		}
	}
	return c
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
	if id := r.decodedID(); id != "" {
		return id
	}
	if f != nil {
		return f.OrderID
	}
	return ""
}

// decodedID is the order id of a record that decoded into a valid order, "" otherwise.
func (r *job) decodedID() string {
	switch {
	case r.order != nil:
		return r.order.OrderID
	case r.customer != nil:
		return r.customer.OrderID
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
	r := &job{msg: msg, slot: slot, start: p.cfg.Now(), replay: ReplayCount(msg), parent: &p.log}
	_, err := p.run(ctx, r)
	return err
}

// Package producer writes the provisioner's records to Kafka: outcome events and
// dead-letter records, each acknowledged by all in-sync replicas before Publish returns.
package producer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// Header names of the records this package writes. The dead-letter context headers
// follow the convention of Spring Kafka's dead-letter publisher (original topic,
// partition, offset, timestamp, consumer group, error class and message).
const (
	HeaderContentType = "content-type"
	HeaderSchema      = "schema"
	HeaderEventID     = "event-id"
	HeaderOrderID     = "order-id"
	HeaderOutcome     = "outcome-status"

	// CloudEvents' Kafka protocol binding, binary content mode: the event's
	// attributes as ce_ headers, its data the record value (content-type
	// above is its datacontenttype).
	HeaderCESpecVersion = "ce_specversion"
	HeaderCEID          = "ce_id"
	HeaderCESource      = "ce_source"
	HeaderCEType        = "ce_type"
	HeaderCESubject     = "ce_subject"
	HeaderCETime        = "ce_time"

	HeaderDLTPrefix        = "dlt-"
	HeaderDLTTopic         = "dlt-original-topic"
	HeaderDLTPartition     = "dlt-original-partition"
	HeaderDLTOffset        = "dlt-original-offset"
	HeaderDLTTimestamp     = "dlt-original-timestamp"
	HeaderDLTConsumerGroup = "dlt-original-consumer-group"
	HeaderDLTErrorClass    = "dlt-error-class"
	HeaderDLTErrorMessage  = "dlt-error-message"
	HeaderDLTReason        = "dlt-reason"
	HeaderDLTStep          = "dlt-error-step"
	HeaderDLTAttempts      = "dlt-attempts"
	HeaderDLTFailedAt      = "dlt-failed-at"
)

// Config configures a Writer. The zero value of each optional field selects the
// default given in its comment.
type Config struct {
	// Brokers are the bootstrap addresses. Required.
	Brokers []string
	// OutcomesTopic receives outcome events. Required.
	OutcomesTopic string
	// DeadLetterTopic receives dead-letter records. Required.
	DeadLetterTopic string
	// FollowUpsTopic receives follow-up records, each on the partition it
	// names. Default: none (building a follow-up record fails).
	FollowUpsTopic string
	// CustomerOutcomesTopic receives customer outcome events. Default:
	// none (building a customer outcome fails).
	CustomerOutcomesTopic string
	// Source is the CloudEvents source of the outcome events. Default
	// DefaultSource.
	Source string
	// Transport carries the requests (TLS, SASL). Default kafka.DefaultTransport.
	Transport kafka.RoundTripper
	// BatchTimeout is how long a write waits for others to share its batch
	// (one produce request per partition). Default DefaultBatchTimeout. Writes
	// are synchronous: a caller that holds a worker while it waits wants it short.
	BatchTimeout time.Duration
	// WriteTimeout bounds one write to a broker. Default 10s.
	WriteTimeout time.Duration
	// BatchSize caps the records of one produce request to one partition.
	// Default 20: kafka-go allocates room for BatchSize records with every
	// batch, and outcomes spread over the topic's partitions make batches
	// small, so kafka-go's default of 100 mostly allocates memory to clear.
	BatchSize int
}

// DefaultSource is the CloudEvents source of outcome events: the service, as
// a URI reference.
const DefaultSource = "urn:acme-sp:wholesale-provisioner"

// CETypePrefix prefixes the CloudEvents type of an outcome, which ends with
// its status: com.cisco.webex.wholesale.subscriber.provisioned, say.
const CETypePrefix = "com.cisco.webex.wholesale.subscriber."

// CustomerCETypePrefix is CETypePrefix for customer outcomes:
// com.cisco.webex.wholesale.customer.provisioned, say.
const CustomerCETypePrefix = "com.cisco.webex.wholesale.customer."

// DefaultBatchTimeout suits callers that wait for their write without holding
// a worker, so that the writes of many orders share a produce request.
const DefaultBatchTimeout = 20 * time.Millisecond

// DefaultConfig returns the defaults of the optional settings, the values
// the zero fields take.
func DefaultConfig() Config {
	return Config{BatchTimeout: DefaultBatchTimeout, WriteTimeout: 10 * time.Second, BatchSize: 20, Source: DefaultSource}
}

func (c *Config) setDefaults() {
	d := DefaultConfig()
	if c.BatchTimeout <= 0 {
		c.BatchTimeout = d.BatchTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.BatchSize <= 0 {
		c.BatchSize = d.BatchSize
	}
	if c.Source == "" {
		c.Source = d.Source
	}
}

// Writer publishes outcome and dead-letter records with RequiredAcks=all and the
// Java client's murmur2 partitioner on the record key, so that every record of one
// subscriber lands on one partition, in order. A Writer is safe for concurrent use.
type Writer struct {
	w         *kafka.Writer
	outcomes  string
	dlq       string
	followUps string
	customers string
	source    []byte
}

// NewWriter returns a Writer, or an error naming the setting to fix.
func NewWriter(cfg Config) (*Writer, error) {
	switch {
	case len(cfg.Brokers) == 0:
		return nil, errors.New("no Kafka brokers configured for the writer")
	case cfg.OutcomesTopic == "":
		return nil, errors.New("no outcomes topic configured")
	case cfg.DeadLetterTopic == "":
		return nil, errors.New("no dead-letter topic configured")
	}
	cfg.setDefaults()
	return &Writer{
		outcomes:  cfg.OutcomesTopic,
		dlq:       cfg.DeadLetterTopic,
		followUps: cfg.FollowUpsTopic,
		customers: cfg.CustomerOutcomesTopic,
		source:    []byte(cfg.Source),
		w: &kafka.Writer{
			Addr:         kafka.TCP(cfg.Brokers...),
			Balancer:     balancer{followUps: cfg.FollowUpsTopic, murmur2: kafka.Murmur2Balancer{Consistent: true}},
			RequiredAcks: kafka.RequireAll,
			// One attempt: the caller owns retrying, so retries do not stack.
			MaxAttempts:            1,
			BatchTimeout:           cfg.BatchTimeout,
			BatchSize:              cfg.BatchSize,
			WriteTimeout:           cfg.WriteTimeout,
			ReadTimeout:            cfg.WriteTimeout,
			AllowAutoTopicCreation: false,
			Transport:              cfg.Transport,
		},
	}, nil
}

// Outcome builds the record of an outcome event, keyed like the order.
func (w *Writer) Outcome(key []byte, o schemas.Outcome) (kafka.Message, error) {
	v, err := json.Marshal(o)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encoding outcome: %w", err)
	}
	return w.event(w.outcomes, key, v, outcomeSchema, CETypePrefix, o.EventID, o.OrderID, string(o.Status), o.ProcessedAt), nil
}

// CustomerOutcome builds the record of a customer outcome event, keyed like
// the customer order.
func (w *Writer) CustomerOutcome(key []byte, o schemas.CustomerOutcome) (kafka.Message, error) {
	if w.customers == "" {
		return kafka.Message{}, errors.New("no customer outcomes topic configured")
	}
	v, err := json.Marshal(o)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encoding customer outcome: %w", err)
	}
	return w.event(w.customers, key, v, customerOutcomeSchema, CustomerCETypePrefix, o.EventID, o.OrderID, string(o.Status), o.ProcessedAt), nil
}

// event is the record of one outcome event: a CloudEvent in binary mode,
// keyed like its order (by its order id when the order had no key).
func (w *Writer) event(topic string, key, value, schema []byte, ceType, eventID, orderID, status string, at time.Time) kafka.Message {
	// The varying header values share one buffer (nothing on the way to the
	// wire changes them), and the headers one array: an event costs two
	// allocations for them instead of twelve.
	buf := make([]byte, 0, len(eventID)+len(orderID)+len(ceType)+2*len(status)+len(time.RFC3339Nano)+6)
	field := func(parts ...string) []byte {
		start := len(buf)
		for _, p := range parts {
			buf = append(buf, p...)
		}
		return buf[start:len(buf):len(buf)]
	}
	id, order, outcome, typ := field(eventID), field(orderID), field(status), field(ceType, status)
	start := len(buf)
	buf = at.UTC().AppendFormat(buf, time.RFC3339Nano)
	ts := buf[start:len(buf):len(buf)]
	if key == nil {
		key = order
	}
	return kafka.Message{
		Topic: topic,
		Key:   key,
		Value: value,
		Headers: []kafka.Header{
			{Key: HeaderContentType, Value: contentTypeJSON},
			{Key: HeaderSchema, Value: schema},
			{Key: HeaderEventID, Value: id},
			{Key: HeaderOrderID, Value: order},
			{Key: HeaderOutcome, Value: outcome},
			{Key: HeaderCESpecVersion, Value: ceSpecVersion},
			{Key: HeaderCEID, Value: id},
			{Key: HeaderCESource, Value: w.source},
			{Key: HeaderCEType, Value: typ},
			{Key: HeaderCESubject, Value: order},
			{Key: HeaderCETime, Value: ts},
		},
	}
}

// Header values shared by every record; nothing on the way to the wire
// changes them.
var (
	contentTypeJSON = []byte("application/json")
	outcomeSchema   = []byte("subscriber-outcome/v1")
	// customerOutcomeSchema names the customer outcome's schema.
	customerOutcomeSchema = []byte("customer-outcome/v1")
	ceSpecVersion         = []byte("1.0")
	followUpSchema        = []byte("follow-up/v1")
)

// FollowUp builds the follow-up record of an order for the given partition
// of the follow-up topic, keyed by the order id; nil f builds its tombstone.
func (w *Writer) FollowUp(orderID string, partition int, f *schemas.FollowUp) (kafka.Message, error) {
	if w.followUps == "" {
		return kafka.Message{}, errors.New("no follow-up topic configured")
	}
	m := kafka.Message{Topic: w.followUps, Partition: partition, Key: []byte(orderID)}
	if f == nil {
		return m, nil
	}
	v, err := json.Marshal(f)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encoding follow-up record: %w", err)
	}
	m.Value = v
	m.Headers = []kafka.Header{{Key: HeaderContentType, Value: contentTypeJSON}, {Key: HeaderSchema, Value: followUpSchema}}
	return m, nil
}

// balancer puts a follow-up record on the partition it names (the order's)
// and every other record where the Java client's murmur2 puts its key.
type balancer struct {
	followUps string
	murmur2   kafka.Murmur2Balancer
}

func (b balancer) Balance(msg kafka.Message, partitions ...int) int {
	if msg.Topic == b.followUps && b.followUps != "" {
		return msg.Partition
	}
	return b.murmur2.Balance(msg, partitions...)
}

// DeadLetter builds the dead-letter record of orig: the original key, the
// dead-letter document as value (it holds the original value and headers), and
// the original headers followed by the context headers.
func (w *Writer) DeadLetter(orig kafka.Message, d schemas.DeadLetter) (kafka.Message, error) {
	v, err := json.Marshal(d)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encoding dead letter: %w", err)
	}
	hs := make([]kafka.Header, 0, len(orig.Headers)+12)
	for _, h := range orig.Headers {
		// Context headers of an earlier failure would contradict this one's.
		if !strings.HasPrefix(h.Key, HeaderDLTPrefix) {
			hs = append(hs, h)
		}
	}
	hs = append(hs,
		kafka.Header{Key: HeaderDLTTopic, Value: []byte(orig.Topic)},
		kafka.Header{Key: HeaderDLTPartition, Value: []byte(strconv.Itoa(orig.Partition))},
		kafka.Header{Key: HeaderDLTOffset, Value: []byte(strconv.FormatInt(orig.Offset, 10))},
		kafka.Header{Key: HeaderDLTTimestamp, Value: []byte(strconv.FormatInt(orig.Time.UnixMilli(), 10))},
		kafka.Header{Key: HeaderDLTConsumerGroup, Value: []byte(d.ConsumerGroup)},
		kafka.Header{Key: HeaderDLTErrorClass, Value: []byte(d.ErrorClass)},
		kafka.Header{Key: HeaderDLTErrorMessage, Value: []byte(d.Message)},
		kafka.Header{Key: HeaderDLTReason, Value: []byte(d.Reason)},
		kafka.Header{Key: HeaderDLTStep, Value: []byte(d.Step)},
		kafka.Header{Key: HeaderDLTAttempts, Value: []byte(strconv.Itoa(d.Attempts))},
		kafka.Header{Key: HeaderDLTFailedAt, Value: []byte(d.FailedAt.UTC().Format(time.RFC3339Nano))},
		kafka.Header{Key: HeaderContentType, Value: []byte("application/json")},
	)
	return kafka.Message{Topic: w.dlq, Key: orig.Key, Value: v, Headers: hs}, nil
}

// Publish writes the records and returns once every one is acknowledged by all
// in-sync replicas, or with an error if any is not. It makes one attempt.
func (w *Writer) Publish(ctx context.Context, msgs ...kafka.Message) error {
	if err := w.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("publishing %d records: %w", len(msgs), err)
	}
	return nil
}

// Close flushes and closes the writer.
func (w *Writer) Close() error { return w.w.Close() }

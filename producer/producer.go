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

// DefaultBatchTimeout suits callers that wait for their write without holding
// a worker, so that the writes of many orders share a produce request.
const DefaultBatchTimeout = 20 * time.Millisecond

// DefaultConfig returns the defaults of the optional settings, the values
// the zero fields take.
func DefaultConfig() Config {
	return Config{BatchTimeout: DefaultBatchTimeout, WriteTimeout: 10 * time.Second, BatchSize: 20}
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
}

// Writer publishes outcome and dead-letter records with RequiredAcks=all and the
// Java client's murmur2 partitioner on the record key, so that every record of one
// subscriber lands on one partition, in order. A Writer is safe for concurrent use.
type Writer struct {
	w        *kafka.Writer
	outcomes string
	dlq      string
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
		outcomes: cfg.OutcomesTopic,
		dlq:      cfg.DeadLetterTopic,
		w: &kafka.Writer{
			Addr:         kafka.TCP(cfg.Brokers...),
			Balancer:     kafka.Murmur2Balancer{Consistent: true},
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
	if key == nil {
		key = []byte(o.OrderID)
	}
	return kafka.Message{
		Topic: w.outcomes,
		Key:   key,
		Value: v,
		Headers: []kafka.Header{
			{Key: HeaderContentType, Value: []byte("application/json")},
			{Key: HeaderSchema, Value: []byte("subscriber-outcome/v1")},
			{Key: HeaderEventID, Value: []byte(o.EventID)},
			{Key: HeaderOrderID, Value: []byte(o.OrderID)},
			{Key: HeaderOutcome, Value: []byte(o.Status)},
		},
	}, nil
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

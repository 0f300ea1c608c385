package dlq

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/acme-sp/wholesale-provisioner/producer"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

const (
	ordersTopic = "subscriber-orders"
	dltTopic    = "subscriber-orders-dlt"
)

// newCluster starts an in-process broker with the orders topic (3 partitions)
// and the dead-letter topic (2 partitions), closed when the test ends.
func newCluster(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, ordersTopic), kfake.SeedTopics(2, dltTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// failure describes one dead letter to write: the original record and why it failed.
type failure struct {
	orig    kafka.Message
	reason  string
	class   string
	orderID string
	message string
	// at is the dead-letter record's timestamp (zero: now).
	at time.Time
}

// deadLetterOf builds the dead letter the pipeline would write for orig.
func deadLetterOf(f failure) schemas.DeadLetter {
	hs := make([]schemas.Header, 0, len(f.orig.Headers))
	for _, h := range f.orig.Headers {
		hs = append(hs, schemas.Header{Key: h.Key, Value: schemas.NewBytes(h.Value)})
	}
	failedAt := f.at
	if failedAt.IsZero() {
		failedAt = time.Now()
	}
	return schemas.DeadLetter{
		SchemaVersion: 1,
		Reason:        f.reason,
		ErrorClass:    f.class,
		Message:       f.message,
		Step:          schemas.StepPrecheck,
		Attempts:      4,
		OrderID:       f.orderID,
		FailedAt:      failedAt.UTC(),
		ConsumerGroup: "wholesale-provisioner",
		Source: schemas.Source{
			Topic:     f.orig.Topic,
			Partition: f.orig.Partition,
			Offset:    f.orig.Offset,
			Timestamp: f.orig.Time.UTC(),
			Key:       schemas.NewBytes(f.orig.Key),
			Value:     schemas.NewBytes(f.orig.Value),
			Headers:   hs,
		},
	}
}

// writeDeadLetters writes dead letters with the producer's own builder, in
// order, and returns the records written.
func writeDeadLetters(t *testing.T, brokers []string, dlt string, fs ...failure) []kafka.Message {
	t.Helper()
	w, err := producer.NewWriter(producer.Config{Brokers: brokers, OutcomesTopic: "unused-outcomes", DeadLetterTopic: dlt})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var out []kafka.Message
	for _, f := range fs {
		m, err := w.DeadLetter(f.orig, deadLetterOf(f))
		if err != nil {
			t.Fatal(err)
		}
		m.Time = f.at
		if err := w.Publish(testCtx(t, 20*time.Second), m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// writeRaw writes records to topic as they are.
func writeRaw(t *testing.T, brokers []string, topic string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(testCtx(t, 20*time.Second), msgs...); err != nil {
		t.Fatal(err)
	}
}

// endOffsets returns the end offset of each partition of topic.
func endOffsets(t *testing.T, brokers []string, topic string) map[int]int64 {
	t.Helper()
	c := Conn{Brokers: brokers}
	ctx := testCtx(t, 20*time.Second)
	parts, err := c.partitions(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	end, err := c.listOffsets(ctx, topic, parts, kafka.LastOffset)
	if err != nil {
		t.Fatal(err)
	}
	return end
}

func total(offsets map[int]int64) int64 {
	var n int64
	for _, o := range offsets {
		n += o
	}
	return n
}

// readAll reads every record of topic up to its current end, by partition then offset.
func readAll(t *testing.T, brokers []string, topic string) []kafka.Message {
	t.Helper()
	var out []kafka.Message
	end := endOffsets(t, brokers, topic)
	parts := make([]int, 0, len(end))
	for p := range end {
		parts = append(parts, p)
	}
	sort.Ints(parts)
	for _, p := range parts {
		if end[p] == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		ctx := testCtx(t, 20*time.Second)
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("reading %s/%d: %v", topic, p, err)
			}
			out = append(out, m)
			if m.Offset+1 >= end[p] {
				break
			}
		}
		r.Close()
	}
	return out
}

// waitForRecords waits until topic holds at least n records in all.
func waitForRecords(ctx context.Context, t *testing.T, brokers []string, topic string, n int64) {
	t.Helper()
	for {
		got := total(endOffsets(t, brokers, topic))
		if got >= n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %d records in %s: have %d", n, topic, got)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func headerValue(m kafka.Message, key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

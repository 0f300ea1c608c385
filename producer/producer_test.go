package producer

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/acme-sp/wholesale-provisioner/schemas"
)

func newCluster(t *testing.T, topics ...string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func TestPublishKeepsOneSubscriberOnOnePartition(t *testing.T) {
	brokers := newCluster(t, "out", "dlt")
	w, err := NewWriter(Config{Brokers: brokers, OutcomesTopic: "out", DeadLetterTopic: "dlt"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var msgs []kafka.Message
	for i := 0; i < 40; i++ {
		m, err := w.Outcome([]byte("customer/user"+strconv.Itoa(i%4)), schemas.Outcome{SchemaVersion: 1, EventID: "e" + strconv.Itoa(i), OrderID: "o" + strconv.Itoa(i), Status: schemas.StatusProvisioned})
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if err := w.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	partOf := map[string]int{}
	for p := 0; p < 4; p++ {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: "out", Partition: p, MaxWait: 50 * time.Millisecond})
		rctx, rcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		for {
			m, err := r.ReadMessage(rctx)
			if err != nil {
				break
			}
			if q, seen := partOf[string(m.Key)]; seen && q != p {
				t.Errorf("key %s on partitions %d and %d", m.Key, q, p)
			}
			partOf[string(m.Key)] = p
			var o schemas.Outcome
			if err := json.Unmarshal(m.Value, &o); err != nil {
				t.Fatal(err)
			}
			if h := headerValue(m, HeaderEventID); h != o.EventID {
				t.Errorf("event-id header %q, body %q", h, o.EventID)
			}
		}
		rcancel()
		r.Close()
	}
	if len(partOf) != 4 {
		t.Errorf("read keys %v, want 4", partOf)
	}
}

func TestPublishToMissingTopicFails(t *testing.T) {
	brokers := newCluster(t, "dlt")
	w, err := NewWriter(Config{Brokers: brokers, OutcomesTopic: "no-such-topic", DeadLetterTopic: "dlt", WriteTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	m, _ := w.Outcome(nil, schemas.Outcome{OrderID: "o1", Status: schemas.StatusFailed})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Publish(ctx, m); err == nil {
		t.Fatal("a write to a missing topic succeeded; it must fail loudly")
	}
}

func TestDeadLetterRecord(t *testing.T) {
	w, err := NewWriter(Config{Brokers: []string{"x:1"}, OutcomesTopic: "out", DeadLetterTopic: "dlt"})
	if err != nil {
		t.Fatal(err)
	}
	orig := kafka.Message{Topic: "orders", Partition: 3, Offset: 99, Key: []byte("k1"), Value: []byte("{bad"), Time: time.UnixMilli(1700000000123),
		Headers: []kafka.Header{{Key: "traceparent", Value: []byte("t")}, {Key: HeaderDLTReason, Value: []byte("stale")}}}
	d := schemas.DeadLetter{Reason: "invalid_json", ErrorClass: "invalid_input", Message: "unexpected end", Step: "validate", Attempts: 1, ConsumerGroup: "g", FailedAt: time.Now()}
	m, err := w.DeadLetter(orig, d)
	if err != nil {
		t.Fatal(err)
	}
	if m.Topic != "dlt" || string(m.Key) != "k1" {
		t.Errorf("topic %s key %s", m.Topic, m.Key)
	}
	want := map[string]string{
		"traceparent": "t", HeaderDLTTopic: "orders", HeaderDLTPartition: "3", HeaderDLTOffset: "99",
		HeaderDLTTimestamp: "1700000000123", HeaderDLTConsumerGroup: "g", HeaderDLTErrorClass: "invalid_input",
		HeaderDLTErrorMessage: "unexpected end", HeaderDLTReason: "invalid_json", HeaderDLTStep: "validate", HeaderDLTAttempts: "1",
	}
	for k, v := range want {
		if got := headerValue(m, k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	n := 0
	for _, h := range m.Headers {
		if h.Key == HeaderDLTReason {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d %s headers: an earlier failure's context must be replaced", n, HeaderDLTReason)
	}
}

func TestNewWriterNamesTheMissingSetting(t *testing.T) {
	for _, c := range []Config{{}, {Brokers: []string{"a:1"}}, {Brokers: []string{"a:1"}, OutcomesTopic: "o"}} {
		if _, err := NewWriter(c); err == nil {
			t.Errorf("NewWriter(%+v) succeeded", c)
		}
	}
}

func headerValue(m kafka.Message, k string) string {
	for _, h := range m.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// TestOutcomeBytesAsEncodingJSON: outcome values are encoded with
// segmentio/encoding for speed; consumers must see exactly the bytes
// encoding/json would write, escapes included.
func TestOutcomeBytesAsEncodingJSON(t *testing.T) {
	w, err := NewWriter(Config{Brokers: []string{"127.0.0.1:1"}, OutcomesTopic: "out", DeadLetterTopic: "dlt"})
	if err != nil {
		t.Fatal(err)
	}
	o := schemas.Outcome{
		SchemaVersion: schemas.OutcomeSchemaVersion, EventID: "e<&>\u2028", OrderID: `o"1`, Status: schemas.StatusFailed,
		ProcessedAt: time.Date(2026, 11, 26, 12, 0, 0, 123456789, time.UTC), Attempts: 3,
		Failure: &schemas.Failure{Reason: schemas.ReasonAPIRejected, Message: "bad <b> & \x01 é \xff"},
	}
	m, err := w.Outcome([]byte("k"), o)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Value) != string(want) {
		t.Errorf("outcome value\n%s\nencoding/json writes\n%s", m.Value, want)
	}
}

// TestOutcomeIsACloudEvent: the outcome's headers are CloudEvents' Kafka
// binding in binary mode, beside the project's own, so that a
// CloudEvents-aware consumer reads them without our schema.
func TestOutcomeIsACloudEvent(t *testing.T) {
	w, err := NewWriter(Config{Brokers: []string{"127.0.0.1:1"}, OutcomesTopic: "out", DeadLetterTopic: "dlt"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 4, 9, 15, 31, 84000000, time.UTC)
	m, err := w.Outcome([]byte("k"), schemas.Outcome{SchemaVersion: 1, EventID: "6f1c2a4e-9b7d-5c3e-8a21-4d0f6b9e7c15", OrderID: "ord-1",
		Status: schemas.StatusUpdated, ProcessedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		HeaderCESpecVersion: "1.0", HeaderCEID: "6f1c2a4e-9b7d-5c3e-8a21-4d0f6b9e7c15", HeaderCESource: DefaultSource,
		HeaderCEType: "com.cisco.webex.wholesale.subscriber.updated", HeaderCESubject: "ord-1", HeaderCETime: "2026-05-04T09:15:31.084Z",
		HeaderContentType: "application/json", HeaderEventID: "6f1c2a4e-9b7d-5c3e-8a21-4d0f6b9e7c15", HeaderOutcome: "updated",
	}
	got := map[string]string{}
	for _, h := range m.Headers {
		got[h.Key] = string(h.Value)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("header %s = %q, want %q", k, got[k], v)
		}
	}
}

// TestFollowUpRecordGoesToItsPartition: a follow-up record lands on the
// partition it names (the order's), whatever its key hashes to.
func TestFollowUpRecordGoesToItsPartition(t *testing.T) {
	brokers := newCluster(t, "out", "dlt", "fu")
	w, err := NewWriter(Config{Brokers: brokers, OutcomesTopic: "out", DeadLetterTopic: "dlt", FollowUpsTopic: "fu", BatchTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var msgs []kafka.Message
	for p := range 4 {
		m, err := w.FollowUp("ord-"+strconv.Itoa(p), p, &schemas.FollowUp{SchemaVersion: 1, OrderID: "ord-" + strconv.Itoa(p)})
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	tomb, err := w.FollowUp("ord-2", 2, nil)
	if err != nil || tomb.Value != nil {
		t.Fatalf("tombstone %+v, %v", tomb, err)
	}
	if err := w.Publish(ctx, append(msgs, tomb)...); err != nil {
		t.Fatal(err)
	}
	for p := range 4 {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: "fu", Partition: p, MaxWait: 50 * time.Millisecond})
		m, err := r.ReadMessage(ctx)
		r.Close()
		if err != nil || string(m.Key) != "ord-"+strconv.Itoa(p) {
			t.Errorf("partition %d: first record %q, %v; want ord-%d", p, m.Key, err, p)
		}
	}
}

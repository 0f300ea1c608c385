package main

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/consumer"
	"github.com/acme-sp/wholesale-provisioner/internal/demo"
	"github.com/acme-sp/wholesale-provisioner/internal/pipeline"
	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/internal/testkit"
	"github.com/acme-sp/wholesale-provisioner/producer"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// TestEndToEndInProcess runs the whole pipeline against the in-process broker
// and the simulator: N orders in, N outcomes out, malformed records dead-lettered
// with their context, offsets committed to the end, no subscriber created twice.
func TestEndToEndInProcess(t *testing.T) {
	const partitions, n = 3, 30
	env := testkit.StartApp(t, testkit.AppOptions{
		Partitions: partitions,
		Sim: webexsim.Config{
			Token:                "t0k3n-secret",
			PrecheckRejectDomain: sample.RejectDomain,
			Faults:               webexsim.FaultRates{Status503: 0.05, LostResponse: 0.1},
			Seed:                 7,
		},
		Configure: func(c *app.Config) { c.Workflow.RetryMaxElapsed = 20 * time.Second },
		Log:       zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	})
	cfg, sim, a := env.Cfg, env.Sim, env.App
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	var msgs []kafka.Message
	want := map[string]schemas.OutcomeStatus{}
	for i := 0; i < n; i++ {
		o := sample.Order("e2e", i, time.Now())
		if i == 4 {
			o = sample.WithDomain(o, "rej", sample.RejectDomain)
		}
		want[o.OrderID] = schemas.StatusProvisioned
		if i == 4 {
			want[o.OrderID] = schemas.StatusFailed
		}
		m := sample.Message(o)
		m.Headers = append(m.Headers, kafka.Header{Key: "traceparent", Value: []byte("00-abc-def-01")})
		msgs = append(msgs, m)
	}
	bad := sample.MalformedRecords("e2e")
	for _, b := range bad {
		msgs = append(msgs, kafka.Message{Key: []byte("bad/" + b.Name), Value: b.Value,
			Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-bad-01")}}})
		if b.OrderID != "" {
			want[b.OrderID] = schemas.StatusFailed
		}
	}
	if err := demo.Publish(ctx, cfg.Brokers, cfg.OrdersTopic, msgs); err != nil {
		t.Fatal(err)
	}

	outcomes := readUntil(ctx, t, cfg.Brokers, cfg.OutcomesTopic, len(want))
	got := map[string]schemas.Outcome{}
	for _, m := range outcomes {
		var o schemas.Outcome
		if err := json.Unmarshal(m.Value, &o); err != nil {
			t.Fatalf("outcome %s: %v", m.Value, err)
		}
		if err := schemas.ValidateOutcome(o); err != nil {
			t.Errorf("outcome of %s does not follow its schema: %v", o.OrderID, err)
		}
		if want := eventIDOf(t, msgs, o.OrderID); testkit.Header(m, producer.HeaderEventID) != o.EventID || (want != "" && o.EventID != want) {
			t.Errorf("outcome of %s: event-id header %q, body %q, want %q", o.OrderID, testkit.Header(m, producer.HeaderEventID), o.EventID, want)
		}
		got[o.OrderID] = o
	}
	for id, status := range want {
		o, ok := got[id]
		switch {
		case !ok:
			t.Errorf("no outcome for order %s", id)
		case o.Status != status:
			t.Errorf("order %s: status %s, want %s (%+v)", id, o.Status, status, o.Failure)
		case status == schemas.StatusProvisioned && (o.Subscriber == nil || o.Subscriber.ID == ""):
			t.Errorf("order %s: provisioned without a subscriber id", id)
		}
	}

	// One dead letter per failed order plus one per unreadable record.
	wantDead := 1 + len(bad)
	dead := readUntil(ctx, t, cfg.Brokers, cfg.DeadLetterTopic, wantDead)
	for _, m := range dead {
		var d schemas.DeadLetter
		if err := json.Unmarshal(m.Value, &d); err != nil {
			t.Fatalf("dead letter %s: %v", m.Value, err)
		}
		if err := schemas.ValidateDeadLetter(d); err != nil {
			t.Errorf("dead letter does not follow its schema: %v", err)
		}
		for _, h := range []string{producer.HeaderDLTTopic, producer.HeaderDLTPartition, producer.HeaderDLTOffset,
			producer.HeaderDLTTimestamp, producer.HeaderDLTConsumerGroup, producer.HeaderDLTErrorClass, producer.HeaderDLTErrorMessage, "traceparent"} {
			if testkit.Header(m, h) == "" {
				t.Errorf("dead letter %s lacks header %s", d.Reason, h)
			}
		}
		if testkit.Header(m, producer.HeaderDLTTopic) != cfg.OrdersTopic || testkit.Header(m, producer.HeaderDLTOffset) != strconv.FormatInt(d.Source.Offset, 10) {
			t.Errorf("dead letter context headers disagree with its body: %v vs %+v", m.Headers, d.Source)
		}
		raw, err := d.Source.Value.Raw()
		if err != nil {
			t.Fatal(err)
		}
		if !isOneOf(raw, msgs) {
			t.Errorf("dead letter does not hold an original value byte for byte: %q", raw)
		}
		if contains(m, "t0k3n-secret") {
			t.Errorf("dead letter leaks the token")
		}
	}

	if _, err := consumer.WaitCaughtUp(ctx, &kafka.Client{Addr: kafka.TCP(cfg.Brokers...)}, cfg.GroupID, cfg.OrdersTopic); err != nil {
		t.Fatal(err)
	}
	if m := sim.MaxSuccessfulCreates(); m != 1 {
		t.Errorf("max creates per email = %d, want 1", m)
	}
	checkMetrics(t, "http://"+a.HTTPAddr()+"/metrics", len(msgs), wantDead)
}

// checkMetrics scrapes /metrics: every record counted once by outcome, dead
// letters counted, lag 0 on every partition, and no personal data in labels.
func checkMetrics(t *testing.T, url string, records, dead int) {
	t.Helper()
	var body string
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		if sumMetric(body, "provisioner_consumer_lag_records") == 0 && strings.Contains(body, "provisioner_consumer_lag_records{") || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got := sumMetric(body, "provisioner_orders_total"); got != float64(records) {
		t.Errorf("provisioner_orders_total sums to %v, want %d records", got, records)
	}
	if got := sumMetric(body, "provisioner_dead_letters_total"); got != float64(dead) {
		t.Errorf("provisioner_dead_letters_total sums to %v, want %d", got, dead)
	}
	if got := sumMetric(body, "provisioner_consumer_lag_records"); got != 0 || !strings.Contains(body, "provisioner_consumer_lag_records{") {
		t.Errorf("lag %v after the run, want 0 on every partition", got)
	}
	for _, want := range []string{"provisioner_webex_requests_total{", "provisioner_webex_request_duration_seconds_bucket{", "provisioner_kafka_commits_total", "provisioner_consumer_rebalances_total"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "@") || strings.Contains(body, "e2e-0000") {
		t.Errorf("/metrics holds an email or an order id in a label")
	}
}

// sumMetric adds up every sample of a metric family in exposition text.
func sumMetric(body, name string) float64 {
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// readUntil reads topic (partition 0) until it holds n records, or fails the test.
func readUntil(ctx context.Context, t *testing.T, brokers []string, topic string, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	var out []kafka.Message
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			for _, m := range out {
				t.Logf("read from %s: %s", topic, m.Value)
			}
			t.Fatalf("reading %s: got %d of %d records: %v", topic, len(out), n, err)
		}
		out = append(out, m)
	}
	// Nothing more should come: one answer per record.
	extra, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if m, err := r.ReadMessage(extra); err == nil {
		t.Errorf("%s holds more than %d records: %s", topic, n, m.Value)
	}
	return out
}

func isOneOf(v []byte, msgs []kafka.Message) bool {
	for _, m := range msgs {
		if string(m.Value) == string(v) {
			return true
		}
	}
	return false
}

func contains(m kafka.Message, s string) bool {
	if bytes.Contains(m.Value, []byte(s)) || bytes.Contains(m.Key, []byte(s)) {
		return true
	}
	for _, h := range m.Headers {
		if bytes.Contains(h.Value, []byte(s)) {
			return true
		}
	}
	return false
}

// eventIDOf is the event id the pipeline must give the outcome of the valid
// order orderID among msgs ("" for an invalid record).
func eventIDOf(t *testing.T, msgs []kafka.Message, orderID string) string {
	t.Helper()
	for _, m := range msgs {
		var head struct {
			OrderID string `json:"orderId"`
		}
		if json.Unmarshal(m.Value, &head) == nil && head.OrderID == orderID {
			id, err := pipeline.EventIDOf(m)
			if err != nil {
				return ""
			}
			return id
		}
	}
	return ""
}

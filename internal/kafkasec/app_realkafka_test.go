package kafkasec_test

// The whole provisioner (app.App: consumer group, pipeline, Webex workflow,
// outcome and dead-letter writers, lag and health client) through the SASL_SSL
// broker, logging at debug level, and the password searched for everywhere it
// could leak: logs, errors, outcomes, dead letters, metrics and /readyz.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"github.com/acme-sp/wholesale-provisioner/internal/kafkasec"
	"github.com/acme-sp/wholesale-provisioner/internal/kafkatest"
	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// setKafka sets cfg.Kafka, or skips the test while app.Config has no such field.
// (Reflection only so that this file compiles before the field exists; once it
// does, this is cfg.Kafka = sec, and requireWiring can go.)
func setKafka(t *testing.T, cfg *app.Config, sec kafkasec.Config) {
	t.Helper()
	requireWiring(t)
	reflect.ValueOf(cfg).Elem().FieldByName("Kafka").Set(reflect.ValueOf(sec))
}

func requireWiring(t *testing.T) {
	t.Helper()
	f, ok := reflect.TypeOf(app.Config{}).FieldByName("Kafka")
	if !ok || f.Type != reflect.TypeOf(kafkasec.Config{}) {
		t.Skip("app.Config has no field Kafka kafkasec.Config yet: the App is not wired to kafkasec")
	}
}

func appConfig(t *testing.T, b *saslBroker, sec kafkasec.Config) app.Config {
	t.Helper()
	cfg := app.DefaultConfig()
	cfg.Brokers = []string{b.Addr}
	cfg.GroupID = kafkatest.Name(t, "group")
	cfg.OrdersTopic = kafkatest.Name(t, "orders")
	cfg.OutcomesTopic = kafkatest.Name(t, "outcomes")
	cfg.DeadLetterTopic = kafkatest.Name(t, "dlt")
	setKafka(t, &cfg, sec)
	sim := webexsim.New(webexsim.Config{Token: "sasl-test-token", PrecheckRejectDomain: sample.RejectDomain})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cfg.Client.BaseURL = sim.BaseURL(srv.URL)
	cfg.WebexToken = "sasl-test-token"
	cfg.Workflow.RetryInitialInterval = 10 * time.Millisecond
	cfg.Workflow.RetryMaxInterval = 200 * time.Millisecond
	cfg.Consumer.CommitInterval = 100 * time.Millisecond
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.LogLevel = "debug"
	return cfg
}

func TestRealKafkaAppOverSASL(t *testing.T) {
	requireWiring(t)
	b := saslKafka(t)
	sec := b.config(kafkasec.MechanismSCRAMSHA512)
	cfg := appConfig(t, b, sec)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tr, err := sec.Transport()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	d, err := sec.Dialer()
	if err != nil {
		t.Fatal(err)
	}
	createTopic(t, tr, b.Addr, cfg.OrdersTopic, 3)
	createTopic(t, tr, b.Addr, cfg.OutcomesTopic, 1)
	createTopic(t, tr, b.Addr, cfg.DeadLetterTopic, 1)

	logs := &syncBuffer{}
	a, err := app.New(context.Background(), cfg, app.NewLogger(logs, "debug", "json"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rctx, stop := context.WithCancel(ctx)
	var runErr error
	finished := make(chan struct{})
	go func() { runErr = a.Run(rctx); close(finished) }()
	defer func() { stop(); <-finished; a.Close() }()

	// The billing system: good orders, one the precheck rejects, bad records.
	run := strings.ReplaceAll(kafkatest.Name(t, "s")[2:14], ".", "-")
	var msgs []kafka.Message
	const good = 12
	for i := range good {
		o := sample.Order("sasl"+run, i, time.Now())
		if i == good-1 {
			o = sample.WithDomain(o, "rej", sample.RejectDomain)
		}
		msgs = append(msgs, sample.Message(o))
	}
	bad := sample.MalformedRecords("sasl" + run)
	for _, m := range bad {
		msgs = append(msgs, kafka.Message{Value: m.Value})
	}
	w := &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: cfg.OrdersTopic, Transport: tr, RequiredAcks: kafka.RequireAll,
		Balancer: kafka.Murmur2Balancer{Consistent: true}}
	defer w.Close()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("publishing orders over SASL_SSL: %v", err)
	}

	outcomes := readAll(ctx, t, d, b.Addr, cfg.OutcomesTopic, func(got []kafka.Message) bool {
		ids := map[string]bool{}
		for _, m := range got {
			var o schemas.Outcome
			if json.Unmarshal(m.Value, &o) == nil {
				ids[o.OrderID] = true
			}
		}
		return len(ids) >= good+3 // three bad records still name their order
	})
	dead := readAll(ctx, t, d, b.Addr, cfg.DeadLetterTopic, func(got []kafka.Message) bool { return len(got) >= len(bad)+1 })

	// /readyz and /metrics, once the group has an assignment.
	var ready, metrics string
	for ctx.Err() == nil {
		ready = get(t, "http://"+a.HTTPAddr()+"/readyz")
		if strings.Contains(ready, `"ready":true`) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(ready, `"ready":true`) {
		t.Fatalf("/readyz: %s", ready)
	}
	metrics = get(t, "http://"+a.HTTPAddr()+"/metrics")
	stop()
	<-finished
	if runErr != nil {
		t.Fatalf("Run: %v", runErr)
	}

	all := logs.String()
	// (Nothing logs at debug level today; the logger is at debug so that
	// anything that will is searched too.)
	if !strings.Contains(all, `"kafka_security":"TLS (CA `) || !strings.Contains(all, `SASL SCRAM-SHA-512 as \"provisioner\""`) {
		t.Errorf("the start-up logs do not describe the Kafka security:\n%s", firstLines(all, 3))
	}
	places := map[string]string{"logs": all, "/readyz": ready, "/metrics": metrics}
	for _, m := range append(outcomes, dead...) {
		places["record "+m.Topic] += string(m.Key) + string(m.Value)
		for _, h := range m.Headers {
			places["record "+m.Topic] += h.Key + string(h.Value)
		}
	}
	for where, text := range places {
		if strings.Contains(text, b.Password) {
			t.Errorf("the SASL password shows in %s", where)
		}
	}
	t.Logf("%d outcomes and %d dead letters through SASL_SSL; %d log lines searched", len(outcomes), len(dead), strings.Count(all, "\n"))
}

// TestRealKafkaAppWrongPassword: the App refuses to start, at once and with a
// message that says what to fix, instead of retrying forever.
func TestRealKafkaAppWrongPassword(t *testing.T) {
	requireWiring(t)
	b := saslKafka(t)
	const wrong = "wrong-password-that-must-not-show"
	sec := b.config(kafkasec.MechanismSCRAMSHA256)
	sec.SASL.PasswordFile = ""
	app.LoadKafkaSecrets(&sec, func(k string) (string, bool) { return wrong, k == kafkasec.PasswordEnv })
	cfg := appConfig(t, b, sec)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	start := time.Now()
	a, err := app.New(context.Background(), cfg, app.NewLogger(logs, "debug", "json"))
	took := time.Since(start)
	if err == nil {
		a.Close()
		t.Fatal("the App started with a wrong password")
	}
	var kerr *kafkasec.Error
	if !errors.As(err, &kerr) || kerr.Kind != kafkasec.Authentication {
		t.Fatalf("want an authentication error, got %v", err)
	}
	if took > 10*time.Second {
		t.Errorf("refusing took %s", took)
	}
	for _, s := range []string{"SASL authentication failed", "--kafka-sasl-username", kafkasec.PasswordEnv} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	if strings.Contains(err.Error()+logs.String(), wrong) {
		t.Fatal("the password shows in the error or the logs")
	}
	t.Logf("app.New refused in %s: %v", took.Round(time.Millisecond), err)
}

// readAll reads partition 0 of topic from the start until done says so.
func readAll(ctx context.Context, t *testing.T, d *kafka.Dialer, addr, topic string, done func([]kafka.Message) bool) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: 0, Dialer: d, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	var got []kafka.Message
	for !done(got) {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		m, err := r.ReadMessage(rctx)
		cancel()
		if err != nil {
			t.Fatalf("reading %s over SASL_SSL after %d records: %v", topic, len(got), err)
		}
		got = append(got, m)
	}
	return got
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

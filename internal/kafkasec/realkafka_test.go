package kafkasec_test

// Against a real Apache Kafka with a SASL_SSL listener (scripts/kafka-local
// start --sasl; see broker_test.go): every mechanism end to end through the
// provisioner's own consumer and writer, and what a wrong password or CA does.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/acme-sp/wholesale-provisioner/consumer"
	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"github.com/acme-sp/wholesale-provisioner/internal/kafkasec"
	"github.com/acme-sp/wholesale-provisioner/internal/kafkatest"
	"github.com/acme-sp/wholesale-provisioner/producer"
)

// TestRealKafkaSASLRoundTrip creates topics, produces with the provisioner's
// writer, consumes with its consumer group and commits, for each mechanism
// over TLS, with the password from the environment or a file and with and
// without a client certificate.
func TestRealKafkaSASLRoundTrip(t *testing.T) {
	b := saslKafka(t)
	cases := []struct {
		mech       string
		envPass    bool
		clientCert bool
	}{
		{kafkasec.MechanismPLAIN, true, false},
		{kafkasec.MechanismSCRAMSHA256, false, false},
		{kafkasec.MechanismSCRAMSHA512, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.mech, func(t *testing.T) {
			cfg := b.config(tc.mech)
			if tc.envPass {
				cfg.SASL.PasswordFile = ""
				app.LoadKafkaSecrets(&cfg, func(k string) (string, bool) { return b.Password, k == kafkasec.PasswordEnv })
			}
			if tc.clientCert {
				cfg.TLS.CertFile, cfg.TLS.KeyFile = b.Env["KAFKA_TLS_CERT_FILE"], b.Env["KAFKA_TLS_KEY_FILE"]
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			roundTrip(t, b, cfg, 30)
		})
	}
}

func roundTrip(t *testing.T, b *saslBroker, cfg kafkasec.Config, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tr, err := cfg.Transport()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections) // else its metadata loop runs on
	d, err := cfg.Dialer()
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Check(ctx, []string{b.Addr}); err != nil {
		t.Fatalf("Check: %v", err)
	}
	orders, outcomes, dlt := kafkatest.Name(t, "orders"), kafkatest.Name(t, "outcomes"), kafkatest.Name(t, "dlt")
	createTopic(t, tr, b.Addr, orders, 3)
	createTopic(t, tr, b.Addr, outcomes, 1)
	createTopic(t, tr, b.Addr, dlt, 1)

	w, err := producer.NewWriter(producer.Config{Brokers: []string{b.Addr}, OutcomesTopic: outcomes, DeadLetterTopic: dlt, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var msgs []kafka.Message
	for i := range n {
		msgs = append(msgs, kafka.Message{Topic: orders, Key: fmt.Appendf(nil, "k%d", i%7), Value: fmt.Appendf(nil, "order %d", i)})
	}
	if err := w.Publish(ctx, msgs...); err != nil {
		t.Fatalf("publishing over SASL_SSL: %v", err)
	}

	var (
		mu   sync.Mutex
		seen = map[string]bool{}
	)
	group := kafkatest.Name(t, "group")
	logs := &syncBuffer{}
	log := zerolog.New(logs).Level(zerolog.DebugLevel)
	c, err := consumer.New(consumer.Config{
		Brokers: []string{b.Addr}, GroupID: group, Topic: orders, Dialer: d,
		CommitInterval: 100 * time.Millisecond, StatsInterval: -1, Logger: &log,
	}, consumer.HandlerFunc(func(_ context.Context, m kafka.Message, _ *consumer.Slot) error {
		mu.Lock()
		seen[string(m.Value)] = true
		mu.Unlock()
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	var runErr error
	finished := make(chan struct{})
	go func() { runErr = c.Run(rctx); close(finished) }()
	defer func() { stop(); <-finished }()

	client := &kafka.Client{Addr: kafka.TCP(b.Addr), Transport: tr, Timeout: 10 * time.Second}
	for {
		mu.Lock()
		got := len(seen)
		mu.Unlock()
		var lag int64 = -1
		if got == n {
			if ls, err := consumer.Lag(ctx, client, group, orders); err == nil {
				lag = 0
				for _, l := range ls {
					if l.Committed < 0 {
						lag++
					}
					lag += l.Lag
				}
			}
		}
		if lag == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records, lag %d; consumer logs:\n%s", got, n, lag, lastLines(logs.String(), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	<-finished
	if runErr != nil {
		t.Fatalf("Run: %v", runErr)
	}
	if strings.Contains(logs.String(), b.Password) {
		t.Fatal("the password shows in the consumer's logs")
	}
}

// TestRealKafkaWrongPassword: every mechanism refuses a wrong password at once
// with a clear error, a writer fails after one attempt, and the consumer group
// does not storm the broker while it keeps failing.
func TestRealKafkaWrongPassword(t *testing.T) {
	b := saslKafka(t)
	const wrong = "wrong-password-that-must-not-show"
	for _, mech := range []string{kafkasec.MechanismPLAIN, kafkasec.MechanismSCRAMSHA256, kafkasec.MechanismSCRAMSHA512} {
		t.Run(mech, func(t *testing.T) {
			cfg := b.config(mech)
			cfg.SASL.PasswordFile, cfg.SASL.Password = "", wrong

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err := cfg.Check(ctx, []string{b.Addr})
			took := time.Since(start)
			var kerr *kafkasec.Error
			if !errors.As(err, &kerr) || kerr.Kind != kafkasec.Authentication {
				t.Fatalf("Check: want an authentication error, got %v", err)
			}
			for _, s := range []string{"SASL Authentication Failed", "--kafka-sasl-username", mech} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Check's error %q does not say %q", err, s)
				}
			}
			if took > 5*time.Second {
				t.Errorf("Check took %s to fail", took)
			}
			if strings.Contains(err.Error(), wrong) {
				t.Fatal("the error shows the password")
			}
			t.Logf("Check failed in %s: %v", took.Round(time.Millisecond), err)

			// A writer: one attempt (MaxAttempts 1), the error says why.
			tr, err := cfg.Transport()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(tr.CloseIdleConnections) // else its metadata loop runs on
			attempts := countSASL(&tr.SASL)
			w, err := producer.NewWriter(producer.Config{Brokers: []string{b.Addr}, OutcomesTopic: "o", DeadLetterTopic: "d", Transport: tr})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			start = time.Now()
			err = w.Publish(ctx, kafka.Message{Topic: "o", Value: []byte("x")})
			took = time.Since(start)
			if kafkasec.Classify(err) != kafkasec.Authentication || took > 5*time.Second {
				t.Fatalf("Publish: want an authentication error within 5s, got %v after %s", err, took)
			}
			if n := attempts.Load(); n < 1 || n > 2 {
				t.Errorf("Publish made %d authentication attempts, want 1", n)
			}
			t.Logf("Publish failed in %s after %d authentication attempt(s): %v", took.Round(time.Millisecond), attempts.Load(), err)
		})
	}
}

// TestRealKafkaWrongPasswordConsumerGroup measures what kafka-go's consumer
// group, as the consumer package drives it, does with a wrong password: how
// often it tries again, and how loudly.
func TestRealKafkaWrongPasswordConsumerGroup(t *testing.T) {
	b := saslKafka(t)
	const wrong = "wrong-password-that-must-not-show"
	cfg := b.config(kafkasec.MechanismSCRAMSHA512)
	cfg.SASL.PasswordFile, cfg.SASL.Password = "", wrong
	d, err := cfg.Dialer()
	if err != nil {
		t.Fatal(err)
	}
	attempts := countSASL(&d.SASLMechanism)
	logs := &syncBuffer{}
	log := zerolog.New(logs).Level(zerolog.DebugLevel)
	c, err := consumer.New(consumer.Config{Brokers: []string{b.Addr}, GroupID: kafkatest.Name(t, "group"), Topic: "orders",
		Dialer: d, StatsInterval: -1, Logger: &log}, consumer.HandlerFunc(func(context.Context, kafka.Message, *consumer.Slot) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	const window = 8 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	start := time.Now()
	var first atomic.Int64 // ns after start of the first failure in the logs
	go func() {
		for ctx.Err() == nil {
			if first.Load() == 0 && strings.Contains(logs.String(), "SASL Authentication Failed") {
				first.Store(int64(time.Since(start)))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	if err := c.Run(ctx); err != nil {
		t.Logf("Run returned %v", err)
	}
	end := time.Now()
	time.Sleep(500 * time.Millisecond) // the broker logs the last failures
	brokerFailures := b.failedAuthentications(t, start, end)
	errorLines := strings.Count(logs.String(), `"level":"error"`)
	warnLines := strings.Count(logs.String(), `"level":"warn"`)
	n := attempts.Load()
	t.Logf("over %s the consumer group made %d SASL attempts (broker logged %d failed authentications), "+
		"logged %d error and %d warn lines; first failure logged after %s; it never stops by itself",
		window, n, brokerFailures, errorLines, warnLines, time.Duration(first.Load()).Round(time.Millisecond))
	t.Logf("first log lines:\n%s", lastLines(firstLines(logs.String(), 4), 4))
	if n < 1 || first.Load() == 0 {
		t.Fatalf("the consumer never reported the authentication failure; logs:\n%s", logs.String())
	}
	if time.Duration(first.Load()) > 5*time.Second {
		t.Errorf("the first authentication failure was logged only after %s", time.Duration(first.Load()))
	}
	// Bounded: about one attempt per second of backoff (JoinGroupBackoff 1s plus
	// the consumer's own 1s), far from a tight loop.
	if limit := int64(window/time.Second) * 2; n > limit {
		t.Errorf("retry storm: %d authentication attempts in %s (limit %d)", n, window, limit)
	}
	if strings.Contains(logs.String(), wrong) {
		t.Fatal("the password shows in the consumer's logs")
	}
}

// TestRealKafkaWrongPasswordTransport measures what a kafka.Transport does
// after a failed request: its metadata loop (one per broker address) connects
// again every 0 to 6 s (random, MetadataTTL), so a long-lived transport with a
// wrong password keeps failing authentication at that pace until
// CloseIdleConnections. A writer's Close does not close a transport it was
// given.
func TestRealKafkaWrongPasswordTransport(t *testing.T) {
	b := saslKafka(t)
	cfg := b.config(kafkasec.MechanismSCRAMSHA256)
	cfg.SASL.PasswordFile, cfg.SASL.Password = "", "wrong-password-that-must-not-show"
	tr, err := cfg.Transport()
	if err != nil {
		t.Fatal(err)
	}
	attempts := countSASL(&tr.SASL)
	w, err := producer.NewWriter(producer.Config{Brokers: []string{b.Addr}, OutcomesTopic: "o", DeadLetterTopic: "d", Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Publish(ctx, kafka.Message{Topic: "o", Value: []byte("x")}); kafkasec.Classify(err) != kafkasec.Authentication {
		t.Fatalf("Publish: %v", err)
	}
	w.Close()
	const window = 6 * time.Second
	time.Sleep(window)
	during := attempts.Load() - 1
	tr.CloseIdleConnections()
	time.Sleep(time.Second)
	settled := attempts.Load()
	time.Sleep(3 * time.Second)
	after := attempts.Load() - settled
	t.Logf("after the failed Publish and the writer's Close, the transport authenticated %d more times in %s; "+
		"after CloseIdleConnections, %d times in 3s", during, window, after)
	if during > int64(window/time.Second) {
		t.Errorf("retry storm: %d attempts in %s", during, window)
	}
	if after != 0 {
		t.Errorf("the transport kept authenticating after CloseIdleConnections: %d attempts", after)
	}
}

// TestRealKafkaWrongCA: a CA that did not sign the broker's certificate fails
// at the TLS handshake, with a certificate error that names the CA file.
func TestRealKafkaWrongCA(t *testing.T) {
	b := saslKafka(t)
	other := newPKI(t, "wrong")
	cfg := b.config(kafkasec.MechanismSCRAMSHA256)
	cfg.TLS.CAFile = other.CAFile
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := cfg.Check(ctx, []string{b.Addr})
	var kerr *kafkasec.Error
	if !errors.As(err, &kerr) || kerr.Kind != kafkasec.Certificate {
		t.Fatalf("want a certificate error, got %v", err)
	}
	for _, s := range []string{"certificate signed by unknown authority", other.CAFile} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	t.Logf("Check failed in %s: %v", time.Since(start).Round(time.Millisecond), err)

	tr, err := cfg.Transport()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections) // else its metadata loop runs on
	w, err := producer.NewWriter(producer.Config{Brokers: []string{b.Addr}, OutcomesTopic: "o", DeadLetterTopic: "d", Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	start = time.Now()
	err = w.Publish(ctx, kafka.Message{Topic: "o", Value: []byte("x")})
	if kafkasec.Classify(err) != kafkasec.Certificate || time.Since(start) > 5*time.Second {
		t.Fatalf("Publish: want a certificate error within 5s, got %v after %s", err, time.Since(start))
	}
	t.Logf("Publish: %v", err)
}

// TestRealKafkaServerName: the broker's certificate names localhost and
// 127.0.0.1; another expected name fails, the right one passes.
func TestRealKafkaServerName(t *testing.T) {
	b := saslKafka(t)
	cfg := b.config(kafkasec.MechanismPLAIN)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg.TLS.ServerName = "kafka.example"
	err := cfg.Check(ctx, []string{b.Addr})
	if kafkasec.Classify(err) != kafkasec.Certificate || !strings.Contains(err.Error(), "--kafka-tls-server-name") {
		t.Fatalf("want a certificate error naming --kafka-tls-server-name, got %v", err)
	}
	cfg.TLS.ServerName = "localhost"
	if err := cfg.Check(ctx, []string{b.Addr}); err != nil {
		t.Fatalf("server name localhost: %v", err)
	}
}

// countSASL wraps the mechanism in *m so that each authentication attempt is
// counted.
func countSASL(m *sasl.Mechanism) *atomic.Int64 {
	n := &atomic.Int64{}
	*m = countingMechanism{Mechanism: *m, n: n}
	return n
}

type countingMechanism struct {
	sasl.Mechanism
	n *atomic.Int64
}

func (c countingMechanism) Start(ctx context.Context) (sasl.StateMachine, []byte, error) {
	c.n.Add(1)
	return c.Mechanism.Start(ctx)
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"github.com/acme-sp/wholesale-provisioner/internal/demo"
	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/internal/testkit"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

const (
	clientSecret = "c1ient-s3cret-never-to-be-seen"
	firstRefresh = "first-refresh-t0ken-never-to-be-seen"
)

// TestTokenExpiryMidRunAndSecretHygiene runs the pipeline with the OAuth
// refresh flow and debug logging: the access tokens expire in the middle of the
// run with orders in flight, and no order fails for it; then every output
// (logs at debug level, outcomes, dead letters, /metrics, /readyz, the refresh
// token file) is searched for the client secret and every token issued.
func TestTokenExpiryMidRunAndSecretHygiene(t *testing.T) {
	cfg := app.DefaultConfig()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, cfg.OrdersTopic), kfake.SeedTopics(1, cfg.OutcomesTopic, cfg.DeadLetterTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	sim := webexsim.New(webexsim.Config{Latency: 5 * time.Millisecond, PrecheckRejectDomain: sample.RejectDomain})
	sim.EnableOAuth(webexsim.OAuth{ClientID: "integration-1", ClientSecret: clientSecret, RefreshToken: firstRefresh, AccessTTL: time.Hour})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	refreshFile := filepath.Join(dir, "refresh-token")
	if err := os.WriteFile(refreshFile, []byte(firstRefresh), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Brokers, cfg.Client.BaseURL = cluster.ListenAddrs(), sim.BaseURL(srv.URL)
	cfg.WebexClientID, cfg.WebexClientSecret, cfg.WebexRefreshTokenFile = "integration-1", clientSecret, refreshFile
	cfg.HTTPAddr, cfg.Consumer.MaxInFlight = "127.0.0.1:0", 16
	cfg.Workflow.RetryInitialInterval, cfg.Workflow.RetryMaxInterval = 10*time.Millisecond, 100*time.Millisecond
	cfg.LogLevel = "debug"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	a, err := app.New(context.Background(), cfg, zerolog.New(logs).Level(zerolog.DebugLevel))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	const n = 400
	var msgs []kafka.Message
	for i := 0; i < n; i++ {
		o := sample.Order("sec", i, time.Now())
		if i%50 == 49 {
			o = sample.WithDomain(o, "rej", sample.RejectDomain) // some dead letters too
		}
		msgs = append(msgs, sample.Message(o))
	}
	if err := demo.Publish(ctx, cfg.Brokers, cfg.OrdersTopic, msgs); err != nil {
		t.Fatal(err)
	}
	outs := &recordSink{}
	go outs.read(ctx, cfg.Brokers, cfg.OutcomesTopic)
	dead := &recordSink{}
	go dead.read(ctx, cfg.Brokers, cfg.DeadLetterTopic)

	// Expire the tokens twice while orders are in flight.
	for _, at := range []int{n / 4, n / 2} {
		testkit.WaitFor(ctx, t, "progress", func() error {
			if outs.len() < at {
				return fmt.Errorf("%d outcomes", outs.len())
			}
			return nil
		})
		sim.ExpireAccessTokens()
	}
	testkit.WaitFor(ctx, t, "every order answered", func() error {
		if outs.len() < n {
			return fmt.Errorf("%d of %d outcomes", outs.len(), n)
		}
		return nil
	})
	failed := 0
	for _, m := range outs.all() {
		var o schemas.Outcome
		_ = json.Unmarshal(m.Value, &o)
		if o.Status == schemas.StatusFailed && o.Failure.Reason != schemas.ReasonPrecheckRejected {
			failed++
			t.Errorf("order %s failed: %+v", o.OrderID, o.Failure)
		}
	}
	if r := sim.TokenRefreshes(); r < 3 {
		t.Errorf("%d token refreshes, want the first one and one after each expiry", r)
	}
	b, _ := os.ReadFile(refreshFile)
	if strings.TrimSpace(string(b)) == firstRefresh {
		t.Error("the renewed refresh token was not written back to its file")
	}

	scrape := func(path string) []byte {
		resp, err := http.Get("http://" + a.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return body
	}
	outputs := map[string][]byte{"metrics": scrape("/metrics"), "readyz": scrape("/readyz")}
	cancel()
	<-done
	outputs["logs"] = logs.Bytes()
	for i, m := range append(outs.all(), dead.all()...) {
		var hs bytes.Buffer
		for _, h := range m.Headers {
			hs.WriteString(h.Key + "=" + string(h.Value) + "\n")
		}
		outputs[fmt.Sprintf("record %d", i)] = append(append(m.Key, m.Value...), hs.Bytes()...)
	}
	if !bytes.Contains(outputs["logs"], []byte(`"level":"debug"`)) {
		t.Error("no debug line was logged: the search would prove nothing")
	}
	secrets := append([]string{clientSecret}, sim.IssuedSecrets()...)
	if len(secrets) < 7 {
		t.Fatalf("only %d secrets issued", len(secrets))
	}
	for name, out := range outputs {
		for _, s := range secrets {
			if bytes.Contains(out, []byte(s)) {
				t.Errorf("%s holds a secret (%.6s…)", name, s)
			}
		}
	}
	// Personal data: emails masked in every log line.
	if bytes.Contains(outputs["logs"], []byte("@acme.example\"")) && bytes.Contains(outputs["logs"], []byte("user000")) {
		for _, line := range bytes.Split(outputs["logs"], []byte("\n")) {
			if bytes.Contains(line, []byte("user000")) && bytes.Contains(line, []byte("@acme.example")) {
				t.Errorf("a log line holds an unmasked email: %.200s", line)
				break
			}
		}
	}
	t.Logf("%d orders, %d token refreshes, %d failed for a token, %d dead letters, %d bytes of logs searched", n, sim.TokenRefreshes(), failed, dead.len(), len(outputs["logs"]))
}

// recordSink collects a topic's records.
type recordSink struct {
	mu   sync.Mutex
	msgs []kafka.Message
}

func (s *recordSink) read(ctx context.Context, brokers []string, topic string) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.msgs = append(s.msgs, m)
		s.mu.Unlock()
	}
}

func (s *recordSink) len() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.msgs) }
func (s *recordSink) all() []kafka.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]kafka.Message(nil), s.msgs...)
}

package testkit

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// AppOptions shape a provisioner started by StartApp. Zero values select the
// defaults given in the comments.
type AppOptions struct {
	// Partitions of the orders and customer orders topics (default 3) and of
	// the dead-letter topic (default 1); the outcomes topics have one.
	Partitions, DeadLetterPartitions int32
	// Sim configures the Webex simulator; its Token defaults to "test-token".
	Sim webexsim.Config
	// Configure, when set, changes the configuration before it is validated.
	Configure func(*app.Config)
	// Log receives the provisioner's logs. Default: none.
	Log zerolog.Logger
}

// App is a provisioner running in-process against the in-process broker and
// the Webex simulator.
type App struct {
	Cfg app.Config
	Sim *webexsim.Server
	App *app.App

	stop func()
}

// StartApp starts a provisioner with fast retries, its HTTP endpoints on a free
// port, and topics of its own broker. The test's cleanup stops it.
func StartApp(t testing.TB, o AppOptions) *App {
	t.Helper()
	if o.Partitions == 0 {
		o.Partitions = 3
	}
	if o.DeadLetterPartitions == 0 {
		o.DeadLetterPartitions = 1
	}
	if o.Sim.Token == "" {
		o.Sim.Token = "test-token"
	}
	cfg := app.DefaultConfig()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(o.Partitions, cfg.OrdersTopic),
		kfake.SeedTopics(o.DeadLetterPartitions, cfg.DeadLetterTopic), kfake.SeedTopics(1, cfg.OutcomesTopic),
		kfake.SeedTopics(o.Partitions, cfg.CustomerOrdersTopic), kfake.SeedTopics(1, cfg.CustomerOutcomesTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	sim := webexsim.New(o.Sim)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	cfg.Brokers, cfg.Client.BaseURL, cfg.WebexToken = cluster.ListenAddrs(), sim.BaseURL(srv.URL), o.Sim.Token
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Workflow.RetryInitialInterval, cfg.Workflow.RetryMaxInterval = 10*time.Millisecond, 100*time.Millisecond
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, o.Log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	r := &App{Cfg: cfg, Sim: sim, App: a}
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("provisioner: %v", err)
		}
		a.Close()
	}
	t.Cleanup(r.Stop)
	return r
}

// Stop stops the provisioner and waits for it; calling it again does nothing.
func (a *App) Stop() { a.stop() }

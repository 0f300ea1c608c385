// Package app wires the provisioner from one Config (consumer, pipeline, Webex
// workflow, writers) and binds that Config to flags and environment variables.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/rs/zerolog"

	"github.com/acme-sp/wholesale-provisioner/consumer"
	"github.com/acme-sp/wholesale-provisioner/internal/kafkasec"
	"github.com/acme-sp/wholesale-provisioner/internal/metrics"
	"github.com/acme-sp/wholesale-provisioner/internal/outage"
	"github.com/acme-sp/wholesale-provisioner/internal/pipeline"
	"github.com/acme-sp/wholesale-provisioner/producer"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

// App is one running provisioner: consumer, pipeline, Webex workflow and writers,
// wired from a Config. Tests and the demo start it in-process.
type App struct {
	*Handling
	cfg      Config
	log      zerolog.Logger
	consumer *consumer.Consumer
	// customers consumes the customer orders; nil when there are none.
	customers *consumer.Consumer
	health    *health
	ln        net.Listener
}

// Handling is what handles one record, without the consumer that feeds it:
// the Webex workflow with its client and limiter, the writers, the pipeline
// and their metrics. An App is a consumer in front of one; the benchmarks'
// baseline feeds one from a plain kafka-go reader.
type Handling struct {
	Pipeline *pipeline.Pipeline
	// Customers handles the customer orders, with the same workflow, so
	// that subscriber orders know of the customer orders in flight.
	Customers *pipeline.Pipeline
	// Follower follows the orders left pending on their end user; an App
	// runs it for the partitions its consumer owns.
	Follower *pipeline.Follower
	// Limiter is the Webex rate budget of this instance.
	Limiter *provisioning.Limiter
	peers   *peers
	writer  *producer.Writer
	kafka   kafkaClients
	metrics *metrics.Metrics
	// kafkaDown gathers Kafka's failures, of writes and of the consumers, into an outage's few lines.
	kafkaDown *outage.Tracker
}

// NewHandling builds the Handling of a validated Config. It dials the
// brokers once when Kafka security is on, to stop at once on a refused
// password or certificate; ctx bounds that.
func NewHandling(ctx context.Context, cfg Config, log zerolog.Logger) (*Handling, error) {
	tokens, err := tokenSource(cfg)
	if err != nil {
		return nil, err
	}
	m := metrics.New()
	if err := cfg.Limiter.Validate(); err != nil {
		return nil, fmt.Errorf("webex rate limit: %w", err)
	}
	// A silent member's share is taken for at most two sessions: by then
	// the group has expelled it, or it is alive.
	pz := newPeers(instanceName(), cfg.Limiter.Rate, 2*cfg.Consumer.SessionTimeout, &log)
	lc := cfg.Limiter
	lc.OnPause = pz.onPause
	limiter := provisioning.NewLimiter(lc)
	pz.limiter = limiter
	m.WatchLimiter(limiter)
	cc := cfg.Client
	cc.Tokens, cc.Limiter, cc.Calls = tokens, limiter, m
	client, err := provisioning.NewClient(cc)
	if err != nil {
		return nil, err
	}
	wfc := cfg.Workflow
	wfc.OnRetry = m.Retried
	wf := provisioning.NewWorkflow(client, wfc)
	kc, err := newKafkaClients(ctx, cfg.Kafka, cfg.Brokers, log)
	if err != nil {
		return nil, err
	}
	wc := cfg.Writer
	wc.Brokers, wc.OutcomesTopic, wc.DeadLetterTopic, wc.Transport = cfg.Brokers, cfg.OutcomesTopic, cfg.DeadLetterTopic, kc.transport
	wc.FollowUpsTopic, wc.CustomerOutcomesTopic = cfg.followUpsTopic(), cfg.CustomerOutcomesTopic
	w, err := producer.NewWriter(wc)
	if err != nil {
		return nil, err
	}
	pc := cfg.Pipeline
	kafkaDown := outage.New("Kafka", 0, log)
	pc.ConsumerGroup, pc.Observer, pc.Outages, pc.Logger = cfg.GroupID, m, kafkaDown, &log
	pc.FollowUp.Topic = cfg.followUpsTopic()
	p := pipeline.New(pc, wf, w)
	f := pipeline.NewFollower(p, cfg.Brokers, kc.dialer, kc.transport, client)
	m.WatchPending(f)
	cpc := pc
	cpc.ConsumerGroup, cpc.Observer = cfg.CustomerGroupID(), m.Customers()
	return &Handling{Pipeline: p, Customers: pipeline.NewCustomers(cpc, wf, w), Follower: f, Limiter: limiter, peers: pz, writer: w, kafka: kc, kafkaDown: kafkaDown, metrics: m}, nil
}

// Close releases the writers and the Kafka connections. Call it once nothing
// is handled any more.
func (h *Handling) Close() error {
	err := h.writer.Close()
	// A writer does not close a transport it was given: without this, its
	// metadata refresh loop would keep connecting to the brokers.
	h.kafka.transport.CloseIdleConnections()
	return err
}

// New builds an App from a validated Config (see NewHandling for ctx).
func New(ctx context.Context, cfg Config, log zerolog.Logger) (*App, error) {
	h, err := NewHandling(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	// The consumer retries a record that is not finished with the
	// workflow's backoff: one setting for both.
	ccfg := cfg.Consumer
	ccfg.Brokers, ccfg.GroupID, ccfg.Topic, ccfg.Dialer, ccfg.Transport = cfg.Brokers, cfg.GroupID, cfg.OrdersTopic, h.kafka.dialer, h.kafka.transport
	ccfg.Outages = h.kafkaDown
	ccfg.Fatal, ccfg.KeyFunc, ccfg.Logger = kafkasec.Permanent, pipeline.OrderKey, &log
	kclient := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 5 * time.Second, Transport: h.kafka.transport}
	share := &budget{peers: h.peers, client: kclient, topic: cfg.OrdersTopic, log: &log}
	ccfg.Observer = observers{h.metrics, h.Follower, share}
	ccfg.RetryInitialInterval, ccfg.RetryMaxInterval = cfg.Workflow.RetryInitialInterval, cfg.Workflow.RetryMaxInterval
	c, err := consumer.New(ccfg, h.Pipeline)
	if err != nil {
		h.Close()
		return nil, err
	}
	h.metrics.WatchConsumer(c, kclient, cfg.GroupID, cfg.OrdersTopic)
	a := &App{Handling: h, cfg: cfg, log: log, consumer: c, health: &health{consumer: c, client: kclient}}
	if cfg.CustomerOrdersTopic != "" {
		// A customer order's key is its externalId: the default key function.
		cc := ccfg
		cc.GroupID, cc.Topic, cc.KeyFunc, cc.Observer = cfg.CustomerGroupID(), cfg.CustomerOrdersTopic, nil, nil
		if a.customers, err = consumer.New(cc, h.Customers); err != nil {
			h.Close()
			return nil, err
		}
		h.metrics.WatchConsumer(a.customers, kclient, cfg.CustomerGroupID(), cfg.CustomerOrdersTopic)
	}
	if cfg.HTTPAddr != "" {
		// Listen now, so that a taken port stops the start with a clear error.
		if a.ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			h.Close()
			return nil, fmt.Errorf("--http-addr: %w", err)
		}
	}
	return a, nil
}

// observers tells every one of its observers of the consumer's events.
type observers []consumer.Observer

func (os observers) Committed(took time.Duration, err error) {
	for _, o := range os {
		o.Committed(took, err)
	}
}

func (os observers) Assigned(generation int32, partitions []int) {
	for _, o := range os {
		o.Assigned(generation, partitions)
	}
}

func (os observers) Revoked(partitions []int, drained time.Duration) {
	for _, o := range os {
		o.Revoked(partitions, drained)
	}
}

// tokenSource builds the Webex token source the configuration names: a fixed
// token, a token file re-read when it changes, or the OAuth refresh flow.
func tokenSource(cfg Config) (provisioning.TokenSource, error) {
	switch {
	case cfg.WebexTokenFile != "":
		return provisioning.NewFileToken(cfg.WebexTokenFile)
	case cfg.WebexClientID != "":
		secret := cfg.WebexClientSecret
		if cfg.WebexClientSecretFile != "" {
			b, err := os.ReadFile(cfg.WebexClientSecretFile)
			if err != nil {
				return nil, fmt.Errorf("reading the client secret file: %w", err)
			}
			secret = strings.TrimSpace(string(b))
		}
		url := cfg.WebexTokenURL
		if url == "" {
			url = strings.TrimRight(cfg.Client.BaseURL, "/") + provisioning.PathAccessToken
		}
		return provisioning.NewRefreshingToken(provisioning.OAuthConfig{
			TokenURL:         url,
			ClientID:         cfg.WebexClientID,
			ClientSecret:     secret,
			RefreshToken:     cfg.WebexRefreshToken,
			RefreshTokenFile: cfg.WebexRefreshTokenFile,
		})
	default:
		return provisioning.StaticToken(cfg.WebexToken), nil
	}
}

// HTTPAddr returns the address the health endpoints listen on ("" for none).
func (a *App) HTTPAddr() string {
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// Readiness reports what /readyz would.
func (a *App) Readiness() Readiness { return a.health.readiness() }

// Run consumes orders until ctx ends.
func (a *App) Run(ctx context.Context) error {
	a.log.Info().Strs("brokers", a.cfg.Brokers).Str("group_id", a.cfg.GroupID).Str("orders_topic", a.cfg.OrdersTopic).
		Str("outcomes_topic", a.cfg.OutcomesTopic).Str("dead_letter_topic", a.cfg.DeadLetterTopic).
		Str("webex_base_url", a.cfg.Client.BaseURL).Str("kafka_security", a.cfg.Kafka.Describe()).Msg("provisioner starting")
	var wg sync.WaitGroup
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer func() { stop(); wg.Wait() }()
	wg.Add(1)
	go func() { defer wg.Done(); a.health.probeKafka(bg, 5*time.Second) }()
	if a.ln != nil {
		mux := a.health.handler()
		mux.Handle("GET /metrics", a.metrics.Handler())
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error().Err(err).Msg("serving the health endpoints")
			}
		}()
		// Keep answering probes while draining: /readyz says what is going on.
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		a.log.Info().Str("addr", a.ln.Addr().String()).Msg("serving /metrics, /healthz and /readyz")
	}
	if err := a.ensureFollowUpsTopic(ctx); err != nil {
		return err
	}
	if topic := a.cfg.BudgetTopic; topic != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a.awaitTopic(bg, topic, "the budget topic does not exist: a 429 met here pauses only this instance (create it, compacted, one partition, or set --budget-topic \"\")") {
				a.log.Info().Str("topic", topic).Str("instance", a.peers.instance).Msg("sharing the Webex budget's heartbeats and pauses with the other instances")
				a.peers.run(bg, a.cfg.Brokers, topic, a.kafka.dialer, a.kafka.transport)
			}
		}()
	}
	fctx, stopFollower := context.WithCancel(context.WithoutCancel(ctx))
	wg.Add(1)
	go func() { defer wg.Done(); _ = a.Follower.Run(fctx) }()
	// A fatal error of either consumer stops the instance: a half-working
	// instance is worse than a restarted one.
	mctx, stopMain := context.WithCancel(ctx)
	defer stopMain()
	customersDone := make(chan error, 1)
	cctx, stopCustomers := context.WithCancel(ctx)
	if a.customers != nil {
		go func() {
			err := a.runCustomers(cctx)
			if err != nil {
				stopMain()
			}
			customersDone <- err
		}()
	} else {
		customersDone <- nil
	}
	err := a.consumer.Run(mctx)
	stopCustomers()
	customersErr := <-customersDone
	if err == nil && customersErr != nil {
		err = fmt.Errorf("the customer orders' consumer: %w", customersErr)
	}
	// The consumer revoked its partitions from the follower as it left.
	stopFollower()
	a.log.Info().Msg("provisioner stopped")
	return err
}

// ParseLevel reads a log level name.
func ParseLevel(s string) (zerolog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return zerolog.DebugLevel, nil
	case "info", "":
		return zerolog.InfoLevel, nil
	case "warn", "warning":
		return zerolog.WarnLevel, nil
	case "error":
		return zerolog.ErrorLevel, nil
	}
	return zerolog.NoLevel, fmt.Errorf("unknown level %q: use debug, info, warn or error", s)
}

// LogTimeFormat is the layout of every log line's time: RFC 3339 in UTC with
// milliseconds, so that lines of one order can be put in order.
const LogTimeFormat = "2006-01-02T15:04:05.000Z07:00"

func init() {
	// zerolog reads its time layout from a package variable, at every event:
	// set it before any goroutine logs, once for the whole binary. Durations
	// stay zerolog's default, milliseconds, and every duration field's name
	// says so (took_ms, retry_in_ms).
	zerolog.TimeFieldFormat = LogTimeFormat
	zerolog.TimestampFunc = func() time.Time { return time.Now().UTC() }
}

// NewLogger returns a zerolog logger writing one event per line to w.
func NewLogger(w io.Writer, level, format string) zerolog.Logger {
	lvl, err := ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// instanceName names this process among the instances of the group, for
// the budget topic's keys: the host (the pod's name on Kubernetes), its pid,
// and a random suffix so that a restarted process is a new instance.
func instanceName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return fmt.Sprintf("%s-%d-%04x", host, os.Getpid(), rand.N(1<<16))
}

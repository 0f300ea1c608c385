package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"github.com/acme-sp/wholesale-provisioner/internal/kafkatest"
	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/internal/testkit"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

const (
	// alertsFile is loaded into the test's Prometheus, as in production.
	alertsFile = "../prometheus/alerts.yml"
	// dashboardFile holds the queries the tests run through Prometheus.
	dashboardFile = "../grafana/dashboards/wholesale-provisioner.json"
	// job is the scrape job name the alert rules expect.
	job = "wholesale-provisioner"
)

// requireTools returns the broker addresses and the prometheus binary, or
// skips the test (fails it with CI set) when either is missing.
func requireTools(t *testing.T) ([]string, string) {
	t.Helper()
	brokers := kafkatest.Brokers(t)
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but the prometheus binary is not on PATH: .ci/run must install it (scripts/install-ci-tools)")
		}
		t.Skip("needs the prometheus binary: apt-get install prometheus (or scripts/install-ci-tools)")
	}
	return brokers, bin
}

// stackConfig shapes one test's service, simulator and Prometheus.
type stackConfig struct {
	partitions  int
	maxInFlight int
	sim         webexsim.Config
	scrape      time.Duration
	// logLevel is the provisioner's (default warn).
	logLevel zerolog.Level
}

// stack is the provisioner running in-process on unique topics of the real
// broker, the Webex simulator, and a Prometheus scraping the provisioner.
type stack struct {
	t    *testing.T
	ctx  context.Context
	cfg  app.Config
	sim  *webexsim.Server
	app  *app.App
	prom *promServer
}

func startStack(t *testing.T, ctx context.Context, sc stackConfig) *stack {
	t.Helper()
	brokers, promBin := requireTools(t)
	cfg := app.DefaultConfig()
	cfg.Brokers = brokers
	cfg.GroupID = kafkatest.Name(t, "group")
	cfg.OrdersTopic = kafkatest.Name(t, "orders")
	cfg.OutcomesTopic = kafkatest.Name(t, "outcomes")
	cfg.DeadLetterTopic = kafkatest.Name(t, "dlt")
	kafkatest.CreateTopic(t, brokers, cfg.OrdersTopic, sc.partitions)
	kafkatest.CreateTopic(t, brokers, cfg.OutcomesTopic, 3)
	kafkatest.CreateTopic(t, brokers, cfg.DeadLetterTopic, 1)

	sc.sim.Token = "e2e-token"
	sc.sim.PrecheckRejectDomain = sample.RejectDomain
	sim := webexsim.New(sc.sim)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)

	cfg.Client.BaseURL = sim.BaseURL(srv.URL)
	cfg.WebexToken = "e2e-token"
	cfg.Workflow.RetryInitialInterval = 50 * time.Millisecond
	cfg.Workflow.RetryMaxInterval = time.Second
	cfg.Consumer.MaxInFlight = sc.maxInFlight
	cfg.HTTPAddr = "127.0.0.1:0"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if sc.logLevel == zerolog.DebugLevel { // the zero value
		sc.logLevel = zerolog.WarnLevel
	}
	a, err := app.New(context.Background(), cfg, zerolog.New(zerolog.NewTestWriter(t)).Level(sc.logLevel))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("provisioner Run: %v", err)
		}
		a.Close()
	})

	s := &stack{t: t, ctx: ctx, cfg: cfg, sim: sim, app: a}
	s.prom = startPrometheus(t, promBin, a.HTTPAddr(), sc.scrape)
	testkit.WaitFor(ctx, t, "Prometheus scraping the provisioner", func() error {
		v, ok, err := s.prom.value(ctx, fmt.Sprintf(`up{job=%q}`, job))
		if err != nil || !ok || v != 1 {
			return fmt.Errorf("up = %v (%v, %v)", v, ok, err)
		}
		return nil
	})
	testkit.WaitFor(ctx, t, "the provisioner joining its consumer group", func() error {
		if c := a.Readiness().Checks["consumer_group"]; !c.OK {
			return errors.New(c.Detail)
		}
		return nil
	})
	return s
}

// orders makes n orders: every 10th rejected by the precheck (a failed outcome
// and a dead letter); with malformed set, also the sample malformed records.
func (s *stack) orders(n int, malformed bool) (msgs []kafka.Message, rejected int) {
	run := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	for i := range n {
		o := sample.Order("e2e"+run, i, time.Now())
		if i%10 == 9 {
			o = sample.WithDomain(o, "rej", sample.RejectDomain)
			rejected++
		}
		msgs = append(msgs, sample.Message(o))
	}
	if malformed {
		for _, b := range sample.MalformedRecords("e2e" + run) {
			msgs = append(msgs, kafka.Message{Key: []byte("bad/" + b.Name), Value: b.Value})
		}
	}
	return msgs, rejected
}

func (s *stack) publish(msgs []kafka.Message) {
	s.t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(s.cfg.Brokers...), Topic: s.cfg.OrdersTopic, Balancer: kafka.Murmur2Balancer{Consistent: true},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(s.ctx, msgs...); err != nil {
		s.t.Fatalf("publishing %d orders: %v", len(msgs), err)
	}
}

// promServer is a prometheus process with its own configuration and storage.
type promServer struct {
	url  string
	logs string
}

// startPrometheus runs the prometheus binary scraping target every interval,
// with deploy/prometheus/alerts.yml loaded, and stops it when the test ends.
func startPrometheus(t *testing.T, bin, target string, interval time.Duration) *promServer {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`global:
  scrape_interval: %[1]s
  evaluation_interval: %[1]s
rule_files:
  - %[2]q
scrape_configs:
  - job_name: %[3]s
    static_configs:
      - targets: [%[4]q]
`, promDuration(interval), rules, job, target)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testkit.FreeAddr(t)
	logs := filepath.Join(dir, "prometheus.log")
	lf, err := os.Create(logs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p := &promServer{url: "http://" + addr, logs: logs}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		lf.Close()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", p.tail())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-exited:
			t.Fatalf("prometheus exited at start:\n%s", p.tail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready at %s after 30s:\n%s", p.url, p.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *promServer) tail() string {
	b, _ := os.ReadFile(p.logs)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// promDuration formats d the way Prometheus's configuration and queries accept.
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// apiResponse is the envelope of Prometheus's HTTP API.
type apiResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

func (p *promServer) get(ctx context.Context, path string, params url.Values, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path+"?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r apiResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("%s: decoding the answer: %w", path, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s %s: %s: %s", path, params.Get("query"), r.ErrorType, r.Error)
	}
	return json.Unmarshal(r.Data, into)
}

// sample is one element of an instant vector.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query runs an instant query now.
func (p *promServer) query(ctx context.Context, q string) ([]promSample, error) {
	var data struct {
		ResultType string       `json:"resultType"`
		Result     []promSample `json:"result"`
	}
	if err := p.get(ctx, "/api/v1/query", url.Values{"query": {q}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("%s: result type %s, want vector", q, data.ResultType)
	}
	return data.Result, nil
}

// value runs an instant query and adds up its samples; ok is false when the
// result is empty.
func (p *promServer) value(ctx context.Context, q string) (v float64, ok bool, err error) {
	res, err := p.query(ctx, q)
	if err != nil || len(res) == 0 {
		return 0, false, err
	}
	for _, s := range res {
		str, _ := s.Value[1].(string)
		f, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return 0, false, fmt.Errorf("%s: value %v: %w", q, s.Value[1], err)
		}
		v += f
	}
	return v, true, nil
}

// dashboardQueries returns the dashboard's panel queries with Grafana's
// variables expanded as with "All" selected.
func dashboardQueries(t *testing.T, rateInterval, rng string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr  string `json:"expr"`
			RefID string `json:"refId"`
		} `json:"targets"`
	}
	var d struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer("$__rate_interval", rateInterval, "${__rate_interval}", rateInterval,
		"$__range", rng, "${__range}", rng, "$__interval", rateInterval, "${__interval}", rateInterval)
	vars := func(s string) string { return grafanaVar.ReplaceAllString(s, ".+") }
	out := map[string]string{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out[fmt.Sprintf("%s (%s)", p.Title, tg.RefID)] = vars(r.Replace(tg.Expr))
		}
	}
	return out
}

// grafanaVar is a dashboard variable such as $job or ${topic}.
var grafanaVar = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`)

// lagQuery is the topic's lag as the dashboard, the alerts and KEDA compute it.
const lagQuery = `sum(max without (instance, pod) (provisioner_consumer_lag_records{job="` + job + `"}))`

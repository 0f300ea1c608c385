package reliability

// The harness of the fault tests: topics on a real broker, the Webex simulator
// in the test process (so that its counters outlive a provisioner killed with
// SIGKILL), orders, downstream readers of the outcome and dead-letter topics,
// the consumer group's lag, and provisioners run in-process (app.New) or as
// child processes of the built binary.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/consumer"
	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"github.com/acme-sp/wholesale-provisioner/internal/kafkatest"
	"github.com/acme-sp/wholesale-provisioner/internal/pipeline"
	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/internal/testkit"
	"github.com/acme-sp/wholesale-provisioner/producer"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// simToken is the token the simulator accepts and the provisioners send.
const simToken = "reliability-token"

// env is one test's topics, consumer group and simulator.
type env struct {
	t       *testing.T
	ctx     context.Context
	brokers []string
	group   string
	orders  string
	outs    string
	dlt     string

	sim    *webexsim.Server
	simURL string       // the API base URL
	active atomic.Int64 // API calls the simulator is serving now
	// prechecks are the arrival times of precheck calls: an order's first call.
	prechecks struct {
		sync.Mutex
		at []time.Time
	}

	logs *testkit.Buffer // the in-process provisioners' logs
}

type envConfig struct {
	// partitions of the orders topic. Default 6.
	partitions int
	// sim configures the simulator; its Token is simToken.
	sim webexsim.Config
	// brokers overrides KAFKA_BROKERS (the outage test's own broker).
	brokers []string
	// timeout bounds the whole test. Default 3 minutes.
	timeout time.Duration
}

func newEnv(t *testing.T, c envConfig) *env {
	t.Helper()
	brokers := c.brokers
	if brokers == nil {
		brokers = kafkatest.Brokers(t)
	}
	if c.partitions == 0 {
		c.partitions = 6
	}
	if c.timeout == 0 {
		c.timeout = 3 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, brokers: brokers, logs: &testkit.Buffer{},
		group:  kafkatest.Name(t, "group"),
		orders: kafkatest.Name(t, "orders"),
		outs:   kafkatest.Name(t, "outcomes"),
		dlt:    kafkatest.Name(t, "dlt"),
	}
	kafkatest.CreateTopic(t, brokers, e.orders, c.partitions)
	kafkatest.CreateTopic(t, brokers, e.outs, 3)
	kafkatest.CreateTopic(t, brokers, e.dlt, 1)

	c.sim.Token = simToken
	c.sim.PrecheckRejectDomain = sample.RejectDomain
	e.sim = webexsim.New(c.sim)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.active.Add(1)
		defer e.active.Add(-1)
		if strings.HasSuffix(r.URL.Path, provisioning.PathValidate) {
			e.prechecks.Lock()
			e.prechecks.at = append(e.prechecks.at, time.Now())
			e.prechecks.Unlock()
		}
		e.sim.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e.simURL = e.sim.BaseURL(srv.URL)
	t.Cleanup(func() {
		if t.Failed() {
			if ls, err := consumer.Lag(context.Background(), &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 5 * time.Second}, e.group, e.orders); err == nil {
				t.Logf("lag at the end: %+v", ls)
			}
			var notable []string
			sc := bufio.NewScanner(bytes.NewReader(e.logs.Bytes()))
			sc.Buffer(make([]byte, 1<<20), 1<<24)
			for sc.Scan() {
				if !bytes.Contains(sc.Bytes(), []byte(`"message":"order finished"`)) {
					notable = append(notable, sc.Text())
				}
			}
			if len(notable) > 0 {
				t.Logf("last log lines of the in-process provisioners, but for finished orders:\n%s", tail([]byte(strings.Join(notable, "\n")), 30))
			}
		}
	})
	return e
}

// ---------------------------------------------------------------- orders

// orderSet is the orders of one test, published in this order.
type orderSet struct {
	msgs []kafka.Message
	ids  []string
	byID map[string]schemas.Order
	// want is each order's expected outcome status.
	want map[string]schemas.OutcomeStatus
	// rejected are the orders the precheck rejects (failed + dead letter).
	rejected map[string]bool
}

// makeOrders makes n valid orders; every rejectEvery-th (0: none) is in the
// domain whose precheck the simulator rejects.
func (e *env) makeOrders(n, rejectEvery int) orderSet {
	run := kafkatest.Name(e.t, "r")
	run = strings.ReplaceAll(run[len(run)-12:], ".", "-")
	s := orderSet{byID: map[string]schemas.Order{}, want: map[string]schemas.OutcomeStatus{}, rejected: map[string]bool{}}
	now := time.Now()
	for i := range n {
		o := sample.Order("rel"+run, i, now)
		status := schemas.StatusProvisioned
		if rejectEvery > 0 && i%rejectEvery == rejectEvery-1 {
			o = sample.WithDomain(o, "rej", sample.RejectDomain)
			status = schemas.StatusFailed
			s.rejected[o.OrderID] = true
		}
		s.msgs = append(s.msgs, sample.Message(o))
		s.ids = append(s.ids, o.OrderID)
		s.byID[o.OrderID] = o
		s.want[o.OrderID] = status
	}
	return s
}

// valid counts the orders expected to be provisioned.
func (s orderSet) valid() int { return len(s.ids) - len(s.rejected) }

// publish writes msgs to the orders topic, keyed by subscriber, acks=all.
func (e *env) publish(msgs []kafka.Message) {
	e.t.Helper()
	w := &kafka.Writer{
		Addr:         kafka.TCP(e.brokers...),
		Topic:        e.orders,
		Balancer:     kafka.Murmur2Balancer{Consistent: true},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    1000,
		BatchBytes:   16 << 20,
		BatchTimeout: 5 * time.Millisecond,
	}
	defer w.Close()
	if err := w.WriteMessages(e.ctx, msgs...); err != nil {
		e.t.Fatalf("publishing %d orders: %v", len(msgs), err)
	}
}

// positions reads the orders topic back and returns, per partition, the order
// ids by offset (a fresh topic: offsets start at 0).
func (e *env) positions() map[int][]string {
	e.t.Helper()
	byPart := map[int][]string{}
	for _, l := range e.lag() {
		if l.End == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.brokers, Topic: e.orders, Partition: l.Partition,
			MaxBytes: 16 << 20, MaxWait: 200 * time.Millisecond})
		for {
			m, err := r.ReadMessage(e.ctx)
			if err != nil {
				r.Close()
				e.t.Fatalf("reading the orders topic back: %v", err)
			}
			var head struct {
				OrderID string `json:"orderId"`
			}
			_ = json.Unmarshal(m.Value, &head)
			if int64(len(byPart[m.Partition])) != m.Offset {
				r.Close()
				e.t.Fatalf("partition %d: offset %d after %d records", m.Partition, m.Offset, len(byPart[m.Partition]))
			}
			byPart[m.Partition] = append(byPart[m.Partition], head.OrderID)
			if m.Offset == l.End-1 {
				break
			}
		}
		r.Close()
	}
	return byPart
}

// ---------------------------------------------------------------- downstream readers

// collector reads the outcome or dead-letter topic from its start, as a
// downstream system would, one reader per partition (no consumer group, so
// that it rides out a broker outage without rebalancing), and decodes as it goes.
type collector struct {
	mu       sync.Mutex
	records  int
	outcomes map[string][]schemas.Outcome    // by order id, in arrival order
	dead     map[string][]schemas.DeadLetter // by order id ("" for records without one)
	problems []string
}

// collect starts reading topic; outcome says how to decode it.
func (e *env) collect(topic string, outcome bool, partitions int) *collector {
	c := &collector{outcomes: map[string][]schemas.Outcome{}, dead: map[string][]schemas.DeadLetter{}}
	ctx, cancel := context.WithCancel(e.ctx)
	var wg sync.WaitGroup
	for p := range partitions {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.brokers, Topic: topic, Partition: p,
			MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond, ReadBackoffMax: 500 * time.Millisecond})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					// The reader reconnects by itself (a broker outage, say).
					time.Sleep(100 * time.Millisecond)
					continue
				}
				c.add(m, outcome)
			}
		}()
	}
	e.t.Cleanup(func() {
		cancel()
		wg.Wait()
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, p := range c.problems {
			if i == 10 {
				e.t.Errorf("... %d problems in all with the records of %s", len(c.problems), topic)
				break
			}
			e.t.Error(p)
		}
	})
	return c
}

func (c *collector) add(m kafka.Message, outcome bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records++
	if !outcome {
		var d schemas.DeadLetter
		if err := json.Unmarshal(m.Value, &d); err != nil {
			c.problems = append(c.problems, fmt.Sprintf("dead letter at %d is not JSON: %v", m.Offset, err))
		}
		c.dead[d.OrderID] = append(c.dead[d.OrderID], d)
		return
	}
	var o schemas.Outcome
	if err := json.Unmarshal(m.Value, &o); err != nil {
		c.problems = append(c.problems, fmt.Sprintf("outcome at %d/%d is not JSON: %v", m.Partition, m.Offset, err))
		return
	}
	if testkit.Header(m, producer.HeaderEventID) != o.EventID || testkit.Header(m, producer.HeaderOrderID) != o.OrderID ||
		testkit.Header(m, producer.HeaderOutcome) != string(o.Status) {
		c.problems = append(c.problems, fmt.Sprintf("outcome of %s: headers %v disagree with the body", o.OrderID, m.Headers))
	}
	// A pending order's final outcome has an id of its own, and names the pending one's.
	if prev := c.outcomes[o.OrderID]; len(prev) > 0 && prev[0].EventID != o.EventID && o.PendingEventID != prev[0].EventID {
		c.problems = append(c.problems, fmt.Sprintf("order %s answered twice with different event ids %s and %s", o.OrderID, prev[0].EventID, o.EventID))
	}
	c.outcomes[o.OrderID] = append(c.outcomes[o.OrderID], o)
}

// count returns the number of records and of distinct orders answered.
func (c *collector) count() (records, distinct int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.outcomes) > 0 {
		return c.records, len(c.outcomes)
	}
	return c.records, len(c.dead)
}

// snapshot returns copies of the decoded records.
func (c *collector) snapshot() (map[string][]schemas.Outcome, map[string][]schemas.DeadLetter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := make(map[string][]schemas.Outcome, len(c.outcomes))
	for k, v := range c.outcomes {
		o[k] = append([]schemas.Outcome(nil), v...)
	}
	d := make(map[string][]schemas.DeadLetter, len(c.dead))
	for k, v := range c.dead {
		d[k] = append([]schemas.DeadLetter(nil), v...)
	}
	return o, d
}

// waitAnswered waits until n distinct orders are answered.
func (e *env) waitAnswered(c *collector, n int) {
	e.t.Helper()
	testkit.WaitFor(e.ctx, e.t, fmt.Sprintf("%d orders answered", n), func() error {
		if _, d := c.count(); d < n {
			return fmt.Errorf("%d of %d", d, n)
		}
		return nil
	})
}

// checkOutcomes checks every order's outcome against the expected status and
// event id (the collector checks the headers and that copies agree); it
// returns the number of redelivered copies and of orders without an outcome.
func (e *env) checkOutcomes(c *collector, s orderSet) (redelivered, lost int) {
	e.t.Helper()
	got, _ := c.snapshot()
	checkedIDs := 0
	for i, id := range s.ids {
		outs := got[id]
		if len(outs) == 0 {
			lost++
			if lost <= 10 {
				e.t.Errorf("order %s has no outcome", id)
			}
			continue
		}
		redelivered += len(outs) - 1
		// The event id is the one the pipeline derives from the order (checked
		// for the redelivered orders and a sample of the others: decoding every
		// order again is slow under the race detector).
		if len(outs) > 1 && checkedIDs < 1000 || i%25 == 0 {
			checkedIDs++
			want, err := pipeline.EventIDOf(s.msgs[i])
			if err != nil {
				e.t.Fatal(err)
			}
			if outs[0].EventID != want {
				e.t.Errorf("order %s: event id %s, want %s", id, outs[0].EventID, want)
			}
		}
		if outs[0].Status != s.want[id] {
			e.t.Errorf("order %s: %s, want %s (%+v)", id, outs[0].Status, s.want[id], outs[0].Failure)
		}
	}
	if lost > 10 {
		e.t.Errorf("... %d orders in all have no outcome", lost)
	}
	for id := range got {
		if _, ok := s.byID[id]; !ok {
			e.t.Errorf("outcome for an order never sent: %s", id)
		}
	}
	return redelivered, lost
}

// checkCreates checks that the simulator created each subscriber at most once
// and exactly want subscribers in all.
func (e *env) checkCreates(want int) {
	e.t.Helper()
	st := e.sim.Stats()
	if st.MaxCreatesPerEmail > 1 || st.EmailsCreatedMoreThanOnce > 0 {
		e.t.Errorf("a subscriber was created %d times (%d emails more than once)", st.MaxCreatesPerEmail, st.EmailsCreatedMoreThanOnce)
	}
	if st.Creates != int64(want) {
		e.t.Errorf("the simulator created %d subscribers, want %d", st.Creates, want)
	}
}

// ---------------------------------------------------------------- offsets

func (e *env) lag() []consumer.PartitionLag {
	e.t.Helper()
	ls, err := lagOf(e, e.group, e.orders)
	if err != nil {
		e.t.Fatal(err)
	}
	return ls
}

// lagOf returns the end and committed offsets of group on topic.
func lagOf(e *env, group, topic string) ([]consumer.PartitionLag, error) {
	return consumer.Lag(e.ctx, e.kafkaClient(), group, topic)
}

func (e *env) kafkaClient() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 10 * time.Second}
}

func committed(ls []consumer.PartitionLag) map[int]int64 {
	out := map[int]int64{}
	for _, l := range ls {
		out[l.Partition] = l.Committed
	}
	return out
}

// waitNoLag waits until no partition lags.
func (e *env) waitNoLag() {
	e.t.Helper()
	if _, err := consumer.WaitCaughtUp(e.ctx, e.kafkaClient(), e.group, e.orders); err != nil {
		e.t.Fatal(err)
	}
}

// ---------------------------------------------------------------- figures

// figures are one test's numbers, logged in one uniform line that
// docs/reliability.md quotes: go test -v ./reliability | grep FIGURES
type figures struct {
	orders      int
	faults      string
	outcomes    int // outcome records
	answered    int // distinct orders answered
	redelivered int // outcome records beyond the first of an order (same event id)
	deadLetters int
	duplicates  int // subscribers created more than once
	lost        int // orders without an outcome
	took        time.Duration
}

func (f figures) log(t *testing.T) {
	t.Helper()
	t.Logf("FIGURES %s | orders %d | faults: %s | outcomes %d of %d orders (%d records, %d redelivered) | dead letters %d | duplicates %d | lost %d | %s",
		t.Name(), f.orders, f.faults, f.answered, f.orders, f.outcomes, f.redelivered, f.deadLetters, f.duplicates, f.lost, f.took.Round(100*time.Millisecond))
}

// ---------------------------------------------------------------- in-process provisioners

// appConfig is the configuration of a provisioner for this env: short retries,
// commits every second.
func (e *env) appConfig() app.Config {
	cfg := app.DefaultConfig()
	cfg.Brokers = e.brokers
	cfg.GroupID = e.group
	cfg.OrdersTopic, cfg.OutcomesTopic, cfg.DeadLetterTopic = e.orders, e.outs, e.dlt
	cfg.Client.BaseURL = e.simURL
	cfg.WebexToken = simToken
	cfg.Client.RequestTimeout = 5 * time.Second
	cfg.Workflow.RetryInitialInterval = 50 * time.Millisecond
	cfg.Workflow.RetryMaxInterval = time.Second
	cfg.Workflow.StatusPollInterval = 100 * time.Millisecond
	return cfg
}

// instance is a provisioner running in the test process.
type instance struct {
	name   string
	app    *app.App
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	once   sync.Once
}

// startApp runs a provisioner in-process until stop (or the end of the test).
func (e *env) startApp(name string, cfg app.Config) *instance {
	e.t.Helper()
	if err := cfg.Validate(); err != nil {
		e.t.Fatal(err)
	}
	log := zerolog.New(e.logs).With().Timestamp().Str("member", name).Logger()
	a, err := app.New(context.Background(), cfg, log)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	in := &instance{name: name, app: a, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(in.done)
		in.err = a.Run(ctx)
		_ = a.Close()
	}()
	e.t.Cleanup(in.stop)
	return in
}

// stop stops the instance as SIGTERM would and waits until it left the group.
func (in *instance) stop() {
	in.once.Do(func() { in.cancel(); <-in.done })
}

func (in *instance) running() bool {
	select {
	case <-in.done:
		return false
	default:
		return true
	}
}

// ---------------------------------------------------------------- child processes

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	// Log times to the nanosecond, so that the tests can space log lines.
	zerolog.TimeFieldFormat = time.RFC3339Nano
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// binary builds cmd/provisioner once per test run and returns its path.
func binary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		root, err := kafkatest.ModuleRoot()
		if err != nil {
			build.err = err
			return
		}
		if build.dir, err = os.MkdirTemp("", "reliability-bin-"); err != nil {
			build.err = err
			return
		}
		build.bin = filepath.Join(build.dir, "provisioner")
		cmd := exec.Command("go", "build", "-o", build.bin, "./cmd/provisioner")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/provisioner: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

// proc is `provisioner run` as a child process.
type proc struct {
	t        *testing.T
	name     string
	cmd      *exec.Cmd
	logs     *testkit.Buffer
	httpAddr string
	done     chan struct{}
	exitCode int
	exited   time.Time
}

// startProc runs `provisioner run` configured, as a deployment is, by
// PROVISIONER_* variables; env adds or overrides some (e.g.
// PROVISIONER_MAX_IN_FLIGHT).
func (e *env) startProc(name string, env map[string]string) *proc {
	e.t.Helper()
	p := &proc{t: e.t, name: name, logs: &testkit.Buffer{}, httpAddr: testkit.FreeAddr(e.t), done: make(chan struct{})}
	vars := map[string]string{
		"PROVISIONER_BROKERS":                strings.Join(e.brokers, ","),
		"PROVISIONER_GROUP_ID":               e.group,
		"PROVISIONER_ORDERS_TOPIC":           e.orders,
		"PROVISIONER_OUTCOMES_TOPIC":         e.outs,
		"PROVISIONER_DEAD_LETTER_TOPIC":      e.dlt,
		"PROVISIONER_WEBEX_BASE_URL":         e.simURL,
		"PROVISIONER_WEBEX_TOKEN":            simToken,
		"PROVISIONER_REQUEST_TIMEOUT":        "5s",
		"PROVISIONER_RETRY_INITIAL_INTERVAL": "50ms",
		"PROVISIONER_RETRY_MAX_INTERVAL":     "1s",
		"PROVISIONER_STATUS_POLL_INTERVAL":   "100ms",
		"PROVISIONER_HTTP_ADDR":              p.httpAddr,
		"PROVISIONER_LOG_FORMAT":             "json",
		"PROVISIONER_LOG_LEVEL":              "info",
	}
	for k, v := range env {
		vars[k] = v
	}
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PROVISIONER_") {
			environ = append(environ, kv)
		}
	}
	for k, v := range vars {
		environ = append(environ, k+"="+v)
	}
	p.cmd = exec.Command(binary(e.t), "run")
	p.cmd.Env = environ
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		p.exited = time.Now()
		p.exitCode = p.cmd.ProcessState.ExitCode()
		if err != nil && p.exitCode == 0 {
			p.exitCode = -1
		}
		close(p.done)
	}()
	e.t.Cleanup(func() {
		if p.running() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if e.t.Failed() {
			e.t.Logf("%s: last log lines:\n%s", p.name, tail(p.logs.Bytes(), 15))
		}
	})
	return p
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill ends the process with SIGKILL, as a crash would.
func (p *proc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatal(err)
	}
	<-p.done
}

// terminate sends SIGTERM and waits up to limit for the exit; it returns the
// exit code and how long the exit took.
func (p *proc) terminate(limit time.Duration) (code int, took time.Duration) {
	p.t.Helper()
	at := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(limit):
		p.t.Fatalf("%s did not exit within %s of SIGTERM", p.name, limit)
	}
	return p.exitCode, p.exited.Sub(at)
}

// waitReady waits until /readyz answers 200.
func (p *proc) waitReady(ctx context.Context) {
	p.t.Helper()
	testkit.WaitFor(ctx, p.t, p.name+" ready", func() error {
		if !p.running() {
			return fmt.Errorf("exited with %d: %s", p.exitCode, tail(p.logs.Bytes(), 5))
		}
		code, r, err := readyz(p.httpAddr)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("/readyz %d %+v %v", code, r, err)
		}
		return nil
	})
}

// readyz asks a provisioner's /readyz.
func readyz(addr string) (int, app.Readiness, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, app.Readiness{}, err
	}
	defer resp.Body.Close()
	var r app.Readiness
	err = json.NewDecoder(resp.Body).Decode(&r)
	return resp.StatusCode, r, err
}

// ---------------------------------------------------------------- logs

// logLine is the part of a provisioner's JSON log line the tests read.
type logLine struct {
	Time      time.Time `json:"time"`
	Level     string    `json:"level"`
	Message   string    `json:"message"`
	Member    string    `json:"member"`
	Partition int       `json:"partition"`
	Offset    int64     `json:"offset"`
	OrderID   string    `json:"order_id"`
	RetryIn   float64   `json:"retry_in_ms"` // zerolog writes durations in milliseconds
	Error     string    `json:"error"`
}

// prechecksAfter counts the precheck calls that arrived after t: the orders
// started after t.
func (e *env) prechecksAfter(t time.Time) int {
	e.prechecks.Lock()
	defer e.prechecks.Unlock()
	n := 0
	for _, at := range e.prechecks.at {
		if at.After(t) {
			n++
		}
	}
	return n
}

// linesWith returns the log lines whose message starts with prefix.
func linesWith(logs []byte, prefix string) []logLine {
	var out []logLine
	sc := bufio.NewScanner(bytes.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && strings.HasPrefix(l.Message, prefix) {
			out = append(out, l)
		}
	}
	return out
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---------------------------------------------------------------- small helpers

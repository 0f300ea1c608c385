package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// Trial is what one consumer did with one set of orders, on fresh topics and a
// fresh simulator.
type Trial struct {
	// Consumer is "engine", "engine (child)", "baseline" or "kafka pipe".
	Consumer string `json:"consumer"`
	// Orders is how many orders the trial published; Answered how many got an
	// outcome; DuplicateOutcomes counts outcomes beyond the first of an order
	// (redeliveries); Failed counts outcomes with status failed.
	Orders            int `json:"orders"`
	Answered          int `json:"answered"`
	DuplicateOutcomes int `json:"duplicateOutcomes"`
	Failed            int `json:"failed"`
	// Partial is set when the trial's time bound ended it before every order
	// was answered; the rates are then those reached until the bound.
	Partial bool `json:"partial"`
	// WallSeconds runs from the consumer's start to the moment the observer
	// read the last outcome (or the bound).
	WallSeconds  float64 `json:"wallSeconds"`
	OrdersPerSec float64 `json:"ordersPerSec"`
	// P50Ms and P99Ms are order latencies: the outcome record's timestamp (set by
	// the service's writer as it sends it; the acknowledgement follows within that
	// write's round trip) minus the order record's timestamp (its publication).
	// With a backlog published before the start, they are mostly queueing.
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
	// CPUSeconds is the CPU time (user + system) used from the start to the last
	// outcome; Scope says whose, for it and PeakRSSMiB: "process" (this whole process: the consumer,
	// the in-process broker, the simulator, the observer) or "service" (a child
	// process's own).
	CPUSeconds        float64 `json:"cpuSeconds"`
	CPUMicrosPerOrder float64 `json:"cpuMicrosPerOrder"`
	Scope             string  `json:"scope"`
	// PeakRSSMiB is the peak resident memory during the trial, with the same scope.
	PeakRSSMiB float64 `json:"peakRssMiB"`
	// Requests is the number of API calls the simulator answered, TooMany how
	// many of them with 429. APIRequestsPerSec is the calls not answered 429 per
	// second, from the first call to the last outcome.
	Requests          int64   `json:"requests"`
	TooMany           int64   `json:"tooMany"`
	APIRequestsPerSec float64 `json:"apiRequestsPerSec"`
	CallsPerOrder     float64 `json:"callsPerOrder"`
	// MaxCreatesPerEmail is the most subscribers the simulator created for one
	// email: above 1 means an order was provisioned twice.
	MaxCreatesPerEmail int `json:"maxCreatesPerEmail"`
	// MaxCallGapMs is, in a scenario with a disruption, the longest time the
	// whole group made no API call from the disruption's start to the last
	// outcome; ServedAgainMs how long after the kill (or the static restart,
	// the first SIGTERM, the broker answering again) every partition had an
	// outcome again.
	MaxCallGapMs  float64 `json:"maxCallGapMs,omitempty"`
	ServedAgainMs float64 `json:"servedAgainMs,omitempty"`
	// CallsPerSecAfter is the group's API calls per second (429s included)
	// in the disruptionWindow after the event, or until the last outcome
	// when the run ends sooner.
	CallsPerSecAfter float64 `json:"callsPerSecAfter,omitempty"`
	// CallsAround is the group's API calls in each second from 5 s before the
	// event to the end of the window after it: the shape of the recovery.
	CallsAround []int64 `json:"callsAround,omitempty"`
	// OtherCPUSeconds is the CPU time that other processes used meanwhile: a
	// real broker's, and any other work on the machine, which makes the figures
	// noisy (OtherCPUShare).
	OtherCPUSeconds float64 `json:"otherCpuSeconds"`
}

// OtherCPUShare is OtherCPUSeconds as a share of the machine's CPU time during
// the trial.
func (t Trial) OtherCPUShare() float64 {
	if t.WallSeconds <= 0 {
		return 0
	}
	return t.OtherCPUSeconds / (t.WallSeconds * float64(runtime.NumCPU()))
}

// consumerKind is the consumer a trial measures.
type consumerKind string

const (
	kindEngine   consumerKind = "engine"
	kindBaseline consumerKind = "baseline"
	kindPipe     consumerKind = "kafka pipe"
	// kindSolo is the engine as one instance, the baseline of the
	// scenarios that measure a group of instances.
	kindSolo consumerKind = "engine alone"
	// kindCalm is the engine's group undisturbed, the baseline of the
	// scenarios that disrupt it.
	kindCalm consumerKind = "engine undisturbed"
)

// trialSpec says what one trial runs.
type trialSpec struct {
	kind        consumerKind
	orders      int
	maxDuration time.Duration
	isolate     bool   // the engine runs as a child process
	disrupt     bool   // the scenario's disruption runs beside the trial
	instances   int    // engine instances in the group (at least 1)
	profile     string // file for a CPU profile of the trial, "" for none
}

// runner runs the trials of one scenario on one broker.
type runner struct {
	sc     Scenario
	broker Broker
	opts   Options
	runID  string // the orders of the current repeat
}

// trial publishes spec.orders orders to fresh topics, runs the consumer against
// a fresh simulator until every order is answered or the bound passes, and
// measures it.
func (r *runner) trial(ctx context.Context, spec trialSpec) (Trial, error) {
	ts := newTopicSet(r.sc.Name, string(spec.kind), r.sc.Partitions)
	cl, err := r.broker.open(ctx, ts)
	if err != nil {
		return Trial{}, err
	}
	defer cl.close()
	sim, err := startSimulator(ctx, r.sc)
	if err != nil {
		return Trial{}, err
	}
	defer sim.stop()
	set := newOrderSet(r.runID, spec.orders, r.sc.Keys()) // a baseline with fewer orders gets the first ones
	pub := newPublisher(cl.addrs, ts.orders, set)
	defer pub.close()
	if r.sc.ProduceRate == 0 {
		if err := pub.backlog(ctx); err != nil {
			return Trial{}, err
		}
	}
	obs := startObserver(ctx, cl.addrs, ts.outcomes, ts.partitions, set)
	defer obs.stop()
	t, err := r.measure(ctx, spec, r.env(cl.addrs, ts, sim.baseURL), pub, obs, sim)
	if err != nil {
		return Trial{}, fmt.Errorf("%s trial: %w", spec.kind, err)
	}
	// Idle connections to a broker that is about to stop would only log errors.
	if tr, ok := kafka.DefaultTransport.(*kafka.Transport); ok {
		tr.CloseIdleConnections()
	}
	return t, nil
}

// env returns the configuration of the consumer under test.
func (r *runner) env(addrs []string, ts topicSet, baseURL string) trialEnv {
	cfg := r.sc.config()
	cfg.Brokers = addrs
	cfg.GroupID = ts.group
	cfg.OrdersTopic, cfg.OutcomesTopic, cfg.DeadLetterTopic, cfg.BudgetTopic = ts.orders, ts.outcomes, ts.deadLetters, ts.budget
	cfg.Client.BaseURL, cfg.WebexToken = baseURL, simToken
	cfg.LogLevel = r.opts.LogLevel
	// Logs are formatted as in production, then dropped: their cost is measured,
	// not that of a disk.
	return trialEnv{cfg: cfg, partitions: ts.partitions, log: app.NewLogger(io.Discard, cfg.LogLevel, "json"), logDir: r.opts.ServiceLogDir}
}

// measure starts the consumer and measures it until every order is answered or
// spec.maxDuration passes.
func (r *runner) measure(ctx context.Context, spec trialSpec, env trialEnv, pub *publisher, obs *observer, sim *simulator) (Trial, error) {
	settle()
	stopProfile, err := startProfile(spec.profile)
	if err != nil {
		return Trial{}, err
	}
	defer stopProfile()
	others, err := startOtherCPU()
	if err != nil {
		return Trial{}, err
	}
	start := time.Now()
	svc, err := r.start(ctx, spec, env)
	if err != nil {
		return Trial{}, err
	}
	stopPacing := r.startPacing(ctx, pub)
	var d *disruption
	if g, ok := svc.(instances); ok && spec.disrupt {
		d = r.disrupt(ctx, g, env, spec.orders, obs, sim)
	}
	partial, werr := waitAnswered(ctx, obs, spec.maxDuration)
	var derr error
	if d != nil {
		<-d.done
		derr = d.err
	}
	use, uerr := svc.usage()
	stats, end := sim.sim.Stats(), time.Now()
	childCPU := time.Duration(0)
	if use.scope == scopeService {
		childCPU = use.cpu
	}
	other, cerr := others.since(childCPU)
	stopProfile()
	serr := svc.stop()
	perr := stopPacing()
	snap, oerr := obs.snapshot()
	if err := errors.Join(werr, derr, uerr, cerr, serr, perr, oerr); err != nil {
		return Trial{}, err
	}
	if c, ok := svc.(interface{ peakRSS() int64 }); ok && c.peakRSS() > 0 {
		use.peakRSS = c.peakRSS()
	}
	if !snap.doneAt.IsZero() {
		end = snap.doneAt
	}
	label := string(spec.kind)
	if spec.instances > 1 {
		label += fmt.Sprintf(" ×%d", spec.instances)
	}
	if spec.isolate {
		label += " (child)"
	}
	f := facts{label: label, orders: spec.orders, partial: partial, start: start, end: end, use: use,
		obs: snap, stats: stats, firstCall: sim.firstCall.Load(), other: other}
	t := f.trial()
	if d != nil {
		t.MaxCallGapMs = float64(sim.gaps.longest.Load()) / 1e6
		t.ServedAgainMs = float64(servedAgain(snap.times, d.at).Milliseconds())
		if !d.at.IsZero() {
			t.CallsPerSecAfter = sim.callsPerSec(d.at, min(disruptionWindow, end.Sub(d.at)))
			t.CallsAround = sim.callsEachSecond(d.at.Add(-5*time.Second), int((5*time.Second+min(disruptionWindow, end.Sub(d.at)))/time.Second))
		}
	}
	r.progress(t)
	return t, nil
}

// start starts the consumer of spec.
func (r *runner) start(ctx context.Context, spec trialSpec, env trialEnv) (running, error) {
	switch spec.kind {
	case kindEngine, kindSolo, kindCalm:
		return r.startGroup(ctx, spec, env)
	case kindBaseline:
		return startBaseline(ctx, env)
	default:
		return startPipe(ctx, env)
	}
}

// startPacing publishes the orders at the scenario's rate while the consumer
// runs, when the scenario asks for it. The returned function stops it and
// returns its error.
func (r *runner) startPacing(ctx context.Context, pub *publisher) func() error {
	if r.sc.ProduceRate <= 0 {
		return func() error { return nil }
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go pprof.Do(ctx, pprof.Labels("component", "producer"), func(ctx context.Context) {
		done <- pub.paced(ctx, r.sc.ProduceRate)
	})
	return func() error {
		cancel()
		return <-done
	}
}

// waitAnswered waits until every order is answered (partial false), d passes
// (partial true) or ctx ends (its error).
func waitAnswered(ctx context.Context, obs *observer, d time.Duration) (partial bool, err error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-obs.done:
		return false, nil
	case <-t.C:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// startProfile starts a CPU profile into path, if one is asked for, and
// writes the allocations so far to path.allocs.base; the returned function
// stops the profile and writes the allocations to path.allocs, so that
// `go tool pprof -sample_index=alloc_space -diff_base path.allocs.base
// path.allocs` shows the trial's. It may be called more than once.
func startProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	if err := writeAllocs(path + ".allocs.base"); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("creating the CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting the CPU profile: %w", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			f.Close()
			_ = writeAllocs(path + ".allocs")
		})
	}, nil
}

func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating the allocation profile: %w", err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("writing the allocation profile: %w", err)
	}
	return nil
}

func (r *runner) progress(t Trial) {
	if r.opts.Progress == nil {
		return
	}
	state := "all answered"
	if t.Partial {
		state = "time bound reached"
	}
	fmt.Fprintf(r.opts.Progress, "bench: %s/%s %s: %d of %d orders in %.1fs (%.0f/s), %s\n",
		r.sc.Name, r.broker.Name(), t.Consumer, t.Answered, t.Orders, t.WallSeconds, t.OrdersPerSec, state)
}

// facts are the raw measurements of one trial.
type facts struct {
	label      string
	orders     int
	partial    bool
	start, end time.Time
	use        usage
	obs        observation
	stats      webexsim.Stats
	firstCall  int64 // Unix nanoseconds, 0 if no call was made
	other      time.Duration
}

// trial turns the facts into the reported figures.
func (f facts) trial() Trial {
	wall := f.end.Sub(f.start).Seconds()
	t := Trial{
		Consumer: f.label, Orders: f.orders, Answered: f.obs.answered,
		DuplicateOutcomes: f.obs.duplicates, Failed: f.obs.failed, Partial: f.partial,
		WallSeconds: wall,
		P50Ms:       float64(percentile(f.obs.latencies, 50)),
		P99Ms:       float64(percentile(f.obs.latencies, 99)),
		CPUSeconds:  f.use.cpu.Seconds(), Scope: f.use.scope,
		PeakRSSMiB: float64(f.use.peakRSS) / (1 << 20),
		Requests:   f.stats.Requests, TooMany: f.stats.TooManyRequests,
		MaxCreatesPerEmail: f.stats.MaxCreatesPerEmail,
		OtherCPUSeconds:    f.other.Seconds(),
	}
	if wall > 0 {
		t.OrdersPerSec = float64(t.Answered) / wall
	}
	if t.Answered > 0 {
		t.CPUMicrosPerOrder = f.use.cpu.Seconds() * 1e6 / float64(t.Answered)
		t.CallsPerOrder = float64(t.Requests) / float64(t.Answered)
	}
	if f.firstCall > 0 {
		if span := f.end.Sub(time.Unix(0, f.firstCall)).Seconds(); span > 0 {
			t.APIRequestsPerSec = float64(t.Requests-t.TooMany) / span
		}
	}
	return t
}

// startGroup starts spec.instances instances of the engine in one group,
// in this process or as child processes.
func (r *runner) startGroup(ctx context.Context, spec trialSpec, env trialEnv) (running, error) {
	var g instances
	for i := range max(spec.instances, 1) {
		var (
			one running
			err error
		)
		if spec.isolate {
			one, err = startChild(ctx, r.opts.ServiceCommand, r.instanceEnv(env, i))
		} else {
			one, err = startEngine(ctx, env)
		}
		if err != nil {
			_ = g.stop()
			return nil, err
		}
		g = append(g, one)
	}
	if len(g) == 1 && !spec.disrupt {
		return g[0], nil
	}
	return g, nil
}

// instances are the engine instances of one group.
type instances []running

// usage is, for child processes, the sum of their CPU and the largest of
// their peak RSS; in-process, every instance shares the process's usage.
func (g instances) usage() (usage, error) {
	var total usage
	for i, one := range g {
		u, err := one.usage()
		if err != nil {
			return usage{}, err
		}
		if u.scope != scopeService {
			if i == 0 {
				return u, nil
			}
			continue
		}
		total.cpu += u.cpu
		total.peakRSS = max(total.peakRSS, u.peakRSS)
		total.scope = u.scope
	}
	return total, nil
}

// peakRSS is the largest peak RSS of the children, once they have exited.
func (g instances) peakRSS() int64 {
	var p int64
	for _, one := range g {
		if c, ok := one.(*child); ok {
			p = max(p, c.peakRSS())
		}
	}
	return p
}

func (g instances) stop() error {
	var errs []error
	for _, one := range g {
		errs = append(errs, one.stop())
	}
	return errors.Join(errs...)
}

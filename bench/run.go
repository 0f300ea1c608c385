package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Options are the settings of Run that are not part of a scenario. The zero
// value of each field selects the default given in its comment.
type Options struct {
	// Repeat is how many times each trial runs; the result holds the median of
	// every figure. Default 1.
	Repeat int
	// Smoke marks a run of Scenario.Smoke: bars are not judged, but every order
	// must be answered (see Result.Check).
	Smoke bool
	// CPUProfile is a file to write a CPU profile of the engine's first trial
	// to, when the engine runs in-process. Goroutines carry the label
	// component=engine|broker|simulator|observer|... so that
	// `go tool pprof -tagfocus=component=engine` shows the service alone.
	CPUProfile string
	// ServiceCommand starts the provisioner as a child process for scenarios
	// with Isolate, e.g. {"/path/to/provisioner", "run"}; it is configured by
	// PROVISIONER_* variables. Default none: the engine runs in-process and its
	// peak RSS is the whole process's.
	ServiceCommand []string
	// BrokerControl is the command that kills and starts the real broker for
	// the broker-restart scenario: it is run with "stop --kill" and with
	// "start" (which must return once the broker answers), as
	// scripts/kafka-local is. Default none: that scenario cannot run.
	BrokerControl []string
	// LogLevel is the service's log level; logs are formatted, then dropped.
	// Default "info", as in production.
	LogLevel string
	// ServiceLogDir, when set, keeps the logs of every child process in a
	// file of its own there (provisioner-*.log), to see what a group did.
	ServiceLogDir string
	// HTTPCeilingDuration is how long the bare HTTP round trips run. Default 3s.
	HTTPCeilingDuration time.Duration
	// Progress receives a line per trial. Default: none.
	Progress io.Writer
}

func (o *Options) setDefaults() {
	if o.Repeat < 1 {
		o.Repeat = 1
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.HTTPCeilingDuration <= 0 {
		o.HTTPCeilingDuration = 3 * time.Second
	}
}

// Result is one scenario on one broker: the median of each figure over the
// repeats, the runs themselves, and the bars.
type Result struct {
	Scenario Scenario `json:"scenario"`
	Broker   string   `json:"broker"`
	Repeat   int      `json:"repeat"`
	Smoke    bool     `json:"smoke"`
	Engine   Trial    `json:"engine"`
	Baseline Trial    `json:"baseline"`
	// Ceiling is set for scenarios that measure it.
	Ceiling      *Ceiling `json:"ceiling,omitempty"`
	Bars         []Bar    `json:"bars"`
	EngineRuns   []Trial  `json:"engineRuns"`
	BaselineRuns []Trial  `json:"baselineRuns"`
}

// Run runs a scenario on a broker: per repeat, a trial of the engine, one of
// the baseline on the same orders (or their first Scenario.BaselineOrders), and
// for scenarios with Ceiling bare HTTP round trips just before and just after
// the engine's trial, and the bare Kafka pipe.
func Run(ctx context.Context, sc Scenario, b Broker, opts Options) (Result, error) {
	if err := sc.Validate(); err != nil {
		return Result{}, err
	}
	opts.setDefaults()
	r := &runner{sc: sc, broker: b, opts: opts}
	res := Result{Scenario: sc, Broker: b.Name(), Repeat: opts.Repeat, Smoke: opts.Smoke}
	var (
		pipes []Trial
		https []float64
	)
	for i := range opts.Repeat {
		r.runID = newRunID()
		// The bare HTTP round trips bracket the engine's trial: this machine's
		// speed drifts over minutes (bare HTTP from 26,000 to 47,000 requests/s
		// between runs), and the two sides of a ratio should meet the same
		// conditions. Their mean is the repeat's figure.
		var before float64
		if sc.Ceiling {
			h, err := r.bareHTTP(ctx, "before the engine")
			if err != nil {
				return res, err
			}
			before = h
		}
		e, err := r.trial(ctx, r.engineSpec(i == 0))
		if err != nil {
			return res, err
		}
		if sc.Ceiling {
			after, err := r.bareHTTP(ctx, "after the engine")
			if err != nil {
				return res, err
			}
			https = append(https, (before+after)/2)
		}
		bl, err := r.trial(ctx, r.baselineSpec())
		if err != nil {
			return res, err
		}
		res.EngineRuns, res.BaselineRuns = append(res.EngineRuns, e), append(res.BaselineRuns, bl)
		if !sc.Ceiling {
			continue
		}
		p, err := r.trial(ctx, trialSpec{kind: kindPipe, orders: r.sc.Orders, maxDuration: r.sc.MaxDuration})
		if err != nil {
			return res, err
		}
		pipes = append(pipes, p)
	}
	res.Engine, res.Baseline = medianTrial(res.EngineRuns), medianTrial(res.BaselineRuns)
	if sc.Ceiling {
		res.Ceiling = &Ceiling{Pipe: medianTrial(pipes), HTTPRequestsPerSec: median(https), CallsPerOrder: res.Engine.CallsPerOrder}
		res.Ceiling.KafkaRecordsPerSec = res.Ceiling.Pipe.OrdersPerSec
		res.Ceiling.combine()
	}
	res.Bars = judge(res)
	return res, nil
}

func (r *runner) engineSpec(first bool) trialSpec {
	spec := trialSpec{kind: kindEngine, orders: r.sc.Orders, maxDuration: r.sc.MaxDuration,
		isolate: r.sc.Isolate && len(r.opts.ServiceCommand) > 0, instances: max(r.sc.Instances, 1), disrupt: r.sc.Disrupt != ""}
	if first && !spec.isolate {
		spec.profile = r.opts.CPUProfile
	}
	return spec
}

func (r *runner) baselineSpec() trialSpec {
	n := r.sc.Orders
	if r.sc.BaselineOrders > 0 {
		n = min(n, r.sc.BaselineOrders)
	}
	if r.sc.Disrupt != "" {
		return trialSpec{kind: kindCalm, orders: n, maxDuration: r.sc.BaselineMaxDuration,
			isolate: r.sc.Isolate && len(r.opts.ServiceCommand) > 0, instances: max(r.sc.Instances, 1)}
	}
	if r.sc.SoloBaseline {
		return trialSpec{kind: kindSolo, orders: n, maxDuration: r.sc.BaselineMaxDuration,
			isolate: r.sc.Isolate && len(r.opts.ServiceCommand) > 0, instances: 1}
	}
	return trialSpec{kind: kindBaseline, orders: n, maxDuration: r.sc.BaselineMaxDuration}
}

// bareHTTP measures bare HTTP round trips with the engine's concurrency.
func (r *runner) bareHTTP(ctx context.Context, when string) (float64, error) {
	settle()
	h, err := measureHTTP(ctx, r.sc.config().Consumer.MaxInFlight, r.opts.HTTPCeilingDuration)
	if err != nil {
		return 0, fmt.Errorf("measuring bare HTTP round trips: %w", err)
	}
	if r.opts.Progress != nil {
		fmt.Fprintf(r.opts.Progress, "bench: %s/%s bare HTTP %s: %.0f requests/s\n", r.sc.Name, r.broker.Name(), when, h)
	}
	return h, nil
}

// Check reports what makes the result unusable, whatever its speed: an order
// provisioned twice, a failed order, or, in smoke mode, an order left
// unanswered.
func (res Result) Check() error {
	var errs []error
	runs := append(append([]Trial{}, res.EngineRuns...), res.BaselineRuns...)
	if res.Ceiling != nil {
		runs = append(runs, res.Ceiling.Pipe)
	}
	for _, t := range runs {
		where := fmt.Sprintf("%s/%s %s", res.Scenario.Name, res.Broker, t.Consumer)
		if t.MaxCreatesPerEmail > 1 {
			errs = append(errs, fmt.Errorf("%s: a subscriber was created %d times", where, t.MaxCreatesPerEmail))
		}
		if t.Failed > 0 {
			errs = append(errs, fmt.Errorf("%s: %d orders failed", where, t.Failed))
		}
		if res.Smoke && t.Answered < t.Orders {
			errs = append(errs, fmt.Errorf("%s: %d of %d orders answered", where, t.Answered, t.Orders))
		}
	}
	return errors.Join(errs...)
}

// medianTrial returns a trial whose every figure is the median of runs', except
// that it is partial if any run was and MaxCreatesPerEmail is the largest.
func medianTrial(runs []Trial) Trial {
	if len(runs) == 0 {
		return Trial{}
	}
	med := func(f func(Trial) float64) float64 {
		xs := make([]float64, len(runs))
		for i, t := range runs {
			xs[i] = f(t)
		}
		return median(xs)
	}
	medInt := func(f func(Trial) float64) int { return int(math.Round(med(f))) }
	t := runs[0]
	t.Orders = medInt(func(t Trial) float64 { return float64(t.Orders) })
	t.Answered = medInt(func(t Trial) float64 { return float64(t.Answered) })
	t.DuplicateOutcomes = medInt(func(t Trial) float64 { return float64(t.DuplicateOutcomes) })
	t.Failed = medInt(func(t Trial) float64 { return float64(t.Failed) })
	t.WallSeconds = med(func(t Trial) float64 { return t.WallSeconds })
	t.OrdersPerSec = med(func(t Trial) float64 { return t.OrdersPerSec })
	t.P50Ms = med(func(t Trial) float64 { return t.P50Ms })
	t.P99Ms = med(func(t Trial) float64 { return t.P99Ms })
	t.CPUSeconds = med(func(t Trial) float64 { return t.CPUSeconds })
	t.CPUMicrosPerOrder = med(func(t Trial) float64 { return t.CPUMicrosPerOrder })
	t.PeakRSSMiB = med(func(t Trial) float64 { return t.PeakRSSMiB })
	t.Requests = int64(medInt(func(t Trial) float64 { return float64(t.Requests) }))
	t.TooMany = int64(medInt(func(t Trial) float64 { return float64(t.TooMany) }))
	t.APIRequestsPerSec = med(func(t Trial) float64 { return t.APIRequestsPerSec })
	t.CallsPerOrder = med(func(t Trial) float64 { return t.CallsPerOrder })
	t.OtherCPUSeconds = med(func(t Trial) float64 { return t.OtherCPUSeconds })
	t.MaxCallGapMs = med(func(t Trial) float64 { return t.MaxCallGapMs })
	t.ServedAgainMs = med(func(t Trial) float64 { return t.ServedAgainMs })
	t.CallsPerSecAfter = med(func(t Trial) float64 { return t.CallsPerSecAfter })
	for _, r := range runs {
		t.Partial = t.Partial || r.Partial
		t.MaxCreatesPerEmail = max(t.MaxCreatesPerEmail, r.MaxCreatesPerEmail)
	}
	return t
}

package bench

import "fmt"

// Bar is one requirement of the issue, with what was measured against it.
type Bar struct {
	Requirement string `json:"requirement"`
	Measured    string `json:"measured"`
	Pass        bool   `json:"pass"`
	// Judged is false in smoke mode, and when the figure could not be measured
	// (e.g. the service's own RSS with the engine in-process).
	Judged bool `json:"judged"`
}

// Thresholds of the bars.
const (
	latencyShareOfLimit  = 0.90
	latencyTimesBaseline = 100
	rateShareOfLimit     = 0.95
	rateMax429Share      = 0.01
	overheadShareOfCeil  = 0.50
	memoryMaxRSSMiB      = 150
	groupTimesSolo       = 2.7
	killMaxGapMs         = 10_000
	killServedAgainMs    = 12_000
	rollingMaxGapMs      = 2_000
	staticServedAgainMs  = 5_000
	brokerServedAgainMs  = 10_000
)

// judge returns the bars of res's scenario, judged on its median figures.
func judge(res Result) []Bar {
	var bars []Bar
	switch res.Scenario.Name {
	case ScenarioLatency:
		bars = latencyBars(res)
	case ScenarioRate, ScenarioGroupRate:
		bars = rateBars(res)
	case ScenarioGroupLatency:
		bars = groupLatencyBars(res)
	case ScenarioOverhead:
		bars = overheadBars(res)
	case ScenarioMemory:
		bars = memoryBars(res)
	case ScenarioGroupKill, ScenarioGroupRolling, ScenarioGroupStatic, ScenarioBrokerRestart:
		bars = disruptionBars(res)
	}
	if res.Smoke {
		for i := range bars {
			bars[i].Judged = false
		}
	}
	return bars
}

// latencyBars: at least 90% of in flight ÷ (calls per order × latency), and at
// least 100 times the baseline.
func latencyBars(res Result) []Bar {
	e, sc := res.Engine, res.Scenario
	calls := e.CallsPerOrder
	if calls == 0 {
		calls = 2
	}
	limit := float64(sc.config().Consumer.MaxInFlight) / (calls * sc.Latency.Seconds())
	times := 0.0
	if res.Baseline.OrdersPerSec > 0 {
		times = e.OrdersPerSec / res.Baseline.OrdersPerSec
	}
	return []Bar{
		{
			Requirement: fmt.Sprintf("orders/s ≥ %.0f%% of in flight ÷ (calls per order × latency) = %d ÷ (%.2f × %s) = %.0f/s",
				100*latencyShareOfLimit, sc.config().Consumer.MaxInFlight, calls, sc.Latency, limit),
			Measured: fmt.Sprintf("%.0f/s = %.1f%%", e.OrdersPerSec, 100*e.OrdersPerSec/limit),
			Pass:     e.OrdersPerSec >= latencyShareOfLimit*limit, Judged: true,
		},
		{
			Requirement: fmt.Sprintf("orders/s ≥ %d × the baseline's", latencyTimesBaseline),
			Measured:    fmt.Sprintf("%.0f/s ÷ %.1f/s = %.0f×", e.OrdersPerSec, res.Baseline.OrdersPerSec, times),
			Pass:        times >= latencyTimesBaseline, Judged: res.Baseline.OrdersPerSec > 0,
		},
	}
}

// rateBars: at least 95% of the simulator's limit, with under 1% of calls 429.
func rateBars(res Result) []Bar {
	e, limit := res.Engine, res.Scenario.SimRateLimit
	share429 := 0.0
	if e.Requests > 0 {
		share429 = float64(e.TooMany) / float64(e.Requests)
	}
	return []Bar{
		{
			Requirement: fmt.Sprintf("API requests/s not answered 429 ≥ %.0f%% of the simulator's limit of %g/s", 100*rateShareOfLimit, limit),
			Measured:    fmt.Sprintf("%.1f/s = %.1f%%", e.APIRequestsPerSec, 100*e.APIRequestsPerSec/limit),
			Pass:        e.APIRequestsPerSec >= rateShareOfLimit*limit, Judged: limit > 0,
		},
		{
			Requirement: fmt.Sprintf("calls answered 429 < %.0f%%", 100*rateMax429Share),
			Measured:    fmt.Sprintf("%d of %d = %.2f%%", e.TooMany, e.Requests, 100*share429),
			Pass:        share429 < rateMax429Share, Judged: e.Requests > 0,
		},
	}
}

// overheadBars: at least 50% of the machine's ceiling for the work.
func overheadBars(res Result) []Bar {
	c := res.Ceiling
	if c == nil || c.OrdersPerSec == 0 {
		return []Bar{{Requirement: "orders/s ≥ 50% of the ceiling", Measured: "no ceiling measured"}}
	}
	e := res.Engine
	return []Bar{{
		Requirement: fmt.Sprintf("orders/s ≥ %.0f%% of the ceiling 1 ÷ (1/%.0f + %.2f/%.0f) = %.0f/s",
			100*overheadShareOfCeil, c.KafkaRecordsPerSec, c.CallsPerOrder, c.HTTPRequestsPerSec, c.OrdersPerSec),
		Measured: fmt.Sprintf("%.0f/s = %.1f%%", e.OrdersPerSec, 100*e.OrdersPerSec/c.OrdersPerSec),
		Pass:     e.OrdersPerSec >= overheadShareOfCeil*c.OrdersPerSec, Judged: true,
	}}
}

// memoryBars: the backlog drains with the service's peak RSS under 150 MiB.
func memoryBars(res Result) []Bar {
	e := res.Engine
	rss := Bar{
		Requirement: fmt.Sprintf("the service's peak RSS < %d MiB", memoryMaxRSSMiB),
		Measured:    fmt.Sprintf("%.1f MiB (%s)", e.PeakRSSMiB, e.Scope),
		Pass:        e.PeakRSSMiB < memoryMaxRSSMiB,
		Judged:      e.Scope == scopeService,
	}
	if !rss.Judged {
		rss.Measured += ": the engine ran in-process, so this is the whole process's"
	}
	return []Bar{
		{
			Requirement: fmt.Sprintf("the backlog of %d orders drains", e.Orders),
			Measured:    fmt.Sprintf("%d answered in %.0fs", e.Answered, e.WallSeconds),
			Pass:        e.Answered == e.Orders, Judged: true,
		},
		rss,
	}
}

// groupLatencyBars: three instances do at least 2.7 times what one does.
func groupLatencyBars(res Result) []Bar {
	e, solo := res.Engine, res.Baseline
	times := 0.0
	if solo.OrdersPerSec > 0 {
		times = e.OrdersPerSec / solo.OrdersPerSec
	}
	return []Bar{{
		Requirement: fmt.Sprintf("orders/s of %d instances ≥ %.1f × one instance's, same run", max(res.Scenario.Instances, 1), groupTimesSolo),
		Measured:    fmt.Sprintf("%.0f/s ÷ %.0f/s = %.2f×", e.OrdersPerSec, solo.OrdersPerSec, times),
		Pass:        times >= groupTimesSolo, Judged: solo.OrdersPerSec > 0,
	}}
}

// disruptionBars: the bounds on the pause of the whole group and on
// the time until every partition is served again, no order provisioned
// twice, and (rolling restart) no outcome written twice.
func disruptionBars(res Result) []Bar {
	e, calm := res.Engine, res.Baseline
	gap := func(maxMs float64) Bar {
		return Bar{
			Requirement: fmt.Sprintf("longest time the whole group made no API call ≤ %.0f s", maxMs/1000),
			Measured:    fmt.Sprintf("%.1f s (undisturbed: %.0f API calls/s, disrupted: %.0f/s)", e.MaxCallGapMs/1000, calm.APIRequestsPerSec, e.APIRequestsPerSec),
			Pass:        e.MaxCallGapMs <= maxMs, Judged: e.MaxCallGapMs > 0,
		}
	}
	served := func(maxMs float64, after string) Bar {
		return Bar{
			Requirement: fmt.Sprintf("every partition served again ≤ %.0f s after %s", maxMs/1000, after),
			Measured:    fmt.Sprintf("%.1f s", e.ServedAgainMs/1000),
			Pass:        e.ServedAgainMs <= maxMs, Judged: e.ServedAgainMs > 0,
		}
	}
	once := Bar{
		Requirement: "no subscriber created twice",
		Measured:    fmt.Sprintf("at most %d per email", e.MaxCreatesPerEmail),
		Pass:        e.MaxCreatesPerEmail <= 1, Judged: true,
	}
	switch res.Scenario.Name {
	case ScenarioGroupKill:
		// The rate bar holds through the kill and the join: over
		// the whole run. The window after the kill is a figure to read.
		limit := res.Scenario.SimRateLimit
		window := Bar{
			Requirement: fmt.Sprintf("API calls/s in the %.0f s after the kill (a figure; the budget is %g/s)", float64(killServedAgainMs)/1000, limit),
			Measured:    fmt.Sprintf("%.1f/s = %.1f%%", e.CallsPerSecAfter, 100*e.CallsPerSecAfter/limit),
		}
		return append([]Bar{gap(killMaxGapMs), served(killServedAgainMs, "the kill"), once, window}, rateBars(res)...)
	case ScenarioGroupRolling:
		return append([]Bar{gap(rollingMaxGapMs), {
			Requirement: "no outcome written twice (none redelivered)",
			Measured:    fmt.Sprintf("%d duplicate outcomes of %d orders", e.DuplicateOutcomes, e.Answered),
			Pass:        e.DuplicateOutcomes == 0, Judged: true,
		}, once}, rateBars(res)...)
	case ScenarioBrokerRestart:
		return []Bar{served(brokerServedAgainMs, "the broker answers again"), once}
	default:
		// A restart is a member gone and one joining too: the group's
		// budget holds through it.
		return append([]Bar{served(staticServedAgainMs, "the restart"), gap(rollingMaxGapMs), once}, rateBars(res)...)
	}
}

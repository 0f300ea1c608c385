package bench

import (
	"fmt"
	"strings"
	"time"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
)

// Scenario names.
const (
	ScenarioLatency  = "latency"
	ScenarioRate     = "rate"
	ScenarioOverhead = "overhead"
	ScenarioMemory   = "memory"
	// ScenarioGroupRate and ScenarioGroupLatency run three instances in one
	// group: they share the rate budget, and they scale a latency-bound load.
	ScenarioGroupRate    = "group-rate"
	ScenarioGroupLatency = "group-latency"
	// ScenarioGroupKill, ScenarioGroupRolling and ScenarioGroupStatic put
	// the group-rate group through a disruption (a kill -9 and a replacement,
	// a rolling restart, a static member's kill -9 and restart) beside the
	// same group undisturbed.
	ScenarioGroupKill    = "group-kill"
	ScenarioGroupRolling = "group-rolling"
	ScenarioGroupStatic  = "group-static-restart"
	// ScenarioBrokerRestart kills the real broker under one instance and
	// starts it again 15 s later (Options.BrokerControl).
	ScenarioBrokerRestart = "broker-restart"
)

// Scenario is one benchmark: the orders, the simulated Webex API, the
// provisioner's settings and the bounds of its trials. Its bar is chosen by Name.
type Scenario struct {
	// Name is one of the Scenario constants, or another name for an ad-hoc run
	// (which has no bar).
	Name string `json:"name"`
	// Partitions of the orders topic; the outcomes topic gets as many.
	Partitions int `json:"partitions"`
	// Orders is the number of orders of the engine's trial.
	Orders int `json:"orders"`
	// OrdersPerKey spreads the orders over Orders/OrdersPerKey Kafka keys, round
	// robin. A key is a subscriber (customerId/email, as the README asks), so the
	// orders of one key are for one subscriber: the first creates it, the others
	// are answered as already existing. Default 1: a key per order.
	OrdersPerKey int `json:"ordersPerKey"`
	// Latency is added by the simulator to every API call.
	Latency time.Duration `json:"latency"`
	// SimRateLimit is the simulator's limit in requests per second, answered 429
	// with Retry-After above it. 0: no limit.
	SimRateLimit float64 `json:"simRateLimit"`
	// ProduceRate, when positive, publishes the orders at this many per second
	// while the consumer runs, so that latency is service time rather than
	// queueing. 0: the orders are published as a backlog before it starts.
	ProduceRate float64 `json:"produceRate"`
	// Tuning is the provisioner's configuration beyond app.DefaultConfig.
	Tuning Tuning `json:"tuning"`
	// MaxDuration bounds a trial of the engine; one stopped by it is reported
	// partial, with the rate it reached.
	MaxDuration time.Duration `json:"maxDuration"`
	// BaselineOrders is how many of the orders (the first ones) the baseline
	// gets, for scenarios where it would take too long to do all. 0: all.
	BaselineOrders int `json:"baselineOrders"`
	// BaselineMaxDuration bounds a trial of the baseline, as MaxDuration does.
	BaselineMaxDuration time.Duration `json:"baselineMaxDuration"`
	// Ceiling also measures the machine's ceiling for the work: a bare Kafka
	// pipe and bare HTTP round trips (Ceiling in Result).
	Ceiling bool `json:"ceiling"`
	// Isolate runs the engine as a child process (`provisioner run`), so that the
	// CPU time and peak RSS reported are the service's alone; it needs
	// Options.ServiceCommand. The broker and simulator stay in this process.
	Isolate bool `json:"isolate"`
	// Instances is how many engine instances run in the group, each with
	// the whole Tuning (their budget is the group's). Default 1.
	Instances int `json:"instances,omitempty"`
	// SoloBaseline makes the baseline trial the engine as one instance,
	// on the same orders, instead of the plain kafka-go consumer.
	SoloBaseline bool `json:"soloBaseline,omitempty"`
	// Disrupt is the disruption of the engine's group (DisruptKill,
	// DisruptRolling, DisruptStatic); the baseline trial is then the same
	// group undisturbed. Needs Isolate.
	Disrupt string `json:"disrupt,omitempty"`
}

// Tuning is the part of the provisioner's configuration a scenario sets. A zero
// field keeps app.DefaultConfig's value, except WebexAdaptiveRate.
type Tuning struct {
	MaxInFlight             int     `json:"maxInFlight,omitempty"`
	MaxBufferedPerPartition int     `json:"maxBufferedPerPartition,omitempty"`
	MaxBuffered             int     `json:"maxBuffered,omitempty"`
	WebexRateLimit          float64 `json:"webexRateLimit,omitempty"`
	WebexMaxConcurrent      int     `json:"webexMaxConcurrent,omitempty"`
	WebexAdaptiveRate       bool    `json:"webexAdaptiveRate,omitempty"`
	// HeartbeatInterval is the consumer group heartbeat: how soon a member
	// learns of a rebalance.
	HeartbeatInterval time.Duration `json:"heartbeatInterval,omitempty"`
}

// apply writes t into cfg, raising MaxBuffered to MaxInFlight when needed.
func (t Tuning) apply(cfg *app.Config) {
	setInt := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	setInt(&cfg.Consumer.MaxInFlight, t.MaxInFlight)
	setInt(&cfg.Consumer.MaxBufferedPerPartition, t.MaxBufferedPerPartition)
	setInt(&cfg.Consumer.MaxBuffered, t.MaxBuffered)
	setInt(&cfg.Limiter.MaxConcurrent, t.WebexMaxConcurrent)
	if t.WebexRateLimit > 0 {
		cfg.Limiter.Rate = t.WebexRateLimit
	}
	cfg.Limiter.Adaptive = t.WebexAdaptiveRate
	if t.HeartbeatInterval > 0 {
		cfg.Consumer.HeartbeatInterval = t.HeartbeatInterval
	}
	cfg.Consumer.MaxBuffered = max(cfg.Consumer.MaxBuffered, cfg.Consumer.MaxInFlight)
}

// Keys is the number of distinct Kafka keys (subscribers) of the engine's orders.
func (s Scenario) Keys() int {
	return keysFor(s.Orders, s.OrdersPerKey)
}

func keysFor(orders, perKey int) int {
	if perKey <= 1 {
		return orders
	}
	return max(1, (orders+perKey-1)/perKey)
}

// config returns the provisioner's configuration for this scenario, without
// brokers, topics and API address.
func (s Scenario) config() app.Config {
	cfg := app.DefaultConfig()
	s.Tuning.apply(&cfg)
	return cfg
}

// Describe says in one line what the scenario runs.
func (s Scenario) Describe() string {
	cfg := s.config()
	parts := []string{
		fmt.Sprintf("%d orders", s.Orders),
		plural(s.Partitions, "partition"),
		fmt.Sprintf("%d keys", s.Keys()),
		fmt.Sprintf("API latency %s", s.Latency),
	}
	if s.SimRateLimit > 0 {
		parts = append(parts, fmt.Sprintf("simulator limit %g req/s", s.SimRateLimit))
	}
	parts = append(parts, fmt.Sprintf("max in flight %d", cfg.Consumer.MaxInFlight), fmt.Sprintf("webex max concurrent %d", cfg.Limiter.MaxConcurrent))
	if cfg.Limiter.Rate > 0 || cfg.Limiter.Adaptive {
		parts = append(parts, fmt.Sprintf("webex rate limit %g (adaptive %v)", cfg.Limiter.Rate, cfg.Limiter.Adaptive))
	}
	if s.ProduceRate > 0 {
		parts = append(parts, fmt.Sprintf("produced at %g/s while consuming", s.ProduceRate))
	} else {
		parts = append(parts, "backlog produced before start")
	}
	if s.Instances > 1 {
		parts = append(parts, fmt.Sprintf("%d instances in one group", s.Instances))
	}
	if s.SoloBaseline {
		parts = append(parts, "beside one instance alone")
	}
	if s.Disrupt != "" {
		parts = append(parts, map[string]string{
			DisruptKill:    "one instance killed with SIGKILL once a fifth is answered, a new one 5 s later",
			DisruptRolling: "each instance stopped with SIGTERM and replaced at once, 3 s apart",
			DisruptStatic:  "a static member killed with SIGKILL and restarted at once with its instance id",
			DisruptBroker:  "the broker killed with SIGKILL once a fifth is answered and started again 15 s later",
		}[s.Disrupt]+", beside the same run undisturbed")
	}
	if s.Isolate {
		parts = append(parts, "engine in child processes")
	}
	return strings.Join(parts, ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// Validate reports the first setting that cannot run.
func (s Scenario) Validate() error {
	switch {
	case s.Name == "":
		return fmt.Errorf("scenario has no name")
	case s.Partitions < 1:
		return fmt.Errorf("scenario %s: partitions must be at least 1, not %d", s.Name, s.Partitions)
	case s.Orders < 1:
		return fmt.Errorf("scenario %s: orders must be at least 1, not %d", s.Name, s.Orders)
	case s.Latency < 0 || s.SimRateLimit < 0 || s.ProduceRate < 0 || s.BaselineOrders < 0:
		return fmt.Errorf("scenario %s: latency, rates and baseline orders must not be negative", s.Name)
	case s.Instances < 0:
		return fmt.Errorf("scenario %s: instances must not be negative", s.Name)
	case s.Disrupt != "" && s.Disrupt != DisruptKill && s.Disrupt != DisruptRolling && s.Disrupt != DisruptStatic && s.Disrupt != DisruptBroker:
		return fmt.Errorf("scenario %s: unknown disruption %q", s.Name, s.Disrupt)
	case s.Disrupt != "" && !s.Isolate:
		return fmt.Errorf("scenario %s: a disruption needs the instances as child processes", s.Name)
	case s.Disrupt != "" && s.Disrupt != DisruptBroker && s.Instances < 2:
		return fmt.Errorf("scenario %s: a disruption of the group needs two instances or more", s.Name)
	case s.MaxDuration <= 0 || s.BaselineMaxDuration <= 0:
		return fmt.Errorf("scenario %s: max durations must be positive", s.Name)
	}
	cfg := s.config()
	cfg.Brokers, cfg.Client.BaseURL, cfg.WebexToken = []string{"127.0.0.1:9092"}, "http://127.0.0.1/v1", simToken
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("scenario %s: %w", s.Name, err)
	}
	return nil
}

// Scenarios returns the benchmarks of the issues at full size.
func Scenarios() []Scenario {
	return []Scenario{
		{
			// Bound by API latency: 200 orders in flight, 2 calls of 50 ms each,
			// so at most 200 / (2 × 50 ms) = 2,000 orders/s.
			Name: ScenarioLatency, Partitions: 1, Orders: 20_000, OrdersPerKey: 10,
			Latency: 50 * time.Millisecond,
			Tuning:  Tuning{MaxInFlight: 200, WebexMaxConcurrent: 200},
			// The baseline does about 10 orders/s: 300 orders take 30 s.
			MaxDuration: 10 * time.Minute, BaselineOrders: 300, BaselineMaxDuration: time.Minute,
		},
		{
			// Bound by the API's rate limit: 300 requests/s, 150 orders/s.
			Name: ScenarioRate, Partitions: 6, Orders: 9_000,
			Latency: 20 * time.Millisecond, SimRateLimit: 300,
			Tuning:      Tuning{WebexRateLimit: 300, WebexAdaptiveRate: true},
			MaxDuration: 5 * time.Minute, BaselineOrders: 600, BaselineMaxDuration: time.Minute,
		},
		{
			// Bound by the service's own CPU: no API latency.
			Name: ScenarioOverhead, Partitions: 12, Orders: 100_000,
			MaxDuration: 10 * time.Minute, BaselineMaxDuration: time.Minute, Ceiling: true,
		},
		{
			// Three `provisioner run` processes in one group, each told the
			// group's budget of 300 requests/s, against a Webex that allows
			// 300: their shares must add up to it (150 orders/s).
			Name: ScenarioGroupRate, Partitions: 12, Orders: 9_000, Instances: 3, Isolate: true,
			Latency: 20 * time.Millisecond, SimRateLimit: 300,
			Tuning:      Tuning{WebexRateLimit: 300, WebexAdaptiveRate: true},
			MaxDuration: 5 * time.Minute, BaselineOrders: 600, BaselineMaxDuration: time.Minute,
		},
		{
			// Latency-bound, three processes on 3 × 4 partitions beside one
			// alone on the same orders: the group should do about 3×.
			Name: ScenarioGroupLatency, Partitions: 12, Orders: 60_000, OrdersPerKey: 10, Instances: 3, Isolate: true,
			Latency: 50 * time.Millisecond, SoloBaseline: true,
			Tuning:      Tuning{MaxInFlight: 200, WebexMaxConcurrent: 200},
			MaxDuration: 10 * time.Minute, BaselineMaxDuration: 10 * time.Minute,
		},
		disrupted(ScenarioGroupKill, DisruptKill),
		disrupted(ScenarioGroupRolling, DisruptRolling),
		disrupted(ScenarioGroupStatic, DisruptStatic),
		brokerRestart(),
		{
			// A large backlog must not make the service hold it in memory.
			Name: ScenarioMemory, Partitions: 12, Orders: 1_000_000,
			MaxDuration: 20 * time.Minute, BaselineOrders: 20_000, BaselineMaxDuration: 30 * time.Second, Isolate: true,
		},
	}
}

// disrupted is the group-rate group, long enough for its disruption to
// start a fifth in and be over well before the end (about 120 s at 150
// orders/s), put through disrupt.
func disrupted(name, disrupt string) Scenario {
	return Scenario{
		Name: name, Partitions: 12, Orders: 18_000, Instances: 3, Isolate: true, Disrupt: disrupt,
		Latency: 20 * time.Millisecond, SimRateLimit: 300,
		Tuning:      Tuning{WebexRateLimit: 300, WebexAdaptiveRate: true},
		MaxDuration: 5 * time.Minute, BaselineMaxDuration: 5 * time.Minute,
	}
}

// brokerRestart is one instance at the group-rate budget (150 orders/s)
// whose broker goes away for 15 s and comes back.
func brokerRestart() Scenario {
	s := disrupted(ScenarioBrokerRestart, DisruptBroker)
	s.Instances = 1
	return s
}

// Lookup returns the full-size scenario of that name.
func Lookup(name string) (Scenario, bool) {
	for _, s := range Scenarios() {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// Smoke returns a small version of s that finishes in seconds, for CI: the same
// shape (partitions, keys per order, settings) with few orders, short latency
// and bounds that are never reached.
func (s Scenario) Smoke() Scenario {
	s.Orders = min(s.Orders, 240)
	if s.OrdersPerKey > 1 {
		s.OrdersPerKey = min(s.OrdersPerKey, 4)
	}
	s.Latency = min(s.Latency, 2*time.Millisecond)
	if s.BaselineOrders == 0 || s.BaselineOrders > 48 {
		s.BaselineOrders = 48
	}
	if s.ProduceRate > 0 {
		s.ProduceRate = max(s.ProduceRate, 1000)
	}
	s.MaxDuration, s.BaselineMaxDuration = time.Minute, time.Minute
	return s
}

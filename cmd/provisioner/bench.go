package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acme-sp/wholesale-provisioner/bench"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
)

// benchFlags are the settings of `provisioner bench`.
type benchFlags struct {
	scenario   string
	broker     string
	brokers    string
	smoke      bool
	repeat     int
	cpuProfile string
	jsonOut    bool
	strict     bool
	logLevel   string
	// brokerControl kills and starts the real broker (broker-restart).
	brokerControl string
	// service is the provisioner binary the child-process scenarios start.
	service string
	// serviceLogs is the folder that keeps the children's logs.
	serviceLogs string
	// over holds the scenario settings given on the command line; they replace
	// each selected scenario's.
	over bench.Scenario
	set  map[string]bool
}

// benchCmd is `provisioner bench`: the benchmarks of the bench package against
// the in-process broker and, when one is configured, a real one.
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseBenchFlags(args, stderr)
	if err != nil {
		return err
	}
	scenarios, err := f.scenarios()
	if err != nil {
		return usageError{err}
	}
	brokers, err := f.brokersToUse()
	if err != nil {
		return usageError{err}
	}
	opts := bench.Options{Repeat: f.repeat, Smoke: f.smoke, LogLevel: f.logLevel, ServiceLogDir: f.serviceLogs, Progress: stderr,
		BrokerControl: strings.Fields(f.brokerControl)}
	if f.smoke {
		opts.HTTPCeilingDuration = 300 * time.Millisecond
	}
	if exe, err := os.Executable(); f.service != "" {
		opts.ServiceCommand = []string{f.service, "run"}
	} else if err == nil {
		opts.ServiceCommand = []string{exe, "run"}
	}
	started := time.Now()
	var results []bench.Result
	var problems []error
	for _, sc := range scenarios {
		for _, b := range brokers {
			if sc.Disrupt == bench.DisruptBroker && (b.Name() != "real" || len(opts.BrokerControl) == 0) {
				err := fmt.Errorf("%s on the %s broker: it needs a real broker it may kill and --broker-control", sc.Name, b.Name())
				if f.scenario != "all" {
					problems = append(problems, err)
				}
				fmt.Fprintf(stderr, "provisioner bench: skipping %v\n", err)
				continue
			}
			opts.CPUProfile = profilePath(f.cpuProfile, sc.Name, b.Name(), len(scenarios)*len(brokers))
			res, err := bench.Run(ctx, sc, b, opts)
			if err != nil {
				// Go on with the others; the command still fails at the end.
				err = fmt.Errorf("running %s on the %s broker: %w", sc.Name, b.Name(), err)
				fmt.Fprintf(stderr, "provisioner bench: %v\n", err)
				problems = append(problems, err)
				if ctx.Err() != nil {
					return errors.Join(problems...)
				}
				continue
			}
			results = append(results, res)
			if !f.jsonOut {
				if err := bench.WriteText(stdout, res); err != nil {
					return err
				}
			}
			problems = append(problems, res.Check())
			if f.strict {
				problems = append(problems, failedBars(res))
			}
		}
	}
	if f.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return fmt.Errorf("writing the results: %w", err)
		}
	} else {
		fmt.Fprintf(stdout, "\n%d runs in %s.\n", len(results), time.Since(started).Round(100*time.Millisecond))
	}
	return errors.Join(problems...)
}

func parseBenchFlags(args []string, stderr io.Writer) (*benchFlags, error) {
	f := &benchFlags{scenario: "all", repeat: 1, logLevel: "info"}
	fs := newFlagSet("bench", "Benchmark the provisioner against the Webex simulator and Kafka: orders/s, order latency,\n"+
		"CPU, peak RSS and 429s of the engine and of a baseline (a plain partition-sequential kafka-go\n"+
		"consumer doing the same calls), in the same process on the same orders. Scenarios: latency,\n"+
		"rate, overhead, memory, group-rate (three instances sharing one budget), group-latency (three\n"+
		"instances beside one alone), group-kill, group-rolling, group-static-restart (the group-rate group\n"+
		"through a kill -9, a rolling restart, a static member's restart), broker-restart (one instance whose\n"+
		"broker is killed and comes back; needs --broker-control) (see BENCHMARKS.md). Runs on the in-process broker, and on the real one\n"+
		"at --brokers (or KAFKA_BROKERS) when set.", stderr)
	fs.StringVar(&f.scenario, "scenario", f.scenario, scenarioNames()+", a comma-separated list, or all")
	fs.StringVar(&f.brokerControl, "broker-control", "", "command that kills the real broker (run with `stop --kill`) and starts it again (`start`), for broker-restart, e.g. scripts/kafka-local")
	fs.StringVar(&f.broker, "broker", "", "in-process, real or both (default: both when a real broker is configured, else in-process)")
	fs.StringVar(&f.brokers, "brokers", "", "real Kafka bootstrap servers (default: $KAFKA_BROKERS)")
	fs.BoolVar(&f.smoke, "smoke", false, "small counts and short latencies; checks only that every order is answered, once")
	fs.IntVar(&f.repeat, "repeat", f.repeat, "run each trial this many times and report the medians")
	fs.StringVar(&f.service, "service", "", "the provisioner binary whose `run` the child-process scenarios (--isolate, the groups) start; default this one: another build measured by this bench")
	fs.StringVar(&f.serviceLogs, "service-logs", "", "keep the logs of every child process (--isolate, the groups) in a file of its own in this folder, to see what a group did")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the engine's first trial (in-process) to this file; several runs add .<scenario>-<broker>")
	fs.BoolVar(&f.jsonOut, "json", false, "print the results as JSON instead of tables")
	fs.BoolVar(&f.strict, "strict", false, "exit 1 when a bar is not met")
	fs.StringVar(&f.logLevel, "log-level", f.logLevel, "the service's log level (logs are formatted, then dropped)")
	fs.IntVar(&f.over.Orders, "orders", 0, "orders of the engine's trial")
	fs.IntVar(&f.over.OrdersPerKey, "orders-per-key", 0, "orders per Kafka key (subscriber)")
	fs.IntVar(&f.over.Partitions, "partitions", 0, "partitions of the orders topic")
	fs.DurationVar(&f.over.Latency, "latency", 0, "simulated latency of every API call")
	fs.Float64Var(&f.over.SimRateLimit, "sim-rate-limit", 0, "the simulator's limit in requests/s (429 above it)")
	fs.Float64Var(&f.over.ProduceRate, "produce-rate", 0, "publish the orders at this rate while consuming (0: a backlog before the start)")
	fs.DurationVar(&f.over.MaxDuration, "max-duration", 0, "bound of an engine trial; a trial stopped by it is reported with the rate it reached")
	fs.IntVar(&f.over.BaselineOrders, "baseline-orders", 0, "orders given to the baseline (the first ones)")
	fs.DurationVar(&f.over.BaselineMaxDuration, "baseline-max-duration", 0, "bound of a baseline trial")
	fs.IntVar(&f.over.Instances, "instances", 0, "engine instances in one group, each given the whole tuning (the group's budget)")
	fs.BoolVar(&f.over.Isolate, "isolate", false, "run the engine as a child process (`provisioner run`) so that CPU and RSS are its own")
	fs.IntVar(&f.over.Tuning.MaxInFlight, "max-in-flight", 0, "the provisioner's --max-in-flight")
	fs.IntVar(&f.over.Tuning.WebexMaxConcurrent, "webex-max-concurrent", 0, "the provisioner's --webex-max-concurrent")
	fs.Float64Var(&f.over.Tuning.WebexRateLimit, "webex-rate-limit", 0, "the provisioner's --webex-rate-limit")
	fs.BoolVar(&f.over.Tuning.WebexAdaptiveRate, "webex-adaptive-rate", false, "the provisioner's --webex-adaptive-rate")
	fs.DurationVar(&f.over.Tuning.HeartbeatInterval, "heartbeat-interval", 0, "the provisioner's --heartbeat-interval")
	if err := parse(fs, args, osLookupEnv); err != nil {
		return nil, usageError{err}
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	if f.repeat < 1 {
		return nil, usageError{fmt.Errorf("--repeat must be at least 1, not %d", f.repeat)}
	}
	return f, nil
}

// scenarios returns the selected scenarios with the command line's settings.
// scenarioNames lists the scenarios for the help and its errors.
func scenarioNames() string {
	var names []string
	for _, s := range bench.Scenarios() {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

func (f *benchFlags) scenarios() ([]bench.Scenario, error) {
	names := app.SplitList(f.scenario)
	if f.scenario == "all" {
		names = nil
		for _, s := range bench.Scenarios() {
			names = append(names, s.Name)
		}
	}
	var out []bench.Scenario
	for _, name := range names {
		sc, ok := bench.Lookup(name)
		if !ok {
			return nil, fmt.Errorf("--scenario: unknown scenario %q: use %s or all", name, scenarioNames())
		}
		if f.smoke {
			sc = sc.Smoke()
		}
		sc = f.override(sc)
		if err := sc.Validate(); err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	if len(out) == 0 {
		return nil, errors.New("--scenario: no scenario selected")
	}
	return out, nil
}

// override replaces sc's settings with those given on the command line.
func (f *benchFlags) override(sc bench.Scenario) bench.Scenario {
	o := f.over
	apply := func(flag string, do func()) {
		if f.set[flag] {
			do()
		}
	}
	apply("orders", func() { sc.Orders = o.Orders })
	apply("orders-per-key", func() { sc.OrdersPerKey = o.OrdersPerKey })
	apply("partitions", func() { sc.Partitions = o.Partitions })
	apply("latency", func() { sc.Latency = o.Latency })
	apply("sim-rate-limit", func() { sc.SimRateLimit = o.SimRateLimit })
	apply("produce-rate", func() { sc.ProduceRate = o.ProduceRate })
	apply("max-duration", func() { sc.MaxDuration = o.MaxDuration })
	apply("baseline-orders", func() { sc.BaselineOrders = o.BaselineOrders })
	apply("baseline-max-duration", func() { sc.BaselineMaxDuration = o.BaselineMaxDuration })
	apply("isolate", func() { sc.Isolate = o.Isolate })
	apply("instances", func() { sc.Instances = o.Instances })
	apply("max-in-flight", func() { sc.Tuning.MaxInFlight = o.Tuning.MaxInFlight })
	apply("webex-max-concurrent", func() { sc.Tuning.WebexMaxConcurrent = o.Tuning.WebexMaxConcurrent })
	apply("webex-rate-limit", func() { sc.Tuning.WebexRateLimit = o.Tuning.WebexRateLimit })
	apply("webex-adaptive-rate", func() { sc.Tuning.WebexAdaptiveRate = o.Tuning.WebexAdaptiveRate })
	apply("heartbeat-interval", func() { sc.Tuning.HeartbeatInterval = o.Tuning.HeartbeatInterval })
	return sc
}

// brokersToUse returns the brokers of --broker: the in-process one, the real
// one at --brokers or $KAFKA_BROKERS, or both.
func (f *benchFlags) brokersToUse() ([]bench.Broker, error) {
	addrs := app.SplitList(f.brokers)
	if len(addrs) == 0 {
		addrs = app.SplitList(os.Getenv("KAFKA_BROKERS"))
	}
	mode := f.broker
	if mode == "" {
		mode = "in-process"
		if len(addrs) > 0 {
			mode = "both"
		}
	}
	switch mode {
	case "in-process", "inprocess":
		return []bench.Broker{bench.InProcess()}, nil
	case "real", "both":
		if len(addrs) == 0 {
			return nil, fmt.Errorf("--broker %s needs a real broker: set --brokers or KAFKA_BROKERS (e.g. export KAFKA_BROKERS=$(scripts/kafka-local start))", mode)
		}
		if mode == "real" {
			return []bench.Broker{bench.Real(addrs)}, nil
		}
		return []bench.Broker{bench.InProcess(), bench.Real(addrs)}, nil
	}
	return nil, fmt.Errorf("--broker must be in-process, real or both, not %q", mode)
}

// profilePath returns the CPU profile file of one run: path itself when there
// is one run, else path with .<scenario>-<broker> before its extension.
func profilePath(path, scenario, broker string, runs int) string {
	if path == "" || runs == 1 {
		return path
	}
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "." + scenario + "-" + broker + ext
}

// failedBars reports the bars of res that were judged and not met.
func failedBars(res bench.Result) error {
	var errs []error
	for _, b := range res.Bars {
		if b.Judged && !b.Pass {
			errs = append(errs, fmt.Errorf("%s/%s: bar not met: %s: %s", res.Scenario.Name, res.Broker, b.Requirement, b.Measured))
		}
	}
	return errors.Join(errs...)
}

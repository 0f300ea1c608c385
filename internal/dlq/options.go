package dlq

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
)

// Options are the command-line settings of `provisioner dlq inspect` and
// `provisioner dlq replay`, as flag values; InspectConfig and ReplayConfig
// check them and turn them into configurations.
type Options struct {
	Brokers         string
	DeadLetterTopic string
	Since           string
	Offsets         string
	Reasons         string
	ErrorClasses    string
	OrderIDs        string

	// Inspect only.
	Examples int
	JSON     bool

	// Replay only.
	OrdersTopic string
	Rate        float64
	MaxReplays  int
	DryRun      bool
}

// DefaultOptions returns the settings used where nothing is given.
func DefaultOptions() Options {
	return Options{
		DeadLetterTopic: app.DefaultConfig().DeadLetterTopic,
		Examples:        DefaultExamples,
		Rate:            DefaultRate,
		MaxReplays:      DefaultMaxReplays,
	}
}

func (o *Options) bindCommon(fs *flag.FlagSet) {
	fs.StringVar(&o.Brokers, "brokers", o.Brokers, "Kafka bootstrap servers, comma-separated host:port")
	fs.StringVar(&o.DeadLetterTopic, "dead-letter-topic", o.DeadLetterTopic, "topic of dead-letter records to read")
	fs.StringVar(&o.Since, "since", o.Since, "read dead letters written at or after this RFC 3339 time, or this long ago (36h) (default: from the start)")
	fs.StringVar(&o.Offsets, "offsets", o.Offsets, "read only these partitions, from these offsets: partition:offset,... (e.g. 0:1200,2:0)")
	fs.StringVar(&o.Reasons, "reason", o.Reasons, "only dead letters of these reasons, comma-separated (e.g. retries_exhausted)")
	fs.StringVar(&o.ErrorClasses, "error-class", o.ErrorClasses, "only dead letters of these error classes: permanent, transient, invalid_input")
	fs.StringVar(&o.OrderIDs, "order-id", o.OrderIDs, "only dead letters of these order ids, comma-separated")
}

// BindInspectFlags declares the flags of `dlq inspect` on fs.
func (o *Options) BindInspectFlags(fs *flag.FlagSet) {
	o.bindCommon(fs)
	fs.IntVar(&o.Examples, "examples", o.Examples, "examples shown per reason (emails and phone numbers masked)")
	fs.BoolVar(&o.JSON, "json", o.JSON, "write the report as JSON")
}

// BindReplayFlags declares the flags of `dlq replay` on fs.
func (o *Options) BindReplayFlags(fs *flag.FlagSet) {
	o.bindCommon(fs)
	fs.StringVar(&o.OrdersTopic, "orders-topic", o.OrdersTopic, "topic to re-publish the orders to (default: the source topic each dead letter names)")
	fs.Float64Var(&o.Rate, "rate", o.Rate, "records re-published per second at most (0: no limit)")
	fs.IntVar(&o.MaxReplays, "max-replays", o.MaxReplays, "refuse records already replayed this many times (their replay-count header)")
	fs.BoolVar(&o.DryRun, "dry-run", o.DryRun, "show what would be replayed, publish nothing")
}

// reader checks the settings shared by both commands.
func (o Options) reader(now time.Time) (ReaderConfig, Filter, []error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	rc := ReaderConfig{Conn: Conn{Brokers: app.SplitList(o.Brokers)}, Topic: o.DeadLetterTopic}
	if len(rc.Conn.Brokers) == 0 {
		bad("--brokers (%s) is required: set it to the Kafka bootstrap servers, e.g. kafka-1:9092", app.EnvName("brokers"))
	}
	if rc.Topic == "" {
		bad("--dead-letter-topic (%s) is empty: name the topic", app.EnvName("dead-letter-topic"))
	}
	switch {
	case o.Since != "" && o.Offsets != "":
		bad("--since and --offsets both say where to start: give one")
	case o.Since != "":
		t, err := ParseSince(o.Since, now)
		if err != nil {
			bad("--since: %v", err)
		}
		rc.From.Since = t
	case o.Offsets != "":
		offs, err := ParseOffsets(o.Offsets)
		if err != nil {
			bad("--offsets: %v", err)
		}
		rc.From.Offsets = offs
	}
	f := Filter{Reasons: app.SplitList(o.Reasons), ErrorClasses: app.SplitList(o.ErrorClasses), OrderIDs: app.SplitList(o.OrderIDs)}
	if err := f.Validate(); err != nil {
		bad("--error-class: %v", err)
	}
	return rc, f, errs
}

// InspectConfig checks the settings of `dlq inspect` and reports every
// problem, each naming its flag.
func (o Options) InspectConfig(now time.Time) (InspectConfig, error) {
	rc, f, errs := o.reader(now)
	if o.Examples < 0 {
		errs = append(errs, fmt.Errorf("--examples must be 0 or more, not %d", o.Examples))
	}
	examples := o.Examples
	if examples == 0 {
		examples = -1 // none: the zero value of InspectConfig means the default
	}
	return InspectConfig{Reader: rc, Filter: f, Examples: examples}, errors.Join(errs...)
}

// ReplayConfig checks the settings of `dlq replay` and reports every problem,
// each naming its flag.
func (o Options) ReplayConfig(now time.Time) (ReplayConfig, error) {
	rc, f, errs := o.reader(now)
	lim := rate.Limit(o.Rate)
	switch {
	case math.IsNaN(o.Rate) || o.Rate < 0:
		errs = append(errs, fmt.Errorf("--rate must be a number of records per second, or 0 for no limit, not %v", o.Rate))
	case o.Rate == 0 || math.IsInf(o.Rate, 1):
		lim = rate.Inf
	}
	if o.MaxReplays < 1 {
		errs = append(errs, fmt.Errorf("--max-replays must be at least 1, not %d", o.MaxReplays))
	}
	if o.OrdersTopic != "" && o.OrdersTopic == o.DeadLetterTopic {
		errs = append(errs, fmt.Errorf("--orders-topic and --dead-letter-topic are both %q: replaying into the dead-letter topic would loop", o.OrdersTopic))
	}
	return ReplayConfig{Reader: rc, Filter: f, OrdersTopic: o.OrdersTopic, Rate: lim, MaxReplays: o.MaxReplays, DryRun: o.DryRun}, errors.Join(errs...)
}

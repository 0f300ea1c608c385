package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"golang.org/x/time/rate"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"github.com/acme-sp/wholesale-provisioner/internal/dlq"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// The tools' own flags: the service's settings are bound in internal/app
// (flags.go), where the deployment tests read them too; every flag is also
// read from its environment variable (app.ParseFlags).

var osLookupEnv = os.LookupEnv

// newFlagSet is app.NewFlagSet, for every command.
func newFlagSet(name, synopsis string, out io.Writer) *flag.FlagSet {
	return app.NewFlagSet(name, synopsis, out)
}

// parse is app.ParseFlags with the process's environment.
func parse(fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool)) error {
	return app.ParseFlags(fs, args, lookupEnv)
}

// bindSimFlags declares the simulator's settings on fs.
func bindSimFlags(fs interface {
	BoolVar(*bool, string, bool, string)
	DurationVar(*time.Duration, string, time.Duration, string)
	Float64Var(*float64, string, float64, string)
	IntVar(*int, string, int, string)
	StringVar(*string, string, string, string)
}, cfg *webexsim.Config) {
	fs.DurationVar(&cfg.Latency, "sim-latency", cfg.Latency, "latency added to every simulated API call")
	fs.DurationVar(&cfg.LatencyJitter, "sim-jitter", cfg.LatencyJitter, "random extra latency, 0 to this")
	fs.Float64Var(&cfg.RateLimit, "sim-rate-limit", cfg.RateLimit, "requests per second before the simulator answers 429 (0: none)")
	fs.DurationVar(&cfg.ProvisioningDelay, "sim-provisioning-delay", cfg.ProvisioningDelay, "time a new subscriber stays 'provisioning' (0: provisioned at once)")
	fs.Float64Var(&cfg.Faults.Status429, "sim-429-rate", cfg.Faults.Status429, "fraction of calls answered 429 with Retry-After")
	fs.Float64Var(&cfg.Faults.Status503, "sim-503-rate", cfg.Faults.Status503, "fraction of calls answered 503")
	fs.Float64Var(&cfg.Faults.Status504, "sim-504-rate", cfg.Faults.Status504, "fraction of calls answered 504")
	fs.Float64Var(&cfg.Faults.Status500, "sim-500-rate", cfg.Faults.Status500, "fraction of calls answered 500")
	fs.Float64Var(&cfg.Faults.Reset, "sim-reset-rate", cfg.Faults.Reset, "fraction of calls whose connection is reset")
	fs.Float64Var(&cfg.Faults.Permanent, "sim-permanent-rate", cfg.Faults.Permanent, "share of emails whose create is always refused (403), chosen by a hash of the email")
	fs.Float64Var(&cfg.Faults.LostResponse, "sim-lost-response-rate", cfg.Faults.LostResponse, "fraction of creates that succeed but whose answer is lost (504)")
	fs.StringVar(&cfg.PrecheckRejectDomain, "sim-precheck-reject-domain", cfg.PrecheckRejectDomain, "emails in this domain fail the precheck")
	fs.IntVar(&cfg.PrecheckInfoCode, "sim-precheck-info-code", cfg.PrecheckInfoCode, "infoCode of a successful precheck (0: 100, the usual one)")
	fs.StringVar(&cfg.PendingMigrationDomain, "sim-pending-domain", cfg.PendingMigrationDomain, "emails in this domain get 202 pending_user_migration")
	fs.StringVar(&cfg.ErrorDomain, "sim-error-domain", cfg.ErrorDomain, "emails in this domain end in status error")
	fs.StringVar(&cfg.AcceptDomain, "sim-accept-domain", cfg.AcceptDomain, "emails in this domain get 202 pending_user_migration, then provisioned after --sim-pending-resolve-delay")
	fs.StringVar(&cfg.DeclineDomain, "sim-decline-domain", cfg.DeclineDomain, "emails in this domain get 202 pending_user_migration, then status error after --sim-pending-resolve-delay")
	fs.DurationVar(&cfg.PendingResolveDelay, "sim-pending-resolve-delay", cfg.PendingResolveDelay, "how long a subscriber of the accept or decline domain waits on its user")
	fs.DurationVar(&cfg.UpdateDelay, "sim-update-delay", cfg.UpdateDelay, "time an updated subscriber stays 'updating' (0: at once)")
	fs.BoolVar(&cfg.Faults.LostResponseAll, "sim-lost-response-all", cfg.Faults.LostResponseAll, "lose the answers of updates and removes too, at --sim-lost-response-rate")
	// The customer domains are filled in first so that the usage shows the
	// defaults that webexsim.New would apply to them anyway.
	for _, d := range []struct {
		v   *string
		def string
	}{
		{&cfg.CustomerErrorDomain, webexsim.DefaultCustomerErrorDomain},
		{&cfg.CustomerPartialDomain, webexsim.DefaultCustomerPartialDomain},
		{&cfg.CustomerReviewDomain, webexsim.DefaultCustomerReviewDomain},
	} {
		if *d.v == "" {
			*d.v = d.def
		}
	}
	fs.DurationVar(&cfg.CustomerProvisioningDelay, "sim-customer-provisioning-delay", cfg.CustomerProvisioningDelay, "time a new customer stays 'provisioning' (0: its final state at the first read)")
	fs.DurationVar(&cfg.CustomerUpdateDelay, "sim-customer-update-delay", cfg.CustomerUpdateDelay, "time an updated customer stays 'updating' (0: provisioned at the first read)")
	fs.DurationVar(&cfg.CustomerDeleteDelay, "sim-customer-delete-delay", cfg.CustomerDeleteDelay, "time a deleted customer stays 'deleting' (0: gone at the first read)")
	fs.StringVar(&cfg.CustomerErrorDomain, "sim-customer-error-domain", cfg.CustomerErrorDomain, "customers whose primary email is in this domain end in status error")
	fs.StringVar(&cfg.CustomerPartialDomain, "sim-customer-partial-domain", cfg.CustomerPartialDomain, "customers whose primary email is in this domain end in status provisioned_with_errors, their first package failed")
	fs.StringVar(&cfg.CustomerReviewDomain, "sim-customer-review-domain", cfg.CustomerReviewDomain, "customers whose primary email is in this domain end in status pending_rpl_review until resolved (POST /_sim/resolve-customer)")
}

// dlqOptions are the command-line settings of `provisioner dlq inspect` and
// `provisioner dlq replay`, as flag values; dlq.InspectConfig and dlq.ReplayConfig
// check them and turn them into configurations.
type dlqOptions struct {
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

// defaultDLQOptions returns the settings used where nothing is given.
func defaultDLQOptions() dlqOptions {
	return dlqOptions{
		DeadLetterTopic: app.DefaultConfig().DeadLetterTopic,
		Examples:        dlq.DefaultExamples,
		Rate:            dlq.DefaultRate,
		MaxReplays:      dlq.DefaultMaxReplays,
	}
}

func (o *dlqOptions) bindCommon(fs *flag.FlagSet) {
	fs.StringVar(&o.Brokers, "brokers", o.Brokers, "Kafka bootstrap servers, comma-separated host:port")
	fs.StringVar(&o.DeadLetterTopic, "dead-letter-topic", o.DeadLetterTopic, "topic of dead-letter records to read")
	fs.StringVar(&o.Since, "since", o.Since, "read dead letters written at or after this RFC 3339 time, or this long ago (36h) (default: from the start)")
	fs.StringVar(&o.Offsets, "offsets", o.Offsets, "read only these partitions, from these offsets: partition:offset,... (e.g. 0:1200,2:0)")
	fs.StringVar(&o.Reasons, "reason", o.Reasons, "only dead letters of these reasons, comma-separated (e.g. retries_exhausted)")
	fs.StringVar(&o.ErrorClasses, "error-class", o.ErrorClasses, "only dead letters of these error classes: permanent, transient, invalid_input")
	fs.StringVar(&o.OrderIDs, "order-id", o.OrderIDs, "only dead letters of these order ids, comma-separated")
}

// bindDLQInspectFlags declares the flags of `dlq inspect` on fs.
func bindDLQInspectFlags(fs *flag.FlagSet, o *dlqOptions) {
	o.bindCommon(fs)
	fs.IntVar(&o.Examples, "examples", o.Examples, "examples shown per reason (emails and phone numbers masked)")
	fs.BoolVar(&o.JSON, "json", o.JSON, "write the report as JSON")
}

// bindDLQReplayFlags declares the flags of `dlq replay` on fs.
func bindDLQReplayFlags(fs *flag.FlagSet, o *dlqOptions) {
	o.bindCommon(fs)
	fs.StringVar(&o.OrdersTopic, "orders-topic", o.OrdersTopic, "topic to re-publish the orders to (default: the source topic each dead letter names)")
	fs.Float64Var(&o.Rate, "rate", o.Rate, "records re-published per second at most (0: no limit)")
	fs.IntVar(&o.MaxReplays, "max-replays", o.MaxReplays, "refuse records already replayed this many times (their replay-count header)")
	fs.BoolVar(&o.DryRun, "dry-run", o.DryRun, "show what would be replayed, publish nothing")
}

// reader checks the settings shared by both commands.
func (o dlqOptions) reader(now time.Time) (dlq.ReaderConfig, dlq.Filter, []error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	rc := dlq.ReaderConfig{Conn: dlq.Conn{Brokers: app.SplitList(o.Brokers)}, Topic: o.DeadLetterTopic}
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
		t, err := dlq.ParseSince(o.Since, now)
		if err != nil {
			bad("--since: %v", err)
		}
		rc.From.Since = t
	case o.Offsets != "":
		offs, err := dlq.ParseOffsets(o.Offsets)
		if err != nil {
			bad("--offsets: %v", err)
		}
		rc.From.Offsets = offs
	}
	f := dlq.Filter{Reasons: app.SplitList(o.Reasons), ErrorClasses: app.SplitList(o.ErrorClasses), OrderIDs: app.SplitList(o.OrderIDs)}
	if err := f.Validate(); err != nil {
		bad("--error-class: %v", err)
	}
	return rc, f, errs
}

// InspectConfig checks the settings of `dlq inspect` and reports every
// problem, each naming its flag.
func (o dlqOptions) InspectConfig(now time.Time) (dlq.InspectConfig, error) {
	rc, f, errs := o.reader(now)
	if o.Examples < 0 {
		errs = append(errs, fmt.Errorf("--examples must be 0 or more, not %d", o.Examples))
	}
	examples := o.Examples
	if examples == 0 {
		examples = -1 // none: the zero value of dlq.InspectConfig means the default
	}
	return dlq.InspectConfig{Reader: rc, Filter: f, Examples: examples}, errors.Join(errs...)
}

// ReplayConfig checks the settings of `dlq replay` and reports every problem,
// each naming its flag.
func (o dlqOptions) ReplayConfig(now time.Time) (dlq.ReplayConfig, error) {
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
	return dlq.ReplayConfig{Reader: rc, Filter: f, OrdersTopic: o.OrdersTopic, Rate: lim, MaxReplays: o.MaxReplays, DryRun: o.DryRun}, errors.Join(errs...)
}

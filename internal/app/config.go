package app

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/acme-sp/wholesale-provisioner/internal/kafkasec"
	"github.com/acme-sp/wholesale-provisioner/producer"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

// Config is the whole configuration of `provisioner run`, filled from flags and
// environment variables and checked by Validate before anything starts.
type Config struct {
	// Brokers are the Kafka bootstrap addresses (host:port).
	Brokers []string
	// GroupID is the consumer group of the provisioner's instances.
	GroupID string
	// OrdersTopic, OutcomesTopic and DeadLetterTopic are the three topics.
	OrdersTopic     string
	OutcomesTopic   string
	DeadLetterTopic string
	// Kafka is the TLS and SASL security of every Kafka connection (flags
	// --kafka-*); its password comes only from PROVISIONER_KAFKA_SASL_PASSWORD
	// (Kafka.LoadSecrets) or --kafka-sasl-password-file. Default: plaintext.
	Kafka kafkasec.Config

	// WebexBaseURL is the API root, e.g. https://webexapis.com/v1.
	WebexBaseURL string
	// WebexToken comes only from the environment (PROVISIONER_WEBEX_TOKEN): a
	// command-line flag would show it in process lists.
	WebexToken string
	// WebexTokenFile is a file holding the token; it is re-read when it changes.
	WebexTokenFile string
	// The OAuth refresh flow, instead of a fixed token: the integration's
	// client id and secret (the secret from PROVISIONER_WEBEX_CLIENT_SECRET or
	// a file), and the refresh token, kept in WebexRefreshTokenFile (the
	// newest is written back there) or given once in
	// PROVISIONER_WEBEX_REFRESH_TOKEN.
	WebexClientID         string
	WebexClientSecret     string
	WebexClientSecretFile string
	WebexRefreshToken     string
	WebexRefreshTokenFile string
	// WebexTokenURL is the token endpoint. Default: <webex-base-url>/access_token.
	WebexTokenURL string
	// OnBehalfOf is the onBehalfOfSubPartnerOrgId query parameter, if any.
	OnBehalfOf string

	// RequestTimeout bounds one HTTP call to Webex.
	RequestTimeout time.Duration
	// RetryInitialInterval, RetryMaxInterval, RetryMaxElapsed and
	// RetryMaxAttempts shape the retries of a transient Webex error.
	RetryInitialInterval time.Duration
	RetryMaxInterval     time.Duration
	RetryMaxElapsed      time.Duration
	RetryMaxAttempts     int
	// StatusPollInterval is the first wait before polling a subscriber that is
	// still provisioning; StatusMaxWait bounds following it.
	StatusPollInterval time.Duration
	StatusMaxWait      time.Duration
	// MaxRecordBytes is the largest order accepted.
	MaxRecordBytes int

	// MaxInFlight is how many orders are handled at once: orders of different
	// keys run in parallel, orders of one key one after another.
	MaxInFlight int
	// MaxBufferedPerPartition and MaxBuffered bound the fetched but unfinished
	// orders of one partition and of all; when full, fetching pauses.
	MaxBufferedPerPartition int
	MaxBuffered             int
	// CommitInterval is how often finished offsets are committed.
	CommitInterval time.Duration
	// PublishLinger is how long an outcome or dead-letter write waits for
	// others to share its produce request, like the Java producer's linger.ms.
	// The order gives its worker back meanwhile, so this costs latency, not
	// throughput; too short and every order makes a produce request of its own.
	PublishLinger time.Duration
	// ShutdownTimeout bounds how long in-flight orders may finish on shutdown or
	// when a rebalance takes their partition away.
	ShutdownTimeout time.Duration

	// WebexRateLimit is the request rate to Webex shared by all workers
	// (requests per second, 0 for no limit); WebexMaxConcurrent caps the
	// requests in progress. WebexAdaptiveRate lowers the rate on 429s and raises
	// it again slowly (AIMD), staying just under the point where 429s start.
	WebexRateLimit     float64
	WebexMaxConcurrent int
	WebexAdaptiveRate  bool

	// HTTPAddr is where /metrics, /healthz and /readyz are served ("" for nowhere).
	HTTPAddr string

	// LogLevel is debug, info, warn or error; LogFormat is json or console.
	LogLevel  string
	LogFormat string
}

// DefaultConfig returns the configuration used where nothing is set.
func DefaultConfig() Config {
	return Config{
		GroupID:                 "wholesale-provisioner",
		OrdersTopic:             "subscriber-orders",
		OutcomesTopic:           "subscriber-outcomes",
		DeadLetterTopic:         "subscriber-orders-dlt",
		WebexBaseURL:            "https://webexapis.com/v1",
		RequestTimeout:          30 * time.Second,
		RetryInitialInterval:    500 * time.Millisecond,
		RetryMaxInterval:        30 * time.Second,
		RetryMaxElapsed:         2 * time.Minute,
		StatusPollInterval:      time.Second,
		StatusMaxWait:           5 * time.Minute,
		MaxRecordBytes:          256 << 10,
		MaxInFlight:             64,
		MaxBufferedPerPartition: 1000,
		MaxBuffered:             2000,
		CommitInterval:          time.Second,
		PublishLinger:           producer.DefaultBatchTimeout,
		ShutdownTimeout:         15 * time.Second,
		WebexMaxConcurrent:      64,
		LogLevel:                "info",
		LogFormat:               "json",
	}
}

// BindFlags declares the flags of cfg on fs, with cfg's values as defaults.
// It returns a function to call after parsing, which copies list flags back.
func (cfg *Config) BindFlags(fs *flag.FlagSet) func() {
	brokers := strings.Join(cfg.Brokers, ",")
	fs.StringVar(&brokers, "brokers", brokers, "Kafka bootstrap servers, comma-separated host:port")
	fs.StringVar(&cfg.GroupID, "group-id", cfg.GroupID, "Kafka consumer group id")
	fs.StringVar(&cfg.OrdersTopic, "orders-topic", cfg.OrdersTopic, "topic of subscriber-order events")
	fs.StringVar(&cfg.OutcomesTopic, "outcomes-topic", cfg.OutcomesTopic, "topic of subscriber-outcome events")
	fs.StringVar(&cfg.DeadLetterTopic, "dead-letter-topic", cfg.DeadLetterTopic, "topic of dead-letter records")
	cfg.Kafka.BindFlags(fs)
	fs.StringVar(&cfg.WebexBaseURL, "webex-base-url", cfg.WebexBaseURL, "Webex API root")
	fs.StringVar(&cfg.WebexTokenFile, "webex-token-file", cfg.WebexTokenFile, "file holding the Webex access token (or set PROVISIONER_WEBEX_TOKEN)")
	fs.StringVar(&cfg.WebexClientID, "webex-client-id", cfg.WebexClientID, "OAuth client id, to refresh access tokens instead of using a fixed one")
	fs.StringVar(&cfg.WebexClientSecretFile, "webex-client-secret-file", cfg.WebexClientSecretFile, "file holding the OAuth client secret (or set PROVISIONER_WEBEX_CLIENT_SECRET)")
	fs.StringVar(&cfg.WebexRefreshTokenFile, "webex-refresh-token-file", cfg.WebexRefreshTokenFile, "file holding the OAuth refresh token; the newest one is written back to it")
	fs.StringVar(&cfg.WebexTokenURL, "webex-token-url", cfg.WebexTokenURL, "OAuth token endpoint (default: <webex-base-url>/access_token)")
	fs.StringVar(&cfg.OnBehalfOf, "on-behalf-of-sub-partner-org-id", cfg.OnBehalfOf, "act for this sub-partner organisation")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", cfg.RequestTimeout, "timeout of one Webex HTTP call")
	fs.DurationVar(&cfg.RetryInitialInterval, "retry-initial-interval", cfg.RetryInitialInterval, "first wait after a transient Webex error")
	fs.DurationVar(&cfg.RetryMaxInterval, "retry-max-interval", cfg.RetryMaxInterval, "longest wait between retries")
	fs.DurationVar(&cfg.RetryMaxElapsed, "retry-max-elapsed", cfg.RetryMaxElapsed, "give up a step after retrying this long (the order fails: retries_exhausted)")
	fs.IntVar(&cfg.RetryMaxAttempts, "retry-max-attempts", cfg.RetryMaxAttempts, "give up a step after this many calls (0: no limit but --retry-max-elapsed)")
	fs.DurationVar(&cfg.StatusPollInterval, "status-poll-interval", cfg.StatusPollInterval, "first wait before polling a subscriber that is still provisioning")
	fs.DurationVar(&cfg.StatusMaxWait, "status-max-wait", cfg.StatusMaxWait, "longest time to follow a subscriber that is still provisioning")
	fs.IntVar(&cfg.MaxRecordBytes, "max-record-bytes", cfg.MaxRecordBytes, "largest order record accepted; larger ones are dead-lettered")
	fs.IntVar(&cfg.MaxInFlight, "max-in-flight", cfg.MaxInFlight, "orders handled at once (different keys in parallel, one key in order)")
	fs.IntVar(&cfg.MaxBufferedPerPartition, "max-buffered-per-partition", cfg.MaxBufferedPerPartition, "fetched but unfinished orders per partition before fetching pauses")
	fs.IntVar(&cfg.MaxBuffered, "max-buffered", cfg.MaxBuffered, "fetched but unfinished orders in all before fetching pauses")
	fs.DurationVar(&cfg.CommitInterval, "commit-interval", cfg.CommitInterval, "how often finished offsets are committed")
	fs.DurationVar(&cfg.PublishLinger, "publish-linger", cfg.PublishLinger, "how long an outcome write waits for others to share its produce request")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long in-flight orders may finish on shutdown or rebalance")
	fs.Float64Var(&cfg.WebexRateLimit, "webex-rate-limit", cfg.WebexRateLimit, "requests per second to Webex, shared by all workers (0: no limit)")
	fs.IntVar(&cfg.WebexMaxConcurrent, "webex-max-concurrent", cfg.WebexMaxConcurrent, "Webex requests in progress at once")
	fs.BoolVar(&cfg.WebexAdaptiveRate, "webex-adaptive-rate", cfg.WebexAdaptiveRate, "lower the request rate on 429s and raise it slowly again (AIMD)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "address of /metrics, /healthz and /readyz (empty: none)")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "json (one event per line) or console")
	return func() { cfg.Brokers = SplitList(brokers) }
}

// Validate checks every setting and reports all problems, each saying what to fix.
func (cfg *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(cfg.Brokers) == 0 {
		bad("--brokers (%s) is required: set it to the Kafka bootstrap servers, e.g. kafka-1:9092,kafka-2:9092", EnvName("brokers"))
	}
	for _, b := range cfg.Brokers {
		host, port, err := net.SplitHostPort(b)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n <= 0 || n > 65535 {
			bad("--brokers: %q is not host:port (e.g. kafka-1:9092)", b)
		}
	}
	errs = append(errs, kafkaProblems(&cfg.Kafka)...)
	if cfg.GroupID == "" {
		bad("--group-id (%s) is empty: name the consumer group, e.g. wholesale-provisioner", EnvName("group-id"))
	}
	topics := map[string]string{}
	for _, t := range []struct{ flag, val string }{
		{"orders-topic", cfg.OrdersTopic}, {"outcomes-topic", cfg.OutcomesTopic}, {"dead-letter-topic", cfg.DeadLetterTopic},
	} {
		switch {
		case t.val == "":
			bad("--%s (%s) is empty: name the topic", t.flag, EnvName(t.flag))
		case topics[t.val] != "":
			bad("--%s and --%s are both %q: the three topics must differ", topics[t.val], t.flag, t.val)
		default:
			topics[t.val] = t.flag
		}
	}
	if _, err := provisioning.ParseBaseURL(cfg.WebexBaseURL); err != nil {
		bad("--webex-base-url: %v", err)
	}
	oauth := cfg.WebexClientID != "" || cfg.WebexClientSecret != "" || cfg.WebexClientSecretFile != "" ||
		cfg.WebexRefreshToken != "" || cfg.WebexRefreshTokenFile != ""
	modes := 0
	for _, set := range []bool{cfg.WebexToken != "", cfg.WebexTokenFile != "", oauth} {
		if set {
			modes++
		}
	}
	switch {
	case modes > 1:
		bad("more than one way to get a Webex token is set (PROVISIONER_WEBEX_TOKEN, --webex-token-file, the OAuth settings): keep one")
	case modes == 0:
		bad("no Webex access token: set PROVISIONER_WEBEX_TOKEN, or --webex-token-file (a file holding the token), or the OAuth refresh flow (--webex-client-id, the client secret and the refresh token)")
	case cfg.WebexTokenFile != "":
		checkSecretFile(bad, "--webex-token-file", cfg.WebexTokenFile)
	case oauth:
		if cfg.WebexClientID == "" {
			bad("--webex-client-id is empty: the OAuth refresh flow needs the integration's client id")
		}
		switch {
		case cfg.WebexClientSecret != "" && cfg.WebexClientSecretFile != "":
			bad("both PROVISIONER_WEBEX_CLIENT_SECRET and --webex-client-secret-file are set: keep one")
		case cfg.WebexClientSecret == "" && cfg.WebexClientSecretFile == "":
			bad("no OAuth client secret: set PROVISIONER_WEBEX_CLIENT_SECRET or --webex-client-secret-file")
		case cfg.WebexClientSecretFile != "":
			checkSecretFile(bad, "--webex-client-secret-file", cfg.WebexClientSecretFile)
		}
		switch {
		case cfg.WebexRefreshToken == "" && cfg.WebexRefreshTokenFile == "":
			bad("no OAuth refresh token: set --webex-refresh-token-file (advised: the renewed token is kept there) or PROVISIONER_WEBEX_REFRESH_TOKEN")
		case cfg.WebexRefreshToken == "" && cfg.WebexRefreshTokenFile != "":
			checkSecretFile(bad, "--webex-refresh-token-file", cfg.WebexRefreshTokenFile)
		}
	}
	positive := []struct {
		flag string
		d    time.Duration
	}{
		{"request-timeout", cfg.RequestTimeout}, {"retry-initial-interval", cfg.RetryInitialInterval},
		{"retry-max-interval", cfg.RetryMaxInterval}, {"retry-max-elapsed", cfg.RetryMaxElapsed}, {"status-poll-interval", cfg.StatusPollInterval}, {"status-max-wait", cfg.StatusMaxWait},
	}
	for _, p := range positive {
		if p.d <= 0 {
			bad("--%s must be a positive duration such as 30s, not %s", p.flag, p.d)
		}
	}
	if cfg.RetryMaxInterval < cfg.RetryInitialInterval {
		bad("--retry-max-interval (%s) is shorter than --retry-initial-interval (%s)", cfg.RetryMaxInterval, cfg.RetryInitialInterval)
	}
	if cfg.RetryMaxAttempts < 0 {
		bad("--retry-max-attempts must be 0 (no limit) or more, not %d", cfg.RetryMaxAttempts)
	}
	for _, n := range []struct {
		flag string
		v    int
	}{{"max-in-flight", cfg.MaxInFlight}, {"max-buffered-per-partition", cfg.MaxBufferedPerPartition}, {"max-buffered", cfg.MaxBuffered}, {"webex-max-concurrent", cfg.WebexMaxConcurrent}} {
		if n.v < 1 {
			bad("--%s must be at least 1, not %d", n.flag, n.v)
		}
	}
	if cfg.MaxBuffered < cfg.MaxInFlight {
		bad("--max-buffered (%d) is below --max-in-flight (%d): the buffer feeds the workers", cfg.MaxBuffered, cfg.MaxInFlight)
	}
	if cfg.CommitInterval <= 0 || cfg.ShutdownTimeout <= 0 {
		bad("--commit-interval and --shutdown-timeout must be positive durations such as 1s")
	}
	if cfg.PublishLinger <= 0 || cfg.PublishLinger > time.Second {
		bad("--publish-linger must be a duration above 0 and at most 1s, such as 10ms, not %v", cfg.PublishLinger)
	}
	if cfg.WebexRateLimit < 0 {
		bad("--webex-rate-limit must be 0 (no limit) or more, not %v", cfg.WebexRateLimit)
	}
	if cfg.MaxRecordBytes < 1024 {
		bad("--max-record-bytes must be at least 1024, not %d", cfg.MaxRecordBytes)
	}
	if cfg.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(cfg.HTTPAddr); err != nil {
			bad("--http-addr %q is not host:port (e.g. :9464)", cfg.HTTPAddr)
		}
	}
	if _, err := ParseLevel(cfg.LogLevel); err != nil {
		bad("--log-level: %v", err)
	}
	if cfg.LogFormat != "json" && cfg.LogFormat != "console" {
		bad("--log-format must be json or console, not %q", cfg.LogFormat)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid configuration:\n  %w", joinLines(errs))
}

// checkSecretFile reports a secret file that cannot be read or is empty,
// without ever quoting its content.
func checkSecretFile(bad func(string, ...any), flag, path string) {
	b, err := os.ReadFile(path)
	switch {
	case err != nil:
		bad("%s: %v", flag, errors.Unwrap(err))
	case strings.TrimSpace(string(b)) == "":
		bad("%s %s is empty: write the secret into it", flag, path)
	}
}

type lines []error

func (l lines) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n  ")
}

func joinLines(errs []error) error { return lines(errs) }

// EnvPrefix prefixes the environment variable of every flag: --orders-topic is
// also PROVISIONER_ORDERS_TOPIC. A flag given on the command line wins.
const EnvPrefix = "PROVISIONER_"

// EnvName returns the environment variable of a flag.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// SplitList splits a comma-separated list, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

package app

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/acme-sp/wholesale-provisioner/consumer"
	"github.com/acme-sp/wholesale-provisioner/internal/kafkasec"
	"github.com/acme-sp/wholesale-provisioner/internal/pipeline"
	"github.com/acme-sp/wholesale-provisioner/producer"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

// Config is the whole configuration of `provisioner run`: the settings the
// parts share (brokers, group, topics, Kafka security, the Webex token),
// and each part's own configuration, with its defaults and its Validate.
// The command binds flags and environment variables to it; Validate checks
// it before anything starts.
type Config struct {
	// Brokers are the Kafka bootstrap addresses (host:port).
	Brokers []string
	// GroupID is the consumer group of the provisioner's instances.
	GroupID string
	// OrdersTopic, OutcomesTopic and DeadLetterTopic are the three topics.
	OrdersTopic     string
	OutcomesTopic   string
	DeadLetterTopic string
	// CustomerOrdersTopic holds customer-order events, read by a second
	// consumer group (CustomerGroupID) of the same instances; "" reads none.
	// CustomerOutcomesTopic receives customer-outcome events.
	CustomerOrdersTopic   string
	CustomerOutcomesTopic string
	// BudgetTopic carries the Webex pauses (a 429's Retry-After) and the
	// heartbeats between the instances that share the budget; "" shares
	// none, and a dead member's share waits for the group to expel it.
	BudgetTopic string
	// Kafka is the TLS and SASL security of every Kafka connection. Default: plaintext.
	Kafka kafkasec.Config

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
	// WebexTokenURL is the token endpoint. Default: <Client.BaseURL>/access_token.
	WebexTokenURL string

	// Consumer reads the orders topic; New sets its brokers, group, topic,
	// connections and retry backoff (the workflow's).
	Consumer consumer.Config
	// Writer writes outcomes and dead letters; New sets its brokers, topics
	// and transport. Its BatchTimeout is --publish-linger.
	Writer producer.Config
	// Pipeline turns records into answers; New sets its group, logger and observer.
	Pipeline pipeline.Config
	// Client calls Webex (BaseURL, RequestTimeout, OnBehalfOfSubPartnerOrgID);
	// New sets its tokens, transport and limiter.
	Client provisioning.ClientConfig
	// Limiter is the one Webex rate budget of the instance.
	Limiter provisioning.LimiterConfig
	// Workflow is the Webex workflow's retries and status polling.
	Workflow provisioning.WorkflowConfig

	// HTTPAddr is where /metrics, /healthz and /readyz are served ("" for nowhere).
	HTTPAddr string

	// LogLevel is debug, info, warn or error; LogFormat is json or console.
	LogLevel  string
	LogFormat string
}

// followUpsTopic is the follow-up topic: the one configured, or the orders
// topic's name with -followups, so that every orders topic has its own.
func (cfg Config) followUpsTopic() string {
	if t := cfg.Pipeline.FollowUp.Topic; t != "" {
		return t
	}
	return FollowUpsTopicOf(cfg.OrdersTopic)
}

// CustomerGroupID is the consumer group of the customer orders: the
// instances' group with -customers, so that its offsets and its lag are its
// own and a customer's minutes of provisioning hold no subscriber partition.
func (cfg Config) CustomerGroupID() string { return cfg.GroupID + "-customers" }

// FollowUpsTopicOf is the default follow-up topic of an orders topic.
func FollowUpsTopicOf(ordersTopic string) string { return ordersTopic + "-followups" }

// DefaultConfig returns the configuration used where nothing is set: the
// service's names, and each part's own defaults.
func DefaultConfig() Config {
	return Config{
		GroupID:               "wholesale-provisioner",
		OrdersTopic:           "subscriber-orders",
		OutcomesTopic:         "subscriber-outcomes",
		DeadLetterTopic:       "subscriber-orders-dlt",
		CustomerOrdersTopic:   "customer-orders",
		CustomerOutcomesTopic: "customer-outcomes",
		BudgetTopic:           "webex-budget",
		Consumer:              consumer.DefaultConfig(),
		Writer:                producer.DefaultConfig(),
		Pipeline:              pipeline.DefaultConfig(),
		Client:                provisioning.DefaultClientConfig(),
		Limiter:               provisioning.DefaultLimiterConfig(),
		Workflow:              provisioning.DefaultWorkflowConfig(),
		LogLevel:              "info",
		LogFormat:             "json",
	}
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
		{"followups-topic", cfg.followUpsTopic()}, {"customer-orders-topic", cfg.CustomerOrdersTopic},
		{"customer-outcomes-topic", cfg.CustomerOutcomesTopic}, {"budget-topic", cfg.BudgetTopic},
	} {
		switch {
		case t.val == "" && t.flag == "budget-topic":
			// No pauses or heartbeats shared.
		case t.val == "" && t.flag == "customer-orders-topic":
			// No customer orders.
		case t.val == "" && t.flag == "customer-outcomes-topic" && cfg.CustomerOrdersTopic == "":
		case t.val == "":
			bad("--%s (%s) is empty: name the topic", t.flag, EnvName(t.flag))
		case topics[t.val] != "":
			bad("--%s and --%s are both %q: the topics must differ", topics[t.val], t.flag, t.val)
		default:
			topics[t.val] = t.flag
		}
	}
	if _, err := provisioning.ParseBaseURL(cfg.Client.BaseURL); err != nil {
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
		{"request-timeout", cfg.Client.RequestTimeout}, {"retry-initial-interval", cfg.Workflow.RetryInitialInterval},
		{"retry-max-interval", cfg.Workflow.RetryMaxInterval}, {"retry-max-elapsed", cfg.Workflow.RetryMaxElapsed}, {"status-poll-interval", cfg.Workflow.StatusPollInterval}, {"status-max-wait", cfg.Workflow.StatusMaxWait},
		{"customer-poll-interval", cfg.Workflow.CustomerPollInterval}, {"customer-max-wait", cfg.Workflow.CustomerMaxWait},
		{"subscriber-customer-wait", cfg.Workflow.SubscriberCustomerWait},
	}
	for _, p := range positive {
		if p.d <= 0 {
			bad("--%s must be a positive duration such as 30s, not %s", p.flag, p.d)
		}
	}
	if cfg.Workflow.RetryMaxInterval < cfg.Workflow.RetryInitialInterval {
		bad("--retry-max-interval (%s) is shorter than --retry-initial-interval (%s)", cfg.Workflow.RetryMaxInterval, cfg.Workflow.RetryInitialInterval)
	}
	if cfg.Workflow.RetryMaxAttempts < 0 {
		bad("--retry-max-attempts must be 0 (no limit) or more, not %d", cfg.Workflow.RetryMaxAttempts)
	}
	for _, n := range []struct {
		flag string
		v    int
	}{{"max-in-flight", cfg.Consumer.MaxInFlight}, {"max-buffered-per-partition", cfg.Consumer.MaxBufferedPerPartition}, {"max-buffered", cfg.Consumer.MaxBuffered}, {"webex-max-concurrent", cfg.Limiter.MaxConcurrent},
		{"customer-cache-size", cfg.Workflow.CustomerCacheSize}} {
		if n.v < 1 {
			bad("--%s must be at least 1, not %d", n.flag, n.v)
		}
	}
	if cfg.Consumer.MaxBuffered < cfg.Consumer.MaxInFlight {
		bad("--max-buffered (%d) is below --max-in-flight (%d): the buffer feeds the workers", cfg.Consumer.MaxBuffered, cfg.Consumer.MaxInFlight)
	}
	if cfg.Consumer.CommitInterval <= 0 || cfg.Consumer.ShutdownTimeout <= 0 {
		bad("--commit-interval and --shutdown-timeout must be positive durations such as 1s")
	}
	switch cc := cfg.Consumer; {
	case cc.SessionTimeout < 6*time.Second || cc.SessionTimeout > 5*time.Minute:
		// The broker's group.min.session.timeout.ms and .max. defaults.
		bad("--session-timeout must be between 6s and 5m (the broker's bounds), not %v", cc.SessionTimeout)
	case cc.HeartbeatInterval <= 0 || 3*cc.HeartbeatInterval > cc.SessionTimeout:
		bad("--heartbeat-interval must be positive and at most a third of --session-timeout (%v), not %v", cc.SessionTimeout, cc.HeartbeatInterval)
	case cc.GroupInstanceID != "" && !validInstanceID(cc.GroupInstanceID):
		bad("--group-instance-id must be 1 to 249 letters, digits, '.', '_' or '-' (Kafka's rule), not %q", cc.GroupInstanceID)
	case cc.RebalanceTimeout != 0 && cc.RebalanceTimeout <= cc.ShutdownTimeout:
		bad("--rebalance-timeout (%v) must exceed --shutdown-timeout (%v): a member drains its orders within the rebalance", cc.RebalanceTimeout, cc.ShutdownTimeout)
	}
	if cfg.Writer.BatchTimeout <= 0 || cfg.Writer.BatchTimeout > time.Second {
		bad("--publish-linger must be a duration above 0 and at most 1s, such as 10ms, not %v", cfg.Writer.BatchTimeout)
	}
	if cfg.Limiter.Rate < 0 {
		bad("--webex-rate-limit must be 0 (no limit) or more, not %v", cfg.Limiter.Rate)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"pending-sweep-interval", cfg.Pipeline.FollowUp.SweepInterval}, {"pending-max-sweep-interval", cfg.Pipeline.FollowUp.MaxSweepInterval}, {"pending-deadline", cfg.Pipeline.FollowUp.Deadline}} {
		if d.v < 0 {
			bad("--%s must be a positive duration, not %s", d.flag, d.v)
		}
	}
	if cfg.Pipeline.FollowUp.ConsentMoveAfter < 0 {
		bad("--pending-consent-move-after must be 0 (never) or a positive duration, not %s", cfg.Pipeline.FollowUp.ConsentMoveAfter)
	}
	if cfg.Pipeline.MaxRecordBytes < 1024 {
		bad("--max-record-bytes must be at least 1024, not %d", cfg.Pipeline.MaxRecordBytes)
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
	// Each part checks its own settings too; after the checks above, which
	// name the flags, it can only find what they do not look at.
	if len(errs) == 0 {
		for _, err := range []error{cfg.Limiter.Validate(), cfg.Workflow.Validate()} {
			if err != nil {
				errs = append(errs, err)
			}
		}
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

// validInstanceID is Kafka's rule for a group.instance.id.
func validInstanceID(id string) bool {
	if len(id) > 249 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

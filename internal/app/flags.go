package app

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/acme-sp/wholesale-provisioner/internal/kafkasec"
)

// This file is the one place where the service's settings meet flags and
// environment variables: every flag NAME is also read from PROVISIONER_NAME
// (EnvName), a flag on the command line wins, and secrets are read from the
// environment or files only, never from a flag.

// NewFlagSet returns a flag set whose usage lists each flag with its variable.
func NewFlagSet(name, synopsis string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: provisioner %s [flags]\n\n%s\n\nFlags (each also read from the environment variable shown):\n", name, synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(out, "  --%s  [%s]\n      %s%s\n", f.Name, EnvName(f.Name), f.Usage, def)
		})
	}
	return fs
}

// ParseFlags parses args, then fills every flag not given on the command line from
// its environment variable, so that either way of configuring works.
func ParseFlags(fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool)) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		name := EnvName(f.Name)
		if v, ok := lookupEnv(name); ok && v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("environment variable %s=%q: %v", name, v, serr)
			}
		}
	})
	return err
}

// BindRunFlags declares the flags of `provisioner run` on fs, bound to cfg,
// with cfg's values as defaults. It returns a function to call after parsing,
// which copies list flags back.
func BindRunFlags(fs *flag.FlagSet, cfg *Config) func() {
	brokers := strings.Join(cfg.Brokers, ",")
	fs.StringVar(&brokers, "brokers", brokers, "Kafka bootstrap servers, comma-separated host:port")
	fs.StringVar(&cfg.GroupID, "group-id", cfg.GroupID, "Kafka consumer group id")
	fs.StringVar(&cfg.OrdersTopic, "orders-topic", cfg.OrdersTopic, "topic of subscriber-order events")
	fs.StringVar(&cfg.OutcomesTopic, "outcomes-topic", cfg.OutcomesTopic, "topic of subscriber-outcome events")
	fs.StringVar(&cfg.DeadLetterTopic, "dead-letter-topic", cfg.DeadLetterTopic, "topic of dead-letter records")
	fs.StringVar(&cfg.BudgetTopic, "budget-topic", cfg.BudgetTopic, "compacted one-partition topic on which the instances sharing the Webex budget tell each other of 429 pauses and that they live (empty: none)")
	fs.StringVar(&cfg.CustomerOrdersTopic, "customer-orders-topic", cfg.CustomerOrdersTopic, "topic of customer-order events, read by the group <group-id>-customers (empty: no customer orders)")
	fs.StringVar(&cfg.CustomerOutcomesTopic, "customer-outcomes-topic", cfg.CustomerOutcomesTopic, "topic of customer-outcome events")
	BindKafkaSecurityFlags(fs, &cfg.Kafka)
	fs.StringVar(&cfg.Client.BaseURL, "webex-base-url", cfg.Client.BaseURL, "Webex API root")
	fs.StringVar(&cfg.WebexTokenFile, "webex-token-file", cfg.WebexTokenFile, "file holding the Webex access token (or set PROVISIONER_WEBEX_TOKEN)")
	fs.StringVar(&cfg.WebexClientID, "webex-client-id", cfg.WebexClientID, "OAuth client id, to refresh access tokens instead of using a fixed one")
	fs.StringVar(&cfg.WebexClientSecretFile, "webex-client-secret-file", cfg.WebexClientSecretFile, "file holding the OAuth client secret (or set PROVISIONER_WEBEX_CLIENT_SECRET)")
	fs.StringVar(&cfg.WebexRefreshTokenFile, "webex-refresh-token-file", cfg.WebexRefreshTokenFile, "file holding the OAuth refresh token; the newest one is written back to it")
	fs.StringVar(&cfg.WebexTokenURL, "webex-token-url", cfg.WebexTokenURL, "OAuth token endpoint (default: <webex-base-url>/access_token)")
	fs.StringVar(&cfg.Client.OnBehalfOfSubPartnerOrgID, "on-behalf-of-sub-partner-org-id", cfg.Client.OnBehalfOfSubPartnerOrgID, "act for this sub-partner organisation")
	fs.DurationVar(&cfg.Client.RequestTimeout, "request-timeout", cfg.Client.RequestTimeout, "timeout of one Webex HTTP call")
	fs.DurationVar(&cfg.Workflow.RetryInitialInterval, "retry-initial-interval", cfg.Workflow.RetryInitialInterval, "first wait after a transient Webex error")
	fs.DurationVar(&cfg.Workflow.RetryMaxInterval, "retry-max-interval", cfg.Workflow.RetryMaxInterval, "longest wait between retries")
	fs.DurationVar(&cfg.Workflow.RetryMaxElapsed, "retry-max-elapsed", cfg.Workflow.RetryMaxElapsed, "give up a step after retrying this long (the order fails: retries_exhausted)")
	fs.IntVar(&cfg.Workflow.RetryMaxAttempts, "retry-max-attempts", cfg.Workflow.RetryMaxAttempts, "give up a step after this many calls (0: no limit but --retry-max-elapsed)")
	fs.DurationVar(&cfg.Workflow.StatusPollInterval, "status-poll-interval", cfg.Workflow.StatusPollInterval, "first wait before polling a subscriber that is still provisioning")
	fs.DurationVar(&cfg.Workflow.StatusMaxWait, "status-max-wait", cfg.Workflow.StatusMaxWait, "longest time to follow a subscriber that is still provisioning")
	fs.DurationVar(&cfg.Workflow.CustomerPollInterval, "customer-poll-interval", cfg.Workflow.CustomerPollInterval, "first wait before reading a customer that is still provisioning, updating or deleting (later waits grow to 15 times this)")
	fs.DurationVar(&cfg.Workflow.CustomerMaxWait, "customer-max-wait", cfg.Workflow.CustomerMaxWait, "longest time a customer order follows its customer to a final state")
	fs.DurationVar(&cfg.Workflow.SubscriberCustomerWait, "subscriber-customer-wait", cfg.Workflow.SubscriberCustomerWait, "longest time a subscriber order waits for its customer to be provisioned (then it fails: customer_not_ready)")
	fs.IntVar(&cfg.Workflow.CustomerCacheSize, "customer-cache-size", cfg.Workflow.CustomerCacheSize, "customers remembered: the Webex ids of external ids, and the last customer order of each")
	fs.IntVar(&cfg.Pipeline.MaxRecordBytes, "max-record-bytes", cfg.Pipeline.MaxRecordBytes, "largest order record accepted; larger ones are dead-lettered")
	fs.IntVar(&cfg.Consumer.MaxInFlight, "max-in-flight", cfg.Consumer.MaxInFlight, "orders handled at once (different keys in parallel, one key in order)")
	fs.IntVar(&cfg.Consumer.MaxBufferedPerPartition, "max-buffered-per-partition", cfg.Consumer.MaxBufferedPerPartition, "fetched but unfinished orders per partition before fetching pauses")
	fs.IntVar(&cfg.Consumer.MaxBuffered, "max-buffered", cfg.Consumer.MaxBuffered, "fetched but unfinished orders in all before fetching pauses")
	fs.DurationVar(&cfg.Consumer.CommitInterval, "commit-interval", cfg.Consumer.CommitInterval, "how often finished offsets are committed")
	fs.DurationVar(&cfg.Writer.BatchTimeout, "publish-linger", cfg.Writer.BatchTimeout, "how long an outcome write waits for others to share its produce request")
	fs.DurationVar(&cfg.Consumer.SessionTimeout, "session-timeout", cfg.Consumer.SessionTimeout, "consumer group session: a member silent this long is expelled and its partitions given to the others")
	fs.DurationVar(&cfg.Consumer.HeartbeatInterval, "heartbeat-interval", cfg.Consumer.HeartbeatInterval, "how often a member tells the group it lives, and learns of a rebalance (at most a third of --session-timeout)")
	fs.StringVar(&cfg.Consumer.GroupInstanceID, "group-instance-id", cfg.Consumer.GroupInstanceID, "static group membership (KIP-345): a stable id unique in the group, such as a StatefulSet pod name; a restart with it takes its partitions back without a rebalance")
	fs.DurationVar(&cfg.Consumer.RebalanceTimeout, "rebalance-timeout", cfg.Consumer.RebalanceTimeout, "how long the group waits for its members to rejoin a rebalance (0: --shutdown-timeout + 15s)")
	fs.DurationVar(&cfg.Consumer.ShutdownTimeout, "shutdown-timeout", cfg.Consumer.ShutdownTimeout, "how long in-flight orders may finish on shutdown or rebalance")
	fs.StringVar(&cfg.Pipeline.FollowUp.Topic, "followups-topic", cfg.Pipeline.FollowUp.Topic, "compacted topic of the orders left pending on their end user, created when missing (default: <orders-topic>-followups)")
	fs.DurationVar(&cfg.Pipeline.FollowUp.SweepInterval, "pending-sweep-interval", cfg.Pipeline.FollowUp.SweepInterval, "first wait between two looks at the subscribers pending on their end user (doubles while none resolves)")
	fs.DurationVar(&cfg.Pipeline.FollowUp.MaxSweepInterval, "pending-max-sweep-interval", cfg.Pipeline.FollowUp.MaxSweepInterval, "longest wait between two looks at the pending subscribers")
	fs.DurationVar(&cfg.Pipeline.FollowUp.Deadline, "pending-deadline", cfg.Pipeline.FollowUp.Deadline, "how long a subscriber may wait on its end user before its order fails (pending_timeout)")
	fs.DurationVar(&cfg.Pipeline.FollowUp.ConsentMoveAfter, "pending-consent-move-after", cfg.Pipeline.FollowUp.ConsentMoveAfter, "send the consent move email once to a subscriber still in pending_user_migration this long after its order (0: never)")
	fs.Float64Var(&cfg.Limiter.Rate, "webex-rate-limit", cfg.Limiter.Rate, "requests per second to Webex, shared by all workers (0: no limit)")
	fs.IntVar(&cfg.Limiter.MaxConcurrent, "webex-max-concurrent", cfg.Limiter.MaxConcurrent, "Webex requests in progress at once")
	fs.BoolVar(&cfg.Limiter.Adaptive, "webex-adaptive-rate", cfg.Limiter.Adaptive, "lower the request rate on 429s and raise it slowly again (AIMD)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "address of /metrics, /healthz and /readyz (empty: none)")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "json (one event per line) or console")
	return func() { cfg.Brokers = SplitList(brokers) }
}

// LoadSecrets reads the secrets of cfg from the environment through
// lookupEnv (os.LookupEnv, say): the Webex token, the OAuth client secret and
// refresh token, and the Kafka SASL password.
func LoadSecrets(cfg *Config, lookupEnv func(string) (string, bool)) {
	cfg.WebexToken, _ = lookupEnv(EnvName("webex-token"))
	cfg.WebexClientSecret, _ = lookupEnv(EnvName("webex-client-secret"))
	cfg.WebexRefreshToken, _ = lookupEnv(EnvName("webex-refresh-token"))
	LoadKafkaSecrets(&cfg.Kafka, lookupEnv)
}

// LoadKafkaSecrets reads the SASL password from PROVISIONER_KAFKA_SASL_PASSWORD.
func LoadKafkaSecrets(c *kafkasec.Config, lookupEnv func(string) (string, bool)) {
	if v, ok := lookupEnv(kafkasec.PasswordEnv); ok {
		c.SASL.Password = kafkasec.Secret(v)
	}
}

// BindKafkaSecurityFlags declares the TLS and SASL flags of every command
// that talks to Kafka.
func BindKafkaSecurityFlags(fs *flag.FlagSet, c *kafkasec.Config) {
	fs.BoolVar(&c.TLS.Enabled, "kafka-tls", c.TLS.Enabled, "connect to the Kafka brokers with TLS")
	fs.StringVar(&c.TLS.CAFile, "kafka-tls-ca-file", c.TLS.CAFile, "PEM file of the CAs that signed the brokers' certificates (default: the system's roots)")
	fs.StringVar(&c.TLS.CertFile, "kafka-tls-cert-file", c.TLS.CertFile, "PEM client certificate, for brokers that require one (with --kafka-tls-key-file)")
	fs.StringVar(&c.TLS.KeyFile, "kafka-tls-key-file", c.TLS.KeyFile, "PEM private key of --kafka-tls-cert-file")
	fs.StringVar(&c.TLS.ServerName, "kafka-tls-server-name", c.TLS.ServerName, "name expected in the brokers' certificates (default: the host dialled)")
	fs.BoolVar(&c.TLS.InsecureSkipVerify, "kafka-tls-insecure-skip-verify", c.TLS.InsecureSkipVerify, "accept any broker certificate (tests only: the traffic can be read and changed)")
	fs.StringVar(&c.SASL.Mechanism, "kafka-sasl-mechanism", c.SASL.Mechanism, "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: no SASL)")
	fs.StringVar(&c.SASL.Username, "kafka-sasl-username", c.SASL.Username, "SASL user name")
	fs.StringVar(&c.SASL.PasswordFile, "kafka-sasl-password-file", c.SASL.PasswordFile, "file holding the SASL password, re-read for new connections (or set "+kafkasec.PasswordEnv+")")
	fs.BoolVar(&c.SASL.AllowPlaintext, "kafka-allow-plaintext-sasl", c.SASL.AllowPlaintext, "allow SASL PLAIN without --kafka-tls, which sends the password in clear (tests only)")
}

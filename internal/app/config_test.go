package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	c := DefaultConfig()
	c.Brokers = []string{"kafka-1:9092"}
	c.WebexToken = "tok"
	return c
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   string // substring of the message; "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no brokers", func(c *Config) { c.Brokers = nil }, "--brokers (PROVISIONER_BROKERS) is required"},
		{"broker without port", func(c *Config) { c.Brokers = []string{"kafka-1"} }, `"kafka-1" is not host:port`},
		{"same topic twice", func(c *Config) { c.OutcomesTopic = c.OrdersTopic }, "the topics must differ"},
		{"empty group", func(c *Config) { c.GroupID = "" }, "--group-id (PROVISIONER_GROUP_ID) is empty"},
		{"bad base URL", func(c *Config) { c.Client.BaseURL = "webexapis.com/v1" }, "--webex-base-url"},
		{"base URL without the version", func(c *Config) { c.Client.BaseURL = "http://127.0.0.1:8080" }, "does not look like an API root: it must end with the API version"},
		{"base URL of an endpoint", func(c *Config) { c.Client.BaseURL = "https://webexapis.com/v1/wholesale/subscribers" }, "does not look like an API root"},
		{"base URL with a trailing slash", func(c *Config) { c.Client.BaseURL = "https://webexapis.com/v1/" }, ""},
		{"no token", func(c *Config) { c.WebexToken = "" }, "no Webex access token: set PROVISIONER_WEBEX_TOKEN, or --webex-token-file"},
		{"both tokens", func(c *Config) { c.WebexTokenFile = empty }, "keep one"},
		{"missing token file", func(c *Config) { c.WebexToken, c.WebexTokenFile = "", filepath.Join(dir, "nope") }, "--webex-token-file"},
		{"empty token file", func(c *Config) { c.WebexToken, c.WebexTokenFile = "", empty }, "is empty: write the secret into it"},
		{"OAuth without client id", func(c *Config) { c.WebexToken, c.WebexRefreshToken, c.WebexClientSecret = "", "r", "s" }, "--webex-client-id is empty"},
		{"OAuth without secret", func(c *Config) { c.WebexToken, c.WebexClientID, c.WebexRefreshToken = "", "id", "r" }, "no OAuth client secret"},
		{"OAuth without refresh token", func(c *Config) { c.WebexToken, c.WebexClientID, c.WebexClientSecret = "", "id", "s" }, "no OAuth refresh token"},
		{"OAuth and a token", func(c *Config) { c.WebexClientID, c.WebexClientSecret, c.WebexRefreshToken = "id", "s", "r" }, "more than one way to get a Webex token"},
		{"OAuth complete", func(c *Config) {
			c.WebexToken, c.WebexClientID, c.WebexClientSecret, c.WebexRefreshToken = "", "id", "s", "r"
		}, ""},
		{"negative timeout", func(c *Config) { c.Client.RequestTimeout = -time.Second }, "--request-timeout must be a positive duration"},
		{"max below initial", func(c *Config) { c.Workflow.RetryMaxInterval = time.Millisecond }, "shorter than --retry-initial-interval"},
		{"tiny record limit", func(c *Config) { c.Pipeline.MaxRecordBytes = 10 }, "--max-record-bytes"},
		{"bad log level", func(c *Config) { c.LogLevel = "loud" }, "--log-level"},
		{"session too short", func(c *Config) { c.Consumer.SessionTimeout = time.Second }, "--session-timeout must be between 6s and 5m"},
		{"heartbeat above a third of the session", func(c *Config) { c.Consumer.HeartbeatInterval = 11 * time.Second }, "--heartbeat-interval must be positive and at most a third"},
		{"rebalance shorter than the drain", func(c *Config) { c.Consumer.RebalanceTimeout = c.Consumer.ShutdownTimeout }, "--rebalance-timeout"},
		{"instance id with a space", func(c *Config) { c.Consumer.GroupInstanceID = "pod 0" }, "--group-instance-id must be"},
		{"instance id of a pod", func(c *Config) { c.Consumer.GroupInstanceID = "provisioner-0" }, ""},
		{"short session, quick heartbeat", func(c *Config) { c.Consumer.SessionTimeout, c.Consumer.HeartbeatInterval = 10*time.Second, time.Second }, ""},
		{"budget topic is the orders topic", func(c *Config) { c.BudgetTopic = c.OrdersTopic }, "the topics must differ"},
		{"no budget topic", func(c *Config) { c.BudgetTopic = "" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("no error, want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

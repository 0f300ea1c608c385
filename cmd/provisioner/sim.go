package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// simFlags declares the simulator's settings on fs.
func simFlags(fs interface {
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
}

// simCmd is `provisioner webex-sim`.
func simCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := webexsim.Config{
		PrecheckRejectDomain:   sample.RejectDomain,
		PendingMigrationDomain: webexsim.DefaultPendingMigrationDomain,
		ErrorDomain:            webexsim.DefaultErrorDomain,
	}
	addr := "127.0.0.1:8080"
	fs := newFlagSet("webex-sim", "Serve the Webex for Wholesale Subscribers API simulator (in memory) on a port.\n"+
		"The accepted token comes from PROVISIONER_SIM_TOKEN (any bearer token is accepted when it is unset).\n"+
		"Admin endpoints: GET /_sim/stats, POST /_sim/reset, PUT /_sim/faults, PUT /_sim/token, GET /_sim/healthz.", stderr)
	fs.StringVar(&addr, "addr", addr, "address to listen on (host:port; port 0 picks a free one)")
	simFlags(fs, &cfg)
	if err := parse(fs, args, osLookupEnv); err != nil {
		return usageError{err}
	}
	cfg.Token, _ = osLookupEnv(envName("sim-token"))
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return usageError{fmt.Errorf("listening on %s: %w", addr, err)}
	}
	sim := webexsim.New(cfg)
	fmt.Fprintf(stdout, "webex simulator serving; base URL %s\n", sim.BaseURL("http://"+ln.Addr().String()))
	return webexsim.Serve(ctx, ln, sim)
}

package main

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
)

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
	bindSimFlags(fs, &cfg)
	if err := parse(fs, args, osLookupEnv); err != nil {
		return usageError{err}
	}
	cfg.Token, _ = osLookupEnv(app.EnvName("sim-token"))
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

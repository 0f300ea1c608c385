package main

import (
	"context"
	"errors"
	"io"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
)

// runCmd is `provisioner run`.
func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := app.DefaultConfig()
	cfg.HTTPAddr = ":9464" // where operators and orchestrators expect it; off by default in the library
	fs := newFlagSet("run", "Consume subscriber orders from Kafka and provision them on Webex for Wholesale.", stderr)
	finish := app.BindRunFlags(fs, &cfg)
	if err := parse(fs, args, osLookupEnv); err != nil {
		return err
	}
	finish()
	// Secrets only from the environment or files: flags show in process lists.
	app.LoadSecrets(&cfg, osLookupEnv)
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	// JSON lines go out in batches; console lines, for a person at a
	// terminal, as they come.
	logOut := stderr
	if cfg.LogFormat != "console" {
		lines := app.NewLogBuffer(stderr)
		defer lines.Close()
		logOut = lines
	}
	log := app.NewLogger(logOut, cfg.LogLevel, cfg.LogFormat)
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return usageError{err}
	}
	defer a.Close()
	return a.Run(ctx)
}

// usageError is a configuration mistake: reported without a stack of context,
// with exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

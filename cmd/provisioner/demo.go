package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"github.com/acme-sp/wholesale-provisioner/internal/demo"
)

// demoCmd is `provisioner demo`: the whole flow in one process, on an in-process
// Kafka-protocol broker (kfake) and the Webex simulator (package demo).
func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sim := demo.DefaultSim()
	opts := demo.Options{Orders: 100, Partitions: 3, Sim: &sim}
	timeout := 2 * time.Minute
	var logFile string
	var verbose bool
	fs := newFlagSet("demo", "Run the whole flow in-process: an in-process Kafka broker, the Webex simulator and the\n"+
		"provisioner. Publishes sample orders (good ones, a precheck rejection, a pending migration, a\n"+
		"duplicate, a redelivery, malformed records), shows progress, and prints a summary.", stderr)
	fs.IntVar(&opts.Orders, "orders", opts.Orders, fmt.Sprintf("number of valid orders to publish (at least %d)", demo.MinOrders))
	fs.IntVar(&opts.Partitions, "partitions", opts.Partitions, "partitions of the orders topic")
	fs.DurationVar(&timeout, "timeout", timeout, "give up if the orders are not all answered by then")
	fs.StringVar(&logFile, "log-file", "", "where the provisioner's JSON logs go (default: a file in the temp dir)")
	fs.BoolVar(&verbose, "verbose", false, "also write the provisioner's logs to stderr")
	bindSimFlags(fs, &sim)
	if err := parse(fs, args, osLookupEnv); err != nil {
		return usageError{err}
	}
	if err := opts.Validate(); err != nil {
		return usageError{err}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// Logs go to a file so that the progress display stays readable.
	if logFile == "" {
		logFile = filepath.Join(os.TempDir(), fmt.Sprintf("provisioner-demo-%d.log", os.Getpid()))
	}
	lf, err := os.Create(logFile)
	if err != nil {
		return fmt.Errorf("creating the log file: %w", err)
	}
	defer lf.Close()
	var logOut io.Writer = lf
	if verbose {
		logOut = io.MultiWriter(lf, stderr)
	}
	opts.Log, opts.Progress = app.NewLogger(logOut, "info", "json"), stderr
	fmt.Fprintln(stdout, opts.Describe())
	rep, err := demo.Run(ctx, opts)
	if err != nil {
		return fmt.Errorf("%w (logs: %s)", err, logFile)
	}
	return rep.WriteSummary(stdout, logFile)
}

// Command provisioner consumes subscriber-order events from Kafka, provisions the
// subscribers on Webex for Wholesale, and publishes their outcomes.
//
//	provisioner run        consume from real brokers (configured by flags or environment)
//	provisioner demo       run everything in-process: broker, Webex simulator, consumer
//	provisioner webex-sim  serve the Webex Wholesale simulator on a port
//	provisioner produce    publish orders from a JSON-lines file, or generated ones
//	provisioner dlq        inspect or replay the dead-letter topic
//	provisioner pending    list the orders waiting on their end user
//	provisioner bench      the benchmarks of BENCHMARKS.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "consume orders from Kafka and provision them on Webex", runCmd},
		{"demo", "run the whole flow in-process (broker, simulator, consumer) and print a summary", demoCmd},
		{"webex-sim", "serve the Webex for Wholesale simulator on a port", simCmd},
		{"produce", "publish orders to a topic from a JSON-lines file, or N generated ones", produceCmd},
		{"dlq", "inspect the dead-letter topic, or replay its orders (dlq inspect|replay)", dlqCmd},
		{"pending", "list the orders whose subscriber waits on its end user (the follow-up topic)", pendingCmd},
		{"bench", "benchmark the engine against a plain kafka-go baseline (see BENCHMARKS.md)", benchCmd},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Main runs one subcommand and returns the process exit code: 0 on success, 2 on
// a usage or configuration mistake, 1 on any other failure.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case isUsage(err):
			fmt.Fprintf(stderr, "provisioner %s: %v\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "provisioner %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "provisioner: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: provisioner <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'provisioner <command> --help' for its flags.")
}

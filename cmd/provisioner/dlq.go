package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/acme-sp/wholesale-provisioner/internal/dlq"
	"github.com/acme-sp/wholesale-provisioner/internal/kafkasec"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
)

// dlqCmd is `provisioner dlq inspect|replay`: what operators do with the
// dead-letter topic.
func dlqCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		dlqUsage(stderr)
		return usageError{errors.New("name what to do: inspect or replay")}
	}
	switch args[0] {
	case "inspect":
		return dlqInspectCmd(ctx, args[1:], stdout, stderr)
	case "replay":
		return dlqReplayCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		dlqUsage(stdout)
		return flag.ErrHelp
	}
	dlqUsage(stderr)
	return usageError{fmt.Errorf("unknown dlq command %q: use inspect or replay", args[0])}
}

func dlqUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: provisioner dlq <inspect|replay> [flags]

  inspect  count the dead letters by reason and error class, with examples (personal data masked)
  replay   re-publish the original orders of dead letters to the orders topic

Run 'provisioner dlq <inspect|replay> --help' for the flags.
`)
}

// dlqOpening is what both dlq commands do first: their flags and the Kafka
// security flags, parsed; readerConfig then turns the options into the
// command's configuration and gives its reader the security.
func dlqOpening(name, synopsis string, args []string, stderr io.Writer, bind func(*flag.FlagSet, *dlqOptions)) (dlqOptions, kafkasec.Config, error) {
	opts := defaultDLQOptions()
	fs := newFlagSet(name, synopsis, stderr)
	bind(fs, &opts)
	var sec kafkasec.Config
	app.BindKafkaSecurityFlags(fs, &sec)
	if err := parse(fs, args, osLookupEnv); err != nil {
		return opts, sec, usageError{err}
	}
	return opts, sec, nil
}

func dlqInspectCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, sec, err := dlqOpening("dlq inspect", "Read the dead-letter topic (without a consumer group, up to its end when the command starts)\n"+
		"and list the dead letters by reason and error class: counts, first and last failure, and examples\n"+
		"with emails and phone numbers masked.", args, stderr, bindDLQInspectFlags)
	if err != nil {
		return err
	}
	cfg, err := opts.InspectConfig(time.Now())
	if err == nil {
		cfg.Reader.Conn, err = secureConn(sec, cfg.Reader.Conn)
	}
	if err != nil {
		return usageError{err}
	}
	cfg.Progress = stderr
	rep, err := dlq.Inspect(ctx, cfg)
	if err != nil {
		return err
	}
	if opts.JSON {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteText(stdout)
}

func dlqReplayCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, sec, err := dlqOpening("dlq replay", "Re-publish the original records of dead letters (key, value and headers byte for byte, plus\n"+
		"replay-count and replayed-from headers) to the orders topic, at a limited rate. Reads the dead-letter\n"+
		"topic without a consumer group, up to its end when the command starts. Replaying a dead letter twice\n"+
		"provisions nothing twice. Exits 1 when a matching dead letter is refused (e.g. replayed too often).", args, stderr, bindDLQReplayFlags)
	if err != nil {
		return err
	}
	cfg, err := opts.ReplayConfig(time.Now())
	if err == nil {
		cfg.Reader.Conn, err = secureConn(sec, cfg.Reader.Conn)
	}
	if err != nil {
		return usageError{err}
	}
	cfg.Out = stdout
	cfg.Progress = stderr
	rep, err := dlq.Replay(ctx, cfg)
	if err == nil || rep.Read > 0 {
		rep.WriteSummary(stdout)
	}
	switch {
	case err != nil:
		return err
	case !rep.DryRun && rep.RefusedTotal() > 0:
		return fmt.Errorf("%d of %d matching dead letters were refused (see above)", rep.RefusedTotal(), rep.Matched)
	}
	return nil
}

// secureConn gives the dead-letter tools the same Kafka TLS and SASL settings
// as the service (flags or PROVISIONER_KAFKA_* variables; secrets from the
// environment or files).
func secureConn(sec kafkasec.Config, c dlq.Conn) (dlq.Conn, error) {
	app.LoadKafkaSecrets(&sec, osLookupEnv)
	if err := sec.Validate(); err != nil {
		return c, err
	}
	d, err := sec.Dialer()
	if err != nil {
		return c, err
	}
	tr, err := sec.Transport()
	if err != nil {
		return c, err
	}
	c.Dialer, c.Transport = d, tr
	return c, nil
}

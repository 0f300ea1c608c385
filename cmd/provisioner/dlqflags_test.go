package main

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/acme-sp/wholesale-provisioner/internal/dlq"
)

func TestDLQOptions(t *testing.T) {
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	parse := func(t *testing.T, replay bool, args ...string) dlqOptions {
		t.Helper()
		o := defaultDLQOptions()
		fs := flag.NewFlagSet("dlq", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		if replay {
			bindDLQReplayFlags(fs, &o)
		} else {
			bindDLQInspectFlags(fs, &o)
		}
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return o
	}

	cfg, err := parse(t, true, "--brokers", "k1:9092, k2:9092", "--reason", "retries_exhausted,api_rejected", "--error-class", "transient",
		"--order-id", "o-1", "--since", "2h", "--rate", "0", "--max-replays", "5", "--dry-run", "--orders-topic", "orders-v2").ReplayConfig(now)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Reader.Conn.Brokers, ",") != "k1:9092,k2:9092" || cfg.Reader.Topic != "subscriber-orders-dlt" ||
		!cfg.Reader.From.Since.Equal(now.Add(-2*time.Hour)) || cfg.Rate != rate.Inf || cfg.MaxReplays != 5 || !cfg.DryRun ||
		cfg.OrdersTopic != "orders-v2" || len(cfg.Filter.Reasons) != 2 || cfg.Filter.ErrorClasses[0] != "transient" || cfg.Filter.OrderIDs[0] != "o-1" {
		t.Errorf("replay config = %+v", cfg)
	}
	if cfg, err := parse(t, true, "--brokers", "k:1").ReplayConfig(now); err != nil || cfg.Rate != dlq.DefaultRate || cfg.MaxReplays != dlq.DefaultMaxReplays || cfg.OrdersTopic != "" {
		t.Errorf("defaults: %+v, %v", cfg, err)
	}
	icfg, err := parse(t, false, "--brokers", "k:1", "--offsets", "0:5", "--examples", "0").InspectConfig(now)
	if err != nil || icfg.Reader.From.Offsets[0] != 5 || icfg.Examples >= 0 {
		t.Errorf("inspect config = %+v, %v", icfg, err)
	}

	_, err = parse(t, true, "--since", "1h", "--offsets", "0:1", "--error-class", "fatal", "--rate", "-1", "--max-replays", "0",
		"--orders-topic", "subscriber-orders-dlt").ReplayConfig(now)
	for _, want := range []string{"--brokers (PROVISIONER_BROKERS) is required", "--since and --offsets", `--error-class: error class "fatal"`,
		"--rate must be", "--max-replays must be at least 1", "replaying into the dead-letter topic would loop"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to say %q", err, want)
		}
	}
	_, err = parse(t, false, "--brokers", "k:1", "--offsets", "zero", "--examples", "-1").InspectConfig(now)
	for _, want := range []string{"--offsets: ", "--examples must be 0 or more"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to say %q", err, want)
		}
	}
}

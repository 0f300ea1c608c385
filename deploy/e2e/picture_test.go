package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/internal/testkit"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// pictureEnv names the PNG TestDashboardPicture writes; without it the test skips.
const pictureEnv = "PROVISIONER_DASHBOARD_PNG"

// TestDashboardPicture makes docs/dashboard.png from a real run: the service on
// a real broker with a real Prometheus, a steady stream of orders of every kind,
// Webex slowing down (the lag builds) and recovering (it drains), then a burst
// of 429s; scripts/render-dashboard then draws the dashboard's panels from
// Prometheus's data. About five minutes:
//
//	KAFKA_BROKERS=$(scripts/kafka-local start) PROVISIONER_DASHBOARD_PNG=$PWD/docs/dashboard.png \
//	  go test ./deploy/e2e -run TestDashboardPicture -v -timeout 15m
func TestDashboardPicture(t *testing.T) {
	out := os.Getenv(pictureEnv)
	if out == "" {
		t.Skip("draws the dashboard picture only when " + pictureEnv + " names the PNG to write")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 12*time.Minute)
	defer cancel()
	fast := 40 * time.Millisecond
	s := startStack(t, ctx, stackConfig{
		partitions:  6,
		maxInFlight: 8,
		sim: webexsim.Config{Latency: fast, LatencyJitter: fast,
			Faults: webexsim.FaultRates{Status429: 0.01, Status503: 0.02}, Seed: 20260504},
		scrape:   2 * time.Second,
		logLevel: zerolog.ErrorLevel, // retries of injected faults are expected here
	})
	start := time.Now().Add(-5 * time.Second)

	// The billing system: 8 orders a second, of every kind.
	prodCtx, stopProducing := context.WithCancel(ctx)
	produced := make(chan int, 1)
	go func() { produced <- s.produceSteadily(prodCtx, 8) }()

	phase := func(what string, d time.Duration) {
		t.Logf("%s: %s for %s", time.Since(start).Round(time.Second), what, d)
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(d):
		}
	}
	phase("normal", 60*time.Second)
	s.sim.SetLatency(800 * time.Millisecond)
	phase("Webex slow (800 ms a call): the lag builds", 70*time.Second)
	s.sim.SetLatency(fast)
	phase("Webex back: the backlog drains", 30*time.Second)
	s.sim.SetFaults(webexsim.FaultRates{Status429: 0.25, Status503: 0.02})
	phase("Webex throttling (25% 429)", 40*time.Second)
	s.sim.SetFaults(webexsim.FaultRates{Status429: 0.01, Status503: 0.02})
	phase("normal", 45*time.Second)
	stopProducing()
	n := <-produced
	testkit.WaitFor(ctx, t, "the backlog to drain", func() error {
		v, ok, err := s.prom.value(ctx, lagQuery)
		if err != nil || !ok || v != 0 {
			return fmt.Errorf("lag %v (%v, %v)", v, ok, err)
		}
		return nil
	})
	t.Logf("%s: %d records published, all answered", time.Since(start).Round(time.Second), n)
	time.Sleep(5 * time.Second) // one more scrape after the drain
	end := time.Now()

	script, err := filepath.Abs("../../scripts/render-dashboard")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, script, "--prometheus", s.prom.url,
		"--start", strconv.FormatInt(start.Unix(), 10), "--end", strconv.FormatInt(end.Unix(), 10),
		"--step", "2s", "--rate-interval", "20s", "--out", out,
		"--title", "real run: 8 orders/s; Webex slowed to 800 ms a call for 70 s, later 25% of calls answered 429 for 40 s")
	outb, err := cmd.CombinedOutput()
	t.Logf("%s", outb)
	if err != nil {
		t.Fatalf("scripts/render-dashboard: %v", err)
	}
}

// produceSteadily publishes perSecond records a second until ctx ends: valid
// orders, some rejected by the precheck, some ending in error, some pending a
// user's migration, and now and then a malformed record. It returns how many.
func (s *stack) produceSteadily(ctx context.Context, perSecond int) int {
	w := &kafka.Writer{Addr: kafka.TCP(s.cfg.Brokers...), Topic: s.cfg.OrdersTopic, Balancer: kafka.Murmur2Balancer{Consistent: true},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	bad := sample.MalformedRecords("pic")
	tick := time.NewTicker(time.Second / time.Duration(perSecond))
	defer tick.Stop()
	n := 0
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return n
		case <-tick.C:
		}
		var m kafka.Message
		switch o := sample.Order("pic", i, time.Now()); {
		case i%150 == 149:
			b := bad[(i/150)%len(bad)]
			m = kafka.Message{Key: []byte(fmt.Sprintf("bad/%s/%d", b.Name, i)), Value: b.Value}
		case i%14 == 3:
			m = sample.Message(sample.WithDomain(o, "rej", sample.RejectDomain))
		case i%40 == 7:
			m = sample.Message(sample.WithDomain(o, "err", sample.ErrorDomain))
		case i%30 == 11:
			m = sample.Message(sample.WithDomain(o, "pend", sample.PendingDomain))
		default:
			m = sample.Message(o)
		}
		if err := w.WriteMessages(ctx, m); err != nil {
			if ctx.Err() != nil {
				return n
			}
			s.t.Errorf("publishing: %v", err)
			return n
		}
		n++
	}
}

package e2e

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/internal/testkit"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// TestPrometheusEndToEnd runs the provisioner on a real broker with a real
// Prometheus scraping it every second, and checks through Prometheus's HTTP API
// what an operator would see: the lag rises while Webex (the simulator) is
// slow and returns to 0 once the backlog drains; the outcome counters add up to
// the records sent; every alert rule evaluates without error; every dashboard
// query is valid.
func TestPrometheusEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	started := time.Now()
	s := startStack(t, ctx, stackConfig{
		partitions:  6,
		maxInFlight: 2,
		sim:         webexsim.Config{Latency: 200 * time.Millisecond},
		scrape:      time.Second,
	})
	t.Logf("%s: stack up (Prometheus at %s)", time.Since(started).Round(time.Millisecond), s.prom.url)

	// A backlog while Webex is slow: two orders in flight, 200 ms a call.
	msgs, rejected := s.orders(150, true)
	malformed := len(msgs) - 150
	s.publish(msgs)

	var peak float64
	testkit.WaitFor(ctx, t, "Prometheus to see the lag rise", func() error {
		v, ok, err := s.prom.value(ctx, lagQuery)
		if err != nil || !ok || v <= 0 {
			return fmt.Errorf("%s = %v (series: %v, err: %v)", lagQuery, v, ok, err)
		}
		peak = v
		return nil
	})
	testkit.WaitFor(ctx, t, "Prometheus to see the oldest order age", func() error {
		v, ok, err := s.prom.value(ctx, `max(provisioner_consumer_lag_seconds{job="`+job+`"})`)
		if err != nil || !ok || v <= 0 {
			return fmt.Errorf("lag seconds = %v (%v, %v)", v, ok, err)
		}
		return nil
	})
	t.Logf("%s: lag %v records while Webex is slow", time.Since(started).Round(time.Millisecond), peak)

	// Webex recovers: the backlog drains and the lag returns to 0.
	s.sim.SetLatency(0)
	testkit.WaitFor(ctx, t, "Prometheus to see the lag return to 0", func() error {
		v, ok, err := s.prom.value(ctx, lagQuery)
		if err != nil || !ok || v != 0 {
			return fmt.Errorf("%s = %v (series: %v, err: %v)", lagQuery, v, ok, err)
		}
		return nil
	})
	t.Logf("%s: lag back to 0", time.Since(started).Round(time.Millisecond))

	// Every record counted once: by outcome, and dead letters by reason.
	want := map[string]float64{
		`sum(provisioner_orders_total{job="` + job + `"})`:                             float64(len(msgs)),
		`sum(provisioner_orders_total{job="` + job + `", outcome="provisioned"})`:      float64(150 - rejected),
		`sum(provisioner_orders_total{job="` + job + `", reason="precheck_rejected"})`: float64(rejected),
		`sum(provisioner_dead_letters_total{job="` + job + `"})`:                       float64(rejected + malformed),
	}
	for q, w := range want {
		testkit.WaitFor(ctx, t, q+" to reach the records sent", func() error {
			v, ok, err := s.prom.value(ctx, q)
			if err != nil || !ok || v != w {
				return fmt.Errorf("%s = %v, want %v (series: %v, err: %v)", q, v, w, ok, err)
			}
			return nil
		})
	}

	// The alert rules, as loaded from deploy/prometheus/alerts.yml, evaluate cleanly.
	var rules struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Name           string `json:"name"`
				Health         string `json:"health"`
				LastError      string `json:"lastError"`
				LastEvaluation string `json:"lastEvaluation"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := s.prom.get(ctx, "/api/v1/rules", url.Values{}, &rules); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" || r.LastError != "" {
				t.Errorf("rule %s/%s: health %q, last error %q", g.Name, r.Name, r.Health, r.LastError)
			}
		}
	}
	if n == 0 {
		t.Errorf("Prometheus loaded no rules from %s", alertsFile)
	}
	firing, err := s.prom.query(ctx, `ALERTS{alertstate="firing", severity="critical"}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range firing {
		t.Errorf("critical alert firing during a healthy run: %v", a.Metric)
	}

	// Every dashboard query is valid PromQL; the main panels have data.
	queries := dashboardQueries(t, "15s", "5m")
	var empty []string
	for title, q := range queries {
		res, err := s.prom.query(ctx, q)
		if err != nil {
			t.Errorf("dashboard panel %s: %v", title, err)
			continue
		}
		if len(res) == 0 {
			empty = append(empty, title)
		}
	}
	slices.Sort(empty)
	for _, main := range []string{"Consumer lag per partition (A)", "Throughput by outcome (A)", "Outcome mix (A)",
		"Webex API latency (A)", "Webex calls by status (A)", "Dead letters by reason (A)", "Consumer lag (A)"} {
		if _, ok := queries[main]; !ok {
			t.Errorf("the dashboard has no panel query %q", main)
		}
		if slices.Contains(empty, main) {
			t.Errorf("dashboard panel %s has no data after the run", main)
		}
	}
	t.Logf("%s: %d rules ok, %d dashboard queries valid (%d empty in this run: %v)",
		time.Since(started).Round(time.Millisecond), n, len(queries), len(empty), empty)
}

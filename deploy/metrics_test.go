package deploy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/internal/testkit"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// family is one metric family of a /metrics scrape.
type family struct {
	typ     string              // counter, gauge, histogram, summary, untyped
	samples []map[string]string // the labels of each sample
}

// parseExposition reads the Prometheus text format: families from # TYPE
// lines, samples attributed to their family (name_bucket to the histogram).
func parseExposition(t *testing.T, body string) map[string]*family {
	t.Helper()
	fams := map[string]*family{}
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			fams[f[2]] = &family{typ: f[3]}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, labels, err := parseSample(line)
		if err != nil {
			t.Fatalf("/metrics: %v", err)
		}
		fam := fams[name]
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); fam == nil && ok {
				fam = fams[base]
			}
		}
		if fam == nil {
			t.Fatalf("/metrics: sample %q has no # TYPE line", line)
		}
		fam.samples = append(fam.samples, labels)
	}
	return fams
}

// parseSample splits `name{a="x",b="y"} value` into the name and the labels.
func parseSample(line string) (string, map[string]string, error) {
	labels := map[string]string{}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return "", nil, fmt.Errorf("no value in %q", line)
	}
	name := line[:i]
	if line[i] == '{' {
		rest := line[i+1:]
		for {
			rest = strings.TrimLeft(rest, ", ")
			if strings.HasPrefix(rest, "}") {
				break
			}
			eq := strings.Index(rest, `="`)
			if eq < 0 {
				return "", nil, fmt.Errorf("bad labels in %q", line)
			}
			key := rest[:eq]
			rest = rest[eq+2:]
			var val strings.Builder
			j := 0
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
				}
				val.WriteByte(rest[j])
			}
			if j == len(rest) {
				return "", nil, fmt.Errorf("unterminated label value in %q", line)
			}
			labels[key] = val.String()
			rest = rest[j+1:]
		}
	}
	return name, labels, nil
}

// scrapeRunningApp runs the provisioner in-process against the in-process
// broker and the Webex simulator (with 429s, 503s and failing orders, so that
// retries, Retry-After waits, failures and dead letters happen), waits until
// every record is answered and committed, and returns its /metrics.
func scrapeRunningApp(t *testing.T) map[string]*family {
	t.Helper()
	env := testkit.StartApp(t, testkit.AppOptions{
		Sim: webexsim.Config{
			Token:                "metrics-token",
			PrecheckRejectDomain: sample.RejectDomain,
			Faults:               webexsim.FaultRates{Status429: 0.1, Status503: 0.1},
			Seed:                 11,
		},
		Configure: func(c *app.Config) { c.Workflow.RetryMaxElapsed = 30 * time.Second },
		Log:       zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel),
	})
	cfg, a := env.Cfg, env.App
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	var msgs []kafka.Message
	for i := range 30 {
		o := sample.Order("metrics", i, time.Now())
		switch i % 10 {
		case 3:
			o = sample.WithDomain(o, "rej", sample.RejectDomain)
		case 5:
			o = sample.WithDomain(o, "err", sample.ErrorDomain)
		case 7:
			o = sample.WithDomain(o, "pend", sample.PendingDomain)
		}
		msgs = append(msgs, sample.Message(o))
	}
	for _, b := range sample.MalformedRecords("metrics") {
		msgs = append(msgs, kafka.Message{Key: []byte("bad/" + b.Name), Value: b.Value})
	}
	w := &kafka.Writer{Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.OrdersTopic, Balancer: kafka.Murmur2Balancer{Consistent: true},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("publishing orders: %v", err)
	}
	w.Close()

	url := "http://" + a.HTTPAddr() + "/metrics"
	var fams map[string]*family
	for {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fams = parseExposition(t, string(body))
		answered := sumOf(string(body), "provisioner_orders_total")
		lagKnown := fams["provisioner_consumer_lag_records"] != nil && len(fams["provisioner_consumer_lag_records"].samples) > 0
		if answered == float64(len(msgs)) && lagKnown && sumOf(string(body), "provisioner_consumer_lag_records") == 0 {
			return fams
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %d records answered and committed: %v answered, lag %v\n%s", len(msgs), answered,
				sumOf(string(body), "provisioner_consumer_lag_records"), body)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// sumOf adds up the samples of a metric in exposition text.
func sumOf(body, name string) float64 {
	var sum float64
	for line := range strings.Lines(body) {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// prometheusOwn are series Prometheus makes itself for every target.
var prometheusOwn = map[string]bool{"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true}

// TestMetricNamesExist runs the service and checks that every metric the
// dashboard, the alert rules and the KEDA trigger query is one it exports,
// with samples; that rate() and increase() are applied to counters only; and
// that the dashboard's selectors follow its job and topic variables.
func TestMetricNamesExist(t *testing.T) {
	fams := scrapeRunningApp(t)
	rf := loadRules(t)
	recorded := rf.recorded()

	var queries []query
	dash := dashboardQueries(t)
	queries = append(queries, dash...)
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			queries = append(queries, query{where: alertsPath + " " + r.Record + r.Alert, expr: r.Expr})
		}
	}
	queries = append(queries, query{where: "ScaledObject", expr: kedaQuery(t, loadManifests(t))})

	used := map[string]bool{}
	for qi, q := range queries {
		refs, err := promqlMetricRefs(q.expr)
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		if len(refs) == 0 {
			t.Errorf("%s: %q selects no metric", q.where, q.expr)
		}
		for _, r := range refs {
			fam, kind := resolveMetric(fams, r.name)
			switch {
			case kind == "recorded" && recorded[r.name]:
			case kind == "recorded":
				t.Errorf("%s: %s is neither exported by the service nor recorded in %s", q.where, r.name, alertsPath)
				continue
			case kind == "prometheus":
			case kind == "histogram-base":
				t.Errorf("%s: %s is a histogram: query %s_bucket, _sum or _count", q.where, r.name, r.name)
				continue
			case fam == nil:
				t.Errorf("%s: %s is not a metric the service exports (families: %v)", q.where, r.name, exportedNames(fams))
				continue
			case len(fam.samples) == 0:
				t.Errorf("%s: %s has no sample after a run", q.where, r.name)
			}
			used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(r.name, "_bucket"), "_sum"), "_count")] = true
			if slices.Contains([]string{"rate", "irate", "increase"}, r.fn) && kind != "counter" && kind != "histogram-part" &&
				!(kind == "recorded" && strings.HasSuffix(r.name, "_total")) {
				t.Errorf("%s: %s(%s): %s is a %s, not a counter", q.where, r.fn, r.name, r.name, kind)
			}
			if qi >= len(dash) || !strings.HasPrefix(r.name, "provisioner_") && r.name != "up" {
				continue
			}
			if !strings.Contains(r.matchers, `job=~"$job"`) && q.where != "variable job" {
				t.Errorf("%s: %s{%s} does not follow the dashboard's job variable (job=~\"$job\")", q.where, r.name, r.matchers)
			}
			if fam != nil && len(fam.samples) > 0 {
				// The variables themselves list the jobs and topics, so they cannot follow them.
				if _, hasTopic := fam.samples[0]["topic"]; hasTopic && !strings.Contains(r.matchers, `topic=~"$topic"`) && q.where != "variable topic" {
					t.Errorf("%s: %s{%s} does not follow the dashboard's topic variable (topic=~\"$topic\")", q.where, r.name, r.matchers)
				}
			}
		}
	}
	var unused []string
	for _, name := range exportedNames(fams) {
		if strings.HasPrefix(name, "provisioner_") && !used[name] {
			unused = append(unused, name)
		}
	}
	if len(unused) > 0 {
		t.Logf("exported but on no panel, alert or trigger: %v", unused)
	}
}

// resolveMetric finds the family of a referenced name and how it is used:
// counter, gauge, histogram-part (name_bucket, _sum, _count of a histogram or
// summary), histogram-base (the bare name of a histogram: no series),
// prometheus (made by Prometheus), or recorded (not exported by the service).
func resolveMetric(fams map[string]*family, name string) (*family, string) {
	if f, ok := fams[name]; ok {
		if f.typ == "histogram" {
			return f, "histogram-base"
		}
		return f, f.typ
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f, ok := fams[base]; ok && (f.typ == "histogram" || f.typ == "summary" && suffix != "_bucket") {
				return f, "histogram-part"
			}
		}
	}
	if prometheusOwn[name] {
		return nil, "prometheus"
	}
	if strings.Contains(name, ":") {
		return nil, "recorded"
	}
	return nil, ""
}

func exportedNames(fams map[string]*family) []string {
	var out []string
	for name := range fams {
		if strings.HasPrefix(name, "provisioner_") {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func TestParseExposition(t *testing.T) {
	fams := parseExposition(t, `# HELP a_total A.
# TYPE a_total counter
a_total{endpoint="/x/{id}",code="200"} 3
# TYPE h histogram
h_bucket{le="0.1"} 1
h_bucket{le="+Inf"} 2
h_sum 0.3
h_count 2
# TYPE g gauge
g{v="quo\"te"} 1
`)
	if f := fams["a_total"]; f == nil || f.typ != "counter" || len(f.samples) != 1 || f.samples[0]["endpoint"] != "/x/{id}" || f.samples[0]["code"] != "200" {
		t.Errorf("a_total = %+v", fams["a_total"])
	}
	if f := fams["h"]; f == nil || len(f.samples) != 4 {
		t.Errorf("h = %+v", fams["h"])
	}
	if f := fams["g"]; f == nil || f.samples[0]["v"] != `quo"te` {
		t.Errorf("g = %+v", fams["g"])
	}
	for name, want := range map[string]string{"a_total": "counter", "h": "histogram-base", "h_bucket": "histogram-part", "h_count": "histogram-part",
		"g": "gauge", "up": "prometheus", "x:y:z": "recorded", "nope": ""} {
		if _, got := resolveMetric(fams, name); got != want {
			t.Errorf("resolveMetric(%s) = %q, want %q", name, got, want)
		}
	}
}

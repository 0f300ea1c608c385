package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"gopkg.in/yaml.v3"
)

// The observability files: alert rules and their tests, Prometheus's and
// Grafana's configuration of the local stack, the dashboard, and the
// operations guide each alert links to.
const (
	alertsPath     = "prometheus/alerts.yml"
	alertsTestPath = "prometheus/alerts_test.yml"
	promConfigPath = "prometheus/prometheus.yml"
	dashboardPath  = "grafana/dashboards/wholesale-provisioner.json"
	grafanaDSPath  = "grafana/provisioning/datasources/prometheus.yml"
	grafanaDBPath  = "grafana/provisioning/dashboards/wholesale-provisioner.yml"
	operationsPath = "../docs/operations.md"

	// runbookBase is where each alert's runbook_url points, before the #anchor.
	runbookBase = "https://github.com/acme-sp/wholesale-provisioner/blob/main/docs/operations.md"
)

// ---------------------------------------------------------------------------
// alerts.yml

type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Record        string            `yaml:"record"`
	Alert         string            `yaml:"alert"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for"`
	KeepFiringFor string            `yaml:"keep_firing_for"`
	Labels        map[string]string `yaml:"labels"`
	Annotations   map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T) *ruleFile {
	t.Helper()
	data, err := os.ReadFile(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var rf ruleFile
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", alertsPath, err)
	}
	return &rf
}

// alerts returns the alerting rules in file order.
func (rf *ruleFile) alerts() []rule {
	var out []rule
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

// recorded returns the names of the recording rules.
func (rf *ruleFile) recorded() map[string]bool {
	out := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				out[r.Record] = true
			}
		}
	}
	return out
}

var (
	alertNameRE  = regexp.MustCompile(`^Provisioner[A-Z][A-Za-z]+$`)
	recordNameRE = regexp.MustCompile(`^[a-z_]+:[a-z_]+:[a-z_]+$`)
)

func TestAlertRules(t *testing.T) {
	rf := loadRules(t)
	anchors := markdownAnchors(t, operationsPath)
	seen := map[string]bool{}
	for _, g := range rf.Groups {
		defined := map[string]bool{} // recorded earlier in this group
		for _, r := range g.Rules {
			if (r.Record == "") == (r.Alert == "") {
				t.Errorf("%s: group %s: a rule needs exactly one of record and alert: %+v", alertsPath, g.Name, r)
				continue
			}
			refs, err := promqlMetricRefs(r.Expr)
			if err != nil {
				t.Errorf("%s: %s%s: %v", alertsPath, r.Record, r.Alert, err)
			}
			for _, ref := range refs {
				if recordNameRE.MatchString(ref.name) && !defined[ref.name] {
					t.Errorf("%s: %s%s uses %s, which is not recorded before it in group %s (rules of a group run in order)", alertsPath, r.Record, r.Alert, ref.name, g.Name)
				}
			}
			if r.Record != "" {
				if !recordNameRE.MatchString(r.Record) {
					t.Errorf("%s: recording rule %q is not named level:metric:operations", alertsPath, r.Record)
				}
				defined[r.Record] = true
				continue
			}
			a := r
			if seen[a.Alert] {
				t.Errorf("%s: alert %s defined twice", alertsPath, a.Alert)
			}
			seen[a.Alert] = true
			if !alertNameRE.MatchString(a.Alert) {
				t.Errorf("%s: alert %q is not named Provisioner<What>", alertsPath, a.Alert)
			}
			if s := a.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: %s: severity %q, want critical (pages) or warning (ticket)", alertsPath, a.Alert, s)
			}
			for _, k := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(a.Annotations[k]) == "" {
					t.Errorf("%s: %s has no %s annotation", alertsPath, a.Alert, k)
				}
			}
			want := runbookBase + "#" + strings.ToLower(a.Alert)
			if a.Annotations["runbook_url"] != want {
				t.Errorf("%s: %s: runbook_url %q, want %q", alertsPath, a.Alert, a.Annotations["runbook_url"], want)
			}
			if !anchors[strings.ToLower(a.Alert)] {
				t.Errorf("%s has no section \"### %s\" for the alert's runbook_url to point to", operationsPath, a.Alert)
			}
		}
	}
	if len(seen) == 0 {
		t.Fatalf("%s defines no alert", alertsPath)
	}
	// The alerts the issue asks for, by what they watch.
	for what, metric := range map[string]string{
		"lag growing":                 "topic:provisioner_consumer_lag_records:sum",
		"lag in seconds":              "provisioner_consumer_lag_seconds",
		"dead-letter rate":            "provisioner_dead_letters_total",
		"configuration fault":         "provisioner_webex_configuration_fault",
		"no commits while lagging":    "provisioner_kafka_commits_total",
		"committed offset not moving": "provisioner_consumer_committed_offset",
	} {
		found := false
		for _, a := range rf.alerts() {
			refs, _ := promqlMetricRefs(a.Expr)
			found = found || slices.ContainsFunc(refs, func(r metricRef) bool { return r.name == metric })
		}
		if !found {
			t.Errorf("%s: no alert on %s (%s)", alertsPath, what, metric)
		}
	}
}

// markdownAnchors returns the GitHub anchors of a Markdown file's headings.
func markdownAnchors(t *testing.T, file string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("reading %s: %v", file, err)
	}
	out := map[string]bool{}
	inFence := false
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\n")
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		out[githubAnchor(strings.TrimLeft(line, "# "))] = true
	}
	return out
}

// githubAnchor is the id GitHub gives a heading: lower case, punctuation
// dropped, spaces as hyphens.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

// alertTests is the part of promtool's unit test format the test checks.
type alertTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		InputSeries []struct {
			Series string `yaml:"series"`
		} `yaml:"input_series"`
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestAlertRulesTested checks that alerts_test.yml makes every alert both fire
// and stay silent, and that its series use only metrics the rules read.
func TestAlertRulesTested(t *testing.T) {
	rf := loadRules(t)
	data, err := os.ReadFile(alertsTestPath)
	if err != nil {
		t.Fatal(err)
	}
	var at alertTests
	if err := yaml.Unmarshal(data, &at); err != nil {
		t.Fatalf("%s: %v", alertsTestPath, err)
	}
	if !slices.Contains(at.RuleFiles, filepath.Base(alertsPath)) {
		t.Errorf("%s: rule_files %v does not load %s", alertsTestPath, at.RuleFiles, filepath.Base(alertsPath))
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range at.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	for _, a := range rf.alerts() {
		if !fires[a.Alert] {
			t.Errorf("%s: no case where %s fires", alertsTestPath, a.Alert)
		}
		if !silent[a.Alert] {
			t.Errorf("%s: no case where %s stays silent", alertsTestPath, a.Alert)
		}
	}
}

// requirePromtool returns promtool's path, skipping the test without it (and
// failing it in CI, where .ci/run installs it).
func requirePromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but promtool is not on PATH: .ci/run must install it (scripts/install-ci-tools)")
		}
		t.Skip("needs promtool: apt-get install prometheus (or scripts/install-ci-tools)")
	}
	return p
}

func runPromtool(t *testing.T, promtool string, args ...string) {
	t.Helper()
	out, err := exec.Command(promtool, args...).CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestPromtool runs promtool on the rules, their unit tests and the local
// stack's Prometheus configuration, and checks that every query of the
// dashboard and of the KEDA trigger is valid PromQL.
func TestPromtool(t *testing.T) {
	promtool := requirePromtool(t)
	runPromtool(t, promtool, "check", "rules", alertsPath)
	runPromtool(t, promtool, "test", "rules", alertsTestPath)
	runPromtool(t, promtool, "check", "config", promConfigPath)

	// promtool parses the queries when they are recording rules.
	type group struct {
		Name  string              `yaml:"name"`
		Rules []map[string]string `yaml:"rules"`
	}
	g := group{Name: "queries"}
	for i, q := range append(dashboardQueries(t), query{where: "ScaledObject", expr: kedaQuery(t, loadManifests(t))}) {
		g.Rules = append(g.Rules, map[string]string{"record": fmt.Sprintf("query:check:%d", i), "expr": grafanaExpand(q.expr, "1m", "1h")})
	}
	out, err := yaml.Marshal(map[string][]group{"groups": {g}})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "queries.yml")
	if err := os.WriteFile(f, out, 0o600); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, promtool, "check", "rules", f)
}

// grafanaExpand replaces Grafana's variables in a query as Grafana would for a
// query: the interval ones by durations, the others (job, topic: multi-value
// with "All" = .+) by .+.
func grafanaExpand(expr, rateInterval, rng string) string {
	r := strings.NewReplacer("$__rate_interval", rateInterval, "${__rate_interval}", rateInterval,
		"$__range", rng, "${__range}", rng, "$__interval", rateInterval, "${__interval}", rateInterval)
	return regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`).ReplaceAllString(r.Replace(expr), ".+")
}

// ---------------------------------------------------------------------------
// The dashboard

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Datasource *datasourceRef  `json:"datasource"`
			IncludeAll bool            `json:"includeAll"`
			AllValue   string          `json:"allValue"`
		} `json:"list"`
	} `json:"templating"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		Expr       string         `json:"expr"`
		RefID      string         `json:"refId"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return &d
}

// allPanels flattens rows.
func (d *dashboard) allPanels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// query is one PromQL expression and where it comes from.
type query struct{ where, expr string }

var labelValuesRE = regexp.MustCompile(`^\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$`)

// dashboardQueries returns the dashboard's panel queries and the selectors of
// its label_values() variables.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	d := loadDashboard(t)
	var out []query
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			out = append(out, query{where: fmt.Sprintf("panel %q (%s)", p.Title, tg.RefID), expr: tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValuesRE.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("%s: variable %s: %q is not label_values(<selector>, <label>)", dashboardPath, v.Name, v.Definition)
			continue
		}
		out = append(out, query{where: "variable " + v.Name, expr: m[1]})
	}
	return out
}

func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("%s: uid %q, title %q, schemaVersion %d: want a stable uid, a title and schemaVersion 36 or later", dashboardPath, d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type == "datasource" && string(v.Query) != `"prometheus"` {
			t.Errorf("%s: variable %s picks %s data sources, want prometheus", dashboardPath, v.Name, v.Query)
		}
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("%s: variable %s does not query the ${datasource} variable", dashboardPath, v.Name)
		}
		if v.IncludeAll && v.AllValue != ".+" && v.AllValue != ".*" {
			t.Errorf("%s: variable %s: allValue %q; with the default, All becomes a long alternation of values", dashboardPath, v.Name, v.AllValue)
		}
	}
	if !vars["datasource"] {
		t.Fatalf("%s: no datasource variable: the dashboard would be bound to one data source uid", dashboardPath)
	}

	ids := map[int]string{}
	var boxes []panel
	for _, p := range d.allPanels() {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("%s: panels %q and %q share id %d", dashboardPath, prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("%s: panel %q: gridPos %+v is outside the 24-column grid", dashboardPath, p.Title, g)
		}
		for _, b := range boxes {
			bg := b.GridPos
			if g.X < bg.X+bg.W && bg.X < g.X+g.W && g.Y < bg.Y+bg.H && bg.Y < g.Y+g.H {
				t.Errorf("%s: panels %q and %q overlap", dashboardPath, p.Title, b.Title)
			}
		}
		boxes = append(boxes, p)
		if p.Type == "row" {
			continue
		}
		if p.Title == "" {
			t.Errorf("%s: panel %d has no title", dashboardPath, p.ID)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: panel %q: datasource %+v, want uid ${datasource}", dashboardPath, p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no query", dashboardPath, p.Title)
		}
		refIDs := map[string]bool{}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s: panel %q: query %s is empty", dashboardPath, p.Title, tg.RefID)
			}
			if refIDs[tg.RefID] {
				t.Errorf("%s: panel %q: refId %s twice", dashboardPath, p.Title, tg.RefID)
			}
			refIDs[tg.RefID] = true
			if tg.Datasource != nil && tg.Datasource.UID != "${datasource}" {
				t.Errorf("%s: panel %q: query %s has data source %+v", dashboardPath, p.Title, tg.RefID, tg.Datasource)
			}
		}
	}

	// The panels the issue asks for, by the metric each one shows.
	used := map[string]string{} // metric → panel type
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			refs, err := promqlMetricRefs(tg.Expr)
			if err != nil {
				t.Errorf("%s: panel %q: %v", dashboardPath, p.Title, err)
			}
			for _, r := range refs {
				used[r.name] += p.Type + " "
				if strings.Contains(r.matchers, `code="429"`) {
					used["429"] = p.Type
				}
			}
		}
	}
	for what, metric := range map[string]string{
		"lag per partition": "provisioner_consumer_lag_records",
		"lag in seconds":    "provisioner_consumer_lag_seconds",
		"throughput":        "provisioner_orders_total",
		"API latency":       "provisioner_webex_request_duration_seconds_bucket",
		"API calls":         "provisioner_webex_requests_total",
		"429s":              "429",
		"dead letters":      "provisioner_dead_letters_total",
		"in flight":         "provisioner_orders_in_flight",
		"blocked keys":      "provisioner_consumer_blocked_records",
		"commits":           "provisioner_kafka_commits_total",
		"rebalances":        "provisioner_consumer_rebalances_total",
	} {
		if used[metric] == "" {
			t.Errorf("%s: no panel shows %s (%s)", dashboardPath, what, metric)
		}
	}
	if !strings.Contains(used["provisioner_orders_total"], "piechart") {
		t.Errorf("%s: no pie chart of the outcome mix (provisioner_orders_total)", dashboardPath)
	}
}

// ---------------------------------------------------------------------------
// Grafana and Prometheus in docker-compose.yml

// promConfig is the part of Prometheus's configuration the stack uses.
type promConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// volumeMount is one short-syntax compose volume: source:target[:mode].
type volumeMount struct{ source, target, mode string }

func parseVolumes(t *testing.T, svcName string, vols []string) []volumeMount {
	t.Helper()
	var out []volumeMount
	for _, v := range vols {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			t.Errorf("service %s: volume %q is not source:target", svcName, v)
			continue
		}
		vm := volumeMount{source: parts[0], target: parts[1]}
		if len(parts) > 2 {
			vm.mode = parts[2]
		}
		out = append(out, vm)
	}
	return out
}

// mountedFrom returns the repository path mounted at (or above) target in a
// container, or "" when none is.
func mountedFrom(mounts []volumeMount, target string) string {
	for _, m := range mounts {
		if !strings.HasPrefix(m.source, ".") {
			continue // a named volume
		}
		rel, err := filepath.Rel(m.target, target)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		return filepath.Join(repoRoot, m.source, rel)
	}
	return ""
}

// samePath reports whether two paths relative to this directory name the same file.
func samePath(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	aa, err1 := filepath.Abs(a)
	ab, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == ab
}

func TestComposePrometheus(t *testing.T) {
	cf := loadCompose(t)
	svc := mustService(t, cf, "prometheus")
	if !regexp.MustCompile(`^prom/prometheus:v\d+\.\d+\.\d+$`).MatchString(svc.Image) {
		t.Errorf("prometheus: image %q, want a pinned prom/prometheus:vX.Y.Z", svc.Image)
	}
	cfgFile, ok := flagValue(svc.args(), "config.file")
	if !ok {
		cfgFile = "/etc/prometheus/prometheus.yml" // the image's default
	}
	mounts := parseVolumes(t, "prometheus", svc.Volumes)
	for _, m := range mounts {
		if m.mode != "ro" && strings.HasPrefix(m.source, ".") {
			t.Errorf("prometheus: %s is mounted writable; mount configuration :ro", m.source)
		}
		if !strings.HasPrefix(m.source, ".") {
			if _, ok := cf.Volumes[m.source]; !ok {
				t.Errorf("prometheus: named volume %s is not declared under volumes:", m.source)
			}
		} else if _, err := os.Stat(filepath.Join(repoRoot, m.source)); err != nil {
			t.Errorf("prometheus: mounts %s: %v", m.source, err)
		}
	}
	if got := mountedFrom(mounts, cfgFile); !samePath(got, promConfigPath) {
		t.Fatalf("prometheus: --config.file %s is %q in the container, want %s mounted there", cfgFile, got, promConfigPath)
	}
	data, err := os.ReadFile(promConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	var pc promConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&pc); err != nil {
		t.Fatalf("%s: %v", promConfigPath, err)
	}
	// The rule files resolve, in the container, to alerts.yml.
	loaded := false
	for _, rf := range pc.RuleFiles {
		inContainer := rf
		if !filepath.IsAbs(rf) {
			inContainer = filepath.Join(filepath.Dir(cfgFile), rf)
		}
		src := mountedFrom(mounts, inContainer)
		if src == "" {
			t.Errorf("prometheus: rule file %s (%s in the container) is not mounted", rf, inContainer)
		}
		loaded = loaded || samePath(src, alertsPath)
	}
	if !loaded {
		t.Errorf("prometheus: %s does not load %s (rule_files %v)", promConfigPath, alertsPath, pc.RuleFiles)
	}
	// The provisioner is scraped at its service name and --http-addr port, as the job the alerts expect.
	prov := mustService(t, cf, "provisioner")
	addr := setting(t, prov, usageOf(t, "run"), "http-addr")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("provisioner: --http-addr %q: %v", addr, err)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("provisioner: --http-addr %q listens on %s only; Prometheus cannot reach it", addr, host)
	}
	want := "provisioner:" + port
	job := alertsJob(t)
	found := false
	for _, sc := range pc.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			if slices.Contains(st.Targets, want) {
				found = true
				if sc.JobName != job {
					t.Errorf("%s: the provisioner is scraped as job %q; the alerts look for job %q", promConfigPath, sc.JobName, job)
				}
				if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
					t.Errorf("%s: job %s: metrics_path %q, want /metrics", promConfigPath, sc.JobName, sc.MetricsPath)
				}
			}
		}
	}
	if !found {
		t.Errorf("%s scrapes no target %s (the provisioner service at its --http-addr port)", promConfigPath, want)
	}
	if !slices.ContainsFunc(parsePorts(t, "prometheus", svc.Ports), func(p portMapping) bool { return p.published == "9090" && p.target == "9090" }) {
		t.Errorf("prometheus: port 9090 is not published as 9090 (ports %v)", svc.Ports)
	}
	if !slices.ContainsFunc(parsePorts(t, "provisioner", prov.Ports), func(p portMapping) bool { return p.target == port }) {
		t.Errorf("provisioner: port %s (/metrics, /healthz, /readyz) is not published to the host (ports %v)", port, prov.Ports)
	}
}

type grafanaDatasources struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name      string         `yaml:"name"`
		UID       string         `yaml:"uid"`
		Type      string         `yaml:"type"`
		Access    string         `yaml:"access"`
		URL       string         `yaml:"url"`
		IsDefault bool           `yaml:"isDefault"`
		Editable  bool           `yaml:"editable"`
		JSONData  map[string]any `yaml:"jsonData"`
	} `yaml:"datasources"`
}

type grafanaProviders struct {
	APIVersion int `yaml:"apiVersion"`
	Providers  []struct {
		Name                  string `yaml:"name"`
		OrgID                 int    `yaml:"orgId"`
		Folder                string `yaml:"folder"`
		Type                  string `yaml:"type"`
		DisableDeletion       bool   `yaml:"disableDeletion"`
		AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
		UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
		Options               struct {
			Path                      string `yaml:"path"`
			FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

func strictYAMLFile(t *testing.T, file string, into any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func TestComposeGrafana(t *testing.T) {
	cf := loadCompose(t)
	svc := mustService(t, cf, "grafana")
	if !regexp.MustCompile(`^grafana/grafana:\d+\.\d+\.\d+$`).MatchString(svc.Image) {
		t.Errorf("grafana: image %q, want a pinned grafana/grafana:X.Y.Z", svc.Image)
	}
	mounts := parseVolumes(t, "grafana", svc.Volumes)
	for _, m := range mounts {
		if _, err := os.Stat(filepath.Join(repoRoot, m.source)); strings.HasPrefix(m.source, ".") && err != nil {
			t.Errorf("grafana: mounts %s: %v", m.source, err)
		}
	}
	if got := mountedFrom(mounts, "/etc/grafana/provisioning/datasources/"+filepath.Base(grafanaDSPath)); !samePath(got, grafanaDSPath) {
		t.Errorf("grafana: %s is not mounted in /etc/grafana/provisioning/datasources (got %q)", grafanaDSPath, got)
	}
	if got := mountedFrom(mounts, "/etc/grafana/provisioning/dashboards/"+filepath.Base(grafanaDBPath)); !samePath(got, grafanaDBPath) {
		t.Errorf("grafana: %s is not mounted in /etc/grafana/provisioning/dashboards (got %q)", grafanaDBPath, got)
	}

	// The data source is the compose Prometheus.
	var ds grafanaDatasources
	strictYAMLFile(t, grafanaDSPath, &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("%s: want one prometheus data source, got %+v", grafanaDSPath, ds.Datasources)
	}
	prom := mustService(t, cf, "prometheus")
	listen := "0.0.0.0:9090"
	if v, ok := flagValue(prom.args(), "web.listen-address"); ok {
		listen = v
	}
	_, promPort, _ := net.SplitHostPort(listen)
	if want := "http://prometheus:" + promPort; ds.Datasources[0].URL != want {
		t.Errorf("%s: url %q, want %s (the prometheus service)", grafanaDSPath, ds.Datasources[0].URL, want)
	}
	if _, ok := svc.DependsOn["prometheus"]; !ok {
		t.Errorf("grafana: does not depend on prometheus")
	}

	// The dashboard provider reads the mounted dashboards, which hold the dashboard.
	var dp grafanaProviders
	strictYAMLFile(t, grafanaDBPath, &dp)
	if len(dp.Providers) == 0 {
		t.Fatalf("%s: no providers", grafanaDBPath)
	}
	dir := mountedFrom(mounts, dp.Providers[0].Options.Path)
	if !samePath(dir, filepath.Dir(dashboardPath)) {
		t.Errorf("grafana: the provider's path %s holds %q, want %s", dp.Providers[0].Options.Path, dir, filepath.Dir(dashboardPath))
	}
	if home := svc.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" {
		if got := mountedFrom(mounts, home); !samePath(got, dashboardPath) {
			t.Errorf("grafana: GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH %s is %q, want %s", home, got, dashboardPath)
		}
	}
	if !slices.ContainsFunc(parsePorts(t, "grafana", svc.Ports), func(p portMapping) bool { return p.published == "3000" && p.target == "3000" }) {
		t.Errorf("grafana: port 3000 is not published as 3000 (ports %v)", svc.Ports)
	}
}

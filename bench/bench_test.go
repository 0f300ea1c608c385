package bench

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"github.com/acme-sp/wholesale-provisioner/internal/kafkatest"
)

// TestSmoke runs every scenario in smoke mode, as CI does, and checks that
// every order of every trial got an outcome and none was provisioned twice. It
// runs on the in-process broker, and on the real one when KAFKA_BROKERS is set.
func TestSmoke(t *testing.T) {
	brokers := []Broker{InProcess()}
	if os.Getenv("KAFKA_BROKERS") != "" {
		brokers = append(brokers, Real(kafkatest.Brokers(t)))
	}
	for _, b := range brokers {
		for _, full := range Scenarios() {
			if full.Disrupt != "" {
				continue // needs child processes: TestSmokeDisrupted
			}
			t.Run(b.Name()+"/"+full.Name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				res, err := Run(ctx, full.Smoke(), b, Options{Smoke: true, HTTPCeilingDuration: 100 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				checkSmoke(t, res)
			})
		}
	}
}

// TestSmokeIsolated runs the memory scenario with the engine as a child
// process, built from ./cmd/provisioner, as `provisioner bench` does.
func TestSmokeIsolated(t *testing.T) {
	res := smokeIsolated(t, ScenarioMemory)
	if res.Engine.Consumer != "engine (child)" || res.Engine.Scope != scopeService || res.Engine.PeakRSSMiB <= 0 {
		t.Errorf("engine trial %+v: want the child's own usage", res.Engine)
	}
}

// TestSmokeDisrupted runs the kill -9 scenario in smoke mode with its three
// instances as child processes: every order is answered and none is
// provisioned twice although one instance died mid-run, and the group's
// calls were timed from the kill on.
func TestSmokeDisrupted(t *testing.T) {
	res := smokeIsolated(t, ScenarioGroupKill)
	if res.Engine.MaxCallGapMs <= 0 {
		t.Errorf("engine trial %+v: no API call timed after the kill", res.Engine)
	}
	if res.Baseline.Consumer != string(kindCalm)+" ×3 (child)" || res.Baseline.MaxCallGapMs != 0 {
		t.Errorf("baseline trial %+v: want the group undisturbed", res.Baseline)
	}
}

// TestSmokeBrokerRestart runs the broker-restart scenario in smoke mode on a
// broker of the test's own, killed under the instance and started again:
// every order is answered, none provisioned twice, and orders flowed again
// after the broker came back.
func TestSmokeBrokerRestart(t *testing.T) {
	own := kafkatest.StartOwn(t)
	bin := buildProvisioner(t)
	sc, _ := Lookup(ScenarioBrokerRestart)
	sc = sc.Smoke()
	sc.Orders = 1200 // about 8 s at the simulator's 300 calls/s: the kill falls mid-run
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, sc, Real([]string{own.Addr}), Options{Smoke: true, ServiceCommand: []string{bin, "run"}, BrokerControl: own.Control()})
	if err != nil {
		t.Fatal(err)
	}
	checkSmoke(t, res)
	if res.Engine.ServedAgainMs <= 0 {
		t.Errorf("engine trial %+v: no outcome after the broker came back", res.Engine)
	}
}

// smokeIsolated runs scenario name in smoke mode on the in-process broker,
// the engine a child process built from ./cmd/provisioner, and checks it.
func smokeIsolated(t *testing.T, name string) Result {
	t.Helper()
	bin := buildProvisioner(t)
	sc, _ := Lookup(name)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, sc.Smoke(), InProcess(), Options{Smoke: true, ServiceCommand: []string{bin, "run"}})
	if err != nil {
		t.Fatal(err)
	}
	checkSmoke(t, res)
	return res
}

func buildProvisioner(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go command to build the provisioner")
	}
	bin := filepath.Join(t.TempDir(), "provisioner")
	build := exec.Command(goTool, "build", "-o", bin, "../cmd/provisioner")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the provisioner: %v\n%s", err, out)
	}
	return bin
}

func checkSmoke(t *testing.T, res Result) {
	t.Helper()
	if err := res.Check(); err != nil {
		t.Error(err)
	}
	for _, tr := range append(res.EngineRuns, res.BaselineRuns...) {
		if tr.Answered != tr.Orders || tr.Partial {
			t.Errorf("%s: %d of %d orders answered (partial %v)", tr.Consumer, tr.Answered, tr.Orders, tr.Partial)
		}
		if tr.MaxCreatesPerEmail > 1 {
			t.Errorf("%s: a subscriber was created %d times", tr.Consumer, tr.MaxCreatesPerEmail)
		}
		if tr.CallsPerOrder < 2 || tr.OrdersPerSec <= 0 || tr.CPUSeconds <= 0 {
			t.Errorf("%s: implausible figures %+v", tr.Consumer, tr)
		}
	}
	if n := res.Scenario.Instances; n > 1 && !strings.HasPrefix(res.Engine.Consumer, fmt.Sprintf("engine ×%d", n)) {
		t.Errorf("engine trial %q: want %d instances in its group", res.Engine.Consumer, n)
	}
	if res.Scenario.SoloBaseline && !strings.HasPrefix(res.Baseline.Consumer, string(kindSolo)) {
		t.Errorf("baseline trial %q: want the engine alone", res.Baseline.Consumer)
	}
	if res.Scenario.Ceiling && (res.Ceiling == nil || res.Ceiling.OrdersPerSec <= 0) {
		t.Errorf("no ceiling measured: %+v", res.Ceiling)
	}
	for _, b := range res.Bars {
		if b.Judged {
			t.Errorf("bar %q judged in smoke mode", b.Requirement)
		}
	}
}

func TestScenariosAreValid(t *testing.T) {
	for _, sc := range Scenarios() {
		for _, s := range []Scenario{sc, sc.Smoke()} {
			if err := s.Validate(); err != nil {
				t.Errorf("%s: %v", s.Name, err)
			}
		}
	}
	lat, _ := Lookup(ScenarioLatency)
	if lat.Keys() != 2000 || lat.config().Consumer.MaxInFlight != 200 {
		t.Errorf("latency scenario: %d keys, %d in flight; the issue says 2,000 and 200", lat.Keys(), lat.config().Consumer.MaxInFlight)
	}
}

func TestOrderSetIndexesItsOwnIDs(t *testing.T) {
	s := newOrderSet(newRunID(), 25, 10)
	for i := range 25 {
		if got, ok := s.index(s.orderID(i)); !ok || got != i {
			t.Errorf("index(orderID(%d)) = %d, %v", i, got, ok)
		}
	}
	for _, id := range []string{"", s.runID + "-o25", s.runID + "-o-1", "other-o1", s.runID + "-ox"} {
		if _, ok := s.index(id); ok {
			t.Errorf("index(%q) ok, want not", id)
		}
	}
	// Orders of one key are for one subscriber: same key, same email.
	a, b := s.message(3, time.Now()), s.message(13, time.Now())
	if string(a.Key) != string(b.Key) {
		t.Errorf("orders 3 and 13 of 10 keys have keys %q and %q", a.Key, b.Key)
	}
}

func TestPercentileAndMedian(t *testing.T) {
	vals := make([]int64, 100)
	for i := range vals {
		vals[i] = int64(i + 1)
	}
	if p50, p99 := percentile(vals, 50), percentile(vals, 99); p50 != 50 || p99 != 99 {
		t.Errorf("p50, p99 = %d, %d; want 50, 99", p50, p99)
	}
	if percentile(nil, 50) != 0 || percentile([]int64{7}, 99) != 7 {
		t.Error("percentile of none or one value is wrong")
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median of 3 = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median of 4 = %v", m)
	}
}

func TestMedianTrial(t *testing.T) {
	runs := []Trial{
		{Consumer: "engine", OrdersPerSec: 100, P99Ms: 9, MaxCreatesPerEmail: 1},
		{Consumer: "engine", OrdersPerSec: 300, P99Ms: 7, Partial: true, MaxCreatesPerEmail: 2},
		{Consumer: "engine", OrdersPerSec: 200, P99Ms: 8, MaxCreatesPerEmail: 1},
	}
	m := medianTrial(runs)
	if m.OrdersPerSec != 200 || m.P99Ms != 8 || !m.Partial || m.MaxCreatesPerEmail != 2 || m.Consumer != "engine" {
		t.Errorf("medianTrial = %+v", m)
	}
}

func TestCeilingCombinesTheHalves(t *testing.T) {
	c := Ceiling{KafkaRecordsPerSec: 160_000, HTTPRequestsPerSec: 40_000, CallsPerOrder: 2}
	c.combine()
	if want := 1 / (1/160_000.0 + 2/40_000.0); math.Abs(c.OrdersPerSec-want) > 1e-6 || c.OrdersPerSec < 17_000 || c.OrdersPerSec > 18_000 {
		t.Errorf("ceiling = %v, want %v (about 17,800)", c.OrdersPerSec, want)
	}
}

// TestConfigEnvRoundTrips checks that the child process gets the configuration
// the parent meant: every flag, read back from the environment, is the same.
func TestConfigEnvRoundTrips(t *testing.T) {
	sc, _ := Lookup(ScenarioLatency)
	want := sc.config()
	want.Brokers = []string{"127.0.0.1:1", "127.0.0.1:2"}
	want.Client.BaseURL, want.WebexToken, want.GroupID = "http://127.0.0.1:3/v1", "tok", "g"
	env := map[string]string{}
	for _, kv := range configEnv(want) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	got := app.DefaultConfig()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	finish := app.BindRunFlags(fs, &got)
	fs.VisitAll(func(f *flag.Flag) {
		if err := fs.Set(f.Name, env[app.EnvName(f.Name)]); err != nil {
			t.Errorf("%s: %v", f.Name, err)
		}
	})
	finish()
	got.WebexToken = env[app.EnvName("webex-token")]
	if !slices.Equal(got.Brokers, want.Brokers) || got.Consumer.MaxInFlight != 200 || got.Limiter.MaxConcurrent != 200 ||
		got.Client.BaseURL != want.Client.BaseURL || got.WebexToken != "tok" || got.GroupID != "g" {
		t.Errorf("read back %+v, want %+v", got, want)
	}
}

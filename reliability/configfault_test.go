package reliability

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/internal/testkit"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// TestConfigurationFault revokes the provisioner's token in the middle of a
// run: the simulator answers 401 to everything. The provisioner stops taking
// new orders (one probing order calls the API, once per retry interval),
// commits nothing, dead-letters nothing, logs one error per probe, reports
// not-ready (webex check), and resumes by itself once the token is accepted
// again.
func TestConfigurationFault(t *testing.T) {
	const (
		n        = 1000
		interval = 500 * time.Millisecond // the probe's backoff: initial = max
		window   = 6 * time.Second
	)
	t.Parallel()
	start := time.Now()
	e := newEnv(t, envConfig{partitions: 6, sim: webexsim.Config{Latency: 20 * time.Millisecond}})
	s := e.makeOrders(n, 0)
	outs, dlq := e.collect(e.outs, true, 3), e.collect(e.dlt, false, 1)
	cfg := e.appConfig()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Consumer.MaxInFlight = 8 // a run of some seconds, so that the fault falls in its middle
	cfg.Workflow.RetryInitialInterval, cfg.Workflow.RetryMaxInterval = interval, interval
	in := e.startApp("a", cfg)
	addr := in.app.HTTPAddr()
	e.publish(s.msgs)
	testkit.WaitFor(e.ctx, t, "a fifth of the outcomes", func() error {
		if _, d := outs.count(); d < n/5 {
			return fmt.Errorf("%d of %d", d, n)
		}
		return nil
	})

	callsAtRevocation := e.sim.Stats().Requests
	revoked := time.Now()
	e.sim.SetToken("rotated-elsewhere") // the provisioner's token no longer works
	testkit.WaitFor(e.ctx, t, "/readyz to report the configuration fault", func() error {
		code, r, err := readyz(addr)
		if err != nil || code != http.StatusServiceUnavailable || r.Checks["webex"].OK {
			return fmt.Errorf("/readyz %d %+v %v", code, r, err)
		}
		return nil
	})
	t.Logf("not ready %s after the token was revoked", time.Since(revoked).Round(time.Millisecond))
	// Orders that were in flight meet the 401 too and then wait; the probe
	// settles into its rhythm; the last commit of what finished before the
	// fault goes out within a commit interval.
	testkit.WaitFor(e.ctx, t, "the second probe", func() error {
		if n := len(linesWith(e.logs.Bytes(), "configuration fault")); n < 2 {
			return fmt.Errorf("%d probe lines", n)
		}
		return nil
	})
	time.Sleep(2 * cfg.Consumer.CommitInterval)

	outsBefore, _ := outs.count()
	deadBefore, _ := dlq.count()
	committedBefore := committed(e.lag())
	st := e.sim.Stats()
	unauthorizedBefore, callsBefore := unauthorized(st), st.Requests
	from := time.Now()
	for time.Since(from) < window {
		code, r, err := readyz(addr)
		if err != nil || code != http.StatusServiceUnavailable || r.Checks["webex"].OK ||
			!strings.Contains(r.Checks["webex"].Detail, "configuration fault") {
			t.Errorf("/readyz during the fault: %d %+v %v", code, r, err)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	to := time.Now()
	st = e.sim.Stats()
	calls, rejected := st.Requests-callsBefore, unauthorized(st)-unauthorizedBefore
	if o, _ := outs.count(); o != outsBefore {
		t.Errorf("%d outcomes written during the fault", o-outsBefore)
	}
	if d, _ := dlq.count(); d != deadBefore {
		t.Errorf("%d dead letters written during the fault", d-deadBefore)
	}
	if after := committed(e.lag()); fmt.Sprint(after) != fmt.Sprint(committedBefore) {
		t.Errorf("committed offsets moved during the fault: %v, then %v", committedBefore, after)
	}
	var probes []logLine
	for _, l := range linesWith(e.logs.Bytes(), "configuration fault") {
		if !l.Time.Before(from) && l.Time.Before(to) {
			probes = append(probes, l)
		}
	}
	if n := len(linesWith(e.logs.Bytes(), "order not finished")); n > 0 {
		t.Errorf("%d per-order error lines: the fault is logged once per probe, not per order", n)
	}
	// One probe per interval (0.5 to 1.5 times it, the backoff's jitter), each
	// one call answered 401 and one error line; no other call reaches the API.
	lo, hi := int(window/(interval*3/2+100*time.Millisecond))-1, int(window/(interval/2))+1
	if len(probes) < lo || len(probes) > hi {
		t.Errorf("%d configuration-fault lines in %s, want one per probe interval of %s (%d to %d)", len(probes), window, interval, lo, hi)
	}
	if diff := rejected - int64(len(probes)); calls != rejected || diff < -1 || diff > 1 {
		t.Errorf("%d API calls, %d answered 401, for %d logged probes: want one call per probe", calls, rejected, len(probes))
	}
	for i := 1; i < len(probes); i++ {
		gap := probes[i].Time.Sub(probes[i-1].Time)
		if want := time.Duration(probes[i-1].RetryIn * float64(time.Millisecond)); gap < want-50*time.Millisecond {
			t.Errorf("probe %d came %s after the one before, which said it would wait %s", i, gap, want)
		}
	}
	if len(probes) > 0 && (!strings.Contains(probes[0].Error, "401") || probes[0].Level != "error") {
		t.Errorf("the fault's log line does not name the 401: %+v", probes[0])
	}
	t.Logf("during %s of the fault: %d probe lines, %d API calls (%d answered 401), no outcome, no dead letter, no commit",
		window, len(probes), calls, rejected)

	// From the revocation on, only the orders in flight at that moment and the
	// probe, once per interval, may call the API.
	callsDuringFault := e.sim.Stats().Requests - callsAtRevocation
	allProbes := 0
	for _, l := range linesWith(e.logs.Bytes(), "configuration fault") {
		if !l.Time.Before(revoked) {
			allProbes++
		}
	}
	if limit := int64(allProbes + cfg.Consumer.MaxInFlight + 1); callsDuringFault > limit {
		t.Errorf("%d API calls during the %s of the fault for %d probes, want at most %d (the %d orders in flight when it began, then one per probe): "+
			"orders already waiting for a worker slot when the fault began each still called the API once",
			callsDuringFault, time.Since(revoked).Round(100*time.Millisecond), allProbes, limit, cfg.Consumer.MaxInFlight)
	}

	e.sim.SetToken(simToken) // the token is accepted again
	restored := time.Now()
	testkit.WaitFor(e.ctx, t, "ready again", func() error {
		code, r, err := readyz(addr)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("/readyz %d %+v %v", code, r, err)
		}
		return nil
	})
	t.Logf("ready %s after the token was accepted again", time.Since(restored).Round(time.Millisecond))
	e.waitAnswered(outs, n)
	e.waitNoLag()
	if len(linesWith(e.logs.Bytes(), "the fault cleared")) == 0 {
		t.Error("no log line says the fault cleared")
	}
	redelivered, lost := e.checkOutcomes(outs, s)
	e.checkCreates(n)
	deadRecords, _ := dlq.count()
	if deadRecords != 0 {
		t.Errorf("%d dead letters: a configuration fault dead-letters nothing", deadRecords)
	}
	records, answered := outs.count()
	figures{orders: n, faults: fmt.Sprintf("token revoked (401 to everything) for %s mid-run", restored.Sub(revoked).Round(time.Second)),
		outcomes: records, answered: answered, redelivered: redelivered, deadLetters: deadRecords,
		duplicates: e.sim.Stats().EmailsCreatedMoreThanOnce, lost: lost, took: time.Since(start)}.log(t)
}

func unauthorized(st webexsim.Stats) int64 {
	var n int64
	for _, byStatus := range st.Calls {
		n += byStatus[http.StatusUnauthorized]
	}
	return n
}

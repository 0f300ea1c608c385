package reliability

import (
	"fmt"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// TestAPIStorm runs orders against a Webex API that fails 30% of the calls
// transiently (429 with Retry-After, 503, 504, timeouts, connection resets)
// and loses the answer of 10% of the creates that it carried out, and that
// refuses for good the creates of 2% of the emails (403, picked by the
// simulator's deterministic fault schedule). The retry budget is large enough
// that no order runs out of it, so the counts are exact: every order ends,
// provisioned = orders - permanent, failed (api_rejected) = dead letters =
// permanent, and each subscriber is created once (a lost answer is resolved
// by a lookup, never by a blind second create).
func TestAPIStorm(t *testing.T) {
	const n = 1000
	start := time.Now()
	faults := webexsim.FaultRates{
		// 30% of the calls. Every 429 pauses all of the provisioner's calls for
		// its Retry-After (1 s; the limiter shares it), so they are the rarest.
		Status429: 0.03, Status503: 0.08, Status504: 0.08, Timeout: 0.03, Reset: 0.08,
		LostResponse: 0.10, // of the creates carried out
		Permanent:    0.02, // of the emails
	}
	e := newEnv(t, envConfig{partitions: 6, timeout: 4 * time.Minute, sim: webexsim.Config{
		Latency: 5 * time.Millisecond, Faults: faults, RetryAfter: time.Second, TimeoutHold: 10 * time.Second, Seed: 7,
	}})
	s := e.makeOrders(n, 0)
	permanent := map[string]bool{}
	for _, id := range s.ids {
		if faults.FailsPermanently(s.byID[id].Email) {
			permanent[id] = true
			s.want[id] = schemas.StatusFailed
		}
	}
	if len(permanent) == 0 {
		t.Fatal("the fault schedule picked no email to fail permanently")
	}
	outs, dlq := e.collect(e.outs, true, 3), e.collect(e.dlt, false, 1)
	cfg := e.appConfig()
	cfg.Client.RequestTimeout = time.Second // shorter than the simulator's hold of a timed-out call
	cfg.Workflow.RetryInitialInterval = 50 * time.Millisecond
	cfg.Workflow.RetryMaxInterval = time.Second
	// No order may run out of retries, so that the counts stay exact; waits in
	// the shared Retry-After pauses count against a step's budget too.
	cfg.Workflow.RetryMaxElapsed = 10 * time.Minute
	cfg.Consumer.MaxInFlight, cfg.Limiter.MaxConcurrent = 256, 256
	e.startApp("a", cfg)
	e.publish(s.msgs)

	e.waitAnswered(outs, n)
	e.waitAnswered(dlq, len(permanent))
	e.waitNoLag()
	time.Sleep(time.Second) // let any surplus record show

	redelivered, lost := e.checkOutcomes(outs, s)
	got, _ := outs.snapshot()
	_, dead := dlq.snapshot()
	count := map[string]int{}
	for id, o := range got {
		label := string(o[0].Status)
		if f := o[0].Failure; f != nil {
			label += ": " + string(f.Reason)
			if !permanent[id] || f.Reason != schemas.ReasonAPIRejected || f.HTTPStatus != 403 || !hasCode(f.Errors, webexsim.PermanentRejectCode) {
				t.Errorf("order %s failed %+v; want only the schedule's permanent failures, api_rejected with 403/%d", id, f, webexsim.PermanentRejectCode)
			}
		}
		count[label]++
	}
	want := map[string]int{"provisioned": n - len(permanent), "failed: api_rejected": len(permanent)}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("outcomes %v, want %v", count, want)
	}
	deadRecords, _ := dlq.count()
	if deadRecords != len(permanent) || len(dead) != len(permanent) {
		t.Errorf("%d dead letters for %d orders, want %d", deadRecords, len(dead), len(permanent))
	}
	for id, ds := range dead {
		d := ds[0]
		if !permanent[id] || d.Reason != string(schemas.ReasonAPIRejected) || d.ErrorClass != "permanent" || d.Step != "provision" {
			t.Errorf("dead letter of %q: %s/%s at %s; want the schedule's permanent failures, api_rejected/permanent at provision",
				id, d.Reason, d.ErrorClass, d.Step)
		}
	}
	// One uninterrupted member: no record is answered twice.
	if records, _ := outs.count(); records != n || redelivered != 0 {
		t.Errorf("%d outcome records for %d orders", records, n)
	}
	e.checkCreates(n - len(permanent))

	st := e.sim.Stats()
	share := float64(st.InjectedFaults-st.LostResponses-st.PermanentErrors) / float64(st.Requests)
	if share < 0.25 || share > 0.35 {
		t.Errorf("%.1f%% of the calls failed transiently, want about 30%%", 100*share)
	}
	if st.LostResponses == 0 || st.PermanentErrors < int64(len(permanent)) {
		t.Errorf("stats %+v: want lost answers and at least one refusal per permanent email", st)
	}
	status := func(code int) int64 {
		var n int64
		for _, byStatus := range st.Calls {
			n += byStatus[code]
		}
		return n
	}
	faultsDesc := fmt.Sprintf("%.0f%% of %d API calls failed transiently (%d×429, %d×503, %d×504 with the timeouts and lost answers, %d resets), %d create answers lost, %d permanent 403s (%d emails)",
		100*share, st.Requests, status(429), status(503), status(504), status(0), st.LostResponses, st.PermanentErrors, len(permanent))
	records, answered := outs.count()
	figures{orders: n, faults: faultsDesc, outcomes: records, answered: answered, redelivered: redelivered,
		deadLetters: deadRecords, duplicates: st.EmailsCreatedMoreThanOnce, lost: lost, took: time.Since(start)}.log(t)
	t.Logf("provisioned %d, failed (api_rejected) %d, dead letters %d: as the schedule implies (%d permanent of %d)",
		count["provisioned"], count["failed: api_rejected"], deadRecords, len(permanent), n)
}

func hasCode(errs []schemas.APIError, code int) bool {
	for _, e := range errs {
		if e.Code == code {
			return true
		}
	}
	return false
}

package webexsim_test

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// picked returns the first emails of the form prefix-N@acme.example that the
// share picks (want true) or does not pick (want false).
func picked(t *testing.T, prefix string, share float64, want bool, n int) []string {
	t.Helper()
	var out []string
	for i := 0; len(out) < n; i++ {
		if i > 100000 {
			t.Fatalf("no %d emails with FailsPermanently = %v at share %v", n, want, share)
		}
		email := fmt.Sprintf("%s-%d@acme.example", prefix, i)
		if webexsim.FailsPermanently(email, share) == want {
			out = append(out, email)
		}
	}
	return out
}

func TestFailsPermanently(t *testing.T) {
	const n = 20000
	for _, share := range []float64{0.02, 0.3} {
		hits := 0
		for i := range n {
			if webexsim.FailsPermanently(fmt.Sprintf("user%06d.run@acme.example", i), share) {
				hits++
			}
		}
		// Binomial: 5 standard deviations either side.
		mean := share * n
		sd := 5 * math.Sqrt(mean*(1-share))
		if float64(hits) < mean-sd || float64(hits) > mean+sd {
			t.Errorf("share %v: %d of %d emails picked, want about %.0f", share, hits, n, mean)
		}
	}
	for i := range 1000 {
		email := fmt.Sprintf("Some.User%d@Acme.Example", i)
		small, large := webexsim.FailsPermanently(email, 0.1), webexsim.FailsPermanently(email, 0.2)
		if small && !large {
			t.Errorf("%s: picked at share 0.1 but not at 0.2", email)
		}
		if small != webexsim.FailsPermanently(strings.ToLower(email)+" ", 0.1) {
			t.Errorf("%s: the choice depends on case or spaces", email)
		}
		if small != (webexsim.FaultRates{Permanent: 0.1}).FailsPermanently(email) {
			t.Errorf("%s: FaultRates.FailsPermanently disagrees", email)
		}
		if webexsim.FailsPermanently(email, 0) || !webexsim.FailsPermanently(email, 1) {
			t.Errorf("%s: share 0 must pick none and share 1 all", email)
		}
	}
}

func TestPermanentFault(t *testing.T) {
	const share = 0.25
	h := newHarness(t, webexsim.Config{Faults: webexsim.FaultRates{Permanent: share}})
	bad := picked(t, "perm", share, true, 3)
	good := picked(t, "perm", share, false, 3)

	for _, email := range bad {
		// The precheck passes: only the create refuses, at the same step every time.
		if res := h.do(call{method: http.MethodPost, path: provisioning.PathValidate,
			body: provisioning.PrecheckRequest{CustomerID: customerA, Email: email}}); res.status != http.StatusOK {
			t.Errorf("precheck of %s: status %d %s", email, res.status, res.body)
		}
		for range 3 {
			eb := wantError(t, h.create(customerA, email), http.StatusForbidden, webexsim.PermanentRejectCode)
			if !strings.Contains(eb.Message, "not managed") {
				t.Errorf("403 message %q", eb.Message)
			}
		}
		if got, calls := h.sim.SuccessfulCreates(email), h.sim.CreateCalls(email); got != 0 || calls != 3 {
			t.Errorf("%s: SuccessfulCreates = %d, CreateCalls = %d; want 0 and 3", email, got, calls)
		}
		items, _ := listPage(t, h, provisioning.PathSubscribers+"?email="+email)
		if len(items) != 0 {
			t.Errorf("%s: a refused create left a subscriber %+v", email, items)
		}
	}
	for _, email := range good {
		h.mustCreate(customerA, email)
	}
	st := h.sim.Stats()
	if st.PermanentErrors != 9 || st.InjectedFaults != 9 || st.Creates != 3 || st.Count(webexsim.EndpointCreate, 403) != 9 {
		t.Errorf("stats = %+v", st)
	}

	// A lost answer hides the 403 but still creates nothing; and the other faults
	// still apply to everyone.
	h.sim.SetFaults(webexsim.FaultRates{Permanent: share, LostResponse: 1})
	wantError(t, h.create(customerA, bad[0]), http.StatusGatewayTimeout, 0)
	if got := h.sim.SuccessfulCreates(bad[0]); got != 0 {
		t.Errorf("SuccessfulCreates(%s) = %d behind a lost 403", bad[0], got)
	}
	h.sim.SetFaults(webexsim.FaultRates{Permanent: share, Status503: 1})
	wantError(t, h.create(customerA, bad[1]), http.StatusServiceUnavailable, 0)

	// Switched off, the same email goes through.
	h.sim.SetFaults(webexsim.FaultRates{})
	h.mustCreate(customerA, bad[2])
}

func TestPermanentFaultRates(t *testing.T) {
	// Permanent is not part of the one draw of status and connection faults.
	if err := (webexsim.FaultRates{Status503: 1, Permanent: 0.5}).Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	for _, f := range []webexsim.FaultRates{{Permanent: 1.5}, {Permanent: -0.1}} {
		if err := f.Validate(); err == nil || !strings.Contains(err.Error(), "permanent") {
			t.Errorf("Validate(%+v) = %v, want an error naming permanent", f, err)
		}
	}
	// Settable over the admin endpoint, for a simulator in another process.
	h := newHarness(t, webexsim.Config{})
	res := h.do(call{method: http.MethodPut, path: h.srv.URL + "/_sim/faults", body: `{"permanent":0.02}`, token: strp("")})
	if res.status != http.StatusOK || !strings.Contains(string(res.body), `"permanent":0.02`) {
		t.Fatalf("PUT /_sim/faults: %d %s", res.status, res.body)
	}
	if got := h.sim.Faults().Permanent; got != 0.02 {
		t.Errorf("Faults().Permanent = %v", got)
	}
	bad := picked(t, "admin", 0.02, true, 1)[0]
	wantError(t, h.create(customerA, bad), http.StatusForbidden, webexsim.PermanentRejectCode)
}

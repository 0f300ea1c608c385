package webexsim_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

func TestAuth(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	list := provisioning.PathSubscribers
	cases := []struct {
		name   string
		header map[string]string
		token  *string
	}{
		{"no header", nil, strp("")},
		{"wrong token", nil, strp("not-the-token")},
		{"empty bearer", map[string]string{"Authorization": "Bearer "}, nil},
		{"basic scheme", map[string]string{"Authorization": "Basic " + testToken}, nil},
		{"token without scheme", map[string]string{"Authorization": testToken}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := h.do(call{method: http.MethodGet, path: list, token: tc.token, header: tc.header})
			wantError(t, res, http.StatusUnauthorized, 0)
			if strings.Contains(string(res.body), testToken) || strings.Contains(string(res.body), "not-the-token") {
				t.Errorf("401 body %s echoes the token", res.body)
			}
		})
	}
	if res := h.do(call{method: http.MethodGet, path: list, header: map[string]string{"Authorization": "bearer " + testToken}}); res.status != 200 {
		t.Errorf("lower-case scheme: status %d", res.status)
	}

	// Rotation: the old token stops working at once.
	h.sim.SetToken("rotated")
	wantError(t, h.do(call{method: http.MethodGet, path: list}), http.StatusUnauthorized, 0)
	if res := h.do(call{method: http.MethodGet, path: list, token: strp("rotated")}); res.status != 200 {
		t.Errorf("new token: status %d", res.status)
	}
	// An empty accepted token accepts any bearer token, but still requires one.
	h.sim.SetToken("")
	if res := h.do(call{method: http.MethodGet, path: list, token: strp("anything")}); res.status != 200 {
		t.Errorf("any token: status %d", res.status)
	}
	wantError(t, h.do(call{method: http.MethodGet, path: list, token: strp("")}), http.StatusUnauthorized, 0)
}

func TestInjectedFaults(t *testing.T) {
	cases := []struct {
		name       string
		faults     webexsim.FaultRates
		retryAfter time.Duration
		status     int
		wantRetry  string
	}{
		{"429", webexsim.FaultRates{Status429: 1}, 0, 429, "1"},
		{"429 with a longer Retry-After", webexsim.FaultRates{Status429: 1}, 2500 * time.Millisecond, 429, "3"},
		{"423", webexsim.FaultRates{Status423: 1}, 4 * time.Second, 423, "4"},
		{"500", webexsim.FaultRates{Status500: 1}, 0, 500, ""},
		{"502", webexsim.FaultRates{Status502: 1}, 0, 502, ""},
		{"503", webexsim.FaultRates{Status503: 1}, 0, 503, ""},
		{"504", webexsim.FaultRates{Status504: 1}, 0, 504, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, webexsim.Config{Faults: tc.faults, RetryAfter: tc.retryAfter})
			for _, c := range []call{
				{method: http.MethodGet, path: provisioning.PathSubscribers},
				{method: http.MethodPost, path: provisioning.PathSubscribers, body: provisionBody(customerA, "a@acme.example")},
				{method: http.MethodPost, path: provisioning.PathValidate, body: provisioning.PrecheckRequest{Email: "a@acme.example"}},
			} {
				res := h.do(c)
				wantError(t, res, tc.status, 0)
				if got := res.header.Get("Retry-After"); got != tc.wantRetry {
					t.Errorf("%s %s: Retry-After = %q, want %q", c.method, c.path, got, tc.wantRetry)
				}
			}
			// The fault came before the endpoint acted.
			if n := len(h.sim.Subscribers()); n != 0 {
				t.Errorf("%d subscribers created behind a fault", n)
			}
			// Authentication comes first: a bad token still gets 401.
			wantError(t, h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers, token: strp("bad")}), 401, 0)
			// Faults are for the API only.
			if res := h.do(call{method: http.MethodGet, path: h.srv.URL + "/_sim/healthz"}); res.status != 200 {
				t.Errorf("healthz: status %d", res.status)
			}
			st := h.sim.Stats()
			if st.InjectedFaults != 3 || st.Count(webexsim.EndpointCreate, tc.status) != 1 {
				t.Errorf("stats = %+v", st)
			}

			// Faults can be switched off at run time.
			h.sim.SetFaults(webexsim.FaultRates{})
			if res := h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers}); res.status != 200 {
				t.Errorf("after SetFaults(zero): status %d", res.status)
			}
		})
	}
}

func TestFaultRatesMix(t *testing.T) {
	h := newHarness(t, webexsim.Config{Seed: 42, Faults: webexsim.FaultRates{Status500: 0.25, Status503: 0.25}})
	counts := map[int]int{}
	for range 400 {
		counts[h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers}).status]++
	}
	// Loose bounds: the point is that both faults and successes occur in about
	// the configured shares, not the exact numbers.
	for status, lo := range map[int]int{200: 140, 500: 60, 503: 60} {
		if counts[status] < lo {
			t.Errorf("counts = %v: want at least %d of %d", counts, lo, status)
		}
	}
}

func TestTimeoutFault(t *testing.T) {
	t.Run("held until TimeoutHold", func(t *testing.T) {
		h := newHarness(t, webexsim.Config{Faults: webexsim.FaultRates{Timeout: 1}, TimeoutHold: 100 * time.Millisecond})
		start := time.Now()
		res := h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers})
		wantError(t, res, http.StatusGatewayTimeout, 0)
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Errorf("answered after %v, want the hold of 100ms", d)
		}
	})
	t.Run("client gives up", func(t *testing.T) {
		h := newHarness(t, webexsim.Config{Faults: webexsim.FaultRates{Timeout: 1}})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := h.try(call{method: http.MethodGet, path: provisioning.PathSubscribers, ctx: ctx})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the client's deadline", err)
		}
		// The held call ends soon after the client leaves, not after 30s.
		waitFor(t, 5*time.Second, func() bool { return h.sim.Stats().Count(webexsim.EndpointList, 504) == 1 })
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("held call ended after %v", d)
		}
	})
}

func TestResetFault(t *testing.T) {
	h := newHarness(t, webexsim.Config{Faults: webexsim.FaultRates{Reset: 1}})
	_, err := h.try(call{method: http.MethodPost, path: provisioning.PathSubscribers, body: provisionBody(customerA, "a@acme.example")})
	if err == nil {
		t.Fatal("got an answer, want a transport error")
	}
	st := h.sim.Stats()
	if st.Count(webexsim.EndpointCreate, 0) != 1 || st.InjectedFaults != 1 {
		t.Errorf("stats = %+v, want one create without answer", st)
	}
	if h.sim.CreateCalls("a@acme.example") != 0 || len(h.sim.Subscribers()) != 0 {
		t.Error("a reset before the endpoint must not create")
	}
}

func TestLostResponse(t *testing.T) {
	t.Run("504", func(t *testing.T) {
		h := newHarness(t, webexsim.Config{Faults: webexsim.FaultRates{LostResponse: 1}})
		const email = "lost@acme.example"
		wantError(t, h.create(customerA, email), http.StatusGatewayTimeout, 0)
		if got := h.sim.SuccessfulCreates(email); got != 1 {
			t.Fatalf("SuccessfulCreates = %d, want 1", got)
		}
		// A blind retry is lost too, and must not create twice.
		wantError(t, h.create(customerA, email), http.StatusGatewayTimeout, 0)
		if got, calls := h.sim.SuccessfulCreates(email), h.sim.CreateCalls(email); got != 1 || calls != 2 {
			t.Errorf("SuccessfulCreates = %d, CreateCalls = %d: want 1 and 2", got, calls)
		}
		// The careful client looks the subscriber up instead.
		items, _ := listPage(t, h, provisioning.PathSubscribers+"?email="+email+"&customerId="+customerA)
		if len(items) != 1 || items[0].Status != provisioning.SubscriberProvisioned {
			t.Errorf("lookup by email = %+v, want the provisioned subscriber", items)
		}
		// Only the create is affected.
		if res := h.do(call{method: http.MethodPost, path: provisioning.PathValidate, body: provisioning.PrecheckRequest{Email: "x@acme.example"}}); res.status != 200 {
			t.Errorf("precheck: status %d", res.status)
		}
		if st := h.sim.Stats(); st.LostResponses != 2 || st.MaxCreatesPerEmail != 1 || st.Creates != 1 {
			t.Errorf("stats = %+v", st)
		}
	})
	t.Run("reset", func(t *testing.T) {
		h := newHarness(t, webexsim.Config{Faults: webexsim.FaultRates{LostResponse: 1, LostResponseAsReset: true}})
		if _, err := h.try(call{method: http.MethodPost, path: provisioning.PathSubscribers, body: provisionBody(customerA, "r@acme.example")}); err == nil {
			t.Fatal("got an answer, want a transport error")
		}
		if got := h.sim.SuccessfulCreates("r@acme.example"); got != 1 {
			t.Errorf("SuccessfulCreates = %d, want 1", got)
		}
	})
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, webexsim.Config{RateLimit: 50})
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		badRetry []string
		wg       sync.WaitGroup
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				var res result
				if i%2 == 0 {
					res = h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers})
				} else {
					res = h.create(customerA, fmt.Sprintf("w%d-%d@acme.example", w, i))
				}
				mu.Lock()
				statuses[res.status]++
				if res.status == http.StatusTooManyRequests && res.header.Get("Retry-After") != "1" {
					badRetry = append(badRetry, res.header.Get("Retry-After"))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if statuses[429] == 0 || statuses[200] == 0 {
		t.Fatalf("statuses = %v: want both 200 and 429 from a burst of 200 at 50/s", statuses)
	}
	if len(badRetry) > 0 {
		t.Errorf("429 answers with Retry-After %q, want 1", badRetry)
	}
	st := h.sim.Stats()
	if st.RateLimited != int64(statuses[429]) || st.TooManyRequests != int64(statuses[429]) {
		t.Errorf("RateLimited = %d, TooManyRequests = %d, want %d", st.RateLimited, st.TooManyRequests, statuses[429])
	}
	if st.Requests != 200 {
		t.Errorf("Requests = %d, want 200", st.Requests)
	}
}

func TestLatency(t *testing.T) {
	h := newHarness(t, webexsim.Config{Latency: 60 * time.Millisecond, LatencyJitter: 20 * time.Millisecond})
	start := time.Now()
	h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers})
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("answered after %v, want at least the latency", d)
	}
	// Admin endpoints are not delayed.
	start = time.Now()
	h.do(call{method: http.MethodGet, path: h.srv.URL + "/_sim/healthz"})
	if d := time.Since(start); d >= 60*time.Millisecond {
		t.Errorf("healthz took %v", d)
	}

	// A client that gives up during the latency is not kept waiting.
	h.sim.SetLatency(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := h.try(call{method: http.MethodGet, path: provisioning.PathSubscribers, ctx: ctx}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the client's deadline", err)
	}
	h.sim.SetLatency(0)
	start = time.Now()
	h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers})
	if d := time.Since(start); d >= 60*time.Millisecond {
		t.Errorf("after SetLatency(0) a call took %v", d)
	}
}

func TestConcurrentCreates(t *testing.T) {
	h := newHarness(t, webexsim.Config{Latency: time.Millisecond})
	const workers, emails = 16, 20
	var (
		mu     sync.Mutex
		counts = map[int]int{}
		wg     sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range emails {
				// Every worker races for the same emails.
				res := h.create(customerA, fmt.Sprintf("race-%d@acme.example", i))
				mu.Lock()
				counts[res.status]++
				mu.Unlock()
			}
		}()
	}
	// Reads race with the creates too.
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers + "?max=100"})
				_ = h.sim.Stats()
			}
		}()
	}
	wg.Wait()
	if counts[200] != emails || counts[409] != emails*(workers-1) {
		t.Errorf("statuses = %v, want %d × 200 and %d × 409", counts, emails, emails*(workers-1))
	}
	if got := h.sim.MaxSuccessfulCreates(); got != 1 {
		t.Errorf("MaxSuccessfulCreates = %d, want 1", got)
	}
	if got := h.sim.CreateCalls("race-3@acme.example"); got != workers {
		t.Errorf("CreateCalls = %d, want %d", got, workers)
	}
}

func TestStatsAndReset(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	h.mustCreate(customerA, "a@acme.example")
	h.create(customerA, "a@acme.example")
	h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers})
	h.do(call{method: http.MethodPost, path: provisioning.PathValidate, body: provisioning.PrecheckRequest{Email: "b@acme.example"}})
	h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers + "/nope"})
	h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers, token: strp("")})
	h.do(call{method: http.MethodPatch, path: provisioning.PathSubscribers})

	st := h.sim.Stats()
	want := map[string]map[int]int64{
		webexsim.EndpointCreate:   {200: 1, 409: 1},
		webexsim.EndpointList:     {200: 1, 401: 1},
		webexsim.EndpointPrecheck: {200: 1},
		webexsim.EndpointGet:      {404: 1},
		webexsim.EndpointOther:    {405: 1},
	}
	for ep, byStatus := range want {
		for status, n := range byStatus {
			if got := st.Count(ep, status); got != n {
				t.Errorf("Count(%s, %d) = %d, want %d", ep, status, got, n)
			}
		}
	}
	if st.Requests != 7 || st.CreateCalls != 2 || st.Creates != 1 || st.MaxCreatesPerEmail != 1 ||
		st.EmailsCreatedMoreThanOnce != 0 || st.Subscribers != 1 || st.TooManyRequests != 0 {
		t.Errorf("stats = %+v", st)
	}

	h.sim.Reset()
	st = h.sim.Stats()
	if st.Requests != 0 || st.Creates != 0 || st.Subscribers != 0 || len(st.Calls) != 0 ||
		h.sim.SuccessfulCreates("a@acme.example") != 0 || h.sim.MaxSuccessfulCreates() != 0 || len(h.sim.Subscribers()) != 0 {
		t.Errorf("after Reset: stats %+v", st)
	}
	// The email is free again.
	h.mustCreate(customerA, "a@acme.example")
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConcurrentChaos runs creates, lists and gets from many goroutines with a
// mix of every fault, for the race detector and the at-most-once create.
func TestConcurrentChaos(t *testing.T) {
	h := newHarness(t, webexsim.Config{
		LatencyJitter: time.Millisecond,
		Faults: webexsim.FaultRates{
			Status429: 0.1, Status423: 0.05, Status500: 0.05, Status503: 0.05,
			Reset: 0.05, LostResponse: 0.2,
		},
	})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				email := fmt.Sprintf("chaos-%d@acme.example", i%10)
				switch i % 3 {
				case 0, 1:
					_, _ = h.try(call{method: http.MethodPost, path: provisioning.PathSubscribers, body: provisionBody(customerA, email)})
				default:
					_, _ = h.try(call{method: http.MethodGet, path: provisioning.PathSubscribers + "?email=" + email})
				}
				if w == 0 && i == 15 {
					h.sim.SetFaults(webexsim.FaultRates{Status502: 0.2, LostResponse: 0.5, LostResponseAsReset: true})
					h.sim.SetLatency(0)
				}
			}
		}()
	}
	wg.Wait()
	if got := h.sim.MaxSuccessfulCreates(); got > 1 {
		t.Errorf("MaxSuccessfulCreates = %d, want at most 1", got)
	}
	st := h.sim.Stats()
	if st.Requests < 240 || st.InjectedFaults == 0 || st.Creates > 10 {
		t.Errorf("stats = %+v", st)
	}
}

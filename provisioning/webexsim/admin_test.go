package webexsim_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

func TestAdmin(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	admin := func(method, path string, body any) result {
		t.Helper()
		// No token: the admin endpoints take none.
		return h.do(call{method: method, path: h.srv.URL + "/_sim/" + path, body: body, token: strp("")})
	}

	if res := admin(http.MethodGet, "healthz", nil); res.status != 200 || !strings.Contains(string(res.body), `"ok"`) {
		t.Errorf("healthz: %d %s", res.status, res.body)
	}

	h.mustCreate(customerA, "a@acme.example")
	h.create(customerA, "a@acme.example")
	res := admin(http.MethodGet, "stats", nil)
	var st webexsim.Stats
	if err := json.Unmarshal(res.body, &st); err != nil || res.status != 200 {
		t.Fatalf("stats: %d %s (%v)", res.status, res.body, err)
	}
	if st.Creates != 1 || st.MaxCreatesPerEmail != 1 || st.EmailsCreatedMoreThanOnce != 0 || st.Count(webexsim.EndpointCreate, 409) != 1 {
		t.Errorf("stats = %+v", st)
	}

	var list provisioning.SubscriberList
	res = admin(http.MethodGet, "subscribers", nil)
	if err := json.Unmarshal(res.body, &list); err != nil || len(list.Items) != 1 {
		t.Errorf("subscribers: %s (%v)", res.body, err)
	}

	// Faults: strict decoding and validation, then in force for the API only.
	if res := admin(http.MethodPut, "faults", `{"status_500":1}`); res.status != 400 {
		t.Errorf("misspelt fault: status %d", res.status)
	}
	if res := admin(http.MethodPut, "faults", webexsim.FaultRates{Status500: 1.5}); res.status != 400 {
		t.Errorf("rate above 1: status %d", res.status)
	}
	if res := admin(http.MethodPut, "faults", webexsim.FaultRates{Status500: 0.7, Status503: 0.7}); res.status != 400 {
		t.Errorf("rates adding up above 1: status %d", res.status)
	}
	if res := admin(http.MethodPut, "faults", webexsim.FaultRates{Status503: 1}); res.status != 200 {
		t.Fatalf("faults: %d %s", res.status, res.body)
	}
	if got := h.sim.Faults(); got.Status503 != 1 {
		t.Errorf("Faults() = %+v", got)
	}
	wantError(t, h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers}), 503, 0)
	if res := admin(http.MethodGet, "faults", nil); !strings.Contains(string(res.body), `"status503":1`) {
		t.Errorf("GET faults: %s", res.body)
	}
	admin(http.MethodPut, "faults", webexsim.FaultRates{})

	// Token rotation.
	if res := admin(http.MethodPut, "token", `{}`); res.status != 400 {
		t.Errorf("token without token: status %d", res.status)
	}
	if res := admin(http.MethodPut, "token", map[string]string{"token": "next"}); res.status != 204 {
		t.Errorf("token: status %d", res.status)
	}
	wantError(t, h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers}), 401, 0)
	if res := h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers, token: strp("next")}); res.status != 200 {
		t.Errorf("with the rotated token: %d", res.status)
	}

	// Latency.
	if res := admin(http.MethodPut, "latency", map[string]string{"latency": "soon"}); res.status != 400 {
		t.Errorf("bad latency: status %d", res.status)
	}
	if res := admin(http.MethodPut, "latency", map[string]string{"latency": "0s"}); res.status != 204 {
		t.Errorf("latency: status %d", res.status)
	}

	// Reset.
	if res := admin(http.MethodPost, "reset", nil); res.status != 204 {
		t.Errorf("reset: status %d", res.status)
	}
	if st := h.sim.Stats(); st.Subscribers != 0 || st.Requests != 0 {
		t.Errorf("after reset: %+v", st)
	}

	for _, c := range []struct{ method, path string }{{http.MethodGet, "nope"}, {http.MethodGet, "reset"}, {http.MethodPost, "stats"}} {
		if res := admin(c.method, c.path, nil); res.status != 404 {
			t.Errorf("%s /_sim/%s: status %d, want 404", c.method, c.path, res.status)
		}
	}
	if st := h.sim.Stats(); st.Requests != 0 {
		t.Errorf("admin calls were counted as API calls: %+v", st)
	}
}

func TestServe(t *testing.T) {
	sim := webexsim.New(webexsim.Config{Token: testToken, Faults: webexsim.FaultRates{Timeout: 1}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- webexsim.Serve(ctx, ln, sim) }()

	base := "http://" + ln.Addr().String()
	resp, err := http.Get(base + "/_sim/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}

	// A call held by the Timeout fault must not keep the shutdown waiting for 30s.
	held := make(chan struct{})
	go func() {
		defer close(held)
		req, _ := http.NewRequest(http.MethodGet, sim.BaseURL(base)+provisioning.PathSubscribers, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want nil after the context ended", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after the context ended")
	}
	<-held
	if _, err := http.Get(base + "/_sim/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
}

func TestListenAndServeBadAddress(t *testing.T) {
	err := webexsim.ListenAndServe(context.Background(), "256.0.0.1:http", webexsim.New(webexsim.Config{}))
	if err == nil {
		t.Fatal("ListenAndServe on a bad address succeeded")
	}
}

func TestConfigValidate(t *testing.T) {
	bad := map[string]webexsim.Config{
		"negative latency":    {Latency: -time.Second},
		"negative jitter":     {LatencyJitter: -1},
		"negative delay":      {ProvisioningDelay: -1},
		"negative rate limit": {RateLimit: -1},
		"rate above 1":        {Faults: webexsim.FaultRates{Reset: 1.1}},
		"negative rate":       {Faults: webexsim.FaultRates{LostResponse: -0.1}},
		"rates above 1":       {Faults: webexsim.FaultRates{Status429: 0.5, Timeout: 0.6}},
		"relative base path":  {BasePath: "v1"},
		"base path with /":    {BasePath: "/v1/"},
		"admin base path":     {BasePath: "/_sim/api"},
	}
	for name, cfg := range bad {
		t.Run(name, func(t *testing.T) {
			if err := cfg.Validate(); err == nil {
				t.Fatal("Validate accepted it")
			}
			defer func() {
				if recover() == nil {
					t.Error("New did not panic")
				}
			}()
			webexsim.New(cfg)
		})
	}
	ok := webexsim.Config{Faults: webexsim.FaultRates{Status429: 0.1, Status423: 0.1, Status500: 0.1, Status502: 0.1,
		Status503: 0.1, Status504: 0.1, Timeout: 0.1, Reset: 0.3, LostResponse: 1}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", ok, err)
	}
	if err := (webexsim.Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
}

package provisioning_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

const token = "test-token"

// env is a workflow wired to a simulator behind an optional fault middleware.
type env struct {
	sim  *webexsim.Server
	wf   *provisioning.Workflow
	base string // the API's base URL
}

// intercept lets a test answer chosen calls itself. It returns true when it
// answered; next serves the call with the simulator.
type intercept func(w http.ResponseWriter, r *http.Request, next http.Handler) bool

func newEnv(t *testing.T, simCfg webexsim.Config, wfCfg provisioning.WorkflowConfig, icpt intercept) env {
	t.Helper()
	simCfg.Token = token
	if simCfg.PrecheckRejectDomain == "" {
		simCfg.PrecheckRejectDomain = sample.RejectDomain
	}
	sim := webexsim.New(simCfg)
	var h http.Handler = sim
	if icpt != nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !icpt(w, r, sim) {
				sim.ServeHTTP(w, r)
			}
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := provisioning.NewClient(provisioning.ClientConfig{
		BaseURL:        sim.BaseURL(srv.URL),
		Tokens:         provisioning.StaticToken(token),
		RequestTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if wfCfg.RetryInitialInterval == 0 {
		wfCfg.RetryInitialInterval = 10 * time.Millisecond
	}
	if wfCfg.RetryMaxElapsed == 0 {
		wfCfg.RetryMaxElapsed = 10 * time.Second
	}
	if wfCfg.StatusPollInterval == 0 {
		wfCfg.StatusPollInterval = 20 * time.Millisecond
	}
	return env{sim: sim, wf: provisioning.NewWorkflow(c, wfCfg), base: sim.BaseURL(srv.URL)}
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func order(i int) schemas.Order { return sample.Order("wf", i, time.Now()) }

// isCall reports whether r is the given API call.
func isCall(r *http.Request, method, suffix string) bool {
	return r.Method == method && strings.HasSuffix(r.URL.Path, suffix)
}

// firstN answers the first n calls matching method and path suffix with status
// (and Retry-After when retryAfter is set), without reaching the simulator.
func firstN(n int32, method, suffix string, status int, retryAfter string) (intercept, *atomic.Int32) {
	var seen atomic.Int32
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if !isCall(r, method, suffix) || seen.Add(1) > n {
			return false
		}
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"message":"injected","trackingId":"T-injected"}`))
		return true
	}, &seen
}

func wantError(t *testing.T, err error, class string, reason schemas.FailureReason) *provisioning.Error {
	t.Helper()
	var we *provisioning.Error
	if !errors.As(err, &we) {
		t.Fatalf("err = %v, want *provisioning.Error", err)
	}
	if we.Class != class || we.Reason != reason {
		t.Fatalf("err = %v (class %s, reason %q), want class %s reason %q", we, we.Class, we.Reason, class, reason)
	}
	return we
}

func TestWorkflowSuccess(t *testing.T) {
	e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{}, nil)
	o := order(0)
	res, err := e.wf.Run(ctx(t), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != schemas.StatusProvisioned || res.Subscriber.ID == "" || res.Subscriber.PersonID == "" || res.AlreadyExisted {
		t.Fatalf("result = %+v", res)
	}
	if res.Attempts != 2 {
		t.Errorf("attempts = %d, want 2 (precheck, create)", res.Attempts)
	}
	if n := e.sim.SuccessfulCreates(o.Email); n != 1 {
		t.Errorf("creates = %d, want 1", n)
	}
}

func TestWorkflowFollowsAsynchronousStatus(t *testing.T) {
	e := newEnv(t, webexsim.Config{ProvisioningDelay: 150 * time.Millisecond}, provisioning.WorkflowConfig{}, nil)
	res, err := e.wf.Run(ctx(t), order(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != schemas.StatusProvisioned || res.Subscriber.Status != provisioning.SubscriberProvisioned {
		t.Fatalf("result = %+v", res)
	}
	if res.Attempts < 3 {
		t.Errorf("attempts = %d, want at least one status poll after precheck and create", res.Attempts)
	}
}

func TestWorkflowStatusError(t *testing.T) {
	e := newEnv(t, webexsim.Config{ErrorDomain: sample.ErrorDomain}, provisioning.WorkflowConfig{}, nil)
	_, err := e.wf.Run(ctx(t), sample.WithDomain(order(2), "err", sample.ErrorDomain), nil)
	we := wantError(t, err, schemas.ErrorClassPermanent, schemas.ReasonProvisioningError)
	if len(we.Errors) == 0 {
		t.Errorf("want the subscriber's errors[] carried, got none")
	}
}

func TestWorkflowPrecheckRejection(t *testing.T) {
	e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{}, nil)
	o := sample.WithDomain(order(3), "rej", sample.RejectDomain)
	_, err := e.wf.Run(ctx(t), o, nil)
	we := wantError(t, err, schemas.ErrorClassPermanent, schemas.ReasonPrecheckRejected)
	if api := we.API(); api == nil || api.StatusCode != http.StatusBadRequest || len(api.Errors) == 0 {
		t.Errorf("want the 400 answer with its error codes, got %+v", we.API())
	}
	if n := e.sim.CreateCalls(o.Email); n != 0 {
		t.Errorf("create calls = %d after a rejected precheck, want 0", n)
	}
}

// TestWorkflowPrecheckSuccessWithAnotherInfoCode: Cisco gives information
// codes for every success; a 2xx precheck is a pass whatever its code, and
// the code comes back in the result.
func TestWorkflowPrecheckSuccessWithAnotherInfoCode(t *testing.T) {
	e := newEnv(t, webexsim.Config{PrecheckInfoCode: 110}, provisioning.WorkflowConfig{}, nil)
	o := order(4)
	res, err := e.wf.Run(ctx(t), o, nil)
	if err != nil {
		t.Fatalf("a 200 precheck with infoCode 110: %v, want a pass", err)
	}
	if res.Status != schemas.StatusProvisioned || res.Precheck == nil || len(res.Precheck.Info) != 1 || res.Precheck.Info[0].InfoCode != 110 {
		t.Fatalf("result = %+v, want provisioned with the precheck's info code 110", res)
	}
	if n := e.sim.SuccessfulCreates(o.Email); n != 1 {
		t.Errorf("creates = %d, want 1", n)
	}
}

func TestWorkflowDuplicateIsSuccess(t *testing.T) {
	e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{}, nil)
	o := order(5)
	first, err := e.wf.Run(ctx(t), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Redelivered (same order): the subscriber is this order's own. A new
	// order for the same subscriber, issued after it was created: it
	// existed before that order.
	again := o
	again.OrderID += "-again"
	again.OccurredAt = time.Now().Add(time.Minute)
	for _, tc := range []struct {
		o       schemas.Order
		existed bool
	}{{o, false}, {again, true}} {
		res, err := e.wf.Run(ctx(t), tc.o, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.o.OrderID, err)
		}
		if res.AlreadyExisted != tc.existed || !res.FoundByLookup || res.Subscriber.ID != first.Subscriber.ID || res.Status != schemas.StatusProvisioned {
			t.Fatalf("%s: result = %+v, want the subscriber %s found by lookup, already existed %v", tc.o.OrderID, res, first.Subscriber.ID, tc.existed)
		}
	}
	if n := e.sim.SuccessfulCreates(o.Email); n != 1 {
		t.Errorf("creates = %d, want 1", n)
	}
}

func TestWorkflowDuplicateOfAnotherCustomerFails(t *testing.T) {
	e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{}, nil)
	o := order(6)
	if _, err := e.wf.Run(ctx(t), o, nil); err != nil {
		t.Fatal(err)
	}
	other := o
	other.OrderID += "-other"
	other.CustomerID = "Y2lzY29zcGFyazovL3VzL0NVU1RPTUVSL290aGVy"
	_, err := e.wf.Run(ctx(t), other, nil)
	wantError(t, err, schemas.ErrorClassPermanent, schemas.ReasonPrecheckRejected)
	if n := e.sim.SuccessfulCreates(o.Email); n != 1 {
		t.Errorf("creates = %d, want 1", n)
	}
}

func TestWorkflowDuplicateAtCreate(t *testing.T) {
	// The precheck passes (the subscriber appears between precheck and create,
	// e.g. created by a concurrent instance): the create's 409/10022 is resolved
	// by a lookup.
	var sim *webexsim.Server
	o := order(7)
	icpt := func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if isCall(r, http.MethodPost, "/validate") {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"message":"success","info":{"infoCode":100,"description":"ok"}}`))
			return true
		}
		return false
	}
	e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{}, icpt)
	sim = e.sim
	if _, err := e.wf.Run(ctx(t), o, nil); err != nil {
		t.Fatal(err)
	}
	res, err := e.wf.Run(ctx(t), o, nil)
	if err != nil || !res.FoundByLookup || res.AlreadyExisted {
		t.Fatalf("res = %+v, err = %v; want the subscriber of the first delivery, found by lookup", res, err)
	}
	if n := sim.CreateCalls(o.Email); n != 2 {
		t.Errorf("create calls = %d, want 2 (the second answered 409)", n)
	}
	if n := sim.SuccessfulCreates(o.Email); n != 1 {
		t.Errorf("creates = %d, want 1", n)
	}
}

func TestWorkflowHonoursRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		path   string
		status int
	}{
		{"429 on precheck", http.MethodPost, "/validate", http.StatusTooManyRequests},
		{"503 on create", http.MethodPost, "/wholesale/subscribers", http.StatusServiceUnavailable},
		{"423 on create", http.MethodPost, "/wholesale/subscribers", http.StatusLocked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			icpt, seen := firstN(1, tc.method, tc.path, tc.status, "1")
			e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{}, icpt)
			o := order(8)
			start := time.Now()
			res, err := e.wf.Run(ctx(t), o, nil)
			if err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took < time.Second {
				t.Errorf("took %s: the Retry-After of 1s was not honoured", took)
			}
			if seen.Load() < 2 || res.Status != schemas.StatusProvisioned {
				t.Errorf("calls seen %d, result %+v", seen.Load(), res)
			}
			if n := e.sim.SuccessfulCreates(o.Email); n != 1 {
				t.Errorf("creates = %d, want 1", n)
			}
		})
	}
}

func TestWorkflowRetryAfterIsCapped(t *testing.T) {
	icpt, _ := firstN(1, http.MethodPost, "/validate", http.StatusTooManyRequests, "3600")
	e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{MaxRetryAfter: 200 * time.Millisecond}, icpt)
	start := time.Now()
	if _, err := e.wf.Run(ctx(t), order(9), nil); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s: Retry-After 3600 should be capped at 200ms", took)
	}
}

func TestWorkflowUnknownFateCreateIsLookedUpNotRepeated(t *testing.T) {
	for _, tc := range []struct {
		name string
		// lose serves the create with the simulator, then hides the answer.
		lose func(w http.ResponseWriter, r *http.Request, next http.Handler)
	}{
		{"504 after the create", func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			next.ServeHTTP(httptest.NewRecorder(), r)
			w.WriteHeader(http.StatusGatewayTimeout)
		}},
		{"connection reset after the create", func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			next.ServeHTTP(httptest.NewRecorder(), r)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}},
		{"client timeout after the create", func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			next.ServeHTTP(httptest.NewRecorder(), r)
			<-r.Context().Done() // the client's 2s request timeout
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lost atomic.Int32
			icpt := func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
				if !isCall(r, http.MethodPost, "/wholesale/subscribers") || lost.Add(1) > 1 {
					return false
				}
				tc.lose(w, r, next)
				return true
			}
			e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{}, icpt)
			o := order(10)
			var logs bytes.Buffer
			res, err := e.wf.Run(zerolog.New(&logs).WithContext(ctx(t)), o, nil)
			if err != nil {
				t.Fatal(err)
			}
			// The line says what comes next: a lookup, not another create.
			if !strings.Contains(logs.String(), "looking the subscriber up before any new create") || strings.Contains(logs.String(), "retrying") {
				t.Errorf("log %s: want it to say that the subscriber is looked up next", logs.String())
			}
			// Created by this order, whose answer was lost: not "already existed".
			if res.Status != schemas.StatusProvisioned || !res.FoundByLookup || res.AlreadyExisted {
				t.Errorf("result = %+v, want the subscriber this order created, found by the lookup", res)
			}
			if n := e.sim.CreateCalls(o.Email); n != 1 {
				t.Errorf("create calls = %d, want 1: a create of unknown fate must not be repeated blindly", n)
			}
			if n := e.sim.SuccessfulCreates(o.Email); n != 1 {
				t.Errorf("creates = %d, want 1", n)
			}
		})
	}
}

func TestWorkflowUnknownFateNotCreatedIsSentAgain(t *testing.T) {
	// A 503 that did not reach the simulator: the lookup finds nothing, so the
	// create is sent again, once.
	icpt, _ := firstN(1, http.MethodPost, "/wholesale/subscribers", http.StatusServiceUnavailable, "")
	e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{}, icpt)
	o := order(11)
	res, err := e.wf.Run(ctx(t), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.AlreadyExisted || res.FoundByLookup || res.Status != schemas.StatusProvisioned {
		t.Errorf("result = %+v", res)
	}
	if n := e.sim.SuccessfulCreates(o.Email); n != 1 {
		t.Errorf("creates = %d, want 1", n)
	}
	st := e.sim.Stats()
	if st.Calls[webexsim.EndpointList][http.StatusOK] != 1 {
		t.Errorf("list calls = %v, want one lookup before the second create", st.Calls[webexsim.EndpointList])
	}
}

func TestWorkflowRetriesExhausted(t *testing.T) {
	icpt, seen := firstN(1<<30, http.MethodPost, "/validate", http.StatusServiceUnavailable, "")
	e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{RetryMaxElapsed: 300 * time.Millisecond, RetryMaxInterval: 50 * time.Millisecond}, icpt)
	_, err := e.wf.Run(ctx(t), order(12), nil)
	we := wantError(t, err, schemas.ErrorClassTransient, schemas.ReasonRetriesExhausted)
	if we.Attempts != int(seen.Load()) || we.Attempts < 3 {
		t.Errorf("attempts = %d, calls seen = %d", we.Attempts, seen.Load())
	}
	if we.API() == nil || we.API().StatusCode != http.StatusServiceUnavailable {
		t.Errorf("want the last 503 carried, got %v", we.Err)
	}
}

func TestWorkflowRetryMaxAttempts(t *testing.T) {
	icpt, seen := firstN(1<<30, http.MethodPost, "/validate", http.StatusBadGateway, "")
	e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{RetryMaxAttempts: 3}, icpt)
	_, err := e.wf.Run(ctx(t), order(13), nil)
	wantError(t, err, schemas.ErrorClassTransient, schemas.ReasonRetriesExhausted)
	if seen.Load() != 3 {
		t.Errorf("calls = %d, want 3", seen.Load())
	}
}

func TestWorkflowPendingUserMigration(t *testing.T) {
	e := newEnv(t, webexsim.Config{PendingMigrationDomain: sample.PendingDomain}, provisioning.WorkflowConfig{}, nil)
	res, err := e.wf.Run(ctx(t), sample.WithDomain(order(14), "pend", sample.PendingDomain), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != schemas.StatusPendingUserAction || res.Subscriber.Status != provisioning.SubscriberPendingUserMigration {
		t.Fatalf("result = %+v", res)
	}
}

func TestWorkflowUnauthorizedIsConfigFault(t *testing.T) {
	e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{}, nil)
	e.sim.SetToken("another-token") // ours was revoked
	start := time.Now()
	_, err := e.wf.Run(ctx(t), order(15), nil)
	var we *provisioning.Error
	if !errors.As(err, &we) || we.Class != schemas.ErrorClassConfigFault {
		t.Fatalf("err = %v, want a configuration fault", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Errorf("error %q holds the token", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("a 401 must not be retried by the workflow (took %s)", time.Since(start))
	}
}

func TestWorkflowStopsWithContext(t *testing.T) {
	icpt, _ := firstN(1<<30, http.MethodPost, "/validate", http.StatusServiceUnavailable, "30")
	e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{}, icpt)
	c, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := e.wf.Run(c, order(16), nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's error", err)
	}
}

// forbiddenFor answers every call of method+suffix for the listed customers
// 403, without reaching the simulator, and counts them.
func forbiddenFor(method, suffix string, customers func(string) bool) (intercept, *atomic.Int32) {
	var seen atomic.Int32
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if !isCall(r, method, suffix) {
			return false
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var req struct {
			CustomerID string `json:"customerId"`
		}
		_ = json.Unmarshal(body, &req)
		if !customers(req.CustomerID) {
			return false
		}
		seen.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"message":"Forbidden","trackingId":"T-403"}`))
		return true
	}, &seen
}

// TestWorkflowForbiddenEverywhereIsConfigFault: a precheck refused with 403
// for customer after customer is the partner's entitlement, not each order's
// fault; one customer's 403 among successes stays that order's failure.
func TestWorkflowForbiddenEverywhereIsConfigFault(t *testing.T) {
	icpt, _ := forbiddenFor(http.MethodPost, "/validate", func(c string) bool { return strings.HasPrefix(c, "denied-") })
	e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{ForbiddenCustomers: 3}, icpt)
	withCustomer := func(i int, customer string) schemas.Order {
		o := order(100 + i)
		o.CustomerID = customer
		return o
	}
	// One customer's 403 between successes: permanent, every time.
	for i := range 4 {
		_, err := e.wf.Run(ctx(t), withCustomer(10+i, "denied-one"), nil)
		wantError(t, err, schemas.ErrorClassPermanent, schemas.ReasonPrecheckRejected)
		if _, err := e.wf.Run(ctx(t), withCustomer(i, "ok-customer"), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Three different customers in a row, no success between: the third is a
	// configuration fault, and so is every 403 after it, whichever customer.
	for i, c := range []string{"denied-a", "denied-b"} {
		_, err := e.wf.Run(ctx(t), withCustomer(20+i, c), nil)
		wantError(t, err, schemas.ErrorClassPermanent, schemas.ReasonPrecheckRejected)
	}
	for i, c := range []string{"denied-c", "denied-a", "denied-one"} {
		_, err := e.wf.Run(ctx(t), withCustomer(30+i, c), nil)
		var we *provisioning.Error
		if !errors.As(err, &we) || we.Class != schemas.ErrorClassConfigFault {
			t.Fatalf("%s: err = %v, want a configuration fault", c, err)
		}
		if !strings.Contains(err.Error(), "wxc-wholesale entitlement") {
			t.Errorf("%s: err = %v, want it to name what to check", c, err)
		}
	}
	// The fault clears with the first success.
	if _, err := e.wf.Run(ctx(t), withCustomer(40, "ok-customer"), nil); err != nil {
		t.Fatal(err)
	}
	_, err := e.wf.Run(ctx(t), withCustomer(41, "denied-b"), nil)
	wantError(t, err, schemas.ErrorClassPermanent, schemas.ReasonPrecheckRejected)
}

// TestWorkflowForbiddenCreatesAreConfigFault: a token without the write
// scope passes the precheck and gets 403 on every create: successes of the
// precheck do not hide the creates' streak.
func TestWorkflowForbiddenCreatesAreConfigFault(t *testing.T) {
	icpt, creates := forbiddenFor(http.MethodPost, "/wholesale/subscribers", func(string) bool { return true })
	e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{}, icpt)
	var faults int
	for i := range 5 {
		o := order(200 + i)
		o.CustomerID = fmt.Sprintf("customer-%d", i)
		_, err := e.wf.Run(ctx(t), o, nil)
		var we *provisioning.Error
		if !errors.As(err, &we) {
			t.Fatalf("err = %v", err)
		}
		if we.Class == schemas.ErrorClassConfigFault {
			faults++
		} else if i >= 2 {
			t.Errorf("order %d: %v, want a configuration fault from the third customer on", i, err)
		}
	}
	if faults != 3 || creates.Load() != 5 {
		t.Errorf("%d configuration faults in %d creates, want 3 in 5", faults, creates.Load())
	}
}

// TestWorkflowWaitsThroughItsHook: every backoff and poll interval goes
// through the caller's wait, so that a consumer can give its worker back;
// nothing waits behind the hook's back.
func TestWorkflowWaitsThroughItsHook(t *testing.T) {
	icpt, _ := firstN(2, http.MethodPost, "/validate", http.StatusServiceUnavailable, "")
	e := newEnv(t, webexsim.Config{ProvisioningDelay: 50 * time.Millisecond}, provisioning.WorkflowConfig{}, icpt)
	var waits []time.Duration
	wait := func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return provisioning.Sleep(ctx, d)
	}
	start := time.Now()
	res, err := e.wf.Run(ctx(t), order(300), wait)
	if err != nil || res.Status != schemas.StatusProvisioned {
		t.Fatalf("res %+v, err %v", res, err)
	}
	var waited time.Duration
	for _, d := range waits {
		waited += d
	}
	// Two retries of the precheck, then at least one poll of the status.
	if len(waits) < 3 {
		t.Errorf("the hook saw %d waits (%v), want the two retries and the polls", len(waits), waits)
	}
	if took := time.Since(start); took > waited+time.Second {
		t.Errorf("took %v, but waited %v through the hook: it waited elsewhere too", took, waited)
	}
}

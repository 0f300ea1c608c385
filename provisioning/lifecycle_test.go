package provisioning_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// provisioned creates o's subscriber through the workflow.
func provisioned(t *testing.T, e env, o schemas.Order) provisioning.Result {
	t.Helper()
	res, err := e.wf.Run(ctx(t), o, nil)
	if err != nil || res.Status != schemas.StatusProvisioned {
		t.Fatalf("provisioning %s: %+v, %v", o.OrderID, res, err)
	}
	return res
}

// counted counts the calls of method+suffix and, when lose is set, serves
// the first lose of them with the simulator and then answers 503, so that
// the client cannot know that they took effect.
func counted(method, suffix string, lose int32) (intercept, *atomic.Int32) {
	var seen atomic.Int32
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if !isCall(r, method, suffix) {
			return false
		}
		if seen.Add(1) > lose {
			return false
		}
		next.ServeHTTP(httptest.NewRecorder(), r)
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	}, &seen
}

func packagesOf(t *testing.T, sim *webexsim.Server, email string) []string {
	t.Helper()
	for _, s := range sim.Subscribers() {
		if s.Email == email {
			return s.Packages
		}
	}
	return nil
}

func TestUpdateChangesThePackage(t *testing.T) {
	icpt, puts := counted(http.MethodPut, "", 0)
	e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{}, icpt)
	o := order(400) // webex_calling
	provisioned(t, e, o)
	u := sample.Update(o, "upd", "webex_suite", time.Now())
	res, err := e.wf.Run(ctx(t), u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != schemas.StatusUpdated || !res.Changed || !slices.Equal(res.PreviousPackages, []string{"webex_calling"}) {
		t.Errorf("result %+v, want updated, changed, from webex_calling", res)
	}
	if got := packagesOf(t, e.sim, o.Email); !slices.Equal(got, []string{"webex_suite"}) {
		t.Errorf("Webex has packages %v", got)
	}
	// Redelivered: in effect already, so a success without a PUT.
	res, err = e.wf.Run(ctx(t), u, nil)
	if err != nil || res.Status != schemas.StatusUpdated || res.Changed {
		t.Errorf("redelivered: %+v, %v; want updated, not changed", res, err)
	}
	if n := puts.Load(); n != 1 {
		t.Errorf("%d PUT calls, want 1", n)
	}
}

func TestUpdateOfAnUnknownSubscriberFails(t *testing.T) {
	e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{}, nil)
	_, err := e.wf.Run(ctx(t), sample.Update(order(401), "upd", "webex_suite", time.Now()), nil)
	we := wantError(t, err, schemas.ErrorClassPermanent, schemas.ReasonSubscriberNotFound)
	if we.Step != schemas.StepLookup {
		t.Errorf("step %s, want lookup", we.Step)
	}
}

// TestUpdateOfUnknownFateIsLookedUp: a PUT whose answer was lost after it
// took effect is found in effect by the lookup, and not sent again; one that
// did not reach Webex is sent again, once.
func TestUpdateOfUnknownFateIsLookedUp(t *testing.T) {
	for _, tc := range []struct {
		name     string
		reached  bool
		wantPUTs int32
	}{{"took effect", true, 1}, {"did not reach Webex", false, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			var puts, reached atomic.Int32
			icpt := func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
				if !isCall(r, http.MethodPut, "") {
					return false
				}
				if puts.Add(1) > 1 {
					reached.Add(1)
					return false
				}
				if tc.reached {
					reached.Add(1)
					next.ServeHTTP(httptest.NewRecorder(), r)
				}
				w.WriteHeader(http.StatusServiceUnavailable)
				return true
			}
			e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{}, icpt)
			o := order(402)
			provisioned(t, e, o)
			res, err := e.wf.Run(ctx(t), sample.Update(o, "upd", "webex_suite", time.Now()), nil)
			if err != nil || res.Status != schemas.StatusUpdated || !res.Changed {
				t.Fatalf("%+v, %v", res, err)
			}
			if puts.Load() != tc.wantPUTs || reached.Load() != 1 {
				t.Errorf("%d PUTs sent, %d reached Webex; want %d and 1", puts.Load(), reached.Load(), tc.wantPUTs)
			}
		})
	}
}

func TestUpdateHonoursRetryAfter(t *testing.T) {
	icpt, seen := firstN(1, http.MethodPut, "", http.StatusTooManyRequests, "1")
	e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{}, icpt)
	o := order(403)
	provisioned(t, e, o)
	start := time.Now()
	res, err := e.wf.Run(ctx(t), sample.Update(o, "upd", "webex_meetings", time.Now()), nil)
	if err != nil || res.Status != schemas.StatusUpdated {
		t.Fatalf("%+v, %v", res, err)
	}
	if took := time.Since(start); took < time.Second || seen.Load() != 2 {
		t.Errorf("took %s with %d PUTs: want the 429's Retry-After of 1s waited, then one more PUT", took, seen.Load())
	}
}

func TestRemove(t *testing.T) {
	icpt, deletes := counted(http.MethodDelete, "", 0)
	e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{}, icpt)
	o := order(404)
	sub := provisioned(t, e, o).Subscriber
	rm := sample.Remove(o, "rm", time.Now())
	res, err := e.wf.Run(ctx(t), rm, nil)
	if err != nil || res.Status != schemas.StatusRemoved || res.AlreadyAbsent || res.Subscriber.ID != sub.ID {
		t.Fatalf("%+v, %v; want removed, the subscriber %s", res, err, sub.ID)
	}
	if packagesOf(t, e.sim, o.Email) != nil {
		t.Error("the subscriber is still there")
	}
	// Redelivered: gone already, a success without a DELETE.
	res, err = e.wf.Run(ctx(t), rm, nil)
	if err != nil || res.Status != schemas.StatusRemoved || !res.AlreadyAbsent {
		t.Errorf("redelivered: %+v, %v; want removed, already absent", res, err)
	}
	if n := deletes.Load(); n != 1 {
		t.Errorf("%d DELETE calls, want 1", n)
	}
}

// TestRemoveOfUnknownFateIsLookedUp: a DELETE whose answer was lost after it
// took effect is not sent again.
func TestRemoveOfUnknownFateIsLookedUp(t *testing.T) {
	icpt, deletes := counted(http.MethodDelete, "", 1)
	e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{}, icpt)
	o := order(405)
	provisioned(t, e, o)
	res, err := e.wf.Run(ctx(t), sample.Remove(o, "rm", time.Now()), nil)
	if err != nil || res.Status != schemas.StatusRemoved || res.AlreadyAbsent {
		t.Fatalf("%+v, %v", res, err)
	}
	if n := deletes.Load(); n != 1 {
		t.Errorf("%d DELETE calls, want 1: the lookup found it gone", n)
	}
}

// TestRemoveWaitsForAChangeInProgress: a subscriber still provisioning is
// not removed under the change; the remove waits until it settles.
func TestRemoveWaitsForAChangeInProgress(t *testing.T) {
	const delay = 300 * time.Millisecond
	e := newEnv(t, webexsim.Config{ProvisioningDelay: delay}, provisioning.WorkflowConfig{StatusPollInterval: 20 * time.Millisecond}, nil)
	o := order(406)
	// Created, not followed: the order's workflow stops at the create.
	c, err := provisioning.NewClient(provisioning.ClientConfig{BaseURL: e.base, Tokens: provisioning.StaticToken(token)})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	if _, _, err := c.Provision(ctx(t), provisioning.ProvisionRequest{CustomerID: o.CustomerID, Email: o.Email, Packages: o.Packages,
		ProvisioningParameters: provisioning.ProvisioningParameters{Extension: "12345"}}); err != nil {
		t.Fatal(err)
	}
	res, err := e.wf.Run(ctx(t), sample.Remove(o, "rm", time.Now()), nil)
	if err != nil || res.Status != schemas.StatusRemoved {
		t.Fatalf("%+v, %v", res, err)
	}
	if took := time.Since(created); took < delay || res.Subscriber.Status != provisioning.SubscriberProvisioned {
		t.Errorf("removed %s after the create, from status %q: want it to wait for the %s of provisioning", took, res.Subscriber.Status, delay)
	}
}

package provisioning_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// customerEnv is an env whose customer polls are quick.
func customerEnv(t *testing.T, simCfg webexsim.Config, icpt intercept) env {
	t.Helper()
	return newEnv(t, simCfg, provisioning.WorkflowConfig{
		CustomerPollInterval:   10 * time.Millisecond,
		CustomerMaxWait:        10 * time.Second,
		SubscriberCustomerWait: 10 * time.Second,
	}, icpt)
}

func customerOrder(i int, domain string) schemas.CustomerOrder {
	return sample.Customer("wf", i, domain, time.Now())
}

// callsTo counts the simulator's answers, of any status, for an endpoint.
func callsTo(sim *webexsim.Server, endpoint string) int64 {
	var n int64
	for _, c := range sim.Stats().Calls[endpoint] {
		n += c
	}
	return n
}

// customerOf returns the simulator's customer with the external id.
func customerOf(t *testing.T, sim *webexsim.Server, externalID string) provisioning.Customer {
	t.Helper()
	for _, c := range sim.Customers() {
		if c.ExternalID == externalID {
			return c
		}
	}
	t.Fatalf("the simulator has no customer %q", externalID)
	return provisioning.Customer{}
}

func TestCustomerProvisioned(t *testing.T) {
	e := customerEnv(t, webexsim.Config{CustomerProvisioningDelay: 100 * time.Millisecond}, nil)
	o := customerOrder(1, "")
	var waits atomic.Int32
	wait := func(ctx context.Context, d time.Duration) error {
		waits.Add(1)
		return provisioning.Sleep(ctx, d)
	}
	res, err := e.wf.RunCustomer(ctx(t), o, wait)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != schemas.StatusProvisioned || res.Customer.ID == "" || res.Customer.OrgID == "" || res.FoundByLookup || res.Precheck == nil {
		t.Errorf("result %+v: want a provisioned customer with its id and org, created by this order after a precheck", res)
	}
	if got := customerOf(t, e.sim, o.ExternalID); got.ID != res.Customer.ID || got.Status != provisioning.CustomerProvisioned {
		t.Errorf("the simulator has %+v, want customer %s provisioned", got, res.Customer.ID)
	}
	// 100 ms of provisioning, polled every 10 ms and more: through the hook.
	if waits.Load() == 0 {
		t.Error("the status polls did not wait through the order's wait hook")
	}
	if n := e.sim.SuccessfulCustomerCreates(o.ExternalID); n != 1 {
		t.Errorf("creates = %d, want 1", n)
	}
}

func TestCustomerFinalStates(t *testing.T) {
	e := customerEnv(t, webexsim.Config{CustomerProvisioningDelay: 30 * time.Millisecond}, nil)

	t.Run("provisioned with errors", func(t *testing.T) {
		res, err := e.wf.RunCustomer(ctx(t), customerOrder(2, sample.CustomerPartialDomain), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != schemas.StatusProvisionedWithErrors {
			t.Fatalf("status %s, want %s", res.Status, schemas.StatusProvisionedWithErrors)
		}
		var failed []string
		for _, p := range res.Customer.ResourceDetails.Packages {
			for _, pe := range p.Errors {
				if pe.ErrorCode == webexsim.CustomerPackageErrorCode {
					failed = append(failed, p.Name)
				}
			}
		}
		if len(failed) != 1 {
			t.Errorf("packages %+v: want one package with Webex's error %d", res.Customer.ResourceDetails.Packages, webexsim.CustomerPackageErrorCode)
		}
	})

	t.Run("pending review", func(t *testing.T) {
		res, err := e.wf.RunCustomer(ctx(t), customerOrder(3, sample.CustomerReviewDomain), nil)
		if err != nil || res.Status != schemas.StatusPendingReview || res.Customer.Status != provisioning.CustomerPendingRPLReview {
			t.Fatalf("res %+v, err %v: want pending_review", res, err)
		}
	})

	t.Run("error", func(t *testing.T) {
		o := customerOrder(4, sample.CustomerErrorDomain)
		_, err := e.wf.RunCustomer(ctx(t), o, nil)
		we := wantError(t, err, schemas.ErrorClassPermanent, schemas.ReasonProvisioningError)
		if we.CustomerID == "" || we.Step != schemas.StepStatus {
			t.Errorf("error %+v: want the customer's id, at the status step", we)
		}
		if len(we.Errors) == 0 || we.Errors[0].ErrorCode != webexsim.CustomerProvisioningErrorCode {
			t.Errorf("errors %+v: want Webex's error %d", we.Errors, webexsim.CustomerProvisioningErrorCode)
		}
	})
}

func TestCustomerRedeliveryIsNotCreatedAgain(t *testing.T) {
	e := customerEnv(t, webexsim.Config{}, nil)
	o := customerOrder(5, "")
	first, err := e.wf.RunCustomer(ctx(t), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.wf.RunCustomer(ctx(t), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Status != schemas.StatusProvisioned || !again.FoundByLookup || again.Customer.ID != first.Customer.ID {
		t.Errorf("redelivery %+v: want the same customer, found by its external id", again)
	}
	if n := e.sim.CustomerCreateCalls(o.ExternalID); n != 1 {
		t.Errorf("create calls = %d, want 1", n)
	}
	// The same external id with other packages is a conflict for an update order.
	other := o
	other.OrderID += "-other"
	other.Packages = []string{"webex_meetings"}
	_, err = e.wf.RunCustomer(ctx(t), other, nil)
	if we := wantError(t, err, schemas.ErrorClassPermanent, schemas.ReasonAPIRejected); !strings.Contains(we.Message, "send an update order") {
		t.Errorf("message %q: want it to say an update order is needed", we.Message)
	}
}

func TestCustomerLostCreateAnswerIsLookedUp(t *testing.T) {
	var lost atomic.Int32
	icpt := func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if !isCall(r, http.MethodPost, "/wholesale/customers") || lost.Add(1) > 1 {
			return false
		}
		next.ServeHTTP(discard{}, r)
		w.WriteHeader(http.StatusGatewayTimeout)
		return true
	}
	e := customerEnv(t, webexsim.Config{}, icpt)
	o := customerOrder(6, "")
	res, err := e.wf.RunCustomer(ctx(t), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != schemas.StatusProvisioned || !res.FoundByLookup {
		t.Errorf("result %+v: want the customer the lost create made, found by the lookup", res)
	}
	if n := e.sim.CustomerCreateCalls(o.ExternalID); n != 1 {
		t.Errorf("create calls = %d, want 1: a create of unknown fate is looked up, not repeated", n)
	}
}

func TestCustomerUpdate(t *testing.T) {
	e := customerEnv(t, webexsim.Config{CustomerUpdateDelay: 50 * time.Millisecond}, nil)
	o := customerOrder(7, "")
	if _, err := e.wf.RunCustomer(ctx(t), o, nil); err != nil {
		t.Fatal(err)
	}
	u := o
	u.OrderID, u.Action, u.Packages = o.OrderID+"-update", schemas.ActionUpdate, []string{"webex_meetings"}
	u.CustomerInfo = nil
	res, err := e.wf.RunCustomer(ctx(t), u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != schemas.StatusUpdated || !res.Changed || len(res.PreviousPackages) != 2 {
		t.Errorf("result %+v: want updated, changed, from the two packages", res)
	}
	if got := customerOf(t, e.sim, o.ExternalID); got.Status != provisioning.CustomerProvisioned || len(got.Packages) != 1 || got.Packages[0] != "webex_meetings" {
		t.Errorf("the simulator has %+v, want meetings only, provisioned", got)
	}
	// Redelivered: already in effect, nothing sent.
	again, err := e.wf.RunCustomer(ctx(t), u, nil)
	if err != nil || again.Status != schemas.StatusUpdated || again.Changed {
		t.Errorf("redelivery %+v, %v: want updated without a change", again, err)
	}
	if n := e.sim.CustomerUpdateCalls(o.ExternalID); n != 1 {
		t.Errorf("update calls = %d, want 1", n)
	}

	t.Run("unknown customer", func(t *testing.T) {
		x := u
		x.OrderID, x.ExternalID = "wf-nobody-update", "nobody"
		_, err := e.wf.RunCustomer(ctx(t), x, nil)
		wantError(t, err, schemas.ErrorClassPermanent, schemas.ReasonCustomerNotFound)
	})
}

func TestCustomerRemove(t *testing.T) {
	e := customerEnv(t, webexsim.Config{CustomerDeleteDelay: 50 * time.Millisecond}, nil)
	o := customerOrder(8, "")
	if _, err := e.wf.RunCustomer(ctx(t), o, nil); err != nil {
		t.Fatal(err)
	}
	rm := schemas.CustomerOrder{SchemaVersion: 1, OrderID: o.OrderID + "-remove", Action: schemas.ActionRemove, OccurredAt: time.Now(), ExternalID: o.ExternalID}
	res, err := e.wf.RunCustomer(ctx(t), rm, nil)
	if err != nil || res.Status != schemas.StatusRemoved || res.AlreadyAbsent {
		t.Fatalf("res %+v, err %v: want removed by this order", res, err)
	}
	for _, c := range e.sim.Customers() {
		if c.ExternalID == o.ExternalID {
			t.Errorf("the simulator still has %+v: the remove returned before it was gone", c)
		}
	}
	again, err := e.wf.RunCustomer(ctx(t), rm, nil)
	if err != nil || again.Status != schemas.StatusRemoved || !again.AlreadyAbsent {
		t.Errorf("redelivery %+v, %v: want removed, already absent", again, err)
	}
	if n := e.sim.CustomerRemoveCalls(o.ExternalID); n != 1 {
		t.Errorf("delete calls = %d, want 1", n)
	}
}

func TestCustomerRemoveRefusedWhileItHasSubscribers(t *testing.T) {
	e := customerEnv(t, webexsim.Config{}, nil)
	o := customerOrder(9, "")
	c, err := e.wf.RunCustomer(ctx(t), o, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub := order(900)
	sub.CustomerID = c.Customer.ID
	if res, err := e.wf.Run(ctx(t), sub, nil); err != nil || res.Status != schemas.StatusProvisioned {
		t.Fatalf("subscriber: %+v, %v", res, err)
	}
	rm := schemas.CustomerOrder{SchemaVersion: 1, OrderID: o.OrderID + "-remove", Action: schemas.ActionRemove, OccurredAt: time.Now(), ExternalID: o.ExternalID}
	_, err = e.wf.RunCustomer(ctx(t), rm, nil)
	we := wantError(t, err, schemas.ErrorClassPermanent, schemas.ReasonAPIRejected)
	api := we.API()
	if api == nil || api.StatusCode != http.StatusConflict || len(api.Errors) == 0 || api.Errors[0].ErrorCode != webexsim.CustomerHasSubscribersCode {
		t.Fatalf("error %+v (API %+v): want Webex's 409 with code %d", we, api, webexsim.CustomerHasSubscribersCode)
	}
	// Cisco's words reach the failure: the operator reads what Webex said.
	f := we.Fault().Failure
	if f == nil || f.HTTPStatus != http.StatusConflict || len(f.Errors) == 0 || f.Errors[0].Code != webexsim.CustomerHasSubscribersCode ||
		!strings.Contains(f.Errors[0].Description, "still has 1 subscriber:") || f.CustomerID != c.Customer.ID {
		t.Errorf("failure %+v: want Webex's answer word for word and the customer's id", f)
	}
	if got := customerOf(t, e.sim, o.ExternalID); got.Status != provisioning.CustomerProvisioned {
		t.Errorf("the customer is %s, want it left provisioned", got.Status)
	}
}

// TestSubscribersWaitForTheirCustomer publishes, in effect, a customer and
// 100 of its subscribers at once: every subscriber is provisioned once the
// customer is, none fails, none is created twice, and their waits for the
// customer share the reads of it.
func TestSubscribersWaitForTheirCustomer(t *testing.T) {
	e := customerEnv(t, webexsim.Config{CustomerProvisioningDelay: 300 * time.Millisecond}, nil)
	c := customerOrder(10, "")
	const n = 100
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results = map[string]error{}
		waits   atomic.Int32
	)
	wait := func(ctx context.Context, d time.Duration) error {
		waits.Add(1)
		return provisioning.Sleep(ctx, d)
	}
	var custErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, custErr = e.wf.RunCustomer(ctx(t), c, nil)
	}()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := sample.Member(c, i, time.Now())
			res, err := e.wf.Run(ctx(t), o, wait)
			if err == nil && res.Status != schemas.StatusProvisioned {
				err = fmt.Errorf("status %s", res.Status)
			}
			mu.Lock()
			results[o.Email] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	if custErr != nil {
		t.Fatal(custErr)
	}
	id := customerOf(t, e.sim, c.ExternalID).ID
	for email, err := range results {
		if err != nil {
			t.Errorf("%s: %v", email, err)
		}
		if got := e.sim.SuccessfulCreates(email); got != 1 {
			t.Errorf("%s created %d times, want once", email, got)
		}
	}
	members := 0
	for _, s := range e.sim.Subscribers() {
		if s.CustomerID == id {
			members++
		}
	}
	if members != n {
		t.Errorf("the customer has %d subscribers, want %d", members, n)
	}
	if waits.Load() < n {
		t.Errorf("%d waits through the hook, want every subscriber to have waited for its customer", waits.Load())
	}
	// A hundred waiting orders share each read: far fewer than one per order per poll.
	if reads := callsTo(e.sim, webexsim.EndpointCustomerList) + callsTo(e.sim, webexsim.EndpointCustomerGet); reads > 4*n {
		t.Errorf("%d customer reads for %d waiting subscribers: the reads are not shared", reads, n)
	}
	if refused := e.sim.Stats().Calls[webexsim.EndpointCreate][http.StatusBadRequest]; refused != 0 {
		t.Errorf("%d subscriber creates refused: none should be sent before the customer is provisioned", refused)
	}
}

// TestSubscribersOfACustomerInError fail with customer_not_ready and the
// customer order's id, whether they name the customer by external id or by
// Webex id.
func TestSubscribersOfACustomerInError(t *testing.T) {
	e := customerEnv(t, webexsim.Config{CustomerProvisioningDelay: 200 * time.Millisecond}, nil)
	c := customerOrder(11, sample.CustomerErrorDomain)
	done := make(chan error, 1)
	go func() {
		_, err := e.wf.RunCustomer(ctx(t), c, nil)
		done <- err
	}()
	// The Webex id, once the create has named it.
	var id string
	for deadline := time.Now().Add(5 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for _, cu := range e.sim.Customers() {
			if cu.ExternalID == c.ExternalID {
				id = cu.ID
			}
		}
	}
	if id == "" {
		t.Fatal("the customer was never created")
	}
	byExternal := sample.Member(c, 1, time.Now())
	byID := sample.Member(c, 2, time.Now())
	byID.CustomerID, byID.CustomerExternalID = id, ""
	for _, o := range []schemas.Order{byExternal, byID} {
		_, err := e.wf.Run(ctx(t), o, nil)
		we := wantError(t, err, schemas.ErrorClassPermanent, schemas.ReasonCustomerNotReady)
		if we.CustomerOrderID != c.OrderID || we.CustomerID != id {
			t.Errorf("%s: error %+v: want the customer order %s and customer %s", o.OrderID, we, c.OrderID, id)
		}
		if f := we.Fault().Failure; f == nil || f.CustomerOrderID != c.OrderID || f.Reason != schemas.ReasonCustomerNotReady {
			t.Errorf("%s: failure %+v: want customer_not_ready naming the customer order", o.OrderID, f)
		}
		if n := e.sim.CreateCalls(o.Email); n != 0 {
			t.Errorf("%s: %d creates sent for a customer in error", o.OrderID, n)
		}
	}
	if err := <-done; !errors.As(err, new(*provisioning.Error)) {
		t.Errorf("customer order: %v, want its own failure", err)
	}
}

// TestSubscriberWaitsForACustomerWebexReportsProvisioning: no customer
// order ran here (another instance has it), yet Webex's refusal of the
// subscriber sends the order to wait for the customer.
func TestSubscriberWaitsForACustomerWebexReportsProvisioning(t *testing.T) {
	e := customerEnv(t, webexsim.Config{CustomerProvisioningDelay: 300 * time.Millisecond}, nil)
	c := customerOrder(12, "")
	// Create the customer straight through the API, as another instance would.
	cl, err := provisioning.NewClient(provisioning.ClientConfig{BaseURL: e.base, Tokens: provisioning.StaticToken(token)})
	if err != nil {
		t.Fatal(err)
	}
	id, err := cl.CreateCustomer(ctx(t), provisioning.CustomerRequest{ProvisioningID: c.ProvisioningID, Packages: c.Packages, ExternalID: c.ExternalID,
		Address:      provisioning.Address{AddressLine1: c.Address.AddressLine1, City: c.Address.City, Country: c.Address.Country},
		CustomerInfo: &provisioning.CustomerInfo{Name: c.CustomerInfo.Name, PrimaryEmail: c.CustomerInfo.PrimaryEmail}})
	if err != nil {
		t.Fatal(err)
	}
	o := order(901)
	o.CustomerID = id
	res, err := e.wf.Run(ctx(t), o, nil)
	if err != nil || res.Status != schemas.StatusProvisioned {
		t.Fatalf("res %+v, err %v: want the order to wait for the customer, then provision", res, err)
	}
	if refused := e.sim.Stats().Calls[webexsim.EndpointPrecheck][http.StatusBadRequest]; refused != 1 {
		t.Errorf("%d prechecks refused, want the one that told the order to wait", refused)
	}
	if n := e.sim.SuccessfulCreates(o.Email); n != 1 {
		t.Errorf("creates = %d, want 1", n)
	}
}

// TestCustomerExternalIDIsResolvedOnce: orders naming a provisioned
// customer by external id cost one lookup between them, and the cache of
// ids is bounded.
func TestCustomerExternalIDIsResolvedOnce(t *testing.T) {
	e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{CustomerPollInterval: 10 * time.Millisecond, CustomerCacheSize: 2}, nil)
	var cs []schemas.CustomerOrder
	for i := range 3 {
		c := customerOrder(20+i, "")
		if _, err := e.wf.RunCustomer(ctx(t), c, nil); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	lookups := func() int64 { return callsTo(e.sim, webexsim.EndpointCustomerList) }
	// The last two customers are in the cache: their members need no lookup.
	before := lookups()
	for i := range 5 {
		for _, c := range cs[1:] {
			o := sample.Member(c, i, time.Now())
			if res, err := e.wf.Run(ctx(t), o, nil); err != nil || res.Status != schemas.StatusProvisioned {
				t.Fatalf("%s: %+v, %v", o.OrderID, res, err)
			}
			if o.CustomerID != "" {
				t.Fatal("the order's own copy changed")
			}
		}
	}
	if n := lookups() - before; n != 0 {
		t.Errorf("%d lookups for ten orders of two cached customers, want 0", n)
	}
	// The first fell out of the two-entry cache: one lookup, then cached again.
	before = lookups()
	for i := range 3 {
		o := sample.Member(cs[0], i, time.Now())
		res, err := e.wf.Run(ctx(t), o, nil)
		if err != nil || res.Status != schemas.StatusProvisioned {
			t.Fatalf("%s: %+v, %v", o.OrderID, res, err)
		}
		if res.CustomerID != customerOf(t, e.sim, cs[0].ExternalID).ID {
			t.Errorf("result customer %q, want the Webex id of %s", res.CustomerID, cs[0].ExternalID)
		}
	}
	if n := lookups() - before; n != 1 {
		t.Errorf("%d lookups for three orders of an evicted customer, want 1", n)
	}

	t.Run("unknown external id", func(t *testing.T) {
		e := newEnv(t, webexsim.Config{}, provisioning.WorkflowConfig{CustomerPollInterval: 10 * time.Millisecond, SubscriberCustomerWait: 100 * time.Millisecond}, nil)
		o := order(902)
		o.CustomerID, o.CustomerExternalID = "", "never-ordered"
		_, err := e.wf.Run(ctx(t), o, nil)
		we := wantError(t, err, schemas.ErrorClassTransient, schemas.ReasonCustomerNotReady)
		if !strings.Contains(we.Message, "never-ordered") {
			t.Errorf("message %q: want the external id", we.Message)
		}
	})
}

// discard is a ResponseWriter that forgets what it is given.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

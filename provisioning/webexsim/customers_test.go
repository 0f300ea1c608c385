package webexsim_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// Tests of the Wholesale Customers calls and of what customers change in the
// subscriber calls.

func customerPath(id string) string { return provisioning.PathCustomers + "/" + id }

// customerRequest returns a valid create for a new customer whose primary
// email is email.
func customerRequest(ext, email string) provisioning.CustomerRequest {
	return provisioning.CustomerRequest{
		ProvisioningID: "prov-1",
		Packages:       []string{"webex_calling", "webex_meetings"},
		ExternalID:     ext,
		Address:        provisioning.Address{AddressLine1: "771 Alder Drive", City: "Milpitas", StateOrProvince: "CA", ZipOrPostalCode: "95035", Country: "US"},
		CustomerInfo:   &provisioning.CustomerInfo{Name: "Acme " + ext, PrimaryEmail: email},
	}
}

func (r result) customer(t *testing.T) provisioning.Customer {
	t.Helper()
	var c provisioning.Customer
	if err := json.Unmarshal(r.body, &c); err != nil {
		t.Fatalf("decoding customer %q: %v", r.body, err)
	}
	return c
}

// createCustomer posts req and checks the 202 answer: the customer's
// absolute URL in Location and in the body. It returns the customer's id.
func (h *harness) createCustomer(req any) string {
	h.t.Helper()
	res := h.do(call{method: http.MethodPost, path: provisioning.PathCustomers, body: req})
	return h.wantAccepted(res)
}

// wantAccepted checks a 202 answer of a customer's create or update and
// returns the id its URL names.
func (h *harness) wantAccepted(res result) string {
	h.t.Helper()
	if res.status != http.StatusAccepted {
		h.t.Fatalf("status %d, body %s; want 202", res.status, res.body)
	}
	var body provisioning.ResourceURL
	if err := json.Unmarshal(res.body, &body); err != nil {
		h.t.Fatalf("decoding %s: %v", res.body, err)
	}
	loc := res.header.Get("Location")
	id, ok := strings.CutPrefix(loc, h.base+provisioning.PathCustomers+"/")
	if !ok || id == "" || strings.Contains(id, "/") {
		h.t.Fatalf("Location %q is not an absolute customer URL below %s", loc, h.base)
	}
	if body.URL != loc {
		h.t.Errorf("body url %q, Location %q: want the same", body.URL, loc)
	}
	return id
}

func (h *harness) getCustomer(id string) provisioning.Customer {
	h.t.Helper()
	res := h.do(call{method: http.MethodGet, path: customerPath(id)})
	if res.status != http.StatusOK {
		h.t.Fatalf("GET customer %s: status %d, body %s", id, res.status, res.body)
	}
	return res.customer(h.t)
}

// customerList lists customers and returns the page and the next page's URL.
func customerList(t *testing.T, h *harness, pathOrURL string) ([]provisioning.Customer, string) {
	t.Helper()
	res := h.do(call{method: http.MethodGet, path: pathOrURL})
	if res.status != http.StatusOK {
		t.Fatalf("GET %s: status %d, body %s", pathOrURL, res.status, res.body)
	}
	var list provisioning.CustomerList
	if err := json.Unmarshal(res.body, &list); err != nil {
		t.Fatalf("decoding %s: %v", res.body, err)
	}
	if list.Items == nil {
		t.Errorf("GET %s: items missing or null in %s", pathOrURL, res.body)
	}
	next := ""
	if link := res.header.Get("Link"); link != "" {
		target, rel, _ := strings.Cut(link, ";")
		if strings.TrimSpace(rel) != `rel="next"` {
			t.Fatalf("Link %q: want rel=\"next\"", link)
		}
		next = strings.Trim(strings.TrimSpace(target), "<>")
	}
	return list.Items, next
}

func externalIDs(cs []provisioning.Customer) string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ExternalID
	}
	return strings.Join(out, ",")
}

// client returns a provisioning.Client for the harness's simulator.
func (h *harness) client() *provisioning.Client {
	h.t.Helper()
	c, err := provisioning.NewClient(provisioning.ClientConfig{BaseURL: h.base, Tokens: provisioning.StaticToken(testToken)})
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestCustomerCreate(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	req := customerRequest("ext-1", "admin@acme.example")
	req.Packages = []string{"webex_suite", "common_area_calling", "cisco_calling_plan"}
	id := h.createCustomer(req)
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || !strings.HasPrefix(string(raw), "ciscospark://us/ENTERPRISE/") {
		t.Errorf("id %q: want the base64 of a ciscospark://us/ENTERPRISE/ URI (%q, %v)", id, raw, err)
	}
	if n := h.sim.SuccessfulCustomerCreates("ext-1"); n != 1 {
		t.Errorf("SuccessfulCustomerCreates = %d", n)
	}

	// No delay: the first read shows the final state.
	c := h.getCustomer(id)
	if c.ID != id || c.Status != provisioning.CustomerProvisioned || c.ExternalID != "ext-1" || len(c.Errors) != 0 {
		t.Errorf("GET = %+v: want ext-1 provisioned", c)
	}
	if !slices.Equal(c.Packages, req.Packages) {
		t.Errorf("packages = %v, want %v in order", c.Packages, req.Packages)
	}
	if c.Address == nil || *c.Address != req.Address {
		t.Errorf("address = %+v, want %+v", c.Address, req.Address)
	}
	orgRaw, err := base64.RawURLEncoding.DecodeString(c.OrgID)
	if err != nil || !strings.HasPrefix(string(orgRaw), "ciscospark://us/ORGANIZATION/") {
		t.Errorf("orgId %q: want a made-up organisation id", c.OrgID)
	}
	if c.ResourceDetails == nil || len(c.ResourceDetails.Packages) != 3 {
		t.Fatalf("resourceDetails = %+v: want one entry per package", c.ResourceDetails)
	}
	for i, d := range c.ResourceDetails.Packages {
		if d.Name != req.Packages[i] || d.Status != "provisioned" || len(d.Errors) != 0 || d.LicenseIDs != nil {
			t.Errorf("resourceDetails.packages[%d] = %+v: want %s provisioned, no license ids unless asked", i, d, req.Packages[i])
		}
	}
	// License ids only when asked, and the same at every read.
	res := h.do(call{method: http.MethodGet, path: customerPath(id) + "?includePackageLicenseInfo=true"})
	withLicenses := res.customer(t)
	for _, d := range withLicenses.ResourceDetails.Packages {
		if len(d.LicenseIDs) != 1 || d.LicenseIDs[0] == "" {
			t.Errorf("%s: licenseIds %v, want one", d.Name, d.LicenseIDs)
		}
	}
	again := h.do(call{method: http.MethodGet, path: customerPath(id) + "?includePackageLicenseInfo=true"}).customer(t)
	if fmt.Sprint(again.ResourceDetails) != fmt.Sprint(withLicenses.ResourceDetails) {
		t.Errorf("license ids changed between reads: %+v, %+v", withLicenses.ResourceDetails, again.ResourceDetails)
	}
	wantError(t, h.do(call{method: http.MethodGet, path: customerPath(id) + "?includePackageLicenseInfo=perhaps"}), http.StatusBadRequest, 0)
	wantError(t, h.do(call{method: http.MethodGet, path: customerPath("nope")}), http.StatusNotFound, 0)

	// An existing organisation: orgId and no customerInfo, provisioned with that orgId.
	existing := customerRequest("ext-2", "")
	existing.CustomerInfo, existing.OrgID = nil, "b3JnLTI"
	c = h.getCustomer(h.createCustomer(existing))
	if c.Status != provisioning.CustomerProvisioned || c.OrgID != "b3JnLTI" {
		t.Errorf("customer of an existing org = %+v: want provisioned with orgId b3JnLTI", c)
	}

	// The same externalId again: 409.
	eb := wantError(t, h.do(call{method: http.MethodPost, path: provisioning.PathCustomers, body: customerRequest("ext-1", "other@acme.example")}),
		http.StatusConflict, webexsim.CustomerExistsCode)
	if !strings.Contains(eb.Message, "externalId") {
		t.Errorf("409 message %q does not name the externalId", eb.Message)
	}
	if n, m := h.sim.CustomerCreateCalls("ext-1"), h.sim.SuccessfulCustomerCreates("ext-1"); n != 2 || m != 1 {
		t.Errorf("CustomerCreateCalls = %d, SuccessfulCustomerCreates = %d; want 2 and 1", n, m)
	}
	if got := len(h.sim.Customers()); got != 2 {
		t.Errorf("%d customers stored, want 2", got)
	}

	// Through the client, which reads the id from Location.
	cl := h.client()
	ctx := testContext(t)
	cid, err := cl.CreateCustomer(ctx, customerRequest("ext-3", "c@acme.example"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := cl.GetCustomer(ctx, cid)
	if err != nil || got.ExternalID != "ext-3" || got.Status != provisioning.CustomerProvisioned {
		t.Errorf("GetCustomer = %+v, %v", got, err)
	}
	found, err := cl.FindCustomer(ctx, "ext-3")
	if err != nil || found == nil || found.ID != cid {
		t.Errorf("FindCustomer = %+v, %v", found, err)
	}
	if found, err := cl.FindCustomer(ctx, "ext-none"); err != nil || found != nil {
		t.Errorf("FindCustomer of none = %+v, %v", found, err)
	}
}

func TestCustomerCreateErrors(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	long := strings.Repeat("x", 51)
	cases := []struct {
		name  string
		edit  func(b map[string]any)
		field string // named in the message
	}{
		{"no provisioningId", func(b map[string]any) { delete(b, "provisioningId") }, "provisioningId"},
		{"blank provisioningId", func(b map[string]any) { b["provisioningId"] = " " }, "provisioningId"},
		{"no packages", func(b map[string]any) { delete(b, "packages") }, "packages"},
		{"empty packages", func(b map[string]any) { b["packages"] = []string{} }, "packages"},
		{"unknown package", func(b map[string]any) { b["packages"] = []string{"webex_calling", "webex_teleport"} }, "webex_teleport"},
		{"duplicate package", func(b map[string]any) { b["packages"] = []string{"webex_meetings", "webex_meetings"} }, "webex_meetings"},
		{"attendant_console alone", func(b map[string]any) { b["packages"] = []string{"webex_meetings", "attendant_console"} }, "attendant_console"},
		{"cisco_calling_plan alone", func(b map[string]any) { b["packages"] = []string{"cisco_calling_plan"} }, "cisco_calling_plan"},
		{"no externalId", func(b map[string]any) { delete(b, "externalId") }, "externalId"},
		{"no address", func(b map[string]any) { delete(b, "address") }, "address"},
		{"empty address", func(b map[string]any) { b["address"] = map[string]any{} }, "addressLine1"},
		{"no addressLine1", func(b map[string]any) { delete(b["address"].(map[string]any), "addressLine1") }, "addressLine1"},
		{"no city", func(b map[string]any) { delete(b["address"].(map[string]any), "city") }, "city"},
		{"no country", func(b map[string]any) { delete(b["address"].(map[string]any), "country") }, "country"},
		{"three-letter country", func(b map[string]any) { b["address"].(map[string]any)["country"] = "USA" }, "country"},
		{"country not letters", func(b map[string]any) { b["address"].(map[string]any)["country"] = "U1" }, "country"},
		{"long addressLine1", func(b map[string]any) { b["address"].(map[string]any)["addressLine1"] = long }, "addressLine1"},
		{"long addressLine2", func(b map[string]any) { b["address"].(map[string]any)["addressLine2"] = long }, "addressLine2"},
		{"no customerInfo nor orgId", func(b map[string]any) { delete(b, "customerInfo") }, "customerInfo"},
		{"no customerInfo.name", func(b map[string]any) { delete(b["customerInfo"].(map[string]any), "name") }, "customerInfo.name"},
		{"% in customerInfo.name", func(b map[string]any) { b["customerInfo"].(map[string]any)["name"] = "100% Acme" }, "customerInfo.name"},
		{"no customerInfo.primaryEmail", func(b map[string]any) { delete(b["customerInfo"].(map[string]any), "primaryEmail") }, "primaryEmail"},
		{"bad customerInfo.primaryEmail", func(b map[string]any) { b["customerInfo"].(map[string]any)["primaryEmail"] = "nobody" }, "primaryEmail"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := map[string]any{}
			raw, _ := json.Marshal(customerRequest(fmt.Sprintf("bad-%d", i), "a@acme.example"))
			if err := json.Unmarshal(raw, &b); err != nil {
				t.Fatal(err)
			}
			tc.edit(b)
			eb := wantError(t, h.do(call{method: http.MethodPost, path: provisioning.PathCustomers, body: b}), http.StatusBadRequest, 0)
			if !strings.Contains(eb.Message, tc.field) {
				t.Errorf("message %q does not name %s", eb.Message, tc.field)
			}
		})
	}
	if n := len(h.sim.Customers()); n != 0 {
		t.Errorf("%d customers created by refused calls", n)
	}
	// Limits are on characters, not bytes; 50 is allowed.
	ok := customerRequest("ok-50", "a@acme.example")
	ok.Address.AddressLine1 = strings.Repeat("é", 50)
	ok.Address.Country = "gb"
	h.createCustomer(ok)
	wantError(t, h.do(call{method: http.MethodPost, path: provisioning.PathCustomers, body: "{}", contentType: strp("text/plain")}),
		http.StatusUnsupportedMediaType, 0)
	wantError(t, h.do(call{method: http.MethodPost, path: provisioning.PathCustomers, body: `{"packages":"webex_calling"}`}),
		http.StatusBadRequest, 0)
}

func TestCustomerFinalStates(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	pkgs := []string{"webex_calling", "webex_meetings", "webex_voice"}
	create := func(ext, email string) provisioning.Customer {
		t.Helper()
		req := customerRequest(ext, email)
		req.Packages = pkgs
		return h.getCustomer(h.createCustomer(req))
	}

	c := create("err", "it@"+webexsim.DefaultCustomerErrorDomain)
	if c.Status != provisioning.CustomerError || c.OrgID != "" || len(c.Packages) != 0 ||
		len(c.Errors) != 1 || c.Errors[0].ErrorCode != webexsim.CustomerProvisioningErrorCode || c.Errors[0].Description == "" {
		t.Errorf("error domain: %+v; want status error, errors[] with %d, no orgId", c, webexsim.CustomerProvisioningErrorCode)
	}

	c = create("partial", "it@"+webexsim.DefaultCustomerPartialDomain)
	if c.Status != provisioning.CustomerProvisionedWithErrors || c.OrgID == "" || !slices.Equal(c.Packages, pkgs) || len(c.Errors) != 0 {
		t.Errorf("partial domain: %+v; want provisioned_with_errors with orgId and every package", c)
	}
	for i, d := range c.ResourceDetails.Packages {
		switch {
		case i == 0 && (d.Status != "error" || len(d.Errors) != 1 || d.Errors[0].ErrorCode != webexsim.CustomerPackageErrorCode):
			t.Errorf("partial domain: first package %+v; want error with %d", d, webexsim.CustomerPackageErrorCode)
		case i > 0 && (d.Status != "provisioned" || len(d.Errors) != 0):
			t.Errorf("partial domain: package %+v; want provisioned", d)
		}
	}

	c = create("review", "it@"+webexsim.DefaultCustomerReviewDomain)
	if c.Status != provisioning.CustomerPendingRPLReview || c.OrgID != "" || len(c.Packages) != 0 {
		t.Errorf("review domain: %+v; want pending_rpl_review, no orgId", c)
	}
	time.Sleep(5 * time.Millisecond)
	if c = h.getCustomer(c.ID); c.Status != provisioning.CustomerPendingRPLReview {
		t.Errorf("review: status %s later; want it to stay pending_rpl_review", c.Status)
	}

	// The domain is compared case-insensitively and with orgId too.
	withOrg := customerRequest("org-err", "IT@Customer-Error.Example")
	withOrg.OrgID = "b3Jn"
	if c = h.getCustomer(h.createCustomer(withOrg)); c.Status != provisioning.CustomerError {
		t.Errorf("error domain with orgId: %+v", c)
	}
}

func TestCustomerProvisioningDelay(t *testing.T) {
	const delay = 200 * time.Millisecond
	h := newHarness(t, webexsim.Config{CustomerProvisioningDelay: delay})
	start := time.Now()
	id := h.createCustomer(customerRequest("slow", "a@acme.example"))
	c := h.getCustomer(id)
	if c.Status != provisioning.CustomerProvisioning || c.OrgID != "" || len(c.Packages) != 0 {
		t.Errorf("while provisioning: %+v; want provisioning, no orgId nor packages", c)
	}
	for _, d := range c.ResourceDetails.Packages {
		if d.Status != "provisioning" {
			t.Errorf("while provisioning: package %+v", d)
		}
	}
	if items, _ := customerList(t, h, provisioning.PathCustomers+"?status=provisioning"); externalIDs(items) != "slow" {
		t.Errorf("list status=provisioning: %q", externalIDs(items))
	}
	// Not ready for subscribers, nor for a change.
	eb := wantError(t, h.create(id, "u@acme.example"), http.StatusBadRequest, webexsim.CustomerNotReadyCode)
	if eb.Message != "The customer is not provisioned (status provisioning)." {
		t.Errorf("message %q", eb.Message)
	}
	wantError(t, h.do(call{method: http.MethodPut, path: customerPath(id), body: map[string]any{"packages": []string{"webex_calling"}}}),
		http.StatusConflict, 0)
	wantError(t, h.do(call{method: http.MethodDelete, path: customerPath(id)}), http.StatusConflict, 0)
	if time.Since(start) >= delay {
		t.Skip("the machine is too slow for this delay")
	}

	time.Sleep(time.Until(start.Add(delay + 10*time.Millisecond)))
	if c = h.getCustomer(id); c.Status != provisioning.CustomerProvisioned || c.OrgID == "" {
		t.Errorf("after the delay: %+v", c)
	}
	h.mustCreate(id, "u@acme.example")
}

func TestCustomerPrecheck(t *testing.T) {
	h := newHarness(t, webexsim.Config{PrecheckRejectDomain: "reject.example"})
	validate := func(body any) result {
		t.Helper()
		return h.do(call{method: http.MethodPost, path: provisioning.PathCustomerValidate, body: body})
	}
	addr := map[string]any{"addressLine1": "1 Main St", "city": "Leeds", "country": "GB"}

	res := validate(map[string]any{"address": addr})
	if res.status != http.StatusOK || string(res.body) != `{"message":"success","info":{"infoCode":100,"description":"Provisioning Precheck validation successful."}}`+"\n" {
		t.Errorf("address only: %d %s", res.status, res.body)
	}
	if res := validate(customerRequest("pre-1", "a@acme.example")); res.status != http.StatusOK {
		t.Errorf("a whole create body: %d %s", res.status, res.body)
	}
	for name, body := range map[string]map[string]any{
		"address":                   {},
		"address.country":           {"address": map[string]any{"addressLine1": "1 Main St", "city": "Leeds"}},
		"address.addressLine1":      {"address": map[string]any{"addressLine1": strings.Repeat("a", 51), "city": "Leeds", "country": "GB"}},
		"customerInfo.primaryEmail": {"address": addr, "customerInfo": map[string]any{"name": "Acme"}},
		"webex_nope":                {"address": addr, "packages": []string{"webex_nope"}},
	} {
		eb := wantError(t, validate(body), http.StatusBadRequest, 0)
		if !strings.Contains(eb.Message, name) {
			t.Errorf("%s: message %q does not name it", name, eb.Message)
		}
	}
	wantError(t, validate(map[string]any{"address": addr, "customerInfo": map[string]any{"primaryEmail": "x@Reject.Example"}}),
		http.StatusBadRequest, webexsim.PrecheckRejectCode)

	h.createCustomer(customerRequest("taken", "a@acme.example"))
	wantError(t, validate(map[string]any{"address": addr, "externalId": "taken"}), http.StatusConflict, webexsim.CustomerExistsCode)
	if got := len(h.sim.Customers()); got != 1 {
		t.Errorf("the precheck created customers: %d", got)
	}

	// Through the client, which takes info in either form.
	cl := h.client()
	out, err := cl.PrecheckCustomer(testContext(t), customerRequest("pre-2", "a@acme.example"))
	if err != nil || out.Message != "success" || len(out.Info) != 1 || out.Info[0].InfoCode != 100 {
		t.Errorf("PrecheckCustomer = %+v, %v", out, err)
	}

	// The precheck options apply as to the subscriber precheck.
	arr := newHarness(t, webexsim.Config{PrecheckInfoAsArray: true, PrecheckInfoCode: 101})
	res = arr.do(call{method: http.MethodPost, path: provisioning.PathCustomerValidate, body: map[string]any{"address": addr}})
	if res.status != http.StatusOK || !strings.Contains(string(res.body), `"info":[{"infoCode":101,`) {
		t.Errorf("PrecheckInfoAsArray, PrecheckInfoCode 101: %d %s", res.status, res.body)
	}
	arr.sim.SetEntitled(false)
	wantError(t, arr.do(call{method: http.MethodPost, path: provisioning.PathCustomerValidate, body: map[string]any{"address": addr}}),
		http.StatusForbidden, 0)
	// Only the precheck needs the entitlement, as for subscribers.
	arr.createCustomer(customerRequest("entitled", "a@acme.example"))
}

func TestCustomerList(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	var ids []string
	for i, email := range []string{"a@acme.example", "b@" + webexsim.DefaultCustomerErrorDomain, "c@acme.example",
		"d@" + webexsim.DefaultCustomerReviewDomain, "e@" + webexsim.DefaultCustomerPartialDomain} {
		ids = append(ids, h.createCustomer(customerRequest(fmt.Sprintf("c%d", i), email)))
	}
	org := h.getCustomer(ids[2]).OrgID
	for _, tc := range []struct{ query, want string }{
		{"", "c0,c1,c2,c3,c4"},
		{"?externalId=c2", "c2"},
		{"?externalId=c9", ""},
		{"?orgId=" + url.QueryEscape(org), "c2"},
		{"?status=provisioned", "c0,c2"},
		{"?status=error&status=pending_rpl_review", "c1,c3"},
		{"?status=error,provisioned_with_errors", "c1,c4"},
		{"?status=provisioned,error&status=provisioned_with_errors", "c0,c1,c2,c4"},
		{"?status=bogus", ""},
		{"?status=provisioned&externalId=c1", ""},
		{"?offset=3", "c3,c4"},
		{"?onBehalfOfSubPartnerOrgId=c3Vi&externalId=c0", "c0"},
	} {
		items, next := customerList(t, h, provisioning.PathCustomers+tc.query)
		if got := externalIDs(items); got != tc.want || next != "" {
			t.Errorf("list%s = %q (next %q), want %q", tc.query, got, next, tc.want)
		}
	}

	// Paging by Link rel="next", filters and sub-partner kept.
	var got []string
	next := provisioning.PathCustomers + "?max=2&status=provisioned,error,pending_rpl_review,provisioned_with_errors&onBehalfOfSubPartnerOrgId=c3Vi"
	pages := 0
	for next != "" {
		var items []provisioning.Customer
		items, next = customerList(t, h, next)
		pages++
		got = append(got, externalIDs(items))
		if next != "" && (!strings.HasPrefix(next, h.base+provisioning.PathCustomers+"?") || !strings.Contains(next, "onBehalfOfSubPartnerOrgId=c3Vi")) {
			t.Errorf("next %q: want an absolute URL of the list that keeps the parameters", next)
		}
	}
	if strings.Join(got, "|") != "c0,c1|c2,c3|c4" || pages != 3 {
		t.Errorf("pages = %q", got)
	}

	for _, q := range []string{"?max=101", "?max=0", "?max=ten", "?offset=-1", "?offset=x"} {
		wantError(t, h.do(call{method: http.MethodGet, path: provisioning.PathCustomers + q}), http.StatusBadRequest, 0)
	}
	if items, next := customerList(t, h, provisioning.PathCustomers+"?max=100"); len(items) != 5 || next != "" {
		t.Errorf("max=100: %d items, next %q", len(items), next)
	}

	// The default page is that of the subscriber list: 50.
	for i := range 50 {
		h.createCustomer(customerRequest(fmt.Sprintf("more-%d", i), "a@acme.example"))
	}
	items, next := customerList(t, h, provisioning.PathCustomers)
	if len(items) != 50 || !strings.Contains(next, "offset=50") {
		t.Errorf("no max: %d items, next %q; want 50 and a next page", len(items), next)
	}
	if items, next = customerList(t, h, next); len(items) != 5 || next != "" {
		t.Errorf("second default page: %d items, next %q", len(items), next)
	}
}

func TestCustomerUpdate(t *testing.T) {
	const delay = 200 * time.Millisecond
	h := newHarness(t, webexsim.Config{CustomerUpdateDelay: delay})
	req := customerRequest("upd", "a@acme.example")
	id := h.createCustomer(req)
	h.createCustomer(customerRequest("other", "b@acme.example"))
	licenses := func(id string) map[string][]string {
		t.Helper()
		c := h.do(call{method: http.MethodGet, path: customerPath(id) + "?includePackageLicenseInfo=true"}).customer(t)
		out := map[string][]string{}
		for _, d := range c.ResourceDetails.Packages {
			out[d.Name] = d.LicenseIDs
		}
		return out
	}
	before := licenses(id)

	// Refused updates change nothing and are counted.
	put := func(id string, body any) result {
		t.Helper()
		return h.do(call{method: http.MethodPut, path: customerPath(id), body: body})
	}
	wantError(t, put("nope", map[string]any{"packages": []string{"webex_calling"}}), http.StatusNotFound, 0)
	for _, body := range []any{
		map[string]any{},
		map[string]any{"packages": []string{}},
		map[string]any{"packages": []string{"webex_nope"}},
		map[string]any{"packages": []string{"webex_calling"}, "externalId": ""},
		map[string]any{"packages": []string{"webex_calling"}, "address": map[string]any{"city": "Leeds", "country": "GB"}},
	} {
		wantError(t, put(id, body), http.StatusBadRequest, 0)
	}
	wantError(t, put(id, map[string]any{"packages": []string{"webex_calling"}, "externalId": "other"}), http.StatusConflict, webexsim.CustomerExistsCode)
	if c := h.getCustomer(id); c.Status != provisioning.CustomerProvisioned || c.ExternalID != "upd" {
		t.Fatalf("after refused updates: %+v", c)
	}

	// An accepted update: 202, updating, then provisioned with the new list.
	start := time.Now()
	newAddr := provisioning.Address{AddressLine1: "1 Main St", City: "Leeds", Country: "GB"}
	id2 := h.wantAccepted(put(id, provisioning.CustomerUpdateRequest{
		ExternalID: "upd-2", Packages: []string{"webex_meetings", "webex_suite"}, Address: &newAddr,
	}))
	if id2 != id {
		t.Errorf("the PUT's URL names %s, want %s", id2, id)
	}
	c := h.getCustomer(id)
	if c.Status != provisioning.CustomerUpdating || !slices.Equal(c.Packages, req.Packages) || c.OrgID != "" {
		t.Errorf("while updating: %+v; want updating, the old packages, no orgId", c)
	}
	if c.ExternalID != "upd-2" || c.Address == nil || *c.Address != newAddr {
		t.Errorf("while updating: externalId %q, address %+v; want the new ones at once", c.ExternalID, c.Address)
	}
	states := map[string]string{}
	for _, d := range c.ResourceDetails.Packages {
		states[d.Name] = d.Status
	}
	if want := map[string]string{"webex_meetings": "provisioned", "webex_suite": "provisioning", "webex_calling": "deleting"}; fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("while updating: package states %v, want %v", states, want)
	}
	if items, _ := customerList(t, h, provisioning.PathCustomers+"?externalId=upd-2&status=updating"); len(items) != 1 {
		t.Errorf("list by the new externalId while updating: %d items", len(items))
	}
	if items, _ := customerList(t, h, provisioning.PathCustomers+"?externalId=upd"); len(items) != 0 {
		t.Errorf("list by the old externalId: %d items", len(items))
	}
	eb := wantError(t, put(id, map[string]any{"packages": []string{"webex_calling"}}), http.StatusConflict, 0)
	if !strings.Contains(eb.Message, "updating") {
		t.Errorf("409 message %q does not say why", eb.Message)
	}
	wantError(t, h.do(call{method: http.MethodDelete, path: customerPath(id)}), http.StatusConflict, 0)
	if time.Since(start) >= delay {
		t.Skip("the machine is too slow for this delay")
	}

	time.Sleep(time.Until(start.Add(delay + 10*time.Millisecond)))
	c = h.getCustomer(id)
	if c.Status != provisioning.CustomerProvisioned || !slices.Equal(c.Packages, []string{"webex_meetings", "webex_suite"}) || c.OrgID == "" {
		t.Errorf("after the update: %+v; want provisioned with the new packages", c)
	}
	after := licenses(id)
	if !slices.Equal(after["webex_meetings"], before["webex_meetings"]) || len(after["webex_suite"]) != 1 || len(after) != 2 {
		t.Errorf("licenses %v → %v: want the kept package's license kept, one for the new one, the removed one gone", before, after)
	}
	// The same packages again: still a change, 202 and updating.
	h.wantAccepted(put(id, map[string]any{"packages": []string{"webex_meetings", "webex_suite"}}))
	if c = h.getCustomer(id); c.Status != provisioning.CustomerUpdating {
		t.Errorf("a PUT of the same packages: status %s, want updating", c.Status)
	}
	// Counted under the externalId the customer had when the call arrived.
	if n, m := h.sim.CustomerUpdateCalls("upd"), h.sim.SuccessfulCustomerUpdates("upd"); n != 7 || m != 1 {
		t.Errorf("upd: CustomerUpdateCalls = %d, SuccessfulCustomerUpdates = %d; want 7 and 1", n, m)
	}
	if n, m := h.sim.CustomerUpdateCalls("upd-2"), h.sim.SuccessfulCustomerUpdates("upd-2"); n != 2 || m != 1 {
		t.Errorf("upd-2: CustomerUpdateCalls = %d, SuccessfulCustomerUpdates = %d; want 2 and 1", n, m)
	}
}

func TestCustomerUpdateAtOnce(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	cl := h.client()
	ctx := testContext(t)
	id := h.createCustomer(customerRequest("now", "it@"+webexsim.DefaultCustomerErrorDomain))
	// A customer in error can be updated: the update ends provisioned.
	if err := cl.UpdateCustomer(ctx, id, provisioning.CustomerUpdateRequest{Packages: []string{"webex_voice"}}); err != nil {
		t.Fatal(err)
	}
	c, err := cl.GetCustomer(ctx, id)
	if err != nil || c.Status != provisioning.CustomerProvisioned || !slices.Equal(c.Packages, []string{"webex_voice"}) || len(c.Errors) != 0 || c.OrgID == "" {
		t.Errorf("the first read after the update: %+v, %v", c, err)
	}
}

func TestCustomerDelete(t *testing.T) {
	const delay = 200 * time.Millisecond
	h := newHarness(t, webexsim.Config{CustomerDeleteDelay: delay})
	id := h.createCustomer(customerRequest("del", "a@acme.example"))
	var subs []provisioning.Subscriber
	for i := range 3 {
		subs = append(subs, h.mustCreate(id, fmt.Sprintf("s%d@acme.example", i)))
	}
	h.mustCreate(customerA, "elsewhere@acme.example") // another customer's

	eb := wantError(t, h.do(call{method: http.MethodDelete, path: customerPath(id)}), http.StatusConflict, webexsim.CustomerHasSubscribersCode)
	if eb.Message != "The customer still has 3 subscribers: remove them before the customer." {
		t.Errorf("message %q", eb.Message)
	}
	for _, s := range subs[1:] {
		if res := h.do(call{method: http.MethodDelete, path: itemPath(s.ID)}); res.status != http.StatusNoContent {
			t.Fatalf("removing subscriber: %d", res.status)
		}
	}
	eb = wantError(t, h.do(call{method: http.MethodDelete, path: customerPath(id)}), http.StatusConflict, webexsim.CustomerHasSubscribersCode)
	if eb.Message != "The customer still has 1 subscriber: remove them before the customer." {
		t.Errorf("message %q", eb.Message)
	}
	h.do(call{method: http.MethodDelete, path: itemPath(subs[0].ID)})
	if c := h.getCustomer(id); c.Status != provisioning.CustomerProvisioned {
		t.Fatalf("after refused deletes: %+v", c)
	}

	start := time.Now()
	res := h.do(call{method: http.MethodDelete, path: customerPath(id)})
	if res.status != http.StatusAccepted || len(res.body) != 0 {
		t.Fatalf("DELETE: %d %q; want 202 without a body", res.status, res.body)
	}
	c := h.getCustomer(id)
	if c.Status != provisioning.CustomerDeleting || c.OrgID != "" {
		t.Errorf("while deleting: %+v", c)
	}
	for _, d := range c.ResourceDetails.Packages {
		if d.Status != "deleting" {
			t.Errorf("while deleting: package %+v", d)
		}
	}
	if items, _ := customerList(t, h, provisioning.PathCustomers+"?status=deleting"); externalIDs(items) != "del" {
		t.Errorf("list status=deleting: %q", externalIDs(items))
	}
	eb = wantError(t, h.do(call{method: http.MethodDelete, path: customerPath(id)}), http.StatusConflict, 0)
	if !strings.Contains(eb.Message, "deleting") {
		t.Errorf("409 message %q does not say why", eb.Message)
	}
	wantError(t, h.do(call{method: http.MethodPut, path: customerPath(id), body: map[string]any{"packages": []string{"webex_calling"}}}), http.StatusConflict, 0)
	wantError(t, h.create(id, "late@acme.example"), http.StatusBadRequest, webexsim.CustomerNotReadyCode)
	// The externalId is still taken while deleting.
	wantError(t, h.do(call{method: http.MethodPost, path: provisioning.PathCustomers, body: customerRequest("del", "a@acme.example")}),
		http.StatusConflict, webexsim.CustomerExistsCode)
	if time.Since(start) >= delay {
		t.Skip("the machine is too slow for this delay")
	}

	time.Sleep(time.Until(start.Add(delay + 10*time.Millisecond)))
	wantError(t, h.do(call{method: http.MethodGet, path: customerPath(id)}), http.StatusNotFound, 0)
	if items, _ := customerList(t, h, provisioning.PathCustomers); len(items) != 0 {
		t.Errorf("list after the delete: %q", externalIDs(items))
	}
	if n := len(h.sim.Customers()); n != 0 {
		t.Errorf("Customers() after the delete: %d", n)
	}
	wantError(t, h.do(call{method: http.MethodDelete, path: customerPath(id)}), http.StatusNotFound, 0)
	wantError(t, h.do(call{method: http.MethodPut, path: customerPath(id), body: map[string]any{"packages": []string{"webex_calling"}}}), http.StatusNotFound, 0)
	// A subscriber of the deleted customer: its customer is not found.
	wantError(t, h.create(id, "later@acme.example"), http.StatusNotFound, 0)
	// The externalId is free again.
	h.createCustomer(customerRequest("del", "a@acme.example"))
	if n, m := h.sim.CustomerRemoveCalls("del"), h.sim.SuccessfulCustomerRemoves("del"); n != 5 || m != 1 {
		t.Errorf("CustomerRemoveCalls = %d, SuccessfulCustomerRemoves = %d; want 5 and 1", n, m)
	}
	if n := h.sim.SuccessfulCustomerCreates("del"); n != 2 {
		t.Errorf("SuccessfulCustomerCreates = %d, want 2", n)
	}
}

func TestCustomerDeleteAtOnce(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	cl := h.client()
	ctx := testContext(t)
	id := h.createCustomer(customerRequest("gone", "it@"+webexsim.DefaultCustomerReviewDomain))
	if err := cl.RemoveCustomer(ctx, id); err != nil {
		t.Fatal(err)
	}
	_, err := cl.GetCustomer(ctx, id)
	var ae *provisioning.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusNotFound {
		t.Errorf("GetCustomer after the delete: %v; want 404", err)
	}
	if st := h.sim.Stats(); st.Customers != 0 || st.CustomerRemoves != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestSubscribersOfCustomers(t *testing.T) {
	h := newHarness(t, webexsim.Config{CustomerProvisioningDelay: time.Hour})
	precheck := func(customerID, email string) result {
		t.Helper()
		return h.do(call{method: http.MethodPost, path: provisioning.PathValidate,
			body: provisioning.PrecheckRequest{Email: email, CustomerID: customerID}})
	}
	// Customers in each status that is not ready (pending_rpl_review: see
	// TestSubscribersOfCustomerInReview).
	slow := h.createCustomer(customerRequest("slow", "a@acme.example"))
	failed := h.createCustomer(customerRequest("err", "it@"+webexsim.DefaultCustomerErrorDomain))
	if !h.sim.ResolveCustomer("err", provisioning.CustomerError) {
		t.Fatal("resolving err")
	}
	for id, status := range map[string]string{slow: provisioning.CustomerProvisioning, failed: provisioning.CustomerError} {
		want := "The customer is not provisioned (status " + status + ")."
		for name, res := range map[string]result{
			"precheck": precheck(id, "u-"+status+"@acme.example"),
			"create":   h.create(id, "u-"+status+"@acme.example"),
		} {
			eb := wantError(t, res, http.StatusBadRequest, webexsim.CustomerNotReadyCode)
			if eb.Message != want {
				t.Errorf("%s on a customer %s: message %q, want %q", name, status, eb.Message, want)
			}
		}
	}
	if n := len(h.sim.Subscribers()); n != 0 {
		t.Errorf("%d subscribers created for customers not ready", n)
	}

	// Ready: provisioned, or provisioned with errors.
	for _, status := range []string{provisioning.CustomerProvisioned, provisioning.CustomerProvisionedWithErrors} {
		ext := "ready-" + status
		id := h.createCustomer(customerRequest(ext, "a@acme.example"))
		if !h.sim.ResolveCustomer(ext, status) {
			t.Fatalf("resolving %s", ext)
		}
		if res := precheck(id, "u-"+status+"@acme.example"); res.status != http.StatusOK {
			t.Errorf("precheck on a %s customer: %d %s", status, res.status, res.body)
		}
		sub := h.mustCreate(id, "u-"+status+"@acme.example")
		if sub.CustomerID != id || sub.ExternalCustomerID != ext {
			t.Errorf("subscriber of a %s customer: %+v; want externalCustomerId %s", status, sub, ext)
		}
	}
	items, _ := listPage(t, h, provisioning.PathSubscribers+"?externalCustomerId=ready-provisioned")
	if len(items) != 1 || items[0].Email != "u-provisioned@acme.example" {
		t.Errorf("list by externalCustomerId: %+v", items)
	}

	// A new externalId reaches the customer's subscribers.
	h2 := newHarness(t, webexsim.Config{})
	id := h2.createCustomer(customerRequest("before", "a@acme.example"))
	sub := h2.mustCreate(id, "u@acme.example")
	h2.wantAccepted(h2.do(call{method: http.MethodPut, path: customerPath(id),
		body: map[string]any{"packages": []string{"webex_calling"}, "externalId": "after"}}))
	if got := h2.get(sub.ID); got.ExternalCustomerID != "after" {
		t.Errorf("externalCustomerId after the customer's new externalId: %q", got.ExternalCustomerID)
	}
	if items, _ := listPage(t, h2, provisioning.PathSubscribers+"?externalCustomerId=after"); len(items) != 1 {
		t.Errorf("list by the new externalCustomerId: %d items", len(items))
	}

	// Unknown customer ids are taken for provisioned customers, as before.
	a := h2.mustCreate(customerA, "x@acme.example")
	b := h2.mustCreate(customerA, "y@acme.example")
	if a.ExternalCustomerID == "" || a.ExternalCustomerID != b.ExternalCustomerID {
		t.Errorf("externalCustomerId of an unknown customer: %q and %q; want one stable id", a.ExternalCustomerID, b.ExternalCustomerID)
	}
	if res := h2.do(call{method: http.MethodPost, path: provisioning.PathValidate,
		body: provisioning.PrecheckRequest{Email: "z@acme.example", CustomerID: customerB}}); res.status != http.StatusOK {
		t.Errorf("precheck with an unknown customer: %d %s", res.status, res.body)
	}
}

func TestSubscribersOfCustomerInReview(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	id := h.createCustomer(customerRequest("review", "it@"+webexsim.DefaultCustomerReviewDomain))
	eb := wantError(t, h.create(id, "u@acme.example"), http.StatusBadRequest, webexsim.CustomerNotReadyCode)
	if eb.Message != "The customer is not provisioned (status pending_rpl_review)." {
		t.Errorf("message %q", eb.Message)
	}
	wantError(t, h.do(call{method: http.MethodPost, path: provisioning.PathValidate,
		body: provisioning.PrecheckRequest{Email: "u@acme.example", CustomerID: id}}), http.StatusBadRequest, webexsim.CustomerNotReadyCode)
	if !h.sim.ResolveCustomer("review", provisioning.CustomerProvisioned) {
		t.Fatal("ResolveCustomer of a customer in review reported false")
	}
	h.mustCreate(id, "u@acme.example")
}

func TestResolveCustomer(t *testing.T) {
	h := newHarness(t, webexsim.Config{CustomerProvisioningDelay: time.Hour})
	h.createCustomer(customerRequest("slow", "a@acme.example"))
	if !h.sim.ResolveCustomer("slow", provisioning.CustomerError) {
		t.Fatal("resolving a customer still provisioning reported false")
	}
	cs := h.sim.Customers()
	if len(cs) != 1 || cs[0].Status != provisioning.CustomerError || cs[0].Errors[0].ErrorCode != webexsim.CustomerProvisioningErrorCode {
		t.Errorf("Customers() = %+v", cs)
	}
	if h.sim.ResolveCustomer("slow", provisioning.CustomerProvisioned) {
		t.Error("resolving a customer in error reported true")
	}
	if h.sim.ResolveCustomer("none", provisioning.CustomerProvisioned) {
		t.Error("resolving no customer reported true")
	}

	h.createCustomer(customerRequest("partial", "a@acme.example"))
	if !h.sim.ResolveCustomer("partial", provisioning.CustomerProvisionedWithErrors) {
		t.Fatal("resolving to provisioned_with_errors reported false")
	}
	c := h.sim.Customers()[1]
	if c.Status != provisioning.CustomerProvisionedWithErrors || c.OrgID == "" || c.ResourceDetails.Packages[0].Status != "error" {
		t.Errorf("resolved to provisioned_with_errors: %+v", c)
	}

	defer func() {
		if recover() == nil {
			t.Error("ResolveCustomer to updating did not panic")
		}
	}()
	h.sim.ResolveCustomer("partial", provisioning.CustomerUpdating)
}

func TestCustomerLostResponse(t *testing.T) {
	for _, asReset := range []bool{false, true} {
		t.Run(fmt.Sprintf("as reset %v", asReset), func(t *testing.T) {
			h := newHarness(t, webexsim.Config{Faults: webexsim.FaultRates{LostResponse: 1, LostResponseAsReset: asReset}})
			cl := h.client()
			ctx := testContext(t)
			_, err := cl.CreateCustomer(ctx, customerRequest("lost", "a@acme.example"))
			var te *provisioning.TransportError
			var ae *provisioning.APIError
			switch {
			case asReset && !errors.As(err, &te):
				t.Errorf("CreateCustomer = %v; want a transport error", err)
			case !asReset && (!errors.As(err, &ae) || ae.StatusCode != http.StatusGatewayTimeout):
				t.Errorf("CreateCustomer = %v; want 504", err)
			}
			// The customer was created all the same.
			if cs := h.sim.Customers(); len(cs) != 1 || cs[0].ExternalID != "lost" {
				t.Fatalf("Customers() = %+v; want the customer created behind the lost answer", cs)
			}
			if n, m := h.sim.CustomerCreateCalls("lost"), h.sim.SuccessfulCustomerCreates("lost"); n != 1 || m != 1 {
				t.Errorf("CustomerCreateCalls = %d, SuccessfulCustomerCreates = %d", n, m)
			}
			// A client that looks before it sends again finds it; reads are not lost.
			found, err := cl.FindCustomer(ctx, "lost")
			if err != nil || found == nil || found.Status != provisioning.CustomerProvisioned {
				t.Errorf("FindCustomer = %+v, %v", found, err)
			}
			// Updates and deletes are answered, without LostResponseAll.
			if err := cl.UpdateCustomer(ctx, found.ID, provisioning.CustomerUpdateRequest{Packages: []string{"webex_meetings"}}); err != nil {
				t.Errorf("UpdateCustomer: %v", err)
			}
			if st := h.sim.Stats(); st.LostResponses != 1 || st.Count(webexsim.EndpointCustomerUpdate, 202) != 1 {
				t.Errorf("stats = %+v", st)
			}

			h.sim.SetFaults(webexsim.FaultRates{LostResponse: 1, LostResponseAll: true, LostResponseAsReset: asReset})
			if err := cl.UpdateCustomer(ctx, found.ID, provisioning.CustomerUpdateRequest{Packages: []string{"webex_voice"}}); err == nil {
				t.Error("UpdateCustomer with LostResponseAll: no error")
			}
			if c := h.getCustomer(found.ID); !slices.Equal(c.Packages, []string{"webex_voice"}) {
				t.Errorf("after a lost update: %+v; want it in effect", c)
			}
			if err := cl.RemoveCustomer(ctx, found.ID); err == nil {
				t.Error("RemoveCustomer with LostResponseAll: no error")
			}
			if n := len(h.sim.Customers()); n != 0 {
				t.Errorf("after a lost delete: %d customers; want it in effect", n)
			}
			if st := h.sim.Stats(); st.LostResponses != 3 || st.CustomerUpdates != 2 || st.CustomerRemoves != 1 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestCustomerFaults(t *testing.T) {
	for _, tc := range []struct {
		faults webexsim.FaultRates
		status int
		retry  string
	}{
		{webexsim.FaultRates{Status429: 1}, 429, "2"},
		{webexsim.FaultRates{Status423: 1}, 423, "2"},
		{webexsim.FaultRates{Status500: 1}, 500, ""},
		{webexsim.FaultRates{Status503: 1}, 503, ""},
	} {
		h := newHarness(t, webexsim.Config{Faults: tc.faults, RetryAfter: 2 * time.Second})
		for _, c := range []call{
			{method: http.MethodPost, path: provisioning.PathCustomers, body: customerRequest("f", "a@acme.example")},
			{method: http.MethodPost, path: provisioning.PathCustomerValidate, body: customerRequest("f", "a@acme.example")},
			{method: http.MethodGet, path: provisioning.PathCustomers},
			{method: http.MethodGet, path: customerPath("x")},
			{method: http.MethodPut, path: customerPath("x"), body: map[string]any{"packages": []string{"webex_calling"}}},
			{method: http.MethodDelete, path: customerPath("x")},
		} {
			res := h.do(c)
			wantError(t, res, tc.status, 0)
			if got := res.header.Get("Retry-After"); got != tc.retry {
				t.Errorf("%d %s %s: Retry-After %q, want %q", tc.status, c.method, c.path, got, tc.retry)
			}
		}
		if n := len(h.sim.Customers()); n != 0 || h.sim.CustomerCreateCalls("f") != 0 {
			t.Errorf("%d: the fault came after the create acted", tc.status)
		}
		wantError(t, h.do(call{method: http.MethodGet, path: provisioning.PathCustomers, token: strp("bad")}), http.StatusUnauthorized, 0)
	}

	// The rate limit covers the customer calls too.
	h := newHarness(t, webexsim.Config{RateLimit: 1})
	seen := map[int]int{}
	for range 5 {
		seen[h.do(call{method: http.MethodGet, path: provisioning.PathCustomers}).status]++
	}
	if seen[429] == 0 || h.sim.Stats().RateLimited == 0 {
		t.Errorf("statuses %v: want the rate limit to answer 429", seen)
	}
}

func TestCustomerAdminAndStats(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	admin := func(method, path string, body any) result {
		t.Helper()
		return h.do(call{method: method, path: h.srv.URL + "/_sim/" + path, body: body, token: strp("")})
	}
	h.createCustomer(customerRequest("a", "x@"+webexsim.DefaultCustomerReviewDomain))
	h.createCustomer(customerRequest("b", "x@acme.example"))
	h.do(call{method: http.MethodPost, path: provisioning.PathCustomers, body: customerRequest("b", "x@acme.example")})

	var list provisioning.CustomerList
	res := admin(http.MethodGet, "customers", nil)
	if err := json.Unmarshal(res.body, &list); err != nil || externalIDs(list.Items) != "a,b" {
		t.Errorf("GET /_sim/customers: %d %s (%v)", res.status, res.body, err)
	}
	for _, body := range []any{`{"external_id":"a","status":"provisioned"}`, map[string]string{"externalId": "a", "status": "updating"}, map[string]string{"status": "error"}} {
		if res := admin(http.MethodPost, "resolve-customer", body); res.status != http.StatusBadRequest {
			t.Errorf("resolve-customer %v: %d", body, res.status)
		}
	}
	if res := admin(http.MethodPost, "resolve-customer", map[string]string{"externalId": "b", "status": "error"}); res.status != http.StatusNotFound {
		t.Errorf("resolve-customer of a provisioned customer: %d", res.status)
	}
	if res := admin(http.MethodPost, "resolve-customer", map[string]string{"externalId": "a", "status": "provisioned"}); res.status != http.StatusNoContent {
		t.Errorf("resolve-customer: %d %s", res.status, res.body)
	}
	if c := h.sim.Customers()[0]; c.Status != provisioning.CustomerProvisioned {
		t.Errorf("after resolve-customer: %+v", c)
	}

	st := h.sim.Stats()
	if st.Count(webexsim.EndpointCustomerCreate, 202) != 2 || st.Count(webexsim.EndpointCustomerCreate, 409) != 1 ||
		st.CustomerCreateCalls != 3 || st.CustomerCreates != 2 || st.Customers != 2 || st.Requests != 3 {
		t.Errorf("stats = %+v", st)
	}
	h.do(call{method: http.MethodGet, path: provisioning.PathCustomers})
	h.do(call{method: http.MethodGet, path: customerPath("x")})
	h.do(call{method: http.MethodPost, path: provisioning.PathCustomerValidate, body: map[string]any{}})
	h.do(call{method: http.MethodPut, path: customerPath("x"), body: map[string]any{"packages": []string{"webex_calling"}}})
	h.do(call{method: http.MethodDelete, path: customerPath("x")})
	st = h.sim.Stats()
	for name, status := range map[string]int{webexsim.EndpointCustomerList: 200, webexsim.EndpointCustomerGet: 404,
		webexsim.EndpointCustomerPrecheck: 400, webexsim.EndpointCustomerUpdate: 404, webexsim.EndpointCustomerDelete: 404} {
		if st.Count(name, status) != 1 {
			t.Errorf("Calls[%s] = %v, want one %d", name, st.Calls[name], status)
		}
	}
	// Unknown ids count no per-customer calls.
	if st.CustomerUpdateCalls != 0 || st.CustomerRemoveCalls != 0 {
		t.Errorf("stats = %+v", st)
	}

	if res := admin(http.MethodPost, "reset", nil); res.status != http.StatusNoContent {
		t.Fatalf("reset: %d", res.status)
	}
	if st := h.sim.Stats(); st.Customers != 0 || st.CustomerCreates != 0 || len(h.sim.Customers()) != 0 || h.sim.CustomerCreateCalls("a") != 0 {
		t.Errorf("after reset: %+v", st)
	}
	h.createCustomer(customerRequest("a", "x@acme.example")) // the externalId is free again
}

func TestCustomerMethodsAndPaths(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	id := h.createCustomer(customerRequest("m", "a@acme.example"))
	for _, c := range []struct{ method, path, allow string }{
		{http.MethodPatch, provisioning.PathCustomers, "GET, POST"},
		{http.MethodDelete, provisioning.PathCustomers, "GET, POST"},
		{http.MethodGet, provisioning.PathCustomerValidate, "POST"},
		{http.MethodDelete, provisioning.PathCustomerValidate, "POST"},
		{http.MethodPost, customerPath(id), "GET, PUT, DELETE"},
		{http.MethodPatch, customerPath(id), "GET, PUT, DELETE"},
	} {
		res := h.do(call{method: c.method, path: c.path, body: "{}"})
		wantError(t, res, http.StatusMethodNotAllowed, 0)
		if got := res.header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow = %q, want %q", c.method, c.path, got, c.allow)
		}
	}
	for _, path := range []string{provisioning.PathCustomers + "/", customerPath(id) + "/packages", "/customers/" + id} {
		wantError(t, h.do(call{method: http.MethodGet, path: path}), http.StatusNotFound, 0)
	}
}

func TestCustomerConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  webexsim.Config
	}{
		{"negative provisioning delay", webexsim.Config{CustomerProvisioningDelay: -1}},
		{"negative update delay", webexsim.Config{CustomerUpdateDelay: -1}},
		{"negative delete delay", webexsim.Config{CustomerDeleteDelay: -1}},
		{"customer domains alike", webexsim.Config{CustomerPartialDomain: "Customer-Review.example"}},
		{"customer domain as a subscriber one", webexsim.Config{CustomerErrorDomain: webexsim.DefaultErrorDomain}},
		{"subscriber domain as a customer one", webexsim.Config{AcceptDomain: webexsim.DefaultCustomerReviewDomain}},
	} {
		if err := tc.cfg.Validate(); err == nil {
			t.Errorf("%s: Validate() = nil", tc.name)
		}
	}
	if err := (webexsim.Config{CustomerErrorDomain: "a.example", CustomerPartialDomain: "b.example", CustomerReviewDomain: "c.example"}).Validate(); err != nil {
		t.Errorf("distinct domains: %v", err)
	}
	// Custom domains are used.
	h := newHarness(t, webexsim.Config{CustomerErrorDomain: "broken.example"})
	if c := h.getCustomer(h.createCustomer(customerRequest("x", "it@broken.example"))); c.Status != provisioning.CustomerError {
		t.Errorf("custom error domain: %+v", c)
	}
	if c := h.getCustomer(h.createCustomer(customerRequest("y", "it@"+webexsim.DefaultCustomerErrorDomain))); c.Status != provisioning.CustomerProvisioned {
		t.Errorf("default error domain when another is set: %+v", c)
	}
}

// TestCustomerConcurrency races creates of one externalId, and subscriber
// creates against the customer's delete: one create wins, and the delete
// either sees the subscribers or keeps them out.
func TestCustomerConcurrency(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	var wg sync.WaitGroup
	statuses := make([]int, 16)
	for i := range statuses {
		wg.Go(func() {
			statuses[i] = h.do(call{method: http.MethodPost, path: provisioning.PathCustomers, body: customerRequest("race", "a@acme.example")}).status
		})
	}
	wg.Wait()
	won := 0
	for _, st := range statuses {
		switch st {
		case http.StatusAccepted:
			won++
		case http.StatusConflict:
		default:
			t.Errorf("status %d", st)
		}
	}
	if won != 1 || h.sim.SuccessfulCustomerCreates("race") != 1 || h.sim.CustomerCreateCalls("race") != 16 {
		t.Errorf("%d creates won (%v); want 1", won, statuses)
	}

	for round := range 20 {
		ext := fmt.Sprintf("round-%d", round)
		id := h.createCustomer(customerRequest(ext, "a@acme.example"))
		var created [4]bool
		var deleted bool
		for i := range created {
			wg.Go(func() {
				created[i] = h.create(id, fmt.Sprintf("%s-%d@acme.example", ext, i)).status == http.StatusOK
			})
		}
		wg.Go(func() {
			deleted = h.do(call{method: http.MethodDelete, path: customerPath(id)}).status == http.StatusAccepted
		})
		wg.Wait()
		n := 0
		for _, ok := range created {
			if ok {
				n++
			}
		}
		if deleted && n > 0 {
			t.Errorf("round %d: the customer was deleted and %d subscribers were created for it", round, n)
		}
		for _, s := range h.sim.Subscribers() {
			h.do(call{method: http.MethodDelete, path: itemPath(s.ID)})
		}
	}
}

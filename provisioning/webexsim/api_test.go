package webexsim_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

const customerA, customerB = "Y3VzdG9tZXItQQ", "Y3VzdG9tZXItQg"

func TestPrecheck(t *testing.T) {
	h := newHarness(t, webexsim.Config{
		PrecheckRejectEmails: []string{"Blocked@Acme.example"},
		PrecheckRejectDomain: "reject.example",
	})
	h.mustCreate(customerA, "taken@acme.example")
	calling := &provisioning.ProvisioningParameters{PrimaryPhoneNumber: "+12405551212"}

	okCases := []struct {
		name string
		req  provisioning.PrecheckRequest
	}{
		{"email only", provisioning.PrecheckRequest{Email: "alice@acme.example"}},
		{"with customer", provisioning.PrecheckRequest{CustomerID: customerA, Email: "alice@acme.example"}},
		{"packages", provisioning.PrecheckRequest{Email: "alice@acme.example", Packages: []string{"webex_calling"}, ProvisioningParameters: calling}},
		{"package", provisioning.PrecheckRequest{Email: "alice@acme.example", Package: "webex_suite", ProvisioningParameters: &provisioning.ProvisioningParameters{Extension: "12"}}},
		{"meetings needs no number", provisioning.PrecheckRequest{Email: "alice@acme.example", Packages: []string{"webex_meetings"}}},
		{"new customer", provisioning.PrecheckRequest{Email: "alice@acme.example", ProvisioningID: "cHJvdg", CustomerInfo: &provisioning.CustomerInfo{PrimaryEmail: "admin@acme.example"}}},
		{"attendant add-on", provisioning.PrecheckRequest{Email: "alice@acme.example", Packages: []string{"webex_calling", "attendant_console"}, ProvisioningParameters: calling}},
	}
	for _, tc := range okCases {
		t.Run(tc.name, func(t *testing.T) {
			res := h.do(call{method: http.MethodPost, path: provisioning.PathValidate, body: tc.req})
			if res.status != http.StatusOK {
				t.Fatalf("status = %d, body %s", res.status, res.body)
			}
			if ct := res.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			// Cisco's OpenAPI description has info as an object: check the raw form.
			var raw struct {
				Message string          `json:"message"`
				Info    json.RawMessage `json:"info"`
			}
			if err := json.Unmarshal(res.body, &raw); err != nil {
				t.Fatal(err)
			}
			if raw.Message != "success" || !strings.HasPrefix(string(raw.Info), "{") {
				t.Errorf("body = %s, want message success and info an object", res.body)
			}
			var pr provisioning.PrecheckResponse
			if err := json.Unmarshal(res.body, &pr); err != nil {
				t.Fatal(err)
			}
			if len(pr.Info) != 1 || pr.Info[0].InfoCode != provisioning.PrecheckSuccessCode {
				t.Errorf("info = %+v, want one infoCode 100", pr.Info)
			}
		})
	}

	errCases := []struct {
		name   string
		body   any
		ct     *string
		status int
		code   int
	}{
		{"not JSON", "{", nil, 400, 0},
		{"JSON array", "[]", nil, 400, 0},
		{"empty body", "", nil, 400, 0},
		{"wrong content type", `{"email":"a@acme.example"}`, strp("text/plain"), 415, 0},
		{"no content type", `{"email":"a@acme.example"}`, strp(""), 415, 0},
		{"no email", provisioning.PrecheckRequest{CustomerID: customerA}, nil, 400, 0},
		{"bad email", provisioning.PrecheckRequest{Email: "not-an-email"}, nil, 400, 0},
		{"both package fields", provisioning.PrecheckRequest{Email: "a@acme.example", Package: "webex_meetings", Packages: []string{"webex_meetings"}}, nil, 400, 0},
		{"unknown package", provisioning.PrecheckRequest{Email: "a@acme.example", Packages: []string{"webex_gold"}}, nil, 400, 0},
		{"unknown legacy package", provisioning.PrecheckRequest{Email: "a@acme.example", Package: "attendant_console"}, nil, 400, 0},
		{"two packages", provisioning.PrecheckRequest{Email: "a@acme.example", Packages: []string{"webex_meetings", "webex_suite"}, ProvisioningParameters: calling}, nil, 400, 0},
		{"attendant alone", provisioning.PrecheckRequest{Email: "a@acme.example", Packages: []string{"attendant_console"}}, nil, 400, 0},
		{"calling without number", provisioning.PrecheckRequest{Email: "a@acme.example", Packages: []string{"webex_voice"}}, nil, 400, 0},
		{"calling with empty parameters", provisioning.PrecheckRequest{Email: "a@acme.example", Package: "cx_essentials", ProvisioningParameters: &provisioning.ProvisioningParameters{FirstName: "A"}}, nil, 400, 0},
		{"customerInfo without primaryEmail", provisioning.PrecheckRequest{Email: "a@acme.example", CustomerInfo: &provisioning.CustomerInfo{}}, nil, 400, 0},
		{"existing subscriber", provisioning.PrecheckRequest{Email: "TAKEN@acme.example"}, nil, 409, provisioning.CodeEmailInUse},
		{"rejected email", provisioning.PrecheckRequest{Email: "blocked@acme.example"}, nil, 400, webexsim.PrecheckRejectCode},
		{"rejected domain", provisioning.PrecheckRequest{Email: "bob@Reject.Example"}, nil, 400, webexsim.PrecheckRejectCode},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			res := h.do(call{method: http.MethodPost, path: provisioning.PathValidate, body: tc.body, contentType: tc.ct})
			wantError(t, res, tc.status, tc.code)
		})
	}
}

func TestPrecheckInfoAsArray(t *testing.T) {
	h := newHarness(t, webexsim.Config{PrecheckInfoAsArray: true})
	res := h.do(call{method: http.MethodPost, path: provisioning.PathValidate, body: provisioning.PrecheckRequest{Email: "a@acme.example"}})
	var raw struct {
		Info json.RawMessage `json:"info"`
	}
	if err := json.Unmarshal(res.body, &raw); err != nil {
		t.Fatal(err)
	}
	if res.status != http.StatusOK || !strings.HasPrefix(string(raw.Info), "[") {
		t.Fatalf("status %d, body %s: want 200 with info an array", res.status, res.body)
	}
}

// TestPrecheckInfoCodeAndEntitlement: a successful precheck can carry another
// information code; a partner without the entitlement gets 403 on every
// precheck until it is granted.
func TestPrecheckInfoCodeAndEntitlement(t *testing.T) {
	h := newHarness(t, webexsim.Config{PrecheckInfoCode: 120, NotEntitled: true})
	req := call{method: http.MethodPost, path: provisioning.PathValidate, body: provisioning.PrecheckRequest{Email: "a@acme.example"}}
	wantError(t, h.do(req), http.StatusForbidden, 0)
	h.sim.SetEntitled(true)
	res := h.do(req)
	var got struct {
		Message string                    `json:"message"`
		Info    provisioning.PrecheckInfo `json:"info"`
	}
	if err := json.Unmarshal(res.body, &got); err != nil || res.status != http.StatusOK {
		t.Fatalf("status %d, body %s: %v", res.status, res.body, err)
	}
	if got.Message != "success" || got.Info.InfoCode != 120 || got.Info.Description == "" {
		t.Errorf("answer %+v, want success with infoCode 120 and a description", got)
	}
}

var millisStamp = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestCreate(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	res := h.do(call{
		method: http.MethodPost, path: provisioning.PathSubscribers + "?onBehalfOfSubPartnerOrgId=c3Vi",
		body: provisionBody(customerA, "Alice@Acme.example"),
	})
	if res.status != http.StatusOK {
		t.Fatalf("status = %d, body %s", res.status, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	sub := res.subscriber(t)
	if sub.Status != provisioning.SubscriberProvisioned || sub.PersonID == "" {
		t.Errorf("status %q personId %q: want provisioned with a personId", sub.Status, sub.PersonID)
	}
	if sub.Email != "Alice@Acme.example" || sub.CustomerID != customerA || sub.ExternalCustomerID == "" {
		t.Errorf("subscriber = %+v", sub)
	}
	if sub.Package != "webex_calling" || len(sub.Packages) != 1 || sub.Packages[0] != "webex_calling" {
		t.Errorf("package %q packages %v: want webex_calling mirrored", sub.Package, sub.Packages)
	}
	if !millisStamp.MatchString(sub.Created) || !millisStamp.MatchString(sub.LastStatusChange) {
		t.Errorf("created %q lastStatusChange %q: want RFC 3339 with milliseconds", sub.Created, sub.LastStatusChange)
	}
	rawID, err := base64.RawURLEncoding.DecodeString(sub.ID)
	if err != nil || !strings.HasPrefix(string(rawID), "ciscospark://us/SUBSCRIBER/") {
		t.Errorf("id %q decodes to %q (%v): want a Webex subscriber id", sub.ID, rawID, err)
	}
	if !strings.HasPrefix(sub.ID, "Y2lzY29zcGFyazovL3VzL1NVQlNDUklCRVIv") {
		t.Errorf("id %q lacks the Webex subscriber prefix", sub.ID)
	}
	if loc, want := res.header.Get("Location"), h.base+provisioning.PathSubscribers+"/"+sub.ID; loc != want {
		t.Errorf("Location = %q, want %q", loc, want)
	}

	// The deprecated package field is mirrored into packages.
	legacy := provisionBody(customerA, "bob@acme.example")
	legacy.Packages, legacy.Package = nil, "webex_meetings"
	res = h.do(call{method: http.MethodPost, path: provisioning.PathSubscribers, body: legacy})
	if sub := res.subscriber(t); res.status != 200 || sub.Package != "webex_meetings" || len(sub.Packages) != 1 || sub.Packages[0] != "webex_meetings" {
		t.Errorf("legacy package: status %d, body %s", res.status, res.body)
	}

	// The same customer always gets the same external id.
	other := h.mustCreate(customerA, "carol@acme.example")
	if other.ExternalCustomerID != sub.ExternalCustomerID {
		t.Errorf("external ids %q and %q differ for one customer", other.ExternalCustomerID, sub.ExternalCustomerID)
	}
}

// TestPackageMirror checks that the deprecated package field only ever names a
// package of its enum in Cisco's OpenAPI description (the six legacy packages):
// a contact-center package shows in packages alone.
func TestPackageMirror(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	rawPackage := func(res result) (string, bool) {
		t.Helper()
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(res.body, &raw); err != nil {
			t.Fatalf("decoding %s: %v", res.body, err)
		}
		v, ok := raw["package"]
		return string(v), ok
	}
	cases := []struct {
		packages []string
		want     string // the package field, "" for none
	}{
		{[]string{"cx_premium_agent"}, ""},
		{[]string{"cx_standard_agent"}, ""},
		{[]string{"webex_calling", "attendant_console"}, "webex_calling"},
		{[]string{"attendant_console", "cx_essentials"}, "cx_essentials"},
		{[]string{"webex_calling_standard"}, "webex_calling_standard"},
	}
	for i, tc := range cases {
		req := provisionBody(customerA, "mirror"+strconv.Itoa(i)+"@acme.example")
		req.Packages = tc.packages
		res := h.do(call{method: http.MethodPost, path: provisioning.PathSubscribers, body: req})
		if res.status != http.StatusOK {
			t.Fatalf("%v: status %d, body %s", tc.packages, res.status, res.body)
		}
		got, present := rawPackage(res)
		if want := strconv.Quote(tc.want); (tc.want == "" && present) || (tc.want != "" && got != want) {
			t.Errorf("%v: package = %s (present %v), want %q", tc.packages, got, present, tc.want)
		}
		if sub := res.subscriber(t); !slices.Equal(sub.Packages, tc.packages) {
			t.Errorf("%v: packages = %v", tc.packages, sub.Packages)
		}
	}

	// An update to a contact-center package drops the package field, and one
	// back to a legacy package brings it back.
	sub := h.mustCreate(customerA, "moving@acme.example")
	item := provisioning.PathSubscribers + "/" + sub.ID
	res := h.do(call{method: http.MethodPut, path: item, body: map[string]any{"packages": []string{"cx_standard_agent"}}})
	if got, present := rawPackage(res); res.status != http.StatusOK || present {
		t.Errorf("PUT cx_standard_agent: status %d, package %s, body %s", res.status, got, res.body)
	}
	if got, present := rawPackage(h.do(call{method: http.MethodGet, path: item})); present {
		t.Errorf("GET after PUT cx_standard_agent: package %s, want none", got)
	}
	res = h.do(call{method: http.MethodPut, path: item, body: map[string]any{"package": "webex_meetings"}})
	if got, _ := rawPackage(res); res.status != http.StatusOK || got != `"webex_meetings"` {
		t.Errorf("PUT webex_meetings: status %d, body %s", res.status, res.body)
	}
}

func TestCreateErrors(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	h.mustCreate(customerA, "taken@acme.example")

	noParams := `{"customerId":"` + customerA + `","email":"a@acme.example","packages":["webex_meetings"]}`
	mod := func(f func(*provisioning.ProvisionRequest)) provisioning.ProvisionRequest {
		req := provisionBody(customerA, "new@acme.example")
		f(&req)
		return req
	}
	cases := []struct {
		name   string
		body   any
		ct     *string
		status int
		code   int
	}{
		{"not JSON", "nope", nil, 400, 0},
		{"wrong content type", "{}", strp("application/xml"), 415, 0},
		{"no customerId", mod(func(r *provisioning.ProvisionRequest) { r.CustomerID = "" }), nil, 400, 0},
		{"no email", mod(func(r *provisioning.ProvisionRequest) { r.Email = "" }), nil, 400, 0},
		{"no provisioningParameters", noParams, nil, 400, 0},
		{"no package", mod(func(r *provisioning.ProvisionRequest) { r.Packages = nil }), nil, 400, 0},
		{"empty packages", `{"customerId":"c","email":"a@acme.example","packages":[],"provisioningParameters":{"extension":"1"}}`, nil, 400, 0},
		{"both package fields", mod(func(r *provisioning.ProvisionRequest) { r.Package = "webex_calling" }), nil, 400, 0},
		{"unknown package", mod(func(r *provisioning.ProvisionRequest) { r.Packages = []string{"webex_platinum"} }), nil, 400, 0},
		{"calling without number", mod(func(r *provisioning.ProvisionRequest) {
			r.ProvisioningParameters.PrimaryPhoneNumber, r.ProvisioningParameters.Extension = "", ""
		}), nil, 400, 0},
		{"existing email", provisionBody(customerA, "taken@acme.example"), nil, 409, provisioning.CodeEmailInUse},
		{"existing email, other case and customer", provisionBody(customerB, " TAKEN@ACME.EXAMPLE "), nil, 409, provisioning.CodeEmailInUse},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := h.do(call{method: http.MethodPost, path: provisioning.PathSubscribers, body: tc.body, contentType: tc.ct})
			wantError(t, res, tc.status, tc.code)
		})
	}
	if got := len(h.sim.Subscribers()); got != 1 {
		t.Errorf("%d subscribers stored, want 1", got)
	}
	if got := h.sim.SuccessfulCreates("taken@acme.example"); got != 1 {
		t.Errorf("SuccessfulCreates = %d, want 1", got)
	}
	if got := h.sim.CreateCalls("Taken@Acme.example"); got != 3 {
		t.Errorf("CreateCalls = %d, want 3", got)
	}
}

func TestCreatePendingMigration(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	res := h.create(customerA, "free.user@free.example")
	if res.status != http.StatusAccepted {
		t.Fatalf("status = %d, want 202 (body %s)", res.status, res.body)
	}
	sub := res.subscriber(t)
	if sub.Status != provisioning.SubscriberPendingUserMigration || sub.PersonID != "" {
		t.Errorf("status %q personId %q: want pending_user_migration without personId", sub.Status, sub.PersonID)
	}
	if res.header.Get("Location") == "" {
		t.Error("no Location header")
	}
	got := h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers + "/" + sub.ID}).subscriber(t)
	if got.Status != provisioning.SubscriberPendingUserMigration {
		t.Errorf("GET status = %q, want it to stay pending_user_migration", got.Status)
	}
}

func TestAsyncProvisioning(t *testing.T) {
	const delay = 150 * time.Millisecond
	h := newHarness(t, webexsim.Config{ProvisioningDelay: delay})
	res := h.create(customerA, "slow@acme.example")
	sub := res.subscriber(t)
	if res.status != http.StatusOK || sub.Status != provisioning.SubscriberProvisioning || sub.PersonID != "" {
		t.Fatalf("status %d, body %s: want 200 provisioning without personId", res.status, res.body)
	}
	get := func() provisioning.Subscriber {
		return h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers + "/" + sub.ID}).subscriber(t)
	}
	if got := get(); got.Status != provisioning.SubscriberProvisioning {
		t.Errorf("GET at once: status %q, want provisioning", got.Status)
	}
	time.Sleep(delay + 20*time.Millisecond)
	got := get()
	if got.Status != provisioning.SubscriberProvisioned || got.PersonID == "" {
		t.Fatalf("GET after the delay: %+v, want provisioned with personId", got)
	}
	if got.LastStatusChange == got.Created {
		t.Errorf("lastStatusChange %q did not move from created", got.LastStatusChange)
	}
	if again := get(); again.PersonID != got.PersonID {
		t.Errorf("personId changed from %q to %q", got.PersonID, again.PersonID)
	}
}

func TestErrorDomain(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	res := h.create(customerA, "doomed@error.example")
	sub := res.subscriber(t)
	if res.status != http.StatusOK || sub.Status != provisioning.SubscriberProvisioning {
		t.Fatalf("status %d, body %s: want 200 provisioning", res.status, res.body)
	}
	got := h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers + "/" + sub.ID}).subscriber(t)
	if got.Status != provisioning.SubscriberError || got.PersonID != "" ||
		len(got.Errors) != 1 || got.Errors[0].ErrorCode != webexsim.ProvisioningErrorCode || got.Errors[0].Description == "" {
		t.Errorf("GET = %+v, want status error with one error item", got)
	}
}

func TestGet(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	sub := h.mustCreate(customerA, "alice@acme.example")
	res := h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers + "/" + sub.ID + "?onBehalfOfSubPartnerOrgId=x"})
	if res.status != http.StatusOK {
		t.Fatalf("status = %d", res.status)
	}
	if got := res.subscriber(t); got.ID != sub.ID || got.Email != sub.Email || got.PersonID != sub.PersonID {
		t.Errorf("GET = %+v, want %+v", got, sub)
	}
	wantError(t, h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers + "/nope"}), 404, 0)
}

// listPage is one list answer.
func listPage(t *testing.T, h *harness, pathOrURL string) (items []provisioning.Subscriber, next string) {
	t.Helper()
	res := h.do(call{method: http.MethodGet, path: pathOrURL})
	if res.status != http.StatusOK {
		t.Fatalf("GET %s: status %d, body %s", pathOrURL, res.status, res.body)
	}
	if !strings.HasPrefix(string(res.body), `{"items":[`) {
		t.Fatalf("body %s: want an items array", res.body)
	}
	var list provisioning.SubscriberList
	if err := json.Unmarshal(res.body, &list); err != nil {
		t.Fatal(err)
	}
	if link := res.header.Get("Link"); link != "" {
		m := regexp.MustCompile(`^<([^>]+)>; rel="next"$`).FindStringSubmatch(link)
		if m == nil {
			t.Fatalf("Link = %q", link)
		}
		next = m[1]
	}
	return list.Items, next
}

func TestList(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	var all []provisioning.Subscriber
	for i, email := range []string{"a@acme.example", "b@acme.example", "c@acme.example", "d@acme.example", "e@acme.example"} {
		cust := customerA
		if i%2 == 1 {
			cust = customerB
		}
		all = append(all, h.mustCreate(cust, email))
	}
	pending := h.mustCreate(customerA, "f@free.example")
	all = append(all, pending)

	emails := func(subs []provisioning.Subscriber) string {
		var out []string
		for _, s := range subs {
			out = append(out, s.Email)
		}
		return strings.Join(out, ",")
	}
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return provisioning.PathSubscribers + "?" + v.Encode()
	}
	cases := []struct {
		name string
		path string
		want string
	}{
		{"all, by created", provisioning.PathSubscribers, "a@acme.example,b@acme.example,c@acme.example,d@acme.example,e@acme.example,f@free.example"},
		{"customer", q("customerId", customerB), "b@acme.example,d@acme.example"},
		{"email, any case", q("email", "C@ACME.example"), "c@acme.example"},
		{"email and other customer", q("email", "c@acme.example", "customerId", customerB), ""},
		{"unknown email", q("email", "zz@acme.example"), ""},
		{"status", q("status", "pending_user_migration"), "f@free.example"},
		{"personId", q("personId", all[3].PersonID), "d@acme.example"},
		{"externalCustomerId", q("externalCustomerId", all[1].ExternalCustomerID), "b@acme.example,d@acme.example"},
		{"sub-partner ignored", q("onBehalfOfSubPartnerOrgId", "c3Vi", "customerId", customerB), "b@acme.example,d@acme.example"},
		{"offset", q("offset", "4"), "e@acme.example,f@free.example"},
		{"offset past the end", q("offset", "40"), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			items, next := listPage(t, h, tc.path)
			if got := emails(items); got != tc.want {
				t.Errorf("items = %s, want %s", got, tc.want)
			}
			if next != "" {
				t.Errorf("unexpected next link %q", next)
			}
		})
	}

	t.Run("paging by Link", func(t *testing.T) {
		var got []provisioning.Subscriber
		next := q("max", "2", "onBehalfOfSubPartnerOrgId", "c3Vi")
		pages := 0
		for next != "" {
			var items []provisioning.Subscriber
			items, next = listPage(t, h, next)
			got = append(got, items...)
			pages++
			if next != "" && !strings.Contains(next, "onBehalfOfSubPartnerOrgId=c3Vi") {
				t.Errorf("next link %q dropped a query parameter", next)
			}
		}
		if pages != 3 || emails(got) != emails(all) {
			t.Errorf("%d pages of %s, want 3 pages of %s", pages, emails(got), emails(all))
		}
	})

	for _, bad := range []string{q("max", "0"), q("max", "101"), q("max", "ten"), q("offset", "-1"), q("offset", "x")} {
		wantError(t, h.do(call{method: http.MethodGet, path: bad}), 400, 0)
	}
	if items, _ := listPage(t, h, q("max", "100")); len(items) != len(all) {
		t.Errorf("max=100 gave %d items", len(items))
	}
}

func TestUpdateAndDelete(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	meetings := provisionBody(customerA, "m@acme.example")
	meetings.Packages = []string{"webex_meetings"}
	meetings.ProvisioningParameters = provisioning.ProvisioningParameters{}
	res := h.do(call{method: http.MethodPost, path: provisioning.PathSubscribers, body: meetings})
	sub := res.subscriber(t)
	item := provisioning.PathSubscribers + "/" + sub.ID

	wantError(t, h.do(call{method: http.MethodPut, path: item, body: map[string]any{"packages": []string{"webex_calling"}}}), 400, 0)
	wantError(t, h.do(call{method: http.MethodPut, path: item, body: map[string]any{"package": "webex_suite", "packages": []string{"webex_suite"}}}), 400, 0)
	wantError(t, h.do(call{method: http.MethodPut, path: item, body: map[string]any{}}), 400, 0)
	wantError(t, h.do(call{method: http.MethodPut, path: item, body: "{}", contentType: strp("text/plain")}), 415, 0)
	wantError(t, h.do(call{method: http.MethodPut, path: provisioning.PathSubscribers + "/nope", body: map[string]any{"packages": []string{"webex_meetings"}}}), 404, 0)

	res = h.do(call{method: http.MethodPut, path: item, body: map[string]any{
		"packages":               []string{"webex_calling"},
		"provisioningParameters": map[string]string{"extension": "5221"},
	}})
	if got := res.subscriber(t); res.status != http.StatusOK || got.Package != "webex_calling" || got.Packages[0] != "webex_calling" || got.Status != provisioning.SubscriberProvisioned {
		t.Fatalf("PUT: status %d, body %s", res.status, res.body)
	}
	// From one calling package to another needs no number.
	res = h.do(call{method: http.MethodPut, path: item, body: map[string]any{"package": "webex_suite"}})
	if got := res.subscriber(t); res.status != http.StatusOK || got.Package != "webex_suite" {
		t.Fatalf("PUT package: status %d, body %s", res.status, res.body)
	}
	if got := h.do(call{method: http.MethodGet, path: item}).subscriber(t); got.Package != "webex_suite" {
		t.Errorf("GET after PUT: package %q", got.Package)
	}

	res = h.do(call{method: http.MethodDelete, path: item})
	if res.status != http.StatusNoContent || len(res.body) != 0 {
		t.Fatalf("DELETE: status %d, body %q", res.status, res.body)
	}
	wantError(t, h.do(call{method: http.MethodGet, path: item}), 404, 0)
	wantError(t, h.do(call{method: http.MethodDelete, path: item}), 404, 0)

	// Once removed, the email can be provisioned again.
	h.mustCreate(customerA, "m@acme.example")
	if got := h.sim.SuccessfulCreates("m@acme.example"); got != 2 {
		t.Errorf("SuccessfulCreates = %d, want 2", got)
	}
	if got := h.sim.MaxSuccessfulCreates(); got != 2 {
		t.Errorf("MaxSuccessfulCreates = %d, want 2", got)
	}
}

func TestMethodsAndPaths(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	sub := h.mustCreate(customerA, "a@acme.example")
	for _, c := range []struct{ method, path, allow string }{
		{http.MethodPatch, provisioning.PathSubscribers, "GET, POST"},
		{http.MethodDelete, provisioning.PathSubscribers, "GET, POST"},
		{http.MethodGet, provisioning.PathValidate, "POST"},
		{http.MethodPut, provisioning.PathValidate, "POST"},
		{http.MethodPost, provisioning.PathSubscribers + "/" + sub.ID, "GET, PUT, DELETE"},
		{http.MethodPatch, provisioning.PathSubscribers + "/" + sub.ID, "GET, PUT, DELETE"},
		{http.MethodGet, "/subscribers/" + sub.ID + "/emails/consentMove", "POST"},
		{http.MethodPut, "/subscribers/" + sub.ID + "/emails/consentMove", "POST"},
	} {
		res := h.do(call{method: c.method, path: c.path, body: "{}"})
		wantError(t, res, http.StatusMethodNotAllowed, 0)
		if got := res.header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow = %q, want %q", c.method, c.path, got, c.allow)
		}
	}
	for _, path := range []string{
		"/wholesale/subPartners", // in Cisco's description, not simulated
		provisioning.PathSubscribers + "/",
		provisioning.PathSubscribers + "/a/b",
		h.srv.URL + "/v2" + provisioning.PathSubscribers,
		h.srv.URL + provisioning.PathSubscribers,
		"/subscribers/" + sub.ID,
		"/subscribers/" + sub.ID + "/emails",
		"/subscribers//emails/consentMove",
		"/subscribers/a/b/emails/consentMove",
		provisioning.PathSubscribers + "/" + sub.ID + "/emails/consentMove",
		h.srv.URL + "/subscribers/" + sub.ID + "/emails/consentMove",
	} {
		wantError(t, h.do(call{method: http.MethodGet, path: path}), http.StatusNotFound, 0)
	}
}

func TestTrackingID(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	res := h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers + "/nope", header: map[string]string{"TrackingID": "ACME_1234"}})
	if eb := wantError(t, res, 404, 0); eb.TrackingID != "ACME_1234" {
		t.Errorf("trackingId = %q, want the request's ACME_1234", eb.TrackingID)
	}
	if got := res.header.Get("TrackingID"); got != "ACME_1234" {
		t.Errorf("TrackingID header = %q", got)
	}
	a := wantError(t, h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers + "/nope"}), 404, 0)
	b := wantError(t, h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers + "/nope"}), 404, 0)
	if a.TrackingID == b.TrackingID {
		t.Errorf("generated tracking ids repeat: %q", a.TrackingID)
	}
}

func TestBasePath(t *testing.T) {
	h := newHarness(t, webexsim.Config{BasePath: "/webex/v1"})
	if !strings.HasSuffix(h.base, "/webex/v1") {
		t.Fatalf("base URL %q", h.base)
	}
	sub := h.mustCreate(customerA, "a@acme.example")
	if res := h.create(customerA, "b@acme.example"); !strings.HasPrefix(res.header.Get("Location"), h.base+"/") {
		t.Errorf("Location %q is not under %s", res.header.Get("Location"), h.base)
	}
	if res := h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers + "/" + sub.ID}); res.status != 200 {
		t.Errorf("GET under the base path: %d", res.status)
	}
	wantError(t, h.do(call{method: http.MethodGet, path: h.srv.URL + "/v1" + provisioning.PathSubscribers}), 404, 0)
}

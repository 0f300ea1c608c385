package webexsim_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// openAPIPath finds Cisco's OpenAPI description, which is not part of this
// repository: $WEBEX_OPENAPI, else the shared copy beside the checkout.
func openAPIPath(t *testing.T) string {
	t.Helper()
	candidates := []string{
		os.Getenv("WEBEX_OPENAPI"),
		filepath.Join("..", "..", "..", "shared", "webex-api", "webex-wholesale.openapi.json"),
	}
	for _, p := range candidates {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("Cisco's OpenAPI description not found: set WEBEX_OPENAPI to webex-wholesale.openapi.json")
	return ""
}

// openAPIDoc is Cisco's OpenAPI description, loaded to check answers against.
type openAPIDoc struct {
	paths map[string]map[string]struct {
		Responses map[string]json.RawMessage `json:"responses"`
	}
	compiler *jsonschema.Compiler
	errItem  *jsonschema.Schema
}

const openAPISpecURL = "file:///webex-wholesale.openapi.json"

// loadOpenAPI loads the description, or skips the test without it.
func loadOpenAPI(t *testing.T) *openAPIDoc {
	t.Helper()
	path := openAPIPath(t)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := &openAPIDoc{}
	var spec struct {
		Paths map[string]map[string]struct {
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatalf("decoding %s: %v", path, err)
	}
	d.paths = spec.Paths
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	d.compiler = jsonschema.NewCompiler()
	d.compiler.DefaultDraft(jsonschema.Draft4) // OpenAPI 3.0 schemas are closest to draft 4
	if err := d.compiler.AddResource(openAPISpecURL, doc); err != nil {
		t.Fatal(err)
	}
	d.errItem = d.schema(t, "Error")
	return d
}

// schema compiles one of the description's component schemas.
func (d *openAPIDoc) schema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	sch, err := d.compiler.Compile(openAPISpecURL + "#/components/schemas/" + name)
	if err != nil {
		t.Fatalf("compiling schema %s: %v", name, err)
	}
	return sch
}

// check checks that the operation and the answer's status are documented and,
// when sch is not nil, that the body validates against it.
func (d *openAPIDoc) check(t *testing.T, template, method string, res result, sch *jsonschema.Schema) {
	t.Helper()
	op, ok := d.paths[template][method]
	if !ok {
		t.Errorf("%s %s is not in the OpenAPI description", method, template)
		return
	}
	if _, ok := op.Responses[strconv.Itoa(res.status)]; !ok {
		t.Errorf("%s %s: status %d is not documented", method, template, res.status)
	}
	if sch == nil {
		return
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(res.body))
	if err != nil {
		t.Fatalf("%s %s: body %s: %v", method, template, res.body, err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("%s %s: body %s does not conform: %v", method, template, res.body, err)
	}
}

// checkErr checks an error answer: its status is documented and its errors
// items are Error objects.
func (d *openAPIDoc) checkErr(t *testing.T, template, method string, res result) {
	t.Helper()
	d.check(t, template, method, res, nil)
	for _, e := range res.errorBody(t).Errors {
		b, _ := json.Marshal(e)
		inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err := d.errItem.Validate(inst); err != nil {
			t.Errorf("%s %s: error item %s does not conform: %v", method, template, b, err)
		}
	}
}

// TestOpenAPIConformance checks the simulator's default answers against
// Cisco's OpenAPI description: each path, method and status is documented, and
// each success body validates against its schema.
func TestOpenAPIConformance(t *testing.T) {
	doc := loadOpenAPI(t)
	subscriber, list, precheck := doc.schema(t, "Subscriber"), doc.schema(t, "SubscriberListResponse"),
		doc.schema(t, "SubscriberProvisioningPrecheckResponse")

	// Guard against a validation that passes everything.
	bogus, _ := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(`{"id":"x","status":"bogus"}`)))
	if subscriber.Validate(bogus) == nil {
		t.Fatal("the Subscriber schema accepts an unknown status: validation is not working")
	}

	h := newHarness(t, webexsim.Config{})
	check := func(template, method string, res result, sch *jsonschema.Schema) {
		t.Helper()
		doc.check(t, template, method, res, sch)
	}
	const (
		collection = "/wholesale/subscribers"
		item       = "/wholesale/subscribers/{subscriberId}"
		validate   = "/wholesale/subscribers/validate"
		consent    = "/subscribers/{subscriberId}/emails/consentMove"
	)

	res := h.do(call{method: http.MethodPost, path: provisioning.PathValidate, body: provisioning.PrecheckRequest{Email: "a@acme.example"}})
	check(validate, "post", res, precheck)

	res = h.create(customerA, "a@acme.example")
	check(collection, "post", res, subscriber)
	sub := res.subscriber(t)
	check(collection, "post", h.create(customerA, "p@free.example"), subscriber) // 202

	check(item, "get", h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers + "/" + sub.ID}), subscriber)

	// Every package, named through packages and, for the legacy ones, through the
	// deprecated package field: Subscriber.package only takes the legacy ones, so
	// a contact-center package must not be mirrored into it.
	for i, pkg := range []string{"webex_calling", "webex_meetings", "webex_suite", "webex_voice", "cx_essentials",
		"webex_calling_standard", "cx_premium_agent", "cx_standard_agent"} {
		req := provisionBody(customerA, "pkg"+strconv.Itoa(i)+"@acme.example")
		req.Packages = []string{pkg}
		check(collection, "post", h.do(call{method: http.MethodPost, path: provisioning.PathSubscribers, body: req}), subscriber)
	}
	for i, pkg := range []string{"webex_calling", "webex_meetings", "webex_suite", "webex_voice", "cx_essentials", "webex_calling_standard"} {
		req := provisionBody(customerA, "legacy"+strconv.Itoa(i)+"@acme.example")
		req.Packages, req.Package = nil, pkg
		check(collection, "post", h.do(call{method: http.MethodPost, path: provisioning.PathSubscribers, body: req}), subscriber)
	}
	attendant := provisionBody(customerA, "attendant@acme.example")
	attendant.Packages = []string{"webex_calling", "attendant_console"}
	check(collection, "post", h.do(call{method: http.MethodPost, path: provisioning.PathSubscribers, body: attendant}), subscriber)
	check(collection, "get", h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers}), list)
	check(collection, "get", h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers + "?max=1"}), list)
	check(item, "put", h.do(call{method: http.MethodPut, path: provisioning.PathSubscribers + "/" + sub.ID,
		body: map[string]any{"packages": []string{"webex_suite"}}}), subscriber)

	// Error answers: the status is documented and the errors items are Error objects.
	checkErr := func(template, method string, res result) {
		t.Helper()
		doc.checkErr(t, template, method, res)
	}
	checkErr(collection, "post", h.create(customerB, "a@acme.example"))
	checkErr(validate, "post", h.do(call{method: http.MethodPost, path: provisioning.PathValidate, body: provisioning.PrecheckRequest{Email: "a@acme.example"}}))
	checkErr(item, "get", h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers + "/nope"}))
	checkErr(collection, "get", h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers + "?max=500"}))
	checkErr(collection, "get", h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers, token: strp("bad")}))
	checkErr(collection, "post", h.do(call{method: http.MethodPost, path: provisioning.PathSubscribers, body: "{}", contentType: strp("text/plain")}))

	// The consent move: 204 for the pending subscriber, 409 for a provisioned
	// one, 404 for none; a PUT on a subscriber still updating is 409.
	pending := h.create(customerA, "p2@free.example").subscriber(t)
	res = h.do(call{method: http.MethodPost, path: "/subscribers/" + pending.ID + "/emails/consentMove"})
	if res.status != http.StatusNoContent {
		t.Errorf("consentMove of a pending subscriber: status %d", res.status)
	}
	check(consent, "post", res, nil)
	checkErr(consent, "post", h.do(call{method: http.MethodPost, path: "/subscribers/" + sub.ID + "/emails/consentMove"}))
	checkErr(consent, "post", h.do(call{method: http.MethodPost, path: "/subscribers/nope/emails/consentMove"}))
	checkErr(item, "put", h.do(call{method: http.MethodPut, path: provisioning.PathSubscribers + "/nope",
		body: map[string]any{"packages": []string{"webex_suite"}}}))
	slow := newHarness(t, webexsim.Config{UpdateDelay: time.Minute})
	busy := slow.mustCreate(customerA, "busy@acme.example")
	slow.do(call{method: http.MethodPut, path: provisioning.PathSubscribers + "/" + busy.ID, body: map[string]any{"packages": []string{"webex_suite"}}})
	res = slow.do(call{method: http.MethodPut, path: provisioning.PathSubscribers + "/" + busy.ID, body: map[string]any{"packages": []string{"webex_voice"}}})
	if res.status != http.StatusConflict {
		t.Errorf("PUT while updating: status %d, want 409", res.status)
	}
	checkErr(item, "put", res)

	res = h.do(call{method: http.MethodDelete, path: provisioning.PathSubscribers + "/" + sub.ID})
	check(item, "delete", res, nil)
	checkErr(item, "delete", h.do(call{method: http.MethodDelete, path: provisioning.PathSubscribers + "/" + sub.ID}))
	for _, q := range []string{"?after=1579046400245", "?lastStatusChange=2020-01-15T00:00:00.245Z", "?sortBy=lastStatusChange&sortOrder=DESC"} {
		check(collection, "get", h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers + q}), list)
	}
	checkErr(collection, "get", h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers + "?lastStatusChange=soon"}))

	for _, f := range []webexsim.FaultRates{{Status429: 1}, {Status423: 1}, {Status500: 1}, {Status502: 1}, {Status503: 1}, {Status504: 1}} {
		h.sim.SetFaults(f)
		checkErr(collection, "get", h.do(call{method: http.MethodGet, path: provisioning.PathSubscribers}))
	}
}

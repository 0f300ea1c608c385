package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// exampleSchemas maps the name prefix of an example document to its schema.
var exampleSchemas = []struct {
	prefix string
	schema *jsonschema.Schema
}{
	{"subscriber-order", orderSchema},
	{"subscriber-outcome", outcomeSchema},
	{"dead-letter", deadLetterSchema},
	{"customer-order", customerOrderSchema},
	{"customer-outcome", customerOutcomeSchema},
}

func readExample(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("examples", name))
	if err != nil {
		t.Fatalf("reading example: %v", err)
	}
	return data
}

// parseGeneric parses JSON the way the validator expects it, numbers as json.Number.
func parseGeneric(t *testing.T, data []byte) any {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parsing JSON: %v", err)
	}
	return doc
}

// decodeStrict decodes data into v, rejecting fields v does not have.
func decodeStrict(t *testing.T, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding into %T: %v", v, err)
	}
}

// assertRoundTrip checks that v marshals back to the same JSON document as original.
func assertRoundTrip(t *testing.T, original []byte, v any) {
	t.Helper()
	again, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshalling %T: %v", v, err)
	}
	if want, got := parseGeneric(t, original), parseGeneric(t, again); !reflect.DeepEqual(want, got) {
		t.Errorf("round trip through %T changed the document:\nwant %s\ngot  %s", v, original, again)
	}
}

func TestExamples(t *testing.T) {
	entries, err := os.ReadDir("examples")
	if err != nil {
		t.Fatalf("reading examples: %v", err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	for _, want := range []string{
		"subscriber-order.v1.json", "subscriber-order-meetings.v1.json", "subscriber-order-new-customer.v1.json",
		"subscriber-outcome.v1.json", "subscriber-outcome-failed.v1.json", "dead-letter.v1.json",
		"subscriber-order-customer-external-id.v1.json", "customer-order.v1.json", "customer-order-existing-org.v1.json",
		"customer-order-remove.v1.json", "customer-outcome.v1.json", "customer-outcome-failed.v1.json",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("example %s is missing", want)
		}
	}

	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			data := readExample(t, name)
			idx := slices.IndexFunc(exampleSchemas, func(s struct {
				prefix string
				schema *jsonschema.Schema
			}) bool {
				return strings.HasPrefix(name, s.prefix)
			})
			if idx < 0 {
				t.Fatalf("no schema for example %s", name)
			}
			if err := exampleSchemas[idx].schema.Validate(parseGeneric(t, data)); err != nil {
				t.Fatalf("example does not follow its schema: %v", err)
			}

			switch exampleSchemas[idx].prefix {
			case "subscriber-order":
				o, err := DecodeOrder(data)
				if err != nil {
					t.Fatalf("DecodeOrder: %v", err)
				}
				assertRoundTrip(t, data, o)
			case "subscriber-outcome":
				var o Outcome
				decodeStrict(t, data, &o)
				if err := ValidateOutcome(o); err != nil {
					t.Errorf("ValidateOutcome: %v", err)
				}
				assertRoundTrip(t, data, o)
			case "dead-letter":
				var d DeadLetter
				decodeStrict(t, data, &d)
				if err := ValidateDeadLetter(d); err != nil {
					t.Errorf("ValidateDeadLetter: %v", err)
				}
				assertRoundTrip(t, data, d)
			case "customer-order":
				o, err := DecodeCustomerOrder(data)
				if err != nil {
					t.Fatalf("DecodeCustomerOrder: %v", err)
				}
				assertRoundTrip(t, data, o)
			case "customer-outcome":
				var o CustomerOutcome
				decodeStrict(t, data, &o)
				if err := ValidateCustomerOutcome(o); err != nil {
					t.Errorf("ValidateCustomerOutcome: %v", err)
				}
				assertRoundTrip(t, data, o)
			}
		})
	}
}

func TestDecodeOrderExample(t *testing.T) {
	o, err := DecodeOrder(readExample(t, "subscriber-order.v1.json"))
	if err != nil {
		t.Fatalf("DecodeOrder: %v", err)
	}
	want := Order{
		SchemaVersion: 1,
		OrderID:       "ord-2026-000123",
		Action:        ActionProvision,
		OccurredAt:    time.Date(2026, 5, 4, 9, 15, 27, 512e6, time.UTC),
		CustomerID:    "Y2lzY29zcGFyazovL3VzL0NVU1RPTUVSL2Y1YjM2MTg3LWM4ZGQtNDcyNy04YjJmLWY5YzQ0N2YyOTA0Ng",
		Email:         "john.andersen@example.com",
		Packages:      []string{"webex_calling"},
		ProvisioningParameters: &ProvisioningParameters{
			FirstName:          "John",
			LastName:           "Andersen",
			PrimaryPhoneNumber: "+12405551212",
			Extension:          "51212",
			LocationID:         "Y2lzY29zcGFyazovL3VzL0xPQ0FUSU9OLzAxMjM0NTY3LTg5YWItY2RlZi0wMTIzLTQ1Njc4OWFiY2RlZg",
		},
	}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("DecodeOrder:\ngot  %+v\nwant %+v", o, want)
	}
	if got := o.Package(); got != PackageWebexCalling {
		t.Errorf("Package() = %q, want %q", got, PackageWebexCalling)
	}

	o, err = DecodeOrder(readExample(t, "subscriber-order-new-customer.v1.json"))
	if err != nil {
		t.Fatalf("DecodeOrder: %v", err)
	}
	if o.CustomerInfo == nil || o.CustomerInfo.PrimaryEmail != "it-admin@example.org" || o.ProvisioningID == "" {
		t.Errorf("customerInfo or provisioningId lost: %+v", o)
	}
}

// validOrder returns a valid calling order as a generic document, for tests to break.
func validOrder() map[string]any {
	return map[string]any{
		"schemaVersion": 1,
		"orderId":       "ord-1",
		"action":        "provision",
		"occurredAt":    "2026-05-04T09:15:27Z",
		"customerId":    "cust-1",
		"email":         "john.andersen@example.com",
		"packages":      []any{"webex_calling"},
		"provisioningParameters": map[string]any{
			"firstName":          "John",
			"primaryPhoneNumber": "+12405551212",
		},
	}
}

// orderJSON marshals validOrder after change has modified it.
func orderJSON(t *testing.T, change func(m map[string]any)) []byte {
	t.Helper()
	m := validOrder()
	change(m)
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("marshalling order: %v", err)
	}
	return data
}

func params(m map[string]any) map[string]any { return m["provisioningParameters"].(map[string]any) }

func TestDecodeOrderValid(t *testing.T) {
	cases := []struct {
		name   string
		change func(m map[string]any)
	}{
		{"calling with phone", func(m map[string]any) {}},
		{"calling with extension only", func(m map[string]any) {
			delete(params(m), "primaryPhoneNumber")
			params(m)["extension"] = "1234"
		}},
		{"meetings without phone or extension", func(m map[string]any) {
			m["packages"] = []any{"webex_meetings"}
			delete(params(m), "primaryPhoneNumber")
		}},
		{"meetings with empty provisioning parameters", func(m map[string]any) {
			m["packages"] = []any{"webex_meetings"}
			m["provisioningParameters"] = map[string]any{}
		}},
		{"remove without provisioning parameters", func(m map[string]any) {
			m["action"] = "remove"
			delete(m, "provisioningParameters")
		}},
		{"customer info", func(m map[string]any) {
			m["customerInfo"] = map[string]any{"primaryEmail": "admin@example.org"}
			m["provisioningId"] = "tmpl-1"
		}},
		{"offset timestamp", func(m map[string]any) { m["occurredAt"] = "2026-05-04T11:15:27.123456789+02:00" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeOrder(orderJSON(t, tc.change)); err != nil {
				t.Errorf("DecodeOrder: %v", err)
			}
		})
	}
}

func TestDecodeOrderInvalid(t *testing.T) {
	const email = "john.andersen@example.com"
	cases := []struct {
		name     string
		value    []byte
		reason   string
		mentions []string // substrings Detail must contain
		hides    []string // substrings Detail must not contain
		orderID  string
	}{
		{
			name:   "nil is a tombstone",
			value:  nil,
			reason: ReasonTombstone,
		},
		{
			name:   "empty value",
			value:  []byte{},
			reason: ReasonEmptyValue,
		},
		{
			name:     "not UTF-8",
			value:    []byte("{\"orderId\":\"ord-1\",\"email\":\"\xff\xfe\"}"),
			reason:   ReasonInvalidEncoding,
			mentions: []string{"UTF-8", "0xff", "offset 28"},
		},
		{
			name:     "not JSON",
			value:    []byte(`{"orderId": "ord-1", `),
			reason:   ReasonInvalidJSON,
			mentions: []string{"unexpected end"},
		},
		{
			name:     "syntax error",
			value:    []byte(`{"orderId" "ord-1"}`),
			reason:   ReasonInvalidJSON,
			mentions: []string{"byte 12", "invalid character"},
		},
		{
			name:     "white space only",
			value:    []byte(" \n\t"),
			reason:   ReasonInvalidJSON,
			mentions: []string{"no JSON value"},
		},
		{
			name:     "trailing garbage",
			value:    append(orderJSON(t, func(map[string]any) {}), " x"...),
			reason:   ReasonInvalidJSON,
			mentions: []string{"after the top-level JSON value"},
			orderID:  "ord-1",
		},
		{
			name:     "two documents",
			value:    append(orderJSON(t, func(map[string]any) {}), `{}`...),
			reason:   ReasonInvalidJSON,
			mentions: []string{"after the top-level JSON value"},
			orderID:  "ord-1",
		},
		{
			name:     "schemaVersion 2",
			value:    orderJSON(t, func(m map[string]any) { m["schemaVersion"] = 2; m["newField"] = true }),
			reason:   ReasonUnsupportedSchemaVersion,
			mentions: []string{"/schemaVersion", "version 2 is not supported"},
			orderID:  "ord-1",
		},
		{
			name:     "schemaVersion 1.5",
			value:    orderJSON(t, func(m map[string]any) { m["schemaVersion"] = 1.5 }),
			reason:   ReasonUnsupportedSchemaVersion,
			mentions: []string{"/schemaVersion", "1.5"},
			orderID:  "ord-1",
		},
		{
			name:     "schemaVersion missing",
			value:    orderJSON(t, func(m map[string]any) { delete(m, "schemaVersion") }),
			reason:   ReasonSchemaViolation,
			mentions: []string{"/schemaVersion: is required"},
			orderID:  "ord-1",
		},
		{
			name:     "schemaVersion as a string",
			value:    orderJSON(t, func(m map[string]any) { m["schemaVersion"] = "1" }),
			reason:   ReasonSchemaViolation,
			mentions: []string{"/schemaVersion: got string, want integer"},
			orderID:  "ord-1",
		},
		{
			name:     "missing orderId",
			value:    orderJSON(t, func(m map[string]any) { delete(m, "orderId") }),
			reason:   ReasonSchemaViolation,
			mentions: []string{"/orderId: is required"},
		},
		{
			name:     "orderId with unsafe characters",
			value:    orderJSON(t, func(m map[string]any) { m["orderId"] = "ord 1/2" }),
			reason:   ReasonSchemaViolation,
			mentions: []string{"/orderId", `"ord 1/2" does not match`},
			orderID:  "ord 1/2",
		},
		{
			name:     "orderId of the wrong type",
			value:    orderJSON(t, func(m map[string]any) { m["orderId"] = 17 }),
			reason:   ReasonSchemaViolation,
			mentions: []string{"/orderId: got number, want string"},
		},
		{
			name:     "missing email",
			value:    orderJSON(t, func(m map[string]any) { delete(m, "email") }),
			reason:   ReasonSchemaViolation,
			mentions: []string{"/email: is required"},
			orderID:  "ord-1",
		},
		{
			name:     "email without @",
			value:    orderJSON(t, func(m map[string]any) { m["email"] = "not-an-email" }),
			reason:   ReasonSchemaViolation,
			mentions: []string{`/email: "n***" is not a valid email`},
			hides:    []string{"not-an-email"},
			orderID:  "ord-1",
		},
		{
			name:     "email with consecutive dots",
			value:    orderJSON(t, func(m map[string]any) { m["email"] = "john..andersen@example.com" }),
			reason:   ReasonSchemaViolation,
			mentions: []string{`/email: "j***@example.com" is not a valid email`},
			hides:    []string{"john..andersen"},
			orderID:  "ord-1",
		},
		{
			name: "customer email invalid",
			value: orderJSON(t, func(m map[string]any) {
				m["customerInfo"] = map[string]any{"primaryEmail": "admin at example.org"}
			}),
			reason:   ReasonSchemaViolation,
			mentions: []string{`/customerInfo/primaryEmail: "a***" is not a valid email`},
			hides:    []string{"admin at example.org"},
			orderID:  "ord-1",
		},
		{
			name:     "customer info without primaryEmail",
			value:    orderJSON(t, func(m map[string]any) { m["customerInfo"] = map[string]any{} }),
			reason:   ReasonSchemaViolation,
			mentions: []string{"/customerInfo/primaryEmail: is required"},
			orderID:  "ord-1",
		},
		{
			name:     "unknown package",
			value:    orderJSON(t, func(m map[string]any) { m["packages"] = []any{"webex_fax"} }),
			reason:   ReasonSchemaViolation,
			mentions: []string{`/packages/0: "webex_fax" is not one of`},
			orderID:  "ord-1",
		},
		{
			name:     "two packages",
			value:    orderJSON(t, func(m map[string]any) { m["packages"] = []any{"webex_calling", "webex_meetings"} }),
			reason:   ReasonSchemaViolation,
			mentions: []string{"/packages: maxItems"},
			orderID:  "ord-1",
		},
		{
			name:     "no package",
			value:    orderJSON(t, func(m map[string]any) { m["packages"] = []any{} }),
			reason:   ReasonSchemaViolation,
			mentions: []string{"/packages: minItems"},
			orderID:  "ord-1",
		},
		{
			name:     "packages of the wrong type",
			value:    orderJSON(t, func(m map[string]any) { m["packages"] = "webex_calling" }),
			reason:   ReasonSchemaViolation,
			mentions: []string{"/packages: got string, want array"},
			orderID:  "ord-1",
		},
		{
			name:     "calling package without phone or extension",
			value:    orderJSON(t, func(m map[string]any) { delete(params(m), "primaryPhoneNumber") }),
			reason:   ReasonSchemaViolation,
			mentions: []string{`/provisioningParameters: needs at least one of "primaryPhoneNumber", "extension"`},
			orderID:  "ord-1",
		},
		{
			name:     "provision without provisioning parameters",
			value:    orderJSON(t, func(m map[string]any) { delete(m, "provisioningParameters") }),
			reason:   ReasonSchemaViolation,
			mentions: []string{"/provisioningParameters: is required"},
			orderID:  "ord-1",
		},
		{
			name:     "phone number malformed",
			value:    orderJSON(t, func(m map[string]any) { params(m)["primaryPhoneNumber"] = "+1 240 555 1212" }),
			reason:   ReasonSchemaViolation,
			mentions: []string{`/provisioningParameters/primaryPhoneNumber: "+***12" does not match`},
			hides:    []string{"240 555"},
			orderID:  "ord-1",
		},
		{
			name:     "extension malformed",
			value:    orderJSON(t, func(m map[string]any) { params(m)["extension"] = "x12" }),
			reason:   ReasonSchemaViolation,
			mentions: []string{`/provisioningParameters/extension: "***" does not match`},
			orderID:  "ord-1",
		},
		{
			name:     "unknown field",
			value:    orderJSON(t, func(m map[string]any) { m["priority"] = "high" }),
			reason:   ReasonSchemaViolation,
			mentions: []string{"/priority: unknown property"},
			orderID:  "ord-1",
		},
		{
			name:     "unknown provisioning parameter",
			value:    orderJSON(t, func(m map[string]any) { params(m)["middleName"] = "Q" }),
			reason:   ReasonSchemaViolation,
			mentions: []string{"/provisioningParameters/middleName: unknown property"},
			orderID:  "ord-1",
		},
		{
			name:     "unknown action",
			value:    orderJSON(t, func(m map[string]any) { m["action"] = "suspend" }),
			reason:   ReasonSchemaViolation,
			mentions: []string{`/action: "suspend" is not one of "provision", "update", "remove"`},
			orderID:  "ord-1",
		},
		{
			name:     "occurredAt not a date-time",
			value:    orderJSON(t, func(m map[string]any) { m["occurredAt"] = "yesterday" }),
			reason:   ReasonSchemaViolation,
			mentions: []string{`/occurredAt: "yesterday" is not a valid date-time`},
			orderID:  "ord-1",
		},
		{
			// Go's time parser rejects what RFC 3339 allows here, so the schema does too.
			name:     "occurredAt with lower-case t",
			value:    orderJSON(t, func(m map[string]any) { m["occurredAt"] = "2026-05-04t09:15:27z" }),
			reason:   ReasonSchemaViolation,
			mentions: []string{"/occurredAt"},
			orderID:  "ord-1",
		},
		{
			name:     "occurredAt on a leap second",
			value:    orderJSON(t, func(m map[string]any) { m["occurredAt"] = "2016-12-31T23:59:60Z" }),
			reason:   ReasonSchemaViolation,
			mentions: []string{"/occurredAt"},
			orderID:  "ord-1",
		},
		{
			name:     "customerId empty",
			value:    orderJSON(t, func(m map[string]any) { m["customerId"] = "" }),
			reason:   ReasonSchemaViolation,
			mentions: []string{"/customerId: minLength"},
			orderID:  "ord-1",
		},
		{
			name:     "not an object",
			value:    []byte(`["ord-1"]`),
			reason:   ReasonSchemaViolation,
			mentions: []string{"/: got array, want object"},
		},
		{
			name:     "null",
			value:    []byte(`null`),
			reason:   ReasonSchemaViolation,
			mentions: []string{"/: got null, want object"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeOrder(tc.value)
			var inv *InvalidOrderError
			if !errors.As(err, &inv) {
				t.Fatalf("DecodeOrder error = %v (%T), want *InvalidOrderError", err, err)
			}
			if inv.Reason != tc.reason {
				t.Errorf("Reason = %q, want %q (Detail %q)", inv.Reason, tc.reason, inv.Detail)
			}
			if inv.Detail == "" {
				t.Error("Detail is empty")
			}
			for _, s := range tc.mentions {
				if !strings.Contains(inv.Detail, s) {
					t.Errorf("Detail %q does not mention %q", inv.Detail, s)
				}
			}
			for _, s := range append(tc.hides, email) {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q reveals %q", err, s)
				}
			}
			if inv.OrderID != tc.orderID {
				t.Errorf("OrderID = %q, want %q", inv.OrderID, tc.orderID)
			}
		})
	}
}

func TestDecodeOrderDetailIsBounded(t *testing.T) {
	value := []byte(`{"schemaVersion":1,"orderId":"` + strings.Repeat("x", 500) + `!","a":1,"b":2,"c":3,"d":4,"e":5,"f":6}`)
	_, err := DecodeOrder(value)
	var inv *InvalidOrderError
	if !errors.As(err, &inv) {
		t.Fatalf("DecodeOrder error = %v, want *InvalidOrderError", err)
	}
	if n := strings.Count(inv.Detail, "; "); n != maxProblems {
		t.Errorf("Detail lists %d problems, want %d and a count of the rest: %q", n+1, maxProblems, inv.Detail)
	}
	if !strings.Contains(inv.Detail, " more") {
		t.Errorf("Detail %q does not count the problems left out", inv.Detail)
	}
	if strings.Contains(inv.Detail, strings.Repeat("x", maxShown+1)) {
		t.Errorf("Detail echoes a long value in full: %q", inv.Detail)
	}
	// The Detail is sorted, so it is the same on every run.
	_, again := DecodeOrder(value)
	if again.Error() != err.Error() {
		t.Errorf("Detail is not stable:\n%s\n%s", err, again)
	}
}

// TestDecodeOrderDetailListsTheUsefulFirst: past the cap, what is left out
// must be the details; the missing version and order id come first, before
// the formats of fields that sort before them by name.
func TestDecodeOrderDetailListsTheUsefulFirst(t *testing.T) {
	value := []byte(`{"action":"provision","occurredAt":"yesterday","customerId":"","email":"not-an-email",` +
		`"packages":["webex_teleportation"],"provisioningParameters":{"extension":"1","primaryPhoneNumber":"x"}}`)
	_, err := DecodeOrder(value)
	var inv *InvalidOrderError
	if !errors.As(err, &inv) {
		t.Fatalf("DecodeOrder error = %v, want *InvalidOrderError", err)
	}
	problems := strings.Split(inv.Detail, "; ")
	if len(problems) != maxProblems+1 || !strings.HasPrefix(problems[maxProblems], "and ") {
		t.Fatalf("Detail %q: want %d problems and a count of the rest", inv.Detail, maxProblems)
	}
	if problems[0] != "/schemaVersion: is required" || problems[1] != "/orderId: is required" {
		t.Errorf("Detail %q: want the missing schemaVersion, then the missing orderId, first", inv.Detail)
	}
}

// TestDecodeOrderEmailLengthNamesTheSchemasLimit: one source of truth for
// the longest email, the schema's maxLength.
func TestDecodeOrderEmailLengthNamesTheSchemasLimit(t *testing.T) {
	long := strings.Repeat("a", 60) + "@" + strings.Repeat("b", 250) + ".example"
	_, err := DecodeOrder(orderJSON(t, func(m map[string]any) { m["email"] = long }))
	var inv *InvalidOrderError
	if !errors.As(err, &inv) {
		t.Fatalf("DecodeOrder error = %v, want *InvalidOrderError", err)
	}
	if !strings.Contains(inv.Detail, "/email: maxLength: got 319, want 254") || strings.Contains(inv.Detail, "255") {
		t.Errorf("Detail %q: want the schema's limit of 254, and no other number", inv.Detail)
	}
	_, err = DecodeOrder(orderJSON(t, func(m map[string]any) { m["email"] = "no-at-sign.example" }))
	if !errors.As(err, &inv) || !strings.Contains(inv.Detail, "is not a valid email: missing @") {
		t.Errorf("err = %v: the library's other email rules still apply", err)
	}
}

func TestInvalidOrderErrorMessage(t *testing.T) {
	err := &InvalidOrderError{Reason: ReasonSchemaViolation, Detail: "/email: is required", OrderID: "ord-1"}
	if got, want := err.Error(), `invalid order "ord-1": schema_violation: /email: is required`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	err.OrderID = ""
	if got, want := err.Error(), `invalid order: schema_violation: /email: is required`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestDecodeOrderConcurrent(t *testing.T) {
	valid := readExample(t, "subscriber-order.v1.json")
	// Two packages as well, so that the library's own messages are formatted concurrently too.
	invalid := orderJSON(t, func(m map[string]any) {
		m["email"] = "nope"
		m["packages"] = []any{"webex_calling", "webex_meetings"}
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if _, err := DecodeOrder(valid); err != nil {
					t.Errorf("DecodeOrder(valid): %v", err)
					return
				}
				if _, err := DecodeOrder(invalid); err == nil {
					t.Error("DecodeOrder(invalid) succeeded")
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestPackage(t *testing.T) {
	if got := (Order{}).Package(); got != "" {
		t.Errorf("Package() of an order without packages = %q, want \"\"", got)
	}
	if got := (Order{Packages: []string{"webex_meetings", "webex_calling"}}).Package(); got != "webex_meetings" {
		t.Errorf("Package() = %q, want the first package", got)
	}
}

// schemaDoc returns an embedded schema as a generic document.
func schemaDoc(t *testing.T, file string) map[string]any {
	t.Helper()
	data, err := schemaFiles.ReadFile(file)
	if err != nil {
		t.Fatalf("reading schema: %v", err)
	}
	return parseGeneric(t, data).(map[string]any)
}

// lookup follows a path of property names through a generic document.
func lookup(t *testing.T, doc any, path ...string) any {
	t.Helper()
	for _, p := range path {
		m, ok := doc.(map[string]any)
		if !ok {
			t.Fatalf("lookup %v: %q is not in an object", path, p)
		}
		doc = m[p]
	}
	return doc
}

func enumStrings(t *testing.T, v any) []string {
	t.Helper()
	var out []string
	for _, e := range v.([]any) {
		out = append(out, e.(string))
	}
	slices.Sort(out)
	return out
}

// The Go side and the schema each list the packages; they must agree.
func TestPackagesAgreeWithSchema(t *testing.T) {
	order := schemaDoc(t, "subscriber-order.v1.schema.json")
	all := enumStrings(t, lookup(t, order, "$defs", "package", "enum"))
	want := []string{
		PackageWebexCalling, PackageWebexMeetings, PackageWebexSuite, PackageWebexVoice, PackageCXEssentials,
		PackageWebexCallingStandard, PackageAttendantConsole, PackageCXPremiumAgent, PackageCXStandardAgent,
	}
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Errorf("schema packages %v, Go constants %v", all, want)
	}
	calling := enumStrings(t, lookup(t, order, "$defs", "callingPackage", "enum"))
	var goCalling []string
	for _, p := range all {
		if IsCallingPackage(p) {
			goCalling = append(goCalling, p)
		}
	}
	if !slices.Equal(calling, goCalling) {
		t.Errorf("schema calling packages %v, IsCallingPackage accepts %v", calling, goCalling)
	}
	if IsCallingPackage("") || IsCallingPackage("webex_fax") {
		t.Error("IsCallingPackage accepts a package that does not exist")
	}
}

func TestFailureDefinitionsAgree(t *testing.T) {
	outcome := lookup(t, schemaDoc(t, "subscriber-outcome.v1.schema.json"), "$defs", "failure").(map[string]any)
	dead := lookup(t, schemaDoc(t, "dead-letter.v1.schema.json"), "$defs", "failure").(map[string]any)
	customer := lookup(t, schemaDoc(t, "customer-outcome.v1.schema.json"), "$defs", "failure").(map[string]any)
	// The descriptions may differ; the rules may not.
	delete(outcome, "description")
	delete(dead, "description")
	delete(customer, "description")
	if !reflect.DeepEqual(outcome, dead) {
		t.Error("the failure definitions of subscriber-outcome and dead-letter differ")
	}
	if !reflect.DeepEqual(outcome, customer) {
		t.Error("the failure definitions of subscriber-outcome and customer-outcome differ")
	}
}

// jsonNames returns the JSON names of the fields of a struct type.
func jsonNames(typ reflect.Type) []string {
	var names []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func propertyNames(t *testing.T, schema any) []string {
	t.Helper()
	var names []string
	for name := range lookup(t, schema, "properties").(map[string]any) {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Each Go type must have exactly the properties of its schema object, so that
// neither can gain a field the other does not know.
func TestTypesAgreeWithSchemas(t *testing.T) {
	order := schemaDoc(t, "subscriber-order.v1.schema.json")
	outcome := schemaDoc(t, "subscriber-outcome.v1.schema.json")
	dead := schemaDoc(t, "dead-letter.v1.schema.json")
	source := lookup(t, dead, "properties", "source")
	corder := schemaDoc(t, "customer-order.v1.schema.json")
	coutcome := schemaDoc(t, "customer-outcome.v1.schema.json")
	cases := []struct {
		typ    reflect.Type
		schema any
	}{
		{reflect.TypeFor[Order](), order},
		{reflect.TypeFor[ProvisioningParameters](), lookup(t, order, "properties", "provisioningParameters")},
		{reflect.TypeFor[CustomerInfo](), lookup(t, order, "properties", "customerInfo")},
		{reflect.TypeFor[Outcome](), outcome},
		{reflect.TypeFor[SubscriberRef](), lookup(t, outcome, "properties", "subscriber")},
		{reflect.TypeFor[Failure](), lookup(t, outcome, "$defs", "failure")},
		{reflect.TypeFor[APIError](), lookup(t, outcome, "$defs", "failure", "properties", "errors", "items")},
		{reflect.TypeFor[DeadLetter](), dead},
		{reflect.TypeFor[Source](), source},
		{reflect.TypeFor[Header](), lookup(t, source, "properties", "headers", "items")},
		{reflect.TypeFor[Bytes](), lookup(t, dead, "$defs", "bytes")},
		{reflect.TypeFor[CustomerOrder](), corder},
		{reflect.TypeFor[Address](), lookup(t, corder, "properties", "address")},
		{reflect.TypeFor[NewCustomerInfo](), lookup(t, corder, "properties", "customerInfo")},
		{reflect.TypeFor[CustomerProvisioningParameters](), lookup(t, corder, "properties", "provisioningParameters")},
		{reflect.TypeFor[CallingParameters](), lookup(t, corder, "properties", "provisioningParameters", "properties", "calling")},
		{reflect.TypeFor[CallingLocation](), lookup(t, corder, "properties", "provisioningParameters", "properties", "calling", "properties", "location")},
		{reflect.TypeFor[Address](), lookup(t, corder, "properties", "provisioningParameters", "properties", "calling", "properties", "location", "properties", "address")},
		{reflect.TypeFor[MeetingsParameters](), lookup(t, corder, "properties", "provisioningParameters", "properties", "meetings")},
		{reflect.TypeFor[PackageLimits](), lookup(t, corder, "properties", "provisioningParameters", "properties", "packages")},
		{reflect.TypeFor[CustomerOutcome](), coutcome},
		{reflect.TypeFor[CustomerRef](), lookup(t, coutcome, "properties", "customer")},
		{reflect.TypeFor[PackageDetail](), lookup(t, coutcome, "properties", "customer", "properties", "packageDetails", "items")},
		{reflect.TypeFor[Precheck](), lookup(t, coutcome, "properties", "precheck")},
	}
	for _, tc := range cases {
		if got, want := jsonNames(tc.typ), propertyNames(t, tc.schema); !slices.Equal(got, want) {
			t.Errorf("%s has JSON fields %v, its schema has properties %v", tc.typ, got, want)
		}
		if ap, ok := lookup(t, tc.schema, "additionalProperties").(bool); !ok || ap {
			t.Errorf("the schema of %s does not set additionalProperties to false", tc.typ)
		}
	}
}

func TestSchemaIDs(t *testing.T) {
	for file, id := range map[string]string{
		"subscriber-order.v1.schema.json":   OrderSchemaID,
		"subscriber-outcome.v1.schema.json": OutcomeSchemaID,
		"dead-letter.v1.schema.json":        DeadLetterSchemaID,
		"customer-order.v1.schema.json":     CustomerOrderSchemaID,
		"customer-outcome.v1.schema.json":   CustomerOutcomeSchemaID,
	} {
		doc := schemaDoc(t, file)
		if doc["$id"] != id {
			t.Errorf("%s: $id %v, want %s", file, doc["$id"], id)
		}
		if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema %v, want draft 2020-12", file, doc["$schema"])
		}
		if doc["title"] == nil || doc["description"] == nil {
			t.Errorf("%s: title or description missing", file)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func validOutcome() Outcome {
	occurred := time.Date(2026, 5, 4, 9, 15, 27, 0, time.UTC)
	return Outcome{
		SchemaVersion:   OutcomeSchemaVersion,
		EventID:         "6f1c2a4e-9b7d-5c3e-8a21-4d0f6b9e7c15",
		OrderID:         "ord-1",
		Action:          ActionProvision,
		Status:          StatusProvisioned,
		CustomerID:      "cust-1",
		Email:           "john.andersen@example.com",
		Subscriber:      &SubscriberRef{ID: "sub-1", WebexStatus: "provisioned", AlreadyExisted: true},
		OrderOccurredAt: &occurred,
		ProcessedAt:     occurred.Add(time.Second),
		Attempts:        1,
	}
}

func TestValidateOutcome(t *testing.T) {
	failure := &Failure{Reason: ReasonRetriesExhausted, Message: "webex kept answering 503"}
	cases := []struct {
		name    string
		change  func(o *Outcome)
		mention string // "" means valid
	}{
		{"provisioned", func(o *Outcome) {}, ""},
		{"pending user action", func(o *Outcome) {
			o.Status = StatusPendingUserAction
			o.Subscriber.WebexStatus = "pending_user_migration"
		}, ""},
		{"failed for an unreadable order", func(o *Outcome) {
			*o = Outcome{SchemaVersion: 1, EventID: o.EventID, OrderID: "ord 1/2", Status: StatusFailed,
				Failure: &Failure{Reason: ReasonInvalidOrder, Message: "/email: is required"}, ProcessedAt: o.ProcessedAt}
		}, ""},
		{"provisioned without subscriber", func(o *Outcome) { o.Subscriber = nil }, "/subscriber: is required"},
		{"provisioned with failure", func(o *Outcome) { o.Failure = failure }, "/failure: not allowed"},
		{"failed without failure", func(o *Outcome) { o.Status = StatusFailed }, "/failure: is required"},
		{"failed with unknown reason", func(o *Outcome) {
			o.Status = StatusFailed
			o.Failure = &Failure{Reason: "bad_luck", Message: "x"}
		}, "/failure/reason"},
		{"failure without message", func(o *Outcome) {
			o.Status = StatusFailed
			o.Failure = &Failure{Reason: ReasonAPIRejected}
		}, "/failure/message"},
		{"unknown status", func(o *Outcome) { o.Status = "done" }, "/status"},
		{"eventId not a UUID", func(o *Outcome) { o.EventID = "ord-1" }, "/eventId"},
		{"wrong schema version", func(o *Outcome) { o.SchemaVersion = 2 }, "/schemaVersion: must be 1"},
		{"missing orderId", func(o *Outcome) { o.OrderID = "" }, "/orderId"},
		{"bad email is masked", func(o *Outcome) { o.Email = "john.andersen.example.com" }, `/email: "j***"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := validOutcome()
			tc.change(&o)
			err := ValidateOutcome(o)
			if tc.mention == "" {
				if err != nil {
					t.Errorf("ValidateOutcome: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("ValidateOutcome succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.mention) || !strings.HasPrefix(err.Error(), "validating outcome: ") {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
			if strings.Contains(err.Error(), "john.andersen") {
				t.Errorf("error %q reveals the email address", err)
			}
		})
	}
}

func validDeadLetter() DeadLetter {
	at := time.Date(2026, 5, 4, 9, 25, 0, 0, time.UTC)
	return DeadLetter{
		SchemaVersion: DeadLetterSchemaVersion,
		Reason:        ReasonInvalidJSON,
		ErrorClass:    ErrorClassInvalidInput,
		Message:       "invalid order: invalid_json: unexpected end of JSON input",
		Step:          StepDecode,
		Attempts:      1,
		FailedAt:      at,
		Source: Source{
			Topic:     "subscriber-orders",
			Partition: 1,
			Offset:    7,
			Timestamp: at,
			Key:       NewBytes([]byte("ord-1")),
			Value:     NewBytes([]byte("{\"orderId\":")),
			Headers:   []Header{{Key: "bin", Value: NewBytes([]byte{0xff, 0x00})}, {Key: "none"}},
		},
	}
}

func TestValidateDeadLetter(t *testing.T) {
	cases := []struct {
		name    string
		change  func(d *DeadLetter)
		mention string // "" means valid
	}{
		{"decode failure", func(d *DeadLetter) {}, ""},
		{"tombstone without key or headers", func(d *DeadLetter) {
			d.Reason = ReasonTombstone
			d.Source.Key, d.Source.Value, d.Source.Headers = nil, nil, nil
		}, ""},
		{"empty value", func(d *DeadLetter) { d.Source.Value = NewBytes([]byte{}) }, ""},
		{"retries exhausted with failure", func(d *DeadLetter) {
			d.Reason = string(ReasonRetriesExhausted)
			d.ErrorClass = ErrorClassTransient
			d.Step = StepProvision
			d.Attempts = 5
			d.OrderID = "ord-1"
			d.ConsumerGroup = "wholesale-provisioner"
			d.Failure = &Failure{Reason: ReasonRetriesExhausted, Message: "503", HTTPStatus: 503, TrackingID: "ROUTER_1"}
		}, ""},
		{"bytes with text and base64", func(d *DeadLetter) {
			d.Source.Value = &Bytes{Text: ptr("a"), Base64: ptr("YQ==")}
		}, "/source/value: matches more than one alternative"},
		{"bytes with neither", func(d *DeadLetter) { d.Source.Key = &Bytes{} }, `/source/key: needs exactly one of "text", "base64"`},
		{"bytes with bad base64", func(d *DeadLetter) {
			d.Source.Headers[0].Value = &Bytes{Base64: ptr("not base64!")}
		}, "/source/headers/0/value"},
		{"unknown error class", func(d *DeadLetter) { d.ErrorClass = "fatal" }, "/errorClass"},
		{"reason not a code", func(d *DeadLetter) { d.Reason = "Bad JSON" }, "/reason"},
		{"empty topic", func(d *DeadLetter) { d.Source.Topic = "" }, "/source/topic"},
		{"negative offset", func(d *DeadLetter) { d.Source.Offset = -1 }, "/source/offset"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := validDeadLetter()
			tc.change(&d)
			err := ValidateDeadLetter(d)
			if tc.mention == "" {
				if err != nil {
					t.Errorf("ValidateDeadLetter: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("ValidateDeadLetter succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.mention) || !strings.HasPrefix(err.Error(), "validating dead letter: ") {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

func TestBytesRoundTrip(t *testing.T) {
	cases := []struct {
		name     string
		raw      []byte
		wantText bool
	}{
		{"nil", nil, false},
		{"empty", []byte{}, true},
		{"text", []byte(`{"orderId":"ord-1"}`), true},
		{"unicode and controls", []byte("žluťoučký\u2028\x00\n"), true},
		{"invalid UTF-8", []byte{0xff, 0xfe, 'a'}, false},
		{"truncated rune", []byte("caf\xc3"), false},
		{"binary", []byte{0, 1, 2, 0x80, 0xc0}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBytes(tc.raw)
			if (b == nil) != (tc.raw == nil) {
				t.Fatalf("NewBytes(%v) = %+v: nil-ness differs", tc.raw, b)
			}
			if b != nil && (b.Text != nil) != tc.wantText {
				t.Errorf("NewBytes(%q) text = %v, want text %v", tc.raw, b.Text != nil, tc.wantText)
			}
			if b != nil && (b.Text == nil) == (b.Base64 == nil) {
				t.Errorf("NewBytes(%q) must set exactly one of text and base64: %+v", tc.raw, b)
			}

			// Through JSON, as in a dead letter, and back.
			data, err := json.Marshal(Header{Key: "k", Value: b})
			if err != nil {
				t.Fatalf("marshalling: %v", err)
			}
			var h Header
			if err := json.Unmarshal(data, &h); err != nil {
				t.Fatalf("unmarshalling %s: %v", data, err)
			}
			got, err := h.Value.Raw()
			if err != nil {
				t.Fatalf("Raw: %v", err)
			}
			if !bytes.Equal(got, tc.raw) || (got == nil) != (tc.raw == nil) {
				t.Errorf("round trip of %#v through %s gave %#v", tc.raw, data, got)
			}
		})
	}
}

func TestBytesRawErrors(t *testing.T) {
	for name, b := range map[string]*Bytes{
		"both":        {Text: ptr("a"), Base64: ptr("YQ==")},
		"neither":     {},
		"bad base64":  {Base64: ptr("YQ=")},
		"not base64":  {Base64: ptr("***")},
		"url base64 ": {Base64: ptr("_-8=")},
	} {
		if raw, err := b.Raw(); err == nil {
			t.Errorf("%s: Raw() = %v, want an error", name, raw)
		}
	}
}

func TestMasking(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice@example.com", "a***@example.com"},
		{"not-an-email", "n***"},
		{"", "***"},
		{"@example.com", "***@example.com"},
		{"žofie@example.cz", "ž***@example.cz"},
	} {
		if got := maskEmail(tc.in); got != tc.want {
			t.Errorf("maskEmail(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"+12405551212", "+***12"},
		{"12405551212", "***12"},
		{"51212", "***"},
		{"+1", "+***"},
	} {
		if got := maskPhone(tc.in); got != tc.want {
			t.Errorf("maskPhone(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func BenchmarkDecodeOrder(b *testing.B) {
	value := readExample(b, "subscriber-order.v1.json")
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	for b.Loop() {
		if _, err := DecodeOrder(value); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDeadLetterSchemaListsEveryStep: one vocabulary of steps, in Go and in
// the schema that consumers of the dead-letter topic read.
func TestDeadLetterSchemaListsEveryStep(t *testing.T) {
	doc, err := readSchema("dead-letter.v1.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	enum, _ := doc.(map[string]any)["properties"].(map[string]any)["step"].(map[string]any)["enum"].([]any)
	var got []string
	for _, s := range enum {
		got = append(got, s.(string))
	}
	if !slices.Equal(got, Steps) {
		t.Errorf("the dead-letter schema's steps are %v, Steps are %v", got, Steps)
	}
}

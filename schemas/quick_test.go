package schemas

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/acme-sp/wholesale-provisioner/internal/strictjson"
)

func TestQuickCheckCompilesTheOrderSchema(t *testing.T) {
	if orderQuickErr != nil {
		t.Fatalf("the order schema uses what the quick check does not implement (%v): every order now goes "+
			"through the slow full validator; implement the keyword in quick.go", orderQuickErr)
	}
	for _, name := range []string{"subscriber-order.v1.json", "subscriber-order-meetings.v1.json", "subscriber-order-new-customer.v1.json"} {
		doc, err := strictjson.Parse(readExample(t, name), OrderLimits)
		if err != nil {
			t.Fatal(err)
		}
		if got := orderQuick(doc); got != valid {
			t.Errorf("%s: quick verdict %d, want valid: valid orders would all take the slow path", name, got)
		}
	}
}

// TestQuickCheckVerdicts covers each keyword of the order schema, both ways,
// and the forms the quick check leaves to the validator; every certain
// verdict is checked against the validator too.
func TestQuickCheckVerdicts(t *testing.T) {
	base := string(readExample(t, "subscriber-order.v1.json"))
	edit := func(old, new string) string {
		if !strings.Contains(base, old) {
			t.Fatalf("the example has no %q", old)
		}
		return strings.Replace(base, old, new, 1)
	}
	meetings := edit(`"webex_calling"`, `"webex_meetings"`)
	strip := func(doc string) string { // removes the phone number and the extension
		doc = strings.Replace(doc, `"primaryPhoneNumber": "+12405551212",`, ``, 1)
		return strings.Replace(doc, `"extension": "51212",`, ``, 1)
	}
	for _, tc := range []struct {
		name string
		doc  string
		want verdict
	}{
		{"the example", base, valid},
		{"missing email", edit(`"email": "john.andersen@example.com",`, ``), invalid},
		{"unknown property", edit(`"action"`, `"color": "red", "action"`), invalid},
		{"unknown parameter", edit(`"firstName"`, `"nickName": "J", "firstName"`), invalid},
		{"schemaVersion 2", edit(`"schemaVersion": 1`, `"schemaVersion": 2`), invalid},
		{"schemaVersion as text", edit(`"schemaVersion": 1`, `"schemaVersion": "1"`), invalid},
		{"schemaVersion 1.0 is an integer, left to the validator", edit(`"schemaVersion": 1`, `"schemaVersion": 1.0`), unsure},
		{"orderId with a space", edit(`"ord-2026-000123"`, `"ord 2026"`), invalid},
		{"empty orderId", edit(`"ord-2026-000123"`, `""`), invalid},
		{"orderId of 129 characters", edit(`"ord-2026-000123"`, `"`+strings.Repeat("a", 129)+`"`), invalid},
		{"unknown action", edit(`"provision"`, `"suspend"`), invalid},
		{"occurredAt without offset", edit(`"2026-05-04T09:15:27.512Z"`, `"2026-05-04T09:15:27"`), invalid},
		{"occurredAt on 30 February", edit(`"2026-05-04T09:15:27.512Z"`, `"2026-02-30T09:15:27Z"`), unsure},
		{"occurredAt with an offset", edit(`"2026-05-04T09:15:27.512Z"`, `"2026-05-04T09:15:27+02:00"`), valid},
		{"email without @", edit(`"john.andersen@example.com"`, `"john.andersen"`), unsure},
		{"email with a quoted local part, left to the validator", edit(`"john.andersen@example.com"`, `"\"john andersen\"@example.com"`), unsure},
		{"email of 255 characters", edit(`"john.andersen@example.com"`, `"`+strings.Repeat("a", 243)+`@example.com"`), invalid},
		{"no package", edit(`["webex_calling"]`, `[]`), invalid},
		{"two packages", edit(`["webex_calling"]`, `["webex_calling", "webex_meetings"]`), invalid},
		{"unknown package", edit(`"webex_calling"`, `"webex_teams"`), invalid},
		{"package as a number", edit(`"webex_calling"`, `7`), invalid},
		{"name of 64 two-byte characters", edit(`"John"`, `"`+strings.Repeat("ž", 64)+`"`), valid},
		{"name of 65 characters", edit(`"John"`, `"`+strings.Repeat("ž", 65)+`"`), invalid},
		{"extension of one digit", edit(`"51212"`, `"5"`), invalid},
		{"calling package with only an extension", edit(`"primaryPhoneNumber": "+12405551212",`, ``), valid},
		{"calling package without phone or extension", strip(base), invalid},
		{"meetings package without phone or extension", strip(meetings), valid},
		{"provision without parameters", `{"schemaVersion":1,"orderId":"o-1","action":"provision","occurredAt":"2026-05-04T09:15:27Z","customerId":"c","email":"a@example.com","packages":["webex_meetings"]}`, invalid},
		{"remove without parameters", `{"schemaVersion":1,"orderId":"o-1","action":"remove","occurredAt":"2026-05-04T09:15:27Z","customerId":"c","email":"a@example.com","packages":["webex_meetings"]}`, valid},
		{"customerInfo without primaryEmail", edit(`"packages"`, `"customerInfo": {}, "packages"`), invalid},
		{"customerInfo", edit(`"packages"`, `"customerInfo": {"primaryEmail": "admin@example.com"}, "packages"`), valid},
		{"not an object", `[1, 2]`, invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := strictjson.Parse([]byte(tc.doc), OrderLimits)
			if err != nil {
				t.Fatalf("test document does not parse: %v\n%s", err, tc.doc)
			}
			got := orderQuick(doc)
			if got != tc.want {
				t.Errorf("quick verdict = %d, want %d", got, tc.want)
			}
			verr := orderSchema.Validate(doc)
			if got == valid && verr != nil || got == invalid && verr == nil {
				t.Errorf("quick verdict %d, but the validator says %v", got, verr)
			}
		})
	}
}

func TestCompileQuickRefusesWhatItDoesNotImplement(t *testing.T) {
	for name, schema := range map[string]string{
		"an unknown keyword":           `{"oneOf": [{"type": "string"}]}`,
		"a numeric bound":              `{"properties": {"n": {"minimum": 1}}}`,
		"another format":               `{"format": "uri"}`,
		"a remote reference":           `{"$ref": "https://example.com/other.json"}`,
		"a recursive reference":        `{"$ref": "#/$defs/a", "$defs": {"a": {"items": {"$ref": "#/$defs/a"}}}}`,
		"a nested $id":                 `{"properties": {"a": {"$id": "https://example.com/a"}}}`,
		"a non-integer const":          `{"const": 1.5}`,
		"an object const":              `{"const": {"a": 1}}`,
		"unevaluated properties":       `{"unevaluatedProperties": false}`,
		"a keyword inside a branch":    `{"if": {"type": "string"}, "then": {"not": {}}}`,
		"a keyword inside a $defs":     `{"$ref": "#/$defs/a", "$defs": {"a": {"multipleOf": 2}}}`,
		"a reference to a missing def": `{"$ref": "#/$defs/missing"}`,
	} {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(schema)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := compileQuick(doc.(map[string]any)); err == nil {
			t.Errorf("%s: compiled %s, want an error", name, schema)
		}
	}
}

func TestPlainIntegerComparesByText(t *testing.T) {
	for n, want := range map[string]bool{
		"1": true, "0": true, "-7": true, "120": true,
		"-0": false, "01": false, "1.0": false, "1e0": false, "": false, "-": false,
	} {
		if got := plainInteger(json.Number(n)); got != want {
			t.Errorf("plainInteger(%q) = %v, want %v", n, got, want)
		}
	}
}

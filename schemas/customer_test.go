package schemas

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// customerOrderWith is the example customer order with its JSON edited.
func customerOrderWith(t *testing.T, edit func(string) string) []byte {
	t.Helper()
	return []byte(edit(string(readExample(t, "customer-order.v1.json"))))
}

func TestDecodeCustomerOrderRules(t *testing.T) {
	cases := []struct {
		name, value string
		want        string // a part of the detail; "" for a valid order
	}{
		{name: "the example", value: string(readExample(t, "customer-order.v1.json"))},
		{name: "an existing organisation needs no customer info", value: string(readExample(t, "customer-order-existing-org.v1.json"))},
		{name: "a remove names the customer only", value: string(readExample(t, "customer-order-remove.v1.json"))},
		{name: "a provision without customer info or organisation",
			value: `{"schemaVersion":1,"orderId":"c1","action":"provision","occurredAt":"2026-05-04T09:00:00Z","externalId":"x","provisioningId":"p","packages":["webex_meetings"],"address":{"addressLine1":"a","city":"c","country":"US"}}`,
			want:  "customerInfo"},
		{name: "a provision without an address",
			value: `{"schemaVersion":1,"orderId":"c1","action":"provision","occurredAt":"2026-05-04T09:00:00Z","externalId":"x","provisioningId":"p","packages":["webex_meetings"],"orgId":"o"}`,
			want:  "address"},
		{name: "an update without packages",
			value: `{"schemaVersion":1,"orderId":"c1","action":"update","occurredAt":"2026-05-04T09:00:00Z","externalId":"x"}`,
			want:  "packages"},
		{name: "an update cannot change the customer's details",
			value: `{"schemaVersion":1,"orderId":"c1","action":"update","occurredAt":"2026-05-04T09:00:00Z","externalId":"x","packages":["webex_meetings"],"customerInfo":{"name":"n","primaryEmail":"a@b.example"}}`,
			want:  "customerInfo"},
		{name: "a remove with packages",
			value: `{"schemaVersion":1,"orderId":"c1","action":"remove","occurredAt":"2026-05-04T09:00:00Z","externalId":"x","packages":["webex_meetings"]}`,
			want:  "packages"},
		{name: "a country in lower case", want: "country",
			value: string(customerOrderWith(t, func(s string) string { return strings.Replace(s, `"country": "US"`, `"country": "us"`, 1) }))},
		{name: "an address line over 50 characters", want: "addressLine1",
			value: string(customerOrderWith(t, func(s string) string {
				return strings.Replace(s, `"771 Alder Drive"`, `"`+strings.Repeat("7", 51)+`"`, 1)
			}))},
		{name: "a % in the name", want: "name",
			value: string(customerOrderWith(t, func(s string) string { return strings.Replace(s, `"John's Pizza"`, `"100% Pizza"`, 1) }))},
		{name: "a subscriber package Cisco does not give customers", want: "packages",
			value: string(customerOrderWith(t, func(s string) string { return strings.Replace(s, `"webex_meetings"]`, `"webex_fax"]`, 1) }))},
		{name: "a package twice", want: "packages",
			value: string(customerOrderWith(t, func(s string) string {
				return strings.Replace(s, `["webex_calling", "webex_meetings"]`, `["webex_calling", "webex_calling"]`, 1)
			}))},
		{name: "an unknown property", want: "colour",
			value: string(customerOrderWith(t, func(s string) string { return strings.Replace(s, `"action"`, `"colour": "red", "action"`, 1) }))},
		{name: "a control character in the external id", want: "externalId",
			value: `{"schemaVersion":1,"orderId":"c1","action":"remove","occurredAt":"2026-05-04T09:00:00Z","externalId":"a\u0007b"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := DecodeCustomerOrder([]byte(tc.value))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("DecodeCustomerOrder: %v", err)
				}
				if o.OrderID == "" || o.ExternalID == "" || o.OccurredAt.IsZero() {
					t.Errorf("decoded %+v", o)
				}
				return
			}
			var ie *InvalidOrderError
			if !errors.As(err, &ie) || ie.Reason != ReasonSchemaViolation {
				t.Fatalf("err = %v, want a schema violation", err)
			}
			if ie.OrderID != "c1" && !strings.HasPrefix(ie.OrderID, "billing:") {
				t.Errorf("order id %q not read", ie.OrderID)
			}
			if !strings.Contains(ie.Detail, tc.want) {
				t.Errorf("detail %q does not name %s", ie.Detail, tc.want)
			}
			if strings.Contains(ie.Detail, "john.anderson@acme.example") {
				t.Errorf("detail shows the customer's email: %s", ie.Detail)
			}
		})
	}
}

func TestDecodeCustomerOrderExample(t *testing.T) {
	o, err := DecodeCustomerOrder(readExample(t, "customer-order.v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	pp := o.ProvisioningParameters
	switch {
	case o.Action != ActionProvision || o.ExternalID != "c1677a16-557a-4fb4-b48f-24adde57ec99" || len(o.Packages) != 2:
		t.Errorf("order %+v", o)
	case !o.OccurredAt.Equal(time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)):
		t.Errorf("occurredAt %v", o.OccurredAt)
	case o.Address == nil || o.Address.Country != "US" || o.Address.AddressLine2 != "Cisco Site 5":
		t.Errorf("address %+v", o.Address)
	case o.CustomerInfo == nil || o.CustomerInfo.Name != "John's Pizza" || o.CustomerInfo.Language != "en":
		t.Errorf("customerInfo %+v", o.CustomerInfo)
	case pp == nil || pp.Calling == nil || pp.Calling.Location.Timezone != "America/Los_Angeles" || pp.Meetings == nil:
		t.Errorf("provisioningParameters %+v", pp)
	}
}

func TestSubscriberOrderNamesItsCustomerOnce(t *testing.T) {
	base := `{"schemaVersion":1,"orderId":"o1","action":"remove","occurredAt":"2026-05-04T09:00:00Z","email":"a@b.example"`
	for _, tc := range []struct {
		name, extra string
		valid       bool
	}{
		{"by customerId", `,"customerId":"c"`, true},
		{"by customerExternalId", `,"customerExternalId":"ext-1"`, true},
		{"by neither", ``, false},
		{"by both", `,"customerId":"c","customerExternalId":"ext-1"`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := DecodeOrder([]byte(base + tc.extra + "}"))
			if tc.valid != (err == nil) {
				t.Fatalf("DecodeOrder: %v, want valid %v", err, tc.valid)
			}
			if err != nil && !strings.Contains(err.Error(), "customer") {
				t.Errorf("the error does not name the customer: %v", err)
			}
			if tc.valid && o.CustomerID == "" && o.CustomerExternalID != "ext-1" {
				t.Errorf("order %+v", o)
			}
		})
	}
}

// FuzzDecodeCustomerOrder holds DecodeCustomerOrder to DecodeOrder's
// budget: linear time, no panic, a valid order or an *InvalidOrderError.
func FuzzDecodeCustomerOrder(f *testing.F) {
	for _, dir := range []string{badOrdersDir, "examples"} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			f.Fatalf("reading seeds: %v", err)
		}
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				f.Fatalf("reading seed: %v", err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		best := time.Duration(1<<63 - 1)
		var err error
		for range 3 {
			start := time.Now()
			_, err = DecodeCustomerOrder(value)
			if best = min(best, time.Since(start)); best <= decodeBudget(len(value)) {
				break
			}
		}
		if best > decodeBudget(len(value)) {
			t.Errorf("DecodeCustomerOrder took %v (best of 3) on %d bytes, over its budget of %v", best, len(value), decodeBudget(len(value)))
		}
		var ie *InvalidOrderError
		if err != nil && (!errors.As(err, &ie) || ie.Detail == "") {
			t.Errorf("err = %#v, want an *InvalidOrderError with a detail", err)
		}
	})
}

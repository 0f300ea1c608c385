package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/acme-sp/wholesale-provisioner/internal/strictjson"
)

// badOrdersDir is the corpus of bad order records shared with the pipeline tests.
const badOrdersDir = "../testdata/bad-orders"

// decodeReasons are the reasons DecodeOrder may give.
var decodeReasons = []string{
	ReasonTombstone, ReasonEmptyValue, ReasonInvalidEncoding, ReasonInvalidJSON,
	ReasonUnsupportedSchemaVersion, ReasonSchemaViolation, ReasonLimitExceeded,
}

// knownPackages are the packages the subscriber-order schema lists.
var knownPackages = []string{
	PackageWebexCalling, PackageWebexMeetings, PackageWebexSuite, PackageWebexVoice, PackageCXEssentials,
	PackageWebexCallingStandard, PackageAttendantConsole, PackageCXPremiumAgent, PackageCXStandardAgent,
}

var (
	orderIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	// emailLike finds email addresses in raw bytes, as redact.Text does.
	emailLike = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
)

// decodeStallBudget is how long one DecodeOrder call may take before it counts
// as a stall; real records take well under a millisecond.
const decodeStallBudget = 5 * time.Second

// decodeBudget is the time a value of n bytes may take to decode: a fixed
// part, and a part per byte some fifty times what any shape measures
// (BENCHMARKS.md, "Hostile input"). Time that grows faster than the size
// (the nested arrays that took minutes) passes it within a few KiB, which
// is where the fuzzer works.
func decodeBudget(n int) time.Duration {
	return 5*time.Millisecond + time.Duration(n)*2*time.Microsecond
}

// FuzzDecodeOrder decodes arbitrary bytes as an order and checks the
// properties in checkDecodeOrder. Its seeds are the bad-record corpus and the
// examples, so `go test` without -fuzz runs them as regular tests.
func FuzzDecodeOrder(f *testing.F) {
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
	for _, c := range decodeOrderCases {
		f.Add([]byte(c.value))
	}
	f.Fuzz(checkDecodeOrder)
}

// checkDecodeOrder checks what must hold for any value: DecodeOrder returns
// within a time linear in the size of the value (decodeBudget), without
// panicking, either a valid order or an
// *InvalidOrderError; the reason agrees with what the bytes are (empty, not
// UTF-8, not JSON); the order id is the document's; the detail is non-empty
// UTF-8 and shows no email address of the input unmasked; and a valid order
// keeps its invariants, equals what encoding/json decodes from the bytes,
// and survives a round trip through encoding/json.
func checkDecodeOrder(t *testing.T, value []byte) {
	start := time.Now()
	o, err := DecodeOrder(value)
	if took := time.Since(start); took > decodeStallBudget {
		t.Errorf("DecodeOrder took %v on %d bytes: a record must not stall the consumer", took, len(value))
	} else if took > decodeBudget(len(value)) {
		// Time per byte is the property; one slow spell of the machine is
		// not: the best of three runs decides.
		best := took
		for range 3 {
			start = time.Now()
			_, _ = DecodeOrder(value)
			best = min(best, time.Since(start))
		}
		if best > decodeBudget(len(value)) {
			t.Errorf("DecodeOrder took %v (best of 4) on %d bytes, over its budget of %v: time grows faster than the size", best, len(value), decodeBudget(len(value)))
		}
	}
	checkQuickAgrees(t, value)
	if err != nil {
		checkInvalid(t, value, o, err)
		return
	}
	checkValid(t, value, o)
}

// checkQuickAgrees checks that the quick check, where it is sure, says what
// the full validator says: DecodeOrder trusts its valid without asking.
func checkQuickAgrees(t *testing.T, value []byte) {
	t.Helper()
	doc, err := strictjson.Parse(value, OrderLimits)
	if err != nil || !utf8.Valid(value) {
		return
	}
	got := orderQuick(doc)
	verr := orderSchema.Validate(doc)
	switch {
	case got == valid && verr != nil:
		t.Errorf("the quick check accepts what the validator rejects: %v\ninput: %s", verr, value)
	case got == invalid && verr == nil:
		t.Errorf("the quick check rejects what the validator accepts\ninput: %s", value)
	}
}

func checkInvalid(t *testing.T, value []byte, o Order, err error) {
	t.Helper()
	var ie *InvalidOrderError
	if !errors.As(err, &ie) {
		t.Fatalf("error %T %v is not an *InvalidOrderError", err, err)
	}
	if !slices.Contains(decodeReasons, ie.Reason) {
		t.Errorf("reason %q is not one of %v", ie.Reason, decodeReasons)
	}
	if ie.Detail == "" || !utf8.ValidString(ie.Detail) {
		t.Errorf("detail %q is empty or not UTF-8", ie.Detail)
	}
	if !reflect.DeepEqual(o, Order{}) {
		t.Errorf("an invalid value also returned an order: %+v", o)
	}

	// What the bytes are decides the reason, up to the schema.
	var want string
	var strict *strictjson.Error
	switch {
	case value == nil:
		want = ReasonTombstone
	case len(value) == 0:
		want = ReasonEmptyValue
	case !utf8.Valid(value):
		want = ReasonInvalidEncoding
	case errors.As(strictjson.Check(value, OrderLimits), &strict):
		switch strict.Kind {
		case strictjson.KindDepth, strictjson.KindNumber, strictjson.KindValues:
			want = ReasonLimitExceeded
		case strictjson.KindDuplicateKey:
			want = ReasonSchemaViolation
		case strictjson.KindSurrogate:
			want = ReasonInvalidEncoding
		default:
			want = ReasonInvalidJSON
			if json.Valid(value) {
				t.Errorf("the strict parser finds a %s error (%v) in what encoding/json reads as JSON", strict.Kind, strict)
			}
		}
	case !json.Valid(value):
		t.Errorf("the strict parser accepts what encoding/json refuses")
	}
	if want != "" && ie.Reason != want {
		t.Errorf("reason = %q, want %q", ie.Reason, want)
	}
	if want == "" {
		if slices.Contains([]string{ReasonTombstone, ReasonEmptyValue, ReasonInvalidEncoding, ReasonInvalidJSON}, ie.Reason) {
			t.Errorf("reason = %q for a value that is one UTF-8 JSON value", ie.Reason)
		}
		var doc any
		dec := json.NewDecoder(bytes.NewReader(value))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("json.Valid accepted what the JSON decoder refuses: %v", err)
		}
		obj, _ := doc.(map[string]any)
		id, _ := obj["orderId"].(string)
		if ie.OrderID != id {
			t.Errorf("order id = %q, want the document's %q", ie.OrderID, id)
		}
	}

	for _, addr := range inputEmails(value) {
		if strings.Contains(ie.Detail, addr) {
			t.Errorf("detail shows the email address %q unmasked: %s", addr, ie.Detail)
		}
	}
}

// inputEmails returns the email addresses in value: whatever looks like one in
// the raw bytes, and the values of the email fields when the value parses. An
// address that already contains the mask "***" is left out, since masking it
// yields itself.
func inputEmails(value []byte) []string {
	addrs := emailLike.FindAllString(string(value), -1)
	var doc, info map[string]json.RawMessage
	if json.Unmarshal(value, &doc) == nil {
		_ = json.Unmarshal(doc["customerInfo"], &info) // info stays nil unless it is an object
		for _, raw := range []json.RawMessage{doc["email"], info["primaryEmail"]} {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				addrs = append(addrs, s)
			}
		}
	}
	var out []string
	for _, a := range addrs {
		at := strings.LastIndexByte(a, '@')
		if at > 0 && at < len(a)-1 && !strings.Contains(a, "***") && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func checkValid(t *testing.T, value []byte, o Order) {
	t.Helper()
	switch {
	case o.SchemaVersion != OrderSchemaVersion:
		t.Errorf("schemaVersion = %d", o.SchemaVersion)
	case !orderIDPattern.MatchString(o.OrderID):
		t.Errorf("orderId %q breaks the orderId rules", o.OrderID)
	case !slices.Contains([]Action{ActionProvision, ActionUpdate, ActionRemove}, o.Action):
		t.Errorf("action = %q", o.Action)
	case o.OccurredAt.IsZero():
		t.Error("occurredAt is zero")
	case (o.CustomerID == "") == (o.CustomerExternalID == ""):
		t.Errorf("customerId %q and customerExternalId %q: want exactly one", o.CustomerID, o.CustomerExternalID)
	case !strings.Contains(o.Email, "@") || len(o.Email) > 254:
		t.Errorf("email %q is not an address", o.Email)
	case len(o.Packages) != 1 || !slices.Contains(knownPackages, o.Packages[0]):
		t.Errorf("packages = %q, want one known package", o.Packages)
	case o.Action == ActionProvision && IsCallingPackage(o.Package()) &&
		o.ProvisioningParameters.PrimaryPhoneNumber == "" && o.ProvisioningParameters.Extension == "":
		t.Errorf("calling package %s without a phone number or extension", o.Package())
	}

	// DecodeOrder fills the Go type from the parsed document by hand; it must
	// give what encoding/json gives from the same bytes.
	var want Order
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&want); err != nil {
		t.Fatalf("DecodeOrder accepted what encoding/json refuses: %v\ninput: %s", err, value)
	}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("DecodeOrder = %+v, encoding/json decodes %+v\ninput: %s", o, want, value)
	}

	again, err := json.Marshal(o)
	if err != nil {
		t.Fatalf("encoding the decoded order: %v", err)
	}
	o2, err := DecodeOrder(again)
	if err != nil {
		t.Fatalf("the re-encoded order does not decode: %v\ninput:      %s\nre-encoded: %s", err, value, again)
	}
	if !sameOrder(o, o2) {
		t.Errorf("round trip changed the order:\nfirst  %+v\nsecond %+v\nre-encoded: %s", o, o2, again)
	}
}

// sameOrder compares orders, times by instant and written offset rather than
// by *time.Location.
func sameOrder(a, b Order) bool {
	if !a.OccurredAt.Equal(b.OccurredAt) || a.OccurredAt.Format(time.RFC3339Nano) != b.OccurredAt.Format(time.RFC3339Nano) {
		return false
	}
	a.OccurredAt, b.OccurredAt = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// decodeOrderCases are inputs worth keeping as seeds and as named tests:
// each is a bug found or an edge the corpus does not have.
var decodeOrderCases = []struct {
	name  string
	value string
}{
	{
		// A valid remove order with a calling package needs no
		// provisioningParameters, but Order cannot say "absent": it
		// re-encodes as {}, which the calling-package rule then rejects.
		name: "remove order with a calling package and no provisioningParameters",
		value: `{"schemaVersion":1,"orderId":"ord-rm-1","action":"remove","occurredAt":"2026-05-04T09:15:27Z",` +
			`"customerId":"c-1","email":"kim.larsen@example.com","packages":["webex_calling"]}`,
	},
	{
		// The schema-violation detail echoes the orderId, action and package
		// values unmasked, so an email address in them is shown in full.
		name: "email address as orderId",
		value: `{"schemaVersion":1,"orderId":"kim.larsen@example.com","action":"provision","occurredAt":"2026-05-04T09:15:27Z",` +
			`"customerId":"c-1","email":"kim.larsen@example.com","packages":["webex_meetings"],"provisioningParameters":{}}`,
	},
	{
		name: "offset -00:00",
		value: `{"schemaVersion":1,"orderId":"ord-tz-1","action":"provision","occurredAt":"2026-05-04T09:15:27.000000001-00:00",` +
			`"customerId":"c-1","email":"kim.larsen@example.com","packages":["webex_meetings"],"provisioningParameters":{}}`,
	},
	{
		name: "escaped email and customerInfo",
		value: `{"schemaVersion":1,"orderId":"ord-esc-1","action":"provision","occurredAt":"2026-05-04T09:15:27+05:30",` +
			`"customerId":"c-1","email":"kim\u002elarsen\u0040example.com","packages":["webex_meetings"],"provisioningParameters":{},` +
			`"customerInfo":{"primaryEmail":"it admin@example.com"}}`,
	},
	{name: "schemaVersion 1.0", value: `{"schemaVersion":1.0,"orderId":"ord-v-1"}`},
	{name: "not an object", value: `["orderId","ord-1"]`},
	{name: "white space only", value: " \n\t "},
}

// TestDecodeOrderProperties runs the fuzz properties on the named cases, so
// that a failure says which.
func TestDecodeOrderProperties(t *testing.T) {
	for _, c := range decodeOrderCases {
		t.Run(c.name, func(t *testing.T) { checkDecodeOrder(t, []byte(c.value)) })
	}
	t.Run("tombstone", func(t *testing.T) { checkDecodeOrder(t, nil) })
}

// TestDecodeOrderDoesNotStallOnHugeExponents decodes a 245-byte order whose
// packages are 20 distinct numbers with exponents near the limit of math/big.
// The validator's uniqueItems check turns each into a big.Rat (about 35 ms
// apiece), comparing every pair when there are 20 items or fewer and hashing
// each when there are more: seconds per record, minutes near the size limit.
func TestDecodeOrderDoesNotStallOnHugeExponents(t *testing.T) {
	nums := make([]string, 20)
	for i := range nums {
		nums[i] = fmt.Sprintf("%de999999", i+1)
	}
	value := []byte(`{"schemaVersion":1,"orderId":"ord-exp-1","packages":[` + strings.Join(nums, ",") + `]}`)
	done := make(chan error, 1)
	go func() {
		_, err := DecodeOrder(value)
		done <- err
	}()
	select {
	case err := <-done:
		var ie *InvalidOrderError
		// Refused before the validator sees a number: limit_exceeded.
		if !errors.As(err, &ie) || ie.Reason != ReasonLimitExceeded {
			t.Errorf("DecodeOrder = %v, want the number refused as limit_exceeded", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("DecodeOrder of %d bytes did not return within 2s: %s", len(value), value)
	}
}

// Package sample makes realistic subscriber orders, valid and not, for the demo,
// the produce command, benchmarks and tests.
package sample

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// CustomerID is the Webex Wholesale customer the sample orders belong to.
const CustomerID = "Y2lzY29zcGFyazovL3VzL0NVU1RPTUVSL2RlbW8tY3VzdG9tZXI"

// Order returns the i-th valid sample order. Every third one is a meetings
// order; the others are calling orders with a phone number and an extension.
func Order(runID string, i int, at time.Time) schemas.Order {
	o := schemas.Order{
		SchemaVersion: 1,
		OrderID:       fmt.Sprintf("%s-%06d", runID, i),
		Action:        schemas.ActionProvision,
		OccurredAt:    at.UTC().Truncate(time.Millisecond),
		CustomerID:    CustomerID,
		Email:         fmt.Sprintf("user%06d.%s@acme.example", i, runID),
		Packages:      []string{"webex_calling"},
		ProvisioningParameters: &schemas.ProvisioningParameters{
			FirstName:          "User",
			LastName:           fmt.Sprintf("N%06d", i),
			PrimaryPhoneNumber: fmt.Sprintf("+1240555%04d", i%10000),
			Extension:          fmt.Sprintf("%05d", 10000+i%90000),
		},
	}
	if i%3 == 2 {
		o.Packages = []string{"webex_meetings"}
		o.ProvisioningParameters.PrimaryPhoneNumber = ""
		o.ProvisioningParameters.Extension = ""
	}
	return o
}

// Update returns an update order of o's subscriber to the given package,
// with its own order id (o's plus suffix). Moving to a calling package it
// carries the number and extension Webex then needs, and never the names.
func Update(o schemas.Order, suffix, pkg string, at time.Time) schemas.Order {
	u := schemas.Order{SchemaVersion: 1, OrderID: o.OrderID + "-" + suffix, Action: schemas.ActionUpdate,
		OccurredAt: at.UTC().Truncate(time.Millisecond), CustomerID: o.CustomerID, Email: o.Email, Packages: []string{pkg}}
	if schemas.IsCallingPackage(pkg) {
		n := len(o.OrderID)
		u.ProvisioningParameters = &schemas.ProvisioningParameters{
			PrimaryPhoneNumber: fmt.Sprintf("+1240556%04d", n%10000), Extension: fmt.Sprintf("%05d", 20000+n%70000),
		}
	}
	return u
}

// Remove returns a remove order of o's subscriber, with its own order id.
func Remove(o schemas.Order, suffix string, at time.Time) schemas.Order {
	return schemas.Order{SchemaVersion: 1, OrderID: o.OrderID + "-" + suffix, Action: schemas.ActionRemove,
		OccurredAt: at.UTC().Truncate(time.Millisecond), CustomerID: o.CustomerID, Email: o.Email}
}

// Key is the Kafka key of an order: its subscriber, so that every order of one
// subscriber lands on one partition, in order.
func Key(o schemas.Order) []byte {
	if o.CustomerID == "" {
		return []byte("external:" + o.CustomerExternalID + "/" + o.Email)
	}
	return []byte(o.CustomerID + "/" + o.Email)
}

// Message returns the Kafka record of an order.
func Message(o schemas.Order) kafka.Message {
	v, err := json.Marshal(o)
	if err != nil {
		panic(fmt.Sprintf("encoding a sample order: %v", err)) // cannot happen: plain struct
	}
	return kafka.Message{
		Key:   Key(o),
		Value: v,
		Headers: []kafka.Header{
			{Key: "content-type", Value: []byte("application/json")},
			{Key: "source", Value: []byte("billing-demo")},
		},
	}
}

// Malformed is a bad record with the answer it should get.
type Malformed struct {
	Name  string
	Value []byte
	// OrderID is the id the provisioner can still read (then it answers with a
	// failed outcome as well as a dead letter), or "".
	OrderID string
}

// MalformedRecords returns a few bad records of different kinds.
func MalformedRecords(runID string) []Malformed {
	good := Order(runID, 900001, time.Now())
	missingEmail := toMap(good)
	missingEmail["orderId"] = runID + "-bad-no-email"
	delete(missingEmail, "email")
	badPackage := toMap(good)
	badPackage["orderId"] = runID + "-bad-package"
	badPackage["packages"] = []string{"webex_teleportation"}
	noPhone := toMap(Order(runID, 900003, time.Now())) // a calling order (i%3 != 2)
	noPhone["orderId"] = runID + "-bad-no-phone"
	noPhone["provisioningParameters"] = map[string]any{"firstName": "No", "lastName": "Phone"}
	return []Malformed{
		{Name: "invalid JSON", Value: []byte(`{"orderId": "` + runID + `-broken", "email": `)},
		{Name: "missing email", Value: mustJSON(missingEmail), OrderID: runID + "-bad-no-email"},
		{Name: "unknown package", Value: mustJSON(badPackage), OrderID: runID + "-bad-package"},
		{Name: "calling package without phone or extension", Value: mustJSON(noPhone), OrderID: runID + "-bad-no-phone"},
	}
}

func toMap(o schemas.Order) map[string]any {
	var m map[string]any
	if err := json.Unmarshal(mustJSON(o), &m); err != nil {
		panic(err)
	}
	return m
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Email domains that make the Webex simulator answer in particular ways (see
// the webexsim package's Config).
const (
	RejectDomain  = "reject.example"
	PendingDomain = "free.example"
	ErrorDomain   = "error.example"
	// AcceptDomain holds users who consent to the migration after a while;
	// DeclineDomain users whose migration fails into status error.
	AcceptDomain  = "accepts.example"
	DeclineDomain = "migration-fails.example"
)

// WithDomain returns o for a subscriber in another email domain, with its own order id.
func WithDomain(o schemas.Order, suffix, domain string) schemas.Order {
	o.OrderID += "-" + suffix
	at := len(o.Email)
	for i := len(o.Email) - 1; i >= 0; i-- {
		if o.Email[i] == '@' {
			at = i
			break
		}
	}
	o.Email = o.Email[:at] + "@" + domain
	return o
}

// Email domains of customers' primary emails that make the simulator end a
// new customer in a particular state (see the webexsim package's Config).
const (
	CustomerErrorDomain   = "customer-error.example"
	CustomerPartialDomain = "customer-partial.example"
	CustomerReviewDomain  = "customer-review.example"
)

// Customer returns the i-th sample customer order: a new enterprise with
// calling and meetings, its primary email in domain ("" for one the
// simulator provisions).
func Customer(runID string, i int, domain string, at time.Time) schemas.CustomerOrder {
	if domain == "" {
		domain = "acme.example"
	}
	addr := schemas.Address{AddressLine1: fmt.Sprintf("%d Alder Drive", 100+i), City: "Milpitas",
		StateOrProvince: "CA", ZipOrPostalCode: "95035", Country: "US"}
	return schemas.CustomerOrder{
		SchemaVersion:  1,
		OrderID:        fmt.Sprintf("%s-customer-%04d", runID, i),
		Action:         schemas.ActionProvision,
		OccurredAt:     at.UTC().Truncate(time.Millisecond),
		ExternalID:     fmt.Sprintf("%s-enterprise-%04d", runID, i),
		ProvisioningID: "ZjViMzYxODctYzhkZC00NzI3LThiMmYtZjljNDQ3ZjI5MDQ2",
		Packages:       []string{"webex_calling", "webex_meetings"},
		Address:        &addr,
		CustomerInfo: &schemas.NewCustomerInfo{Name: fmt.Sprintf("Enterprise %04d of %s", i, runID),
			PrimaryEmail: fmt.Sprintf("admin%04d.%s@%s", i, runID, domain), Language: "en"},
	}
}

// Member returns the i-th sample subscriber order of the customer c, which
// names its customer by c's external id.
func Member(c schemas.CustomerOrder, i int, at time.Time) schemas.Order {
	o := Order(c.ExternalID, i, at)
	o.OrderID = fmt.Sprintf("%s-member-%04d", c.OrderID, i)
	o.CustomerID, o.CustomerExternalID = "", c.ExternalID
	return o
}

// CustomerMessage returns the Kafka record of a customer order, keyed by
// its external id.
func CustomerMessage(o schemas.CustomerOrder) kafka.Message {
	return kafka.Message{
		Key:   []byte(o.ExternalID),
		Value: mustJSON(o),
		Headers: []kafka.Header{
			{Key: "content-type", Value: []byte("application/json")},
			{Key: "source", Value: []byte("billing-demo")},
		},
	}
}

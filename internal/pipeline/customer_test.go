package pipeline

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/producer"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// customerFunc fakes the customer workflow.
type customerFunc func(ctx context.Context, o schemas.CustomerOrder) (provisioning.CustomerResult, error)

func (f customerFunc) RunCustomer(ctx context.Context, o schemas.CustomerOrder, _ provisioning.Wait) (provisioning.CustomerResult, error) {
	return f(ctx, o)
}

func newCustomerRecorder(t *testing.T) *recorder {
	w, err := producer.NewWriter(producer.Config{Brokers: []string{"127.0.0.1:1"}, OutcomesTopic: "out", DeadLetterTopic: "dlt", CustomerOutcomesTopic: "cout"})
	if err != nil {
		t.Fatal(err)
	}
	return &recorder{Writer: w}
}

func customerOutcomes(t *testing.T, r *recorder) []schemas.CustomerOutcome {
	t.Helper()
	var out []schemas.CustomerOutcome
	for _, m := range r.byTopic("cout") {
		var o schemas.CustomerOutcome
		if err := json.Unmarshal(m.Value, &o); err != nil {
			t.Fatal(err)
		}
		if err := schemas.ValidateCustomerOutcome(o); err != nil {
			t.Errorf("customer outcome breaks its schema: %v", err)
		}
		if ce := header(m, "ce_type"); ce != "com.cisco.webex.wholesale.customer."+string(o.Status) {
			t.Errorf("ce_type %q for status %s", ce, o.Status)
		}
		out = append(out, o)
	}
	return out
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func customerRecord(o schemas.CustomerOrder) kafka.Message {
	m := sample.CustomerMessage(o)
	m.Topic, m.Partition, m.Offset = "customer-orders", 0, 7
	return m
}

func TestCustomerOrderOutcomes(t *testing.T) {
	partial := provisioning.Customer{ID: "cust-1", OrgID: "org-1", Status: provisioning.CustomerProvisionedWithErrors, Packages: []string{"webex_calling", "webex_meetings"},
		ResourceDetails: &provisioning.ResourceDetails{Packages: []provisioning.PackageDetail{
			{Name: "webex_calling", Status: "error", Errors: []provisioning.ErrorItem{{ErrorCode: 1237, Description: "calling could not be set up"}}},
			{Name: "webex_meetings", Status: "provisioned"},
		}}}
	for _, tc := range []struct {
		status schemas.OutcomeStatus
		res    provisioning.CustomerResult
		check  func(t *testing.T, o schemas.CustomerOutcome)
	}{
		{schemas.StatusProvisioned, provisioning.CustomerResult{Status: schemas.StatusProvisioned,
			Customer: provisioning.Customer{ID: "cust-1", OrgID: "org-1", Status: "provisioned", Packages: []string{"webex_calling"}}},
			func(t *testing.T, o schemas.CustomerOutcome) {
				if o.Customer == nil || o.Customer.ID != "cust-1" || o.Customer.OrgID != "org-1" {
					t.Errorf("customer %+v", o.Customer)
				}
			}},
		{schemas.StatusProvisionedWithErrors, provisioning.CustomerResult{Status: schemas.StatusProvisionedWithErrors, Customer: partial},
			func(t *testing.T, o schemas.CustomerOutcome) {
				d := o.Customer.PackageDetails
				if len(d) != 2 || d[0].Status != "error" || len(d[0].Errors) != 1 || d[0].Errors[0].Code != 1237 {
					t.Errorf("package details %+v: want Webex's per-package error", d)
				}
			}},
		{schemas.StatusPendingReview, provisioning.CustomerResult{Status: schemas.StatusPendingReview,
			Customer: provisioning.Customer{ID: "cust-1", Status: provisioning.CustomerPendingRPLReview}},
			func(t *testing.T, o schemas.CustomerOutcome) {
				if o.Customer.WebexStatus != provisioning.CustomerPendingRPLReview {
					t.Errorf("webex status %q", o.Customer.WebexStatus)
				}
			}},
		{schemas.StatusRemoved, provisioning.CustomerResult{Status: schemas.StatusRemoved, AlreadyAbsent: true},
			func(t *testing.T, o schemas.CustomerOutcome) {
				if !o.AlreadyAbsent || o.Customer != nil {
					t.Errorf("outcome %+v: want already absent, no customer", o)
				}
			}},
	} {
		t.Run(string(tc.status), func(t *testing.T) {
			r := newCustomerRecorder(t)
			p := NewCustomers(Config{ConsumerGroup: "g"}, customerFunc(func(context.Context, schemas.CustomerOrder) (provisioning.CustomerResult, error) {
				return tc.res, nil
			}), r)
			o := sample.Customer("p", 1, "", time.Now())
			if err := p.Handle(context.Background(), customerRecord(o), nil); err != nil {
				t.Fatal(err)
			}
			outs := customerOutcomes(t, r)
			if len(outs) != 1 || len(r.byTopic("dlt")) != 0 || len(r.byTopic("out")) != 0 {
				t.Fatalf("customer outcomes %d, dead letters %d, subscriber outcomes %d; want 1, 0, 0", len(outs), len(r.byTopic("dlt")), len(r.byTopic("out")))
			}
			got := outs[0]
			if got.Status != tc.status || got.OrderID != o.OrderID || got.ExternalID != o.ExternalID {
				t.Errorf("outcome %+v", got)
			}
			tc.check(t, got)
			// Redelivered, the same event id: consumers deduplicate on it.
			if err := p.Handle(context.Background(), customerRecord(o), nil); err != nil {
				t.Fatal(err)
			}
			if again := customerOutcomes(t, r); len(again) != 2 || again[1].EventID != got.EventID {
				t.Errorf("redelivery's event id %v, want %s", again, got.EventID)
			}
		})
	}
}

func TestFailedCustomerOrderIsDeadLettered(t *testing.T) {
	r := newCustomerRecorder(t)
	api := &provisioning.APIError{Method: "DELETE", Endpoint: provisioning.PathCustomers + "/{id}", StatusCode: http.StatusConflict,
		Message: "The customer still has 2 subscribers: remove them before the customer.",
		Errors:  []provisioning.ErrorItem{{ErrorCode: 10419, Description: "The customer still has 2 subscribers: remove them before the customer."}}, TrackingID: "T-7"}
	p := NewCustomers(Config{}, customerFunc(func(context.Context, schemas.CustomerOrder) (provisioning.CustomerResult, error) {
		return provisioning.CustomerResult{}, &provisioning.Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonAPIRejected,
			Step: schemas.StepRemove, Attempts: 2, CustomerID: "cust-9", Err: api}
	}), r)
	o := sample.Customer("p", 2, "", time.Now())
	o.Action, o.CustomerInfo, o.Address, o.Packages, o.ProvisioningID = schemas.ActionRemove, nil, nil, nil, ""
	if err := p.Handle(context.Background(), customerRecord(o), nil); err != nil {
		t.Fatal(err)
	}
	outs, dls := customerOutcomes(t, r), deadLetters(t, r)
	if len(outs) != 1 || len(dls) != 1 {
		t.Fatalf("customer outcomes %d, dead letters %d; want 1 and 1", len(outs), len(dls))
	}
	f := outs[0].Failure
	if outs[0].Status != schemas.StatusFailed || f == nil || f.HTTPStatus != http.StatusConflict || len(f.Errors) != 1 || f.Errors[0].Code != 10419 ||
		f.Errors[0].Description != api.Errors[0].Description || f.CustomerID != "cust-9" || f.TrackingID != "T-7" {
		t.Errorf("outcome %+v, failure %+v: want Cisco's answer as it was", outs[0], f)
	}
	if d := dls[0]; d.Step != schemas.StepRemove || d.Reason != string(schemas.ReasonAPIRejected) || d.Source.Topic != "customer-orders" || d.Source.Offset != 7 {
		t.Errorf("dead letter %+v", d)
	}
}

func TestInvalidCustomerOrder(t *testing.T) {
	r := newCustomerRecorder(t)
	p := NewCustomers(Config{}, customerFunc(func(context.Context, schemas.CustomerOrder) (provisioning.CustomerResult, error) {
		t.Fatal("an invalid order reached the workflow")
		return provisioning.CustomerResult{}, nil
	}), r)
	o := sample.Customer("p", 3, "", time.Now())
	o.Address = nil // a provision needs the address
	if err := p.Handle(context.Background(), customerRecord(o), nil); err != nil {
		t.Fatal(err)
	}
	outs, dls := customerOutcomes(t, r), deadLetters(t, r)
	if len(dls) != 1 || dls[0].ErrorClass != schemas.ErrorClassInvalidInput {
		t.Fatalf("dead letters %+v: want one, invalid input", dls)
	}
	if len(outs) != 1 || outs[0].Status != schemas.StatusFailed || outs[0].OrderID != o.OrderID || outs[0].Failure.Reason != schemas.ReasonInvalidOrder {
		t.Errorf("outcomes %+v: want the order's failure, invalid_order", outs)
	}
}

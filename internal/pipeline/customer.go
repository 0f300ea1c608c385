package pipeline

import (
	"context"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// handleCustomer is handle for a customer order: it reads the order and
// has the customer workflow carry it out.
func (p *Pipeline) handleCustomer(ctx context.Context, r *job) (answer, error) {
	if err := p.checkSize(r); err != nil {
		return answer{}, err
	}
	o, err := schemas.DecodeCustomerOrder(r.msg.Value)
	if err != nil {
		return answer{}, err
	}
	r.customer = &o
	r.digest, r.digested = digestOf(o), true
	r.decoded()
	if err := p.checkReuse(r, o.OrderID); err != nil {
		return answer{}, err
	}
	res, err := p.cwf.RunCustomer(r.logger().WithContext(ctx), o, r.wait)
	if err != nil {
		return answer{}, err
	}
	out := p.customerOutcome(r, o.OrderID, res.Status)
	out.Attempts = res.Attempts
	out.Customer = customerRef(res)
	out.Precheck = precheckOf(res.Precheck)
	switch res.Status {
	case schemas.StatusUpdated:
		changed := res.Changed
		out.Changed = &changed
	case schemas.StatusRemoved:
		out.AlreadyAbsent = res.AlreadyAbsent
	}
	return answer{customerOutcome: &out}, nil
}

func (p *Pipeline) customerOutcome(r *job, orderID string, status schemas.OutcomeStatus) schemas.CustomerOutcome {
	out := schemas.CustomerOutcome{
		SchemaVersion: schemas.CustomerOutcomeSchemaVersion,
		EventID:       CustomerEventID(orderID, r.contentDigest(), r.replay),
		OrderID:       orderID,
		Status:        status,
		ProcessedAt:   p.cfg.Now().UTC(),
	}
	if o := r.customer; o != nil {
		out.Action = o.Action
		out.ExternalID = o.ExternalID
		t := o.OccurredAt
		out.OrderOccurredAt = &t
	}
	return out
}

func (p *Pipeline) failedCustomerOutcome(r *job, a *answer, orderID string, f schemas.Fault) {
	out := p.customerOutcome(r, orderID, schemas.StatusFailed)
	out.Failure = failureOf(f)
	out.Attempts = f.Attempts
	a.customerOutcome = &out
}

// customerRef is what an outcome says of the result's customer; nil when
// there is none (a remove of a customer already gone).
func customerRef(res provisioning.CustomerResult) *schemas.CustomerRef {
	c := res.Customer
	if c.ID == "" {
		return nil
	}
	ref := &schemas.CustomerRef{ID: c.ID, OrgID: c.OrgID, WebexStatus: c.Status, Packages: c.Packages,
		PreviousPackages: res.PreviousPackages, FoundByLookup: res.FoundByLookup, Errors: apiErrors(c.Errors)}
	if d := c.ResourceDetails; d != nil {
		for _, pk := range d.Packages {
			ref.PackageDetails = append(ref.PackageDetails, schemas.PackageDetail{Name: pk.Name, Status: pk.Status,
				Errors: apiErrors(pk.Errors), Warnings: apiErrors(pk.Warnings)})
		}
	}
	return ref
}

func apiErrors(items []provisioning.ErrorItem) []schemas.APIError {
	var out []schemas.APIError
	for _, it := range items {
		out = append(out, schemas.APIError{Code: it.ErrorCode, Description: it.Description})
	}
	return out
}

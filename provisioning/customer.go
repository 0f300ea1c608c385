package provisioning

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// CustomerResult is a successful end of a customer order.
type CustomerResult struct {
	// Status is schemas.StatusProvisioned, StatusProvisionedWithErrors,
	// StatusPendingReview, StatusUpdated or StatusRemoved.
	Status schemas.OutcomeStatus
	// Customer is the customer as Webex last reported it (empty for a
	// remove of a customer already gone).
	Customer Customer
	// FoundByLookup says that a lookup by external id found the customer
	// rather than this order's create naming it.
	FoundByLookup bool
	// Precheck is the answer of the precheck when one passed.
	Precheck *PrecheckResponse
	// Changed says, for an update, that this order changed the customer.
	Changed bool
	// AlreadyAbsent says, for a remove, that the customer was gone already.
	AlreadyAbsent bool
	// PreviousPackages are, for an update or a remove, the packages before it.
	PreviousPackages []string
	// Attempts counts the API calls made.
	Attempts int
}

// customerRun holds the state of one customer order's workflow.
type customerRun struct {
	steps
	o schemas.CustomerOrder
}

// RunCustomer carries out a customer order: it provisions, updates or
// removes the customer and follows it to a state Webex will not leave by
// itself. It waits through wait (nil: Sleep), and returns a CustomerResult,
// an *Error, or ctx's error when ctx ends first. While it runs, subscriber
// orders of the customer wait for it rather than fail.
func (w *Workflow) RunCustomer(ctx context.Context, o schemas.CustomerOrder, wait Wait) (CustomerResult, error) {
	if wait == nil {
		wait = Sleep
	}
	r := customerRun{steps: steps{w: w, wait: wait, subject: "external:" + o.ExternalID, noun: "customer"}, o: o}
	ctx = WithTrackingPrefix(ctx, "wholesale-provisioner_"+o.OrderID)
	w.customers.begin(o.ExternalID, o.OrderID)
	var res CustomerResult
	var err error
	switch o.Action {
	case schemas.ActionProvision:
		res, err = r.provision(ctx)
	case schemas.ActionUpdate:
		res, err = r.update(ctx)
	case schemas.ActionRemove:
		res, err = r.remove(ctx)
	default:
		err = &Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonInvalidOrder, Step: schemas.StepValidate,
			Message: fmt.Sprintf("action %q is not one the workflow knows", o.Action)}
	}
	res.Attempts = r.attempts
	var c *Customer
	if res.Customer.ID != "" {
		c = &res.Customer
	}
	if o.Action == schemas.ActionRemove && err == nil {
		w.customers.forget(o.ExternalID, res.Customer.ID)
		c = nil
	}
	// A provision that failed leaves no customer for its subscribers to
	// wait for; a configuration fault or a shutdown leaves the order to be
	// carried out again, and a failed update or remove leaves the customer
	// as it was.
	var we *Error
	failed := o.Action == schemas.ActionProvision && ctx.Err() == nil && errors.As(err, &we) && we.Class != schemas.ErrorClassConfigFault
	w.customers.end(o.ExternalID, o.OrderID, c, failed)
	return res, r.finish(ctx, err)
}

func (r *customerRun) request() CustomerRequest {
	req := CustomerRequest{
		ProvisioningID:         r.o.ProvisioningID,
		Packages:               r.o.Packages,
		OrgID:                  r.o.OrgID,
		ExternalID:             r.o.ExternalID,
		ProvisioningParameters: apiCustomerParams(r.o.ProvisioningParameters),
	}
	if a := r.o.Address; a != nil {
		req.Address = apiAddress(*a)
	}
	if ci := r.o.CustomerInfo; ci != nil {
		req.CustomerInfo = &CustomerInfo{Name: ci.Name, PrimaryEmail: ci.PrimaryEmail, Language: ci.Language}
	}
	return req
}

// provision creates the customer unless a lookup by its external id finds
// it (an earlier delivery of this order, or a customer made elsewhere), and
// follows it until Webex has provisioned it, or says why not.
func (r *customerRun) provision(ctx context.Context) (CustomerResult, error) {
	res := CustomerResult{}
	c, err := r.lookup(ctx)
	if err != nil {
		return res, err
	}
	if c == nil {
		if res.Precheck, c, err = r.precheck(ctx); err != nil {
			return res, err
		}
	}
	if c != nil {
		res.FoundByLookup = true
		if c.Status == CustomerDeleting {
			return CustomerResult{Customer: *c}, &Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonAPIRejected, Step: schemas.StepLookup, CustomerID: c.ID,
				Message: "a customer with this externalId is being deleted: send the provision again once it is gone"}
		}
		if done(c.Status) && !sameSet(c.Packages, r.o.Packages) {
			return CustomerResult{Customer: *c}, &Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonAPIRejected, Step: schemas.StepLookup, CustomerID: c.ID,
				Message: fmt.Sprintf("the customer exists with packages %v, not %v: send an update order", c.Packages, r.o.Packages)}
		}
	} else if c, err = r.create(ctx, &res); err != nil {
		return res, err
	}
	r.w.customers.learn(r.o.ExternalID, c)
	res.Customer = *c
	return r.follow(ctx, res, schemas.StatusProvisioned)
}

// lookup finds the customer by the order's external id, with retries.
func (r *customerRun) lookup(ctx context.Context) (*Customer, error) {
	var c *Customer
	err := r.retry(ctx, schemas.StepLookup, func() error {
		r.attempts++
		var err error
		c, err = r.w.api.FindCustomer(ctx, r.o.ExternalID)
		return err
	})
	if err != nil {
		return nil, r.fail(schemas.StepLookup, schemas.ReasonAPIRejected, err)
	}
	if c != nil {
		r.w.customers.learn(r.o.ExternalID, c)
	}
	return c, nil
}

// precheck asks Webex whether the create would pass. A refusal because the
// external id is taken (a create of another instance since the lookup) is
// answered by a second lookup, which returns that customer.
func (r *customerRun) precheck(ctx context.Context) (*PrecheckResponse, *Customer, error) {
	var resp PrecheckResponse
	err := r.retry(ctx, schemas.StepPrecheck, func() error {
		r.attempts++
		var err error
		resp, err = r.w.api.PrecheckCustomer(ctx, r.request())
		return err
	})
	var api *APIError
	switch {
	case err == nil:
		return &resp, nil, nil
	case errors.As(err, &api) && api.StatusCode == http.StatusConflict:
		c, lerr := r.lookup(ctx)
		if lerr != nil || c != nil {
			return nil, c, lerr
		}
	}
	return nil, nil, r.fail(schemas.StepPrecheck, schemas.ReasonPrecheckRejected, err)
}

// create sends the create. One whose answer was lost, or answered 409, is
// followed by a lookup before any new create: Webex keys customers by
// external id, and a second create would be refused or, worse, taken.
func (r *customerRun) create(ctx context.Context, res *CustomerResult) (*Customer, error) {
	var (
		id                 string
		found              *Customer
		lookUp, conflicted bool
	)
	err := r.retry(ctx, schemas.StepProvision, func() error {
		if lookUp {
			r.attempts++
			c, err := r.w.api.FindCustomer(ctx, r.o.ExternalID)
			if err != nil {
				return err
			}
			lookUp = false
			if c != nil {
				found = c
				return nil
			}
		}
		r.attempts++
		var err error
		id, err = r.w.api.CreateCustomer(ctx, r.request())
		var api *APIError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &api) && api.StatusCode == http.StatusConflict && !conflicted:
			// Taken since the lookup: look again, at once, once.
			conflicted, lookUp = true, true
			return errRetryNow
		case Classify(err).UnknownFate:
			lookUp = true
		}
		return err
	})
	if err != nil {
		return nil, r.fail(schemas.StepProvision, schemas.ReasonAPIRejected, err)
	}
	if found != nil {
		res.FoundByLookup = true
		return found, nil
	}
	// Webex answers 202 with where the customer is; it is provisioning.
	return &Customer{ID: id, ExternalID: r.o.ExternalID, Status: CustomerProvisioning}, nil
}

// follow reads the customer until it reaches a state Webex will not leave
// by itself. The waits go through the order's wait hook, so that minutes of
// provisioning hold no worker.
func (r *customerRun) follow(ctx context.Context, res CustomerResult, ok schemas.OutcomeStatus) (CustomerResult, error) {
	b := r.customerBackOff(r.w.cfg.CustomerMaxWait)
	for {
		c := res.Customer
		switch c.Status {
		case CustomerProvisioned:
			res.Status = ok
			return res, nil
		case CustomerProvisionedWithErrors:
			res.Status = schemas.StatusProvisionedWithErrors
			return res, nil
		case CustomerPendingRPLReview:
			res.Status = schemas.StatusPendingReview
			return res, nil
		case CustomerError:
			return res, &Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonProvisioningError, Step: schemas.StepStatus, CustomerID: c.ID,
				Message: "Webex reports the customer in status error", Errors: customerErrors(c)}
		}
		wait := b.NextBackOff()
		if wait == backoff.Stop {
			return res, &Error{Class: schemas.ErrorClassTransient, Reason: schemas.ReasonRetriesExhausted, Step: schemas.StepStatus, CustomerID: c.ID,
				Message: fmt.Sprintf("customer still %q after %s", c.Status, r.w.cfg.CustomerMaxWait)}
		}
		if err := r.wait(ctx, wait); err != nil {
			return res, err
		}
		got, gone, err := r.get(ctx, c.ID)
		switch {
		case err != nil:
			return res, err
		case gone:
			return res, &Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonAPIRejected, Step: schemas.StepStatus, CustomerID: c.ID,
				Message: fmt.Sprintf("the customer disappeared while %s", c.Status)}
		}
		res.Customer = got
	}
}

// get reads the customer by id, with retries; gone says Webex answered 404.
func (r *customerRun) get(ctx context.Context, id string) (c Customer, gone bool, err error) {
	err = r.retry(ctx, schemas.StepStatus, func() error {
		r.attempts++
		var err error
		c, err = r.w.api.GetCustomer(ctx, id)
		if isNotFound(err) {
			gone = true
			return nil
		}
		return err
	})
	if err != nil {
		return c, false, r.fail(schemas.StepStatus, schemas.ReasonAPIRejected, err)
	}
	if !gone {
		r.w.customers.learn(r.o.ExternalID, &c)
	}
	return c, gone, nil
}

// settled looks the customer up and, while another change of it is in
// progress, waits and reads it again, so that this order does not race it.
func (r *customerRun) settled(ctx context.Context, step string) (*Customer, error) {
	c, err := r.lookup(ctx)
	if err != nil || c == nil {
		return nil, err
	}
	b := r.customerBackOff(r.w.cfg.CustomerMaxWait)
	for inProgress(c.Status) {
		wait := b.NextBackOff()
		if wait == backoff.Stop {
			return nil, &Error{Class: schemas.ErrorClassTransient, Reason: schemas.ReasonRetriesExhausted, Step: step, CustomerID: c.ID,
				Message: fmt.Sprintf("customer still %q after %s: another change is in progress", c.Status, r.w.cfg.CustomerMaxWait)}
		}
		if err := r.wait(ctx, wait); err != nil {
			return nil, err
		}
		got, gone, err := r.get(ctx, c.ID)
		if err != nil || gone {
			return nil, err
		}
		c = &got
	}
	return c, nil
}

// update changes the customer's packages (and address and provisioning
// parameters when the order has them) and follows it through updating. An
// update already in effect is a success without a call that changes
// anything; a PUT whose fate is unknown is read back before another is sent.
func (r *customerRun) update(ctx context.Context) (CustomerResult, error) {
	c, err := r.settled(ctx, schemas.StepUpdate)
	if err != nil {
		return CustomerResult{}, err
	}
	if c == nil {
		return CustomerResult{}, &Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonCustomerNotFound, Step: schemas.StepLookup,
			Message: "Webex has no customer with this externalId: check the billing system's record"}
	}
	res := CustomerResult{Customer: *c, PreviousPackages: c.Packages}
	if c.Status == CustomerError {
		return res, &Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonProvisioningError, Step: schemas.StepLookup, CustomerID: c.ID,
			Message: "the customer is in status error: Webex support must look at it before it can be updated", Errors: customerErrors(*c)}
	}
	if r.inEffect(*c) {
		res.Status = schemas.StatusUpdated
		return res, nil
	}
	req := CustomerUpdateRequest{ExternalID: r.o.ExternalID, Packages: r.o.Packages, ProvisioningParameters: apiCustomerParams(r.o.ProvisioningParameters)}
	if a := r.o.Address; a != nil {
		addr := apiAddress(*a)
		req.Address = &addr
	}
	var uncertain, gone bool
	err = r.retry(ctx, schemas.StepUpdate, func() error {
		if uncertain {
			now, g, err := r.readBack(ctx, c.ID)
			if err != nil || g {
				gone = g
				return err
			}
			uncertain = false
			if now.Status == CustomerUpdating || sameSet(now.Packages, r.o.Packages) && now.Status != CustomerError {
				res.Customer = now
				return nil
			}
		}
		r.attempts++
		err := r.w.api.UpdateCustomer(ctx, c.ID, req)
		switch {
		case err == nil:
			res.Customer.Status = CustomerUpdating
		case isNotFound(err):
			gone = true
			return nil
		case Classify(err).UnknownFate:
			uncertain = true
		}
		return err
	})
	switch {
	case err != nil:
		return res, r.fail(schemas.StepUpdate, schemas.ReasonAPIRejected, err)
	case gone:
		return res, &Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonCustomerNotFound, Step: schemas.StepUpdate, CustomerID: c.ID,
			Message: "the customer was removed while this order updated it"}
	}
	res.Changed = true
	return r.follow(ctx, res, schemas.StatusUpdated)
}

// inEffect says that the customer already is as the update orders.
func (r *customerRun) inEffect(c Customer) bool {
	if !sameSet(c.Packages, r.o.Packages) || r.o.ProvisioningParameters != nil || c.Status != CustomerProvisioned {
		return false
	}
	return r.o.Address == nil || (c.Address != nil && *c.Address == apiAddress(*r.o.Address))
}

// remove deletes the customer and follows it until Webex no longer has it.
// One already gone is a success (AlreadyAbsent). Webex refuses to delete a
// customer that still has subscribers: its answer is the order's failure,
// word for word. The result's customer is the customer as it was before.
func (r *customerRun) remove(ctx context.Context) (CustomerResult, error) {
	c, err := r.settled(ctx, schemas.StepRemove)
	if err != nil {
		return CustomerResult{}, err
	}
	if c == nil {
		return CustomerResult{Status: schemas.StatusRemoved, AlreadyAbsent: true}, nil
	}
	res := CustomerResult{Status: schemas.StatusRemoved, Customer: *c, PreviousPackages: c.Packages}
	var uncertain, gone bool
	err = r.retry(ctx, schemas.StepRemove, func() error {
		if uncertain {
			now, g, err := r.readBack(ctx, c.ID)
			if err != nil || g {
				gone = g
				return err
			}
			uncertain = false
			if now.Status == CustomerDeleting {
				return nil
			}
		}
		r.attempts++
		err := r.w.api.RemoveCustomer(ctx, c.ID)
		switch {
		case isNotFound(err):
			res.AlreadyAbsent, gone = true, true // removed by someone else since the lookup
			return nil
		case err != nil && Classify(err).UnknownFate:
			uncertain = true
		}
		return err
	})
	if err != nil {
		e := r.fail(schemas.StepRemove, schemas.ReasonAPIRejected, err)
		var we *Error
		if errors.As(e, &we) {
			we.CustomerID = c.ID
		}
		return res, e
	}
	if gone {
		return res, nil
	}
	return res, r.deleted(ctx, c.ID)
}

// readBack reads the customer once after a call whose fate is unknown;
// gone says Webex answered 404.
func (r *customerRun) readBack(ctx context.Context, id string) (c Customer, gone bool, err error) {
	r.attempts++
	c, err = r.w.api.GetCustomer(ctx, id)
	if isNotFound(err) {
		return c, true, nil
	}
	return c, false, err
}

// deleted reads a customer being deleted until Webex answers 404.
func (r *customerRun) deleted(ctx context.Context, id string) error {
	b := r.customerBackOff(r.w.cfg.CustomerMaxWait)
	for {
		wait := b.NextBackOff()
		if wait == backoff.Stop {
			return &Error{Class: schemas.ErrorClassTransient, Reason: schemas.ReasonRetriesExhausted, Step: schemas.StepStatus, CustomerID: id,
				Message: fmt.Sprintf("customer still deleting after %s", r.w.cfg.CustomerMaxWait)}
		}
		if err := r.wait(ctx, wait); err != nil {
			return err
		}
		got, gone, err := r.get(ctx, id)
		switch {
		case err != nil:
			return err
		case gone:
			return nil
		case got.Status != CustomerDeleting:
			return &Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonProvisioningError, Step: schemas.StepStatus, CustomerID: got.ID,
				Message: fmt.Sprintf("Webex accepted the delete, but the customer is %q again", got.Status), Errors: customerErrors(got)}
		}
	}
}

func (r *steps) customerBackOff(maxWait time.Duration) backoff.BackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(r.w.cfg.CustomerPollInterval),
		backoff.WithMaxInterval(15*r.w.cfg.CustomerPollInterval),
		backoff.WithMaxElapsedTime(maxWait),
	)
}

// done says that Webex will not change the customer by itself.
func done(status string) bool {
	return status == CustomerProvisioned || status == CustomerProvisionedWithErrors || status == CustomerError
}

// inProgress says that a change of the customer is under way.
func inProgress(status string) bool {
	return status == CustomerProvisioning || status == CustomerUpdating || status == CustomerDeleting
}

// customerErrors are the customer's errors and those of its packages.
func customerErrors(c Customer) []ErrorItem {
	errs := slices.Clone(c.Errors)
	if c.ResourceDetails != nil {
		for _, p := range c.ResourceDetails.Packages {
			errs = append(errs, p.Errors...)
		}
	}
	return errs
}

func isNotFound(err error) bool {
	var api *APIError
	return errors.As(err, &api) && api.StatusCode == http.StatusNotFound
}

// sameSet says that two package lists hold the same packages, in any order:
// Webex does not promise to keep the order's.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func apiAddress(a schemas.Address) Address {
	return Address{AddressLine1: a.AddressLine1, AddressLine2: a.AddressLine2, City: a.City,
		StateOrProvince: a.StateOrProvince, ZipOrPostalCode: a.ZipOrPostalCode, Country: a.Country}
}

func apiCustomerParams(p *schemas.CustomerProvisioningParameters) *CustomerProvisioningParameters {
	if p == nil {
		return nil
	}
	out := &CustomerProvisioningParameters{}
	if c := p.Calling; c != nil {
		l := c.Location
		out.Calling = &CallingParameters{Location: CallingLocation{Name: l.Name, Address: apiAddress(l.Address), Timezone: l.Timezone,
			Language: l.Language, EmergencyLocationIdentifier: l.EmergencyLocationIdentifier}}
	}
	if m := p.Meetings; m != nil {
		out.Meetings = &MeetingsParameters{Timezone: m.Timezone}
	}
	if pl := p.Packages; pl != nil {
		out.Packages = &PackageLimits{Limits: pl.Limits}
	}
	return out
}

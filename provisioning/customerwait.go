package provisioning

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"

	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// A subscriber order needs its customer provisioned. A billing system that
// onboards an enterprise publishes the customer order and the subscriber
// orders together, and the customer takes minutes: the subscriber orders
// wait for it, giving their workers back, rather than fail. What tells them
// to wait is a customer order of this process still running, a customer
// that Webex reports still provisioning, or, for an order that names its
// customer by external id, a customer Webex does not have yet.

// customerReady says that Webex takes subscribers for a customer in status.
func customerReady(status string) bool {
	return status == CustomerProvisioned || status == CustomerProvisionedWithErrors
}

// customer resolves the order's customerExternalId to the Webex id and
// waits while the customer is not ready. A customer already seen ready
// costs no call: should it have changed since, the subscriber calls'
// answers tell (retryAfterCustomer).
func (r *run) customer(ctx context.Context) error {
	book := r.w.customers
	if ext := r.o.CustomerExternalID; ext != "" {
		if st, ok := book.order(ext); ok && st.running {
			return r.awaitCustomer(ctx)
		}
		if id, ok := book.readyID(ext); ok {
			r.o.CustomerID = id
			return nil
		}
		return r.awaitCustomer(ctx)
	}
	if st, ok := book.orderOf(r.o.CustomerID); ok && st.running {
		return r.awaitCustomer(ctx)
	}
	return nil
}

// retryAfterCustomer is asked about a precheck or create that Webex
// refused. When the refusal may be the customer's (a 4xx that is not about
// rights, rate or the email), it reads the customer: one not ready yet is
// waited for, and again is true; one in error fails the order with
// customer_not_ready. Otherwise the refusal stands.
func (r *run) retryAfterCustomer(ctx context.Context, err error) (again bool, _ error) {
	var we *Error
	if !errors.As(err, &we) || we.Class != schemas.ErrorClassPermanent || (we.Step != schemas.StepPrecheck && we.Step != schemas.StepProvision) {
		return false, nil
	}
	api := we.API()
	if api == nil || api.StatusCode < 400 || api.StatusCode > 499 || api.StatusCode == http.StatusForbidden || isDuplicate(api) {
		return false, nil
	}
	// Webex's refusal is newer than any status this process remembers.
	c, cerr := r.readCustomer(ctx, true)
	switch {
	case cerr != nil:
		return false, cerr
	case c == nil:
		return false, nil
	case customerReady(c.Status):
		// Ready again already: a change of the customer by a customer
		// order of this process may have passed between the refusal and
		// the read. Once per order the call is sent again; a refusal for
		// another cause comes back and stands.
		st, known := r.customerOrder()
		if r.sentAgainForCustomer || !known || !st.changing(r.w.customers.now(), time.Minute) {
			return false, nil
		}
		r.sentAgainForCustomer = true
		r.o.CustomerID = c.ID
		return true, nil
	}
	if err := r.awaitCustomer(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// awaitCustomer waits, with backoff and without its worker, until the
// order's customer is ready; then the order has its Webex id. It fails the
// order with customer_not_ready when the customer ends in error or is
// being deleted, when the customer order this process ran for it failed, or
// when the wait outlasts SubscriberCustomerWait.
func (r *run) awaitCustomer(ctx context.Context) error {
	waited := false
	for {
		c, err := r.readCustomer(ctx, false)
		if err != nil {
			return err
		}
		st, known := r.customerOrder()
		switch {
		case c != nil && customerReady(c.Status):
			r.o.CustomerID = c.ID
			if waited {
				zerolog.Ctx(ctx).Info().Str("customer_status", c.Status).Msg("the customer is provisioned; the order goes on")
			}
			return nil
		case c != nil && (c.Status == CustomerError || c.Status == CustomerDeleting):
			return r.notReady(c, st, known, fmt.Sprintf("Webex reports the customer in status %s", c.Status))
		case c == nil && r.o.CustomerExternalID == "":
			return nil // Webex has no such customer: the precheck says so, in its words
		case c == nil && known && st.failed:
			return r.notReady(nil, st, known, "the customer order for it failed, and Webex has no such customer")
		}
		if r.customerWait == nil {
			r.customerWait = r.customerBackOff(r.w.cfg.SubscriberCustomerWait)
		}
		if !waited {
			waited = true
			status := "absent"
			if c != nil {
				status = c.Status
			}
			zerolog.Ctx(ctx).Info().Str("customer_status", status).Bool("customer_order_running", known && st.running).
				Msg("the order waits for its customer to be provisioned")
		}
		wait := r.customerWait.NextBackOff()
		if wait == backoff.Stop {
			status := "still absent from Webex"
			if c != nil {
				status = "still " + c.Status
			}
			e := r.notReady(c, st, known, fmt.Sprintf("the customer is %s after %s", status, r.w.cfg.SubscriberCustomerWait))
			e.Class = schemas.ErrorClassTransient // a replay once it is there may pass
			return e
		}
		if err := r.wait(ctx, wait); err != nil {
			return err
		}
	}
}

// readCustomer reads the order's customer, by Webex id or by external id,
// through the customer book; nil when Webex has none. Unless fresh, a read
// of the last moment is reused.
func (r *run) readCustomer(ctx context.Context, fresh bool) (*Customer, error) {
	var c *Customer
	err := r.retry(ctx, schemas.StepCustomer, func() error {
		var err error
		if ext := r.o.CustomerExternalID; ext != "" {
			c, err = r.w.customers.byExternalID(ctx, r.w.api, ext, fresh, &r.attempts)
		} else {
			c, err = r.w.customers.byID(ctx, r.w.api, r.o.CustomerID, fresh, &r.attempts)
		}
		return err
	})
	if err != nil {
		return nil, r.fail(schemas.StepCustomer, schemas.ReasonAPIRejected, err)
	}
	return c, nil
}

// customerOrder is the last customer order this process ran for the order's customer.
func (r *run) customerOrder() (customerOrderState, bool) {
	if ext := r.o.CustomerExternalID; ext != "" {
		return r.w.customers.order(ext)
	}
	return r.w.customers.orderOf(r.o.CustomerID)
}

func (r *run) notReady(c *Customer, st customerOrderState, known bool, why string) *Error {
	e := &Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonCustomerNotReady, Step: schemas.StepCustomer}
	name := "the customer " + r.o.CustomerID
	if ext := r.o.CustomerExternalID; ext != "" {
		name = fmt.Sprintf("the customer with externalId %q", ext)
	}
	e.Message = name + " is not ready: " + why
	if c != nil {
		e.CustomerID, e.Errors = c.ID, customerErrors(*c)
	}
	if known {
		e.CustomerOrderID = st.orderID
		e.Message += fmt.Sprintf(" (customer order %s)", st.orderID)
	}
	return e
}

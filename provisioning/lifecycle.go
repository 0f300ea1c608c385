package provisioning

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/cenkalti/backoff/v4"

	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// update changes the packages of the order's subscriber, found by customer
// and email, and follows it through updating. An update already in effect
// is a success without a call that changes anything; a PUT whose fate is
// unknown is looked up before another is sent.
func (r *run) update(ctx context.Context) (Result, error) {
	if err := r.customer(ctx); err != nil {
		return Result{}, err
	}
	sub, err := r.settled(ctx, schemas.StepUpdate)
	if err != nil {
		return Result{}, err
	}
	if sub == nil {
		return Result{}, &Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonSubscriberNotFound, Step: schemas.StepLookup,
			Message: "Webex has no subscriber with this email for this customer: check the billing system's record"}
	}
	prev := subscriberPackages(*sub)
	if samePackages(*sub, r.o.Packages) {
		return Result{Status: schemas.StatusUpdated, Subscriber: *sub, PreviousPackages: prev}, nil
	}
	req := UpdateRequest{Packages: r.o.Packages}
	// Cisco: the provisioning parameters go with a move from webex_meetings
	// to a calling package, and only then.
	if pp := r.o.ProvisioningParameters; pp != nil && !anyCalling(prev) && anyCalling(r.o.Packages) {
		req.ProvisioningParameters = &ProvisioningParameters{PrimaryPhoneNumber: pp.PrimaryPhoneNumber, Extension: pp.Extension, LocationID: pp.LocationID}
	}
	var (
		got       Subscriber
		uncertain bool // a PUT of this delivery may have taken effect
		gone      bool
	)
	err = r.retry(ctx, schemas.StepUpdate, func() error {
		if uncertain {
			now, err := r.lookup(ctx)
			if err != nil {
				return err
			}
			uncertain = false
			switch {
			case now == nil:
				gone = true
				return nil
			case samePackages(*now, r.o.Packages):
				got = *now
				return nil
			}
		}
		r.attempts++
		var err error
		got, err = r.w.api.UpdateSubscriber(ctx, sub.ID, req)
		var api *APIError
		switch {
		case err == nil:
		case errors.As(err, &api) && api.StatusCode == http.StatusNotFound:
			gone = true
			return nil
		case Classify(err).UnknownFate:
			uncertain = true
		}
		return err
	})
	switch {
	case err != nil:
		return Result{}, r.fail(schemas.StepUpdate, schemas.ReasonAPIRejected, err)
	case gone:
		return Result{}, &Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonSubscriberNotFound, Step: schemas.StepUpdate,
			Message: "the subscriber was removed while this order updated it"}
	}
	return r.follow(ctx, Result{Subscriber: got, Changed: true, PreviousPackages: prev}, schemas.StatusUpdated)
}

// remove deletes the order's subscriber, found by customer and email. One
// already gone is a success (AlreadyAbsent); a DELETE whose fate is unknown
// is looked up before another is sent.
func (r *run) remove(ctx context.Context) (Result, error) {
	if err := r.customer(ctx); err != nil {
		return Result{}, err
	}
	sub, err := r.settled(ctx, schemas.StepRemove)
	if err != nil {
		return Result{}, err
	}
	if sub == nil {
		return Result{Status: schemas.StatusRemoved, AlreadyAbsent: true}, nil
	}
	res := Result{Status: schemas.StatusRemoved, Subscriber: *sub, PreviousPackages: subscriberPackages(*sub)}
	uncertain := false
	err = r.retry(ctx, schemas.StepRemove, func() error {
		if uncertain {
			now, err := r.lookup(ctx)
			if err != nil {
				return err
			}
			uncertain = false
			if now == nil {
				return nil // the lost DELETE took effect
			}
		}
		r.attempts++
		err := r.w.api.RemoveSubscriber(ctx, sub.ID)
		var api *APIError
		switch {
		case err == nil:
		case errors.As(err, &api) && api.StatusCode == http.StatusNotFound:
			res.AlreadyAbsent = true // removed by someone else since the lookup
			return nil
		case Classify(err).UnknownFate:
			uncertain = true
		}
		return err
	})
	if err != nil {
		return Result{}, r.fail(schemas.StepRemove, schemas.ReasonAPIRejected, err)
	}
	return res, nil
}

// settled looks the order's subscriber up and, while Webex is still
// provisioning or updating it, waits and looks again, so that a change does
// not race one in progress. It returns nil when there is no such subscriber.
func (r *run) settled(ctx context.Context, step string) (*Subscriber, error) {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(r.w.cfg.StatusPollInterval),
		backoff.WithMaxInterval(10*r.w.cfg.StatusPollInterval),
		backoff.WithMaxElapsedTime(r.w.cfg.StatusMaxWait),
	)
	for {
		var sub *Subscriber
		err := r.retry(ctx, schemas.StepLookup, func() error {
			var err error
			sub, err = r.lookup(ctx)
			return err
		})
		if err != nil {
			return nil, r.fail(schemas.StepLookup, schemas.ReasonAPIRejected, err)
		}
		if sub == nil || (sub.Status != SubscriberProvisioning && sub.Status != SubscriberUpdating) {
			return sub, nil
		}
		wait := b.NextBackOff()
		if wait == backoff.Stop {
			return nil, &Error{Class: schemas.ErrorClassTransient, Reason: schemas.ReasonRetriesExhausted, Step: step,
				Message: fmt.Sprintf("subscriber still %q after %s: another change is in progress", sub.Status, r.w.cfg.StatusMaxWait)}
		}
		if err := r.wait(ctx, wait); err != nil {
			return nil, err
		}
	}
}

func anyCalling(pkgs []string) bool {
	for _, p := range pkgs {
		if schemas.IsCallingPackage(p) {
			return true
		}
	}
	return false
}

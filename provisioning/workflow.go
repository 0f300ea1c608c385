package provisioning

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"

	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// WorkflowConfig configures a Workflow. The zero value of each field selects the
// default given in its comment.
type WorkflowConfig struct {
	// RetryInitialInterval is the first backoff after a transient error. Default 500ms.
	RetryInitialInterval time.Duration
	// RetryMaxInterval caps one backoff. Default 30s.
	RetryMaxInterval time.Duration
	// RetryMaxElapsed bounds the retries of one step, from its first failure;
	// past it the order fails with reason retries_exhausted. Default 2m.
	RetryMaxElapsed time.Duration
	// RetryMaxAttempts bounds the calls of one step (0: only RetryMaxElapsed bounds them).
	RetryMaxAttempts int
	// MaxRetryAfter caps a single wait asked for by a Retry-After header. Default 60s.
	MaxRetryAfter time.Duration
	// StatusPollInterval is the first wait before polling a subscriber still in
	// progress; later waits grow up to 10 times this. Default 1s.
	StatusPollInterval time.Duration
	// StatusMaxWait bounds how long a subscriber in progress is followed. Default 5m.
	StatusMaxWait time.Duration
	// CustomerPollInterval is the first wait before a customer still in
	// progress is read again; later waits grow up to 15 times this.
	// Default 2s.
	CustomerPollInterval time.Duration
	// CustomerMaxWait bounds how long a customer order follows its customer
	// through provisioning, updating or deleting, which can take minutes.
	// Default 30m.
	CustomerMaxWait time.Duration
	// SubscriberCustomerWait bounds how long a subscriber order waits for
	// its customer to be provisioned. Default 30m.
	SubscriberCustomerWait time.Duration
	// CustomerCacheSize bounds how many customers are remembered: the Webex
	// ids of customer external ids, and the last customer order of each.
	// Default 10000.
	CustomerCacheSize int
	// ForbiddenCustomers is how many different customers must meet a 403 on
	// one step, with no success of that step between them, before the 403s
	// count as the partner's configuration fault (a missing wxc-wholesale
	// entitlement, a token without the wholesale write scope) rather than
	// each order's: then no order is failed for it any more. Default 3.
	ForbiddenCustomers int
	// OnRetry, when set, is called before each retry of a step with the error
	// and the server's Retry-After (for metrics). It must be quick.
	OnRetry func(step string, err error, retryAfter time.Duration)
}

// DefaultWorkflowConfig returns the defaults, the values the zero fields take.
func DefaultWorkflowConfig() WorkflowConfig {
	return WorkflowConfig{
		RetryInitialInterval:   500 * time.Millisecond,
		RetryMaxInterval:       30 * time.Second,
		RetryMaxElapsed:        2 * time.Minute,
		MaxRetryAfter:          60 * time.Second,
		StatusPollInterval:     time.Second,
		StatusMaxWait:          5 * time.Minute,
		CustomerPollInterval:   2 * time.Second,
		CustomerMaxWait:        30 * time.Minute,
		SubscriberCustomerWait: 30 * time.Minute,
		CustomerCacheSize:      10000,
		ForbiddenCustomers:     3,
	}
}

func (c *WorkflowConfig) setDefaults() {
	d := DefaultWorkflowConfig()
	for _, f := range []struct{ v, def *time.Duration }{
		{&c.RetryInitialInterval, &d.RetryInitialInterval}, {&c.RetryMaxInterval, &d.RetryMaxInterval},
		{&c.RetryMaxElapsed, &d.RetryMaxElapsed}, {&c.MaxRetryAfter, &d.MaxRetryAfter},
		{&c.StatusPollInterval, &d.StatusPollInterval}, {&c.StatusMaxWait, &d.StatusMaxWait},
		{&c.CustomerPollInterval, &d.CustomerPollInterval}, {&c.CustomerMaxWait, &d.CustomerMaxWait},
		{&c.SubscriberCustomerWait, &d.SubscriberCustomerWait},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if c.ForbiddenCustomers <= 0 {
		c.ForbiddenCustomers = d.ForbiddenCustomers
	}
	if c.CustomerCacheSize <= 0 {
		c.CustomerCacheSize = d.CustomerCacheSize
	}
}

// Validate reports the first setting that is out of range.
func (c WorkflowConfig) Validate() error {
	switch {
	case c.RetryMaxInterval > 0 && c.RetryInitialInterval > c.RetryMaxInterval:
		return fmt.Errorf("retry max interval %s is shorter than the initial interval %s", c.RetryMaxInterval, c.RetryInitialInterval)
	case c.RetryMaxAttempts < 0:
		return fmt.Errorf("retry max attempts %d must not be negative", c.RetryMaxAttempts)
	case c.CustomerCacheSize < 0:
		return fmt.Errorf("customer cache size %d must not be negative", c.CustomerCacheSize)
	}
	return nil
}

// Workflow runs one order through precheck, provision and status. It is safe for
// concurrent use by many orders.
type Workflow struct {
	api       *Client
	cfg       WorkflowConfig
	forbidden *forbiddenStreaks
	customers *customerBook
}

// NewWorkflow returns a Workflow that calls the API through c.
func NewWorkflow(c *Client, cfg WorkflowConfig) *Workflow {
	cfg.setDefaults()
	return &Workflow{api: c, cfg: cfg, forbidden: newForbiddenStreaks(cfg.ForbiddenCustomers),
		customers: newCustomerBook(cfg.CustomerCacheSize, cfg.CustomerPollInterval/2)}
}

// Result is a successful end of the workflow: the subscriber is provisioned,
// updated or removed, or waits on its end user.
type Result struct {
	// Status is schemas.StatusProvisioned, StatusUpdated, StatusRemoved or
	// StatusPendingUserAction.
	Status     schemas.OutcomeStatus
	Subscriber Subscriber
	// FoundByLookup is true when a lookup found the subscriber (a duplicate,
	// or a create whose answer was lost) rather than our create returning it.
	FoundByLookup bool
	// AlreadyExisted is true when the subscriber existed before this order:
	// found by a lookup, with no create of this delivery that may have made
	// it, and created (as Webex says) before the order occurred.
	AlreadyExisted bool
	// Precheck is the answer of the precheck when it passed; nil when the
	// precheck found the subscriber already there.
	Precheck *PrecheckResponse
	// Changed says, for an update, that this order changed the packages.
	Changed bool
	// AlreadyAbsent says, for a remove, that the subscriber was gone already.
	AlreadyAbsent bool
	// PreviousPackages are, for an update or a remove, the packages the
	// subscriber had before the order.
	PreviousPackages []string
	// CustomerID is the Webex id of the subscriber's customer: the order's,
	// or the one its customerExternalId resolved to.
	CustomerID string
	// Attempts counts the API calls made.
	Attempts int
}

// Error is the one error type the Workflow returns for an order that did not
// succeed. Its Class (a schemas.ErrorClass*) says what to do: permanent and
// transient (retries exhausted) fail the order; config_fault means stop taking
// orders until the fault clears.
type Error struct {
	Class string
	// Reason is the failure reason for the outcome (empty for a configuration fault).
	Reason schemas.FailureReason
	// Step is a schemas.Step*.
	Step     string
	Attempts int
	// Message explains the failure when Err alone does not.
	Message string
	// Errors holds Webex error codes that are not in Err (a subscriber in status error).
	Errors []ErrorItem
	// CustomerID is the Webex id of the customer the failure is about, when known.
	CustomerID string
	// CustomerOrderID is, for a subscriber whose customer was not ready,
	// the customer order this process carried out for it, when it saw one.
	CustomerOrderID string
	Err             error
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Err != nil {
		if msg != "" {
			msg += ": "
		}
		msg += e.Err.Error()
	}
	return fmt.Sprintf("%s failed (%s): %s", e.Step, e.Class, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Fault says how the order failed, in the words of its dead letter and its
// failed outcome, with Webex's answer.
func (e *Error) Fault() schemas.Fault {
	f := &schemas.Failure{Reason: e.Reason, Message: e.Error(), CustomerID: e.CustomerID, CustomerOrderID: e.CustomerOrderID}
	for _, it := range e.Errors {
		f.Errors = append(f.Errors, schemas.APIError{Code: it.ErrorCode, Description: it.Description})
	}
	if api := e.API(); api != nil {
		f.HTTPStatus, f.TrackingID = api.StatusCode, api.TrackingID
		for _, it := range api.Errors {
			f.Errors = append(f.Errors, schemas.APIError{Code: it.ErrorCode, Description: it.Description})
		}
	}
	return schemas.Fault{Class: e.Class, Step: e.Step, Reason: string(e.Reason), Message: f.Message, Attempts: e.Attempts, Failure: f}
}

var _ schemas.Faulter = (*Error)(nil)

// API returns the Webex answer behind the error, if there was one.
func (e *Error) API() *APIError {
	var a *APIError
	if errors.As(e.Err, &a) {
		return a
	}
	return nil
}

// Run carries out an order: it provisions, updates or removes the
// subscriber as the order's action says. Every backoff and poll interval
// goes through wait (nil: Sleep). It returns a Result, or an *Error, or the
// context's error when ctx ends first.
func (w *Workflow) Run(ctx context.Context, o schemas.Order, wait Wait) (Result, error) {
	if wait == nil {
		wait = Sleep
	}
	r := run{steps: steps{w: w, wait: wait, subject: o.CustomerID, noun: "subscriber"}, o: o}
	if o.CustomerID == "" {
		r.subject = "external:" + o.CustomerExternalID
	}
	ctx = WithTrackingPrefix(ctx, "wholesale-provisioner_"+o.OrderID)
	var res Result
	var err error
	switch o.Action {
	case schemas.ActionProvision:
		res, err = r.provision(ctx)
	case schemas.ActionUpdate:
		res, err = r.update(ctx)
	case schemas.ActionRemove:
		res, err = r.remove(ctx)
	default:
		return Result{}, &Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonInvalidOrder, Step: schemas.StepValidate,
			Message: fmt.Sprintf("action %q is not one the workflow knows", o.Action)}
	}
	res.Attempts = r.attempts
	res.CustomerID = r.o.CustomerID
	return res, r.finish(ctx, err)
}

// steps is what every order's workflow, a subscriber's or a customer's,
// keeps while it runs: its calls are retried and counted, and it waits
// through its wait hook.
type steps struct {
	w    *Workflow
	wait Wait
	// subject is whom the order's calls are about, for the 403 streaks.
	subject string
	// noun is what the order makes, for its log lines: subscriber or customer.
	noun     string
	attempts int
}

// finish is the error a workflow returns: ctx's once it ended, and an
// *Error that counts every call the order made.
func (r *steps) finish(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var we *Error
	if errors.As(err, &we) {
		we.Attempts = r.attempts
	}
	return err
}

// run holds the state of one subscriber order's workflow.
type run struct {
	steps
	o schemas.Order
	// customerWait paces and bounds, from the first wait on, how long the
	// order waits for its customer, however often it must (customerwait.go);
	// nil until it first waits.
	customerWait backoff.BackOff
	// sentAgainForCustomer says that a refused call was sent again because
	// the customer had just been changed (retryAfterCustomer).
	sentAgainForCustomer bool
}

func (r *run) provision(ctx context.Context) (Result, error) {
	if err := r.customer(ctx); err != nil {
		return Result{}, err
	}
	for {
		res, err := r.provisionOnce(ctx)
		if err == nil {
			return r.follow(ctx, res, schemas.StatusProvisioned)
		}
		again, cerr := r.retryAfterCustomer(ctx, err)
		switch {
		case cerr != nil:
			return Result{}, cerr
		case !again:
			return Result{}, err
		}
	}
}

// provisionOnce runs the precheck and the create.
func (r *run) provisionOnce(ctx context.Context) (Result, error) {
	passed, existing, err := r.precheck(ctx)
	if err != nil {
		return Result{}, err
	}
	var res Result
	if existing != nil {
		res = r.found(*existing, false)
	} else if res, err = r.create(ctx); err != nil {
		return res, err
	}
	res.Precheck = passed
	return res, nil
}

// found is the result of a subscriber found by a lookup. mayBeOurs says
// that this delivery sent a create that may have made it; otherwise it
// counts as made by this order (an earlier delivery of it) when Webex
// created it after the order's time, and as pre-existing when before or
// when Webex does not say.
func (r *run) found(sub Subscriber, mayBeOurs bool) Result {
	existed := !mayBeOurs
	if existed {
		created, err := time.Parse(time.RFC3339Nano, sub.Created)
		existed = err != nil || created.Add(ClockSkew).Before(r.o.OccurredAt)
	}
	return Result{Subscriber: sub, FoundByLookup: true, AlreadyExisted: existed}
}

// ClockSkew is how far Webex's clock (a subscriber's created time) and the
// billing system's (an order's occurredAt) may disagree when the two are
// compared: a subscriber created up to this long before the order counts
// as the order's own.
const ClockSkew = 5 * time.Second

// precheck runs the provisioning precheck and returns its answer when it
// passed. When it says the email is already a user, it looks the subscriber
// up and returns it instead, if it is this customer's.
func (r *run) precheck(ctx context.Context) (*PrecheckResponse, *Subscriber, error) {
	req := PrecheckRequest{
		ProvisioningID: r.o.ProvisioningID,
		CustomerID:     r.o.CustomerID,
		Email:          r.o.Email,
		Packages:       r.o.Packages,
	}
	if pp := apiParams(r.o.ProvisioningParameters); pp != (ProvisioningParameters{}) {
		req.ProvisioningParameters = &pp
	}
	if r.o.CustomerInfo != nil {
		req.CustomerInfo = &CustomerInfo{PrimaryEmail: r.o.CustomerInfo.PrimaryEmail}
	}
	var resp PrecheckResponse
	err := r.retry(ctx, schemas.StepPrecheck, func() error {
		var err error
		r.attempts++
		resp, err = r.w.api.Precheck(ctx, req)
		return err
	})
	var api *APIError
	switch {
	case err == nil:
		// Any 2xx is a pass: Webex gives an information code for every
		// success, not only 100, and a failure is an error answer.
		return &resp, nil, nil
	case errors.As(err, &api) && isDuplicate(api):
		sub, lerr := r.findExisting(ctx)
		if lerr != nil {
			return nil, nil, lerr
		}
		if sub == nil {
			return nil, nil, &Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonPrecheckRejected, Step: schemas.StepPrecheck,
				Message: "the email belongs to a user outside this customer", Err: err}
		}
		return nil, sub, nil
	default:
		return nil, nil, r.fail(schemas.StepPrecheck, schemas.ReasonPrecheckRejected, err)
	}
}

// create provisions the subscriber. A create whose fate is unknown is followed by
// a lookup before it is ever sent again, and a duplicate of this customer's
// subscriber is taken as success.
func (r *run) create(ctx context.Context) (Result, error) {
	req := ProvisionRequest{
		CustomerID:             r.o.CustomerID,
		Email:                  r.o.Email,
		Packages:               r.o.Packages,
		ProvisioningParameters: apiParams(r.o.ProvisioningParameters),
	}
	var (
		res        Result
		lookUp     bool // look the subscriber up before any new create
		uncertain  bool // a create of this delivery may have taken effect
		duplicated bool // the API said the email is taken
	)
	err := r.retry(ctx, schemas.StepProvision, func() error {
		if lookUp {
			sub, err := r.lookup(ctx)
			if err != nil {
				return err
			}
			lookUp = false
			if sub != nil {
				res = r.found(*sub, uncertain)
				return nil
			}
			if duplicated {
				return backoff.Permanent(&Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonAPIRejected, Step: schemas.StepProvision,
					Message: "the email belongs to a user outside this customer"})
			}
		}
		r.attempts++
		sub, _, err := r.w.api.Provision(ctx, req)
		if err == nil {
			res = Result{Subscriber: sub}
			return nil
		}
		var api *APIError
		if errors.As(err, &api) && isDuplicate(api) {
			duplicated, lookUp = true, true
			// Look up at once rather than after a backoff: nothing is overloaded.
			return errRetryNow
		}
		if Classify(err).UnknownFate {
			lookUp, uncertain = true, true
		}
		return err
	})
	if err != nil {
		var we *Error
		if errors.As(err, &we) {
			return res, we
		}
		return res, r.fail(schemas.StepProvision, schemas.ReasonAPIRejected, err)
	}
	if res.AlreadyExisted && !samePackages(res.Subscriber, r.o.Packages) {
		return res, &Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonAPIRejected, Step: schemas.StepProvision,
			Message: fmt.Sprintf("the subscriber exists with packages %v, not %v: send an update order", subscriberPackages(res.Subscriber), r.o.Packages)}
	}
	return res, nil
}

// findExisting looks the subscriber up with retries, for the precheck's duplicate.
func (r *run) findExisting(ctx context.Context) (*Subscriber, error) {
	var sub *Subscriber
	err := r.retry(ctx, schemas.StepLookup, func() error {
		var err error
		sub, err = r.lookup(ctx)
		return err
	})
	if err != nil {
		return nil, r.fail(schemas.StepLookup, schemas.ReasonAPIRejected, err)
	}
	if sub != nil && !samePackages(*sub, r.o.Packages) {
		return nil, &Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonAPIRejected, Step: schemas.StepLookup,
			Message: fmt.Sprintf("the subscriber exists with packages %v, not %v: send an update order", subscriberPackages(*sub), r.o.Packages)}
	}
	return sub, nil
}

// lookup finds this customer's subscriber with the order's email, in one call.
func (r *run) lookup(ctx context.Context) (*Subscriber, error) {
	r.attempts++
	subs, err := r.w.api.FindSubscriber(ctx, r.o.CustomerID, r.o.Email)
	if err != nil {
		return nil, err
	}
	return subs, nil
}

// follow polls a subscriber still in progress until it is provisioned (then
// the result's status is done), failed, or waiting on its end user.
func (r *run) follow(ctx context.Context, res Result, done schemas.OutcomeStatus) (Result, error) {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(r.w.cfg.StatusPollInterval),
		backoff.WithMaxInterval(10*r.w.cfg.StatusPollInterval),
		backoff.WithMaxElapsedTime(r.w.cfg.StatusMaxWait),
	)
	for {
		sub := res.Subscriber
		switch st := sub.Status; {
		case st == SubscriberProvisioned:
			res.Status = done
			return res, nil
		case strings.HasPrefix(st, "pending_"):
			res.Status = schemas.StatusPendingUserAction
			return res, nil
		case st == SubscriberError:
			return res, &Error{Class: schemas.ErrorClassPermanent, Reason: schemas.ReasonProvisioningError, Step: schemas.StepStatus,
				Message: "Webex reports the subscriber in status error", Errors: sub.Errors}
		}
		// provisioning, updating, or a status this client does not know: in progress.
		wait := b.NextBackOff()
		if wait == backoff.Stop {
			return res, &Error{Class: schemas.ErrorClassTransient, Reason: schemas.ReasonRetriesExhausted, Step: schemas.StepStatus,
				Message: fmt.Sprintf("subscriber still %q after %s", sub.Status, r.w.cfg.StatusMaxWait)}
		}
		if err := r.wait(ctx, wait); err != nil {
			return res, err
		}
		var got Subscriber
		err := r.retry(ctx, schemas.StepStatus, func() error {
			var err error
			r.attempts++
			got, err = r.w.api.GetSubscriber(ctx, sub.ID)
			return err
		})
		if err != nil {
			return res, r.fail(schemas.StepStatus, schemas.ReasonAPIRejected, err)
		}
		res.Subscriber = got
	}
}

// errRetryNow asks the retry loop to call the operation again without waiting.
var errRetryNow = errors.New("retry at once")

// retry runs op until it succeeds, meets a permanent error or a configuration
// fault, or the step's retry budget is spent. Waits honour Retry-After and go
// through the run's wait hook, so that a retrying order can give its worker
// back meanwhile.
func (r *steps) retry(ctx context.Context, step string, op func() error) error {
	// The backoff is made at the first failure, which most steps never meet:
	// the retries' time is counted from there.
	var b backoff.BackOff
	log := zerolog.Ctx(ctx)
	for {
		err := r.w.forbidden.check(step, r.subject, op())
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errRetryNow):
			continue
		}
		var perm *backoff.PermanentError
		if errors.As(err, &perm) {
			return perm.Err
		}
		d := Classify(err)
		if d.Class != schemas.ErrorClassTransient {
			return err
		}
		if b == nil {
			b = backoff.NewExponentialBackOff(
				backoff.WithInitialInterval(r.w.cfg.RetryInitialInterval),
				backoff.WithMaxInterval(r.w.cfg.RetryMaxInterval),
				backoff.WithMaxElapsedTime(r.w.cfg.RetryMaxElapsed),
			)
			if n := r.w.cfg.RetryMaxAttempts; n > 0 {
				b = backoff.WithMaxRetries(b, uint64(n-1))
			}
		}
		wait := b.NextBackOff()
		if wait == backoff.Stop {
			return err
		}
		wait = max(wait, min(d.RetryAfter, r.w.cfg.MaxRetryAfter))
		ev := log.Warn().Str("step", step).Dur("wait_ms", wait).Int("attempts", r.attempts)
		var api *APIError
		if errors.As(err, &api) {
			ev = ev.Int("http_status", api.StatusCode).Str("tracking_id", api.TrackingID).Dur("retry_after_ms", api.RetryAfter)
		}
		msg := "transient Webex error, retrying"
		if step == schemas.StepProvision && d.UnknownFate {
			msg = "the create's answer was lost (it may have taken effect); looking the " + r.noun + " up before any new create"
		}
		ev.Err(err).Msg(msg)
		if r.w.cfg.OnRetry != nil {
			r.w.cfg.OnRetry(step, err, d.RetryAfter)
		}
		if werr := r.wait(ctx, wait); werr != nil {
			return werr
		}
	}
}

// fail turns the last error of a step into the workflow's *Error.
func (r *steps) fail(step string, permanentReason schemas.FailureReason, err error) error {
	var we *Error
	if errors.As(err, &we) {
		return we
	}
	d := Classify(err)
	e := &Error{Class: d.Class, Step: step, Err: err}
	switch d.Class {
	case schemas.ErrorClassPermanent:
		e.Reason = permanentReason
	case schemas.ErrorClassTransient:
		e.Reason = schemas.ReasonRetriesExhausted
		e.Message = "retries exhausted"
	}
	return e
}

// Wait waits d, or until ctx ends, and then returns ctx's error. The workflow
// waits through one for every backoff and poll interval, so that its caller
// can do something with the time: a consumer gives its worker back.
type Wait func(ctx context.Context, d time.Duration) error

// Sleep is the plain Wait: a timer.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func isDuplicate(e *APIError) bool {
	return e.StatusCode == http.StatusConflict || e.HasCode(CodeEmailInUse)
}

func subscriberPackages(s Subscriber) []string {
	if len(s.Packages) > 0 {
		return s.Packages
	}
	if s.Package != "" {
		return []string{s.Package}
	}
	return nil
}

func samePackages(s Subscriber, want []string) bool {
	have := subscriberPackages(s)
	if len(have) != len(want) {
		return false
	}
	for i := range have {
		if have[i] != want[i] {
			return false
		}
	}
	return true
}

func apiParams(p *schemas.ProvisioningParameters) ProvisioningParameters {
	if p == nil {
		return ProvisioningParameters{}
	}
	return ProvisioningParameters{
		FirstName:          p.FirstName,
		LastName:           p.LastName,
		PrimaryPhoneNumber: p.PrimaryPhoneNumber,
		Extension:          p.Extension,
		LocationID:         p.LocationID,
	}
}

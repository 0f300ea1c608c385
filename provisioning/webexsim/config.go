package webexsim

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

// Defaults that New applies to the zero fields of a Config.
const (
	DefaultBasePath               = "/v1"
	DefaultRetryAfter             = time.Second
	DefaultPendingMigrationDomain = "free.example"
	DefaultErrorDomain            = "error.example"
	DefaultTimeoutHold            = 30 * time.Second
	DefaultCustomerErrorDomain    = "customer-error.example"
	DefaultCustomerPartialDomain  = "customer-partial.example"
	DefaultCustomerReviewDomain   = "customer-review.example"
)

// Error codes that the simulator puts in its answers. Cisco does not publish the
// codes of a failed precheck or of a failed provisioning: these two are the
// simulator's own choice, so a client must not give them any meaning.
const (
	// PrecheckRejectCode is the errorCode of a precheck rejected because of the email.
	PrecheckRejectCode = 10012
	// ProvisioningErrorCode is the errorCode in errors[] of a subscriber whose
	// provisioning ended in status "error".
	ProvisioningErrorCode = 1234
	// PermanentRejectCode is the errorCode of a create refused by the Permanent
	// fault (403).
	PermanentRejectCode = 10403
	// MigrationErrorCode is the errorCode in errors[] of a subscriber whose
	// pending user migration ended in status "error" (DeclineDomain, or
	// Server.ResolvePending to error).
	MigrationErrorCode = 1235

	// The customer codes below are the simulator's own too: Cisco publishes
	// none for these refusals and failures.

	// CustomerExistsCode is the errorCode of a customer create, precheck or
	// update refused with 409 because another customer has its externalId.
	CustomerExistsCode = 10409
	// CustomerHasSubscribersCode is the errorCode of a customer delete refused
	// with 409 because subscribers of the customer remain.
	CustomerHasSubscribersCode = 10419
	// CustomerNotReadyCode is the errorCode of a subscriber precheck or create
	// refused with 400 because its customer is a customer of the simulator
	// whose status is neither provisioned nor provisioned_with_errors.
	CustomerNotReadyCode = 10425
	// CustomerProvisioningErrorCode is the errorCode in errors[] of a customer
	// whose provisioning ended in status "error" (CustomerErrorDomain, or
	// Server.ResolveCustomer to error).
	CustomerProvisioningErrorCode = 1236
	// CustomerPackageErrorCode is the errorCode in the errors[] of the package
	// that failed, in resourceDetails.packages, of a customer that ended in
	// status "provisioned_with_errors" (CustomerPartialDomain, or
	// Server.ResolveCustomer to provisioned_with_errors).
	CustomerPackageErrorCode = 1237
)

// Config configures a Server. The zero value is a usable simulator: any bearer
// token, no latency, no faults, no rate limit.
type Config struct {
	// BasePath is where the API is mounted, so that the base URL is
	// http://host:port + BasePath. Default "/v1".
	BasePath string

	// Token is the accepted bearer token. "" accepts any non-empty bearer token.
	// A missing or wrong token is answered 401. It can be changed with SetToken.
	Token string

	// Latency is added to every API call; the sleep ends early when the request's
	// context is done. Default 0. It can be changed with SetLatency.
	Latency time.Duration
	// LatencyJitter adds a uniform extra latency of 0 to LatencyJitter. Default 0.
	LatencyJitter time.Duration

	// Faults are the probabilities of injected faults per API call. Default none.
	// They can be changed with SetFaults.
	Faults FaultRates
	// RetryAfter is the Retry-After value (rounded up to whole seconds) of
	// injected 429 and 423 answers. Default 1s.
	RetryAfter time.Duration
	// TimeoutHold is how long a call chosen for the Timeout fault is held when the
	// client does not give up first. Default 30s.
	TimeoutHold time.Duration

	// RateLimit is the number of requests per second allowed across all API calls
	// (a token bucket with a burst of max(1, RateLimit/10)). Calls above it are
	// answered 429 with Retry-After: 1. Default 0: unlimited.
	RateLimit float64

	// PrecheckRejectEmails are emails (compared case-insensitively) whose precheck
	// is rejected with 400 and PrecheckRejectCode: a subscriber's email, or the
	// customerInfo.primaryEmail of a customer's precheck. Default none.
	PrecheckRejectEmails []string
	// PrecheckRejectDomain rejects the precheck of every email in this domain,
	// e.g. "reject.example", for subscribers and customers alike. Default "":
	// none. Only the precheck rejects: a provision call for such an email
	// succeeds.
	PrecheckRejectDomain string
	// PrecheckInfoAsArray makes a successful precheck (of a subscriber or of a
	// customer) answer info as an array of one object, as the HTML reference
	// page and the examples of Cisco's OpenAPI description show, instead of the
	// single object of its schemas. Default false: an object.
	PrecheckInfoAsArray bool
	// NotEntitled answers every precheck, of a subscriber or of a customer,
	// 403, as Webex does for a partner without the wxc-wholesale entitlement
	// (or the partner-testing setting). It can be changed with SetEntitled.
	// Default false.
	NotEntitled bool
	// PrecheckInfoCode is the infoCode of a successful precheck. Cisco gives
	// an information code for every success; 100 is the usual one, and a
	// client must take any 2xx as a pass whatever its code. Default 100.
	PrecheckInfoCode int

	// PendingMigrationDomain holds the emails that already have a free Webex
	// account: provisioning them is answered 202 with status
	// "pending_user_migration", which never changes unless a test calls
	// Server.ResolvePending (or POST /_sim/resolve). Default "free.example".
	PendingMigrationDomain string
	// AcceptDomain holds emails whose free Webex account is moved once the user
	// consents: provisioning them is answered 202 "pending_user_migration", as
	// for PendingMigrationDomain, and PendingResolveDelay later the subscriber
	// shows "provisioned" with a personId, lastStatusChange being that time.
	// It is how a test follows a pending subscriber to its end. Default "":
	// none. The domains of this Config must differ from each other.
	AcceptDomain string
	// DeclineDomain is AcceptDomain for users who never consent: after 202
	// "pending_user_migration" and PendingResolveDelay the subscriber shows
	// status "error", with errors[] holding MigrationErrorCode. Default "": none.
	DeclineDomain string
	// PendingResolveDelay is how long subscribers in AcceptDomain and
	// DeclineDomain stay "pending_user_migration". Default 0: resolved at once,
	// so that only the create's 202 answer shows the pending status and the
	// first read after it (GET or list) shows the outcome; a consent move is
	// then answered 409. Give a delay to see the pending status in reads.
	PendingResolveDelay time.Duration
	// ErrorDomain holds the emails whose provisioning fails: the subscriber is
	// created with status "provisioning" and then (after ProvisioningDelay, or at
	// once for the next GET) shows status "error" with errors[] holding
	// ProvisioningErrorCode. Default "error.example".
	ErrorDomain string
	// ProvisioningDelay, when positive, makes a new subscriber "provisioning"
	// first and "provisioned" after this delay, as later GET and list calls show.
	// Default 0: provisioned at once, as in Cisco's OpenAPI status enum.
	ProvisioningDelay time.Duration
	// UpdateDelay, when positive, makes a provisioned subscriber show status
	// "updating" for this long after a PUT, then "provisioned" again, as the
	// PUT's answer and later GET and list calls show; lastStatusChange moves at
	// both changes. The new packages show at once, in the PUT's answer too, so
	// that a client that lost the answer can see that its PUT took effect. A
	// PUT while "provisioning" or "updating" is answered 409. Default 0: the
	// update is in effect at once and the status stays "provisioned" (and
	// lastStatusChange does not move), as in Cisco's OpenAPI status enum. A
	// subscriber pending on its end user or in error only has its packages
	// replaced, at once: Cisco documents the update for provisioned
	// subscribers, and the simulator does not guess further.
	UpdateDelay time.Duration

	// The Wholesale Customers calls (/wholesale/customers). A customer's create
	// is answered 202 and the customer shows status "provisioning" until its
	// final state, chosen by the domain of customerInfo.primaryEmail: one of
	// the three domains below, else "provisioned" (also when the create names
	// an orgId and sends no customerInfo). The domains of this Config,
	// subscriber and customer ones together, must differ from each other.

	// CustomerErrorDomain holds the customer emails whose provisioning fails:
	// the customer ends in status "error" with errors[] holding
	// CustomerProvisioningErrorCode. Default "customer-error.example".
	CustomerErrorDomain string
	// CustomerPartialDomain holds the customer emails whose provisioning
	// fails for the first package only: the customer ends in status
	// "provisioned_with_errors", that package's resourceDetails entry in
	// status "error" with CustomerPackageErrorCode, the others provisioned.
	// Default "customer-partial.example".
	CustomerPartialDomain string
	// CustomerReviewDomain holds the customer emails that need a Denied Party
	// List compliance check: the customer ends in status "pending_rpl_review",
	// which never changes unless a test calls Server.ResolveCustomer (or POST
	// /_sim/resolve-customer). Default "customer-review.example".
	CustomerReviewDomain string
	// CustomerProvisioningDelay is how long a new customer shows status
	// "provisioning" before its final state. Default 0: the create's 202
	// answer is the only sign of it, and the first read after it (GET or
	// list) shows the final state.
	CustomerProvisioningDelay time.Duration
	// CustomerUpdateDelay is how long a customer shows status "updating"
	// after a PUT before it is "provisioned" with the new packages. The
	// externalId and address a PUT sends show at once. Default 0: the first
	// read after the PUT's 202 answer shows the outcome.
	CustomerUpdateDelay time.Duration
	// CustomerDeleteDelay is how long a customer shows status "deleting"
	// after a DELETE before it is gone (GET answers 404, lists leave it out,
	// its externalId is free). Default 0: gone at the first read after the
	// DELETE's 202 answer.
	CustomerDeleteDelay time.Duration

	// Seed seeds the randomness of faults and jitter. Default 0: time-based.
	Seed int64
}

// FaultRates are the probabilities, each from 0 to 1, of the faults injected
// into API calls. One draw per call picks at most one of the status and
// connection faults, so their sum must not exceed 1; LostResponse is drawn
// separately, and Permanent is not drawn but picked by email. Faults are
// injected after authentication and the rate limit, and before the endpoint
// acts, except LostResponse (after it) and Permanent (in the create endpoint,
// once it has read the email).
type FaultRates struct {
	// Status429 answers 429 with Retry-After (Config.RetryAfter).
	Status429 float64 `json:"status429"`
	// Status423 answers 423 with Retry-After (Config.RetryAfter).
	Status423 float64 `json:"status423"`
	// Status500 answers 500.
	Status500 float64 `json:"status500"`
	// Status502 answers 502.
	Status502 float64 `json:"status502"`
	// Status503 answers 503.
	Status503 float64 `json:"status503"`
	// Status504 answers 504.
	Status504 float64 `json:"status504"`
	// Timeout holds the call until the client gives up (its request context is
	// done), Config.TimeoutHold has passed or Serve shuts down, then answers 504.
	Timeout float64 `json:"timeout"`
	// Reset closes the connection without an answer.
	Reset float64 `json:"reset"`
	// LostResponse applies to POST /wholesale/subscribers and POST
	// /wholesale/customers (and, with LostResponseAll, to PUT and DELETE of
	// /wholesale/subscribers/{id} and /wholesale/customers/{id}): the endpoint
	// acts (it creates, updates or removes the subscriber or customer when it can),
	// then its answer is replaced by 504, or by a connection reset when
	// LostResponseAsReset is set, so that the client cannot know what happened.
	LostResponse float64 `json:"lostResponse"`
	// LostResponseAsReset makes a lost response a connection reset instead of 504.
	LostResponseAsReset bool `json:"lostResponseAsReset"`
	// LostResponseAll extends LostResponse, at the same rate, to updates (PUT)
	// and removes (DELETE), whose unknown fate a careful client resolves by
	// looking the subscriber up before it sends the call again. Default false:
	// creates only. The precheck, reads and consent moves, which a client may
	// repeat freely, are never affected.
	LostResponseAll bool `json:"lostResponseAll"`
	// Permanent is the share of emails whose create (POST /wholesale/subscribers)
	// is always refused with 403 and PermanentRejectCode, before the endpoint
	// acts, however often it is sent: a customer this partner does not manage.
	// Unlike the other faults it is not drawn at random but picked by a hash of
	// the email (see FailsPermanently), so that a test can compute which orders
	// must fail. The precheck of such an email passes. It counts apart from the
	// status and connection faults, like LostResponse.
	Permanent float64 `json:"permanent"`
}

// losesAnswer reports whether LostResponse applies to the endpoint.
func (f *FaultRates) losesAnswer(ep endpoint) bool {
	switch ep {
	case epCreate, epCustomerCreate:
		return true
	case epUpdate, epDelete, epCustomerUpdate, epCustomerDelete:
		return f.LostResponseAll
	}
	return false
}

// zero reports whether no fault is enabled.
func (f FaultRates) zero() bool {
	return f.Status429 == 0 && f.Status423 == 0 && f.Status500 == 0 && f.Status502 == 0 &&
		f.Status503 == 0 && f.Status504 == 0 && f.Timeout == 0 && f.Reset == 0 && f.LostResponse == 0 &&
		f.Permanent == 0
}

// FailsPermanently reports whether the create of email is refused for good
// under these rates: whether FailsPermanently(email, f.Permanent).
func (f FaultRates) FailsPermanently(email string) bool {
	return FailsPermanently(email, f.Permanent)
}

// FailsPermanently reports whether an email falls in the given share of emails
// whose create the simulator refuses for good (FaultRates.Permanent). The choice
// depends only on the email (compared case-insensitively) and the share, not on
// Config.Seed or on earlier calls, so that a test knows in advance which orders
// fail; a larger share keeps every email a smaller one picked.
func FailsPermanently(email string, share float64) bool {
	if !(share > 0) {
		return false
	}
	return emailFraction(email) < share
}

// emailFraction maps an email to a number in [0, 1), evenly spread: FNV-1a
// of the lower-cased email, mixed by the finaliser of SplitMix64.
func emailFraction(email string) float64 {
	key := strings.ToLower(strings.TrimSpace(email))
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return float64(h>>11) / (1 << 53)
}

// Validate reports whether every rate is between 0 and 1 and the rates drawn
// together add up to at most 1.
func (f FaultRates) Validate() error {
	rates := []struct {
		name string
		v    float64
	}{
		{"status429", f.Status429}, {"status423", f.Status423}, {"status500", f.Status500},
		{"status502", f.Status502}, {"status503", f.Status503}, {"status504", f.Status504},
		{"timeout", f.Timeout}, {"reset", f.Reset}, {"lostResponse", f.LostResponse},
		{"permanent", f.Permanent},
	}
	sum := 0.0
	for _, r := range rates {
		if math.IsNaN(r.v) || r.v < 0 || r.v > 1 {
			return fmt.Errorf("fault rate %s = %v: want a probability from 0 to 1", r.name, r.v)
		}
		if r.name != "lostResponse" && r.name != "permanent" {
			sum += r.v
		}
	}
	// A little slack, so that rates like 0.1 × 10 are not refused for rounding.
	if sum > 1+1e-9 {
		return fmt.Errorf("fault rates add up to %v: the status and connection faults must add up to at most 1", sum)
	}
	return nil
}

// setDefaults fills in the zero fields that have a non-zero default.
func (c *Config) setDefaults() {
	if c.BasePath == "" {
		c.BasePath = DefaultBasePath
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.TimeoutHold == 0 {
		c.TimeoutHold = DefaultTimeoutHold
	}
	if c.PendingMigrationDomain == "" {
		c.PendingMigrationDomain = DefaultPendingMigrationDomain
	}
	if c.ErrorDomain == "" {
		c.ErrorDomain = DefaultErrorDomain
	}
	if c.CustomerErrorDomain == "" {
		c.CustomerErrorDomain = DefaultCustomerErrorDomain
	}
	if c.CustomerPartialDomain == "" {
		c.CustomerPartialDomain = DefaultCustomerPartialDomain
	}
	if c.CustomerReviewDomain == "" {
		c.CustomerReviewDomain = DefaultCustomerReviewDomain
	}
	if c.PrecheckInfoCode == 0 {
		c.PrecheckInfoCode = provisioning.PrecheckSuccessCode
	}
}

// Validate reports the first invalid field of c, after defaults are applied.
func (c Config) Validate() error {
	c.setDefaults()
	if !strings.HasPrefix(c.BasePath, "/") || (len(c.BasePath) > 1 && strings.HasSuffix(c.BasePath, "/")) {
		return fmt.Errorf("base path %q: want a path that starts with / and does not end with /", c.BasePath)
	}
	if c.BasePath == "/_sim" || strings.HasPrefix(c.BasePath, adminPrefix) {
		return fmt.Errorf("base path %q: %s is reserved for the admin endpoints", c.BasePath, adminPrefix)
	}
	switch {
	case c.Latency < 0:
		return errors.New("latency must not be negative")
	case c.LatencyJitter < 0:
		return errors.New("latency jitter must not be negative")
	case c.RetryAfter < 0:
		return errors.New("retry-after must not be negative")
	case c.TimeoutHold < 0:
		return errors.New("timeout hold must not be negative")
	case c.ProvisioningDelay < 0:
		return errors.New("provisioning delay must not be negative")
	case c.UpdateDelay < 0:
		return errors.New("update delay must not be negative")
	case c.PendingResolveDelay < 0:
		return errors.New("pending resolve delay must not be negative")
	case c.CustomerProvisioningDelay < 0:
		return errors.New("customer provisioning delay must not be negative")
	case c.CustomerUpdateDelay < 0:
		return errors.New("customer update delay must not be negative")
	case c.CustomerDeleteDelay < 0:
		return errors.New("customer delete delay must not be negative")
	case math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) || c.RateLimit < 0:
		return fmt.Errorf("rate limit %v: want a finite number of requests per second, 0 for none", c.RateLimit)
	}
	// Each domain decides what a create does: one in two roles would be
	// decided by the order of the checks, silently. A customer domain shared
	// with a subscriber one would not be ambiguous in code (the two creates
	// read different emails) but would be to whoever writes a test: an email
	// would mean one outcome as a customer's and another as a subscriber's.
	domains := []struct{ name, v string }{
		{"pending migration domain", c.PendingMigrationDomain}, {"accept domain", c.AcceptDomain},
		{"decline domain", c.DeclineDomain}, {"error domain", c.ErrorDomain},
		{"customer error domain", c.CustomerErrorDomain}, {"customer partial domain", c.CustomerPartialDomain},
		{"customer review domain", c.CustomerReviewDomain},
	}
	for i, a := range domains {
		for _, b := range domains[i+1:] {
			av, bv := strings.ToLower(strings.TrimSpace(a.v)), strings.ToLower(strings.TrimSpace(b.v))
			if av != "" && av == bv {
				return fmt.Errorf("%s and %s are both %q: give each its own domain", a.name, b.name, a.v)
			}
		}
	}
	if err := c.Faults.Validate(); err != nil {
		return err
	}
	return nil
}

package provisioning

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// APIError is a non-2xx answer of the Webex API. Its text never holds the token.
type APIError struct {
	Method string
	// Endpoint is the path template, e.g. /wholesale/subscribers/{id}.
	Endpoint   string
	Idempotent bool
	StatusCode int
	Message    string
	Errors     []ErrorItem
	TrackingID string
	// RetryAfter is the server's Retry-After, zero when absent.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "webex %s %s: %d %s", e.Method, e.Endpoint, e.StatusCode, e.Message)
	for _, it := range e.Errors {
		if it.ErrorCode != 0 {
			fmt.Fprintf(&b, " [%d: %s]", it.ErrorCode, it.Description)
		} else if it.Description != "" && it.Description != e.Message {
			fmt.Fprintf(&b, " [%s]", it.Description)
		}
	}
	if e.TrackingID != "" {
		fmt.Fprintf(&b, " (trackingId %s)", e.TrackingID)
	}
	return b.String()
}

// HasCode reports whether the answer carries the given Webex error code.
func (e *APIError) HasCode(code int) bool {
	for _, it := range e.Errors {
		if it.ErrorCode == code {
			return true
		}
	}
	return false
}

// TransportError is a call that got no usable answer: the connection failed, timed
// out or was reset, or the answer could not be read.
type TransportError struct {
	Method     string
	Endpoint   string
	Idempotent bool
	TrackingID string
	// Status is the HTTP status when an answer arrived but its body was unusable.
	Status int
	Err    error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("webex %s %s: %v (trackingId %s)", e.Method, e.Endpoint, e.Err, e.TrackingID)
}

func (e *TransportError) Unwrap() error { return e.Err }

// TokenError means no access token could be had: a configuration fault.
type TokenError struct{ Err error }

func (e *TokenError) Error() string { return "getting Webex access token: " + e.Err.Error() }
func (e *TokenError) Unwrap() error { return e.Err }

// Decision is the classification of one error.
type Decision struct {
	// Class is schemas.ErrorClassTransient (may succeed later: retry after a
	// backoff), schemas.ErrorClassPermanent (will fail again: fail the order),
	// or schemas.ErrorClassConfigFault (nobody's order's fault: stop taking
	// orders until it clears). The zero value is no class, so that a
	// forgotten classification shows.
	Class string
	// UnknownFate is true when a non-idempotent call (a create) may have taken
	// effect: it must not be repeated before the subscriber is looked up.
	UnknownFate bool
	// RetryAfter is how long the server asked callers to wait (zero when it did not).
	RetryAfter time.Duration
}

// Classify is the one place where errors of the Webex API and its transport get
// their class. See NOTES.md of the API pages: 429/423 wait for Retry-After (a
// 429 pauses every caller, a 423 only the call that met it); 5xx and transport
// failures are transient, but a create that may have reached the server has an
// unknown fate; 401, and a 403 that customer after customer meets
// (ForbiddenFault), are configuration faults; other 4xx are permanent.
func Classify(err error) Decision {
	var api *APIError
	var tr *TransportError
	var tok *TokenError
	var denied *ForbiddenFault
	switch {
	case err == nil:
		return Decision{}
	case errors.As(err, &tok), errors.As(err, &denied):
		return Decision{Class: schemas.ErrorClassConfigFault}
	case errors.As(err, &api):
		return classifyStatus(api)
	case errors.As(err, &tr):
		if tr.Status >= 200 && tr.Status <= 299 {
			// The server answered success but the body was unusable: a create did happen.
			return Decision{Class: schemas.ErrorClassTransient, UnknownFate: !tr.Idempotent}
		}
		if neverSent(tr.Err) {
			return Decision{Class: schemas.ErrorClassTransient}
		}
		return Decision{Class: schemas.ErrorClassTransient, UnknownFate: !tr.Idempotent}
	case errors.Is(err, context.DeadlineExceeded):
		return Decision{Class: schemas.ErrorClassTransient, UnknownFate: true}
	default:
		// Unknown errors are retried (bounded by the retry budget) rather than
		// failing an order that may well succeed; a create's fate is then unknown.
		return Decision{Class: schemas.ErrorClassTransient, UnknownFate: true}
	}
}

func classifyStatus(e *APIError) Decision {
	if e.HasCode(CodeCallingMaintenance) {
		return Decision{Class: schemas.ErrorClassTransient, RetryAfter: e.RetryAfter}
	}
	switch s := e.StatusCode; {
	case s == http.StatusTooManyRequests, s == http.StatusLocked:
		// Rejected before any work was done: safe to repeat, after the wait.
		return Decision{Class: schemas.ErrorClassTransient, RetryAfter: e.RetryAfter}
	case s == http.StatusUnauthorized, s >= 300 && s <= 399:
		// A redirect is outside the API's description: the base URL is wrong
		// for every order alike.
		return Decision{Class: schemas.ErrorClassConfigFault}
	case s == http.StatusInternalServerError, s == http.StatusBadGateway,
		s == http.StatusServiceUnavailable, s == http.StatusGatewayTimeout:
		return Decision{Class: schemas.ErrorClassTransient, UnknownFate: !e.Idempotent, RetryAfter: e.RetryAfter}
	case s == http.StatusRequestTimeout:
		return Decision{Class: schemas.ErrorClassTransient, UnknownFate: !e.Idempotent}
	case s >= 500:
		return Decision{Class: schemas.ErrorClassTransient, UnknownFate: !e.Idempotent, RetryAfter: e.RetryAfter}
	default:
		// 400, 403, 404, 405, 409, 410, 415, 428 and any other 4xx: this order
		// will get the same answer however often it is sent.
		return Decision{Class: schemas.ErrorClassPermanent}
	}
}

// neverSent reports whether the request surely did not reach the server (the
// connection could not be made), so that even a create may be repeated blindly.
func neverSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

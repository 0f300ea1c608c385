package provisioning

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/schemas"
)

func TestClassify(t *testing.T) {
	const (
		get      = "GET"
		post     = "POST"
		validate = "validate" // POST /validate: changes nothing, safe to repeat
	)
	apiErr := func(method string, status int, codes ...int) error {
		e := &APIError{Method: "POST", Endpoint: PathSubscribers, StatusCode: status, Message: "x"}
		switch method {
		case get:
			e.Method, e.Idempotent = "GET", true
		case validate:
			e.Endpoint, e.Idempotent = PathValidate, true
		}
		for _, c := range codes {
			e.Errors = append(e.Errors, ErrorItem{ErrorCode: c})
		}
		return e
	}
	withRetryAfter := func(err error, d time.Duration) error {
		err.(*APIError).RetryAfter = d
		return err
	}
	transport := func(method string, err error) error {
		return &TransportError{Method: method, Endpoint: PathSubscribers, Idempotent: method != post, Err: err}
	}
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}

	tests := []struct {
		name string
		err  error
		want Decision
	}{
		// Every status code of the API pages, for the create (POST), a read
		// (GET) and the precheck (POST, idempotent).
		{"400 create", apiErr(post, 400), Decision{Class: schemas.ErrorClassPermanent}},
		{"400 get", apiErr(get, 400), Decision{Class: schemas.ErrorClassPermanent}},
		{"401 create", apiErr(post, 401), Decision{Class: schemas.ErrorClassConfigFault}},
		{"401 get", apiErr(get, 401), Decision{Class: schemas.ErrorClassConfigFault}},
		{"401 validate", apiErr(validate, 401), Decision{Class: schemas.ErrorClassConfigFault}},
		{"403 create", apiErr(post, 403), Decision{Class: schemas.ErrorClassPermanent}},
		{"404 get", apiErr(get, 404), Decision{Class: schemas.ErrorClassPermanent}},
		{"405 create", apiErr(post, 405), Decision{Class: schemas.ErrorClassPermanent}},
		{"409 create", apiErr(post, 409, CodeEmailInUse), Decision{Class: schemas.ErrorClassPermanent}},
		{"410 get", apiErr(get, 410), Decision{Class: schemas.ErrorClassPermanent}},
		{"415 create", apiErr(post, 415), Decision{Class: schemas.ErrorClassPermanent}},
		{"428 create", apiErr(post, 428), Decision{Class: schemas.ErrorClassPermanent}},
		{"423 create with Retry-After", withRetryAfter(apiErr(post, 423), 3*time.Second), Decision{Class: schemas.ErrorClassTransient, RetryAfter: 3 * time.Second}},
		{"429 create with Retry-After", withRetryAfter(apiErr(post, 429), 2*time.Second), Decision{Class: schemas.ErrorClassTransient, RetryAfter: 2 * time.Second}},
		{"429 get without Retry-After", apiErr(get, 429), Decision{Class: schemas.ErrorClassTransient}},
		{"429 validate", withRetryAfter(apiErr(validate, 429), time.Second), Decision{Class: schemas.ErrorClassTransient, RetryAfter: time.Second}},
		{"500 get", apiErr(get, 500), Decision{Class: schemas.ErrorClassTransient}},
		{"500 create", apiErr(post, 500), Decision{Class: schemas.ErrorClassTransient, UnknownFate: true}},
		{"502 create", apiErr(post, 502), Decision{Class: schemas.ErrorClassTransient, UnknownFate: true}},
		{"502 get", apiErr(get, 502), Decision{Class: schemas.ErrorClassTransient}},
		{"503 create", apiErr(post, 503), Decision{Class: schemas.ErrorClassTransient, UnknownFate: true}},
		{"503 validate", apiErr(validate, 503), Decision{Class: schemas.ErrorClassTransient}},
		{"503 with Retry-After", withRetryAfter(apiErr(get, 503), 5*time.Second), Decision{Class: schemas.ErrorClassTransient, RetryAfter: 5 * time.Second}},
		{"504 create", apiErr(post, 504), Decision{Class: schemas.ErrorClassTransient, UnknownFate: true}},
		{"504 get", apiErr(get, 504), Decision{Class: schemas.ErrorClassTransient}},
		{"calling maintenance 2560 on a 400", apiErr(post, 400, CodeCallingMaintenance), Decision{Class: schemas.ErrorClassTransient}},

		// Transport errors.
		{"connection refused create", transport(post, dial), Decision{Class: schemas.ErrorClassTransient}},
		{"connection reset create", transport(post, reset), Decision{Class: schemas.ErrorClassTransient, UnknownFate: true}},
		{"connection reset get", transport(get, reset), Decision{Class: schemas.ErrorClassTransient}},
		{"EOF create", transport(post, io.ErrUnexpectedEOF), Decision{Class: schemas.ErrorClassTransient, UnknownFate: true}},
		{"timeout create", transport(post, context.DeadlineExceeded), Decision{Class: schemas.ErrorClassTransient, UnknownFate: true}},
		{"timeout get", transport(get, context.DeadlineExceeded), Decision{Class: schemas.ErrorClassTransient}},
		{"DNS failure create", transport(post, &net.DNSError{Err: "no such host", Name: "webexapis.com"}), Decision{Class: schemas.ErrorClassTransient}},
		{"2xx with unreadable body create", &TransportError{Method: post, Status: 200, Err: errors.New("bad json")}, Decision{Class: schemas.ErrorClassTransient, UnknownFate: true}},
		{"token unavailable", &TokenError{Err: errors.New("no file")}, Decision{Class: schemas.ErrorClassConfigFault}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify = %+v, want %+v", got, tt.want)
			}
			// Wrapping must not change the class.
			if got := Classify(fmt.Errorf("provisioning: %w", tt.err)); got != tt.want {
				t.Errorf("Classify(wrapped) = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"2":                             2 * time.Second,
		"0":                             0,
		"-1":                            0,
		"1.5":                           1500 * time.Millisecond,
		"Mon, 23 Nov 2026 12:00:10 GMT": 10 * time.Second,
		"garbage":                       0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestAPIErrorText(t *testing.T) {
	e := &APIError{Method: "POST", Endpoint: PathSubscribers, StatusCode: 409, Message: "Conflict",
		Errors: []ErrorItem{{ErrorCode: CodeEmailInUse, Description: "The email is already associated with an existing user."}}, TrackingID: "T1"}
	want := "webex POST /wholesale/subscribers: 409 Conflict [10022: The email is already associated with an existing user.] (trackingId T1)"
	if e.Error() != want {
		t.Errorf("Error() = %q\nwant %q", e.Error(), want)
	}
}

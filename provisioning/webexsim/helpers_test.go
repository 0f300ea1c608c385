package webexsim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

const testToken = "sim-test-token-5f2c"

// harness is a simulator behind an httptest server with a client for it.
type harness struct {
	t    *testing.T
	sim  *webexsim.Server
	srv  *httptest.Server
	base string // the API base URL
}

// newHarness starts a simulator configured by cfg; the token is testToken
// unless cfg sets one. The server is closed when the test ends.
func newHarness(t *testing.T, cfg webexsim.Config) *harness {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	sim := webexsim.New(cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &harness{t: t, sim: sim, srv: srv, base: sim.BaseURL(srv.URL)}
}

// result is a finished call.
type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) errorBody(t *testing.T) provisioning.ErrorBody {
	t.Helper()
	var eb provisioning.ErrorBody
	if err := json.Unmarshal(r.body, &eb); err != nil {
		t.Fatalf("decoding error body %q: %v", r.body, err)
	}
	return eb
}

func (r result) subscriber(t *testing.T) provisioning.Subscriber {
	t.Helper()
	var sub provisioning.Subscriber
	if err := json.Unmarshal(r.body, &sub); err != nil {
		t.Fatalf("decoding subscriber %q: %v", r.body, err)
	}
	return sub
}

// call is one request; zero fields take the defaults of harness.do.
type call struct {
	method      string
	path        string // relative to the base URL, or absolute when it starts with http
	body        any    // JSON-encoded unless a string, sent as is
	contentType *string
	token       *string
	header      map[string]string
	ctx         context.Context
}

func strp(s string) *string { return &s }

// do sends c with the test token and a JSON content type unless c says
// otherwise, and fails the test on a transport error.
func (h *harness) do(c call) result {
	h.t.Helper()
	res, err := h.try(c)
	if err != nil {
		h.t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	return res
}

// try is do without failing the test on a transport error.
func (h *harness) try(c call) (result, error) {
	h.t.Helper()
	var body io.Reader
	switch b := c.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			h.t.Fatalf("encoding request body: %v", err)
		}
		body = bytes.NewReader(raw)
	}
	url := c.path
	if !strings.HasPrefix(url, "http") {
		url = h.base + c.path
	}
	ctx := c.ctx
	if ctx == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, c.method, url, body)
	if err != nil {
		h.t.Fatalf("building request: %v", err)
	}
	if body != nil {
		ct := "application/json"
		if c.contentType != nil {
			ct = *c.contentType
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
	}
	tok := testToken
	if c.token != nil {
		tok = *c.token
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, err
	}
	return result{status: resp.StatusCode, header: resp.Header, body: raw}, nil
}

// provisionBody returns a valid provision request for email.
func provisionBody(customerID, email string) provisioning.ProvisionRequest {
	return provisioning.ProvisionRequest{
		CustomerID: customerID,
		Email:      email,
		Packages:   []string{"webex_calling"},
		ProvisioningParameters: provisioning.ProvisioningParameters{
			FirstName: "Ada", LastName: "Lovelace", PrimaryPhoneNumber: "+12405551212", Extension: "1212",
		},
	}
}

func (h *harness) create(customerID, email string) result {
	h.t.Helper()
	return h.do(call{method: http.MethodPost, path: provisioning.PathSubscribers, body: provisionBody(customerID, email)})
}

// mustCreate provisions email and returns the subscriber, failing unless the
// answer is 200 or 202.
func (h *harness) mustCreate(customerID, email string) provisioning.Subscriber {
	h.t.Helper()
	res := h.create(customerID, email)
	if res.status != http.StatusOK && res.status != http.StatusAccepted {
		h.t.Fatalf("creating %s: status %d, body %s", email, res.status, res.body)
	}
	return res.subscriber(h.t)
}

// wantError checks that res is an error answer of the API with status, a JSON
// content type, a message, a tracking id and, when code is not 0, an error
// item with that code.
func wantError(t *testing.T, res result, status, code int) provisioning.ErrorBody {
	t.Helper()
	if res.status != status {
		t.Fatalf("status = %d, want %d (body %s)", res.status, status, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	eb := res.errorBody(t)
	if eb.Message == "" {
		t.Errorf("error body %s has no message", res.body)
	}
	if eb.TrackingID == "" {
		t.Errorf("error body %s has no trackingId", res.body)
	}
	if len(eb.Errors) == 0 {
		t.Errorf("error body %s has no errors", res.body)
	}
	if code != 0 {
		found := false
		for _, e := range eb.Errors {
			found = found || e.ErrorCode == code
		}
		if !found {
			t.Errorf("error body %s has no errorCode %d", res.body, code)
		}
	}
	return eb
}

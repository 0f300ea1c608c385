package provisioning

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// PrecheckCustomer calls POST /wholesale/customers/validate. Any 2xx is a
// pass; a refusal is an error answer.
func (c *Client) PrecheckCustomer(ctx context.Context, req CustomerRequest) (PrecheckResponse, error) {
	var out PrecheckResponse
	_, err := c.do(ctx, call{method: http.MethodPost, endpoint: PathCustomerValidate, path: PathCustomerValidate, idempotent: true, body: req}, &out)
	return out, err
}

// CreateCustomer calls POST /wholesale/customers (202) and returns the new
// customer's id, read from the Location header or, failing that, from the
// answer's url. The customer is then provisioning: GetCustomer follows it.
func (c *Client) CreateCustomer(ctx context.Context, req CustomerRequest) (string, error) {
	var out ResourceURL
	var location string
	cl := call{method: http.MethodPost, endpoint: PathCustomers, path: PathCustomers, body: req,
		header: func(h answerHeader) { location = h.Get("Location") }}
	if _, err := c.do(ctx, cl, &out); err != nil {
		return "", err
	}
	for _, u := range []string{location, out.URL} {
		if id, ok := customerIDOf(u); ok {
			return id, nil
		}
	}
	// The create took effect, but its answer does not say where: a lost answer.
	return "", &TransportError{Method: cl.method, Endpoint: cl.endpoint, Status: http.StatusAccepted,
		Err: errors.New("the create's answer names no customer (no Location, no url)")}
}

// customerIDOf reads the id from a customer's URL, .../wholesale/customers/{id}.
func customerIDOf(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", false
	}
	p := u.EscapedPath()
	i := strings.LastIndex(p, PathCustomers+"/")
	if i < 0 {
		return "", false
	}
	id, err := url.PathUnescape(p[i+len(PathCustomers)+1:])
	if err != nil || id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}

// GetCustomer calls GET /wholesale/customers/{id}.
func (c *Client) GetCustomer(ctx context.Context, id string) (Customer, error) {
	var out Customer
	_, err := c.do(ctx, call{method: http.MethodGet, endpoint: PathCustomers + "/{id}", path: PathCustomers + "/" + id,
		rawPath: PathCustomers + "/" + url.PathEscape(id), idempotent: true}, &out)
	return out, err
}

// FindCustomer looks the customer with the given externalId up through the
// list call (GET /wholesale/customers?externalId=) and returns it, or nil
// when there is none.
func (c *Client) FindCustomer(ctx context.Context, externalID string) (*Customer, error) {
	var out CustomerList
	q := url.Values{"externalId": {externalID}, "max": {"10"}}
	if _, err := c.do(ctx, call{method: http.MethodGet, endpoint: PathCustomers, path: PathCustomers, query: q, idempotent: true}, &out); err != nil {
		return nil, err
	}
	for i := range out.Items {
		if out.Items[i].ExternalID == externalID {
			return &out.Items[i], nil
		}
	}
	if len(out.Items) > 0 {
		return nil, fmt.Errorf("the customer list for externalId %q answered other customers only", externalID)
	}
	return nil, nil
}

// UpdateCustomer calls PUT /wholesale/customers/{id} (202). The customer is
// then updating: GetCustomer follows it.
func (c *Client) UpdateCustomer(ctx context.Context, id string, req CustomerUpdateRequest) error {
	var out ResourceURL
	_, err := c.do(ctx, call{method: http.MethodPut, endpoint: PathCustomers + "/{id}", path: PathCustomers + "/" + id,
		rawPath: PathCustomers + "/" + url.PathEscape(id), body: req}, &out)
	return err
}

// RemoveCustomer calls DELETE /wholesale/customers/{id} (202). The customer
// is then deleting until GetCustomer answers 404.
func (c *Client) RemoveCustomer(ctx context.Context, id string) error {
	_, err := c.do(ctx, call{method: http.MethodDelete, endpoint: PathCustomers + "/{id}", path: PathCustomers + "/" + id,
		rawPath: PathCustomers + "/" + url.PathEscape(id)}, nil)
	return err
}

package provisioning

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/encoding/json"
	"github.com/valyala/fasthttp"

	"github.com/acme-sp/wholesale-provisioner/internal/strictjson"
)

// maxResponseBytes bounds how much of a response body is read, so that a broken or
// hostile server cannot make the client allocate without limit.
const maxResponseBytes = 1 << 20

// TokenSource supplies the bearer token for each call. Implementations must be safe
// for concurrent use; Token is called once per request, so it should be cheap.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// StaticToken is a TokenSource that always returns the same token.
type StaticToken string

// Token returns the token itself.
func (t StaticToken) Token(context.Context) (string, error) {
	if t == "" {
		return "", errors.New("no Webex access token configured")
	}
	return string(t), nil
}

// ClientConfig configures a Client. The zero value of each optional field selects
// the default given in its comment.
type ClientConfig struct {
	// BaseURL is the API root, e.g. https://webexapis.com/v1. Required.
	BaseURL string
	// Tokens supplies the bearer token. Required.
	Tokens TokenSource
	// RequestTimeout bounds one HTTP round trip, body included. Default 30s.
	RequestTimeout time.Duration
	// OnBehalfOfSubPartnerOrgID is sent as the onBehalfOfSubPartnerOrgId query
	// parameter when set.
	OnBehalfOfSubPartnerOrgID string
	// Calls, when set, is told of every call (for metrics). Default nil.
	Calls CallObserver
	// UserAgent is sent with every request. Default "wholesale-provisioner".
	UserAgent string
	// Limiter is the rate budget that every call waits for and reports its
	// answer to; share one among all Clients of the same API account.
	// Default nil: no limiting.
	Limiter *Limiter
}

// DefaultClientConfig returns the defaults, the values the zero fields take
// (and Cisco's API root as the base URL).
func DefaultClientConfig() ClientConfig {
	return ClientConfig{BaseURL: "https://webexapis.com/v1", RequestTimeout: 30 * time.Second, UserAgent: "wholesale-provisioner"}
}

// Client makes single calls to the Wholesale Subscribers API. It never retries:
// retrying is the Workflow's job, so that there is exactly one retry layer. A
// Client is safe for concurrent use.
type Client struct {
	base        *url.URL
	baseRawPath string
	timeout     time.Duration
	tokens      TokenSource
	origin      string // scheme://host of the base URL
	http        *fasthttp.Client
	obo         string
	ua          string
	limiter     *Limiter
	calls       CallObserver
	seq         atomic.Uint64
}

// NewClient returns a Client, or an error naming the setting to fix.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := ParseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if cfg.Tokens == nil {
		return nil, errors.New("no Webex token source configured")
	}
	d := DefaultClientConfig()
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = d.RequestTimeout
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = d.UserAgent
	}
	hc, err := newHTTPClient(cfg.RequestTimeout)
	if err != nil {
		return nil, err
	}
	return &Client{
		base:        u,
		origin:      u.Scheme + "://" + u.Host,
		baseRawPath: u.EscapedPath(),
		tokens:      cfg.Tokens,
		obo:         cfg.OnBehalfOfSubPartnerOrgID,
		ua:          cfg.UserAgent,
		limiter:     cfg.Limiter,
		calls:       cfg.Calls,
		timeout:     cfg.RequestTimeout,
		http:        hc,
	}, nil
}

// ParseBaseURL checks that s looks like the root of the API: an absolute
// http(s) URL whose path ends with the version, such as
// https://webexapis.com/v1. Without the version every call would be answered
// 404, which reads like a missing subscriber rather than a wrong setting.
func ParseBaseURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("webex base URL is empty")
	}
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("webex base URL %q is not an absolute URL like https://webexapis.com/v1", s)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("webex base URL %q must use https (or http for a local simulator)", s)
	}
	if !isVersionPath(u.Path) {
		return nil, fmt.Errorf("webex base URL %q does not look like an API root: it must end with the API version, like https://webexapis.com/v1 (or http://127.0.0.1:8080/v1 for the simulator)", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("webex base URL %q must not have a query or a fragment", s)
	}
	return u, nil
}

// isVersionPath reports whether path ends with a segment v<digits>.
func isVersionPath(path string) bool {
	i := strings.LastIndexByte(path, '/')
	seg := path[i+1:]
	if i < 0 || len(seg) < 2 || seg[0] != 'v' {
		return false
	}
	for _, c := range seg[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Precheck calls POST /wholesale/subscribers/validate. A 200 answer is returned as
// is, whether or not it reports success; other answers are errors.
func (c *Client) Precheck(ctx context.Context, req PrecheckRequest) (PrecheckResponse, error) {
	var out PrecheckResponse
	_, err := c.do(ctx, call{method: http.MethodPost, endpoint: PathValidate, path: PathValidate, idempotent: true, body: req}, &out)
	return out, err
}

// Provision calls POST /wholesale/subscribers and returns the subscriber and the
// HTTP status (200, or 202 when the user must consent to a migration).
func (c *Client) Provision(ctx context.Context, req ProvisionRequest) (Subscriber, int, error) {
	var out Subscriber
	status, err := c.do(ctx, call{method: http.MethodPost, endpoint: PathSubscribers, path: PathSubscribers, body: req}, &out)
	return out, status, err
}

// GetSubscriber calls GET /wholesale/subscribers/{id}.
func (c *Client) GetSubscriber(ctx context.Context, id string) (Subscriber, error) {
	var out Subscriber
	_, err := c.do(ctx, call{method: http.MethodGet, endpoint: PathSubscribers + "/{id}", path: PathSubscribers + "/" + id,
		rawPath: PathSubscribers + "/" + url.PathEscape(id), idempotent: true}, &out)
	return out, err
}

// FindSubscriber looks up the customer's subscriber with the given email through
// the list call (GET /wholesale/subscribers?email=&customerId=) and returns it, or
// nil when there is none. The customer filter lets Webex match its own forms of
// the customer id, which may differ from the one the order carries.
func (c *Client) FindSubscriber(ctx context.Context, customerID, email string) (*Subscriber, error) {
	var out SubscriberList
	q := url.Values{"email": {email}, "customerId": {customerID}, "max": {"10"}}
	if _, err := c.do(ctx, call{method: http.MethodGet, endpoint: PathSubscribers, path: PathSubscribers, query: q, idempotent: true}, &out); err != nil {
		return nil, err
	}
	for i := range out.Items {
		if strings.EqualFold(out.Items[i].Email, email) {
			return &out.Items[i], nil
		}
	}
	return nil, nil
}

// UpdateSubscriber calls PUT /wholesale/subscribers/{id}. A repeated PUT of
// the same packages changes nothing, but one whose fate is unknown is
// reported so (not idempotent): the workflow looks the subscriber up before
// it sends another.
func (c *Client) UpdateSubscriber(ctx context.Context, id string, req UpdateRequest) (Subscriber, error) {
	var out Subscriber
	_, err := c.do(ctx, call{method: http.MethodPut, endpoint: PathSubscribers + "/{id}", path: PathSubscribers + "/" + id,
		rawPath: PathSubscribers + "/" + url.PathEscape(id), body: req}, &out)
	return out, err
}

// RemoveSubscriber calls DELETE /wholesale/subscribers/{id} (204). Like an
// update, one whose fate is unknown is looked up before it is sent again.
func (c *Client) RemoveSubscriber(ctx context.Context, id string) error {
	_, err := c.do(ctx, call{method: http.MethodDelete, endpoint: PathSubscribers + "/{id}", path: PathSubscribers + "/" + id,
		rawPath: PathSubscribers + "/" + url.PathEscape(id)}, nil)
	return err
}

// SendConsentMove calls POST /subscribers/{id}/emails/consentMove (204): Webex
// mails the consent request again to a subscriber in pending_user_migration.
func (c *Client) SendConsentMove(ctx context.Context, id string) error {
	_, err := c.do(ctx, call{method: http.MethodPost, endpoint: PathConsentMove, path: "/subscribers/" + id + "/emails/consentMove",
		rawPath: "/subscribers/" + url.PathEscape(id) + "/emails/consentMove", idempotent: true}, nil)
	return err
}

// ListFilter selects subscribers in a list call; empty fields select all.
type ListFilter struct {
	CustomerID string
	Email      string
	Status     string
	// LastStatusChange selects subscribers whose status changed after it.
	LastStatusChange time.Time
}

// ListPageSize is the largest page the list call answers (Cisco's max).
const ListPageSize = 100

// ListSubscribers calls GET /wholesale/subscribers with the filter, one page
// of up to ListPageSize, from next ("" for the first page). It returns the
// page and the next page's URL from the Link header ("" when none).
func (c *Client) ListSubscribers(ctx context.Context, f ListFilter, next string) ([]Subscriber, string, error) {
	var out SubscriberList
	q := url.Values{"max": {strconv.Itoa(ListPageSize)}}
	if next != "" {
		u, err := url.Parse(next)
		if err != nil || u.Host != c.base.Host {
			return nil, "", fmt.Errorf("following the list's next page %q: not a page of this API", next)
		}
		q = u.Query()
		q.Del("onBehalfOfSubPartnerOrgId") // send sets its own
	} else {
		for k, v := range map[string]string{"customerId": f.CustomerID, "email": f.Email, "status": f.Status} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if !f.LastStatusChange.IsZero() {
			q.Set("lastStatusChange", strconv.FormatInt(f.LastStatusChange.UnixMilli(), 10))
		}
	}
	var link string
	cl := call{method: http.MethodGet, endpoint: PathSubscribers, path: PathSubscribers, query: q, idempotent: true,
		header: func(h answerHeader) { link = nextLink(h.Values("Link")) }}
	if _, err := c.do(ctx, cl, &out); err != nil {
		return nil, "", err
	}
	return out.Items, link, nil
}

// nextLink returns the URL of the rel="next" link of Link headers, or "".
func nextLink(values []string) string {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			target, params, ok := strings.Cut(part, ";")
			if !ok || !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) {
				continue
			}
			target = strings.TrimSpace(target)
			if strings.HasPrefix(target, "<") && strings.HasSuffix(target, ">") {
				return target[1 : len(target)-1]
			}
		}
	}
	return ""
}

type call struct {
	method     string
	endpoint   string // path template, safe to log and to use as a metric label
	path       string // below the base URL, unescaped
	rawPath    string // path escaped, when it holds an id: an id is one segment, whatever it holds
	query      url.Values
	idempotent bool
	body       any
	// header, when set, is given the answer's headers (of a 2xx answer).
	header func(answerHeader)
}

type trackingKey struct{}

// WithTrackingPrefix returns a context whose calls send TrackingID headers that
// start with prefix, so that Webex support can find one order's requests.
func WithTrackingPrefix(ctx context.Context, prefix string) context.Context {
	return context.WithValue(ctx, trackingKey{}, prefix)
}

// invalidator is a TokenSource that can drop a token the API refused, so
// that the next Token call fetches a new one (see RefreshingToken).
type invalidator interface{ Invalidate(token string) }

// do makes one call. When the API answers 401 and the token source can renew
// its token, the call is sent once more with the new token: an access token
// that expired early is not a configuration fault.
func (c *Client) do(ctx context.Context, cl call, out any) (int, error) {
	tok, err := c.tokens.Token(ctx)
	if err != nil {
		return 0, &TokenError{Err: err}
	}
	status, err := c.send(ctx, cl, out, tok)
	inv, renewable := c.tokens.(invalidator)
	if status != http.StatusUnauthorized || !renewable {
		return status, err
	}
	inv.Invalidate(tok)
	fresh, terr := c.tokens.Token(ctx)
	if terr != nil {
		return 0, &TokenError{Err: terr}
	}
	if fresh == tok {
		return status, err
	}
	return c.send(ctx, cl, out, fresh)
}

// jsonContentType is the value of the Accept and Content-Type headers.
const jsonContentType = "application/json"

func (c *Client) send(ctx context.Context, cl call, out any, tok string) (int, error) {
	q := cl.query
	if c.obo != "" {
		if q == nil {
			q = url.Values{}
		}
		q.Set("onBehalfOfSubPartnerOrgId", c.obo)
	}
	x := getExchange()
	req := &x.req
	req.SetRequestURI(c.requestURI(cl, q))
	req.Header.SetMethod(cl.method)
	if cl.body != nil {
		b, err := json.Append(x.body[:0], cl.body, 0)
		if err != nil {
			putExchange(x)
			return 0, fmt.Errorf("encoding %s %s request: %w", cl.method, cl.endpoint, err)
		}
		x.body = b
		req.SetBodyRaw(b)
		req.Header.SetContentType(jsonContentType)
	}
	prefix, _ := ctx.Value(trackingKey{}).(string)
	if prefix == "" {
		prefix = "wholesale-provisioner"
	}
	tracking := prefix + "_" + strconv.FormatUint(c.seq.Add(1), 10)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", jsonContentType)
	req.Header.SetUserAgent(c.ua)
	req.Header.Set("TrackingID", tracking)
	// Wait for the rate budget only now: building the body holds no slot, and
	// the wait does not count against RequestTimeout.
	release, err := c.limiter.Acquire(ctx)
	if err != nil {
		putExchange(x)
		return 0, fmt.Errorf("waiting for the Webex rate limit for %s %s: %w", cl.method, cl.endpoint, err)
	}
	start := time.Now()
	kept, err := c.roundTrip(ctx, x, c.timeout)
	if kept {
		defer putExchange(x)
	}
	if err != nil {
		release()
		c.limiter.Observe(0, 0)
		c.observeCall(cl, 0, start)
		return 0, &TransportError{Method: cl.method, Endpoint: cl.endpoint, Idempotent: cl.idempotent, TrackingID: tracking, Err: err}
	}
	resp := &x.resp
	status := resp.StatusCode()
	data := resp.Body() // valid until x is given back: decoded values are copies
	release()
	h := answerHeader{&resp.Header}
	c.observe(status, h)
	c.observeCall(cl, status, start)
	zerolog.Ctx(ctx).Debug().Str("method", cl.method).Str("endpoint", cl.endpoint).Int("http_status", status).
		Str("tracking_id", tracking).Int("bytes", len(data)).Msg("webex call")
	if status >= 300 && status <= 399 {
		// The API describes no redirect, and one could carry the bearer token
		// to another host: none is followed.
		return status, &APIError{Method: cl.method, Endpoint: cl.endpoint, Idempotent: cl.idempotent, StatusCode: status, TrackingID: tracking,
			Message: "refusing redirect: the API describes none and the client follows none (is the base URL right?)"}
	}
	if status < 200 || status > 299 {
		return status, newAPIError(cl, status, h, data, tracking)
	}
	if cl.header != nil {
		cl.header(h)
	}
	if out != nil && len(data) > 0 {
		if err := decodeAnswer(data, out); err != nil {
			// The call may have taken effect; treat it like a lost answer.
			return status, &TransportError{Method: cl.method, Endpoint: cl.endpoint, Idempotent: cl.idempotent, TrackingID: tracking, Status: status, Err: fmt.Errorf("decoding %d response: %w", status, err)}
		}
	}
	return status, nil
}

func (c *Client) observeCall(cl call, status int, start time.Time) {
	if c.calls != nil {
		c.calls.ObserveCall(cl.method, cl.endpoint, status, time.Since(start))
	}
}

func (c *Client) observe(status int, h answerHeader) {
	if c.limiter == nil {
		return
	}
	var wait time.Duration
	if status == http.StatusTooManyRequests {
		wait = parseRetryAfter(h.Get("Retry-After"), time.Now())
	}
	c.limiter.Observe(status, wait)
}

func newAPIError(cl call, status int, h answerHeader, data []byte, tracking string) *APIError {
	e := &APIError{
		Method:     cl.method,
		Endpoint:   cl.endpoint,
		Idempotent: cl.idempotent,
		StatusCode: status,
		TrackingID: tracking,
		RetryAfter: parseRetryAfter(h.Get("Retry-After"), time.Now()),
	}
	var eb ErrorBody
	if decodeAnswer(data, &eb) == nil {
		e.Message = eb.Message
		e.Errors = eb.Errors
		if eb.TrackingID != "" {
			e.TrackingID = eb.TrackingID
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

// answerLimits bound the answers of the API before they are decoded: an
// answer nests a few levels deep, and a broken proxy or a hostile server
// must not make decoding its at most maxResponseBytes take longer than
// reading them. Duplicate keys are let through (the last wins): an answer is
// read by this client alone.
var answerLimits = strictjson.Limits{MaxDepth: 32, MaxNumberLen: 32, AllowDuplicateKeys: true}

// decodeAnswer decodes an answer's body into out once it is within answerLimits.
func decodeAnswer(data []byte, out any) error {
	if err := strictjson.Check(data, answerLimits); err != nil {
		return fmt.Errorf("refusing the answer: %w", err)
	}
	return json.Unmarshal(data, out)
}

// parseRetryAfter reads a Retry-After header given in seconds or as an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

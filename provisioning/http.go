package provisioning

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpproxy"
)

// The Client speaks HTTP/1.1 through fasthttp rather than net/http: a call
// costs about 10 CPU-µs instead of 24 (BENCHMARKS.md, issue 16), because the
// request is written and its answer read on the caller's goroutine, with
// pooled buffers, instead of through two goroutines per connection and a
// fresh Request, Response and header maps per call.

// CallObserver is told of every call a Client sends: its method, its path
// template (the endpoint, never an id or a query), the HTTP status (0 when
// no answer came) and how long the round trip took.
type CallObserver interface {
	ObserveCall(method, endpoint string, status int, elapsed time.Duration)
}

// maxConns bounds the connections to the API, enough for every worker to
// keep its own, so that calls do not pay for new connections (and TLS
// handshakes) under load.
const maxConns = 512

// newHTTPClient returns the client that carries the calls. It follows no
// redirect (one to another host could carry the bearer token elsewhere) and
// retries nothing: retrying is the Workflow's job, so that there is exactly
// one retry layer, and only it knows whether a create may be sent again.
// HTTPS_PROXY, HTTP_PROXY and NO_PROXY are honoured, as net/http does; a
// proxy setting it cannot use is an error.
func newHTTPClient(timeout time.Duration) (*fasthttp.Client, error) {
	proxied := fasthttpproxy.Dialer{Timeout: timeout, ConnectTimeout: timeout, DialDualStack: true}
	dial, err := proxied.GetDialFunc(true)
	if err != nil {
		return nil, fmt.Errorf("the proxy settings (HTTPS_PROXY, HTTP_PROXY, NO_PROXY): %w", err)
	}
	return &fasthttp.Client{
		Dial:                      dial,
		TLSConfig:                 &tls.Config{MinVersion: tls.VersionTLS12},
		MaxConnsPerHost:           maxConns,
		MaxConnWaitTimeout:        timeout,
		MaxIdleConnDuration:       90 * time.Second,
		MaxResponseBodySize:       maxResponseBytes,
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		NoDefaultUserAgentHeader:  true,
		DisablePathNormalizing:    true, // an escaped id stays one segment
	}, nil
}

// exchange is one call's request and answer, pooled: a call allocates
// neither.
type exchange struct {
	req  fasthttp.Request
	resp fasthttp.Response
	body []byte // the request's body, kept with the exchange for the next call
	done chan error
}

var exchanges = sync.Pool{New: func() any { return &exchange{done: make(chan error, 1)} }}

func getExchange() *exchange { return exchanges.Get().(*exchange) }

func putExchange(x *exchange) {
	if cap(x.body) > 64<<10 {
		x.body = nil // an unusually large body is not kept
	}
	x.req.Reset()
	x.resp.Reset()
	exchanges.Put(x)
}

// roundTrip sends x's request and waits for its answer until timeout, or
// until ctx is done. fasthttp honours a deadline but not a context, so the
// request runs on a goroutine of its own; when ctx ends first, that
// goroutine keeps the exchange (kept is false) and gives it back once the
// request ends, which its timeout bounds. Otherwise the caller gives it back.
func (c *Client) roundTrip(ctx context.Context, x *exchange, timeout time.Duration) (kept bool, err error) {
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if err := ctx.Err(); err != nil {
		return true, err
	}
	if timeout <= 0 {
		return true, context.DeadlineExceeded
	}
	go func() { x.done <- c.http.DoTimeout(&x.req, &x.resp, timeout) }()
	select {
	case err := <-x.done:
		return true, err
	case <-ctx.Done():
		go func() {
			<-x.done
			putExchange(x)
		}()
		return false, ctx.Err()
	}
}

// answerHeader reads an answer's headers.
type answerHeader struct{ h *fasthttp.ResponseHeader }

// Get returns the first value of the header named key, or "".
func (a answerHeader) Get(key string) string { return string(a.h.Peek(key)) }

// Values returns every value of the header named key.
func (a answerHeader) Values(key string) []string {
	all := a.h.PeekAll(key)
	out := make([]string, len(all))
	for i, v := range all {
		out[i] = string(v)
	}
	return out
}

// requestURI is the URI of a call: origin, the base path and the call's
// path, escaped, and the query.
func (c *Client) requestURI(cl call, q url.Values) string {
	var b strings.Builder
	p := cl.rawPath
	if p == "" {
		p = (&url.URL{Path: cl.path}).EscapedPath()
	}
	query := ""
	if q != nil {
		query = q.Encode()
	}
	b.Grow(len(c.origin) + len(c.baseRawPath) + len(p) + 1 + len(query))
	b.WriteString(c.origin)
	b.WriteString(c.baseRawPath)
	b.WriteString(p)
	if query != "" {
		b.WriteByte('?')
		b.WriteString(query)
	}
	return b.String()
}

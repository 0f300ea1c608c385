package provisioning

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func newTestClient(t *testing.T, base string, timeout time.Duration) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{BaseURL: base, Tokens: StaticToken("s3cret-token"), RequestTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClientRefusesRedirectsToOtherHosts: a redirect could carry the bearer
// token to another host.
func TestClientRefusesRedirectsToOtherHosts(t *testing.T) {
	var leaked bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = r.Header.Get("Authorization") != ""
	}))
	defer elsewhere.Close()
	api := httptest.NewServer(http.RedirectHandler(elsewhere.URL+"/steal", http.StatusTemporaryRedirect))
	defer api.Close()
	_, err := newTestClient(t, api.URL+"/v1", 5*time.Second).GetSubscriber(context.Background(), "id-1")
	if err == nil || !strings.Contains(err.Error(), "refusing redirect") {
		t.Fatalf("err = %v, want the redirect refused", err)
	}
	if leaked {
		t.Error("the token reached the other host")
	}
	if strings.Contains(err.Error(), "s3cret-token") {
		t.Errorf("error %q holds the token", err)
	}
}

func TestClientVerifiesTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	_, err := newTestClient(t, srv.URL+"/v1", 5*time.Second).GetSubscriber(context.Background(), "id-1")
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v, want a certificate error for a server this client does not trust", err)
	}
}

func TestClientTimesOut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer srv.Close()
	start := time.Now()
	_, err := newTestClient(t, srv.URL+"/v1", 200*time.Millisecond).GetSubscriber(context.Background(), "id-1")
	var tr *TransportError
	if !errors.As(err, &tr) || time.Since(start) > 3*time.Second {
		t.Fatalf("err = %v after %s, want a transport error at the 200ms timeout", err, time.Since(start))
	}
}

func TestClientReadsAnswersWithALimit(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"`))
		chunk := []byte(strings.Repeat("x", 64<<10))
		for i := 0; i < 64; i++ { // 4 MiB, four times the limit
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		_, _ = w.Write([]byte(`"}`))
	}))
	defer srv.Close()
	_, err := newTestClient(t, srv.URL+"/v1", 5*time.Second).GetSubscriber(context.Background(), "id-1")
	if err == nil {
		t.Fatal("a 4 MiB answer was read whole; want it cut at the 1 MiB limit (and so unreadable)")
	}
}

// TestClientSendsTheURLItMeans checks the URLs on the wire: the base path
// kept, a subscriber id escaped once (an id is opaque: "/", "%" and spaces
// in it must reach Webex as the one path segment it is), and the
// on-behalf-of query.
func TestClientSendsTheURLItMeans(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.RequestURI)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"x","items":[]}`))
	}))
	defer srv.Close()
	c, err := NewClient(ClientConfig{BaseURL: srv.URL + "/v1", Tokens: StaticToken("s3cret-token"), OnBehalfOfSubPartnerOrgID: "org 1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, _ = c.GetSubscriber(ctx, "Y2lzY29zcGFyazovL3Vz")
	_, _ = c.GetSubscriber(ctx, "a/b c%d")
	_, _, _ = c.Provision(ctx, ProvisionRequest{CustomerID: "c-1", Email: "a@example.com", Packages: []string{"webex_calling"}})
	want := []string{
		"GET /v1/wholesale/subscribers/Y2lzY29zcGFyazovL3Vz?onBehalfOfSubPartnerOrgId=org+1",
		"GET /v1/wholesale/subscribers/a%2Fb%20c%25d?onBehalfOfSubPartnerOrgId=org+1",
		"POST /v1/wholesale/subscribers?onBehalfOfSubPartnerOrgId=org+1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestClientCallEndsWithItsContext: the HTTP library honours deadlines but
// not contexts, so the client waits for the answer beside it. A call whose
// context ends returns at once, while the server still holds the answer, and
// the request it leaves behind ends by its own timeout, without a goroutine
// left over.
func TestClientCallEndsWithItsContext(t *testing.T) {
	hold := make(chan struct{})
	arrived := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/slow") {
			arrived <- struct{}{}
			select {
			case <-hold:
			case <-r.Context().Done():
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"fast"}`))
	}))
	defer srv.Close()
	defer close(hold)
	c := newTestClient(t, srv.URL+"/v1", 300*time.Millisecond)
	// A first call starts the client's connection and its cleaner.
	if _, err := c.GetSubscriber(context.Background(), "fast"); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := c.GetSubscriber(ctx, "slow")
		done <- err
	}()
	<-arrived
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 250*time.Millisecond {
			t.Fatalf("the cancelled call returned after %s, want at once (before the 300ms request timeout)", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled call did not return")
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after the abandoned request's timeout, want at most the %d before the call", n, before)
	}
}

// TestClientGoesThroughTheEnvironmentsProxy: HTTPS_PROXY and HTTP_PROXY are
// honoured as net/http honours them. The proxy here tunnels every CONNECT to
// the test server, whatever host the client asked for.
func TestClientGoesThroughTheEnvironmentsProxy(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"via-proxy"}`))
	}))
	defer api.Close()
	var tunnelled []string
	var mu sync.Mutex
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		mu.Lock()
		tunnelled = append(tunnelled, r.Host)
		mu.Unlock()
		up, err := net.Dial("tcp", api.Listener.Addr().String())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		down, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			up.Close()
			return
		}
		_, _ = down.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		go func() { _, _ = io.Copy(up, down); up.Close() }()
		_, _ = io.Copy(down, up)
		down.Close()
	}))
	defer proxy.Close()
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("HTTPS_PROXY", proxy.URL)
	t.Setenv("NO_PROXY", "")
	c := newTestClient(t, "http://webexapis.example:8080/v1", 5*time.Second)
	s, err := c.GetSubscriber(context.Background(), "id-1")
	if err != nil || s.ID != "via-proxy" {
		t.Fatalf("GetSubscriber = %+v, %v; want the answer through the proxy", s, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tunnelled) != 1 || tunnelled[0] != "webexapis.example:8080" {
		t.Fatalf("the proxy tunnelled %q, want webexapis.example:8080 once", tunnelled)
	}
}

// TestClientRefusesAProxyItCannotUse: a proxy setting the client cannot use
// stops the start, naming the variables, instead of being passed by.
func TestClientRefusesAProxyItCannotUse(t *testing.T) {
	t.Setenv("HTTP_PROXY", "ftp://proxy.example:21")
	t.Setenv("HTTPS_PROXY", "ftp://proxy.example:21")
	t.Setenv("NO_PROXY", "")
	_, err := NewClient(ClientConfig{BaseURL: "https://webexapis.com/v1", Tokens: StaticToken("t")})
	if err == nil || !strings.Contains(err.Error(), "HTTPS_PROXY") {
		t.Fatalf("err = %v, want the proxy settings named", err)
	}
}

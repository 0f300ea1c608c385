package provisioning

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tokenServer issues access tokens and renews the refresh token on every use;
// an old refresh token is refused, as Webex does.
type tokenServer struct {
	mu      sync.Mutex
	current string // the refresh token that works
	n       atomic.Int64
	life    int64
	fail    bool
}

func (s *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail || r.Form.Get("client_secret") != "c-secret" || r.Form.Get("refresh_token") != s.current || r.Form.Get("grant_type") != "refresh_token" {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(ErrorBody{Message: "invalid_grant " + r.Form.Get("refresh_token")}) // a careless server echoing it
		return
	}
	n := s.n.Add(1)
	s.current = fmt.Sprintf("refresh-%d", n)
	_ = json.NewEncoder(w).Encode(TokenResponse{AccessToken: fmt.Sprintf("access-%d", n), ExpiresIn: s.life, RefreshToken: s.current})
}

func newTokenSource(t *testing.T, srv *tokenServer, now func() time.Time) (*RefreshingToken, string) {
	t.Helper()
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	file := filepath.Join(t.TempDir(), "refresh-token")
	if err := os.WriteFile(file, []byte(srv.current+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts, err := NewRefreshingToken(OAuthConfig{TokenURL: hs.URL, ClientID: "c-id", ClientSecret: "c-secret", RefreshTokenFile: file, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return ts, file
}

func TestRefreshingTokenRefreshesBeforeExpiry(t *testing.T) {
	srv := &tokenServer{current: "refresh-0", life: 3600}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ts, file := newTokenSource(t, srv, clock)
	ctx := context.Background()
	tok, err := ts.Token(ctx)
	if err != nil || tok != "access-1" {
		t.Fatalf("Token = %q, %v", tok, err)
	}
	if b, _ := os.ReadFile(file); strings.TrimSpace(string(b)) != "refresh-1" {
		t.Errorf("refresh token file holds %q, want the renewed refresh-1", b)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("refresh token file mode %v, want 0600", st.Mode().Perm())
	}
	mu.Lock()
	now = now.Add(54 * time.Minute) // 6 minutes before expiry: still fine
	mu.Unlock()
	if tok, _ := ts.Token(ctx); tok != "access-1" {
		t.Errorf("refreshed too early: %s", tok)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute) // within the 5-minute margin
	mu.Unlock()
	if tok, _ := ts.Token(ctx); tok != "access-2" {
		t.Errorf("not refreshed within 5 minutes of expiry: %s", tok)
	}
	// A restart reads the newest refresh token and can refresh again.
	ts2, err := NewRefreshingToken(OAuthConfig{TokenURL: ts.cfg.TokenURL, ClientID: "c-id", ClientSecret: "c-secret", RefreshTokenFile: file})
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := ts2.Token(ctx); err != nil || tok != "access-3" {
		t.Errorf("after a restart: %q, %v", tok, err)
	}
}

func TestRefreshingTokenOneRefreshForManyCallers(t *testing.T) {
	srv := &tokenServer{current: "refresh-0", life: 3600}
	ts, _ := newTokenSource(t, srv, nil)
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := ts.Token(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := srv.n.Load(); n != 1 {
		t.Errorf("%d refreshes for 50 concurrent callers, want 1", n)
	}
	// Many 401s with the same token: one refresh.
	tok, _ := ts.Token(context.Background())
	for i := 0; i < 10; i++ {
		ts.Invalidate(tok)
	}
	ts.Invalidate("some-older-token")
	if _, err := ts.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := srv.n.Load(); n != 2 {
		t.Errorf("%d refreshes after a burst of 401s, want 2", n)
	}
}

func TestRefreshingTokenErrorsHoldNoSecret(t *testing.T) {
	srv := &tokenServer{current: "refresh-0", life: 3600, fail: true}
	ts, _ := newTokenSource(t, srv, nil)
	_, err := ts.Token(context.Background())
	if err == nil {
		t.Fatal("a refused refresh succeeded")
	}
	for _, secret := range []string{"c-secret", "refresh-0"} {
		if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", ts.cfg.HTTPClient), secret) {
			t.Errorf("error %q shows a secret", err)
		}
	}
	if !strings.Contains(err.Error(), "400") {
		t.Errorf("error %q does not say what the server answered", err)
	}
}

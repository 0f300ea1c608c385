package webexsim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

// OAuth makes the simulator issue tokens as Webex does: POST
// <base>/access_token exchanges a refresh token for an access token that
// expires after AccessTTL and renews the refresh token on every use (the old
// one stops working). While it is enabled, API calls need an unexpired access
// token that it issued.
type OAuth struct {
	ClientID     string
	ClientSecret string
	// RefreshToken is the first refresh token that works.
	RefreshToken string
	// AccessTTL is the life of an access token. Default 1h.
	AccessTTL time.Duration
}

type oauthState struct {
	cfg OAuth

	mu        sync.Mutex
	refresh   string
	issued    map[string]time.Time // access token -> expiry
	all       []string             // every token ever issued, refresh tokens included
	refreshes int
}

// EnableOAuth turns the token endpoint on and makes API calls need its tokens.
func (s *Server) EnableOAuth(o OAuth) {
	if o.AccessTTL <= 0 {
		o.AccessTTL = time.Hour
	}
	st := &oauthState{cfg: o, refresh: o.RefreshToken, issued: map[string]time.Time{}, all: []string{o.RefreshToken}}
	s.oauth.Store(st)
}

// ExpireAccessTokens makes every access token issued so far expire now, as if
// their lifetime ended in the middle of a run.
func (s *Server) ExpireAccessTokens() {
	if st := s.oauth.Load(); st != nil {
		st.mu.Lock()
		for tok := range st.issued {
			st.issued[tok] = time.Time{}
		}
		st.mu.Unlock()
	}
}

// TokenRefreshes counts the successful refreshes.
func (s *Server) TokenRefreshes() int {
	if st := s.oauth.Load(); st != nil {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.refreshes
	}
	return 0
}

// IssuedSecrets returns every access and refresh token the simulator handed
// out or accepted, for tests that check no secret leaks.
func (s *Server) IssuedSecrets() []string {
	if st := s.oauth.Load(); st != nil {
		st.mu.Lock()
		defer st.mu.Unlock()
		return append([]string(nil), st.all...)
	}
	return nil
}

// validAccessToken reports whether tok is an unexpired issued access token.
func (st *oauthState) validAccessToken(tok string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	exp, ok := st.issued[tok]
	return ok && time.Now().Before(exp)
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	st := s.oauth.Load()
	if st == nil || r.Method != http.MethodPost {
		writeJSON(w, http.StatusNotFound, provisioning.ErrorBody{Message: "The requested resource could not be found."})
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, provisioning.ErrorBody{Message: "The request body is not a form."})
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	f := r.PostForm
	if f.Get("grant_type") != "refresh_token" || f.Get("client_id") != st.cfg.ClientID ||
		f.Get("client_secret") != st.cfg.ClientSecret || f.Get("refresh_token") != st.refresh {
		// Like Webex: no hint which part was wrong, and nothing echoed.
		writeJSON(w, http.StatusBadRequest, provisioning.ErrorBody{Message: "invalid_grant"})
		return
	}
	access, refresh := newSecret(), newSecret()
	st.issued[access] = time.Now().Add(st.cfg.AccessTTL)
	st.refresh = refresh
	st.all = append(st.all, access, refresh)
	st.refreshes++
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(provisioning.TokenResponse{
		AccessToken: access, ExpiresIn: int64(st.cfg.AccessTTL / time.Second), RefreshToken: refresh,
		RefreshTokenExpiresIn: 90 * 24 * 3600, TokenType: "Bearer", Scope: "spark-admin:wholesale_subscribers_read spark-admin:wholesale_subscribers_write",
	})
}

func newSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

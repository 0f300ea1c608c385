package provisioning

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// OAuthConfig configures a RefreshingToken. The zero value of each optional field
// selects the default given in its comment.
type OAuthConfig struct {
	// TokenURL is the token endpoint, e.g. https://webexapis.com/v1/access_token. Required.
	TokenURL string
	// ClientID and ClientSecret identify the integration. Required.
	ClientID     string
	ClientSecret string
	// RefreshToken is the refresh token to start from. When empty it is read
	// from RefreshTokenFile.
	RefreshToken string
	// RefreshTokenFile keeps the newest refresh token: Webex renews it on use,
	// and an old one stops working, so every new one is written back to it
	// (atomically, mode 0600). Optional but strongly advised.
	RefreshTokenFile string
	// RefreshBefore is how long before expiry the access token is refreshed.
	// Default 5m (at most half the token's lifetime).
	RefreshBefore time.Duration
	// HTTPClient sends the refresh requests. Default: a client with a 30s timeout.
	HTTPClient *http.Client
	// Now tells the time. Default time.Now.
	Now func() time.Time
}

// RefreshingToken is a TokenSource for the OAuth refresh flow: it refreshes the
// access token before it expires, and once more when the API refuses it (see
// Invalidate). It is safe for concurrent use; one refresh runs at a time.
type RefreshingToken struct {
	cfg OAuthConfig

	mu      sync.Mutex
	access  string
	expires time.Time
	refresh string
	// refreshing is closed when the refresh in progress ends.
	refreshing chan struct{}
	lastErr    error
}

// NewRefreshingToken checks the configuration and reads the refresh token file
// if needed. It does not call the token endpoint yet.
func NewRefreshingToken(cfg OAuthConfig) (*RefreshingToken, error) {
	switch {
	case cfg.TokenURL == "":
		return nil, errors.New("no OAuth token URL configured")
	case cfg.ClientID == "":
		return nil, errors.New("no OAuth client id configured")
	case cfg.ClientSecret == "":
		return nil, errors.New("no OAuth client secret configured")
	}
	if cfg.RefreshToken == "" && cfg.RefreshTokenFile != "" {
		b, err := os.ReadFile(cfg.RefreshTokenFile)
		if err != nil {
			return nil, fmt.Errorf("reading the refresh token file: %w", err)
		}
		cfg.RefreshToken = strings.TrimSpace(string(b))
	}
	if cfg.RefreshToken == "" {
		return nil, errors.New("no OAuth refresh token: set it, or write it into the refresh token file")
	}
	if cfg.RefreshBefore <= 0 {
		cfg.RefreshBefore = 5 * time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &RefreshingToken{cfg: cfg, refresh: cfg.RefreshToken}, nil
}

// Token returns a valid access token, refreshing it first when it is missing
// or about to expire.
func (t *RefreshingToken) Token(ctx context.Context) (string, error) {
	for {
		t.mu.Lock()
		if t.access != "" && t.cfg.Now().Before(t.expires) {
			tok := t.access
			t.mu.Unlock()
			return tok, nil
		}
		wait := t.refreshing
		if wait == nil {
			t.refreshing = make(chan struct{})
			t.mu.Unlock()
			err := t.doRefresh(ctx)
			t.mu.Lock()
			close(t.refreshing)
			t.refreshing = nil
			t.lastErr = err
			t.mu.Unlock()
			if err != nil {
				return "", err
			}
			continue
		}
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-wait:
		}
		t.mu.Lock()
		err := t.lastErr
		t.mu.Unlock()
		if err != nil {
			return "", err
		}
	}
}

// Invalidate drops the access token tok after the API answered 401 to it, so
// that the next Token refreshes. A token that was already replaced is ignored,
// so a burst of 401s causes one refresh, not one per call.
func (t *RefreshingToken) Invalidate(tok string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.access == tok {
		t.access = ""
	}
}

// doRefresh exchanges the refresh token for a new access token.
func (t *RefreshingToken) doRefresh(ctx context.Context) error {
	t.mu.Lock()
	refresh := t.refresh
	t.mu.Unlock()
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {t.cfg.ClientID},
		"client_secret": {t.cfg.ClientSecret},
		"refresh_token": {refresh},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.cfg.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("building the token refresh request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := t.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("refreshing the Webex access token: %w", scrubURL(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("reading the token refresh answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		// The body may echo what was sent; report only the status and Webex's message.
		var eb ErrorBody
		_ = decodeAnswer(body, &eb)
		msg := strings.NewReplacer(refresh, "[redacted]", t.cfg.ClientSecret, "[redacted]").Replace(eb.Message)
		return fmt.Errorf("refreshing the Webex access token: %d %s %s", resp.StatusCode, http.StatusText(resp.StatusCode), msg)
	}
	var tr TokenResponse
	if err := decodeAnswer(body, &tr); err != nil || tr.AccessToken == "" || tr.ExpiresIn <= 0 {
		return errors.New("refreshing the Webex access token: the answer holds no access token and lifetime")
	}
	now := t.cfg.Now()
	lifetime := time.Duration(tr.ExpiresIn) * time.Second
	early := min(t.cfg.RefreshBefore, lifetime/2)
	t.mu.Lock()
	t.access, t.expires = tr.AccessToken, now.Add(lifetime-early)
	renewed := tr.RefreshToken != "" && tr.RefreshToken != t.refresh
	if renewed {
		t.refresh = tr.RefreshToken
	}
	t.mu.Unlock()
	if renewed && t.cfg.RefreshTokenFile != "" {
		if err := writeFileAtomic(t.cfg.RefreshTokenFile, []byte(tr.RefreshToken+"\n")); err != nil {
			// The new access token works; losing the new refresh token would
			// strand the service at the next restart, so say so loudly.
			return fmt.Errorf("keeping the renewed refresh token: %w", err)
		}
	}
	return nil
}

// writeFileAtomic replaces path with data, so that a crash leaves the old file
// or the new one, never half of either.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing left to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// scrubURL drops the URL from a *url.Error: the token URL is reported by the
// setting that names it, and a URL may carry credentials in its query.
func scrubURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

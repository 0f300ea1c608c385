package provisioning

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// FileToken is a TokenSource that reads the token from a file and reads it again
// when the file changes, so that a rotated secret (a re-mounted Kubernetes Secret,
// say) needs no restart. It looks at the file at most once per second. A FileToken
// is safe for concurrent use.
type FileToken struct {
	path string

	mu      sync.Mutex
	token   string
	modTime time.Time
	size    int64
	checked time.Time
}

// NewFileToken returns a FileToken for path, reading it once to check it.
func NewFileToken(path string) (*FileToken, error) {
	f := &FileToken{path: path}
	if _, err := f.Token(context.Background()); err != nil {
		return nil, err
	}
	return f, nil
}

// Token returns the file's current token.
func (f *FileToken) Token(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if f.token != "" && now.Sub(f.checked) < time.Second {
		return f.token, nil
	}
	f.checked = now
	st, err := os.Stat(f.path)
	if err != nil {
		return "", fmt.Errorf("reading token file: %w", err)
	}
	if f.token != "" && st.ModTime().Equal(f.modTime) && st.Size() == f.size {
		return f.token, nil
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return "", fmt.Errorf("reading token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", f.path)
	}
	f.token, f.modTime, f.size = tok, st.ModTime(), st.Size()
	return tok, nil
}

package kafkasec

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

const redacted = "[redacted]"

// Secret is a string that never shows itself: every fmt verb (%v, %+v, %#v,
// %s, %q, %x), JSON, text marshalling and slog print "[redacted]" (or nothing
// when it is empty). Value returns the string itself.
type Secret string

// Value returns the secret.
func (s Secret) Value() string { return string(s) }

// String returns "[redacted]", or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString is String, for %#v.
func (s Secret) GoString() string { return s.String() }

// Format prints String whatever the verb.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// MarshalText returns String.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON returns String as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// LogValue returns String, for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// mechanism is the sasl.Mechanism given to kafka-go. It builds kafka-go's own
// PLAIN or SCRAM mechanism from the current password for each new connection
// (kept while the password does not change), and it never prints the password:
// kafka-go's plain.Mechanism is a struct with an exported Password field, so a
// %+v of a Dialer holding it would show it.
type mechanism struct {
	name     string
	username string
	password func() (string, error)

	mu    sync.Mutex
	sum   [sha256.Size]byte // of the password inner was built with
	inner sasl.Mechanism
}

var (
	_ sasl.Mechanism = (*mechanism)(nil)
	_ fmt.Formatter  = (*mechanism)(nil)
)

// saslOrNil keeps a nil *mechanism out of the sasl.Mechanism interface.
func saslOrNil(m *mechanism) sasl.Mechanism {
	if m == nil {
		return nil
	}
	return m
}

// Name returns the mechanism's name, e.g. SCRAM-SHA-512.
func (m *mechanism) Name() string { return m.name }

// String names the mechanism and the user, never the password.
func (m *mechanism) String() string { return fmt.Sprintf("%s as %q", m.name, m.username) }

// Format prints String whatever the verb.
func (m *mechanism) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, m.String()) }

// Start begins the exchange of one connection with the current password.
func (m *mechanism) Start(ctx context.Context) (sasl.StateMachine, []byte, error) {
	inner, err := m.current()
	if err != nil {
		return nil, nil, err
	}
	return inner.Start(ctx)
}

func (m *mechanism) current() (sasl.Mechanism, error) {
	p, err := m.password()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(p))
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.inner != nil && sum == m.sum {
		return m.inner, nil
	}
	inner, err := newMechanism(m.name, m.username, p)
	if err != nil {
		return nil, err
	}
	m.inner, m.sum = inner, sum
	return inner, nil
}

// newMechanism returns kafka-go's mechanism. Its errors never hold the
// password: xdg-go/scram's SASLprep error quotes it, so it is replaced.
func newMechanism(name, username, password string) (sasl.Mechanism, error) {
	switch name {
	case MechanismPLAIN:
		return plain.Mechanism{Username: username, Password: password}, nil
	case MechanismSCRAMSHA256, MechanismSCRAMSHA512:
		algo := scram.SHA256
		if name == MechanismSCRAMSHA512 {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, username, password)
		if err != nil {
			return nil, fmt.Errorf("the SASL user name or password cannot be used with %s: it holds characters that SASLprep (RFC 4013) prohibits, such as control characters", name)
		}
		return m, nil
	}
	return nil, fmt.Errorf("SASL mechanism %q is not supported: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", name)
}

// checkCredentials reports a user name or password that the mechanism cannot
// carry, without quoting the password.
func checkCredentials(mech, username, password string) error {
	if mech == MechanismPLAIN {
		if strings.ContainsRune(username, 0) || strings.ContainsRune(password, 0) {
			return fmt.Errorf("the SASL user name or password holds a NUL character, which SASL PLAIN cannot carry")
		}
		return nil
	}
	_, err := newMechanism(mech, username, password)
	return err
}

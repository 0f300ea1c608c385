package kafkasec

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/segmentio/kafka-go"
)

// Kind says why a connection failed in a way that retrying cannot fix.
type Kind int

// Kinds of permanent failures.
const (
	// Transient is everything else: network errors, a broker starting.
	Transient Kind = iota
	// Authentication: the broker refused the SASL credentials or mechanism.
	Authentication
	// Certificate: the TLS handshake failed (unknown CA, wrong name, expired,
	// client certificate refused, TLS spoken to a plaintext listener).
	Certificate
)

func (k Kind) String() string {
	switch k {
	case Authentication:
		return "authentication"
	case Certificate:
		return "certificate"
	}
	return "transient"
}

// Classify tells a permanent security failure from a transient one, by the
// errors' types and codes (wrapped or not), never by their text.
func Classify(err error) Kind {
	if err == nil {
		return Transient
	}
	var (
		kerr     kafka.Error
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
		alert    tls.AlertError
	)
	if errors.As(err, &kerr) {
		switch kerr {
		case kafka.SASLAuthenticationFailed, kafka.UnsupportedSASLMechanism, kafka.IllegalSASLState:
			return Authentication
		}
	}
	if errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &record) || errors.As(err, &alert) || tlsAlert(err) {
		return Certificate
	}
	return Transient
}

// tlsAlert reports an alert the broker sent during the TLS handshake (say,
// "bad certificate" when it wants a client certificate): crypto/tls returns it
// as a *net.OpError whose Op is "remote error", around an unexported type.
func tlsAlert(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

// Permanent reports whether err is an authentication or certificate failure,
// which no retry can fix: the settings (or the broker's) must change.
func Permanent(err error) bool { return Classify(err) != Transient }

// Error is a permanent failure to connect to a broker, with what to check.
type Error struct {
	Kind   Kind
	Broker string
	// Err is kafka-go's or crypto/tls's error; it never holds the password.
	Err  error
	hint string
}

func (e *Error) Error() string {
	what := "TLS handshake failed"
	if e.Kind == Authentication {
		what = "SASL authentication failed"
	}
	return fmt.Sprintf("connecting to Kafka broker %s: %s: %v: %s", e.Broker, what, e.Err, e.hint)
}

func (e *Error) Unwrap() error { return e.Err }

// Check opens one connection to the first of brokers that answers, with the
// configured TLS and SASL, and closes it. It returns nil on success; an *Error
// (Permanent) when a broker refused the credentials or the TLS handshake
// failed; otherwise the last network error, after which a caller may start
// anyway, since the clients keep trying to reach the brokers.
func (c *Config) Check(ctx context.Context, brokers []string) error {
	d, err := c.Dialer()
	if err != nil {
		return err
	}
	var last error
	for _, b := range brokers {
		conn, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			_ = conn.Close()
			return nil
		}
		if k := Classify(err); k != Transient {
			return &Error{Kind: k, Broker: b, Err: err, hint: c.hint(err)}
		}
		last = fmt.Errorf("connecting to Kafka broker %s: %w", b, err)
		if !c.TLS.Enabled && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
			last = fmt.Errorf("%w (if the broker's listener uses TLS, add --kafka-tls)", last)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if last == nil {
		return errors.New("no Kafka brokers to check")
	}
	return last
}

// hint says which settings to look at for a permanent failure.
func (c *Config) hint(err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
		alert    tls.AlertError
	)
	switch {
	case Classify(err) == Authentication:
		return fmt.Sprintf("check --kafka-sasl-mechanism (%s), --kafka-sasl-username (%q) and the password (%s or --kafka-sasl-password-file)",
			canonicalMechanism(c.SASL.Mechanism), c.SASL.Username, PasswordEnv)
	case errors.As(err, &unknown):
		if c.TLS.CAFile == "" {
			return "the broker's certificate is not signed by a CA this system trusts: give its CA with --kafka-tls-ca-file"
		}
		return "the broker's certificate is not signed by a CA in --kafka-tls-ca-file " + c.TLS.CAFile + ": give the CA that signed it"
	case errors.As(err, &hostname):
		return "the broker's certificate is not for this name: connect by a name it lists, or set --kafka-tls-server-name"
	case errors.As(err, &invalid):
		return "the broker's certificate is not valid (expired, not yet valid, or not for a server): renew it on the broker"
	case errors.As(err, &record):
		return "the broker did not answer with TLS: use its TLS listener, or drop --kafka-tls"
	case errors.As(err, &alert) || tlsAlert(err):
		if c.TLS.CertFile == "" {
			return "the broker refused the TLS handshake: it may require a client certificate (--kafka-tls-cert-file, --kafka-tls-key-file)"
		}
		return "the broker refused the TLS handshake: check that it trusts the CA of --kafka-tls-cert-file"
	}
	return "check the --kafka-tls-* settings"
}

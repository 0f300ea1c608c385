// Package kafkasec builds the TLS and SASL settings of the Kafka clients
// (consumer group, partition readers, writers, admin client) from its Config and secrets.
package kafkasec

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// SASL mechanisms supported by Config.SASL.Mechanism.
const (
	MechanismPLAIN       = "PLAIN"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
)

// PasswordEnv is the environment variable holding the SASL password. There is
// deliberately no flag for it: command lines show in process lists.
const PasswordEnv = envPrefix + "KAFKA_SASL_PASSWORD"

// envPrefix is app.EnvPrefix (a test in internal/app checks that they match);
// it is repeated here because internal/app imports this package.
const envPrefix = "PROVISIONER_"

// Config is the security of every Kafka connection the provisioner opens. The
// zero value is plaintext without authentication, as before this package.
type Config struct {
	TLS  TLS
	SASL SASL
	// DialTimeout bounds opening one connection: TCP, TLS handshake and SASL
	// exchange. Default 10s.
	DialTimeout time.Duration
}

// TLS configures encryption and verification of the brokers' certificates.
type TLS struct {
	// Enabled turns TLS on (--kafka-tls). Every other TLS field needs it.
	Enabled bool
	// CAFile is a PEM file of the CA certificates that signed the brokers'
	// certificates. Default: the system's roots.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and its private key, for
	// brokers that authenticate clients by certificate (mutual TLS). Optional;
	// both or neither.
	CertFile string
	KeyFile  string
	// ServerName is the name expected in the brokers' certificates. Default: the
	// host of the address dialled.
	ServerName string
	// InsecureSkipVerify accepts any certificate the brokers show. Only for
	// tests: anyone on the path can read and change the traffic. Logged loudly.
	InsecureSkipVerify bool
}

// SASL configures authentication of the provisioner to the brokers.
type SASL struct {
	// Mechanism is "", PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (case-insensitive).
	// "" means no SASL.
	Mechanism string
	// Username is the SASL user.
	Username string
	// Password comes only from the environment (PROVISIONER_KAFKA_SASL_PASSWORD,
	// see LoadSecrets). It never prints itself.
	Password Secret
	// PasswordFile is a file holding the password (a trailing newline is
	// ignored). It is read again for every new connection, so a rotated password
	// is picked up without a restart.
	PasswordFile string
	// AllowPlaintext allows SASL PLAIN without TLS, which sends the password in
	// clear text. Only for tests.
	AllowPlaintext bool
}

// Enabled reports whether any TLS or SASL is configured.
func (c *Config) Enabled() bool { return c.TLS.Enabled || c.SASL.Mechanism != "" }

// Validate checks the settings and reports every problem, one per line, each
// saying what to fix; errors.Join's Unwrap() []error lists them one by one. It
// reads the files named, but never puts their contents or the password in an
// error.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	t, s := &c.TLS, &c.SASL

	if !t.Enabled {
		for _, f := range []struct{ flag, val string }{
			{"kafka-tls-ca-file", t.CAFile}, {"kafka-tls-cert-file", t.CertFile},
			{"kafka-tls-key-file", t.KeyFile}, {"kafka-tls-server-name", t.ServerName},
		} {
			if f.val != "" {
				bad("--%s is set but TLS is off: add --kafka-tls (%s=true), or drop --%s", f.flag, envName("kafka-tls"), f.flag)
			}
		}
		if t.InsecureSkipVerify {
			bad("--kafka-tls-insecure-skip-verify is set but TLS is off: add --kafka-tls, or drop it")
		}
	} else {
		if t.CAFile != "" {
			if _, err := loadCAs(t.CAFile); err != nil {
				errs = append(errs, err)
			}
		}
		switch {
		case t.CertFile != "" && t.KeyFile == "":
			bad("--kafka-tls-cert-file is set without --kafka-tls-key-file: give the client certificate's private key too")
		case t.CertFile == "" && t.KeyFile != "":
			bad("--kafka-tls-key-file is set without --kafka-tls-cert-file: give the client certificate too")
		case t.CertFile != "":
			if _, err := loadKeyPair(t.CertFile, t.KeyFile); err != nil {
				errs = append(errs, err)
			}
		}
	}

	mech := canonicalMechanism(s.Mechanism)
	switch mech {
	case "":
		var set []string
		if s.Username != "" {
			set = append(set, "--kafka-sasl-username")
		}
		if s.PasswordFile != "" {
			set = append(set, "--kafka-sasl-password-file")
		}
		if s.Password != "" {
			set = append(set, PasswordEnv)
		}
		if len(set) > 0 {
			bad("%s set but --kafka-sasl-mechanism (%s) is not: choose PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", strings.Join(set, " and "), envName("kafka-sasl-mechanism"))
		}
	case MechanismPLAIN, MechanismSCRAMSHA256, MechanismSCRAMSHA512:
		if s.Username == "" {
			bad("--kafka-sasl-mechanism is %s but --kafka-sasl-username (%s) is empty: set the SASL user name", mech, envName("kafka-sasl-username"))
		}
		var password string
		switch {
		case s.Password != "" && s.PasswordFile != "":
			bad("both %s and --kafka-sasl-password-file are set: keep one", PasswordEnv)
		case s.Password == "" && s.PasswordFile == "":
			bad("no SASL password: set %s or --kafka-sasl-password-file (a file holding the password)", PasswordEnv)
		case s.PasswordFile != "":
			var err error
			if password, err = readPasswordFile(s.PasswordFile); err != nil {
				errs = append(errs, err)
			}
		default:
			password = s.Password.Value()
		}
		if s.Username != "" && password != "" {
			if err := checkCredentials(mech, s.Username, password); err != nil {
				errs = append(errs, err)
			}
		}
		if mech == MechanismPLAIN && !t.Enabled && !s.AllowPlaintext {
			bad("SASL PLAIN without TLS sends the password in clear text: add --kafka-tls (%s=true), or --kafka-allow-plaintext-sasl for a test broker", envName("kafka-tls"))
		}
	default:
		bad("--kafka-sasl-mechanism %q is not supported: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
	}
	if c.DialTimeout < 0 {
		bad("the Kafka dial timeout must be positive, not %s", c.DialTimeout)
	}
	return errors.Join(errs...)
}

// Warnings returns what a validated Config allows but an operator should hear
// about at every start (log them at warn level).
func (c *Config) Warnings() []string {
	var w []string
	mech := canonicalMechanism(c.SASL.Mechanism)
	if c.TLS.Enabled && c.TLS.InsecureSkipVerify {
		msg := "TLS certificate verification of the Kafka brokers is OFF (--kafka-tls-insecure-skip-verify): anyone on the path can read and change the traffic"
		if mech == MechanismPLAIN {
			msg += ", and learn the SASL PLAIN password"
		}
		w = append(w, msg)
	}
	if !c.TLS.Enabled && mech != "" {
		if mech == MechanismPLAIN {
			w = append(w, "SASL PLAIN without TLS (--kafka-allow-plaintext-sasl): the password crosses the network in clear text")
		} else {
			w = append(w, mech+" without TLS: the password is not sent, but records and the SCRAM exchange are readable on the network")
		}
	}
	return w
}

// Describe says in a few words how the clients connect, for the start-up log
// line. It never includes the password.
func (c *Config) Describe() string {
	var parts []string
	if c.TLS.Enabled {
		tlsDesc := "TLS"
		if c.TLS.InsecureSkipVerify {
			tlsDesc += " (certificates NOT verified)"
		} else if c.TLS.CAFile != "" {
			tlsDesc += " (CA " + c.TLS.CAFile + ")"
		}
		if c.TLS.CertFile != "" {
			tlsDesc += " with client certificate"
		}
		parts = append(parts, tlsDesc)
	} else {
		parts = append(parts, "plaintext")
	}
	if m := canonicalMechanism(c.SASL.Mechanism); m != "" {
		parts = append(parts, fmt.Sprintf("SASL %s as %q", m, c.SASL.Username))
	}
	return strings.Join(parts, ", ")
}

// TLSConfig returns the client TLS configuration, or nil when TLS is off.
func (c *Config) TLSConfig() (*tls.Config, error) {
	t := &c.TLS
	if !t.Enabled {
		return nil, nil
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // only when asked for explicitly, and logged by the caller
	}
	if t.CAFile != "" {
		pool, err := loadCAs(t.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		pair, err := loadKeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Dialer returns the dialer of the consumer group and the partition readers
// (consumer.Config.Dialer), with the configured TLS and SASL. Each call returns
// a new Dialer; it is safe for concurrent use.
func (c *Config) Dialer() (*kafka.Dialer, error) {
	tlsCfg, mech, err := c.build()
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{
		Timeout:   c.dialTimeout(),
		DualStack: true,
		TLS:       tlsCfg,
		// A nil *mechanism in the interface would not be nil: set it only when used.
		SASLMechanism: saslOrNil(mech),
	}, nil
}

// Transport returns the transport of the writers and of kafka.Client
// (producer.Config.Transport, kafka.Writer.Transport, kafka.Client.Transport),
// with the configured TLS and SASL. Each call returns a new Transport with its
// own connection pool; it is safe for concurrent use.
func (c *Config) Transport() (*kafka.Transport, error) {
	tlsCfg, mech, err := c.build()
	if err != nil {
		return nil, err
	}
	return &kafka.Transport{
		DialTimeout: c.dialTimeout(),
		TLS:         tlsCfg,
		SASL:        saslOrNil(mech),
	}, nil
}

func (c *Config) dialTimeout() time.Duration {
	if c.DialTimeout > 0 {
		return c.DialTimeout
	}
	return 10 * time.Second
}

func (c *Config) build() (*tls.Config, *mechanism, error) {
	if err := c.Validate(); err != nil {
		return nil, nil, fmt.Errorf("checking the Kafka security settings: %w", err)
	}
	tlsCfg, err := c.TLSConfig()
	if err != nil {
		return nil, nil, err
	}
	mech := canonicalMechanism(c.SASL.Mechanism)
	if mech == "" {
		return tlsCfg, nil, nil
	}
	m := &mechanism{name: mech, username: c.SASL.Username}
	if f := c.SASL.PasswordFile; f != "" {
		m.password = func() (string, error) { return readPasswordFile(f) }
	} else {
		p := c.SASL.Password.Value()
		m.password = func() (string, error) { return p, nil }
	}
	return tlsCfg, m, nil
}

func canonicalMechanism(m string) string { return strings.ToUpper(strings.TrimSpace(m)) }

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// loadCAs reads a PEM file of CA certificates.
func loadCAs(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--kafka-tls-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("--kafka-tls-ca-file %s holds no PEM certificate: give the CA certificate(s) in PEM (-----BEGIN CERTIFICATE-----)", path)
	}
	return pool, nil
}

// loadKeyPair reads the client certificate and key. crypto/tls's errors name
// what is wrong (no PEM data, key does not match) without quoting the key.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	for _, f := range []struct{ flag, path string }{{"kafka-tls-cert-file", certFile}, {"kafka-tls-key-file", keyFile}} {
		if _, err := os.Stat(f.path); err != nil {
			return tls.Certificate{}, fmt.Errorf("--%s: %w", f.flag, err)
		}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("--kafka-tls-cert-file %s and --kafka-tls-key-file %s: %w", certFile, keyFile, err)
	}
	return pair, nil
}

// readPasswordFile returns the password in path, without a trailing newline.
// Its errors name the file, never its contents.
func readPasswordFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--kafka-sasl-password-file: %w", err)
	}
	p := strings.TrimRight(string(b), "\r\n")
	if strings.TrimSpace(p) == "" {
		return "", fmt.Errorf("--kafka-sasl-password-file %s is empty: write the SASL password into it", path)
	}
	return p, nil
}

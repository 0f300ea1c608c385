package kafkasec_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/kafkasec"
)

const password = "Pa55-w0rd-that-must-never-show"

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t, "validate")
	pwFile := writeFile(t, dir, "pw", password+"\n")
	empty := writeFile(t, dir, "empty", "\n")
	notPEM := writeFile(t, dir, "not.pem", "hello")
	missing := filepath.Join(dir, "missing")
	tlsOn := kafkasec.TLS{Enabled: true, CAFile: p.CAFile}
	scram := func(c *kafkasec.Config) {
		c.TLS = tlsOn
		c.SASL = kafkasec.SASL{Mechanism: "SCRAM-SHA-512", Username: "provisioner", PasswordFile: pwFile}
	}
	tests := []struct {
		name   string
		change func(*kafkasec.Config)
		want   string // substring of the error; "" means valid
	}{
		{"zero value is plaintext", func(*kafkasec.Config) {}, ""},
		{"TLS with system roots", func(c *kafkasec.Config) { c.TLS.Enabled = true }, ""},
		{"TLS with CA and client certificate", func(c *kafkasec.Config) {
			c.TLS = tlsOn
			c.TLS.CertFile, c.TLS.KeyFile, c.TLS.ServerName = p.ClientCert, p.ClientKey, "localhost"
		}, ""},
		{"SCRAM over TLS, password file", scram, ""},
		{"PLAIN over TLS, password from the environment", func(c *kafkasec.Config) {
			c.TLS = tlsOn
			c.SASL = kafkasec.SASL{Mechanism: "plain", Username: "provisioner", Password: password}
		}, ""},
		{"SCRAM-SHA-256 without TLS is allowed (warned)", func(c *kafkasec.Config) {
			c.SASL = kafkasec.SASL{Mechanism: "SCRAM-SHA-256", Username: "u", Password: password}
		}, ""},
		{"PLAIN without TLS, explicitly allowed", func(c *kafkasec.Config) {
			c.SASL = kafkasec.SASL{Mechanism: "PLAIN", Username: "u", Password: password, AllowPlaintext: true}
		}, ""},

		{"CA file without TLS", func(c *kafkasec.Config) { c.TLS.CAFile = p.CAFile }, "--kafka-tls-ca-file is set but TLS is off: add --kafka-tls (PROVISIONER_KAFKA_TLS=true)"},
		{"insecure without TLS", func(c *kafkasec.Config) { c.TLS.InsecureSkipVerify = true }, "--kafka-tls-insecure-skip-verify is set but TLS is off"},
		{"missing CA file", func(c *kafkasec.Config) { c.TLS = kafkasec.TLS{Enabled: true, CAFile: missing} }, "--kafka-tls-ca-file: open " + missing + ": no such file or directory"},
		{"CA file without certificates", func(c *kafkasec.Config) { c.TLS = kafkasec.TLS{Enabled: true, CAFile: notPEM} }, "holds no PEM certificate"},
		{"certificate without key", func(c *kafkasec.Config) { c.TLS = tlsOn; c.TLS.CertFile = p.ClientCert }, "--kafka-tls-cert-file is set without --kafka-tls-key-file"},
		{"key without certificate", func(c *kafkasec.Config) { c.TLS = tlsOn; c.TLS.KeyFile = p.ClientKey }, "--kafka-tls-key-file is set without --kafka-tls-cert-file"},
		{"key of another certificate", func(c *kafkasec.Config) {
			other := newPKI(t, "other")
			c.TLS = tlsOn
			c.TLS.CertFile, c.TLS.KeyFile = p.ClientCert, other.ClientKey
		}, "private key does not match public key"},
		{"unknown mechanism", func(c *kafkasec.Config) { scram(c); c.SASL.Mechanism = "SCRAM-SHA-1" }, `--kafka-sasl-mechanism "SCRAM-SHA-1" is not supported: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`},
		{"user name without mechanism", func(c *kafkasec.Config) { c.SASL.Username = "u" }, "--kafka-sasl-username set but --kafka-sasl-mechanism (PROVISIONER_KAFKA_SASL_MECHANISM) is not"},
		{"password without mechanism", func(c *kafkasec.Config) { c.SASL.Password = password }, "PROVISIONER_KAFKA_SASL_PASSWORD set but --kafka-sasl-mechanism"},
		{"mechanism without user", func(c *kafkasec.Config) { scram(c); c.SASL.Username = "" }, "--kafka-sasl-username (PROVISIONER_KAFKA_SASL_USERNAME) is empty"},
		{"no password", func(c *kafkasec.Config) { scram(c); c.SASL.PasswordFile = "" }, "no SASL password: set PROVISIONER_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file"},
		{"two passwords", func(c *kafkasec.Config) { scram(c); c.SASL.Password = password }, "both PROVISIONER_KAFKA_SASL_PASSWORD and --kafka-sasl-password-file are set: keep one"},
		{"missing password file", func(c *kafkasec.Config) { scram(c); c.SASL.PasswordFile = missing }, "--kafka-sasl-password-file: open " + missing},
		{"empty password file", func(c *kafkasec.Config) { scram(c); c.SASL.PasswordFile = empty }, "is empty: write the SASL password into it"},
		{"PLAIN without TLS", func(c *kafkasec.Config) {
			c.SASL = kafkasec.SASL{Mechanism: "PLAIN", Username: "u", Password: password}
		}, "SASL PLAIN without TLS sends the password in clear text: add --kafka-tls"},
		{"password SASLprep refuses", func(c *kafkasec.Config) {
			scram(c)
			c.SASL.PasswordFile, c.SASL.Password = "", password+"\x07"
		}, "cannot be used with SCRAM-SHA-512: it holds characters that SASLprep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c kafkasec.Config
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("no error, want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), password) {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	c := kafkasec.Config{
		TLS:  kafkasec.TLS{CAFile: "ca.pem"},
		SASL: kafkasec.SASL{Mechanism: "GSSAPI"},
	}
	err := c.Validate()
	var multi interface{ Unwrap() []error }
	if !errors.As(err, &multi) || len(multi.Unwrap()) != 2 {
		t.Fatalf("want two problems listed one by one, got %v", err)
	}
}

// TestSecretsNeverShown formats everything that holds or meets the password,
// with every verb and encoder a log line might use, and searches for it.
func TestSecretsNeverShown(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t, "hygiene")
	pwFile := writeFile(t, dir, "pw", password+"\n")
	closed := closedPort(t)

	var shown []string
	show := func(v any) {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%T %v"} {
			if verb == "%T %v" {
				shown = append(shown, fmt.Sprintf(verb, v, v))
			} else {
				shown = append(shown, fmt.Sprintf(verb, v))
			}
		}
		if b, err := json.Marshal(v); err == nil {
			shown = append(shown, string(b))
		}
	}
	var logs bytes.Buffer
	log := zerolog.New(&logs).Level(zerolog.DebugLevel)

	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		for _, fromFile := range []bool{false, true} {
			c := kafkasec.Config{
				TLS:         kafkasec.TLS{Enabled: true, CAFile: p.CAFile},
				SASL:        kafkasec.SASL{Mechanism: mech, Username: "provisioner", Password: password},
				DialTimeout: 2 * time.Second,
			}
			if fromFile {
				c.SASL.Password, c.SASL.PasswordFile = "", pwFile
			}
			d, err := c.Dialer()
			if err != nil {
				t.Fatal(err)
			}
			tr, err := c.Transport()
			if err != nil {
				t.Fatal(err)
			}
			show(c)
			show(&c)
			show(c.SASL)
			show(c.SASL.Password)
			show(d)
			show(*d)
			show(d.SASLMechanism)
			show(tr)
			shown = append(shown, c.Describe())
			log.Debug().Interface("config", c).Interface("dialer", d).Interface("transport", tr).Str("desc", c.Describe()).Msg("kafka security")

			// Errors on the way: no broker, a broken password, both passwords.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = c.Check(ctx, []string{closed})
			cancel()
			if err == nil {
				t.Fatal("Check succeeded against a closed port")
			}
			show(err)
			log.Error().Err(err).Msg("check")
			bad := c
			bad.SASL.Password, bad.SASL.PasswordFile = password+"\x00\x07", ""
			err = bad.Validate()
			if err == nil {
				t.Fatalf("%s: a password with control characters passed", mech)
			}
			show(err)
			_, err = bad.Dialer()
			show(err)
			both := c
			both.SASL.Password, both.SASL.PasswordFile = password, pwFile
			show(both.Validate())
		}
	}
	shown = append(shown, logs.String())
	for _, s := range shown {
		if strings.Contains(s, password) || strings.Contains(s, fmt.Sprintf("%x", password)) {
			t.Fatalf("the password shows in %q", s)
		}
	}
	if !strings.Contains(logs.String(), `SCRAM-SHA-512 as \"provisioner\"`) && !strings.Contains(logs.String(), `"SCRAM-SHA-512 as`) {
		t.Logf("logs: %s", logs.String())
	}
}

func TestSecretPrints(t *testing.T) {
	s := kafkasec.Secret(password)
	for _, got := range []string{fmt.Sprint(s), fmt.Sprintf("%q %x %#v %+v", s, s, s, s), s.String()} {
		if strings.Contains(got, password) || !strings.Contains(got, "[redacted]") {
			t.Fatalf("Secret printed %q", got)
		}
	}
	if b, _ := json.Marshal(struct{ P kafkasec.Secret }{s}); string(b) != `{"P":"[redacted]"}` {
		t.Fatalf("JSON %s", b)
	}
	if fmt.Sprint(kafkasec.Secret("")) != "" {
		t.Fatal("an empty secret should print empty, so that 'not set' shows")
	}
	if s.Value() != password {
		t.Fatal("Value lost the secret")
	}
}

// TestPasswordFileReadAgain: a new connection uses the password in the file
// now, so a rotated password needs no restart.
func TestPasswordFileReadAgain(t *testing.T) {
	dir := t.TempDir()
	pwFile := writeFile(t, dir, "pw", "first\n")
	c := kafkasec.Config{TLS: kafkasec.TLS{Enabled: true},
		SASL: kafkasec.SASL{Mechanism: "PLAIN", Username: "u", PasswordFile: pwFile}}
	d, err := c.Dialer()
	if err != nil {
		t.Fatal(err)
	}
	initial := func() string {
		t.Helper()
		_, ir, err := d.SASLMechanism.Start(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return string(ir)
	}
	if got := initial(); got != "\x00u\x00first" {
		t.Fatalf("initial response %q", got)
	}
	writeFile(t, dir, "pw", "second")
	if got := initial(); got != "\x00u\x00second" {
		t.Fatalf("after rotation: initial response %q", got)
	}
	if err := os.Remove(pwFile); err != nil {
		t.Fatal(err)
	}
	_, _, err = d.SASLMechanism.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "--kafka-sasl-password-file") {
		t.Fatalf("a missing file should fail the connection naming the flag, got %v", err)
	}
}

func TestBuildersPlaintext(t *testing.T) {
	var c kafkasec.Config
	d, err := c.Dialer()
	if err != nil || d.TLS != nil || d.SASLMechanism != nil || d.Timeout != 10*time.Second {
		t.Fatalf("plaintext dialer %+v, %v", d, err)
	}
	tr, err := c.Transport()
	if err != nil || tr.TLS != nil || tr.SASL != nil {
		t.Fatalf("plaintext transport %+v, %v", tr, err)
	}
	if c.Enabled() || len(c.Warnings()) != 0 || c.Describe() != "plaintext" {
		t.Fatalf("plaintext: enabled %v, warnings %v, %q", c.Enabled(), c.Warnings(), c.Describe())
	}
	c.SASL = kafkasec.SASL{Mechanism: "PLAIN", Username: "u"}
	if _, err := c.Transport(); err == nil {
		t.Fatal("Transport built from an invalid config")
	}
}

func TestTLSConfig(t *testing.T) {
	p := newPKI(t, "tlsconfig")
	c := kafkasec.Config{TLS: kafkasec.TLS{Enabled: true, CAFile: p.CAFile, CertFile: p.ClientCert, KeyFile: p.ClientKey, ServerName: "kafka-1"}}
	tc, err := c.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.ServerName != "kafka-1" || tc.InsecureSkipVerify || tc.MinVersion != tls.VersionTLS12 {
		t.Fatalf("TLS config %+v", tc)
	}
}

func TestWarnings(t *testing.T) {
	c := kafkasec.Config{TLS: kafkasec.TLS{Enabled: true, InsecureSkipVerify: true},
		SASL: kafkasec.SASL{Mechanism: "PLAIN", Username: "u", Password: password}}
	w := strings.Join(c.Warnings(), "\n")
	if !strings.Contains(w, "verification of the Kafka brokers is OFF") || !strings.Contains(w, "PLAIN password") {
		t.Fatalf("warnings %q", w)
	}
	if d := c.Describe(); !strings.Contains(d, "NOT verified") || !strings.Contains(d, `SASL PLAIN as "u"`) {
		t.Fatalf("describe %q", d)
	}
	c = kafkasec.Config{SASL: kafkasec.SASL{Mechanism: "SCRAM-SHA-256", Username: "u", Password: password}}
	if w := c.Warnings(); len(w) != 1 || !strings.Contains(w[0], "without TLS") {
		t.Fatalf("warnings %q", w)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want kafkasec.Kind
	}{
		{nil, kafkasec.Transient},
		{io.EOF, kafkasec.Transient},
		{kafka.RequestTimedOut, kafkasec.Transient},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, kafkasec.Transient},
		{kafka.SASLAuthenticationFailed, kafkasec.Authentication},
		{fmt.Errorf("could not successfully authenticate to x:1 with SASL: %w", kafka.SASLAuthenticationFailed), kafkasec.Authentication},
		{fmt.Errorf("SASL handshake failed: %w", kafka.UnsupportedSASLMechanism), kafkasec.Authentication},
		{fmt.Errorf("publishing: %w", fmt.Errorf("dialing: %w", kafka.IllegalSASLState)), kafkasec.Authentication},
		{fmt.Errorf("x: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), kafkasec.Certificate},
		{fmt.Errorf("x: %w", x509.HostnameError{Host: "h"}), kafkasec.Certificate},
		{fmt.Errorf("x: %w", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), kafkasec.Certificate},
		{fmt.Errorf("x: %w", tls.AlertError(42)), kafkasec.Certificate},
		{fmt.Errorf("failed to dial: %w", &net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}), kafkasec.Certificate},
	}
	for _, tt := range tests {
		if got := kafkasec.Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
		}
		if kafkasec.Permanent(tt.err) != (tt.want != kafkasec.Transient) {
			t.Errorf("Permanent(%v) wrong", tt.err)
		}
	}
}

// TestCheckTLS runs Check against a TLS listener: the right CA, another CA, a
// wrong name, and a listener that wants a client certificate.
func TestCheckTLS(t *testing.T) {
	p := newPKI(t, "server")
	other := newPKI(t, "other")
	serve := func(t *testing.T, cfg *tls.Config) string {
		t.Helper()
		ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer conn.Close()
					_ = conn.(*tls.Conn).Handshake()
					_, _ = io.Copy(io.Discard, conn)
				}()
			}
		}()
		return ln.Addr().String()
	}
	addr := serve(t, &tls.Config{Certificates: []tls.Certificate{p.ServerCert}})
	check := func(c kafkasec.Config, addr string) error {
		c.TLS.Enabled, c.DialTimeout = true, 5*time.Second
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return c.Check(ctx, []string{addr})
	}

	if err := check(kafkasec.Config{TLS: kafkasec.TLS{CAFile: p.CAFile}}, addr); err != nil {
		t.Fatalf("right CA: %v", err)
	}
	if err := check(kafkasec.Config{TLS: kafkasec.TLS{CAFile: p.CAFile}}, strings.Replace(addr, "127.0.0.1", "localhost", 1)); err != nil {
		t.Fatalf("right CA, by name: %v", err)
	}
	err := check(kafkasec.Config{TLS: kafkasec.TLS{CAFile: other.CAFile}}, addr)
	wantCheckError(t, err, kafkasec.Certificate, "certificate signed by unknown authority", "not signed by a CA in --kafka-tls-ca-file "+other.CAFile)
	err = check(kafkasec.Config{}, addr)
	wantCheckError(t, err, kafkasec.Certificate, "certificate signed by unknown authority", "give its CA with --kafka-tls-ca-file")
	err = check(kafkasec.Config{TLS: kafkasec.TLS{CAFile: p.CAFile, ServerName: "kafka.example"}}, addr)
	wantCheckError(t, err, kafkasec.Certificate, "kafka.example", "set --kafka-tls-server-name")

	// TLS 1.2, so that the client hears the refusal during the handshake.
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	mtls := serve(t, &tls.Config{Certificates: []tls.Certificate{p.ServerCert}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: pool, MaxVersion: tls.VersionTLS12})
	err = check(kafkasec.Config{TLS: kafkasec.TLS{CAFile: p.CAFile}}, mtls)
	wantCheckError(t, err, kafkasec.Certificate, "tls:", "--kafka-tls-cert-file")
	if err := check(kafkasec.Config{TLS: kafkasec.TLS{CAFile: p.CAFile, CertFile: p.ClientCert, KeyFile: p.ClientKey}}, mtls); err != nil {
		t.Fatalf("with the client certificate: %v", err)
	}
}

func TestCheckUnreachable(t *testing.T) {
	c := kafkasec.Config{TLS: kafkasec.TLS{Enabled: true}, DialTimeout: 2 * time.Second}
	err := c.Check(context.Background(), []string{closedPort(t)})
	if err == nil || kafkasec.Permanent(err) {
		t.Fatalf("an unreachable broker is transient, got %v", err)
	}
	var kerr *kafkasec.Error
	if errors.As(err, &kerr) {
		t.Fatalf("an unreachable broker is not a *kafkasec.Error: %v", err)
	}
}

func wantCheckError(t *testing.T, err error, kind kafkasec.Kind, says ...string) {
	t.Helper()
	var kerr *kafkasec.Error
	if !errors.As(err, &kerr) || kerr.Kind != kind || !kafkasec.Permanent(err) {
		t.Fatalf("want a permanent %v error, got %v", kind, err)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not say %q", err, s)
		}
	}
}

// closedPort returns an address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

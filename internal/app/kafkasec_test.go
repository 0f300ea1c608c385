package app

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/acme-sp/wholesale-provisioner/internal/kafkasec"
)

// kafkasec repeats EnvPrefix (it cannot import this package): they must agree.
func TestKafkaSecurityEnvNames(t *testing.T) {
	if kafkasec.PasswordEnv != EnvName("kafka-sasl-password") {
		t.Fatalf("kafkasec.PasswordEnv is %s, want %s", kafkasec.PasswordEnv, EnvName("kafka-sasl-password"))
	}
	sec := kafkasec.Config{SASL: kafkasec.SASL{Mechanism: "SCRAM-SHA-256"}}
	msg := ""
	for _, err := range kafkaProblems(&sec) {
		msg += err.Error() + "\n"
	}
	for _, want := range []string{EnvName("kafka-sasl-username"), EnvName("kafka-sasl-password")} {
		if !strings.Contains(msg, want) {
			t.Errorf("the problems do not name %s:\n%s", want, msg)
		}
	}
}

func TestKafkaProblemsOneByOne(t *testing.T) {
	sec := kafkasec.Config{TLS: kafkasec.TLS{CAFile: "ca.pem"}, SASL: kafkasec.SASL{Mechanism: "GSSAPI"}}
	if got := kafkaProblems(&sec); len(got) != 2 {
		t.Fatalf("want 2 problems, got %q", got)
	}
	if got := kafkaProblems(&kafkasec.Config{}); got != nil {
		t.Fatalf("plaintext has no problems, got %q", got)
	}
}

func TestNewKafkaClients(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	srv := httptest.NewTLSServer(nil) // a certificate no system trusts
	t.Cleanup(srv.Close)
	tlsAddr := srv.Listener.Addr().String()

	t.Run("plaintext: no check, defaults", func(t *testing.T) {
		kc, err := newKafkaClients(context.Background(), kafkasec.Config{}, []string{closed}, zerolog.Nop())
		if err != nil || kc.dialer == nil || kc.transport == nil || kc.dialer.TLS != nil {
			t.Fatalf("%+v, %v", kc, err)
		}
	})
	t.Run("unreachable broker: start anyway, warn", func(t *testing.T) {
		var logs bytes.Buffer
		sec := kafkasec.Config{TLS: kafkasec.TLS{Enabled: true}, DialTimeout: 2 * time.Second}
		if _, err := newKafkaClients(context.Background(), sec, []string{closed}, zerolog.New(&logs)); err != nil {
			t.Fatalf("an unreachable broker stopped the start: %v", err)
		}
		if !strings.Contains(logs.String(), "not reachable yet") {
			t.Fatalf("no warning: %s", logs.String())
		}
	})
	t.Run("untrusted certificate: refuse to start", func(t *testing.T) {
		sec := kafkasec.Config{TLS: kafkasec.TLS{Enabled: true}, DialTimeout: 5 * time.Second}
		_, err := newKafkaClients(context.Background(), sec, []string{tlsAddr}, zerolog.Nop())
		if !kafkasec.Permanent(err) || !strings.Contains(err.Error(), "--kafka-tls-ca-file") {
			t.Fatalf("want a certificate error naming --kafka-tls-ca-file, got %v", err)
		}
	})
	t.Run("verification off: starts, and says so loudly", func(t *testing.T) {
		var logs bytes.Buffer
		sec := kafkasec.Config{TLS: kafkasec.TLS{Enabled: true, InsecureSkipVerify: true}, DialTimeout: 5 * time.Second}
		if _, err := newKafkaClients(context.Background(), sec, []string{tlsAddr}, zerolog.New(&logs)); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), "verification of the Kafka brokers is OFF") {
			t.Fatalf("no loud warning: %s", logs.String())
		}
	})
}

func TestBindFlagsAndSecrets(t *testing.T) {
	var c kafkasec.Config
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	BindKafkaSecurityFlags(fs, &c)
	err := fs.Parse([]string{"--kafka-tls", "--kafka-tls-ca-file", "ca.pem", "--kafka-tls-cert-file", "c.pem",
		"--kafka-tls-key-file", "c.key", "--kafka-tls-server-name", "kafka.internal", "--kafka-sasl-mechanism", "SCRAM-SHA-256",
		"--kafka-sasl-username", "svc", "--kafka-sasl-password-file", "/run/secrets/kafka", "--kafka-allow-plaintext-sasl",
		"--kafka-tls-insecure-skip-verify"})
	if err != nil {
		t.Fatal(err)
	}
	want := kafkasec.Config{
		TLS: kafkasec.TLS{Enabled: true, CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "c.key", ServerName: "kafka.internal", InsecureSkipVerify: true},
		SASL: kafkasec.SASL{Mechanism: "SCRAM-SHA-256", Username: "svc", PasswordFile: "/run/secrets/kafka",
			AllowPlaintext: true},
	}
	if c != want {
		t.Fatalf("flags gave %+v, want %+v", c, want)
	}
	fs.VisitAll(func(f *flag.Flag) {
		if strings.Contains(f.Name, "password") && f.Name != "kafka-sasl-password-file" {
			t.Errorf("flag --%s: a password must never be a command-line argument", f.Name)
		}
	})
	if err := fs.Parse([]string{"--kafka-sasl-password", "x"}); err == nil {
		t.Fatal("--kafka-sasl-password exists; it must not")
	}

	LoadKafkaSecrets(&c, func(k string) (string, bool) {
		if k == "PROVISIONER_KAFKA_SASL_PASSWORD" {
			return kafkaPassword, true
		}
		return "", false
	})
	if c.SASL.Password.Value() != kafkaPassword {
		t.Fatal("LoadKafkaSecrets did not read PROVISIONER_KAFKA_SASL_PASSWORD")
	}
}

const kafkaPassword = "p4ss-w0rd-for-the-flags-test"

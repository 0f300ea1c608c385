package app

import (
	"bytes"
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
		kc, err := newKafkaClients(kafkasec.Config{}, []string{closed}, zerolog.Nop())
		if err != nil || kc.dialer == nil || kc.transport == nil || kc.dialer.TLS != nil {
			t.Fatalf("%+v, %v", kc, err)
		}
	})
	t.Run("unreachable broker: start anyway, warn", func(t *testing.T) {
		var logs bytes.Buffer
		sec := kafkasec.Config{TLS: kafkasec.TLS{Enabled: true}, DialTimeout: 2 * time.Second}
		if _, err := newKafkaClients(sec, []string{closed}, zerolog.New(&logs)); err != nil {
			t.Fatalf("an unreachable broker stopped the start: %v", err)
		}
		if !strings.Contains(logs.String(), "not reachable yet") {
			t.Fatalf("no warning: %s", logs.String())
		}
	})
	t.Run("untrusted certificate: refuse to start", func(t *testing.T) {
		sec := kafkasec.Config{TLS: kafkasec.TLS{Enabled: true}, DialTimeout: 5 * time.Second}
		_, err := newKafkaClients(sec, []string{tlsAddr}, zerolog.Nop())
		if !kafkasec.Permanent(err) || !strings.Contains(err.Error(), "--kafka-tls-ca-file") {
			t.Fatalf("want a certificate error naming --kafka-tls-ca-file, got %v", err)
		}
	})
	t.Run("verification off: starts, and says so loudly", func(t *testing.T) {
		var logs bytes.Buffer
		sec := kafkasec.Config{TLS: kafkasec.TLS{Enabled: true, InsecureSkipVerify: true}, DialTimeout: 5 * time.Second}
		if _, err := newKafkaClients(sec, []string{tlsAddr}, zerolog.New(&logs)); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), "verification of the Kafka brokers is OFF") {
			t.Fatalf("no loud warning: %s", logs.String())
		}
	})
}

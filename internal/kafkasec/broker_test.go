package kafkasec_test

// The SASL_SSL broker of the real-broker tests: one per test binary, started
// with `scripts/kafka-local start --sasl` in its own temporary state folder on
// the first test that needs it, and stopped by TestMain. It never touches the
// broker of KAFKA_BROKERS. With KAFKA_LOCAL_SASL_DIR set, the tests use (and
// if needed start) the SASL_SSL broker of that state folder and leave it
// running, which saves its start-up when the tests run again.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/kafkasec"
	"github.com/acme-sp/wholesale-provisioner/internal/kafkatest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopSASLBroker()
	os.Exit(code)
}

// saslBroker is a running SASL_SSL broker and what sasl.env says about it.
type saslBroker struct {
	Addr      string
	Dir       string
	Env       map[string]string
	Password  string        // the client user's, read from its file
	StartTook time.Duration // how long `start --sasl` took
	keep      bool          // KAFKA_LOCAL_SASL_DIR: not ours to stop
}

var (
	saslOnce    sync.Once
	saslRunning *saslBroker
	saslErr     error
	saslScript  string
)

// saslKafka returns the SASL_SSL broker, starting it on first use. It skips
// the test without KAFKA_BROKERS (this machine has no broker set-up) and, with
// one line, when the script cannot start the broker (it fails under CI).
func saslKafka(t *testing.T) *saslBroker {
	t.Helper()
	kafkatest.Brokers(t)
	saslOnce.Do(func() { saslRunning, saslErr = startSASLBroker() })
	if saslErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("starting the SASL_SSL broker: %v", saslErr)
		}
		t.Skipf("cannot start a SASL_SSL broker with scripts/kafka-local start --sasl: %v", firstLine(saslErr.Error()))
	}
	return saslRunning
}

func startSASLBroker() (*saslBroker, error) {
	root, err := kafkatest.ModuleRoot()
	if err != nil {
		return nil, err
	}
	saslScript = filepath.Join(root, "scripts", "kafka-local")
	dir, keep := os.Getenv("KAFKA_LOCAL_SASL_DIR"), true
	if dir == "" {
		if dir, err = os.MkdirTemp("", "kafka-local-sasl-"); err != nil {
			return nil, err
		}
		keep = false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, saslScript, "start", "--sasl")
	cmd.Env, cmd.Stdout, cmd.Stderr = scriptEnv(dir), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		saslRunning = &saslBroker{Dir: dir, keep: keep}
		stopSASLBroker()
		return nil, fmt.Errorf("%v: %s", err, lastLines(stderr.String(), 15))
	}
	b := &saslBroker{Dir: dir, StartTook: time.Since(start), Env: map[string]string{}, keep: keep}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	b.Addr = lines[len(lines)-1]
	f, err := os.Open(filepath.Join(dir, "sasl.env"))
	if err != nil {
		return b, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			b.Env[k] = v
		}
	}
	pw, err := os.ReadFile(b.Env["KAFKA_SASL_PASSWORD_FILE"])
	if err != nil {
		return b, fmt.Errorf("sasl.env: %w", err)
	}
	b.Password = strings.TrimSpace(string(pw))
	if b.Env["KAFKA_BROKERS"] != b.Addr || b.Password == "" || b.Env["KAFKA_TLS_CA_FILE"] == "" {
		return b, fmt.Errorf("sasl.env in %s does not describe the broker at %s", dir, b.Addr)
	}
	fmt.Fprintf(os.Stderr, "kafkasec tests: SASL_SSL broker on %s started in %s (state %s)\n", b.Addr, b.StartTook.Round(100*time.Millisecond), dir)
	return b, nil
}

func stopSASLBroker() {
	b := saslRunning
	if b == nil || b.Dir == "" || b.keep {
		return
	}
	cmd := exec.Command(saslScript, "stop", "--timeout", "20")
	cmd.Env = scriptEnv(b.Dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "kafkasec tests: stopping the SASL_SSL broker: %v: %s\n", err, out)
		return // keep its folder: the PID file is how to stop it by hand
	}
	_ = os.RemoveAll(b.Dir)
}

// scriptEnv is the environment of kafka-local for the state folder dir: the
// caller's, without the settings that would tie it to another broker.
func scriptEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "KAFKA_LOCAL_DIR", "KAFKA_PORT", "KAFKA_CONTROLLER_PORT", "KAFKA_LOCAL_SASL":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "KAFKA_LOCAL_DIR="+dir)
}

// config is the security to reach b as its client user with mech.
func (b *saslBroker) config(mech string) kafkasec.Config {
	return kafkasec.Config{
		TLS: kafkasec.TLS{Enabled: true, CAFile: b.Env["KAFKA_TLS_CA_FILE"]},
		SASL: kafkasec.SASL{Mechanism: mech, Username: b.Env["KAFKA_SASL_USERNAME"],
			PasswordFile: b.Env["KAFKA_SASL_PASSWORD_FILE"]},
	}
}

// serverLog returns the broker's server.log.
func (b *saslBroker) serverLog(t *testing.T) string {
	t.Helper()
	out, err := os.ReadFile(filepath.Join(b.Dir, "logs", "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// failedAuthentications counts the failed authentications the broker logged
// from start to end (its log's timestamps are local time, to the millisecond).
func (b *saslBroker) failedAuthentications(t *testing.T, start, end time.Time) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(b.serverLog(t), "\n") {
		if !strings.Contains(line, "Failed authentication with") || len(line) < 25 || line[0] != '[' {
			continue
		}
		at, err := time.ParseInLocation("2006-01-02 15:04:05,000", line[1:24], time.Local)
		if err == nil && !at.Before(start.Truncate(time.Millisecond)) && !at.After(end) {
			n++
		}
	}
	return n
}

// createTopic creates a topic through tr and deletes it when the test ends.
func createTopic(t *testing.T, tr kafka.RoundTripper, addr, name string, partitions int) {
	t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(addr), Transport: tr, Timeout: 20 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: name, NumPartitions: partitions, ReplicationFactor: 1}}})
	if err == nil {
		err = resp.Errors[name]
	}
	if err != nil {
		t.Fatalf("creating topic %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, _ = c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{name}})
	})
	for deadline := time.Now().Add(20 * time.Second); ; {
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{name}})
		if err == nil && len(md.Topics) == 1 && md.Topics[0].Error == nil && len(md.Topics[0].Partitions) == partitions {
			ready := true
			for _, p := range md.Topics[0].Partitions {
				ready = ready && p.Error == nil && p.Leader.Host != ""
			}
			if ready {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s has no leaders after 20s (last error: %v)", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

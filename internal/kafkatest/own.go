package kafkatest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Own is a broker of the test's own, run by scripts/kafka-local in a state
// folder of its own: a test may stop, kill and start it without touching the
// shared broker of KAFKA_BROKERS, and it comes back on the same port.
type Own struct {
	t      testing.TB
	script string
	dir    string
	// Addr is its bootstrap address.
	Addr string
}

// StartOwn starts a broker of the test's own and stops it when the test ends.
// Like Brokers, it skips the test where no broker is configured: that is
// where Java or Kafka's jars may be missing.
func StartOwn(t testing.TB) *Own {
	t.Helper()
	Brokers(t)
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b := &Own{t: t, script: filepath.Join(root, "scripts", "kafka-local"), dir: t.TempDir()}
	b.Start()
	t.Cleanup(func() {
		if out, err := b.run("stop", "--kill"); err != nil {
			t.Errorf("stopping the test's broker: %v\n%s", err, out)
		}
	})
	return b
}

// Control is the command that controls this broker: with "stop", "stop
// --kill" or "start" appended, as the bench's broker-restart scenario runs it.
func (b *Own) Control() []string { return []string{b.script, "--dir", b.dir} }

// Start starts the broker (again, on the same port) and waits until it answers.
func (b *Own) Start() {
	b.t.Helper()
	out, err := b.run("start")
	if err != nil {
		b.t.Fatalf("scripts/kafka-local start: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	addr := strings.TrimSpace(lines[len(lines)-1])
	if b.Addr != "" && addr != b.Addr {
		b.t.Fatalf("the broker came back on %s, not %s", addr, b.Addr)
	}
	b.Addr = addr
}

// Stop stops the broker gracefully (SIGTERM); Kill with SIGKILL, as a crash
// does (its restart then waits out the dead broker's controller session).
func (b *Own) Stop() { b.stop("stop") }

// Kill stops the broker with SIGKILL.
func (b *Own) Kill() { b.stop("stop", "--kill") }

func (b *Own) stop(args ...string) {
	b.t.Helper()
	if out, err := b.run(args...); err != nil {
		b.t.Fatalf("scripts/kafka-local %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// run runs the script with args against the broker's state folder and
// returns its standard output.
func (b *Own) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.script, append([]string{"--dir", b.dir}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

// ModuleRoot is the folder of the go.mod above the working directory: where
// the tests find scripts/ and the provisioner's sources.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

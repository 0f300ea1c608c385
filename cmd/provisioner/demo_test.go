package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the README's first command, small and fast, and checks that it
// ends with exit code 0 and a summary that accounts for every record: the
// new customer and its five subscribers among them.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := Main(ctx, []string{"demo", "--orders", "10", "--sim-latency", "1ms", "--sim-jitter", "1ms",
		"--sim-provisioning-delay", "10ms", "--log-file", t.TempDir() + "/demo.log"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"provisioned", "precheck_rejected", "provisioning_error", "pending_user_action", "invalid_order",
		"invalid_json", "schema_violation", "at most 1 per email", "(lag 0)", "context headers: true",
		"updated", "removed", "was gone already", "subscriber_not_found", "after the user accepted",
		"25 outcome events, 24 distinct event ids", "5 of its 5 subscribers provisioned",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

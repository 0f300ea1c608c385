package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"github.com/acme-sp/wholesale-provisioner/internal/demo"
	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/internal/testkit"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// TestForbiddenEverywherePausesLikeARevokedToken: a partner without the
// wxc-wholesale entitlement gets 403 on every precheck. Once three different
// customers met it in a row, the service treats it as it treats a revoked
// token: no order is failed or dead-lettered for it any more, /readyz says
// why, one line per probe, and it goes on by itself once the entitlement is
// granted. The two orders before the streak was long enough are failed and
// dead-lettered (they can be replayed).
func TestForbiddenEverywherePausesLikeARevokedToken(t *testing.T) {
	const n = 30
	logs := &testkit.Buffer{}
	env := testkit.StartApp(t, testkit.AppOptions{
		Sim: webexsim.Config{NotEntitled: true},
		Configure: func(c *app.Config) {
			c.Workflow.RetryInitialInterval, c.Workflow.RetryMaxInterval = 100*time.Millisecond, 100*time.Millisecond
		},
		Log: zerolog.New(logs),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var msgs []kafka.Message
	for i := range n {
		o := sample.Order("forbidden", i, time.Now())
		o.CustomerID = fmt.Sprintf("customer-%02d", i) // every order its own customer
		msgs = append(msgs, sample.Message(o))
	}
	if err := demo.Publish(ctx, env.Cfg.Brokers, env.Cfg.OrdersTopic, msgs); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(ctx, t, "/readyz to report the configuration fault", func() error {
		r := env.App.Readiness()
		if r.Ready || r.Checks["webex"].OK || !strings.Contains(r.Checks["webex"].Detail, "wxc-wholesale entitlement") {
			return fmt.Errorf("readiness %+v", r)
		}
		return nil
	})
	time.Sleep(time.Second) // some probes
	if probes := strings.Count(string(logs.Bytes()), "configuration fault: taking no new orders"); probes < 3 {
		t.Errorf("%d probe lines in a second of probes every 100ms", probes)
	}
	if lines := strings.Count(string(logs.Bytes()), "order not finished"); lines > 0 {
		t.Errorf("%d per-order error lines: the fault is logged once per probe", lines)
	}
	env.Sim.SetEntitled(true)

	outcomes := readUntil(ctx, t, env.Cfg.Brokers, env.Cfg.OutcomesTopic, n)
	failed := 0
	for _, m := range outcomes {
		var o schemas.Outcome
		if err := json.Unmarshal(m.Value, &o); err != nil {
			t.Fatal(err)
		}
		switch o.Status {
		case schemas.StatusProvisioned:
		case schemas.StatusFailed:
			failed++
			if o.Failure.HTTPStatus != 403 {
				t.Errorf("order %s failed with %+v, want the 403", o.OrderID, o.Failure)
			}
		default:
			t.Errorf("order %s: %s", o.OrderID, o.Status)
		}
	}
	if failed != 2 {
		t.Errorf("%d orders failed, want the 2 whose 403 came before the third customer's", failed)
	}
	readUntil(ctx, t, env.Cfg.Brokers, env.Cfg.DeadLetterTopic, 2) // and no more
	if !strings.Contains(string(logs.Bytes()), "the fault cleared") {
		t.Error("no line says the fault cleared")
	}
	if r := env.App.Readiness(); !r.Checks["webex"].OK {
		t.Errorf("readiness after the entitlement came: %+v", r)
	}
}

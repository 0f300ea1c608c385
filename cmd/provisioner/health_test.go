package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"github.com/acme-sp/wholesale-provisioner/internal/demo"
	"github.com/acme-sp/wholesale-provisioner/internal/sample"
	"github.com/acme-sp/wholesale-provisioner/internal/testkit"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// TestReadinessFollowsConfigurationFault: /readyz is ready once the consumer
// joined its group, turns not-ready while the token is refused (and nothing is
// answered), and ready again, with the orders answered, once it is accepted.
func TestReadinessFollowsConfigurationFault(t *testing.T) {
	env := testkit.StartApp(t, testkit.AppOptions{
		Partitions: 2,
		Sim:        webexsim.Config{Token: "good"},
		Configure: func(c *app.Config) {
			c.Workflow.RetryInitialInterval, c.Workflow.RetryMaxInterval = 50*time.Millisecond, 200*time.Millisecond
		},
	})
	cfg, sim, a := env.Cfg, env.Sim, env.App
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	url := "http://" + a.HTTPAddr() + "/readyz"
	readyz := func() (int, app.Readiness) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, app.Readiness{}
		}
		defer resp.Body.Close()
		var r app.Readiness
		_ = json.NewDecoder(resp.Body).Decode(&r)
		return resp.StatusCode, r
	}
	testkit.WaitFor(ctx, t, "ready", func() error {
		if code, r := readyz(); code != http.StatusOK || !r.Ready {
			return fmt.Errorf("readyz %d %+v", code, r)
		}
		return nil
	})
	if resp, err := http.Get("http://" + a.HTTPAddr() + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}

	sim.SetToken("rotated-elsewhere") // our token no longer works
	var msgs = []kafka.Message{sample.Message(sample.Order("hz", 1, time.Now())), sample.Message(sample.Order("hz", 2, time.Now()))}
	if err := demo.Publish(ctx, cfg.Brokers, cfg.OrdersTopic, msgs); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(ctx, t, "not ready during the configuration fault", func() error {
		code, r := readyz()
		if code != http.StatusServiceUnavailable || r.Checks["webex"].OK {
			return fmt.Errorf("readyz %d %+v", code, r)
		}
		return nil
	})
	if n := sim.Stats().Creates; n != 0 {
		t.Errorf("%d subscribers created with a refused token", n)
	}

	sim.SetToken("good")
	testkit.WaitFor(ctx, t, "ready again with both orders provisioned", func() error {
		code, _ := readyz()
		if code != http.StatusOK || sim.Stats().Creates != 2 {
			return fmt.Errorf("readyz %d, creates %d", code, sim.Stats().Creates)
		}
		return nil
	})
}

package main

import (
	"bytes"
	"context"
	"github.com/acme-sp/wholesale-provisioner/internal/app"
	"strings"
	"testing"
	"time"
)

func TestConfigFromFlagsAndEnvironment(t *testing.T) {
	env := map[string]string{
		"PROVISIONER_BROKERS":           "a:1,b:2",
		"PROVISIONER_GROUP_ID":          "from-env",
		"PROVISIONER_RETRY_MAX_ELAPSED": "45s",
	}
	cfg := app.DefaultConfig()
	fs := newFlagSet("run", "", &bytes.Buffer{})
	finish := app.BindRunFlags(fs, &cfg)
	err := parse(fs, []string{"--group-id", "from-flag", "--request-timeout", "3s"}, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if err != nil {
		t.Fatal(err)
	}
	finish()
	if strings.Join(cfg.Brokers, ",") != "a:1,b:2" || cfg.GroupID != "from-flag" || cfg.Workflow.RetryMaxElapsed != 45*time.Second || cfg.Client.RequestTimeout != 3*time.Second {
		t.Errorf("config = %+v", cfg)
	}
}

func TestBadEnvironmentValueIsNamed(t *testing.T) {
	cfg := app.DefaultConfig()
	fs := newFlagSet("run", "", &bytes.Buffer{})
	app.BindRunFlags(fs, &cfg)
	err := parse(fs, nil, func(k string) (string, bool) {
		if k == "PROVISIONER_REQUEST_TIMEOUT" {
			return "soon", true
		}
		return "", false
	})
	if err == nil || !strings.Contains(err.Error(), `PROVISIONER_REQUEST_TIMEOUT="soon"`) {
		t.Fatalf("err = %v, want it to name the variable", err)
	}
}

func TestRunStopsAtStartOnBadConfig(t *testing.T) {
	for _, k := range []string{"PROVISIONER_BROKERS", "PROVISIONER_WEBEX_TOKEN", "PROVISIONER_WEBEX_TOKEN_FILE"} {
		t.Setenv(k, "")
	}
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"run"}, &stdout, &stderr)
	if code != 2 {
		t.Fatalf("exit code %d, want 2; stderr: %s", code, stderr.String())
	}
	for _, want := range []string{"--brokers (PROVISIONER_BROKERS) is required", "no Webex access token"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"provision-everything"}, &stdout, &stderr); code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), `unknown command "provision-everything"`) {
		t.Errorf("stderr: %s", stderr.String())
	}
}

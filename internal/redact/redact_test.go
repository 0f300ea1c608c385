package redact

import (
	"strings"
	"testing"
)

func TestEmail(t *testing.T) {
	for in, want := range map[string]string{
		"john.anderson@acme.com": "j***@acme.com",
		"a@b.io":                 "a***@b.io",
		"noatsign":               "n***",
		"":                       "",
	} {
		if got := Email(in); got != want {
			t.Errorf("Email(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestText(t *testing.T) {
	in := `provision of john.anderson@acme.com with +12405551212 and ext 51212 failed (code 10022, trackingId ROUTER_1)`
	got := Text(in)
	for _, leak := range []string{"john.anderson", "2405551212"} {
		if strings.Contains(got, leak) {
			t.Errorf("Text left %q in %q", leak, got)
		}
	}
	for _, keep := range []string{"j***@acme.com", "***12", "10022", "ROUTER_1"} {
		if !strings.Contains(got, keep) {
			t.Errorf("Text(%q) = %q, lost %q", in, got, keep)
		}
	}
}

package redact

import (
	"regexp"
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

func TestTextAddresses(t *testing.T) {
	for in, want := range map[string]string{
		"to john.anderson@acme.com and mary@x.org.": "to j***@acme.com and m***@x.org.",
		"kim.larsen@e0000":                          "k***@e0000", // no top-level domain: still an address
		"user@":                                     "u***@",
		"@acme.com only":                            "@acme.com only",
		"a@b@c.com":                                 "a***@b***@c.com",
		`"orderId":"x-1","key":"c-9/bob@acme.com"`: `"orderId":"x-1","key":"c-9/b***@acme.com"`,
		"no address here":                          "no address here",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}

// addressLike is what the masking must at least catch: addresses with a
// top-level domain, as a regexp writes them.
var addressLike = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)

// FuzzText: no address of the input survives masking, and text without "@"
// or digits comes back unchanged.
func FuzzText(f *testing.F) {
	for _, s := range []string{"john.anderson@acme.com", "a@b.io x@y.de", "+12405551212", "plain", "x@@y.com", "ab@c.d.ef@g.hi"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := Text(in)
		for _, addr := range addressLike.FindAllString(in, -1) {
			if len(addr) > 4 && strings.Contains(out, addr) {
				t.Errorf("Text(%q) = %q: %q is not masked", in, out, addr)
			}
		}
		if !strings.ContainsAny(in, "@0123456789") && out != in {
			t.Errorf("Text(%q) = %q: changed text without an address or number", in, out)
		}
	})
}

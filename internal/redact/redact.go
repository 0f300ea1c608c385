// Package redact masks personal data (email addresses, phone numbers) before it
// reaches a log line, keeping just enough to tell records apart.
package redact

import (
	"regexp"
	"strings"
)

// Email masks an email address: "john.anderson@acme.com" becomes "j***@acme.com".
// A string without "@" is masked entirely but for its first character.
func Email(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 {
		return first(s)
	}
	return s[:1] + "***" + s[at:]
}

// Phone masks a phone number or extension, keeping its last two digits:
// "+12405551212" becomes "***12".
func Phone(s string) string {
	if len(s) <= 2 {
		return "***"
	}
	return "***" + s[len(s)-2:]
}

var phoneRe = regexp.MustCompile(`\+?[0-9][0-9 ().\-]{6,}[0-9]`)

// Text masks every email address and phone-like number in free text, such as an
// error message that may quote the request. Anything shaped local@domain counts
// as an address, with or without a top-level domain: masking too much is cheap.
func Text(s string) string {
	if strings.IndexByte(s, '@') >= 0 {
		s = maskAddresses(s)
	}
	if !hasDigitRun(s, 8) {
		return s // the common case on the hot path: no regexp needed
	}
	return phoneRe.ReplaceAllStringFunc(s, Phone)
}

// maskAddresses masks the local part of every local@domain in s, as Email
// does. It scans instead of using a regexp: it runs on every record's key.
func maskAddresses(s string) string {
	var b strings.Builder
	done := 0 // s[:done] is written to b, or needs no change
	for i := 0; i < len(s); i++ {
		if s[i] != '@' {
			continue
		}
		start := i
		for start > done && isLocalChar(s[start-1]) {
			start--
		}
		if start == i {
			continue // "@" with no local part: nothing personal before it
		}
		if b.Len() == 0 {
			b.Grow(len(s))
		}
		// The domain is kept; it is left unread, since in "a@b@c.com" it is
		// also the local part of the next address.
		b.WriteString(s[done:start])
		b.WriteByte(s[start])
		b.WriteString("***@")
		done = i + 1
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

func isLocalChar(c byte) bool {
	return isDomainChar(c) || c == '_' || c == '%' || c == '+'
}

func isDomainChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-'
}

// hasDigitRun reports whether s holds n digits with only phone punctuation
// between them: the least a phone number needs.
func hasDigitRun(s string, n int) bool {
	digits := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			if digits++; digits >= n {
				return true
			}
		case c == ' ' || c == '(' || c == ')' || c == '.' || c == '-' || c == '+':
		default:
			digits = 0
		}
	}
	return false
}

func first(s string) string {
	if s == "" {
		return ""
	}
	return s[:1] + "***"
}

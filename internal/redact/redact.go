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

var (
	emailRe = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
	phoneRe = regexp.MustCompile(`\+?[0-9][0-9 ().\-]{6,}[0-9]`)
)

// Text masks every email address and phone-like number in free text, such as an
// error message that may quote the request.
func Text(s string) string {
	if strings.IndexByte(s, '@') >= 0 {
		s = emailRe.ReplaceAllStringFunc(s, Email)
	}
	if !hasDigitRun(s, 8) {
		return s // the common case on the hot path: no regexp needed
	}
	return phoneRe.ReplaceAllStringFunc(s, Phone)
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

package schemas

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// maxProblems caps the problems listed in a detail: a broken producer tends
// to break every field at once, and the first few say enough.
const maxProblems = 5

// maxShown caps how much of a value a detail echoes, since values come from
// the record and may be arbitrarily long.
const maxShown = 64

var printer = message.NewPrinter(language.English)

// describeValidation turns a validation error into one line listing its leaf
// problems, each as "<JSON pointer>: <problem>", in a stable order. Values of
// email and phone fields are masked, so the line may be logged.
func describeValidation(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	var problems []string
	collectProblems(ve, &problems)
	// Rank each problem once: a hostile record can hold thousands.
	ranked := make([]rankedProblem, len(problems))
	for i, p := range problems {
		ranked[i] = rankedProblem{rank: problemRank(p), text: p}
	}
	slices.SortFunc(ranked, func(a, b rankedProblem) int {
		if a.rank != b.rank {
			return a.rank - b.rank
		}
		return strings.Compare(a.text, b.text)
	})
	ranked = slices.CompactFunc(ranked, func(a, b rankedProblem) bool { return a.text == b.text })
	if len(ranked) == 0 {
		return "the document does not follow the schema"
	}
	problems = problems[:0]
	for _, r := range ranked[:min(len(ranked), maxProblems)] {
		problems = append(problems, r.text)
	}
	if n := len(ranked) - maxProblems; n > 0 {
		problems = append(problems, fmt.Sprintf("and %d more", n))
	}
	return strings.Join(problems, "; ")
}

type rankedProblem struct {
	rank int
	text string
}

// problemRank orders the problems of a detail by what helps a reader most,
// since only the first maxProblems are listed: the version and the order id
// (without them the record cannot be placed), then missing properties, wrong
// types, unknown properties, and last the formats and bounds of values.
func problemRank(problem string) int {
	at, msg, _ := strings.Cut(problem, ": ")
	switch {
	case at == "/schemaVersion":
		return 0
	case at == "/orderId":
		return 1
	case msg == "is required":
		return 2
	case strings.HasPrefix(msg, "got "):
		return 3
	case msg == msgUnknownProperty:
		return 4
	default:
		return 5
	}
}

const msgUnknownProperty = "unknown property (not allowed)"

func collectProblems(e *jsonschema.ValidationError, out *[]string) {
	if msg, ok := collapseRequired(e); ok {
		*out = append(*out, pointer(e.InstanceLocation)+": "+msg)
		return
	}
	if len(e.Causes) == 0 {
		*out = append(*out, leafProblems(e)...)
		return
	}
	for _, c := range relevantBranches(e) {
		collectProblems(c, out)
	}
}

// relevantBranches returns the causes of e worth reporting. When no branch of
// an anyOf or oneOf matched, a branch that failed only on its type (such as
// the null of a nullable value) was not the one the producer meant, so it is
// dropped as long as another branch says more.
func relevantBranches(e *jsonschema.ValidationError) []*jsonschema.ValidationError {
	switch e.ErrorKind.(type) {
	case *kind.AnyOf, *kind.OneOf:
	default:
		return e.Causes
	}
	var kept []*jsonschema.ValidationError
	for _, c := range e.Causes {
		leaf := c
		for len(leaf.Causes) == 1 {
			leaf = leaf.Causes[0]
		}
		if _, typeOnly := leaf.ErrorKind.(*kind.Type); !typeOnly || len(leaf.Causes) != 0 {
			kept = append(kept, c)
		}
	}
	if len(kept) == 0 {
		return e.Causes
	}
	return kept
}

// collapseRequired turns an anyOf or oneOf whose branches each fail only for
// a missing property (such as "a phone number or an extension") into one
// problem, which reads better than one "missing" per branch.
func collapseRequired(e *jsonschema.ValidationError) (string, bool) {
	var word string
	switch e.ErrorKind.(type) {
	case *kind.AnyOf:
		word = "at least one"
	case *kind.OneOf:
		word = "exactly one"
	default:
		return "", false
	}
	var names []string
	for _, c := range e.Causes {
		for len(c.Causes) == 1 {
			c = c.Causes[0]
		}
		req, ok := c.ErrorKind.(*kind.Required)
		if !ok || len(c.Causes) != 0 || !slices.Equal(c.InstanceLocation, e.InstanceLocation) {
			return "", false
		}
		for _, m := range req.Missing {
			names = append(names, quoteShort(m))
		}
	}
	if len(names) < 2 {
		return "", false
	}
	return fmt.Sprintf("needs %s of %s", word, strings.Join(names, ", ")), true
}

func leafProblems(e *jsonschema.ValidationError) []string {
	at := pointer(e.InstanceLocation)
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		// Name the missing property in the pointer, where a reader looks first.
		var out []string
		for _, m := range k.Missing {
			out = append(out, pointer(append(slices.Clone(e.InstanceLocation), m))+": is required")
		}
		return out
	case *kind.AdditionalProperties:
		var out []string
		for _, p := range k.Properties {
			out = append(out, pointer(append(slices.Clone(e.InstanceLocation), p))+": "+msgUnknownProperty)
		}
		return out
	case *kind.OneOf:
		if len(k.Subschemas) < 2 {
			return []string{at + ": matches none of the alternatives"}
		}
		// Only a value that matches several branches gets here: one that
		// matches none has the branches' problems as causes.
		return []string{fmt.Sprintf("%s: matches more than one alternative (oneOf branches %d and %d), want exactly one", at, k.Subschemas[0], k.Subschemas[1])}
	case *kind.FalseSchema:
		// Only the action rules of the order schema forbid a property.
		return []string{at + ": not allowed for this action"}
	case *kind.Format:
		msg := fmt.Sprintf("%s: %s is not a valid %s", at, show(e.InstanceLocation, k.Got), k.Want)
		if k.Err != nil {
			// The format checkers explain with at most one character of the value.
			msg += ": " + k.Err.Error()
		}
		return []string{msg}
	case *kind.Pattern:
		return []string{fmt.Sprintf("%s: %s does not match %s", at, show(e.InstanceLocation, k.Got), k.Want)}
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = show(nil, w)
		}
		return []string{fmt.Sprintf("%s: %s is not one of %s", at, show(e.InstanceLocation, k.Got), strings.Join(want, ", "))}
	case *kind.Const:
		return []string{fmt.Sprintf("%s: must be %s", at, show(nil, k.Want))}
	case *kind.Type:
		return []string{fmt.Sprintf("%s: got %s, want %s", at, k.Got, strings.Join(k.Want, " or "))}
	default:
		// The library's own messages for the remaining kinds (lengths, counts,
		// bounds, uniqueness) do not echo string values.
		return []string{at + ": " + k.LocalizedString(printer)}
	}
}

// pointer renders an instance location as a JSON pointer (RFC 6901); the
// document root is "/" rather than "", so that it is visible in a message.
func pointer(tokens []string) string {
	if len(tokens) == 0 {
		return "/"
	}
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		sb.WriteString(truncate(strings.ReplaceAll(t, "/", "~1")))
	}
	return sb.String()
}

// show renders a value from the document for a message, masking the values
// of email and phone fields (named by the last token of loc) and truncating
// long strings.
func show(loc []string, v any) string {
	s, ok := v.(string)
	if !ok {
		switch v.(type) {
		case map[string]any:
			return "an object"
		case []any:
			return "an array"
		case nil:
			return "null"
		}
		return truncate(fmt.Sprint(v))
	}
	if len(loc) > 0 {
		switch loc[len(loc)-1] {
		case "email", "primaryEmail":
			s = maskEmail(s)
		case "primaryPhoneNumber", "extension":
			s = maskPhone(s)
		}
	}
	return quoteShort(s)
}

// maskEmail keeps the first character of the local part and the domain, which
// is enough to recognise a mistake without exposing the address:
// "alice@example.com" becomes "a***@example.com".
func maskEmail(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return maskPrefix(s)
	}
	return maskPrefix(s[:at]) + s[at:]
}

func maskPrefix(s string) string {
	if s == "" {
		return "***"
	}
	_, size := utf8.DecodeRuneInString(s)
	return s[:size] + "***"
}

// maskPhone keeps a leading "+" and the last two characters of longer values:
// "+12405551212" becomes "+***12".
func maskPhone(s string) string {
	prefix := ""
	if strings.HasPrefix(s, "+") {
		prefix, s = "+", s[1:]
	}
	if utf8.RuneCountInString(s) < 6 {
		return prefix + "***"
	}
	r := []rune(s)
	return prefix + "***" + string(r[len(r)-2:])
}

// quoteShort quotes s as a Go string literal after truncating it.
func quoteShort(s string) string {
	return fmt.Sprintf("%q", truncate(s))
}

func truncate(s string) string {
	if utf8.RuneCountInString(s) <= maxShown {
		return s
	}
	r := []rune(s)
	return string(r[:maxShown]) + "…"
}

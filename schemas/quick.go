package schemas

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// The quick check answers, for the common case of a valid order, what the
// full validator would: it is compiled from the same schema document, so the
// schema stays the one source of the rules. It exists because the validator
// (santhosh-tekuri/jsonschema) spends about 11 µs and 120 allocations on a
// valid order, most of them for error bookkeeping and exact number
// arithmetic that a valid order does not need; the quick check spends about
// 2 µs and allocates nothing.
//
// It is three-valued so that it can be exact where it answers and modest where
// it cannot: valid and invalid are certain, unsure is not (a format it checks
// only in its common form, a number not written as a plain integer). DecodeOrder
// trusts only valid; everything else goes to the full validator, which is the
// authority and writes the error messages. Inside if, anyOf and contains an
// unsure part keeps the whole unsure, so that an uncertain condition never
// picks a branch. The compiler refuses a keyword it does not implement, and then
// no quick check is used at all; a test keeps the order schema compilable, and
// the fuzz target checks every verdict against the validator.

// verdict is the quick check's answer for one value against one schema.
type verdict int8

const (
	invalid verdict = iota
	valid
	unsure
)

// and combines the verdicts of two keywords that must both hold.
func (v verdict) and(w verdict) verdict {
	switch {
	case v == invalid || w == invalid:
		return invalid
	case v == unsure || w == unsure:
		return unsure
	default:
		return valid
	}
}

// every combines n verdicts that must all hold (allOf, items, the keywords of
// one schema): invalid as soon as one is, else unsure if one is.
func every(n int, judge func(i int) verdict) verdict {
	result := valid
	for i := range n {
		if result = result.and(judge(i)); result == invalid {
			break
		}
	}
	return result
}

// some combines n verdicts of which one must hold (anyOf, contains): valid as
// soon as one is, else unsure if one is, else invalid.
func some(n int, judge func(i int) verdict) verdict {
	result := invalid
	for i := range n {
		switch judge(i) {
		case valid:
			return valid
		case unsure:
			result = unsure
		}
	}
	return result
}

// quickCheck is a compiled schema: it judges one value of a document parsed
// with json.Number for numbers.
type quickCheck func(v any) verdict

// annotations are keywords that do not constrain a value.
var annotations = map[string]bool{
	"$schema": true, "$id": true, "$defs": true, "$comment": true, "title": true,
	"description": true, "examples": true, "default": true, "deprecated": true,
}

// quickCompiler compiles a schema document, resolving $ref against its root.
type quickCompiler struct {
	root map[string]any
	defs map[string]quickCheck
}

// compileQuick compiles the schema document root (as jsonschema.UnmarshalJSON
// parses it), with formats asserted as the validator is configured here.
func compileQuick(root map[string]any) (quickCheck, error) {
	c := &quickCompiler{root: root, defs: map[string]quickCheck{}}
	return c.compile(root, "#")
}

func (c *quickCompiler) compile(schema any, at string) (quickCheck, error) {
	switch s := schema.(type) {
	case bool:
		return func(any) verdict {
			if s {
				return valid
			}
			return invalid
		}, nil
	case map[string]any:
		return c.compileObject(s, at)
	default:
		return nil, fmt.Errorf("%s: a schema must be an object or a boolean", at)
	}
}

func (c *quickCompiler) compileObject(s map[string]any, at string) (quickCheck, error) {
	var checks []quickCheck
	add := func(k quickCheck, err error) error {
		if err == nil {
			checks = append(checks, k)
		}
		return err
	}
	for keyword, arg := range s {
		where := at + "/" + keyword
		var err error
		switch keyword {
		case "type":
			err = add(typeCheck(arg, where))
		case "const":
			err = add(enumCheck([]any{arg}, where))
		case "enum":
			list, _ := arg.([]any)
			err = add(enumCheck(list, where))
		case "minLength", "maxLength":
			err = add(lengthCheck(keyword, arg, where))
		case "pattern":
			err = add(patternCheck(arg, where))
		case "format":
			err = add(formatCheck(arg, where))
		case "required":
			err = add(requiredCheck(arg, where))
		case "properties":
			// Compiled together with additionalProperties below.
		case "additionalProperties":
			err = add(c.objectCheck(s, at))
		case "minItems", "maxItems":
			err = add(itemCountCheck(keyword, arg, where))
		case "items":
			err = add(c.itemsCheck(arg, where))
		case "contains":
			err = add(c.containsCheck(arg, where))
		case "allOf", "anyOf":
			err = add(c.listCheck(keyword, arg, where))
		case "if":
			err = add(c.conditionCheck(s, at))
		case "then", "else":
			// Compiled with if; ignored without it, as the specification says.
		case "$ref":
			err = add(c.refCheck(arg, where))
		default:
			if annotations[keyword] && (keyword != "$id" || at == "#") {
				continue
			}
			err = fmt.Errorf("%s: keyword not supported by the quick check", where)
		}
		if err != nil {
			return nil, err
		}
	}
	if _, ok := s["additionalProperties"]; !ok {
		if _, ok := s["properties"]; ok {
			if err := add(c.objectCheck(s, at)); err != nil {
				return nil, err
			}
		}
	}
	return func(v any) verdict {
		return every(len(checks), func(i int) verdict { return checks[i](v) })
	}, nil
}

// jsonType is the JSON type of a parsed value: "" for a Go type a parse does not
// produce.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		return "number"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	default:
		return ""
	}
}

// plainInteger reports whether n is written as an integer without fraction or
// exponent, without leading zeros or a minus zero: the form in which equal
// values are equal texts, so the quick check compares them as such.
func plainInteger(n json.Number) bool {
	s, negative := strings.CutPrefix(string(n), "-")
	if s == "" || (s[0] == '0' && (len(s) > 1 || negative)) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func typeCheck(arg any, where string) (quickCheck, error) {
	var types []string
	switch a := arg.(type) {
	case string:
		types = []string{a}
	case []any:
		for _, t := range a {
			name, ok := t.(string)
			if !ok {
				return nil, fmt.Errorf("%s: not a type name", where)
			}
			types = append(types, name)
		}
	default:
		return nil, fmt.Errorf("%s: not a type name or a list of them", where)
	}
	for _, t := range types {
		switch t {
		case "null", "boolean", "string", "number", "integer", "object", "array":
		default:
			return nil, fmt.Errorf("%s: unknown type %q", where, t)
		}
	}
	return func(v any) verdict {
		k := jsonType(v)
		if k == "" {
			return unsure
		}
		result := invalid
		for _, t := range types {
			switch {
			case t == k:
				return valid
			case t == "integer" && k == "number":
				// 1.0 and 1e2 are integers too; only the plain form is judged here.
				if plainInteger(v.(json.Number)) {
					return valid
				}
				result = unsure
			}
		}
		return result
	}, nil
}

func enumCheck(list []any, where string) (quickCheck, error) {
	if len(list) == 0 {
		return nil, fmt.Errorf("%s: not a non-empty list", where)
	}
	for _, want := range list {
		switch w := want.(type) {
		case nil, bool, string:
		case json.Number:
			if !plainInteger(w) {
				return nil, fmt.Errorf("%s: only plain integers are supported among numbers", where)
			}
		default:
			return nil, fmt.Errorf("%s: only scalars are supported", where)
		}
	}
	return func(v any) verdict {
		k := jsonType(v)
		if k == "" || (k == "number" && !plainInteger(v.(json.Number))) {
			return unsure
		}
		for _, want := range list {
			if want == v {
				return valid
			}
		}
		return invalid
	}, nil
}

// nonNegative reads a keyword's count.
func nonNegative(arg any, where string) (int, error) {
	n, ok := arg.(json.Number)
	if !ok || !plainInteger(n) {
		return 0, fmt.Errorf("%s: not a plain integer", where)
	}
	i, err := n.Int64()
	if err != nil || i < 0 || i > 1<<31 {
		return 0, fmt.Errorf("%s: not a count", where)
	}
	return int(i), nil
}

func lengthCheck(keyword string, arg any, where string) (quickCheck, error) {
	limit, err := nonNegative(arg, where)
	if err != nil {
		return nil, err
	}
	isMin := keyword == "minLength"
	return func(v any) verdict {
		s, ok := v.(string)
		if !ok {
			return valid
		}
		// Lengths count characters (code points); a string has no more of them
		// than bytes, so count them only when the bytes do not decide.
		n := len(s)
		if (isMin && n >= limit) || (!isMin && n > limit) {
			n = utf8.RuneCountInString(s)
		}
		if (isMin && n < limit) || (!isMin && n > limit) {
			return invalid
		}
		return valid
	}, nil
}

func patternCheck(arg any, where string) (quickCheck, error) {
	expr, ok := arg.(string)
	if !ok {
		return nil, fmt.Errorf("%s: not a string", where)
	}
	// The validator's default engine is Go's regexp too, so both agree.
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return func(v any) verdict {
		s, ok := v.(string)
		if !ok || re.MatchString(s) {
			return valid
		}
		return invalid
	}, nil
}

func formatCheck(arg any, where string) (quickCheck, error) {
	var check func(string) bool
	switch arg {
	case "email":
		check = plainEmail
	case "date-time":
		check = plainDateTime
	default:
		return nil, fmt.Errorf("%s: format %v not supported", where, arg)
	}
	return func(v any) verdict {
		s, ok := v.(string)
		if !ok || check(s) {
			return valid
		}
		return unsure
	}, nil
}

// plainEmail accepts the common form of an address, a subset of what the
// validator's email format accepts: an unquoted local part of at most 64
// bytes, without leading, trailing or doubled dots, and a host name domain.
func plainEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	if len(s) > 254 || at < 1 || at > 64 || strings.IndexByte(s[at+1:], '@') >= 0 {
		return false
	}
	local, domain := s[:at], s[at+1:]
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return false
	}
	for i := 0; i < len(local); i++ {
		if c := local[i]; !isAlnum(c) && !strings.ContainsRune(".!#$%&'*+-/=?^_`{|}~", rune(c)) {
			return false
		}
	}
	return plainHostname(domain)
}

// plainHostname accepts host names of at most 253 bytes made of labels of 1 to
// 63 letters, digits and inner hyphens, without a trailing dot.
func plainHostname(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) < 1 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if !isAlnum(label[i]) && label[i] != '-' {
				return false
			}
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// plainDateTime accepts date-times of the form 2006-01-02T15:04:05[.frac]
// followed by Z or ±hh:mm, with a real calendar date and no leap second: a
// subset of what the validator's date-time format accepts.
func plainDateTime(s string) bool {
	if len(s) < 20 || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return false
	}
	if _, err := time.Parse(time.DateOnly, s[:10]); err != nil {
		return false
	}
	h, ok1 := twoDigits(s[11:13])
	m, ok2 := twoDigits(s[14:16])
	sec, ok3 := twoDigits(s[17:19])
	if !ok1 || !ok2 || !ok3 || h > 23 || m > 59 || sec > 59 {
		return false
	}
	rest := s[19:]
	if rest[0] == '.' {
		digits := 1
		for digits < len(rest) && rest[digits] >= '0' && rest[digits] <= '9' {
			digits++
		}
		if digits == 1 {
			return false
		}
		rest = rest[digits:]
	}
	if rest == "Z" {
		return true
	}
	if len(rest) != 6 || (rest[0] != '+' && rest[0] != '-') || rest[3] != ':' {
		return false
	}
	zh, ok1 := twoDigits(rest[1:3])
	zm, ok2 := twoDigits(rest[4:6])
	return ok1 && ok2 && zh <= 23 && zm <= 59
}

func twoDigits(s string) (int, bool) {
	if s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' {
		return 0, false
	}
	return int(s[0]-'0')*10 + int(s[1]-'0'), true
}

func requiredCheck(arg any, where string) (quickCheck, error) {
	list, ok := arg.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: not a list", where)
	}
	names := make([]string, 0, len(list))
	for _, n := range list {
		name, ok := n.(string)
		if !ok {
			return nil, fmt.Errorf("%s: not a list of names", where)
		}
		names = append(names, name)
	}
	return func(v any) verdict {
		obj, ok := v.(map[string]any)
		if !ok {
			return valid
		}
		for _, name := range names {
			if _, ok := obj[name]; !ok {
				return invalid
			}
		}
		return valid
	}, nil
}

// objectCheck compiles properties and additionalProperties together, since
// which properties are additional depends on both.
func (c *quickCompiler) objectCheck(s map[string]any, at string) (quickCheck, error) {
	props := map[string]quickCheck{}
	if p, ok := s["properties"]; ok {
		m, ok := p.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s/properties: not an object", at)
		}
		for name, sub := range m {
			k, err := c.compile(sub, at+"/properties/"+name)
			if err != nil {
				return nil, err
			}
			props[name] = k
		}
	}
	var additional quickCheck
	if a, ok := s["additionalProperties"]; ok {
		k, err := c.compile(a, at+"/additionalProperties")
		if err != nil {
			return nil, err
		}
		additional = k
	}
	return func(v any) verdict {
		obj, ok := v.(map[string]any)
		if !ok {
			return valid
		}
		result := valid
		for name, pv := range obj {
			k, known := props[name]
			if !known {
				k = additional
			}
			if k != nil {
				if result = result.and(k(pv)); result == invalid {
					return invalid
				}
			}
		}
		return result
	}, nil
}

func itemCountCheck(keyword string, arg any, where string) (quickCheck, error) {
	limit, err := nonNegative(arg, where)
	if err != nil {
		return nil, err
	}
	isMin := keyword == "minItems"
	return func(v any) verdict {
		a, ok := v.([]any)
		if !ok || (isMin && len(a) >= limit) || (!isMin && len(a) <= limit) {
			return valid
		}
		return invalid
	}, nil
}

func (c *quickCompiler) itemsCheck(arg any, where string) (quickCheck, error) {
	item, err := c.compile(arg, where)
	if err != nil {
		return nil, err
	}
	return func(v any) verdict {
		a, _ := v.([]any) // not an array: nothing to check
		return every(len(a), func(i int) verdict { return item(a[i]) })
	}, nil
}

func (c *quickCompiler) containsCheck(arg any, where string) (quickCheck, error) {
	item, err := c.compile(arg, where)
	if err != nil {
		return nil, err
	}
	return func(v any) verdict {
		a, ok := v.([]any)
		if !ok {
			return valid
		}
		return some(len(a), func(i int) verdict { return item(a[i]) })
	}, nil
}

func (c *quickCompiler) listCheck(keyword string, arg any, where string) (quickCheck, error) {
	list, ok := arg.([]any)
	if !ok || len(list) == 0 {
		return nil, fmt.Errorf("%s: not a non-empty list", where)
	}
	subs := make([]quickCheck, len(list))
	for i, sub := range list {
		k, err := c.compile(sub, fmt.Sprintf("%s/%d", where, i))
		if err != nil {
			return nil, err
		}
		subs[i] = k
	}
	// Two closures rather than one calling a chosen combinator: called
	// through a variable, the judge closure would be allocated on every call.
	if keyword == "anyOf" {
		return func(v any) verdict {
			return some(len(subs), func(i int) verdict { return subs[i](v) })
		}, nil
	}
	return func(v any) verdict {
		return every(len(subs), func(i int) verdict { return subs[i](v) })
	}, nil
}

func (c *quickCompiler) conditionCheck(s map[string]any, at string) (quickCheck, error) {
	cond, err := c.compile(s["if"], at+"/if")
	if err != nil {
		return nil, err
	}
	branch := func(name string) (quickCheck, error) {
		if sub, ok := s[name]; ok {
			return c.compile(sub, at+"/"+name)
		}
		return func(any) verdict { return valid }, nil
	}
	then, err := branch("then")
	if err != nil {
		return nil, err
	}
	otherwise, err := branch("else")
	if err != nil {
		return nil, err
	}
	return func(v any) verdict {
		switch cond(v) {
		case valid:
			return then(v)
		case invalid:
			return otherwise(v)
		default:
			return unsure
		}
	}, nil
}

// refCheck resolves a reference to the root's $defs; the schemas here are
// self-contained and not recursive, so that is all the quick check needs.
func (c *quickCompiler) refCheck(arg any, where string) (quickCheck, error) {
	ref, _ := arg.(string)
	name, ok := strings.CutPrefix(ref, "#/$defs/")
	if !ok || strings.ContainsAny(name, "/~%") {
		return nil, fmt.Errorf("%s: only references to #/$defs/<name> are supported", where)
	}
	if k, ok := c.defs[name]; ok {
		if k == nil {
			return nil, fmt.Errorf("%s: recursive reference", where)
		}
		return k, nil
	}
	defs, _ := c.root["$defs"].(map[string]any)
	target, ok := defs[name]
	if !ok {
		return nil, fmt.Errorf("%s: %s not found", where, ref)
	}
	c.defs[name] = nil // marks the definition as being compiled
	k, err := c.compile(target, "#/$defs/"+name)
	if err != nil {
		return nil, err
	}
	c.defs[name] = k
	return k, nil
}

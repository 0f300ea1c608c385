package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

type errCase struct {
	name    string
	in      string
	lim     Limits
	kind    Kind
	offset  int
	pointer string
	key     string
	msg     string // checked when not empty
}

func nest(open, close string, n int, inner string) string {
	return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
}

var errCases = []errCase{
	// Duplicate keys.
	{name: "dup top level", in: `{"email":"a","email":"b"}`, kind: KindDuplicateKey, offset: 13, pointer: "/email", key: "email", msg: `duplicate key "email"`},
	{name: "dup nested", in: `{"a":{"b":1,"b":2}}`, kind: KindDuplicateKey, offset: 12, pointer: "/a/b", key: "b"},
	{name: "dup after unescaping", in: `{"a":1,"\u0061":2}`, kind: KindDuplicateKey, offset: 7, pointer: "/a", key: "a"},
	{name: "dup escaped first", in: `{"\u0061":1,"a":2}`, kind: KindDuplicateKey, offset: 12, pointer: "/a", key: "a"},
	{name: "dup in array in object", in: `{"x":[{},{"k":1,"k":2}]}`, kind: KindDuplicateKey, offset: 16, pointer: "/x/1/k", key: "k"},
	{name: "dup empty key", in: `{"":1,"":2}`, kind: KindDuplicateKey, offset: 6, pointer: "/", key: ""},
	{name: "dup in big object", in: `{` + manyKeys("", 40)[1:len(manyKeys("", 40))-1] + `,"k7":1}`, kind: KindDuplicateKey, offset: len(manyKeys("", 40)) - 1 + 1, pointer: "/k7", key: "k7"},
	{name: "dup at 17th key", in: `{` + manyKeys("", 16)[1:len(manyKeys("", 16))-1] + `,"k0":1}`, kind: KindDuplicateKey, offset: len(manyKeys("", 16)), pointer: "/k0", key: "k0"},
	{name: "dup before error in its value", in: `{"a":1,"a":[}`, kind: KindDuplicateKey, offset: 7, pointer: "/a", key: "a"},
	{name: "pointer escapes tilde and slash", in: `{"a/b":{"c~d":[1,2,{"e":1,"e":2}]}}`, kind: KindDuplicateKey, offset: 26, pointer: "/a~1b/c~0d/2/e", key: "e"},

	// Lone surrogates.
	{name: "lone high", in: `"\ud800"`, kind: KindSurrogate, offset: 1, msg: `lone UTF-16 surrogate escape \ud800`},
	{name: "lone high then char", in: `"\ud800x"`, kind: KindSurrogate, offset: 1},
	{name: "lone low", in: `"\udc00"`, kind: KindSurrogate, offset: 1, msg: `lone UTF-16 surrogate escape \udc00`},
	{name: "high then non-low escape", in: `"\ud800\u0041"`, kind: KindSurrogate, offset: 1},
	{name: "high then high", in: `"\uD800\uD800\uDC00"`, kind: KindSurrogate, offset: 1, msg: `lone UTF-16 surrogate escape \uD800`},
	{name: "low then high", in: `"\udc00\ud800"`, kind: KindSurrogate, offset: 1},
	{name: "high at end of input", in: `"\ud800`, kind: KindSurrogate, offset: 1},
	{name: "surrogate in value", in: `{"k":"ab\ud800"}`, kind: KindSurrogate, offset: 8, pointer: "/k"},
	{name: "surrogate in key", in: `{"a\ud800b":1}`, kind: KindSurrogate, offset: 3, pointer: "/a\ufffdb"},
	{name: "surrogate in array", in: `[1,"\udfff"]`, kind: KindSurrogate, offset: 4, pointer: "/1"},

	// Depth.
	{name: "arrays one too deep", in: nest("[", "]", 33, ""), kind: KindDepth, offset: 32, pointer: strings.Repeat("/0", 32), msg: "nesting deeper than 32 levels"},
	{name: "objects one too deep", in: nest(`{"a":`, "}", 32, "{}"), kind: KindDepth, offset: 160, pointer: strings.Repeat("/a", 32)},
	{name: "deep in member", in: `{"email":` + nest("[", "]", 32, "") + `}`, kind: KindDepth, offset: 9 + 31, pointer: "/email" + strings.Repeat("/0", 31)},
	{name: "custom depth", in: `[[1],[[2]]]`, lim: Limits{MaxDepth: 2}, kind: KindDepth, offset: 6, pointer: "/1/0", msg: "nesting deeper than 2 levels"},
	{name: "depth 1", in: `{"a":[]}`, lim: Limits{MaxDepth: 1}, kind: KindDepth, offset: 5, pointer: "/a"},

	// Numbers.
	{name: "exponent of 4 digits", in: `1e1000`, kind: KindNumber, offset: 0, msg: "number exponent longer than 3 digits"},
	{name: "exponent with leading zeros", in: `[1E+0001]`, kind: KindNumber, offset: 1, pointer: "/0"},
	{name: "33-digit integer", in: `{"n":` + strings.Repeat("1", 33) + `}`, kind: KindNumber, offset: 5, pointer: "/n", msg: "number literal longer than 32 bytes"},
	{name: "33-byte negative", in: "-" + strings.Repeat("1", 32), kind: KindNumber, offset: 0},
	{name: "long fraction", in: "0." + strings.Repeat("1", 31), kind: KindNumber, offset: 0},
	{name: "huge number", in: "9" + strings.Repeat("0", 200000), kind: KindNumber, offset: 0},
	{name: "too long before syntax error", in: strings.Repeat("1", 40) + ".x", kind: KindNumber, offset: 0},
	{name: "values limit", in: `{"a":[1,2],"b":3}`, lim: Limits{MaxValues: 4}, kind: KindValues, offset: 15, pointer: "/b", msg: "more than 4 values"},
	{name: "values limit in an array", in: `[[],[],[]]`, lim: Limits{MaxValues: 3}, kind: KindValues, offset: 7, pointer: "/2", msg: "more than 3 values"},
	{name: "custom number length", in: `[12345]`, lim: Limits{MaxNumberLen: 4}, kind: KindNumber, offset: 1, pointer: "/0", msg: "number literal longer than 4 bytes"},
	{name: "leading zero", in: `01`, kind: KindSyntax, offset: 1},
	{name: "negative leading zero", in: `[-01]`, kind: KindSyntax, offset: 3, pointer: "/0"},
	{name: "plus sign", in: `+1`, kind: KindSyntax, offset: 0},
	{name: "dot at end", in: `1.`, kind: KindSyntax, offset: 2, msg: "unexpected end of JSON input"},
	{name: "dot then bracket", in: `[1.]`, kind: KindSyntax, offset: 3, pointer: "/0"},
	{name: "leading dot", in: `.5`, kind: KindSyntax, offset: 0},
	{name: "minus alone", in: `-`, kind: KindSyntax, offset: 1},
	{name: "minus minus", in: `--1`, kind: KindSyntax, offset: 1},
	{name: "exponent without digits", in: `[1e]`, kind: KindSyntax, offset: 3, pointer: "/0"},
	{name: "exponent sign without digits", in: `1e+`, kind: KindSyntax, offset: 3},
	{name: "hex", in: `0x10`, kind: KindTrailing, offset: 1},

	// Trailing data.
	{name: "trailing word", in: `{"a":1} x`, kind: KindTrailing, offset: 8, msg: "unexpected data after the top-level JSON value"},
	{name: "two numbers", in: `1 2`, kind: KindTrailing, offset: 2},
	{name: "extra bracket", in: `[1]]`, kind: KindTrailing, offset: 3},
	{name: "two objects", in: "{}\n{}", kind: KindTrailing, offset: 3},

	// Empty and truncated input.
	{name: "empty", in: ``, kind: KindSyntax, offset: 0, msg: "no JSON value"},
	{name: "white space only", in: " \t\r\n", kind: KindSyntax, offset: 4, msg: "no JSON value"},
	{name: "truncated after colon", in: `{"a":`, kind: KindSyntax, offset: 5, pointer: "/a", msg: "unexpected end of JSON input"},
	{name: "truncated after key", in: `{"a"`, kind: KindSyntax, offset: 4, pointer: "/a"},
	{name: "truncated in key", in: `{"ab`, kind: KindSyntax, offset: 4, pointer: "/ab"},
	{name: "truncated object", in: `{`, kind: KindSyntax, offset: 1},
	{name: "truncated after member", in: `{"a":1`, kind: KindSyntax, offset: 6},
	{name: "truncated array", in: `[1,2`, kind: KindSyntax, offset: 4},
	{name: "truncated after comma", in: `[1,`, kind: KindSyntax, offset: 3, pointer: "/1"},
	{name: "truncated string", in: `"abc`, kind: KindSyntax, offset: 4},
	{name: "truncated escaped string", in: `"a\n`, kind: KindSyntax, offset: 4},
	{name: "truncated escape", in: `"a\`, kind: KindSyntax, offset: 3},
	{name: "truncated unicode escape", in: `"\u12`, kind: KindSyntax, offset: 5},
	{name: "truncated literal", in: `[tru`, kind: KindSyntax, offset: 4, pointer: "/0"},
	{name: "truncated nested", in: `{"a":[{"b":[1,{"c":`, kind: KindSyntax, offset: 19, pointer: "/a/0/b/1/c"},

	// Invalid UTF-8 and control characters.
	{name: "invalid byte", in: "\"a\xffb\"", kind: KindInvalidUTF8, offset: 2, msg: "invalid UTF-8 byte 0xff in string literal"},
	{name: "invalid byte after escape", in: "[\"\\n\xc3\"]", kind: KindInvalidUTF8, offset: 4, pointer: "/0"},
	{name: "overlong encoding", in: "\"\xc0\x80\"", kind: KindInvalidUTF8, offset: 1},
	{name: "UTF-8 encoded surrogate", in: "\"\xed\xa0\x80\"", kind: KindInvalidUTF8, offset: 1},
	{name: "truncated UTF-8", in: "\"\xe2\x82\"", kind: KindInvalidUTF8, offset: 1},
	{name: "invalid byte in key", in: "{\"k\xfe\":1}", kind: KindInvalidUTF8, offset: 3, pointer: "/k\ufffd"},
	{name: "invalid byte outside string", in: "[\xff]", kind: KindSyntax, offset: 1, pointer: "/0"},
	{name: "control char", in: "\"a\x01\"", kind: KindSyntax, offset: 2, msg: `invalid character '\x01' in string literal`},
	{name: "raw newline", in: "{\"k\":\"a\nb\"}", kind: KindSyntax, offset: 7, pointer: "/k"},
	{name: "raw tab after escape", in: "\"\\t\t\"", kind: KindSyntax, offset: 3},

	// Other syntax errors.
	{name: "bad escape", in: `"\x"`, kind: KindSyntax, offset: 2},
	{name: "bad unicode escape", in: `"\u00zz"`, kind: KindSyntax, offset: 5},
	{name: "single quotes", in: `{'a':1}`, kind: KindSyntax, offset: 1},
	{name: "missing colon", in: `{"a" 1}`, kind: KindSyntax, offset: 5, pointer: "/a"},
	{name: "number key", in: `{1:2}`, kind: KindSyntax, offset: 1},
	{name: "missing comma", in: `[1 2]`, kind: KindSyntax, offset: 3},
	{name: "missing comma in object", in: `{"a":1 "b":2}`, kind: KindSyntax, offset: 7},
	{name: "trailing comma", in: `[1,]`, kind: KindSyntax, offset: 3, pointer: "/1"},
	{name: "trailing comma in object", in: `{"a":1,}`, kind: KindSyntax, offset: 7},
	{name: "bad literal", in: `nulx`, kind: KindSyntax, offset: 3},
	{name: "capital literal", in: `True`, kind: KindSyntax, offset: 0},
	{name: "colon in array", in: `["a":1]`, kind: KindSyntax, offset: 4},
	{name: "NaN", in: `NaN`, kind: KindSyntax, offset: 0},
	{name: "BOM", in: "\xef\xbb\xbf{}", kind: KindSyntax, offset: 0},
	{name: "vertical tab", in: "\v1", kind: KindSyntax, offset: 0},
	{name: "dup before syntax error", in: `{"a":1,"a" 2}`, kind: KindDuplicateKey, offset: 7, pointer: "/a", key: "a"},
	{name: "first problem wins", in: `["\ud800",01]`, kind: KindSurrogate, offset: 2, pointer: "/0"},
}

func TestErrors(t *testing.T) {
	for _, c := range errCases {
		t.Run(c.name, func(t *testing.T) {
			v, err := Parse([]byte(c.in), c.lim)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%.80q) = %v, %v; want an *Error", c.in, v, err)
			}
			if e.Kind != c.kind || e.Offset != c.offset || e.Pointer != c.pointer || e.Key != c.key || c.msg != "" && e.Msg != c.msg {
				t.Errorf("Parse(%.80q): got %v %d %q key %q msg %q; want %v %d %q key %q msg %q",
					c.in, e.Kind, e.Offset, e.Pointer, e.Key, e.Msg, c.kind, c.offset, c.pointer, c.key, c.msg)
			}
			if (v != nil) != (c.kind == KindTrailing) {
				t.Errorf("Parse(%.80q) document = %v; want one only with KindTrailing", c.in, v)
			}
			var ce *Error
			if cerr := Check([]byte(c.in), c.lim); !errors.As(cerr, &ce) || *ce != *e {
				t.Errorf("Check(%.80q) = %v; want %+v", c.in, cerr, e)
			}
		})
	}
}

var okCases = []struct {
	name string
	in   string
	lim  Limits
	want any
}{
	{name: "object", in: `{"a":1,"b":[true,false,null],"c":{}}`, want: map[string]any{"a": json.Number("1"), "b": []any{true, false, nil}, "c": map[string]any{}}},
	{name: "white space", in: " \t\r\n[ 1 ,\n\"x\" ] \n", want: []any{json.Number("1"), "x"}},
	{name: "empty array", in: `[]`, want: []any{}},
	{name: "empty string", in: `""`, want: ""},
	{name: "escapes", in: `"\"\\\/\b\f\n\r\t\u00e9\u20AC"`, want: "\"\\/\b\f\n\r\t\u00e9\u20ac"},
	{name: "surrogate pair", in: `"\ud83d\ude00"`, want: "\U0001F600"},
	{name: "surrogate pair upper case", in: `["a\uD83D\uDE00b"]`, want: []any{"a\U0001F600b"}},
	{name: "first surrogate pair", in: `"\ud800\udc00"`, want: "\U00010000"},
	{name: "last surrogate pair", in: `"\uDBFF\uDFFF"`, want: "\U0010FFFF"},
	{name: "pair in key", in: `{"\ud83d\ude00":1}`, want: map[string]any{"\U0001F600": json.Number("1")}},
	{name: "NUL escape", in: `"\u0000"`, want: "\x00"},
	{name: "raw UTF-8", in: "\"\u00e9\u20ac\U0001F600\"", want: "\u00e9\u20ac\U0001F600"},
	{name: "DEL byte", in: "\"\x7f\"", want: "\x7f"},
	{name: "exponent of 3 digits", in: `1e999`, want: json.Number("1e999")},
	{name: "negative exponent", in: `[1E-999,1e+999]`, want: []any{json.Number("1E-999"), json.Number("1e+999")}},
	{name: "minus zero", in: `-0`, want: json.Number("-0")},
	{name: "small fraction", in: `0.5e-10`, want: json.Number("0.5e-10")},
	{name: "32-digit integer", in: strings.Repeat("9", 32), want: json.Number(strings.Repeat("9", 32))},
	{name: "longer numbers allowed", in: strings.Repeat("9", 40), lim: Limits{MaxNumberLen: 40}, want: json.Number(strings.Repeat("9", 40))},
	{name: "arrays at max depth", in: nest("[", "]", 32, ""), want: nestedArrays(32)},
	{name: "objects at max depth", in: nest(`{"a":`, "}", 31, "{}"), want: nestedObjects(31)},
	{name: "member at max depth", in: `{"email":` + nest("[", "]", 31, "") + `}`, want: map[string]any{"email": nestedArrays(31)}},
	{name: "custom depth", in: nest("[", "]", 40, "1"), lim: Limits{MaxDepth: 40}, want: nestedArraysOf(40, json.Number("1"))},
	{name: "values at the limit", in: `{"a":[1,2],"b":3}`, lim: Limits{MaxValues: 5}, want: map[string]any{"a": []any{json.Number("1"), json.Number("2")}, "b": json.Number("3")}},
	{name: "duplicates allowed", in: `{"a":1,"\u0061":2,"b":{"c":1,"c":[3]}}`, lim: Limits{AllowDuplicateKeys: true}, want: map[string]any{"a": json.Number("2"), "b": map[string]any{"c": []any{json.Number("3")}}}},
	{name: "similar keys", in: `{"a":1,"A":2,"a ":3,"\u0062":4}`, want: map[string]any{"a": json.Number("1"), "A": json.Number("2"), "a ": json.Number("3"), "b": json.Number("4")}},
	{name: "many keys", in: manyKeys("", 100), want: func() any {
		m := map[string]any{}
		json.Unmarshal([]byte(manyKeys("", 100)), &m)
		for k := range m {
			m[k] = json.Number("0")
		}
		return m
	}()},
}

func nestedArraysOf(n int, inner any) any {
	v := inner
	for range n {
		v = []any{v}
	}
	return v
}

func nestedArrays(n int) any {
	v := any([]any{})
	for range n - 1 {
		v = []any{v}
	}
	return v
}

func nestedObjects(n int) any {
	v := any(map[string]any{})
	for range n {
		v = map[string]any{"a": v}
	}
	return v
}

func TestAccepts(t *testing.T) {
	for _, c := range okCases {
		t.Run(c.name, func(t *testing.T) {
			v, err := Parse([]byte(c.in), c.lim)
			if err != nil {
				t.Fatalf("Parse(%.80q): %v", c.in, err)
			}
			if !reflect.DeepEqual(v, c.want) {
				t.Errorf("Parse(%.80q) = %#v; want %#v", c.in, v, c.want)
			}
			if err := Check([]byte(c.in), c.lim); err != nil {
				t.Errorf("Check(%.80q): %v", c.in, err)
			}
			if !c.lim.AllowDuplicateKeys {
				if ej := decodeStd(t, c.in); !reflect.DeepEqual(v, ej) {
					t.Errorf("Parse(%.80q) = %#v; encoding/json gives %#v", c.in, v, ej)
				}
			}
		})
	}
}

func decodeStd(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return v
}

func TestTrailingReturnsDocument(t *testing.T) {
	v, err := Parse([]byte(`{"orderId":"o-1","n":[1]} {"orderId":"o-2"}`), Limits{})
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindTrailing || e.Offset != 26 {
		t.Fatalf("err = %v; want KindTrailing at 26", err)
	}
	want := map[string]any{"orderId": "o-1", "n": []any{json.Number("1")}}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("document = %#v; want %#v", v, want)
	}
}

func TestStringsDoNotAliasInput(t *testing.T) {
	data := []byte(`{"key":"value","esc\n":"a\tb","n":12345,"big":"` + strings.Repeat("x", 20000) + `"}`)
	v, err := Parse(data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Parse(bytes.Clone(data), Limits{})
	for i := range data {
		data[i] = '#'
	}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("document changed with its input: %.200v", v)
	}
}

func TestErrorString(t *testing.T) {
	_, err := Parse([]byte(`{"provisioningParameters":`+nest("[", "]", 40, "")+`}`), Limits{})
	want := "at /provisioningParameters" + strings.Repeat("/0", 31) + " (byte 57): nesting deeper than 32 levels"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v; want %s", err, want)
	}
	_, err = Parse([]byte(`[1] x`), Limits{})
	if want := "at root (byte 4): unexpected data after the top-level JSON value"; err == nil || err.Error() != want {
		t.Errorf("err = %v; want %s", err, want)
	}
	_, err = Parse([]byte(`{"provisioningParameters":{"firstName":"a","firstName":"b"}}`), Limits{})
	if want := `at /provisioningParameters/firstName (byte 43): duplicate key "firstName"`; err == nil || err.Error() != want {
		t.Errorf("err = %v; want %s", err, want)
	}
}

func TestKindString(t *testing.T) {
	seen := map[string]bool{}
	for k := KindSyntax; k <= KindTrailing; k++ {
		s := k.String()
		if s == "" || strings.HasPrefix(s, "Kind(") || seen[s] {
			t.Errorf("Kind(%d).String() = %q", int(k), s)
		}
		seen[s] = true
	}
	if s := Kind(0).String(); s != "Kind(0)" {
		t.Errorf("Kind(0).String() = %q", s)
	}
}

func TestTypicalOrder(t *testing.T) {
	v, err := Parse(typicalOrder, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if want := decodeStd(t, string(typicalOrder)); !reflect.DeepEqual(v, want) {
		t.Errorf("Parse = %#v; want %#v", v, want)
	}
	if err := Check(typicalOrder, Limits{}); err != nil {
		t.Error(err)
	}
}

func TestHostileShapesSizes(t *testing.T) {
	for _, size := range []int{1 << 10, 16 << 10, 256 << 10} {
		names := map[string]bool{}
		for _, s := range HostileShapes(size) {
			if names[s.Name] {
				t.Errorf("duplicate shape name %s", s.Name)
			}
			names[s.Name] = true
			if d := len(s.Data) - size; d*20 > size || -d*20 > size {
				t.Errorf("%s at %d: %d bytes", s.Name, size, len(s.Data))
			}
			// Every shape is an order: encoding/json (which has few limits)
			// sees the order fields, unless nesting exceeds its own limit.
			var order map[string]any
			dec := json.NewDecoder(bytes.NewReader(s.Data))
			dec.UseNumber()
			if err := dec.Decode(&order); err == nil {
				if order["orderId"] != "ord-2026-000123" {
					t.Errorf("%s at %d: orderId = %v", s.Name, size, order["orderId"])
				}
			} else if !strings.Contains(err.Error(), "exceeded max depth") {
				t.Errorf("%s at %d: not JSON: %.200v", s.Name, size, err)
			}
		}
	}
}

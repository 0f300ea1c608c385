package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// stdResult is what encoding/json (Decoder with UseNumber) makes of data.
type stdResult struct {
	v        any
	err      error // from Decode: a syntax error, or an early end
	trailing bool  // Decode succeeded but more than white space follows
}

func decodeStdlib(data []byte) stdResult {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var r stdResult
	if r.err = dec.Decode(&r.v); r.err != nil {
		return r
	}
	_, err := dec.Token()
	r.trailing = err != io.EOF
	return r
}

// problem is one thing strictjson refuses that encoding/json accepts. at is
// where strictjson can first know of it, which orders problems; offset is
// where it reports it.
type problem struct {
	kind    Kind
	at      int
	offset  int
	pointer string // checked for KindDuplicateKey only
	key     string
}

// stdProblems finds, independently of the parser, the problems of data but
// duplicate keys, for data that encoding/json accepts as one value; the
// first is the one to report.
func stdProblems(data []byte, lim Limits) []problem {
	maxDepth, maxNum := lim.MaxDepth, lim.MaxNumberLen
	if maxDepth <= 0 {
		maxDepth = 32
	}
	if maxNum <= 0 {
		maxNum = 32
	}
	var ps []problem
	add := func(p problem) { ps = append(ps, p) }
	for i := 0; i < len(data); {
		if r, size := utf8.DecodeRune(data[i:]); r == utf8.RuneError && size == 1 {
			add(problem{kind: KindInvalidUTF8, at: i, offset: i})
			break
		} else {
			i += size
		}
	}
	// Data is valid JSON but for surrogates and UTF-8, so a byte walk that
	// skips strings sees the structure.
	depth := 0
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case c == '"':
			for i++; data[i] != '"'; i++ {
				if data[i] != '\\' {
					continue
				}
				if data[i+1] != 'u' {
					i++
					continue
				}
				r, _ := strconv.ParseUint(string(data[i+2:i+6]), 16, 16)
				switch {
				case r >= 0xd800 && r < 0xdc00:
					if data[i+6] == '\\' && data[i+7] == 'u' {
						if r2, _ := strconv.ParseUint(string(data[i+8:i+12]), 16, 16); r2 >= 0xdc00 && r2 < 0xe000 {
							i += 11
							continue
						}
					}
					add(problem{kind: KindSurrogate, at: i, offset: i})
				case r >= 0xdc00 && r < 0xe000:
					add(problem{kind: KindSurrogate, at: i, offset: i})
				}
				i += 5
			}
		case c == '[' || c == '{':
			if depth++; depth > maxDepth {
				add(problem{kind: KindDepth, at: i, offset: i})
			}
		case c == ']' || c == '}':
			depth--
		case c == '-' || c >= '0' && c <= '9':
			start := i
			for i < len(data) && strings.IndexByte("+-.eE0123456789", data[i]) >= 0 {
				i++
			}
			lit := string(data[start:i])
			i--
			if len(lit) > maxNum {
				add(problem{kind: KindNumber, at: start + maxNum, offset: start})
			}
			if e := strings.IndexAny(lit, "eE"); e >= 0 {
				digits := strings.TrimLeft(lit[e+1:], "+-")
				if len(digits) > 3 {
					add(problem{kind: KindNumber, at: start + len(lit) - len(digits) + 3, offset: start})
				}
			}
		}
	}
	return ps
}

var tokenEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// stdDuplicates walks encoding/json's tokens for keys named twice in an object.
func stdDuplicates(data []byte) []problem {
	type level struct {
		keys  map[string]bool // nil for an array
		token string          // of the current member or element
		index int
	}
	var ps []problem
	var stack []*level
	pointer := func() string {
		var b strings.Builder
		for _, l := range stack {
			b.WriteByte('/')
			b.WriteString(l.token)
		}
		return b.String()
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	expectKey := false
	for {
		before := int(dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			return ps
		}
		if expectKey {
			if d, ok := tok.(json.Delim); !ok || d != '}' {
				key := tok.(string)
				l := stack[len(stack)-1]
				start := before
				for strings.IndexByte(" \t\r\n,", data[start]) >= 0 {
					start++
				}
				l.token = tokenEscaper.Replace(key)
				if l.keys[key] {
					ps = append(ps, problem{kind: KindDuplicateKey, at: int(dec.InputOffset()) - 1, offset: start, pointer: pointer(), key: key})
				}
				l.keys[key] = true
				expectKey = false
				continue
			}
		}
		// A value, or the end of a container.
		if len(stack) > 0 {
			if l := stack[len(stack)-1]; l.keys == nil {
				if d, ok := tok.(json.Delim); !ok || d != ']' {
					l.token = strconv.Itoa(l.index)
					l.index++
				}
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &level{keys: map[string]bool{}})
		case json.Delim('['):
			stack = append(stack, &level{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 {
			expectKey = stack[len(stack)-1].keys != nil
		}
	}
}

// maxFuzzLen keeps fuzz inputs small: the fuzzer minimizes each new
// interesting input with a number of runs quadratic in its length, and does
// not fuzz meanwhile. TestDifferential runs the seeds of any length.
const maxFuzzLen = 256

func seeds() [][]byte {
	var in [][]byte
	for _, c := range errCases {
		in = append(in, []byte(c.in))
	}
	for _, c := range okCases {
		in = append(in, []byte(c.in))
	}
	return append(in, typicalOrder)
}

func addSeeds(f *testing.F) {
	for _, s := range seeds() {
		if len(s) <= maxFuzzLen {
			f.Add(s)
		}
	}
}

func TestDifferential(t *testing.T) {
	for _, s := range seeds() {
		differential(t, s)
	}
	for _, s := range HostileShapes(MinHostileSize) {
		differential(t, s.Data)
	}
}

// FuzzParse checks Parse and Check against encoding/json: see differential.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) <= maxFuzzLen {
			differential(t, data)
		}
	})
}

// differential fails t unless Parse and Check agree with each other and
// with encoding/json on data: where encoding/json finds a syntax error or
// trailing data, they refuse data; where they find a syntax error,
// encoding/json does too; where encoding/json accepts data, they accept it
// with the same document, or refuse it for the first problem that an
// independent scan finds (duplicate key, lone surrogate, depth, number,
// invalid UTF-8).
func differential(t *testing.T, data []byte) {
	t.Helper()
	std := decodeStdlib(data)
	var dups []problem
	dupsDone := false
	for _, lim := range []Limits{{}, {MaxDepth: 3, MaxNumberLen: 6}, {AllowDuplicateKeys: true}} {
		v, err := Parse(data, lim)
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("Parse(%.300q, %+v): error %T %v", data, lim, err, err)
		}
		cerr := Check(data, lim)
		var ce *Error
		if (cerr == nil) != (err == nil) || err != nil && (!errors.As(cerr, &ce) || *ce != *e) {
			t.Fatalf("Parse(%.300q, %+v): %v; Check: %v", data, lim, err, cerr)
		}
		if e != nil && (e.Offset < 0 || e.Offset > len(data) || e.Msg == "") {
			t.Fatalf("Parse(%.300q, %+v): bad error %+v", data, lim, e)
		}
		if e != nil && e.Kind == KindSyntax && std.err == nil && !std.trailing {
			t.Fatalf("Parse(%.300q, %+v): %v; encoding/json accepts it", data, lim, err)
		}
		if std.err != nil {
			if err == nil {
				t.Fatalf("Parse(%.300q, %+v) accepts; encoding/json: %v", data, lim, std.err)
			}
			continue
		}
		if std.trailing {
			if err == nil {
				t.Fatalf("Parse(%.300q, %+v) accepts; encoding/json finds trailing data", data, lim)
			}
			if e.Kind == KindTrailing && !reflect.DeepEqual(v, std.v) {
				t.Fatalf("Parse(%.300q, %+v) = %#v before trailing data; encoding/json: %#v", data, lim, v, std.v)
			}
			continue
		}
		// encoding/json accepts data: strictjson must refuse it exactly
		// for the first problem it has.
		ps := stdProblems(data, lim)
		if !lim.AllowDuplicateKeys {
			if !dupsDone {
				dups, dupsDone = stdDuplicates(data), true
			}
			ps = append(ps, dups...)
		}
		if len(ps) == 0 {
			if err != nil {
				t.Fatalf("Parse(%.300q, %+v): %v; encoding/json accepts it", data, lim, err)
			}
			if !reflect.DeepEqual(v, std.v) {
				t.Fatalf("Parse(%.300q, %+v) = %#v; encoding/json: %#v", data, lim, v, std.v)
			}
			continue
		}
		first := ps[0]
		for _, p := range ps[1:] {
			if p.at < first.at {
				first = p
			}
		}
		if err == nil {
			t.Fatalf("Parse(%.300q, %+v) accepts; want %v at %d", data, lim, first.kind, first.offset)
		}
		if e.Kind != first.kind || e.Offset != first.offset ||
			first.kind == KindDuplicateKey && (e.Pointer != first.pointer || e.Key != first.key) {
			t.Fatalf("Parse(%.300q, %+v): %+v; want %+v", data, lim, e, first)
		}
	}
}

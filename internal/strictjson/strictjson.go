// Package strictjson parses untrusted JSON in time linear in its size: nesting
// depth, number size and duplicate keys are bounded or refused before the work can grow.
package strictjson

import (
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// Limits bounds what a document may contain. The zero value is the strict default.
type Limits struct {
	// MaxDepth is the deepest nesting of arrays and objects accepted; the
	// top-level value is depth 1 when it is an array or object. Zero or
	// negative means 32. The parser does not recurse: a larger limit costs
	// 40 bytes of scratch per level actually reached, not stack.
	MaxDepth int
	// MaxNumberLen is the longest number literal accepted, in bytes. Zero or
	// negative means 32. An exponent written with more than 3 digits (1e1000,
	// also 1e0001) is refused whatever this limit: math/big based consumers
	// such as JSON Schema validators would otherwise compute 10^huge.
	MaxNumberLen int
	// MaxValues is the most values a document may hold, counting every
	// string, number, literal, array and object at any depth. Zero or
	// negative means no limit. Where the reader knows how small a valid
	// document is, it bounds the document built, not only the time.
	MaxValues int
	// AllowDuplicateKeys accepts an object that names a key twice, the last
	// one winning as in encoding/json. By default such an object is refused:
	// two readers of the same record could otherwise see different values.
	AllowDuplicateKeys bool
}

const (
	defaultMaxDepth     = 32
	defaultMaxNumberLen = 32
	maxExponentDigits   = 3

	// smallObject is how many members an object may have before duplicate
	// detection switches from a linear scan to a map. Scanning this many
	// keys is cheaper than hashing (a typical order has 9 top-level keys) and
	// keeps the work per key bounded.
	smallObject = 16
	// maxPooled caps the scratch capacity a pooled parser keeps between
	// calls, in elements or bytes.
	maxPooled = 4 << 10
	// arenaChunk caps one allocation of string bytes, so that a caller that
	// keeps one short string of a big document does not keep all of it.
	arenaChunk = 8 << 10

	msgEOF = "unexpected end of JSON input"
)

// Kind classifies an Error.
type Kind int

// The kinds of Error.
const (
	KindSyntax       Kind = iota + 1 // not JSON per RFC 8259, truncated, or empty
	KindDepth                        // arrays and objects nested deeper than Limits.MaxDepth
	KindDuplicateKey                 // an object names a key twice
	KindSurrogate                    // a \u escape yields a lone UTF-16 surrogate
	KindInvalidUTF8                  // raw bytes in a string are not UTF-8
	KindNumber                       // a number literal too long or with a too long exponent
	KindTrailing                     // non-space data after the top-level value
	KindValues                       // more values than Limits.MaxValues
)

var kindNames = [...]string{
	KindSyntax:       "syntax",
	KindDepth:        "depth",
	KindDuplicateKey: "duplicate key",
	KindSurrogate:    "lone surrogate",
	KindInvalidUTF8:  "invalid UTF-8",
	KindNumber:       "number",
	KindTrailing:     "trailing data",
	KindValues:       "too many values",
}

func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Error describes the first problem found in the input.
type Error struct {
	Kind Kind
	// Offset is the byte offset in the input where the problem starts.
	Offset int
	// Pointer is the RFC 6901 JSON pointer of the value concerned, "" for the
	// root. For a problem inside a key, and for a duplicate key, it points at
	// the member (a key that cannot be decoded is shown with U+FFFD in place
	// of what is broken). For KindDepth it points at the first container
	// that is one level too deep.
	Pointer string
	// Key is the duplicated key, for KindDuplicateKey.
	Key string
	// Msg is a short human-readable description.
	Msg string
}

func (e *Error) Error() string {
	ptr := e.Pointer
	if ptr == "" {
		ptr = "root"
	}
	return "at " + ptr + " (byte " + strconv.Itoa(e.Offset) + "): " + e.Msg
}

// Parse parses data into what encoding/json produces with Decoder.UseNumber:
// map[string]any, []any, string, json.Number, bool or nil. Strings never
// alias data; the strings of one document share a few allocations of at
// most 8 KiB each (or the string's own size, if larger).
//
// The error, if any, is an *Error. For KindTrailing, Parse also returns the
// document parsed before the trailing data.
func Parse(data []byte, lim Limits) (any, error) {
	p := newParser(data, lim, true)
	defer p.release()
	v := p.run()
	if p.err != nil {
		if p.err.Kind == KindTrailing {
			return v, p.err
		}
		return nil, p.err
	}
	return v, nil
}

// Check applies the checks of Parse without building the document, for data
// that is then decoded by another decoder. The error, if any, is an *Error.
func Check(data []byte, lim Limits) error {
	p := newParser(data, lim, false)
	defer p.release()
	p.run()
	if p.err != nil {
		return p.err
	}
	return nil
}

// Parsers are pooled so that their scratch slices (open containers, their
// members and elements) cost no allocation per call.
var parsers = sync.Pool{New: func() any { return new(parser) }}

func newParser(data []byte, lim Limits, build bool) *parser {
	p := parsers.Get().(*parser)
	p.init(data, lim, build)
	return p
}

func (p *parser) release() {
	// Containers clear their part of the scratch as they close; an error
	// leaves the open ones.
	clear(p.kv)
	clear(p.vals)
	clear(p.big)
	p.kv, p.vals, p.levels, p.big = p.kv[:0], p.vals[:0], p.levels[:0], p.big[:0]
	if cap(p.kv) > maxPooled {
		p.kv = nil
	}
	if cap(p.vals) > maxPooled {
		p.vals = nil
	}
	if cap(p.levels) > maxPooled {
		p.levels = nil
	}
	if cap(p.big) > maxPooled {
		p.big = nil
	}
	if cap(p.sbuf) > maxPooled {
		p.sbuf = nil
	}
	// The arena's bytes belong to the returned strings.
	p.data, p.arena, p.err = nil, nil, nil
	parsers.Put(p)
}

type parser struct {
	data     []byte
	maxDepth int
	maxNum   int
	maxVals  int // 0: no limit
	nvals    int
	allowDup bool
	build    bool
	err      *Error
	// steps counts units of work (bytes scanned or copied, key comparisons,
	// map operations); tests bound it by a constant times len(data).
	steps int
	arena []byte // unused tail of the current chunk of string bytes
	sbuf  []byte // decoded content of the last string that held escapes
	// The scratch slices grow by doubling, where append grows big slices
	// by a quarter: their copying and garbage stay under twice their size.
	levels []level     // the open containers, outermost first
	kv     []member    // members of open objects of at most smallObject members
	big    []bigObject // objects of levels past smallObject members
	vals   []any       // elements of open arrays (Parse only)
}

// level is an open array or object. The parser keeps them in a slice rather
// than recursing: a deep document then costs 40 bytes per level, which the
// garbage collector need not scan, instead of a goroutine stack of hundreds
// of bytes per level. Error pointers are built from the slice only when an
// error happens.
type level struct {
	keyAt int // offset of the current member's key, for an object
	idx   int // current element, or -1 for an object
	base  int // where its members or elements start in kv or vals
	n     int // members so far, for an object
	big   int // for an object past smallObject members, 1 + its index in big
}

// bigObject is an object past smallObject members, whose map (Parse) or set
// of keys (Check) also detects duplicates.
type bigObject struct {
	m    map[string]any
	seen map[string]struct{}
	key  string // Parse: current member
}

type member struct {
	key string
	val any
}

func (p *parser) init(data []byte, lim Limits, build bool) {
	p.data = data
	p.build = build
	p.steps = 0
	p.maxDepth = lim.MaxDepth
	if p.maxDepth <= 0 {
		p.maxDepth = defaultMaxDepth
	}
	p.maxNum = lim.MaxNumberLen
	if p.maxNum <= 0 {
		p.maxNum = defaultMaxNumberLen
	}
	p.maxVals, p.nvals = max(lim.MaxValues, 0), 0
	p.allowDup = lim.AllowDuplicateKeys
}

func (p *parser) run() any {
	i := p.ws(0)
	if i == len(p.data) {
		p.fail(KindSyntax, i, 0, "no JSON value")
		return nil
	}
	v, j := p.parse(i)
	if j < 0 {
		return nil
	}
	if k := p.ws(j); k < len(p.data) {
		p.fail(KindTrailing, k, 0, "unexpected data after the top-level JSON value")
	}
	return v
}

// ws skips white space; the check before the call keeps the common case of
// none inlined.
func (p *parser) ws(i int) int {
	if i < len(p.data) && p.data[i] > ' ' {
		return i
	}
	return p.wsSlow(i)
}

func (p *parser) wsSlow(i int) int {
	j := i
	for ; j < len(p.data); j++ {
		if c := p.data[j]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			break
		}
	}
	p.steps += j - i
	return j
}

// parse parses the value at i and returns it with the offset just past it,
// or -1 on error.
func (p *parser) parse(i int) (any, int) {
	data := p.data
	var v any
value:
	for {
		i = p.ws(i)
		if i >= len(data) {
			p.fail(KindSyntax, len(data), len(p.levels), msgEOF)
			return nil, -1
		}
		if p.maxVals > 0 {
			if p.nvals++; p.nvals > p.maxVals {
				p.fail(KindValues, i, len(p.levels), "more than "+strconv.Itoa(p.maxVals)+" values")
				return nil, -1
			}
		}
		switch c := data[i]; c {
		case '"':
			v, i = p.stringValue(i)
		case '{', '[':
			if len(p.levels) >= p.maxDepth {
				p.fail(KindDepth, i, len(p.levels), "nesting deeper than "+strconv.Itoa(p.maxDepth)+" levels")
				return nil, -1
			}
			p.steps++
			j := p.ws(i + 1)
			if c == '{' {
				if j < len(data) && data[j] == '}' {
					p.steps++
					v, i = nil, j+1
					if p.build {
						v = map[string]any{}
					}
					break
				}
				p.push(level{idx: -1, base: len(p.kv)})
				if i = p.member(j); i < 0 {
					return nil, -1
				}
				continue
			}
			if j < len(data) && data[j] == ']' {
				p.steps++
				v, i = nil, j+1
				if p.build {
					v = []any{}
				}
				break
			}
			p.push(level{base: len(p.vals)})
			i = j
			continue
		case 't':
			v, i = p.literal(i, "true", true)
		case 'f':
			v, i = p.literal(i, "false", false)
		case 'n':
			v, i = p.literal(i, "null", nil)
		default:
			if c != '-' && c-'0' >= 10 {
				p.fail(KindSyntax, i, len(p.levels), "invalid character "+quoteChar(c)+" looking for beginning of value")
				return nil, -1
			}
			v, i = p.number(i)
		}
		if i < 0 {
			return nil, -1
		}
		// v is complete: add it to its container, and close the containers
		// that end with it.
		for {
			d := len(p.levels)
			if d == 0 {
				return v, i
			}
			l := &p.levels[d-1]
			i = p.ws(i)
			if i >= len(data) {
				p.fail(KindSyntax, len(data), d-1, msgEOF)
				return nil, -1
			}
			p.steps++
			c := data[i]
			if l.idx >= 0 {
				if p.build {
					if len(p.vals) == cap(p.vals) {
						p.vals = slices.Grow(p.vals, max(len(p.vals), 16))
					}
					p.vals = append(p.vals, v)
				}
				switch c {
				case ',':
					l.idx++
					i++
					continue value
				case ']':
					v = p.closeArray(l)
				default:
					p.fail(KindSyntax, i, d-1, "invalid character "+quoteChar(c)+" after array element")
					return nil, -1
				}
			} else {
				p.addMember(l, v)
				switch c {
				case ',':
					if i = p.member(p.ws(i + 1)); i < 0 {
						return nil, -1
					}
					continue value
				case '}':
					v = p.closeObject(l)
				default:
					p.fail(KindSyntax, i, d-1, "invalid character "+quoteChar(c)+" after object key:value pair")
					return nil, -1
				}
			}
			p.levels = p.levels[:d-1]
			i++
		}
	}
}

func (p *parser) push(l level) {
	if len(p.levels) == cap(p.levels) {
		p.levels = slices.Grow(p.levels, max(len(p.levels), 16))
	}
	p.levels = append(p.levels, l)
}

// member parses the key at i of the innermost object, up to its colon, and
// returns the offset after the colon, or -1 on error.
func (p *parser) member(i int) int {
	data := p.data
	d := len(p.levels)
	l := &p.levels[d-1]
	if i >= len(data) {
		p.fail(KindSyntax, len(data), d-1, msgEOF)
		return -1
	}
	if data[i] != '"' {
		p.fail(KindSyntax, i, d-1, "invalid character "+quoteChar(data[i])+" looking for beginning of object key string")
		return -1
	}
	keyAt := i
	k, j := p.key(i)
	if j < 0 {
		return -1
	}
	if l.n == smallObject && (p.build || !p.allowDup) {
		// One allocation that Parse needs anyway.
		small := p.kv[l.base:]
		p.steps += len(small)
		var b bigObject
		if p.build {
			b.m = make(map[string]any, smallObject+1)
			for _, e := range small {
				p.steps += len(e.key)
				b.m[e.key] = e.val
			}
		} else {
			b.seen = make(map[string]struct{}, smallObject+1)
			for _, e := range small {
				p.steps += len(e.key)
				b.seen[e.key] = struct{}{}
			}
		}
		clear(small)
		p.kv = p.kv[:l.base]
		p.big = append(p.big, b)
		l.big = len(p.big)
	}
	if !p.allowDup {
		var dup bool
		switch {
		case l.n < smallObject:
			// A comparison reads the keys only when their lengths match.
			steps := l.n
			kv := p.kv[l.base:]
			for m := range kv {
				if len(kv[m].key) == len(k) {
					steps += len(k)
					if kv[m].key == k {
						dup = true
						break
					}
				}
			}
			p.steps += steps
		case p.build:
			p.steps += 1 + len(k)
			_, dup = p.big[l.big-1].m[k]
		default:
			p.steps += 1 + len(k)
			seen := p.big[l.big-1].seen
			n := len(seen)
			seen[k] = struct{}{}
			dup = len(seen) == n
		}
		if dup {
			p.failMember(KindDuplicateKey, keyAt, k, "duplicate key "+strconv.Quote(k))
			p.err.Key = strings.Clone(k)
			return -1
		}
	}
	switch {
	case l.n < smallObject:
		if len(p.kv) == cap(p.kv) {
			p.kv = slices.Grow(p.kv, max(len(p.kv), 16))
		}
		p.kv = append(p.kv, member{key: k})
	case p.build:
		p.big[l.big-1].key = k
	}
	l.keyAt = keyAt
	i = p.ws(j)
	if i >= len(data) {
		p.fail(KindSyntax, len(data), d, msgEOF)
		return -1
	}
	if data[i] != ':' {
		p.fail(KindSyntax, i, d, "invalid character "+quoteChar(data[i])+" after object key")
		return -1
	}
	p.steps++
	return i + 1
}

func (p *parser) addMember(l *level, v any) {
	switch {
	case l.n < smallObject:
		p.kv[l.base+l.n].val = v
	case p.build:
		b := &p.big[l.big-1]
		p.steps += 1 + len(b.key)
		b.m[b.key] = v
	}
	l.n++
}

func (p *parser) closeObject(l *level) any {
	var m map[string]any
	if l.big > 0 {
		m = p.big[l.big-1].m
		p.big[l.big-1] = bigObject{}
		p.big = p.big[:l.big-1]
	}
	small := p.kv[l.base:]
	if p.build && m == nil {
		m = make(map[string]any, len(small))
		for _, e := range small {
			p.steps += 1 + len(e.key)
			m[e.key] = e.val
		}
	}
	clear(small)
	p.kv = p.kv[:l.base]
	if !p.build {
		return nil
	}
	return m
}

func (p *parser) closeArray(l *level) any {
	if !p.build {
		return nil
	}
	elems := p.vals[l.base:]
	out := make([]any, len(elems))
	p.steps += len(elems)
	copy(out, elems)
	clear(elems)
	p.vals = p.vals[:l.base]
	return out
}

func (p *parser) literal(i int, lit string, v any) (any, int) {
	data := p.data
	if len(data)-i >= len(lit) && string(data[i:i+len(lit)]) == lit {
		p.steps += len(lit)
		return v, i + len(lit)
	}
	for k := 0; ; k++ {
		if i+k >= len(data) {
			p.fail(KindSyntax, len(data), len(p.levels), msgEOF)
			return nil, -1
		}
		if data[i+k] != lit[k] {
			p.fail(KindSyntax, i+k, len(p.levels), "invalid character "+quoteChar(data[i+k])+" in literal "+lit)
			return nil, -1
		}
	}
}

// number parses the number literal at i.
func (p *parser) number(i int) (any, int) {
	data := p.data
	start := i
	// Fast path: an integer within the limit, scanned no further than one
	// byte beyond it.
	end := min(len(data), start+p.maxNum+1)
	if data[i] == '-' {
		i++
	}
	if i < end && data[i]-'1' < 9 {
		for i++; i < end && data[i]-'0' < 10; i++ {
		}
		p.steps += i - start
		if i-start <= p.maxNum && (i == len(data) || data[i] != '.' && data[i]|0x20 != 'e' && data[i]-'0' >= 10) {
			if !p.build {
				return nil, i
			}
			return json.Number(p.str(data[start:i], start)), i
		}
	}
	return p.numberSlow(start)
}

func (p *parser) numberSlow(start int) (any, int) {
	data := p.data
	i := start
	bad := -1 // offset of a grammar error; len(data) if the input ends early
	expAt := -1
	if data[i] == '-' {
		i++
	}
	switch {
	case i >= len(data):
		bad = i
	case data[i] == '0':
		i++
		if i < len(data) && data[i]-'0' < 10 {
			bad = i
		}
	case data[i]-'1' < 9:
		for i++; i < len(data) && data[i]-'0' < 10; i++ {
		}
	default:
		bad = i
	}
	if bad < 0 && i < len(data) && data[i] == '.' {
		i++
		if i < len(data) && data[i]-'0' < 10 {
			for i++; i < len(data) && data[i]-'0' < 10; i++ {
			}
		} else {
			bad = i
		}
	}
	if bad < 0 && i < len(data) && data[i]|0x20 == 'e' {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i < len(data) && data[i]-'0' < 10 {
			e := i
			for i++; i < len(data) && data[i]-'0' < 10; i++ {
			}
			if i-e > maxExponentDigits {
				expAt = e + maxExponentDigits
			}
		} else {
			bad = i
		}
	}
	scanned := i
	if bad >= 0 {
		scanned = bad
	}
	p.steps += scanned - start
	// Report whichever problem comes first in the input.
	first, msg := -1, ""
	if scanned-start > p.maxNum {
		first, msg = start+p.maxNum, "number literal longer than "+strconv.Itoa(p.maxNum)+" bytes"
	}
	if expAt >= 0 && (first < 0 || expAt < first) {
		first, msg = expAt, "number exponent longer than "+strconv.Itoa(maxExponentDigits)+" digits"
	}
	d := len(p.levels)
	if first >= 0 && (bad < 0 || first < bad) {
		p.fail(KindNumber, start, d, msg)
		return nil, -1
	}
	if bad >= 0 {
		switch {
		case bad >= len(data):
			p.fail(KindSyntax, bad, d, msgEOF)
		case data[bad]-'0' < 10:
			// Only a leading zero stops the digits of a number.
			p.fail(KindSyntax, bad, d, "invalid character "+quoteChar(data[bad])+" after leading zero in numeric literal")
		default:
			p.fail(KindSyntax, bad, d, "invalid character "+quoteChar(data[bad])+" in numeric literal")
		}
		return nil, -1
	}
	if !p.build {
		return nil, i
	}
	return json.Number(p.str(data[start:i], start)), i
}

func (p *parser) stringValue(i int) (any, int) {
	end, esc, fl := p.scanString(i, p.build)
	if fl.code != 0 {
		p.failString(fl, -1)
		return nil, -1
	}
	if !p.build {
		return nil, end
	}
	if esc {
		return p.str(p.sbuf, i+1), end
	}
	return p.str(p.data[i+1:end-1], i+1), end
}

// key parses the key whose quote is at i, in the innermost object.
func (p *parser) key(i int) (string, int) {
	end, esc, fl := p.scanString(i, true)
	if fl.code != 0 {
		p.failString(fl, i)
		return "", -1
	}
	switch {
	case p.build && esc:
		return p.str(p.sbuf, i+1), end
	case p.build:
		return p.str(p.data[i+1:end-1], i+1), end
	case esc:
		p.steps += len(p.sbuf)
		return string(p.sbuf), end
	case end-i == 2:
		return "", end
	default:
		// Check keeps keys only for duplicate detection during the call, and
		// copies the one it reports, so aliasing data saves an allocation
		// per key.
		return unsafe.String(&p.data[i+1], end-i-2), end
	}
}

// str copies b, taken from data at rawAt or later, into the arena. Decoded
// strings are never longer than their literals, so the rest of data bounds
// the bytes still to come and sizes the chunk without waste.
func (p *parser) str(b []byte, rawAt int) string {
	n := len(b)
	if n == 0 {
		return ""
	}
	p.steps += n
	if cap(p.arena)-len(p.arena) < n {
		size := max(min(len(p.data)-rawAt, arenaChunk), n)
		p.arena = make([]byte, 0, size)
	}
	off := len(p.arena)
	p.arena = append(p.arena, b...)
	// The bytes are never written again: later strings only append.
	return unsafe.String(&p.arena[off], n)
}

type faultCode uint8

const (
	fOK faultCode = iota
	fEOF
	fControl
	fUTF8
	fEscape
	fHex
	fSurrogate
)

type fault struct {
	code faultCode
	off  int
}

// plain marks the bytes that a string holds as they are.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// scanString scans the string literal whose quote is at i and returns the
// offset past its closing quote; when the literal holds escapes, esc is true
// and, if decode, p.sbuf holds the decoded content.
func (p *parser) scanString(i int, decode bool) (end int, esc bool, fl fault) {
	data := p.data
	start := i
	i++
	for {
		// Eight bytes at a time: flags quote, backslash, control and
		// non-ASCII bytes. Borrows only ever flag bytes after a real match,
		// so the lowest flag is exact.
		for i+8 <= len(data) {
			x := binary.LittleEndian.Uint64(data[i:])
			q := x ^ (lsb * '"')
			b := x ^ (lsb * '\\')
			t := ((x - lsb*0x20) &^ x) | ((q - lsb) &^ q) | ((b - lsb) &^ b) | x
			if t &= msb; t != 0 {
				i += bits.TrailingZeros64(t) >> 3
				break
			}
			i += 8
		}
		for i < len(data) && plain[data[i]] {
			i++
		}
		if i >= len(data) {
			p.steps += i - start
			return 0, false, fault{fEOF, i}
		}
		switch c := data[i]; {
		case c == '"':
			p.steps += i + 1 - start
			return i + 1, false, fault{}
		case c == '\\':
			p.steps += i - start
			return p.scanEscaped(start, i, decode)
		case c < 0x20:
			p.steps += i - start
			return 0, false, fault{fControl, i}
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				p.steps += i - start
				return 0, false, fault{fUTF8, i}
			}
			i += size
		}
	}
}

// scanEscaped goes on with scanString from the first backslash, at i.
func (p *parser) scanEscaped(start, i int, decode bool) (int, bool, fault) {
	data := p.data
	from := i
	buf := p.sbuf[:0]
	if decode {
		buf = append(buf, data[start+1:i]...)
	}
	written := 0
	done := func(fl fault) (int, bool, fault) {
		p.sbuf = buf
		p.steps += i - from + written + len(buf)
		return i + 1, true, fl
	}
	for {
		if !decode && len(buf) > 64 {
			// Only validating: escapes still decode into buf, whose
			// content nobody reads, so it need not grow.
			written += len(buf)
			buf = buf[:0]
		}
		j := i
		for j < len(data) && plain[data[j]] {
			j++
		}
		if decode {
			buf = append(buf, data[i:j]...)
		}
		i = j
		if i >= len(data) {
			return done(fault{fEOF, i})
		}
		switch c := data[i]; {
		case c == '"':
			return done(fault{})
		case c == '\\':
			if i+1 >= len(data) {
				return done(fault{fEOF, len(data)})
			}
			switch e := data[i+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, fl := hex4(data, i+2)
				if fl.code != fOK {
					return done(fl)
				}
				if utf16.IsSurrogate(r) {
					// Only a high surrogate immediately followed by an
					// escaped low one makes a character.
					if r < 0xdc00 && len(data)-i >= 12 && data[i+6] == '\\' && data[i+7] == 'u' {
						if r2, fl := hex4(data, i+8); fl.code == fOK && r2 >= 0xdc00 && r2 <= 0xdfff {
							buf = utf8.AppendRune(buf, utf16.DecodeRune(r, r2))
							i += 12
							continue
						}
					}
					return done(fault{fSurrogate, i})
				}
				buf = utf8.AppendRune(buf, r)
				i += 6
				continue
			default:
				return done(fault{fEscape, i + 1})
			}
			i += 2
		case c < 0x20:
			return done(fault{fControl, i})
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				return done(fault{fUTF8, i})
			}
			if decode {
				buf = append(buf, data[i:i+size]...)
			}
			i += size
		}
	}
}

func hex4(data []byte, i int) (rune, fault) {
	var r rune
	for k := i; k < i+4; k++ {
		if k >= len(data) {
			return 0, fault{fEOF, len(data)}
		}
		c := data[k]
		switch {
		case c-'0' < 10:
			c -= '0'
		case c|0x20-'a' < 6:
			c = c | 0x20 - 'a' + 10
		default:
			return 0, fault{fHex, k}
		}
		r = r<<4 | rune(c)
	}
	return r, fault{}
}

// failString reports a fault of the string at keyAt, a key of the innermost
// object, or, if keyAt is negative, of a string value.
func (p *parser) failString(fl fault, keyAt int) {
	var kind Kind
	var msg string
	switch fl.code {
	case fEOF:
		kind, msg = KindSyntax, msgEOF
	case fControl:
		kind, msg = KindSyntax, "invalid character "+quoteChar(p.data[fl.off])+" in string literal"
	case fUTF8:
		kind, msg = KindInvalidUTF8, "invalid UTF-8 byte 0x"+strconv.FormatUint(uint64(p.data[fl.off]), 16)+" in string literal"
	case fEscape:
		kind, msg = KindSyntax, "invalid character "+quoteChar(p.data[fl.off])+" in string escape code"
	case fHex:
		kind, msg = KindSyntax, "invalid character "+quoteChar(p.data[fl.off])+" in \\u hexadecimal character escape"
	case fSurrogate:
		kind, msg = KindSurrogate, "lone UTF-16 surrogate escape "+string(p.data[fl.off:fl.off+6])
	}
	if keyAt < 0 {
		p.fail(kind, fl.off, len(p.levels), msg)
		return
	}
	p.failMember(kind, fl.off, p.lenientKey(keyAt), msg)
}

// fail reports a problem of the value that the first n open containers,
// each at its current member or element, lead to.
func (p *parser) fail(kind Kind, off int, n int, msg string) {
	var b strings.Builder
	p.pointer(&b, n)
	p.err = &Error{Kind: kind, Offset: off, Pointer: b.String(), Msg: msg}
}

// failMember reports a problem of the member named key of the innermost
// object.
func (p *parser) failMember(kind Kind, off int, key, msg string) {
	var b strings.Builder
	p.pointer(&b, len(p.levels)-1)
	b.WriteByte('/')
	writeToken(&b, key)
	p.steps += len(key)
	p.err = &Error{Kind: kind, Offset: off, Pointer: b.String(), Msg: msg}
}

func (p *parser) pointer(b *strings.Builder, n int) {
	for _, l := range p.levels[:n] {
		b.WriteByte('/')
		if l.idx >= 0 {
			b.WriteString(strconv.Itoa(l.idx))
			p.steps++
			continue
		}
		// The key was valid: decoding it again is exact.
		writeToken(b, p.lenientKey(l.keyAt))
	}
}

func writeToken(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '~':
			b.WriteString("~0")
		case '/':
			b.WriteString("~1")
		default:
			b.WriteByte(s[i])
		}
	}
}

// lenientKey decodes the key whose quote is at i for an error pointer,
// with U+FFFD for whatever is broken, up to its closing quote or the end.
func (p *parser) lenientKey(i int) string {
	data := p.data
	from := i
	var b []byte
	for i++; i < len(data) && data[i] != '"'; {
		c := data[i]
		switch {
		case c == '\\' && i+1 >= len(data):
			i++
		case c == '\\' && data[i+1] == 'u':
			r, fl := hex4(data, i+2)
			switch {
			case fl.code != fOK:
				r = utf8.RuneError
				i += 2
			case r >= 0xd800 && r < 0xdc00 && len(data)-i >= 12 && data[i+6] == '\\' && data[i+7] == 'u':
				if r2, fl := hex4(data, i+8); fl.code == fOK && r2 >= 0xdc00 && r2 <= 0xdfff {
					r = utf16.DecodeRune(r, r2)
					i += 6
				} else {
					r = utf8.RuneError
				}
				i += 6
			default:
				if utf16.IsSurrogate(r) {
					r = utf8.RuneError
				}
				i += 6
			}
			b = utf8.AppendRune(b, r)
		case c == '\\':
			switch e := data[i+1]; e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			default:
				b = utf8.AppendRune(b, utf8.RuneError)
			}
			i += 2
		case c < 0x20:
			b = utf8.AppendRune(b, utf8.RuneError)
			i++
		default:
			r, size := utf8.DecodeRune(data[i:])
			b = utf8.AppendRune(b, r)
			i += size
		}
	}
	p.steps += i - from + len(b)
	return string(b)
}

// quoteChar formats c as encoding/json's errors do.
func quoteChar(c byte) string {
	switch {
	case c == '\'':
		return `'\''`
	case c == '"':
		return `'"'`
	case c >= utf8.RuneSelf:
		return "byte 0x" + strconv.FormatUint(uint64(c), 16)
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

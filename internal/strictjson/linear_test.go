package strictjson

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// Work is bounded by workPerByte*len(data) + workConstant steps. The
// counter charges one step per byte scanned and per byte copied: a byte is
// scanned once, and a byte of a string may be decoded into the escape buffer
// once and copied once more, 3 steps. A map operation costs one step plus
// the key length; building a map or slice at its close one step per member
// or element. An object of at most smallObject members compares each new key
// with the earlier ones, one step each plus the key length when the lengths
// match: for g keys of one length L that is g(g-1)/2*(L+1) steps over at
// least g*(L+5) bytes ("k":0,), under 7.5 steps per byte for g <= 16, plus
// at most 15 steps per member of at least 6 bytes. Together under 14; the
// worst shape found (16 same-length long keys per object) takes 10.4. An
// error adds one walk over the keys of its pointer and its key.
const (
	workPerByte  = 16
	workConstant = 256
)

func work(data []byte, lim Limits, build bool) int {
	var p parser
	p.init(data, lim, build)
	p.run()
	return p.steps
}

var permissive = Limits{MaxDepth: 1 << 30, MaxNumberLen: 1 << 30, AllowDuplicateKeys: true}

// checkWork fails t if parsing data, with or without building, takes more
// work than the bound, and returns the largest work per byte seen.
func checkWork(t testing.TB, name string, data []byte) float64 {
	t.Helper()
	worst := 0.0
	for _, lim := range []Limits{{}, permissive, {MaxDepth: 1 << 30, MaxNumberLen: 1 << 30}} {
		for _, build := range []bool{true, false} {
			steps := work(data, lim, build)
			if steps > workPerByte*len(data)+workConstant {
				t.Fatalf("%s (%d bytes, %+v, build %v): %d steps, %.1f per byte; bound is %d per byte + %d",
					name, len(data), lim, build, steps, float64(steps)/float64(len(data)), workPerByte, workConstant)
			}
			worst = max(worst, float64(steps)/float64(max(len(data), 1)))
		}
	}
	return worst
}

// hostileRaw are the hostile shapes of HostileShapes on their own, not in an
// order, so that nothing else dilutes them.
func hostileRaw(size int) []Shape {
	n := size
	return []Shape{
		{"deep-arrays", []byte(nest("[", "]", n/2, ""))},
		{"deep-objects", []byte(nest(`{"a":`, "}", n/6, "{}"))},
		{"deep-objects-long-keys", []byte(nest(`{"`+strings.Repeat("k", 30)+`":`, "}", n/36, "1"))},
		{"deep-mixed", []byte(nest(`[{"a":`, "}]", n/8, "1"))},
		{"deep-unclosed", []byte(strings.Repeat("[", n))},
		{"many-keys", []byte(manyKeys("", n/11))},
		{"near-duplicate-keys", []byte(nearDuplicateKeys(n / 69))},
		{"same-length-keys", []byte(sameLengthKeys(n / 10))},
		{"small-objects-of-16", []byte("[" + strings.TrimSuffix(strings.Repeat(manyKeys("", 16)+",", n/200), ",") + "]")},
		{"small-objects-long-keys", []byte(smallObjects(n, 15, 200))},
		{"small-objects-tiny-then-long", []byte(smallObjects(n, 1, 400))},
		{"small-objects-same-length-keys", []byte(smallObjects(n, 300, 300))},
		{"duplicate-keys", []byte("{" + strings.TrimSuffix(strings.Repeat(`"k":0,`, n/6), ",") + "}")},
		{"escape-run", []byte(`"` + strings.Repeat(`\u0041`, n/6) + `"`)},
		{"escape-pairs", []byte(`"` + strings.Repeat(`\ud83d\ude00`, n/12) + `"`)},
		{"escaped-keys", []byte(escapedKeys(n / 40))},
		{"long-string", []byte(`"` + strings.Repeat("a", n) + `"`)},
		{"long-utf8", []byte(`"` + strings.Repeat("\u20ac", n/3) + `"`)},
		{"huge-number", []byte("9" + strings.Repeat("0", n))},
		{"huge-fraction", []byte("0." + strings.Repeat("0", n))},
		{"many-numbers", []byte(manyNumbers(n / 2))},
		{"many-empties", []byte("[" + strings.TrimSuffix(strings.Repeat("[],{},\"\",", n/9), ",") + "]")},
		{"white-space", []byte("[" + strings.Repeat(" ", n) + "1]")},
		{"lone-surrogate-at-end", []byte(`"` + strings.Repeat("a", n) + `\ud800"`)},
		{"error-deep-in-keys", []byte(nest(`{"`+strings.Repeat("k", 60)+`":`, "", n/64, "x"))},
	}
}

// smallObjects makes an array of objects of smallObject members each, the
// first 15 with keys of length short, the last with a key of length long,
// all keys of an object differing only in their last bytes.
func smallObjects(size, short, long int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		for k := range smallObject {
			if k > 0 {
				b.WriteByte(',')
			}
			l := short
			if k == smallObject-1 {
				l = long
			}
			key := strings.Repeat("x", l-1) + string(rune('A'+k))
			b.WriteString(`"` + key + `":0`)
		}
		b.WriteByte('}')
	}
	b.WriteByte(']')
	return b.String()
}

func sameLengthKeys(n int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + strconv.Itoa(1000000+i) + `":0`)
	}
	b.WriteByte('}')
	return b.String()
}

func escapedKeys(n int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"\u0041\u0042\u0043` + strconv.Itoa(100000+i) + `":0`)
	}
	b.WriteByte('}')
	return b.String()
}

func TestLinearWork(t *testing.T) {
	for _, size := range []int{1 << 10, 16 << 10, 256 << 10} {
		var shapes []Shape
		shapes = append(shapes, HostileShapes(size)...)
		shapes = append(shapes, hostileRaw(size)...)
		for _, s := range shapes {
			worst := checkWork(t, s.Name, s.Data)
			if testing.Verbose() && size == 256<<10 {
				t.Logf("%-40s %.2f steps/byte", s.Name, worst)
			}
		}
	}
}

// TestWorkIsCounted guards the bound against a counter that stops counting.
func TestWorkIsCounted(t *testing.T) {
	for _, s := range HostileShapes(16 << 10) {
		if _, err := Parse(s.Data, permissive); err != nil {
			continue
		}
		if steps := work(s.Data, permissive, true); steps < len(s.Data) {
			t.Errorf("%s: %d steps for %d bytes", s.Name, steps, len(s.Data))
		}
	}
}

// FuzzLinearWork grows each input to a few KiB in several ways, as data, as
// array elements, as member values, as keys and nested, and fails if the
// work per byte exceeds the bound.
func FuzzLinearWork(f *testing.F) {
	addSeeds(f)
	for _, s := range hostileRaw(maxFuzzLen) {
		f.Add(s.Data)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > maxFuzzLen {
			return
		}
		const target = 4 << 10
		k := target/(len(in)+8) + 1
		grow := func(prefix, sep, suffix string, item func(i int) []byte) []byte {
			var b bytes.Buffer
			b.WriteString(prefix)
			for i := range k {
				if i > 0 {
					b.WriteString(sep)
				}
				b.Write(item(i))
			}
			b.WriteString(suffix)
			return b.Bytes()
		}
		same := func(int) []byte { return in }
		variants := map[string][]byte{
			"repeated": grow("", "", "", same),
			"array":    grow("[", ",", "]", same),
			"members":  grow("{", ",", "}", func(i int) []byte { return append([]byte(`"k`+strconv.Itoa(i)+`":`), in...) }),
			"same-key": grow("{", ",", "}", func(int) []byte { return append([]byte(`"k":`), in...) }),
			"keys": grow("{", ",", "}", func(i int) []byte {
				return append(append([]byte(`"`), in...), `\u00`+strconv.FormatInt(int64(0x20+i%96), 16)+`":0`...)
			}),
			"nested":         []byte(strings.Repeat("[", k) + string(in) + strings.Repeat("]", k)),
			"nested-members": []byte(strings.Repeat(`{"a":`, k) + string(in) + strings.Repeat("}", k)),
			"nested-in":      []byte(strings.Repeat(string(in)+"[", k)),
		}
		for name, data := range variants {
			checkWork(t, name, data)
		}
	})
}

package strictjson

import (
	"bytes"
	"strconv"
	"strings"
)

// Shape is one hostile document made by HostileShapes.
type Shape struct {
	Name string
	Data []byte
}

// MinHostileSize is the smallest size HostileShapes keeps to: below it the
// order fields alone would not fit.
const MinHostileSize = 1024

// HostileShapes returns, for each shape of input known to make JSON decoders
// work super-linearly or to be refused, a subscriber order document of
// len(Data) within 5% of size (at least MinHostileSize). Every document is a
// top-level object with the usual order fields; the hostile part sits either
// in an unknown extra field ("x-unknown") or in place of a known field.
// Where the hostile part cannot fill the size, a final "x-padding" string
// member makes up the rest. Other packages' benchmarks reuse these.
func HostileShapes(size int) []Shape {
	size = max(size, MinHostileSize)
	var shapes []Shape
	add := func(name string, gen func(n int) []byte) {
		shapes = append(shapes, Shape{Name: name, Data: fit(size, gen)})
	}
	unknown := func(hostile func(n int) string) func(int) []byte {
		return func(n int) []byte { return order(nil, member2{"x-unknown", hostile(n)}) }
	}
	in := func(field string, hostile func(n int) string) func(int) []byte {
		return func(n int) []byte { return order(map[string]string{field: hostile(n)}) }
	}
	deepArray := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	deepObject := func(n int) string { return strings.Repeat(`{"a":`, n) + "{}" + strings.Repeat("}", n) }
	escapes := func(n int) string { return `"` + strings.Repeat(`\u0041`, n) + `"` }
	long := func(n int) string { return `"` + strings.Repeat("a", n) + `"` }
	longUTF8 := func(n int) string { return `"` + strings.Repeat("é", n) + `"` }
	surrogateAtEnd := func(n int) string { return `"` + strings.Repeat("a", n) + `\ud800"` }
	hugeInt := func(n int) string { return "9" + strings.Repeat("0", min(n, 200000)) }
	hugeExp := func(int) string { return "1e999999999" }

	// Arrays nested as deep as the size allows: super-linear for decoders
	// that rescan or copy per level, a stack overflow for naive recursion.
	add("deep-array-unknown", unknown(deepArray))
	add("deep-array-in-email", in("email", deepArray))
	// Objects nested as deep as the size allows, each with one key.
	add("deep-object-unknown", unknown(deepObject))
	add("deep-object-in-email", in("email", deepObject))
	// Tens of thousands of distinct keys in one object (at 256 KiB).
	add("many-keys-unknown", unknown(func(n int) string { return manyKeys("", n) }))
	add("many-keys-in-provisioningParameters", in("provisioningParameters", func(n int) string {
		return manyKeys(`"firstName":"John","lastName":"Andersen","primaryPhoneNumber":"+12405551212","extension":"51212","locationId":"L1",`, n)
	}))
	// Long keys that differ only in their last bytes: worst case for key comparison.
	add("near-duplicate-keys-unknown", unknown(nearDuplicateKeys))
	// The same key over and over in an unknown object: refused at the second.
	add("duplicate-keys-unknown", unknown(func(n int) string {
		return "{" + strings.TrimSuffix(strings.Repeat(`"k":0,`, n+1), ",") + "}"
	}))
	// The order's "email" member repeated, the last one differing.
	add("duplicate-keys-email", func(n int) []byte {
		extra := make([]member2, 0, n+1)
		for range n {
			extra = append(extra, member2{"email", `"john.andersen@example.com"`})
		}
		extra = append(extra, member2{"email", `"attacker@example.com"`})
		return order(nil, extra...)
	})
	// \u0041 escapes for the whole size: the slow path of string decoding.
	add("long-escape-run-in-email", in("email", escapes))
	add("long-escape-run-unknown", unknown(escapes))
	// One plain ASCII string for the whole size.
	add("long-string-in-email", in("email", long))
	add("long-string-unknown", unknown(long))
	// One string of two-byte UTF-8 characters for the whole size.
	add("long-utf8-string-in-email", in("email", longUTF8))
	// A long plain string ending in a lone surrogate escape: refused at the end.
	add("lone-surrogate-at-end-in-email", in("email", surrogateAtEnd))
	add("lone-surrogate-at-end-unknown", unknown(surrogateAtEnd))
	// A 200,000-digit integer (fewer digits below 256 KiB), or an exponent of
	// 999999999, where math/big or float parsing would blow up.
	add("huge-int-schemaVersion", in("schemaVersion", hugeInt))
	add("huge-int-extension", in("extension", hugeInt))
	add("huge-int-unknown", unknown(hugeInt))
	add("huge-exp-schemaVersion", in("schemaVersion", hugeExp))
	add("huge-exp-extension", in("extension", hugeExp))
	add("huge-exp-unknown", unknown(hugeExp))
	// An array of many small numbers.
	add("many-numbers-unknown", unknown(manyNumbers))
	add("many-numbers-in-email", in("email", manyNumbers))
	// All of the above in one unknown object, in equal parts.
	add("mixed-unknown", unknown(func(n int) string {
		k := n / 7
		return `{"d":` + deepArray(k/2) + `,"o":` + deepObject(k/6) + `,"k":` + manyKeys("", k/11) +
			`,"e":` + escapes(k/6) + `,"s":` + long(k) + `,"i":` + hugeInt(k) + `,"n":` + manyNumbers(k/2) + `}`
	}))
	return shapes
}

type member2 struct{ key, raw string }

var orderMembers = []member2{
	{"schemaVersion", `1`},
	{"orderId", `"ord-2026-000123"`},
	{"action", `"provision"`},
	{"occurredAt", `"2026-05-04T09:15:27.512Z"`},
	{"customerId", `"Y2lzY29zcGFyazovL3VzL0NVU1RPTUVSL2Y1YjM2MTg3LWM4ZGQtNDcyNy04YjJmLWY5YzQ0N2YyOTA0Ng"`},
	{"email", `"john.andersen@example.com"`},
	{"packages", `["webex_calling"]`},
	{"provisioningParameters", `{"firstName":"John","lastName":"Andersen","primaryPhoneNumber":"+12405551212","extension":"51212","locationId":"Y2lzY29zcGFyazovL3VzL0xPQ0FUSU9OLzAxMjM0NTY3LTg5YWItY2RlZi0wMTIzLTQ1Njc4OWFiY2RlZg"}`},
	{"customerInfo", `{"primaryEmail":"admin@example.com"}`},
}

// order writes the typical order with the raw values of replace, which may
// name a provisioningParameters field, followed by extra members.
func order(replace map[string]string, extra ...member2) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range orderMembers {
		if i > 0 {
			b.WriteByte(',')
		}
		raw := m.raw
		if r, ok := replace[m.key]; ok {
			raw = r
		}
		if m.key == "provisioningParameters" {
			if r, ok := replace["extension"]; ok {
				raw = strings.Replace(raw, `"51212"`, r, 1)
			}
		}
		b.WriteString(strconv.Quote(m.key) + ":" + raw)
	}
	for _, m := range extra {
		b.WriteString("," + strconv.Quote(m.key) + ":" + m.raw)
	}
	b.WriteByte('}')
	return b.Bytes()
}

func manyKeys(prefix string, n int) string {
	var b strings.Builder
	b.WriteString("{" + prefix)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strconv.Itoa(i) + `":0`)
	}
	s := b.String()
	return strings.TrimSuffix(s, ",") + "}"
}

func nearDuplicateKeys(n int) string {
	var b strings.Builder
	b.WriteByte('{')
	prefix := strings.Repeat("x", 56)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + prefix + strconv.Itoa(10000000+i) + `":0`)
	}
	b.WriteByte('}')
	return b.String()
}

func manyNumbers(n int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(i % 10))
	}
	b.WriteByte(']')
	return b.String()
}

// fit finds the largest n for which gen(n) is no longer than size, then pads
// with an "x-padding" member whatever is left beyond rounding.
func fit(size int, gen func(n int) []byte) []byte {
	base := len(gen(0))
	per := float64(len(gen(256))-base) / 256
	n := 0
	if per > 0 {
		n = max(int(float64(size-base)/per), 0)
		// Lengths grow near-linearly in n; a few proportional steps land
		// within one unit of the target.
		for range 8 {
			l := len(gen(n))
			if l <= size && size-l < int(per)+2 {
				break
			}
			n = max(n+int(float64(size-l)/per), 0)
		}
		for n > 0 && len(gen(n)) > size {
			n--
		}
	}
	doc := gen(n)
	const padding = `,"x-padding":""`
	if gap := size - len(doc); gap >= len(padding) {
		doc = append(doc[:len(doc)-1], padding[:len(padding)-1]...)
		doc = append(doc, bytes.Repeat([]byte{'p'}, gap-len(padding))...)
		doc = append(doc, `"}`...)
	}
	return doc
}

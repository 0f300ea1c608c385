package strictjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	segjson "github.com/segmentio/encoding/json"
)

// typicalOrder is one Kafka order record as the provisioner receives it.
var typicalOrder = []byte(`{"schemaVersion":1,"orderId":"ord-2026-000123","action":"provision","occurredAt":"2026-05-04T09:15:27.512Z","customerId":"Y2lzY29zcGFyazovL3VzL0NVU1RPTUVSL2Y1YjM2MTg3LWM4ZGQtNDcyNy04YjJmLWY5YzQ0N2YyOTA0Ng","email":"john.andersen@example.com","packages":["webex_calling"],"provisioningParameters":{"firstName":"John","lastName":"Andersen","primaryPhoneNumber":"+12405551212","extension":"51212","locationId":"Y2lzY29zcGFyazovL3VzL0xPQ0FUSU9OLzAxMjM0NTY3LTg5YWItY2RlZi0wMTIzLTQ1Njc4OWFiY2RlZg"},"customerInfo":{"primaryEmail":"admin@example.com"}}`)

func BenchmarkParse(b *testing.B) {
	b.Run("strictjson", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(typicalOrder)))
		for b.Loop() {
			if _, err := Parse(typicalOrder, Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("strictjson-Check", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(typicalOrder)))
		for b.Loop() {
			if err := Check(typicalOrder, Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("segmentio", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(typicalOrder)))
		for b.Loop() {
			var v any
			if _, err := segjson.Parse(typicalOrder, &v, segjson.UseNumber); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(typicalOrder)))
		for b.Loop() {
			var v any
			dec := json.NewDecoder(bytes.NewReader(typicalOrder))
			dec.UseNumber()
			if err := dec.Decode(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkHostile parses each hostile shape with the default limits, which
// refuse most shapes early, and with limits that let the parser walk the
// whole document: both must stay flat in ns/byte as the size grows.
func BenchmarkHostile(b *testing.B) {
	modes := []struct {
		name string
		run  func([]byte)
	}{
		{"Parse", func(d []byte) { Parse(d, Limits{}) }},
		{"Check", func(d []byte) { Check(d, Limits{}) }},
		{"Parse-permissive", func(d []byte) { Parse(d, permissive) }},
	}
	for _, size := range []int{1 << 10, 16 << 10, 256 << 10} {
		for _, s := range HostileShapes(size) {
			for _, m := range modes {
				b.Run(fmt.Sprintf("%s/%dKiB/%s", s.Name, size>>10, m.name), func(b *testing.B) {
					b.ReportAllocs()
					b.SetBytes(int64(len(s.Data)))
					for b.Loop() {
						m.run(s.Data)
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(s.Data)), "ns/byte")
				})
			}
		}
	}
}

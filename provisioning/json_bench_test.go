package provisioning

import (
	stdjson "encoding/json"
	"testing"

	"github.com/segmentio/encoding/json"
)

// BenchmarkDecodeAnswer compares the JSON decoder the client uses with the
// standard library's on the answers of a successful order (precheck, create):
// the reason for the dependency (see README, Dependencies).
func BenchmarkDecodeAnswer(b *testing.B) {
	precheck := []byte(`{"message":"success","info":{"infoCode":100,"description":"Provisioning Precheck validation successful."}}`)
	created := []byte(`{"id":"Y2lzY29zcGFyazovL3VzL1NVQlNDUklCRVIvOTU3N2FjNzgtZjgwYy00NmU5LTk0MDgtNTcwMjA2YzQyZTRm","personId":"Y2lzY29zcGFyazovL3VzL1BFT1BMRS8yMDUwMzBkNS0xYjg4LTQ5OGEtYTY0Yi1hNmZmMDVlMTdhZTQ","email":"a.b@example.com","customerId":"c1","externalCustomerId":"2f22765d-0493-4a07-8909-145ca628d226","package":"webex_calling","packages":["webex_calling"],"status":"provisioned","created":"2026-11-26T11:06:49.120Z","lastStatusChange":"2026-11-26T11:06:49.120Z"}`)
	for _, dec := range []struct {
		name      string
		unmarshal func([]byte, any) error
	}{
		{"encoding-json", stdjson.Unmarshal},
		{"segmentio", json.Unmarshal},
	} {
		b.Run(dec.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var p PrecheckResponse
				var s Subscriber
				if err := dec.unmarshal(precheck, &p); err != nil || len(p.Info) != 1 {
					b.Fatal(err, p)
				}
				if err := dec.unmarshal(created, &s); err != nil || s.Status != "provisioned" {
					b.Fatal(err, s)
				}
			}
		})
	}
}

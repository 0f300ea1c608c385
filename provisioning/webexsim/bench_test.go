package webexsim_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// createRequest returns a provision request for a fresh email each call.
func createRequest(b *testing.B, target string, n *atomic.Int64) *http.Request {
	body, err := json.Marshal(provisionBody(customerA, "bench-"+strconv.FormatInt(n.Add(1), 10)+"@acme.example"))
	if err != nil {
		b.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testToken)
	return req
}

// BenchmarkCreate measures the handler alone: POST /wholesale/subscribers with
// zero latency and no faults, called in parallel.
func BenchmarkCreate(b *testing.B) {
	sim := webexsim.New(webexsim.Config{Token: testToken})
	target := "http://sim.test/v1" + provisioning.PathSubscribers
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			sim.ServeHTTP(w, createRequest(b, target, &n))
			if w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}

// BenchmarkCreateHTTP measures the same call through a loopback HTTP server,
// as the service's benchmarks use the simulator.
func BenchmarkCreateHTTP(b *testing.B) {
	sim := webexsim.New(webexsim.Config{Token: testToken})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	target := sim.BaseURL(srv.URL) + provisioning.PathSubscribers
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Do(createRequest(b, target, &n))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}

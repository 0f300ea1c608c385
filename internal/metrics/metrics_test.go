package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCallsCountedByTemplate checks the Webex call series: one per endpoint
// template, method and status ("error" without an answer), and a duration
// sample for every call.
func TestCallsCountedByTemplate(t *testing.T) {
	m := New()
	for _, c := range []struct {
		method, endpoint string
		status           int
	}{
		{"POST", "/wholesale/subscribers/validate", 429},
		{"POST", "/wholesale/subscribers/validate", 429},
		{"POST", "/wholesale/subscribers", 201},
		{"GET", "/wholesale/subscribers/{id}", 200},
		{"GET", "/wholesale/subscribers/{id}", 200},
		{"GET", "/wholesale/subscribers/{id}", 0},
	} {
		m.ObserveCall(c.method, c.endpoint, c.status, 20*time.Millisecond)
	}

	for _, want := range []struct {
		labels []string
		n      float64
	}{
		{[]string{"/wholesale/subscribers/validate", "POST", "429"}, 2},
		{[]string{"/wholesale/subscribers", "POST", "201"}, 1},
		{[]string{"/wholesale/subscribers/{id}", "GET", "200"}, 2},
		{[]string{"/wholesale/subscribers/{id}", "GET", "error"}, 1},
	} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(want.labels...)); got != want.n {
			t.Errorf("webex_requests_total%v = %v, want %v", want.labels, got, want.n)
		}
	}
	if n := testutil.CollectAndCount(m.requests); n != 4 {
		t.Errorf("%d request series, want 4: ids must not become label values", n)
	}
	if n := testutil.CollectAndCount(m.duration); n != 3 {
		t.Errorf("%d duration series, want 3 (one per endpoint and method)", n)
	}
	samples, err := testutil.GatherAndCount(m.reg, "provisioner_webex_request_duration_seconds")
	if err != nil || samples != 3 {
		t.Errorf("duration histograms: %d, %v", samples, err)
	}
}

// TestAssignmentAndTimeWithoutPartitions: the assigned gauge follows the
// partitions held through a cooperative rebalance (some released, the rest
// kept), and the time without partitions grows only while none is held.
func TestAssignmentAndTimeWithoutPartitions(t *testing.T) {
	m := New()
	time.Sleep(20 * time.Millisecond) // from the start until the first assignment
	m.Assigned(1, []int{0, 1, 2, 3})
	before := m.unassignedSeconds()
	if before < 0.02 {
		t.Fatalf("unassigned %.3fs before the first assignment, want at least 0.02", before)
	}
	m.Revoked([]int{2, 3}, 40*time.Millisecond)
	if got := testutil.ToFloat64(m.assigned); got != 2 {
		t.Fatalf("assigned %v after releasing 2 of 4, want 2", got)
	}
	time.Sleep(20 * time.Millisecond)
	if got := m.unassignedSeconds(); got != before {
		t.Fatalf("unassigned grew from %.3f to %.3f while partitions were held", before, got)
	}
	m.Revoked([]int{0, 1}, 3*time.Second)
	time.Sleep(20 * time.Millisecond)
	if got := m.unassignedSeconds(); got < before+0.02 {
		t.Fatalf("unassigned %.3f after 20 ms without partitions, want at least %.3f", got, before+0.02)
	}
	m.Assigned(2, []int{5})
	if got := testutil.ToFloat64(m.assigned); got != 1 {
		t.Fatalf("assigned %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.rebalances); got != 2 {
		t.Fatalf("rebalances %v, want 2", got)
	}
	// Two drains, 40 ms and 3 s: both counted, summed in seconds.
	want := `
# HELP provisioner_consumer_drain_seconds Time this instance took to finish the orders in flight of the partitions it released and commit them (a rebalance or a stop; bounded by --shutdown-timeout).
# TYPE provisioner_consumer_drain_seconds histogram
provisioner_consumer_drain_seconds_bucket{le="0.01"} 0
provisioner_consumer_drain_seconds_bucket{le="0.025"} 0
provisioner_consumer_drain_seconds_bucket{le="0.0625"} 1
provisioner_consumer_drain_seconds_bucket{le="0.15625"} 1
provisioner_consumer_drain_seconds_bucket{le="0.390625"} 1
provisioner_consumer_drain_seconds_bucket{le="0.9765625"} 1
provisioner_consumer_drain_seconds_bucket{le="2.44140625"} 1
provisioner_consumer_drain_seconds_bucket{le="6.103515625"} 2
provisioner_consumer_drain_seconds_bucket{le="15.2587890625"} 2
provisioner_consumer_drain_seconds_bucket{le="38.14697265625"} 2
provisioner_consumer_drain_seconds_bucket{le="+Inf"} 2
provisioner_consumer_drain_seconds_sum 3.04
provisioner_consumer_drain_seconds_count 2
`
	if err := testutil.CollectAndCompare(m.drain, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

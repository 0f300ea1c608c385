package schemas

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/internal/strictjson"
)

// hostileSizes are the record sizes the linear-time benchmark and test use:
// 256 KiB is the default --max-record-bytes.
var hostileSizes = []int{1 << 10, 16 << 10, 256 << 10}

// BenchmarkDecodeOrderHostile decodes records of every hostile shape at 1,
// 16 and 256 KiB and reports ns/byte: a linear decoder shows about the same
// figure at every size (BENCHMARKS.md, "Hostile input").
func BenchmarkDecodeOrderHostile(b *testing.B) {
	for _, size := range hostileSizes {
		for _, sh := range strictjson.HostileShapes(size) {
			b.Run(fmt.Sprintf("%s/%dKiB", sh.Name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(len(sh.Data)))
				b.ReportAllocs()
				for b.Loop() {
					_, _ = DecodeOrder(sh.Data)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(sh.Data)), "ns/byte")
			})
		}
	}
}

// TestDecodeOrderTimeIsLinear is a property over every hostile shape: the
// time per byte of a 256 KiB record stays within a small factor of the time
// per byte of a 16 KiB record of the same shape. Time that grows with the
// square of the size (nesting rescanned per level, keys compared pairwise)
// gives 16 times the figure, not 3. It also decides every record: each one
// is an order or an *InvalidOrderError.
func TestDecodeOrderTimeIsLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("times decoding; skipped in -short mode")
	}
	const factor = 3
	small, large := strictjson.HostileShapes(16<<10), strictjson.HostileShapes(256<<10)
	if len(small) != len(large) {
		t.Fatalf("%d shapes at 16 KiB, %d at 256 KiB", len(small), len(large))
	}
	for i := range small {
		s, l := small[i], large[i]
		t.Run(s.Name, func(t *testing.T) {
			for _, sh := range []strictjson.Shape{s, l} {
				if _, err := DecodeOrder(sh.Data); err != nil {
					var ie *InvalidOrderError
					if !errors.As(err, &ie) || ie.Reason == "" || ie.Detail == "" {
						t.Fatalf("%d bytes: %v, want an order or an *InvalidOrderError with a reason", len(sh.Data), err)
					}
				}
			}
			perByte := func(data []byte, n int) float64 {
				runtime.GC()
				times := make([]time.Duration, 5)
				for r := range times {
					start := time.Now()
					for range n {
						_, _ = DecodeOrder(data)
					}
					times[r] = time.Since(start)
				}
				return float64(slices.Min(times).Nanoseconds()) / float64(n*len(data))
			}
			ps, pl := perByte(s.Data, 16), perByte(l.Data, 1)
			if pl > factor*ps && pl > 2 { // below 2 ns/byte, noise is all there is
				// Measure once more before calling it super-linear: a
				// slow spell of the machine must not fail the test.
				ps, pl = perByte(s.Data, 16), perByte(l.Data, 1)
			}
			t.Logf("%.1f ns/byte at 16 KiB, %.1f ns/byte at 256 KiB", ps, pl)
			if pl > factor*ps && pl > 2 {
				t.Errorf("%.1f ns/byte at 256 KiB against %.1f at 16 KiB: time grows faster than the size", pl, ps)
			}
		})
	}
}

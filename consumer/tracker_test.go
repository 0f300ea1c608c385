package consumer

import (
	"math/rand/v2"
	"testing"
	"time"
)

func wantCommittable(t *testing.T, tr *tracker, want int64, ok bool) {
	t.Helper()
	got, gotOK := tr.committable()
	if got != want || gotOK != ok {
		t.Fatalf("committable = %d, %v; want %d, %v", got, gotOK, want, ok)
	}
}

func TestTrackerNeverPassesAnUnfinishedOffset(t *testing.T) {
	tr := newTracker(100) // the group's committed offset
	wantCommittable(t, tr, 100, true)
	for o := int64(100); o < 110; o++ {
		if err := tr.add(o, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	wantCommittable(t, tr, 100, true)
	// Finished out of order: 101..105 but not 100.
	for o := int64(101); o <= 105; o++ {
		tr.finish(o)
	}
	wantCommittable(t, tr, 100, true)
	tr.finish(100)
	wantCommittable(t, tr, 106, true)
	tr.markCommitted(106)
	wantCommittable(t, tr, 106, false) // nothing new to commit
	for o := int64(106); o < 110; o++ {
		tr.finish(o)
	}
	wantCommittable(t, tr, 110, true)
}

func TestTrackerGapsInOffsets(t *testing.T) {
	// Compaction and transaction markers leave holes; the holes are never fetched.
	tr := newTracker(0)
	for _, o := range []int64{0, 1, 5, 9} {
		if err := tr.add(o, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	tr.finish(0)
	tr.finish(5)
	wantCommittable(t, tr, 1, true)
	tr.finish(1)
	wantCommittable(t, tr, 9, true) // 5 finished; the next unfinished is 9
	tr.finish(9)
	wantCommittable(t, tr, 10, true)
}

func TestTrackerWithoutCommittedOffset(t *testing.T) {
	tr := newTracker(-2) // kafka.FirstOffset: the group never committed
	if _, ok := tr.committable(); ok {
		t.Fatal("a relative start offset must not be committed")
	}
	_ = tr.add(7, time.Now()) // the log starts at 7 (retention)
	wantCommittable(t, tr, 7, true)
	tr.finish(7)
	wantCommittable(t, tr, 8, true)
}

func TestTrackerRejectsOffsetsGoingBack(t *testing.T) {
	tr := newTracker(0)
	_ = tr.add(3, time.Now())
	if err := tr.add(3, time.Now()); err == nil {
		t.Error("the same offset added twice")
	}
	if err := tr.add(2, time.Now()); err == nil {
		t.Error("an earlier offset added after a later one")
	}
}

func TestTrackerRetryKeepsTheWatermark(t *testing.T) {
	// A record that fails and is retried stays unfinished: later records may
	// finish, but the commit waits for it however long the retries take.
	tr := newTracker(0)
	for o := int64(0); o < 50; o++ {
		_ = tr.add(o, time.Now())
	}
	for o := int64(0); o < 50; o++ {
		if o != 20 {
			tr.finish(o)
		}
	}
	for i := 0; i < 10; i++ { // retries happen, nothing changes
		wantCommittable(t, tr, 20, true)
	}
	if n, _ := tr.pending(); n != 1 {
		t.Errorf("pending = %d, want 1", n)
	}
	tr.finish(20)
	wantCommittable(t, tr, 50, true)
}

func TestTrackerRevokedWithWorkInFlight(t *testing.T) {
	// A rebalance takes the partition while 3 and 4 are being handled: the last
	// commit covers only 0..2; 3 and 4 are abandoned (never finished) and the
	// next owner starts at 3.
	tr := newTracker(0)
	for o := int64(0); o < 6; o++ {
		_ = tr.add(o, time.Now())
	}
	tr.finish(0)
	tr.finish(1)
	tr.finish(2)
	tr.finish(5) // a different key, finished before the revocation
	wantCommittable(t, tr, 3, true)
}

// TestTrackerRandomized checks the watermark against a direct computation for
// random finish orders.
func TestTrackerRandomized(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		tr := newTracker(0)
		var offs []int64
		o := int64(0)
		for i := 0; i < 3000; i++ {
			o += 1 + int64(r.IntN(3)) // gaps
			offs = append(offs, o)
			_ = tr.add(o, time.Now())
		}
		done := map[int64]bool{}
		for _, i := range r.Perm(len(offs))[:r.IntN(len(offs))] {
			tr.finish(offs[i])
			done[offs[i]] = true
		}
		want := offs[len(offs)-1] + 1
		for _, o := range offs {
			if !done[o] {
				want = o
				break
			}
		}
		if got, _ := tr.committable(); got != want {
			t.Fatalf("round %d: committable %d, want %d", round, got, want)
		}
	}
}

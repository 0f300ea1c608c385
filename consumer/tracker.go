package consumer

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// tracker follows the records fetched from one partition and answers which
// offset may be committed: the lowest offset not yet finished, or one past the
// last fetched offset when every fetched record is finished. Offsets need not be
// contiguous (compaction and transaction markers leave gaps). A tracker is safe
// for concurrent use.
type tracker struct {
	mu      sync.Mutex
	entries []entry // fetched records in offset order; those before head are finished and dropped
	head    int
	// next is the offset after the last fetched record, or the start offset
	// (negative when the group has no committed offset yet) before any fetch.
	next int64
	// committed is the last offset committed (-1: none yet).
	committed int64
}

type entry struct {
	offset  int64
	fetched time.Time
	done    bool
}

func newTracker(start int64) *tracker {
	return &tracker{next: start, committed: -1}
}

// add records a fetched record. Offsets must increase.
func (t *tracker) add(offset int64, at time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.entries); n > t.head && t.entries[n-1].offset >= offset {
		return fmt.Errorf("offset %d fetched after %d", offset, t.entries[n-1].offset)
	}
	t.entries = append(t.entries, entry{offset: offset, fetched: at})
	t.next = offset + 1
	return nil
}

// finish marks a fetched record finished: its answer is durable.
func (t *tracker) finish(offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	live := t.entries[t.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i].offset >= offset })
	if i < len(live) && live[i].offset == offset {
		live[i].done = true
	}
	t.advance()
}

// advance drops the finished prefix. Called with mu held.
func (t *tracker) advance() {
	for t.head < len(t.entries) && t.entries[t.head].done {
		t.head++
	}
	// Reuse the array once most of it is dead, so memory stays bounded by the
	// number of unfinished records rather than by the partition's history.
	if t.head > 1024 && t.head*2 > len(t.entries) {
		n := copy(t.entries, t.entries[t.head:])
		t.entries = t.entries[:n]
		t.head = 0
	}
}

// committable returns the offset to commit and whether it is worth committing
// (it is ahead of the last commit). Never past an unfinished record.
func (t *tracker) committable() (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.next
	if t.head < len(t.entries) {
		w = t.entries[t.head].offset
	}
	return w, w >= 0 && w > t.committed
}

// committed records a successful commit of offset w.
func (t *tracker) markCommitted(w int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if w > t.committed {
		t.committed = w
	}
}

// pending returns how many fetched records are unfinished and when the oldest
// of them was fetched (zero time when none).
func (t *tracker) pending() (int, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	var oldest time.Time
	for _, e := range t.entries[t.head:] {
		if !e.done {
			if n == 0 {
				oldest = e.fetched
			}
			n++
		}
	}
	return n, oldest
}

// positions returns the completed watermark (what could be committed now) and
// the last committed offset.
func (t *tracker) positions() (completed, committed int64) {
	w, _ := t.committable()
	t.mu.Lock()
	defer t.mu.Unlock()
	return w, t.committed
}

package outage

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// clock is a settable time for the tracker.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func lines(b *bytes.Buffer) []string     { return strings.Split(strings.TrimSpace(b.String()), "\n") }
func newTracker(b *bytes.Buffer) (*Tracker, *clock) {
	c := &clock{t: time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)}
	t := New("Kafka", 30*time.Second, zerolog.New(b))
	t.now = c.now
	return t, c
}

// TestOutageIsAFewLines: 2 minutes of failures from 100 orders, retried every
// second, make one line at the start, a reminder every 30 s and one line at
// the end with the orders held and the time, not 12,000 lines.
func TestOutageIsAFewLines(t *testing.T) {
	var b bytes.Buffer
	tr, c := newTracker(&b)
	tr.Recovered() // nothing to end
	if b.Len() != 0 {
		t.Fatalf("a success without an outage logged %q", b.String())
	}
	err := errors.New("dial tcp 127.0.0.1:9092: connect: connection refused")
	for s := 0; s < 120; s++ {
		for order := 0; order < 100; order++ {
			held := 0
			if s == 0 {
				held = 1
			}
			tr.Failed(err, held)
		}
		c.advance(time.Second)
	}
	if !tr.Down() {
		t.Fatal("not down after two minutes of failures")
	}
	tr.Recovered()
	got := lines(&b)
	// start, reminders at 30, 60, 90 s, end
	if len(got) != 5 {
		t.Fatalf("%d lines, want 5:\n%s", len(got), b.String())
	}
	if !strings.Contains(got[0], `"level":"error"`) || !strings.Contains(got[0], "connection refused") || !strings.Contains(got[0], "Kafka unreachable") {
		t.Errorf("first line %s", got[0])
	}
	if !strings.Contains(got[1], `"orders_held":100`) || !strings.Contains(got[1], "still unreachable") {
		t.Errorf("reminder %s", got[1])
	}
	end := got[4]
	if !strings.Contains(end, "answers again") || !strings.Contains(end, `"orders_held":100`) ||
		!strings.Contains(end, `"failures":12000`) || !strings.Contains(end, `"down_ms":120000`) {
		t.Errorf("last line %s", end)
	}
	if tr.Down() {
		t.Error("still down after the end line")
	}
}

// TestOneSuccessAmongFailuresIsNoRecovery: a success within a second of a
// failure does not end the outage (no flapping pair of lines); a later one does,
// and the next failure starts a new outage with its own counts.
func TestOneSuccessAmongFailuresIsNoRecovery(t *testing.T) {
	var b bytes.Buffer
	tr, c := newTracker(&b)
	tr.Failed(errors.New("broker down"), 1)
	c.advance(500 * time.Millisecond)
	tr.Recovered()
	if !tr.Down() || len(lines(&b)) != 1 {
		t.Fatalf("ended by a success half a second after a failure:\n%s", b.String())
	}
	c.advance(time.Second)
	tr.Recovered()
	if tr.Down() || len(lines(&b)) != 2 {
		t.Fatalf("not ended a second and a half after the last failure:\n%s", b.String())
	}
	tr.Failed(errors.New("broker down again"), 2)
	c.advance(2 * time.Second)
	tr.Recovered()
	got := lines(&b)
	if len(got) != 4 || !strings.Contains(got[3], `"orders_held":2`) || !strings.Contains(got[3], `"failures":1`) {
		t.Fatalf("second outage:\n%s", b.String())
	}
}

package dlq

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func TestReaderStopsAtTheEndItFoundAtStart(t *testing.T) {
	brokers := newCluster(t)
	writeDeadLetters(t, brokers, dltTopic,
		transient(order("ord-1", "a@acme.example", 0, 1), "ord-1"),
		transient(order("ord-2", "b@acme.example", 0, 2), "ord-2"))
	rd, err := NewReader(ReaderConfig{Conn: Conn{Brokers: brokers}, Topic: dltTopic})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 30*time.Second)
	ranges, err := rd.Ranges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Written after reading began: not read.
	writeDeadLetters(t, brokers, dltTopic, transient(order("ord-3", "c@acme.example", 0, 3), "ord-3"))
	var ids []string
	if err := rd.Each(ctx, func(r Record) error {
		if r.Err != nil {
			t.Errorf("record %s: %v", r.Pos(), r.Err)
		}
		ids = append(ids, r.DeadLetter.OrderID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, rg := range ranges {
		n += rg.Len()
	}
	if len(ids) != 2 || n != 2 {
		t.Errorf("read %v from ranges %+v, want the 2 dead letters there were at start", ids, ranges)
	}
	if rem := rd.Remaining(); len(rem) != 0 {
		t.Errorf("remaining after a full read: %v", rem)
	}
}

func TestReaderGivesUpOnAnUnreachableBroker(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, dltTopic))
	if err != nil {
		t.Fatal(err)
	}
	brokers := c.ListenAddrs()
	writeDeadLetters(t, brokers, dltTopic, transient(order("ord-1", "a@acme.example", 0, 1), "ord-1"))
	rd, err := NewReader(ReaderConfig{Conn: Conn{Brokers: brokers}, Topic: dltTopic, IdleTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 30*time.Second)
	if _, err := rd.Ranges(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()
	err = rd.Each(ctx, func(Record) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "no record for 500ms at offset 0, before the end offset 1") {
		t.Fatalf("err = %v, want the reader to give up naming the offsets", err)
	}
	if rem := rd.Remaining(); len(rem) != 1 || rem[0] != 0 {
		t.Errorf("remaining = %v, want 0:0", rem)
	}
}

func TestParseOffsetsAndSince(t *testing.T) {
	offs, err := ParseOffsets(" 2:15, 0:0 ")
	if err != nil || len(offs) != 2 || offs[2] != 15 || offs[0] != 0 || FormatOffsets(offs) != "0:0,2:15" {
		t.Errorf("ParseOffsets = %v, %v", offs, err)
	}
	for _, bad := range []string{"", "1", "a:1", "1:-3", "0:1,0:2", "-1:0"} {
		if _, err := ParseOffsets(bad); err == nil {
			t.Errorf("ParseOffsets(%q) accepted", bad)
		}
	}
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	if got, err := ParseSince("2026-05-04T09:00:00+02:00", now); err != nil || !got.Equal(time.Date(2026, 5, 4, 7, 0, 0, 0, time.UTC)) {
		t.Errorf("ParseSince(RFC 3339) = %v, %v", got, err)
	}
	if got, err := ParseSince("36h", now); err != nil || !got.Equal(now.Add(-36*time.Hour)) {
		t.Errorf("ParseSince(36h) = %v, %v", got, err)
	}
	for _, bad := range []string{"yesterday", "-2h", "2026-05-04"} {
		if _, err := ParseSince(bad, now); err == nil {
			t.Errorf("ParseSince(%q) accepted", bad)
		}
	}
}

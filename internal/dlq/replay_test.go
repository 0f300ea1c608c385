package dlq

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/time/rate"

	"github.com/acme-sp/wholesale-provisioner/internal/pipeline"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// order returns the original record of an order as billing would send it.
func order(id, email string, partition int, offset int64, extra ...kafka.Header) kafka.Message {
	v := fmt.Sprintf(`{"schemaVersion":1,"orderId":%q,"action":"provision","email":%q,"provisioningParameters":{"primaryPhoneNumber":"+12405551212"}}`, id, email)
	return kafka.Message{
		Topic: ordersTopic, Partition: partition, Offset: offset, Time: time.Date(2026, 5, 4, 9, 15, 27, 0, time.UTC),
		Key:   []byte("Y2lzY29zcGFyazovL3VzL0NVU1RPTUVSL2Y1/" + email),
		Value: []byte(v),
		Headers: append([]kafka.Header{
			{Key: "content-type", Value: []byte("application/json")},
			{Key: "trace-bin", Value: []byte{0x00, 0xff, 0x10, 0x20}},
			{Key: "empty", Value: []byte{}},
			{Key: "no-value", Value: nil},
		}, extra...),
	}
}

func transient(orig kafka.Message, id string) failure {
	return failure{orig: orig, reason: string(schemas.ReasonRetriesExhausted), class: schemas.ErrorClassTransient, orderID: id,
		message: "precheck: 503 Service Unavailable after 4 attempts"}
}

func replayConfig(brokers []string) ReplayConfig {
	return ReplayConfig{Reader: ReaderConfig{Conn: Conn{Brokers: brokers}, Topic: dltTopic}, Rate: rate.Inf}
}

// wantReplayed is the record replay must publish for orig: its key, value and
// headers byte for byte (an earlier replay-count or replayed-from removed),
// then replay-count and replayed-from.
func wantReplayed(orig kafka.Message, count int, from string) kafka.Message {
	w := kafka.Message{Key: orig.Key, Value: orig.Value}
	for _, h := range orig.Headers {
		if h.Key != pipeline.HeaderReplayCount && h.Key != HeaderReplayedFrom {
			w.Headers = append(w.Headers, h)
		}
	}
	w.Headers = append(w.Headers,
		kafka.Header{Key: pipeline.HeaderReplayCount, Value: []byte(fmt.Sprint(count))},
		kafka.Header{Key: HeaderReplayedFrom, Value: []byte(from)})
	return w
}

func sameRecord(got, want kafka.Message) error {
	if !bytes.Equal(got.Key, want.Key) || (got.Key == nil) != (want.Key == nil) {
		return fmt.Errorf("key %q, want %q", got.Key, want.Key)
	}
	if !bytes.Equal(got.Value, want.Value) {
		return fmt.Errorf("value %q, want %q", got.Value, want.Value)
	}
	if len(got.Headers) != len(want.Headers) {
		return fmt.Errorf("headers %q, want %q", got.Headers, want.Headers)
	}
	for i := range got.Headers {
		// kafka-go reads an empty header value and a null one both as nil,
		// so bytes.Equal (which equates them) is as exact as a read can tell.
		g, w := got.Headers[i], want.Headers[i]
		if g.Key != w.Key || !bytes.Equal(g.Value, w.Value) {
			return fmt.Errorf("header %d is %s=%q, want %s=%q", i, got.Headers[i].Key, got.Headers[i].Value, want.Headers[i].Key, want.Headers[i].Value)
		}
	}
	return nil
}

func TestReplayRepublishesOriginalBytes(t *testing.T) {
	brokers := newCluster(t)
	plain := order("ord-1", "ann@acme.example", 2, 41)
	binary := kafka.Message{Topic: ordersTopic, Partition: 1, Offset: 7, Key: []byte{0x80, 0x81, 0x00}, Value: []byte{0xff, 0xfe, '{', 0x00},
		Headers: []kafka.Header{{Key: "trace-bin", Value: []byte{0xc3, 0x28}}}}
	again := order("ord-3", "bob@acme.example", 0, 3,
		kafka.Header{Key: pipeline.HeaderReplayCount, Value: []byte("2")},
		kafka.Header{Key: HeaderReplayedFrom, Value: []byte(dltTopic + "/0/0")},
		kafka.Header{Key: "after", Value: []byte("kept in place")})
	unkeyed := order("ord-4", "cy@acme.example", 1, 9)
	unkeyed.Key = nil
	writeDeadLetters(t, brokers, dltTopic,
		transient(plain, "ord-1"),
		failure{orig: binary, reason: schemas.ReasonInvalidEncoding, class: schemas.ErrorClassInvalidInput, message: "not UTF-8"},
		transient(again, "ord-3"),
		transient(unkeyed, "ord-4"),
	)
	dead := readAll(t, brokers, dltTopic)
	if len(dead) != 4 {
		t.Fatalf("dead-letter topic holds %d records, want 4", len(dead))
	}
	want := map[string]kafka.Message{} // by replayed-from
	origs := map[string]kafka.Message{}
	for _, m := range dead {
		d, err := decode(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		pos := fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset)
		for _, o := range []kafka.Message{plain, binary, again, unkeyed} {
			if o.Offset == d.Source.Offset && o.Partition == d.Source.Partition {
				count := pipeline.ReplayCount(o) + 1
				want[pos] = wantReplayed(o, count, pos)
				origs[pos] = o
			}
		}
	}

	rep, err := Replay(testCtx(t, 30*time.Second), replayConfig(brokers))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Read != 4 || rep.Matched != 4 || rep.Replayed != 4 || rep.RefusedTotal() != 0 || rep.Skipped != 0 || rep.Topics[ordersTopic] != 4 {
		t.Errorf("report = %+v", rep)
	}
	got := readAll(t, brokers, ordersTopic)
	if len(got) != 4 {
		t.Fatalf("orders topic holds %d records, want 4", len(got))
	}
	for _, m := range got {
		from, _ := headerValue(m, HeaderReplayedFrom)
		w, ok := want[from]
		if !ok {
			t.Errorf("replayed record with replayed-from %q, want one of the dead letters", from)
			continue
		}
		delete(want, from)
		if err := sameRecord(m, w); err != nil {
			t.Errorf("record replayed from %s: %v", from, err)
		}
		// Keyed records land where the orders' producers put that key.
		if m.Key != nil {
			if p := (kafka.Murmur2Balancer{Consistent: true}).Balance(m, 0, 1, 2); m.Partition != p {
				t.Errorf("record replayed from %s is on partition %d, murmur2 of its key says %d", from, m.Partition, p)
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("not replayed: %v", want)
	}
	// The replay-count continues from the original's.
	for _, m := range got {
		if bytes.Equal(m.Value, again.Value) {
			if c, _ := headerValue(m, pipeline.HeaderReplayCount); c != "3" {
				t.Errorf("replay-count of a record replayed twice before = %q, want 3", c)
			}
		}
	}
}

func TestReplayRefusesWhatCannotOrMustNotBeReplayed(t *testing.T) {
	brokers := newCluster(t)
	tomb := order("ord-t", "t@acme.example", 0, 1)
	tomb.Value = nil
	empty := order("ord-e", "e@acme.example", 0, 2)
	empty.Value = []byte{}
	tooOften := order("ord-x", "x@acme.example", 0, 3, kafka.Header{Key: pipeline.HeaderReplayCount, Value: []byte("3")})
	onceMore := order("ord-y", "y@acme.example", 0, 4, kafka.Header{Key: pipeline.HeaderReplayCount, Value: []byte("2")})
	loop := order("ord-l", "l@acme.example", 0, 5)
	loop.Topic = dltTopic
	writeDeadLetters(t, brokers, dltTopic,
		failure{orig: tomb, reason: schemas.ReasonTombstone, class: schemas.ErrorClassInvalidInput, message: "record has no value"},
		failure{orig: empty, reason: schemas.ReasonEmptyValue, class: schemas.ErrorClassInvalidInput, message: "record value is empty"},
		transient(tooOften, "ord-x"),
		transient(onceMore, "ord-y"),
		transient(loop, "ord-l"),
	)
	writeRaw(t, brokers, dltTopic, kafka.Message{Key: []byte("junk"), Value: []byte("not json")},
		kafka.Message{Key: []byte("junk"), Value: []byte(`{"schemaVersion":2}`)})

	var out bytes.Buffer
	cfg := replayConfig(brokers)
	cfg.Out = &out
	rep, err := Replay(testCtx(t, 30*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	wantRefused := map[string]int{RefusedTombstone: 1, RefusedEmptyValue: 1, RefusedMaxReplays: 1, RefusedLoop: 1}
	if rep.Read != 7 || rep.Matched != 5 || rep.Replayed != 1 || rep.Skipped != 2 || fmt.Sprint(rep.Refused) != fmt.Sprint(wantRefused) {
		t.Errorf("report = %+v, want 7 read, 5 matched, 1 replayed, 2 skipped, refused %v", rep, wantRefused)
	}
	for _, want := range []string{
		"(order ord-x, retries_exhausted, transient): replayed 3 times already, and --max-replays is 3",
		"(no order id, tombstone, invalid_input): the original record was a tombstone (null value)",
		"the original value is empty (0 bytes)",
		"its source topic is the dead-letter topic " + dltTopic + " itself",
		": not a dead letter: the value is not a dead-letter document",
		": not a dead letter: the value has schemaVersion 2",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	got := readAll(t, brokers, ordersTopic)
	if len(got) != 1 || !bytes.Equal(got[0].Value, onceMore.Value) {
		t.Fatalf("orders topic holds %d records, want only ord-y's", len(got))
	}
	if c, _ := headerValue(got[0], pipeline.HeaderReplayCount); c != "3" {
		t.Errorf("replay-count = %q, want 3", c)
	}

	// A higher limit lets the refused one through, once.
	cfg.MaxReplays = 4
	cfg.Filter = Filter{OrderIDs: []string{"ord-x"}}
	rep, err = Replay(testCtx(t, 30*time.Second), cfg)
	if err != nil || rep.Replayed != 1 || rep.RefusedTotal() != 0 {
		t.Errorf("with --max-replays 4: report %+v, err %v; want ord-x replayed", rep, err)
	}
	var summary bytes.Buffer
	rep.WriteSummary(&summary)
	if want := "read 7, matched 1, replayed 1, refused 0, skipped 2 (not dead letters)"; !strings.Contains(summary.String(), want) {
		t.Errorf("summary %q lacks %q", summary.String(), want)
	}
}

func TestReplayFilters(t *testing.T) {
	brokers := newCluster(t)
	var fs []failure
	for i, c := range []struct{ reason, class string }{
		{"retries_exhausted", schemas.ErrorClassTransient},
		{"retries_exhausted", schemas.ErrorClassTransient},
		{"precheck_rejected", schemas.ErrorClassPermanent},
		{"schema_violation", schemas.ErrorClassInvalidInput},
		{"api_rejected", schemas.ErrorClassPermanent},
	} {
		id := fmt.Sprintf("ord-%d", i)
		fs = append(fs, failure{orig: order(id, id+"@acme.example", 0, int64(i)), reason: c.reason, class: c.class, orderID: id, message: "failed"})
	}
	writeDeadLetters(t, brokers, dltTopic, fs...)
	for _, tc := range []struct {
		name   string
		filter Filter
		want   []string
	}{
		{"all", Filter{}, []string{"ord-0", "ord-1", "ord-2", "ord-3", "ord-4"}},
		{"reason", Filter{Reasons: []string{"retries_exhausted", "api_rejected"}}, []string{"ord-0", "ord-1", "ord-4"}},
		{"error class", Filter{ErrorClasses: []string{schemas.ErrorClassPermanent}}, []string{"ord-2", "ord-4"}},
		{"order id", Filter{OrderIDs: []string{"ord-3"}}, []string{"ord-3"}},
		{"reason and class", Filter{Reasons: []string{"retries_exhausted"}, ErrorClasses: []string{schemas.ErrorClassPermanent}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			cfg := replayConfig(brokers)
			cfg.Filter, cfg.DryRun, cfg.Out = tc.filter, true, &out
			rep, err := Replay(testCtx(t, 30*time.Second), cfg)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				if _, rest, ok := strings.Cut(line, "order "); ok {
					got = append(got, strings.Split(rest, ",")[0])
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) || rep.Matched != len(tc.want) || rep.Read != 5 {
				t.Errorf("would replay %v (matched %d of %d read), want %v", got, rep.Matched, rep.Read, tc.want)
			}
		})
	}
	if _, err := Replay(testCtx(t, 10*time.Second), ReplayConfig{Reader: replayConfig(brokers).Reader,
		Filter: Filter{ErrorClasses: []string{"fatal"}}}); err == nil || !strings.Contains(err.Error(), `error class "fatal" is not one of`) {
		t.Errorf("unknown error class: err = %v", err)
	}
}

func TestReplayDryRunPublishesNothing(t *testing.T) {
	brokers := newCluster(t)
	writeDeadLetters(t, brokers, dltTopic,
		transient(order("ord-1", "ann.smith@acme.example", 0, 1), "ord-1"),
		transient(order("ord-2", "bob@acme.example", 0, 2), "ord-2"))
	var out, progress bytes.Buffer
	cfg := replayConfig(brokers)
	cfg.DryRun, cfg.Out, cfg.Progress = true, &out, &progress
	rep, err := Replay(testCtx(t, 30*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Replayed != 2 || !rep.DryRun {
		t.Errorf("report = %+v, want 2 that would be replayed", rep)
	}
	if n := total(endOffsets(t, brokers, ordersTopic)); n != 0 {
		t.Errorf("a dry run published %d records", n)
	}
	if !strings.Contains(out.String(), "would replay "+dltTopic+"/") || !strings.Contains(out.String(), `a***@acme.example", `) ||
		!strings.Contains(out.String(), "replay-count 1") {
		t.Errorf("dry-run output does not show the records with masked keys:\n%s", out.String())
	}
	if strings.Contains(out.String(), "ann.smith") || strings.Contains(out.String(), "bob@") {
		t.Errorf("dry-run output shows an email:\n%s", out.String())
	}
	var summary bytes.Buffer
	rep.WriteSummary(&summary)
	if want := "dry run of " + dltTopic + " from the start (all dead letters): read 2, matched 2, would replay 2, would refuse 0"; !strings.Contains(summary.String(), want) {
		t.Errorf("summary %q lacks %q", summary.String(), want)
	}
}

func TestReplayFromTimeOrOffsets(t *testing.T) {
	brokers := newCluster(t)
	day := func(d int) time.Time { return time.Date(2026, 5, d, 12, 0, 0, 0, time.UTC) }
	var fs []failure
	for i := 1; i <= 6; i++ {
		id := fmt.Sprintf("ord-%d", i)
		f := transient(order(id, id+"@acme.example", 0, int64(i)), id)
		f.at = day(i)
		fs = append(fs, f)
	}
	writeDeadLetters(t, brokers, dltTopic, fs...)
	dead := readAll(t, brokers, dltTopic)
	pos := map[string]kafka.Message{}
	for _, m := range dead {
		d, _ := decode(m.Value)
		pos[d.OrderID] = m
	}

	replayed := func(t *testing.T, from Position) []string {
		t.Helper()
		var out bytes.Buffer
		cfg := replayConfig(brokers)
		cfg.Reader.From, cfg.DryRun, cfg.Out = from, true, &out
		if _, err := Replay(testCtx(t, 30*time.Second), cfg); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if _, rest, ok := strings.Cut(line, "order "); ok {
				ids = append(ids, strings.Split(rest, ",")[0])
			}
		}
		slices.Sort(ids)
		return ids
	}
	if got := replayed(t, Position{Since: day(4)}); !slices.Equal(got, []string{"ord-4", "ord-5", "ord-6"}) {
		t.Errorf("since day 4: %v", got)
	}
	if got := replayed(t, Position{Since: day(7)}); len(got) != 0 {
		t.Errorf("since a time after every record: %v", got)
	}
	// From ord-5's offset in its partition: ord-5 and what follows it there.
	p5 := pos["ord-5"]
	var want []string
	for id, m := range pos {
		if m.Partition == p5.Partition && m.Offset >= p5.Offset {
			want = append(want, id)
		}
	}
	slices.Sort(want)
	if got := replayed(t, Position{Offsets: map[int]int64{p5.Partition: p5.Offset}}); !slices.Equal(got, want) {
		t.Errorf("offsets %d:%d: %v, want %v", p5.Partition, p5.Offset, got, want)
	}
	cfg := replayConfig(brokers)
	cfg.Reader.From = Position{Offsets: map[int]int64{7: 0}}
	if _, err := Replay(testCtx(t, 10*time.Second), cfg); err == nil || !strings.Contains(err.Error(), "partition 7, but topic "+dltTopic+" has partitions 0 to 1") {
		t.Errorf("unknown partition: err = %v", err)
	}
}

func TestReplayStopsOnMissingTopicWithResumeOffsets(t *testing.T) {
	brokers := newCluster(t)
	writeDeadLetters(t, brokers, dltTopic,
		transient(order("ord-1", "a@acme.example", 0, 1), "ord-1"),
		transient(order("ord-2", "b@acme.example", 0, 2), "ord-2"))
	cfg := replayConfig(brokers)
	cfg.OrdersTopic = "no-such-topic"
	rep, err := Replay(testCtx(t, 30*time.Second), cfg)
	if err == nil || !strings.Contains(err.Error(), "cannot replay to no-such-topic: topic no-such-topic does not exist") {
		t.Fatalf("err = %v, want the missing topic named", err)
	}
	if rep.Replayed != 0 || rep.Resume == "" {
		t.Errorf("report = %+v, want nothing replayed and resume offsets", rep)
	}
	offs, perr := ParseOffsets(rep.Resume)
	if perr != nil {
		t.Fatalf("resume %q: %v", rep.Resume, perr)
	}
	var sum int64
	for _, o := range offs {
		sum += o
	}
	if sum != 0 {
		t.Errorf("resume %q, want every partition from its first dead letter", rep.Resume)
	}

	// To an existing topic, given explicitly.
	cfg.OrdersTopic = "orders-v2"
	c := Conn{Brokers: brokers}
	createTopic(t, c, cfg.OrdersTopic)
	rep, err = Replay(testCtx(t, 30*time.Second), cfg)
	if err != nil || rep.Replayed != 2 || rep.Topics["orders-v2"] != 2 || rep.Resume != "" {
		t.Fatalf("report %+v, err %v", rep, err)
	}
	if n := len(readAll(t, brokers, "orders-v2")); n != 2 {
		t.Errorf("orders-v2 holds %d records, want 2", n)
	}
}

func createTopic(t *testing.T, c Conn, name string) {
	t.Helper()
	res, err := c.client().CreateTopics(testCtx(t, 10*time.Second), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: name, NumPartitions: 1, ReplicationFactor: 1}}})
	if err == nil {
		err = res.Errors[name]
	}
	if err != nil {
		t.Fatalf("creating topic %s: %v", name, err)
	}
}

func TestReplayIsRateLimited(t *testing.T) {
	brokers := newCluster(t)
	var fs []failure
	for i := 0; i < 6; i++ {
		id := fmt.Sprintf("ord-%d", i)
		fs = append(fs, transient(order(id, id+"@acme.example", 0, int64(i)), id))
	}
	writeDeadLetters(t, brokers, dltTopic, fs...)
	var progress bytes.Buffer
	cfg := replayConfig(brokers)
	cfg.Rate, cfg.Progress, cfg.ProgressInterval = 20, &progress, 40*time.Millisecond
	start := time.Now()
	rep, err := Replay(testCtx(t, 30*time.Second), cfg)
	if err != nil || rep.Replayed != 6 {
		t.Fatalf("report %+v, err %v", rep, err)
	}
	// A burst of one, then one every 50ms.
	if took := time.Since(start); took < 230*time.Millisecond {
		t.Errorf("6 records at 20/s took %s, want at least 250ms", took)
	}
	if !strings.Contains(progress.String(), "replay: ") || !strings.Contains(progress.String(), "/6 read, ") {
		t.Errorf("no progress lines off a terminal:\n%s", progress.String())
	}
}

func TestReplayChecksItsConfiguration(t *testing.T) {
	for _, tc := range []struct {
		cfg  ReplayConfig
		want string
	}{
		{ReplayConfig{Reader: ReaderConfig{Topic: dltTopic}}, "no Kafka brokers"},
		{ReplayConfig{Reader: ReaderConfig{Conn: Conn{Brokers: []string{"x:1"}}}}, "no dead-letter topic"},
		{ReplayConfig{Reader: ReaderConfig{Conn: Conn{Brokers: []string{"x:1"}}, Topic: dltTopic}, OrdersTopic: dltTopic}, "are both"},
		{ReplayConfig{Reader: ReaderConfig{Conn: Conn{Brokers: []string{"x:1"}}, Topic: dltTopic, From: Position{Since: time.Now(), Offsets: map[int]int64{0: 1}}}}, "not both"},
		{ReplayConfig{Reader: ReaderConfig{Conn: Conn{Brokers: []string{"x:1"}}, Topic: dltTopic}, Rate: -1}, "replay rate"},
	} {
		_, err := Replay(testCtx(t, 5*time.Second), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Replay(%+v) = %v, want an error saying %q", tc.cfg, err, tc.want)
		}
	}
}

package dlq

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/time/rate"

	"github.com/acme-sp/wholesale-provisioner/internal/kafkatest"
	"github.com/acme-sp/wholesale-provisioner/internal/pipeline"
)

// TestReplayRealKafka inspects and replays dead letters on a real broker:
// from a time, refusing one replayed too often, with the records arriving in
// the orders topic byte for byte on the partition of their key.
func TestReplayRealKafka(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	dlt, orders := kafkatest.Name(t, "dlt"), kafkatest.Name(t, "orders")
	kafkatest.CreateTopic(t, brokers, dlt, 2)
	kafkatest.CreateTopic(t, brokers, orders, 3)

	now := time.Now().Truncate(time.Millisecond)
	var fs []failure
	origs := map[string]kafka.Message{}
	for i := 0; i < 6; i++ {
		id := fmt.Sprintf("ord-%d", i)
		o := order(id, id+".someone@acme.example", i%3, int64(100+i))
		o.Topic = orders
		if i == 5 {
			o.Headers = append(o.Headers, kafka.Header{Key: pipeline.HeaderReplayCount, Value: []byte("3")})
		}
		origs[id] = o
		f := transient(o, id)
		f.at = now.Add(time.Duration(i-6) * time.Hour) // ord-0 6h ago ... ord-5 1h ago
		fs = append(fs, f)
	}
	writeDeadLetters(t, brokers, dlt, fs...)
	reader := ReaderConfig{Conn: Conn{Brokers: brokers}, Topic: dlt}

	rep, err := Inspect(testCtx(t, 60*time.Second), InspectConfig{Reader: reader})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Read != 6 || len(rep.Groups) != 1 || rep.Groups[0].Count != 6 {
		t.Fatalf("inspect: %+v", rep)
	}

	var out bytes.Buffer
	cfg := ReplayConfig{Reader: reader, Rate: rate.Inf, DryRun: true, Out: &out}
	cfg.Reader.From.Since = now.Add(-3*time.Hour - time.Minute) // ord-3, ord-4, ord-5
	rrep, err := Replay(testCtx(t, 60*time.Second), cfg)
	if err != nil || rrep.Read != 3 || rrep.Replayed != 2 || rrep.Refused[RefusedMaxReplays] != 1 {
		t.Fatalf("dry run: %+v, %v\n%s", rrep, err, out.String())
	}
	if n := total(endOffsets(t, brokers, orders)); n != 0 {
		t.Fatalf("dry run published %d records", n)
	}

	cfg.DryRun = false
	rrep, err = Replay(testCtx(t, 60*time.Second), cfg)
	if err != nil || rrep.Replayed != 2 || rrep.Topics[orders] != 2 {
		t.Fatalf("replay: %+v, %v", rrep, err)
	}
	got := readAll(t, brokers, orders)
	if len(got) != 2 {
		t.Fatalf("orders topic holds %d records, want 2", len(got))
	}
	for _, m := range got {
		from, _ := headerValue(m, HeaderReplayedFrom)
		var id string
		for k, o := range origs {
			if bytes.Equal(o.Value, m.Value) {
				id = k
			}
		}
		if id != "ord-3" && id != "ord-4" {
			t.Errorf("replayed %q (from %s), want ord-3 and ord-4 only", m.Value, from)
			continue
		}
		if !strings.HasPrefix(from, dlt+"/") {
			t.Errorf("replayed-from %q does not name the dead-letter topic", from)
		}
		if err := sameRecord(m, wantReplayed(origs[id], 1, from)); err != nil {
			t.Errorf("%s: %v", id, err)
		}
		if p := (kafka.Murmur2Balancer{Consistent: true}).Balance(m, 0, 1, 2); m.Partition != p {
			t.Errorf("%s replayed to partition %d, murmur2 of its key says %d", id, m.Partition, p)
		}
	}
}

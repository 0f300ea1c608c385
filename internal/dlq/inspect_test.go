package dlq

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/pipeline"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

func TestInspectGroupsByReasonWithMaskedExamples(t *testing.T) {
	brokers := newCluster(t)
	at := func(h int) time.Time { return time.Date(2026, 5, 4, h, 0, 0, 0, time.UTC) }
	var fs []failure
	for i := 0; i < 4; i++ {
		id := fmt.Sprintf("ord-%d", i)
		email := fmt.Sprintf("john.andersen%d@example.com", i)
		f := transient(order(id, email, 0, int64(i)), id)
		f.message = fmt.Sprintf("precheck of %s (+1240555121%d): 503 Service Unavailable after 4 attempts", email, i)
		f.at = at(10 - i) // read in an order other than time's
		fs = append(fs, f)
	}
	replayed := order("ord-r", "r@example.com", 0, 9, kafka.Header{Key: pipeline.HeaderReplayCount, Value: []byte("2")})
	fs = append(fs,
		failure{orig: replayed, reason: "precheck_rejected", class: schemas.ErrorClassPermanent, orderID: "ord-r",
			message: "precheck rejected r@example.com: 400 errorCode 10012", at: at(8)},
		failure{orig: order("jane.doe@example.com", "x@example.com", 1, 1), reason: schemas.ReasonSchemaViolation, class: schemas.ErrorClassInvalidInput,
			orderID: "jane.doe@example.com", message: `/email: "j***@example.com" is not a valid email`, at: at(7)},
	)
	writeDeadLetters(t, brokers, dltTopic, fs...)
	writeRaw(t, brokers, dltTopic, kafka.Message{Value: []byte("call +44 20 7946 0958 about it")})

	cfg := InspectConfig{Reader: ReaderConfig{Conn: Conn{Brokers: brokers}, Topic: dltTopic}, Examples: 2}
	rep, err := Inspect(testCtx(t, 30*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Read != 7 || rep.Matched != 6 || rep.Skipped != 1 || len(rep.Groups) != 3 {
		t.Fatalf("report: read %d, matched %d, skipped %d, %d groups; want 7, 6, 1, 3", rep.Read, rep.Matched, rep.Skipped, len(rep.Groups))
	}
	g := rep.Groups[0]
	if g.Reason != "retries_exhausted" || g.ErrorClass != schemas.ErrorClassTransient || g.Count != 4 || len(g.Examples) != 2 ||
		!g.FirstSeen.Equal(at(7)) || !g.LastSeen.Equal(at(10)) {
		t.Errorf("first group = %+v, want retries_exhausted/transient ×4 from 07:00 to 10:00 with 2 examples", g)
	}
	if e := g.Examples[0]; e.OrderID == "" || !strings.HasPrefix(e.Source, ordersTopic+"/0/") || !strings.HasPrefix(e.DeadLetter, dltTopic+"/") ||
		e.Step != schemas.StepPrecheck || e.Attempts != 4 {
		t.Errorf("example = %+v", e)
	}
	for _, g := range rep.Groups {
		if g.Reason == "precheck_rejected" && g.Examples[0].ReplayCount != 2 {
			t.Errorf("replay count of the example = %d, want 2", g.Examples[0].ReplayCount)
		}
	}

	var text, js bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{text.String(), js.String()} {
		for _, secret := range []string{"john.andersen", "jane.doe", "r@example.com", "5551210", "7946"} {
			if strings.Contains(out, secret) {
				t.Errorf("output shows %q unmasked:\n%s", secret, out)
			}
		}
		for _, masked := range []string{"j***@example.com", "r***@example.com", "***10"} {
			if !strings.Contains(out, masked) {
				t.Errorf("output lacks the masked %q:\n%s", masked, out)
			}
		}
	}
	for _, want := range []string{
		"read 7, matched 6, skipped 1 (not dead letters)",
		"retries_exhausted  transient      4      2026-05-04T07:00:00Z  2026-05-04T10:00:00Z",
		"retries_exhausted (transient): 4\n",
		"  ... and 2 more\n",
		"after 4 attempt(s), replayed 2 times before",
		"not dead letters (1):\n  " + dltTopic + "/",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	var back InspectReport
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, js.String())
	}
	if back.Read != 7 || len(back.Groups) != 3 || back.Groups[0].Count != 4 || len(back.Partitions) != 2 {
		t.Errorf("JSON report = %+v", back)
	}

	// Filters apply to inspect as well.
	cfg.Filter = Filter{ErrorClasses: []string{schemas.ErrorClassPermanent, schemas.ErrorClassInvalidInput}}
	cfg.Examples = -1
	rep, err = Inspect(testCtx(t, 30*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Matched != 2 || len(rep.Groups) != 2 || len(rep.Groups[0].Examples) != 0 {
		t.Errorf("filtered report = %+v, want 2 groups of 1 without examples", rep)
	}
}

func TestInspectEmptyTopic(t *testing.T) {
	brokers := newCluster(t)
	rep, err := Inspect(testCtx(t, 10*time.Second), InspectConfig{Reader: ReaderConfig{Conn: Conn{Brokers: brokers}, Topic: dltTopic}})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if want := "read 0, matched 0, skipped 0"; !strings.Contains(text.String(), want) {
		t.Errorf("report lacks %q:\n%s", want, text.String())
	}
	if _, err := Inspect(testCtx(t, 10*time.Second), InspectConfig{Reader: ReaderConfig{Conn: Conn{Brokers: brokers}, Topic: "nope"}}); err == nil ||
		!strings.Contains(err.Error(), "topic nope does not exist") {
		t.Errorf("missing topic: err = %v", err)
	}
}

package pipeline

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// fuzzMaxRecordBytes is the size limit of the fuzzed pipeline: small, so that
// the fuzzer reaches it, and above every corpus record but the oversized one.
const fuzzMaxRecordBytes = 1024

// FuzzHandle hands arbitrary keys and values (nil when tombstone is set) to
// Pipeline.Handle with a provisioner that succeeds, and checks that every
// record is answered: Handle returns nil in good time (bad input is answered,
// not retried), at least one record is published (nothing silently dropped),
// no answer comes from a recovered panic, every published record follows its
// schema, a dead letter keeps the original key and value, and the answer is
// the one DecodeOrder's verdict calls for. Its seeds are the bad-record corpus
// and the valid examples, so `go test` runs them as regular tests.
func FuzzHandle(f *testing.F) {
	for _, e := range loadCorpus(f) {
		for _, pre := range e.PrecededBy {
			f.Add([]byte("corpus-key"), readCorpusFile(f, pre), false)
		}
		f.Add([]byte("corpus-key"), e.value(f), e.Tombstone)
	}
	examples, err := filepath.Glob("../../schemas/examples/subscriber-order*.json")
	if err != nil || len(examples) == 0 {
		f.Fatalf("finding the order examples: %v", err)
	}
	for _, name := range examples {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(nil), data, false)
		f.Add([]byte("c-1/kim.larsen@example.com"), data, false)
	}
	f.Add([]byte{0xff, 0x00}, []byte(`{"schemaVersion":1,"orderId":"ord-rm-1","action":"remove"}`), false)

	f.Fuzz(func(t *testing.T, key, value []byte, tombstone bool) {
		if tombstone {
			value = nil
		}
		r := newRecorder(t)
		prov := &countingProvisioner{}
		p := New(Config{ConsumerGroup: "fuzz", MaxRecordBytes: fuzzMaxRecordBytes}, prov, r)
		msg := kafka.Message{Topic: "orders", Partition: 1, Offset: 9, Key: key, Value: value, Time: time.Unix(1700000000, 0)}

		start := time.Now()
		if err := p.Handle(context.Background(), msg, nil); err != nil {
			t.Fatalf("Handle returned %v; every record must be answered and finished", err)
		}
		if took := time.Since(start); took > stallBudget {
			t.Errorf("Handle took %v on a %d-byte value: a record must not stall the consumer", took, len(value))
		}
		if r.count() == 0 {
			t.Fatal("Handle published nothing: the record was dropped silently")
		}
		outs, dls := outcomes(t, r), deadLetters(t, r)
		if len(outs) > 1 || len(dls) > 1 || len(outs)+len(dls) != r.count() {
			t.Fatalf("published %d records: %d outcomes, %d dead letters; want at most one of each", r.count(), len(outs), len(dls))
		}

		// What the answer should be, from the size limit and DecodeOrder.
		wantReason, wantOrderID := "", ""
		var ie *schemas.InvalidOrderError
		o, err := schemas.DecodeOrder(value)
		switch {
		case len(value) > fuzzMaxRecordBytes:
			wantReason = schemas.ReasonRecordTooLarge
		case errors.As(err, &ie):
			wantReason, wantOrderID = ie.Reason, ie.OrderID
		case err != nil:
			t.Fatalf("DecodeOrder returned %T %v, not an *InvalidOrderError", err, err)
		}

		if wantReason == "" {
			if len(dls) != 0 || len(outs) != 1 || outs[0].Status != schemas.StatusProvisioned || outs[0].OrderID != o.OrderID {
				t.Fatalf("a valid order got dead letters %+v, outcomes %+v; want it provisioned", dls, outs)
			}
			if prov.calls() != 1 {
				t.Errorf("workflow calls = %d, want 1", prov.calls())
			}
			return
		}
		if len(dls) != 1 {
			t.Fatalf("dead letters = %d, want one with reason %s", len(dls), wantReason)
		}
		d := dls[0]
		if d.Reason == schemas.ReasonHandlerPanic {
			t.Fatalf("the handler panicked: %s", d.Message)
		}
		if d.Reason != wantReason || d.OrderID != wantOrderID {
			t.Errorf("dead letter reason %q, order id %q; want %q, %q (message %q)", d.Reason, d.OrderID, wantReason, wantOrderID, d.Message)
		}
		if prov.calls() != 0 {
			t.Errorf("a dead-lettered record reached the workflow")
		}
		if raw, err := d.Source.Value.Raw(); err != nil || !bytes.Equal(raw, value) || (raw == nil) != (value == nil) {
			t.Errorf("dead letter does not keep the original value: %q (%v)", raw, err)
		}
		if raw, err := d.Source.Key.Raw(); err != nil || !bytes.Equal(raw, key) {
			t.Errorf("dead letter does not keep the original key: %q (%v)", raw, err)
		}
		if wantOrderID == "" {
			if len(outs) != 0 {
				t.Errorf("outcomes %+v for a record with no readable order id", outs)
			}
		} else if len(outs) != 1 || outs[0].Status != schemas.StatusFailed || outs[0].OrderID != wantOrderID ||
			outs[0].Failure == nil || outs[0].Failure.Reason != schemas.ReasonInvalidOrder {
			t.Errorf("outcomes = %+v; want one failed outcome, reason invalid_order, for order %q", outs, wantOrderID)
		}
	})
}

package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/strictjson"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// corpusDir holds the bad-record corpus: one file per record, with the bytes
// as they would be on the wire, and manifest.json saying what each must get.
const corpusDir = "../../testdata/bad-orders"

// corpusReasons are the dead-letter reasons a corpus entry may expect.
var corpusReasons = []string{
	schemas.ReasonTombstone, schemas.ReasonEmptyValue, schemas.ReasonInvalidEncoding, schemas.ReasonInvalidJSON,
	schemas.ReasonUnsupportedSchemaVersion, schemas.ReasonSchemaViolation, schemas.ReasonLimitExceeded, schemas.ReasonRecordTooLarge, schemas.ReasonDuplicateOrderID,
}

// stallBudget is how long one record may take before the test calls it a
// stalled consumer. Real records take milliseconds, even under -race.
const stallBudget = 5 * time.Second

// corpusEntry is one record of manifest.json.
type corpusEntry struct {
	Name        string `json:"name"`
	File        string `json:"file"`
	Description string `json:"description"`
	// Reason is the expected dead-letter reason.
	Reason string `json:"reason"`
	// DetailContains are substrings the dead letter's message must contain.
	DetailContains []string `json:"detailContains"`
	// DetailExcludes are substrings it must not contain.
	DetailExcludes []string `json:"detailExcludes"`
	// OrderIDReadable says whether the order id can be read; OrderID is it.
	OrderIDReadable bool   `json:"orderIdReadable"`
	OrderID         string `json:"orderId"`
	// Emails are the raw email addresses in the record; none may appear in
	// the dead letter's message.
	Emails []string `json:"emails"`
	// MaxRecordBytes, when set, is the size limit to configure.
	MaxRecordBytes int `json:"maxRecordBytes"`
	// Tombstone and EmptyValue mark the records with no bytes (File is "").
	Tombstone  bool `json:"tombstone"`
	EmptyValue bool `json:"emptyValue"`
	// PrecededBy are valid records to feed first through the same pipeline.
	PrecededBy []string `json:"precededBy"`
}

// value returns the record value: nil for a tombstone, empty (not nil) for
// an empty value, else the file's bytes.
func (e corpusEntry) value(tb testing.TB) []byte {
	tb.Helper()
	switch {
	case e.Tombstone:
		return nil
	case e.EmptyValue:
		return []byte{}
	}
	return readCorpusFile(tb, e.File)
}

func readCorpusFile(tb testing.TB, name string) []byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(corpusDir, name))
	if err != nil {
		tb.Fatalf("reading corpus file: %v", err)
	}
	return data
}

// loadCorpus reads the manifest, rejecting unknown fields so that a typo in
// it fails loudly instead of silently weakening a test.
func loadCorpus(tb testing.TB) []corpusEntry {
	tb.Helper()
	data := readCorpusFile(tb, "manifest.json")
	var m struct {
		Description string        `json:"description"`
		Records     []corpusEntry `json:"records"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		tb.Fatalf("decoding manifest.json: %v", err)
	}
	if len(m.Records) == 0 {
		tb.Fatal("manifest.json lists no records")
	}
	return m.Records
}

// emailLike finds email addresses in raw bytes, as redact.Text does.
var emailLike = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)

// TestCorpusManifest checks the manifest itself: every entry complete and
// consistent, every file listed, no file unlisted, and every email address in
// a record named in its entry (so that the masking check cannot miss one).
func TestCorpusManifest(t *testing.T) {
	entries := loadCorpus(t)
	listed := map[string]bool{"manifest.json": true}
	names := map[string]bool{}
	for _, e := range entries {
		if e.Name == "" || names[e.Name] {
			t.Errorf("entry %q: missing or duplicate name", e.Name)
		}
		names[e.Name] = true
		if e.Description == "" {
			t.Errorf("%s: no description", e.Name)
		}
		if !slices.Contains(corpusReasons, e.Reason) {
			t.Errorf("%s: reason %q is not one of %v", e.Name, e.Reason, corpusReasons)
		}
		if len(e.DetailContains) == 0 {
			t.Errorf("%s: no expected detail substring", e.Name)
		}
		if e.OrderIDReadable != (e.OrderID != "") {
			t.Errorf("%s: orderIdReadable %v disagrees with orderId %q", e.Name, e.OrderIDReadable, e.OrderID)
		}
		if (e.Reason == schemas.ReasonRecordTooLarge) != (e.MaxRecordBytes > 0) {
			t.Errorf("%s: maxRecordBytes %d: want it set exactly for reason %s", e.Name, e.MaxRecordBytes, schemas.ReasonRecordTooLarge)
		}
		noBytes := e.Tombstone || e.EmptyValue
		if e.Tombstone && e.EmptyValue || noBytes != (e.File == "") {
			t.Errorf("%s: file %q, tombstone %v, emptyValue %v: want a file exactly when the record has bytes", e.Name, e.File, e.Tombstone, e.EmptyValue)
		}
		for _, f := range append([]string{e.File}, e.PrecededBy...) {
			if f != "" {
				listed[f] = true
			}
		}
		if noBytes {
			continue
		}
		raw := e.value(t)
		for _, addr := range emailLike.FindAllString(string(raw), -1) {
			if !slices.ContainsFunc(e.Emails, func(s string) bool { return strings.Contains(s, addr) }) {
				t.Errorf("%s: email address %q in the record is not listed in emails", e.Name, addr)
			}
		}
		var doc struct {
			Email *string `json:"email"`
		}
		if json.Unmarshal(raw, &doc) == nil && doc.Email != nil && !slices.Contains(e.Emails, *doc.Email) {
			t.Errorf("%s: email %q is not listed in emails", e.Name, *doc.Email)
		}
	}
	files, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !listed[f.Name()] {
			t.Errorf("corpus file %s is not in manifest.json", f.Name())
		}
		delete(listed, f.Name())
	}
	for f := range listed {
		t.Errorf("manifest.json lists %s, which does not exist", f)
	}
}

// countingProvisioner succeeds for every order and records which it saw.
type countingProvisioner struct {
	mu     sync.Mutex
	orders []string
}

func (c *countingProvisioner) Run(ctx context.Context, o schemas.Order, _ provisioning.Wait) (provisioning.Result, error) {
	c.mu.Lock()
	c.orders = append(c.orders, o.OrderID)
	c.mu.Unlock()
	return okProvisioner(ctx, o)
}

func (c *countingProvisioner) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.orders)
}

var _ Workflow = (*countingProvisioner)(nil)

// corpusRecord is a record as the consumer would fetch it from the orders topic.
func corpusRecord(value []byte, offset int64) kafka.Message {
	return kafka.Message{Topic: "orders", Partition: 3, Offset: offset, Key: []byte("corpus-key"), Value: value,
		Time: time.Unix(1700000000, 0), Headers: []kafka.Header{{Key: "traceparent", Value: []byte("00-corpus-01")}}}
}

// handleWithin runs Handle and fails the test if it has not returned within
// stallBudget: a record must never stall the consumer. The context is not
// cancelled at the deadline, so that a stall is not mistaken for an error.
func handleWithin(t *testing.T, p *Pipeline, msg kafka.Message) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.Handle(context.Background(), msg, nil) }()
	select {
	case err := <-done:
		return err
	case <-time.After(stallBudget):
		t.Fatalf("Handle did not return within %v: the record stalls the consumer", stallBudget)
		return nil
	}
}

// since returns what r has published from index n on.
func (r *recorder) since(n int) *recorder {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &recorder{sent: slices.Clone(r.sent[n:])}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sent)
}

// feedValid hands the valid corpus records of an entry's precededBy to p and
// checks that each is provisioned.
func feedValid(t *testing.T, p *Pipeline, r *recorder, files []string, offset *int64) {
	t.Helper()
	for _, f := range files {
		raw := readCorpusFile(t, f)
		want, err := schemas.DecodeOrder(raw)
		if err != nil {
			t.Fatalf("%s: precededBy records must be valid orders: %v", f, err)
		}
		before := r.count()
		*offset++
		if err := handleWithin(t, p, corpusRecord(raw, *offset)); err != nil {
			t.Fatalf("%s: Handle: %v", f, err)
		}
		got := r.since(before)
		outs := outcomes(t, got)
		if len(outs) != 1 || outs[0].Status != schemas.StatusProvisioned || outs[0].OrderID != want.OrderID || len(got.byTopic("dlt")) != 0 {
			t.Fatalf("%s: want it provisioned; outcomes %+v, dead letters %d", f, outs, len(got.byTopic("dlt")))
		}
	}
}

// TestCorpus feeds every corpus record through a real Pipeline, with a
// provisioner that would succeed, and checks the answer its manifest entry
// asks for: Handle returns nil (the record is finished and the consumer moves
// on) without stalling; exactly one dead letter with the expected reason,
// order id and detail, the original key, value and headers, and no raw email
// address in its message or headers; a failed outcome with reason
// invalid_order exactly when the order id can be read; and the workflow never
// called for the bad record.
func TestCorpus(t *testing.T) {
	for _, e := range loadCorpus(t) {
		t.Run(e.Name, func(t *testing.T) {
			raw := e.value(t)
			r := newRecorder(t)
			prov := &countingProvisioner{}
			p := New(Config{ConsumerGroup: "corpus", MaxRecordBytes: e.MaxRecordBytes}, prov, r)

			offset := int64(100)
			feedValid(t, p, r, e.PrecededBy, &offset)
			if e.MaxRecordBytes > 0 {
				// The size must be the record's only problem.
				if _, err := schemas.DecodeOrder(raw); err != nil {
					t.Errorf("the oversized record should be an otherwise valid order: %v", err)
				}
			}

			callsBefore, before := prov.calls(), r.count()
			offset++
			msg := corpusRecord(raw, offset)
			if err := handleWithin(t, p, msg); err != nil {
				t.Fatalf("Handle returned %v; a bad record must be answered and finished, not retried", err)
			}
			if prov.calls() != callsBefore {
				t.Errorf("the bad record reached the workflow (orders %v)", prov.orders)
			}
			got := r.since(before)

			dlts := got.byTopic("dlt")
			dls := deadLetters(t, got)
			if len(dls) != 1 {
				t.Fatalf("dead letters = %d, want 1", len(dls))
			}
			d := dls[0]
			if d.Reason != e.Reason {
				t.Errorf("dead-letter reason = %q, want %q (message %q)", d.Reason, e.Reason, d.Message)
			}
			for _, s := range e.DetailExcludes {
				if strings.Contains(d.Message, s) {
					t.Errorf("dead-letter message %q contains %q", d.Message, s)
				}
			}
			for _, s := range e.DetailContains {
				if !strings.Contains(d.Message, s) {
					t.Errorf("dead-letter message %q does not contain %q", d.Message, s)
				}
			}
			if d.OrderID != e.OrderID {
				t.Errorf("dead-letter order id = %q, want %q", d.OrderID, e.OrderID)
			}
			if d.Source.Topic != "orders" || d.Source.Partition != 3 || d.Source.Offset != offset || d.ConsumerGroup != "corpus" {
				t.Errorf("dead-letter source = %s/%d@%d, group %q", d.Source.Topic, d.Source.Partition, d.Source.Offset, d.ConsumerGroup)
			}
			gotRaw, err := d.Source.Value.Raw()
			if err != nil {
				t.Errorf("dead-letter source value: %v", err)
			}
			if !bytes.Equal(gotRaw, raw) || (raw == nil) != (gotRaw == nil) {
				t.Errorf("dead letter does not keep the original value:\n got %q\nwant %q", gotRaw, raw)
			}
			if key, _ := d.Source.Key.Raw(); string(key) != "corpus-key" || string(dlts[0].Key) != "corpus-key" {
				t.Errorf("dead letter does not keep the original key: %q, record key %q", key, dlts[0].Key)
			}
			if len(d.Source.Headers) != 1 || d.Source.Headers[0].Key != "traceparent" {
				t.Errorf("dead letter does not keep the original headers: %+v", d.Source.Headers)
			}

			outs := outcomes(t, got)
			if !e.OrderIDReadable {
				if len(outs) != 0 {
					t.Errorf("outcomes = %+v; want none, since no order id can be read", outs)
				}
			} else if len(outs) != 1 {
				t.Errorf("outcomes = %d, want 1 failed outcome for order %q", len(outs), e.OrderID)
			} else {
				o := outs[0]
				if o.Status != schemas.StatusFailed || o.Failure == nil || o.Failure.Reason != schemas.ReasonInvalidOrder {
					t.Errorf("outcome = %+v, failure %+v; want status failed, reason invalid_order", o, o.Failure)
				}
				if o.OrderID != e.OrderID {
					t.Errorf("outcome order id = %q, want %q", o.OrderID, e.OrderID)
				}
				if o.Failure != nil {
					for _, addr := range e.Emails {
						if strings.Contains(o.Failure.Message, addr) {
							t.Errorf("outcome failure message %q shows the email address %q unmasked", o.Failure.Message, addr)
						}
					}
				}
			}

			for _, addr := range e.Emails {
				if strings.Contains(d.Message, addr) {
					t.Errorf("dead-letter message %q shows the email address %q unmasked", d.Message, addr)
				}
				for _, h := range dlts[0].Headers {
					if strings.Contains(string(h.Value), addr) {
						t.Errorf("dead-letter header %s = %q shows the email address %q unmasked", h.Key, h.Value, addr)
					}
				}
			}
		})
	}
}

// TestCorpusThroughOneConsumer feeds the whole corpus, in manifest order,
// through one Pipeline, as one partition would: no record crashes or stalls
// it, each gets its expected reason (so earlier records do not change the
// answer to later ones), and a valid order after them is still provisioned.
func TestCorpusThroughOneConsumer(t *testing.T) {
	entries := loadCorpus(t)
	limit := 0
	for _, e := range entries {
		limit = max(limit, e.MaxRecordBytes)
	}
	for _, e := range entries {
		if e.MaxRecordBytes == 0 && len(e.value(t)) > limit {
			t.Fatalf("%s is %d bytes, over the limit %d set for the oversized record; give the corpus one limit that fits", e.Name, len(e.value(t)), limit)
		}
	}

	r := newRecorder(t)
	prov := &countingProvisioner{}
	p := New(Config{ConsumerGroup: "corpus", MaxRecordBytes: limit}, prov, r)
	offset := int64(0)
	for _, e := range entries {
		feedValid(t, p, r, e.PrecededBy, &offset)
		before := r.count()
		offset++
		if err := handleWithin(t, p, corpusRecord(e.value(t), offset)); err != nil {
			t.Fatalf("%s: Handle: %v", e.Name, err)
		}
		dls := deadLetters(t, r.since(before))
		if len(dls) != 1 || dls[0].Reason != e.Reason {
			t.Errorf("%s: dead letters %+v; want one with reason %s", e.Name, dls, e.Reason)
		}
	}

	valid, err := os.ReadFile("../../schemas/examples/subscriber-order.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	before := r.count()
	offset++
	if err := handleWithin(t, p, corpusRecord(valid, offset)); err != nil {
		t.Fatalf("valid order after the corpus: Handle: %v", err)
	}
	if outs := outcomes(t, r.since(before)); len(outs) != 1 || outs[0].Status != schemas.StatusProvisioned {
		t.Errorf("valid order after the corpus: outcomes %+v, want it provisioned", outs)
	}
}

// TestCorpusRedeliveryIsNotADuplicate hands the same valid record to one
// Pipeline twice, as Kafka does after a rebalance or a crash before the
// commit: a redelivery has the same content, so it is not a duplicate order
// id, and each delivery is answered with a provisioned outcome.
func TestCorpusRedeliveryIsNotADuplicate(t *testing.T) {
	var first string
	for _, e := range loadCorpus(t) {
		if e.Reason == schemas.ReasonDuplicateOrderID && len(e.PrecededBy) > 0 {
			first = e.PrecededBy[0]
		}
	}
	if first == "" {
		t.Fatal("the corpus has no duplicate-order-id entry with a preceding record")
	}
	r := newRecorder(t)
	p := New(Config{ConsumerGroup: "corpus"}, &countingProvisioner{}, r)
	offset := int64(0)
	// feedValid checks that each delivery is provisioned and not dead-lettered.
	feedValid(t, p, r, []string{first, first}, &offset)
}

// TestHugeExponentsDoNotStallTheConsumer hands the pipeline a 365-byte order
// whose packages are distinct numbers with exponents near the limit of
// math/big: the JSON Schema validator's uniqueItems check turns each into a
// big.Rat (about 35 ms apiece), pairwise for up to 20 items, which stalls the
// consumer for seconds per record (minutes for a record near the size limit).
func TestHugeExponentsDoNotStallTheConsumer(t *testing.T) {
	nums := make([]string, 20)
	for i := range nums {
		nums[i] = fmt.Sprintf("%de999999", i+1)
	}
	value := []byte(`{"schemaVersion":1,"orderId":"bad-huge-exponents","action":"provision","occurredAt":"2026-05-04T09:15:27Z",` +
		`"customerId":"c","email":"huge.exponents@example.com","packages":[` + strings.Join(nums, ",") + `]}`)
	r := newRecorder(t)
	p := New(Config{ConsumerGroup: "corpus"}, &countingProvisioner{}, r)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- p.Handle(context.Background(), corpusRecord(value, 1), nil) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Handle: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("Handle of a %d-byte record did not return within 2s (it stalls the consumer): %s", len(value), value)
	}
	t.Logf("answered in %v", time.Since(start))
	if dls := deadLetters(t, r); len(dls) != 1 || dls[0].Reason != schemas.ReasonLimitExceeded {
		t.Errorf("dead letters = %+v, want one limit_exceeded (the numbers refused before any validation)", dls)
	}
}

// BenchmarkHandleHostile answers records of every hostile shape at 1, 16 and
// 256 KiB through a Pipeline (decoding, the dead letter and the outcome
// built, the publish recorded), reporting ns/byte: the whole decision on an
// untrusted record, not only its decoding (BENCHMARKS.md, "Hostile input").
func BenchmarkHandleHostile(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10, 256 << 10} {
		for _, sh := range strictjson.HostileShapes(size) {
			b.Run(fmt.Sprintf("%s/%dKiB", sh.Name, size>>10), func(b *testing.B) {
				r := &recorder{Writer: newRecorder(b).Writer}
				p := New(Config{ConsumerGroup: "bench"}, &countingProvisioner{}, r)
				msg := corpusRecord(sh.Data, 1)
				b.SetBytes(int64(len(sh.Data)))
				b.ReportAllocs()
				for b.Loop() {
					if err := p.Handle(context.Background(), msg, nil); err != nil {
						b.Fatal(err)
					}
					r.mu.Lock()
					r.sent = r.sent[:0]
					r.mu.Unlock()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(sh.Data)), "ns/byte")
			})
		}
	}
}

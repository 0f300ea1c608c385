package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/strictjson"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// Position says where reading starts in each partition of the dead-letter
// topic. The zero value reads every partition from its first offset. At most
// one of Since and Offsets may be set.
type Position struct {
	// Since starts each partition at its first record whose timestamp (when
	// the dead letter was written) is at or after it.
	Since time.Time
	// Offsets reads only the partitions it names, each from the offset given.
	// An offset before the first one still held starts at the first one.
	Offsets map[int]int64
}

// String describes the position for reports: "the start", "since ..." or
// "offsets 0:12,1:0".
func (p Position) String() string {
	switch {
	case p.Offsets != nil:
		return "offsets " + FormatOffsets(p.Offsets)
	case !p.Since.IsZero():
		return "since " + p.Since.UTC().Format(time.RFC3339)
	default:
		return "the start"
	}
}

// ParseOffsets reads "partition:offset,partition:offset", as --offsets takes it.
func ParseOffsets(s string) (map[int]int64, error) {
	out := map[int]int64{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		ps, offs, ok := strings.Cut(item, ":")
		p, perr := strconv.Atoi(strings.TrimSpace(ps))
		o, oerr := strconv.ParseInt(strings.TrimSpace(offs), 10, 64)
		if !ok || perr != nil || oerr != nil || p < 0 || o < 0 {
			return nil, fmt.Errorf("%q is not partition:offset (e.g. 0:1200)", item)
		}
		if _, dup := out[p]; dup {
			return nil, fmt.Errorf("partition %d is named twice", p)
		}
		out[p] = o
	}
	if len(out) == 0 {
		return nil, errors.New("no partition:offset given (e.g. 0:1200,1:0)")
	}
	return out, nil
}

// FormatOffsets writes offsets the way ParseOffsets reads them, by partition.
func FormatOffsets(offsets map[int]int64) string {
	ps := make([]int, 0, len(offsets))
	for p := range offsets {
		ps = append(ps, p)
	}
	sort.Ints(ps)
	items := make([]string, len(ps))
	for i, p := range ps {
		items[i] = fmt.Sprintf("%d:%d", p, offsets[p])
	}
	return strings.Join(items, ",")
}

// ParseSince reads an RFC 3339 timestamp ("2026-05-04T09:00:00Z"), or a
// duration ("36h") meaning that long before now.
func ParseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-05-04T09:00:00Z) nor a duration (36h)", s)
}

// ReaderConfig configures a Reader. The zero value of each optional field
// selects the default given in its comment.
type ReaderConfig struct {
	// Conn reaches the brokers. Brokers is required.
	Conn Conn
	// Topic is the dead-letter topic. Required.
	Topic string
	// From says where reading starts. Default: every partition from its start.
	From Position
	// MaxWait is how long one fetch waits for records. Default 100ms.
	MaxWait time.Duration
	// IdleTimeout is how long reading waits for the next record of a partition
	// that has not reached its end offset before it gives up with an error
	// (broker unreachable, or the last offsets hold no records). Default 15s.
	IdleTimeout time.Duration
}

// Range is the part of one partition that a Reader reads.
type Range struct {
	Partition int `json:"partition"`
	// Start is the first offset read.
	Start int64 `json:"start"`
	// End is the partition's end offset when reading began (the offset of its
	// next record), exclusive: records written later are not read.
	End int64 `json:"end"`
}

// Len is the number of offsets in the range.
func (r Range) Len() int64 { return max(0, r.End-r.Start) }

// Record is one record of the dead-letter topic.
type Record struct {
	// Topic, Partition, Offset and Time place the dead-letter record itself.
	Topic     string
	Partition int
	Offset    int64
	Time      time.Time
	// DeadLetter is the decoded value; it is valid only when Err is nil.
	DeadLetter schemas.DeadLetter
	// Err says why the record is not a valid dead letter.
	Err error
}

// Pos returns "topic/partition/offset" of the dead-letter record.
func (r Record) Pos() string { return fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset) }

// Reader reads the dead-letter topic without a consumer group (it commits
// nothing) from a Position up to the end offsets it finds when it starts, so
// that it terminates: it does not follow records written after that. A Reader
// is not safe for concurrent use.
type Reader struct {
	cfg    ReaderConfig
	ranges []Range
	// next is, per partition, the offset of the first record not yet handed
	// over successfully.
	mu   sync.Mutex
	next map[int]int64
}

// NewReader returns a Reader, or an error naming the setting to fix.
func NewReader(cfg ReaderConfig) (*Reader, error) {
	if err := cfg.Conn.validate(); err != nil {
		return nil, err
	}
	switch {
	case cfg.Topic == "":
		return nil, errors.New("no dead-letter topic configured")
	case !cfg.From.Since.IsZero() && cfg.From.Offsets != nil:
		return nil, errors.New("give a start time or start offsets, not both")
	}
	for p, o := range cfg.From.Offsets {
		if p < 0 || o < 0 {
			return nil, fmt.Errorf("start offset %d:%d: partitions and offsets are not negative", p, o)
		}
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 100 * time.Millisecond
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 15 * time.Second
	}
	return &Reader{cfg: cfg}, nil
}

// Ranges returns what the Reader reads, by partition: it asks the brokers
// the first time and returns the same ranges afterwards.
func (r *Reader) Ranges(ctx context.Context) ([]Range, error) {
	if r.ranges != nil {
		return r.ranges, nil
	}
	c, topic := r.cfg.Conn, r.cfg.Topic
	parts, err := c.partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	for p := range r.cfg.From.Offsets {
		if _, ok := sortedIndex(parts, p); !ok {
			return nil, fmt.Errorf("start offsets name partition %d, but topic %s has partitions %d to %d", p, topic, parts[0], parts[len(parts)-1])
		}
	}
	first, err := c.listOffsets(ctx, topic, parts, kafka.FirstOffset)
	if err != nil {
		return nil, err
	}
	end, err := c.listOffsets(ctx, topic, parts, kafka.LastOffset)
	if err != nil {
		return nil, err
	}
	var since map[int]int64
	if !r.cfg.From.Since.IsZero() {
		if since, err = c.listOffsets(ctx, topic, parts, r.cfg.From.Since.UnixMilli()); err != nil {
			return nil, err
		}
	}
	ranges := make([]Range, 0, len(parts))
	for _, p := range parts {
		rg := Range{Partition: p, Start: first[p], End: end[p]}
		switch {
		case r.cfg.From.Offsets != nil:
			o, ok := r.cfg.From.Offsets[p]
			if !ok {
				continue
			}
			rg.Start = max(o, rg.Start)
		case since != nil:
			if s := since[p]; s < 0 {
				rg.Start = rg.End // no record at or after the time
			} else {
				rg.Start = max(s, rg.Start)
			}
		}
		rg.Start = min(rg.Start, rg.End)
		ranges = append(ranges, rg)
	}
	r.ranges = ranges
	r.next = make(map[int]int64, len(ranges))
	for _, rg := range ranges {
		r.next[rg.Partition] = rg.Start
	}
	return ranges, nil
}

// Each reads the ranges partition by partition, in offset order, and calls fn
// with every record: a dead letter, or a record that is not one (Record.Err
// set). It stops at the first error fn returns, and returns it.
func (r *Reader) Each(ctx context.Context, fn func(Record) error) error {
	ranges, err := r.Ranges(ctx)
	if err != nil {
		return err
	}
	for _, rg := range ranges {
		if rg.Len() == 0 {
			continue
		}
		if err := r.readRange(ctx, rg, fn); err != nil {
			return err
		}
	}
	return nil
}

// Remaining returns, by partition, the offset of the first record not yet
// handed to Each's function without error, for the partitions not read to
// their end: the start offsets that continue an interrupted run.
func (r *Reader) Remaining() map[int]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[int]int64{}
	for _, rg := range r.ranges {
		if n := r.next[rg.Partition]; n < rg.End {
			out[rg.Partition] = n
		}
	}
	return out
}

func (r *Reader) readRange(ctx context.Context, rg Range, fn func(Record) error) error {
	var lastErr lastError
	kr := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     r.cfg.Conn.Brokers,
		Dialer:      r.cfg.Conn.Dialer,
		Topic:       r.cfg.Topic,
		Partition:   rg.Partition,
		MinBytes:    1,
		MaxBytes:    16 << 20,
		MaxWait:     r.cfg.MaxWait,
		ErrorLogger: kafka.LoggerFunc(lastErr.set),
	})
	defer kr.Close()
	if err := kr.SetOffset(rg.Start); err != nil {
		return fmt.Errorf("starting to read %s/%d at offset %d: %w", r.cfg.Topic, rg.Partition, rg.Start, err)
	}
	for {
		fctx, cancel := context.WithTimeout(ctx, r.cfg.IdleTimeout)
		m, err := kr.FetchMessage(fctx)
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			next := r.nextOf(rg.Partition)
			detail := "the remaining offsets may hold no records (compacted, or transaction markers)"
			if e := lastErr.get(); e != "" {
				detail = "last reader error: " + e
			}
			return fmt.Errorf("reading %s/%d: no record for %s at offset %d, before the end offset %d: %s",
				r.cfg.Topic, rg.Partition, r.cfg.IdleTimeout, next, rg.End, detail)
		case err != nil:
			return fmt.Errorf("reading %s/%d: %w", r.cfg.Topic, rg.Partition, err)
		}
		if m.Offset >= rg.End {
			r.setNext(rg.Partition, rg.End)
			return nil
		}
		rec := Record{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Time: m.Time}
		rec.DeadLetter, rec.Err = decode(m.Value)
		if err := fn(rec); err != nil {
			return err
		}
		r.setNext(rg.Partition, m.Offset+1)
		if m.Offset+1 >= rg.End {
			return nil
		}
	}
}

func (r *Reader) nextOf(p int) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next[p]
}

func (r *Reader) setNext(p int, o int64) {
	r.mu.Lock()
	r.next[p] = o
	r.mu.Unlock()
}

// deadLetterLimits bound a dead-letter document: it nests five levels deep
// (the original record's headers), and its numbers are offsets and counts.
var deadLetterLimits = strictjson.Limits{MaxDepth: 16, MaxNumberLen: 32}

// decode reads a record value as a dead letter of schema version 1 that
// follows the dead-letter schema.
func decode(value []byte) (schemas.DeadLetter, error) {
	var d schemas.DeadLetter
	if value == nil {
		return d, errors.New("the record has no value")
	}
	// Anyone who may write to the topic can put anything there: bound the
	// document before decoding it, so that one record cannot stall a replay.
	if err := strictjson.Check(value, deadLetterLimits); err != nil {
		return schemas.DeadLetter{}, fmt.Errorf("the value is not a dead-letter document: %w", err)
	}
	if err := json.Unmarshal(value, &d); err != nil {
		return schemas.DeadLetter{}, fmt.Errorf("the value is not a dead-letter document: %w", err)
	}
	if d.SchemaVersion != 1 {
		return schemas.DeadLetter{}, fmt.Errorf("the value has schemaVersion %d, want a dead letter of version 1", d.SchemaVersion)
	}
	if err := schemas.ValidateDeadLetter(d); err != nil {
		return schemas.DeadLetter{}, err
	}
	return d, nil
}

// lastError keeps the last error the kafka-go reader logged; it retries
// internally, so this is the only trace of why no record arrives.
type lastError struct {
	mu  sync.Mutex
	msg string
}

func (l *lastError) set(format string, args ...any) {
	l.mu.Lock()
	l.msg = fmt.Sprintf(format, args...)
	l.mu.Unlock()
}

func (l *lastError) get() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.msg
}

func sortedIndex(s []int, v int) (int, bool) {
	i := sort.SearchInts(s, v)
	return i, i < len(s) && s[i] == v
}

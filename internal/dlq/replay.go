package dlq

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
	"golang.org/x/time/rate"

	"github.com/acme-sp/wholesale-provisioner/internal/pipeline"
	"github.com/acme-sp/wholesale-provisioner/internal/redact"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// HeaderReplayedFrom names the dead letter a replayed record came from, as
// "dead-letter-topic/partition/offset". Replay also sets
// pipeline.HeaderReplayCount.
const HeaderReplayedFrom = "replayed-from"

// Defaults of ReplayConfig.
const (
	DefaultRate       = 50
	DefaultMaxReplays = 3
)

// The reasons a matching dead letter is refused rather than replayed.
const (
	// RefusedMaxReplays: the original record's replay-count already reached MaxReplays.
	RefusedMaxReplays = "max_replays"
	// RefusedTombstone: the original record had a null value.
	RefusedTombstone = "tombstone"
	// RefusedNoValue: the dead letter holds no original value.
	RefusedNoValue = "no_original_value"
	// RefusedEmptyValue: the original value has no bytes: there is no order in it.
	RefusedEmptyValue = "empty_value"
	// RefusedUnreadable: the original key, value or a header cannot be decoded.
	RefusedUnreadable = "unreadable_original"
	// RefusedNoTopic: the dead letter names no source topic and no orders topic was given.
	RefusedNoTopic = "no_source_topic"
	// RefusedLoop: the record would go to the dead-letter topic itself.
	RefusedLoop = "target_is_dead_letter_topic"
)

// ReplayConfig configures Replay. The zero value of each optional field
// selects the default given in its comment.
type ReplayConfig struct {
	// Reader says which dead letters to read. Required: Conn.Brokers, Topic.
	Reader ReaderConfig
	// Filter selects the dead letters to replay. Default: all.
	Filter Filter
	// OrdersTopic receives every replayed record. Default: each record goes
	// back to the topic its dead letter names as source.
	OrdersTopic string
	// Rate limits the records published per second. Default DefaultRate;
	// rate.Inf for no limit.
	Rate rate.Limit
	// MaxReplays refuses a record whose replay-count header has reached it.
	// Default DefaultMaxReplays.
	MaxReplays int
	// DryRun reports what would be replayed and publishes nothing.
	DryRun bool
	// Out receives a line per refused or skipped record, and in a dry run per
	// record that would be replayed; personal data in it is masked. Default: none.
	Out io.Writer
	// Progress receives the progress display (a bar on a terminal, else a line
	// per ProgressInterval). Default: none.
	Progress io.Writer
	// ProgressInterval is the time between progress lines off a terminal. Default 2s.
	ProgressInterval time.Duration
	// WriteTimeout bounds the acknowledgement of one record. Default 10s.
	WriteTimeout time.Duration
}

// ReplayReport counts what Replay did.
type ReplayReport struct {
	// DeadLetterTopic is the topic read; From says where reading started.
	DeadLetterTopic string `json:"deadLetterTopic"`
	From            string `json:"from"`
	// Filter describes the filter applied.
	Filter string `json:"filter"`
	DryRun bool   `json:"dryRun"`
	// Read counts the records read; Matched the dead letters that passed the
	// filter; Replayed those published (in a dry run: that would be).
	Read     int `json:"read"`
	Matched  int `json:"matched"`
	Replayed int `json:"replayed"`
	// Refused counts the matching dead letters not replayed, by Refused* reason.
	Refused map[string]int `json:"refused"`
	// Skipped counts the records that are not valid dead letters.
	Skipped int `json:"skipped"`
	// Topics counts the replayed records by the topic they went to.
	Topics map[string]int `json:"topics"`
	// Resume is set when the replay stopped before the end: the --offsets
	// value that continues it.
	Resume string `json:"resume,omitempty"`
}

// RefusedTotal is the number of refused dead letters.
func (r ReplayReport) RefusedTotal() int {
	n := 0
	for _, c := range r.Refused {
		n += c
	}
	return n
}

// WriteSummary writes the final count line, the topics replayed to, and how
// to resume a replay that stopped early.
func (r ReplayReport) WriteSummary(w io.Writer) {
	verb, replayed, refused := "replay", "replayed", "refused"
	if r.DryRun {
		verb, replayed, refused = "dry run", "would replay", "would refuse"
	}
	line := fmt.Sprintf("%s of %s from %s (%s): read %d, matched %d, %s %d, %s %d",
		verb, r.DeadLetterTopic, r.From, r.Filter, r.Read, r.Matched, replayed, r.Replayed, refused, r.RefusedTotal())
	if n := r.RefusedTotal(); n > 0 {
		var rs []string
		for _, k := range slices.Sorted(maps.Keys(r.Refused)) {
			rs = append(rs, fmt.Sprintf("%s %d", k, r.Refused[k]))
		}
		line += " (" + strings.Join(rs, ", ") + ")"
	}
	line += fmt.Sprintf(", skipped %d", r.Skipped)
	if r.Skipped > 0 {
		line += " (not dead letters)"
	}
	fmt.Fprintln(w, line)
	for _, t := range slices.Sorted(maps.Keys(r.Topics)) {
		fmt.Fprintf(w, "  %s %d to %s\n", replayed, r.Topics[t], t)
	}
	if r.Resume != "" {
		fmt.Fprintf(w, "stopped before the end: continue with the same flags and --offsets %s\n", r.Resume)
	}
}

// Replay re-publishes the original records of the matching dead letters:
// their original key, value and headers, byte for byte, plus a replay-count
// header one above the original's (pipeline.HeaderReplayCount) and a
// replayed-from header (HeaderReplayedFrom). Records are acknowledged by all
// in-sync replicas one at a time, in the dead-letter topic's order, and
// partitioned like the orders producers do (murmur2 on the key). Replaying a
// dead letter twice is safe: the provisioner is idempotent per subscriber.
//
// It returns the report also with an error, which stops the replay (a write
// failed, a topic does not exist, ctx ended); the report's Resume continues it.
func Replay(ctx context.Context, cfg ReplayConfig) (ReplayReport, error) {
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.MaxReplays == 0 {
		cfg.MaxReplays = DefaultMaxReplays
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	rep := ReplayReport{DeadLetterTopic: cfg.Reader.Topic, From: cfg.Reader.From.String(), Filter: cfg.Filter.String(),
		DryRun: cfg.DryRun, Refused: map[string]int{}, Topics: map[string]int{}}
	switch {
	case cfg.Rate < 0:
		return rep, fmt.Errorf("replay rate %v: want a positive number of records per second", cfg.Rate)
	case cfg.MaxReplays < 0:
		return rep, fmt.Errorf("max replays %d: want 1 or more", cfg.MaxReplays)
	case cfg.OrdersTopic != "" && cfg.OrdersTopic == cfg.Reader.Topic:
		return rep, fmt.Errorf("the orders topic and the dead-letter topic are both %s", cfg.OrdersTopic)
	}
	if err := cfg.Filter.Validate(); err != nil {
		return rep, err
	}
	rd, err := NewReader(cfg.Reader)
	if err != nil {
		return rep, err
	}
	ranges, err := rd.Ranges(ctx)
	if err != nil {
		return rep, err
	}
	r := &replayer{cfg: cfg, rep: &rep, topics: map[string]error{}, limiter: rate.NewLimiter(cfg.Rate, 1)}
	if !cfg.DryRun {
		c := cfg.Reader.Conn
		r.w = &kafka.Writer{
			Addr:                   kafka.TCP(c.Brokers...),
			Balancer:               kafka.Murmur2Balancer{Consistent: true},
			RequiredAcks:           kafka.RequireAll,
			AllowAutoTopicCreation: false,
			BatchTimeout:           time.Millisecond,
			WriteTimeout:           cfg.WriteTimeout,
			ReadTimeout:            cfg.WriteTimeout,
			MaxAttempts:            3,
			Transport:              c.Transport,
		}
		defer r.w.Close()
	}
	var total int64
	for _, rg := range ranges {
		total += rg.Len()
	}
	label, replayed, refused := "replay", "replayed", "refused"
	if cfg.DryRun {
		label, replayed, refused = "dry run", "would replay", "would refuse"
	}
	r.prog = startProgress(cfg.Progress, label, total, &r.n, cfg.ProgressInterval, func(c *counters) string {
		return fmt.Sprintf("%s %d, %s %d, skipped %d", replayed, c.replayed.Load(), refused, c.refused.Load(), c.skipped.Load())
	}, func(c *counters) int64 { return c.replayed.Load() })
	err = rd.Each(ctx, func(rec Record) error { return r.handle(ctx, rec) })
	r.prog.finish()
	if err != nil {
		rep.Resume = FormatOffsets(rd.Remaining())
	}
	return rep, err
}

type replayer struct {
	cfg     ReplayConfig
	rep     *ReplayReport
	n       counters
	prog    *progress
	w       *kafka.Writer
	limiter *rate.Limiter
	// topics remembers whether each target topic exists (nil error).
	topics map[string]error
}

func (r *replayer) handle(ctx context.Context, rec Record) error {
	r.rep.Read++
	r.n.read.Add(1)
	if rec.Err != nil {
		r.rep.Skipped++
		r.n.skipped.Add(1)
		r.prog.println(r.cfg.Out, fmt.Sprintf("skipped %s: not a dead letter: %s", rec.Pos(), redact.Text(rec.Err.Error())))
		return nil
	}
	d := rec.DeadLetter
	if !r.cfg.Filter.Match(d) {
		return nil
	}
	r.rep.Matched++
	msg, reason, why := r.build(rec)
	if reason != "" {
		r.rep.Refused[reason]++
		r.n.refused.Add(1)
		r.prog.println(r.cfg.Out, fmt.Sprintf("refused %s (%s): %s", rec.Pos(), describe(d), why))
		return nil
	}
	if err := r.checkTopic(ctx, msg.Topic); err != nil {
		return err
	}
	if r.cfg.DryRun {
		r.prog.println(r.cfg.Out, fmt.Sprintf("would replay %s to %s: %s, key %s, %d bytes, replay-count %s",
			rec.Pos(), msg.Topic, describe(d), showBytes(msg.Key), len(msg.Value), header(msg, pipeline.HeaderReplayCount)))
	} else {
		if err := r.limiter.Wait(ctx); err != nil {
			return fmt.Errorf("replay stopped before %s: %w", rec.Pos(), err)
		}
		// The writer gets its own deadline: a cancelled context would leave
		// the record's fate unknown, the only thing a resume cannot tell.
		wctx, cancel := context.WithTimeout(context.Background(), 3*r.cfg.WriteTimeout)
		err := r.w.WriteMessages(wctx, msg)
		cancel()
		if err != nil {
			return fmt.Errorf("replaying %s to %s: %w", rec.Pos(), msg.Topic, err)
		}
	}
	r.rep.Replayed++
	r.rep.Topics[msg.Topic]++
	r.n.replayed.Add(1)
	return nil
}

// build makes the record to re-publish, or says why the dead letter is refused.
func (r *replayer) build(rec Record) (msg kafka.Message, reason, why string) {
	d := rec.DeadLetter
	msg.Topic = r.cfg.OrdersTopic
	if msg.Topic == "" {
		msg.Topic = d.Source.Topic
	}
	switch msg.Topic {
	case "":
		return msg, RefusedNoTopic, "the dead letter names no source topic: give --orders-topic"
	case rec.Topic:
		return msg, RefusedLoop, fmt.Sprintf("its source topic is the dead-letter topic %s itself: give --orders-topic", rec.Topic)
	}
	value, err := d.Source.Value.Raw()
	switch {
	case err != nil:
		return msg, RefusedUnreadable, "the original value cannot be decoded: " + err.Error()
	case value == nil && d.Reason == schemas.ReasonTombstone:
		return msg, RefusedTombstone, "the original record was a tombstone (null value): there is no order to replay"
	case value == nil:
		return msg, RefusedNoValue, "the dead letter holds no original value: there is no order to replay"
	case len(value) == 0:
		return msg, RefusedEmptyValue, "the original value is empty (0 bytes): there is no order to replay"
	}
	key, err := d.Source.Key.Raw()
	if err != nil {
		return msg, RefusedUnreadable, "the original key cannot be decoded: " + err.Error()
	}
	orig := kafka.Message{Headers: make([]kafka.Header, 0, len(d.Source.Headers)+2)}
	for _, h := range d.Source.Headers {
		v, err := h.Value.Raw()
		if err != nil {
			return msg, RefusedUnreadable, fmt.Sprintf("original header %q cannot be decoded: %v", h.Key, err)
		}
		orig.Headers = append(orig.Headers, kafka.Header{Key: h.Key, Value: v})
	}
	count := pipeline.ReplayCount(orig)
	if count >= r.cfg.MaxReplays {
		inspect := "provisioner dlq inspect"
		if d.OrderID != "" {
			inspect += " --order-id " + redact.Text(d.OrderID)
		}
		return msg, RefusedMaxReplays, fmt.Sprintf("replayed %s already, and --max-replays is %d: "+
			"find out why it keeps failing (%s) before replaying it again with a higher --max-replays",
			times(count), r.cfg.MaxReplays, inspect)
	}
	msg.Key, msg.Value = key, value
	for _, h := range orig.Headers {
		if h.Key != pipeline.HeaderReplayCount && h.Key != HeaderReplayedFrom {
			msg.Headers = append(msg.Headers, h)
		}
	}
	msg.Headers = append(msg.Headers,
		kafka.Header{Key: pipeline.HeaderReplayCount, Value: []byte(strconv.Itoa(count + 1))},
		kafka.Header{Key: HeaderReplayedFrom, Value: []byte(rec.Pos())},
	)
	return msg, "", ""
}

// checkTopic fails when topic does not exist: the writer does not create
// topics, and the error would otherwise come after a long retry.
func (r *replayer) checkTopic(ctx context.Context, topic string) error {
	err, seen := r.topics[topic]
	if !seen {
		_, err = r.cfg.Reader.Conn.partitions(ctx, topic)
		if err != nil {
			err = fmt.Errorf("cannot replay to %s: %w (give the orders topic with --orders-topic)", topic, err)
		}
		r.topics[topic] = err
	}
	return err
}

// describe names a dead letter for output lines: order id, reason, class.
func describe(d schemas.DeadLetter) string {
	id := "no order id"
	if d.OrderID != "" {
		id = "order " + redact.Text(d.OrderID)
	}
	return fmt.Sprintf("%s, %s, %s", id, d.Reason, d.ErrorClass)
}

// showBytes shows a key for a human, with personal data masked.
func showBytes(b []byte) string {
	switch {
	case b == nil:
		return "(none)"
	case !utf8.Valid(b):
		return fmt.Sprintf("(%d bytes, binary)", len(b))
	}
	s := []rune(redact.Text(string(b)))
	if len(s) > 80 {
		s = slices.Concat(s[:37], []rune("..."), s[len(s)-40:])
	}
	return strconv.Quote(string(s))
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

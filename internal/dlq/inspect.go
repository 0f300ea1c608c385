package dlq

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/pipeline"
	"github.com/acme-sp/wholesale-provisioner/internal/redact"
)

// DefaultExamples is the default number of examples per group of InspectConfig.
const DefaultExamples = 3

// InspectConfig configures Inspect. The zero value of each optional field
// selects the default given in its comment.
type InspectConfig struct {
	// Reader says which dead letters to read. Required: Conn.Brokers, Topic.
	Reader ReaderConfig
	// Filter selects the dead letters to count. Default: all.
	Filter Filter
	// Examples is the number of examples kept per group (the first ones read).
	// Default DefaultExamples; negative for none.
	Examples int
	// Progress receives the progress display (a bar on a terminal, else a line
	// per ProgressInterval). Default: none.
	Progress io.Writer
	// ProgressInterval is the time between progress lines off a terminal. Default 2s.
	ProgressInterval time.Duration
}

// InspectReport groups the dead letters read by reason and error class.
// Personal data in it (emails, phone numbers) is masked.
type InspectReport struct {
	DeadLetterTopic string `json:"deadLetterTopic"`
	// From says where reading started; Partitions what was read of each.
	From       string  `json:"from"`
	Partitions []Range `json:"partitions"`
	Filter     string  `json:"filter"`
	// Read counts the records read; Matched the dead letters that passed the
	// filter; Skipped the records that are not valid dead letters.
	Read    int `json:"read"`
	Matched int `json:"matched"`
	Skipped int `json:"skipped"`
	// SkippedExamples are the first records that are not valid dead letters.
	SkippedExamples []SkippedRecord `json:"skippedExamples,omitempty"`
	// Groups are sorted by count, largest first.
	Groups []Group `json:"groups"`
}

// SkippedRecord is a record of the dead-letter topic that is not a valid dead letter.
type SkippedRecord struct {
	DeadLetter string `json:"deadLetter"`
	Error      string `json:"error"`
}

// Group is the dead letters of one reason and error class.
type Group struct {
	Reason     string `json:"reason"`
	ErrorClass string `json:"errorClass"`
	Count      int    `json:"count"`
	// FirstSeen and LastSeen are the earliest and latest failedAt of the group.
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`
	// Examples are the first dead letters of the group read.
	Examples []Example `json:"examples"`
}

// Example is one dead letter, described without its personal data.
type Example struct {
	OrderID string `json:"orderId,omitempty"`
	// DeadLetter is the record's place: dead-letter-topic/partition/offset.
	DeadLetter string `json:"deadLetter"`
	// Source is the original record's place: topic/partition/offset.
	Source      string    `json:"source"`
	FailedAt    time.Time `json:"failedAt"`
	Step        string    `json:"step,omitempty"`
	Attempts    int       `json:"attempts"`
	ReplayCount int       `json:"replayCount"`
	HTTPStatus  int       `json:"httpStatus,omitempty"`
	TrackingID  string    `json:"trackingId,omitempty"`
	// Message is the error, with emails and phone numbers masked.
	Message string `json:"message"`
}

// maxSkippedExamples bounds the invalid records an InspectReport lists.
const maxSkippedExamples = 10

// Inspect reads the dead letters and groups them by reason and error class,
// with counts, first and last failure times and a few examples each.
func Inspect(ctx context.Context, cfg InspectConfig) (InspectReport, error) {
	if cfg.Examples == 0 {
		cfg.Examples = DefaultExamples
	}
	rep := InspectReport{DeadLetterTopic: cfg.Reader.Topic, From: cfg.Reader.From.String(), Filter: cfg.Filter.String()}
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
	rep.Partitions = ranges
	var total int64
	for _, rg := range ranges {
		total += rg.Len()
	}
	var n counters
	prog := startProgress(cfg.Progress, "inspect", total, &n, cfg.ProgressInterval, func(c *counters) string {
		return fmt.Sprintf("skipped %d", c.skipped.Load())
	}, func(c *counters) int64 { return c.read.Load() })
	groups := map[[2]string]*Group{}
	err = rd.Each(ctx, func(rec Record) error {
		rep.Read++
		n.read.Add(1)
		if rec.Err != nil {
			rep.Skipped++
			n.skipped.Add(1)
			if len(rep.SkippedExamples) < maxSkippedExamples {
				rep.SkippedExamples = append(rep.SkippedExamples, SkippedRecord{DeadLetter: rec.Pos(), Error: redact.Text(rec.Err.Error())})
			}
			return nil
		}
		d := rec.DeadLetter
		if !cfg.Filter.Match(d) {
			return nil
		}
		rep.Matched++
		at := d.FailedAt
		if at.IsZero() {
			at = rec.Time
		}
		at = at.UTC()
		k := [2]string{d.Reason, d.ErrorClass}
		g := groups[k]
		if g == nil {
			g = &Group{Reason: d.Reason, ErrorClass: d.ErrorClass, FirstSeen: at, LastSeen: at, Examples: []Example{}}
			groups[k] = g
		}
		g.Count++
		if at.Before(g.FirstSeen) {
			g.FirstSeen = at
		}
		if at.After(g.LastSeen) {
			g.LastSeen = at
		}
		if len(g.Examples) < cfg.Examples {
			g.Examples = append(g.Examples, example(rec, at))
		}
		return nil
	})
	prog.finish()
	rep.Groups = make([]Group, 0, len(groups))
	for _, g := range groups {
		rep.Groups = append(rep.Groups, *g)
	}
	sort.Slice(rep.Groups, func(i, j int) bool {
		a, b := rep.Groups[i], rep.Groups[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.Reason != b.Reason {
			return a.Reason < b.Reason
		}
		return a.ErrorClass < b.ErrorClass
	})
	return rep, err
}

func example(rec Record, at time.Time) Example {
	d := rec.DeadLetter
	e := Example{
		OrderID:    redact.Text(d.OrderID),
		DeadLetter: rec.Pos(),
		Source:     fmt.Sprintf("%s/%d/%d", d.Source.Topic, d.Source.Partition, d.Source.Offset),
		FailedAt:   at,
		Step:       d.Step,
		Attempts:   d.Attempts,
		Message:    redact.Text(d.Message),
	}
	if d.Failure != nil {
		e.HTTPStatus = d.Failure.HTTPStatus
		e.TrackingID = d.Failure.TrackingID
	}
	var orig kafka.Message
	for _, h := range d.Source.Headers {
		if h.Key == pipeline.HeaderReplayCount {
			if v, err := h.Value.Raw(); err == nil {
				orig.Headers = append(orig.Headers, kafka.Header{Key: h.Key, Value: v})
			}
		}
	}
	e.ReplayCount = pipeline.ReplayCount(orig)
	return e
}

// WriteJSON writes the report as one indented JSON document.
func (r InspectReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for a human: a table of the groups, then each
// group's examples.
func (r InspectReport) WriteText(w io.Writer) error {
	parts := "no partitions"
	if len(r.Partitions) > 0 {
		var ps []string
		for _, p := range r.Partitions {
			ps = append(ps, fmt.Sprintf("%d:%d-%d", p.Partition, p.Start, p.End))
		}
		parts = "partition:offsets " + strings.Join(ps, " ")
	}
	fmt.Fprintf(w, "%s from %s (%s), %s\n", r.DeadLetterTopic, r.From, parts, r.Filter)
	fmt.Fprintf(w, "read %d, matched %d, skipped %d (not dead letters)\n", r.Read, r.Matched, r.Skipped)
	if len(r.Groups) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "REASON\tCLASS\tCOUNT\tFIRST SEEN\tLAST SEEN")
		for _, g := range r.Groups {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", g.Reason, g.ErrorClass, g.Count, stamp(g.FirstSeen), stamp(g.LastSeen))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, g := range r.Groups {
		if len(g.Examples) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s (%s): %d\n", g.Reason, g.ErrorClass, g.Count)
		for _, e := range g.Examples {
			id := e.OrderID
			if id == "" {
				id = "(no order id)"
			}
			fmt.Fprintf(w, "  %s  failed %s at %s after %d attempt(s)", id, stamp(e.FailedAt), orNone(e.Step), e.Attempts)
			if e.ReplayCount > 0 {
				fmt.Fprintf(w, ", replayed %s before", times(e.ReplayCount))
			}
			fmt.Fprintf(w, "\n    source %s, dead letter %s", e.Source, e.DeadLetter)
			if e.HTTPStatus != 0 {
				fmt.Fprintf(w, ", HTTP %d", e.HTTPStatus)
			}
			if e.TrackingID != "" {
				fmt.Fprintf(w, ", trackingId %s", e.TrackingID)
			}
			fmt.Fprintf(w, "\n    %s\n", e.Message)
		}
		if more := g.Count - len(g.Examples); more > 0 {
			fmt.Fprintf(w, "  ... and %d more\n", more)
		}
	}
	if len(r.SkippedExamples) > 0 {
		fmt.Fprintf(w, "\nnot dead letters (%d):\n", r.Skipped)
		for _, s := range r.SkippedExamples {
			fmt.Fprintf(w, "  %s: %s\n", s.DeadLetter, s.Error)
		}
		if more := r.Skipped - len(r.SkippedExamples); more > 0 {
			fmt.Fprintf(w, "  ... and %d more\n", more)
		}
	}
	return nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orNone(s string) string {
	if s == "" {
		return "(unknown step)"
	}
	return s
}

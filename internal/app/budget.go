package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

// The Webex rate budget (--webex-rate-limit) belongs to the partner token,
// so to the whole consumer group, not to one instance. Each instance takes
// the share of it that its assigned partitions are of the orders topic's:
// three instances on twelve partitions take a third each, and a rebalance
// moves the shares with the partitions. The group's assignment is the one
// thing every member learns at the same moment, with nothing to run but
// Kafka. See the README's "Scaling out" for what it does not cover.

// budget sets the limiter's share on every assignment of the orders topic.
type budget struct {
	limiter *provisioning.Limiter
	client  *kafka.Client
	topic   string
	log     *zerolog.Logger
	// partitions is the topic's partition count last read; 0 before.
	partitions int
}

// metadataTimeout bounds the read of the topic's partition count, which
// delays the start of a generation's work.
const metadataTimeout = 5 * time.Second

func (b *budget) Assigned(partitions []int) {
	ctx, cancel := context.WithTimeout(context.Background(), metadataTimeout)
	defer cancel()
	if n, err := b.count(ctx); err != nil {
		b.log.Warn().Err(err).Int("partitions_assigned", len(partitions)).
			Msg("cannot read the orders topic's partition count: the Webex budget share stays as it was")
	} else {
		b.partitions = n
	}
	if b.partitions == 0 {
		return
	}
	// An instance with no partition still serves customer orders: it keeps
	// a sliver of the budget rather than none.
	share := float64(max(len(partitions), 1)) / float64(max(b.partitions, len(partitions)))
	b.limiter.SetShare(share)
	st := b.limiter.Stats()
	b.log.Info().Int("partitions_assigned", len(partitions)).Int("partitions_total", b.partitions).
		Float64("budget_share", share).Float64("webex_rate_limit", st.Rate).
		Msg("this instance's share of the Webex rate budget")
}

func (b *budget) count(ctx context.Context) (int, error) {
	md, err := b.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{b.topic}})
	if err != nil {
		return 0, err
	}
	for _, t := range md.Topics {
		if t.Name == b.topic {
			if t.Error != nil {
				return 0, t.Error
			}
			return len(t.Partitions), nil
		}
	}
	return 0, errors.New("the broker did not describe topic " + b.topic)
}

// Between generations the share stays: the drained orders finish under it.
func (b *budget) Revoked([]int, time.Duration)   {}
func (b *budget) Committed(time.Duration, error) {}

// A 429 with a Retry-After is Webex saying that the token's budget is
// spent: not this instance's share, the group's. The instance that meets it
// pauses (the limiter), and tells the others through the budget topic, so
// that they pause for what remains of it too. The topic is one partition,
// compacted, keyed by instance: it holds each instance's last pause, and
// readers start at its end, since only pauses still running matter.

// pauseRecord is the value of a budget topic record.
type pauseRecord struct {
	SchemaVersion int    `json:"schemaVersion"`
	Instance      string `json:"instance"`
	PauseMs       int64  `json:"pauseMs"`
}

// maxPauseRecord bounds what is decoded of a budget topic record: its
// writers are instances of this service, but its bytes are still untrusted.
const maxPauseRecord = 512

// pauses carries the pauses between the instances that share the budget.
type pauses struct {
	limiter  *provisioning.Limiter
	instance string
	log      *zerolog.Logger
	// told holds the latest pause this instance met and has not sent yet.
	told chan time.Duration
}

func newPauses(instance string, log *zerolog.Logger) *pauses {
	return &pauses{instance: instance, log: log, told: make(chan time.Duration, 1)}
}

// onPause is the limiter's OnPause: it must not block, and the latest
// pause is the one worth sending.
func (p *pauses) onPause(d time.Duration) {
	for {
		select {
		case p.told <- d:
			return
		default:
		}
		select {
		case old := <-p.told:
			d = max(d, old)
		default:
		}
	}
}

// run sends this instance's pauses to topic and applies the others' until
// ctx ends.
func (p *pauses) run(ctx context.Context, brokers []string, topic string, dialer *kafka.Dialer, transport kafka.RoundTripper) {
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Transport: transport, RequiredAcks: kafka.RequireOne,
		BatchTimeout: time.Millisecond, MaxAttempts: 3}
	defer w.Close()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, Dialer: dialer, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(kafka.LastOffset); err != nil {
		p.log.Warn().Err(err).Str("topic", topic).Msg("cannot read the budget topic: pauses of other instances are not followed")
		return
	}
	done := make(chan struct{})
	go func() { defer close(done); p.follow(ctx, r) }()
	defer func() { <-done }()
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-p.told:
			v, _ := json.Marshal(pauseRecord{SchemaVersion: 1, Instance: p.instance, PauseMs: d.Milliseconds()})
			if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(p.instance), Value: v, Time: time.Now()}); err != nil && ctx.Err() == nil {
				p.log.Warn().Err(err).Str("topic", topic).Msg("cannot tell the other instances of a Webex pause")
			}
		}
	}
}

// follow applies the other instances' pauses, for what remains of each.
func (p *pauses) follow(ctx context.Context, r *kafka.Reader) {
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return // ctx ended; the reader retries broker errors itself
		}
		rec, left, err := p.pauseOf(m, time.Now())
		switch {
		case err != nil:
			p.log.Warn().Err(err).Int64("offset", m.Offset).Int("bytes", len(m.Value)).Msg("ignoring a budget topic record that is not a pause")
			continue
		case left <= 0:
			continue // this instance's own, or over already
		}
		p.limiter.Pause(left)
		p.log.Info().Str("from_instance", rec.Instance).Int64("pause_ms", left.Milliseconds()).
			Msg("another instance met a Webex 429: pausing with it")
	}
}

// pauseOf reads a budget topic record: what remains at now of another
// instance's pause (0 for this instance's own, or one over already).
func (p *pauses) pauseOf(m kafka.Message, now time.Time) (pauseRecord, time.Duration, error) {
	var rec pauseRecord
	switch {
	case len(m.Value) > maxPauseRecord:
		return rec, 0, fmt.Errorf("%d bytes, more than a pause's %d", len(m.Value), maxPauseRecord)
	case json.Unmarshal(m.Value, &rec) != nil:
		return rec, 0, errors.New("not JSON of a pause")
	case rec.SchemaVersion != 1 || rec.PauseMs <= 0 || rec.Instance == "":
		return rec, 0, fmt.Errorf("schema version %d, pause %d ms, instance %q: not a pause", rec.SchemaVersion, rec.PauseMs, rec.Instance)
	case rec.Instance == p.instance:
		return rec, 0, nil
	}
	return rec, time.Duration(rec.PauseMs)*time.Millisecond - now.Sub(m.Time), nil
}

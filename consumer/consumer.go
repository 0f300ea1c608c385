// Package consumer reads records from a Kafka consumer group and hands them to a
// Handler: records of one key in offset order, different keys in parallel, each
// offset committed only once every record before it on its partition finished.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

// Handler processes one record. A nil error means the record is finished (its
// outcome or dead letter is durably written) and its offset may be committed. An
// error means it is not: the consumer retries the same record after a backoff and
// never skips it. A *PauseError says no record can succeed now (a configuration
// fault): the consumer then starts no other record until this one, retried,
// succeeds. slot is the call's worker slot, to give back while it waits (see
// Slot). Handle is called concurrently for records of different keys and must be
// safe to call again for the same record.
type Handler interface {
	Handle(ctx context.Context, msg kafka.Message, slot *Slot) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, msg kafka.Message, slot *Slot) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, msg kafka.Message, slot *Slot) error {
	return f(ctx, msg, slot)
}

// PauseError is a handler's error that no record can get past (a revoked
// token, say): retrying every record would only flood the logs and the API.
// The consumer retries the record that met it alone, and starts no other
// until it succeeds.
type PauseError struct{ Err error }

// Pause marks err as one that no record can get past (see PauseError).
func Pause(err error) error { return &PauseError{Err: err} }

func (e *PauseError) Error() string { return e.Err.Error() }
func (e *PauseError) Unwrap() error { return e.Err }

// Config configures a Consumer. The zero value of each optional field selects the
// default given in its comment.
type Config struct {
	// Brokers are the bootstrap addresses. Required.
	Brokers []string
	// GroupID is the consumer group. Required.
	GroupID string
	// Topic is the orders topic. Required.
	Topic string
	// Dialer connects to the brokers (TLS, SASL). Default kafka.DefaultDialer.
	Dialer *kafka.Dialer
	// Fatal says which errors of joining the group no retry can fix (a refused
	// password or certificate): Run then returns them. Default: none; Run
	// retries every error, about once a second.
	Fatal func(error) bool
	// KeyFunc names the ordering key of a record: records with equal keys are
	// handled one after another in offset order. Default: the record's key, or
	// its partition and offset (no ordering) when the key is empty.
	KeyFunc func(kafka.Message) string
	// MaxInFlight is how many records are handled at once. Default 64.
	MaxInFlight int
	// MaxBufferedPerPartition bounds the fetched but unfinished records of one
	// partition; when it is reached, that partition's fetching pauses. Default 1000.
	MaxBufferedPerPartition int
	// MaxBuffered bounds them over all partitions. Default 2000: enough to keep
	// the workers busy. Buffered records wait in per-key queues, not goroutines.
	MaxBuffered int
	// CommitInterval is how often finished offsets are committed. Default 1s.
	CommitInterval time.Duration
	// ShutdownTimeout bounds how long records being handled may finish when the
	// consumer stops or a rebalance takes their partition away; then their
	// context is cancelled. Default 15s.
	ShutdownTimeout time.Duration
	// SessionTimeout is the group session timeout. Default 30s.
	SessionTimeout time.Duration
	// HeartbeatInterval is how often the group is told we live. Default 3s.
	HeartbeatInterval time.Duration
	// RebalanceTimeout bounds a rebalance; it must exceed ShutdownTimeout so
	// that draining fits in it. Default ShutdownTimeout + 15s.
	RebalanceTimeout time.Duration
	// MaxWait bounds a fetch that waits for new records. Default 500ms.
	MaxWait time.Duration
	// RetryInitialInterval is the first wait before handling a record again after
	// the handler failed. Default 500ms.
	RetryInitialInterval time.Duration
	// RetryMaxInterval caps that wait. Default 30s.
	RetryMaxInterval time.Duration
	// StatsInterval is how often progress is logged while records are pending
	// (0: the default 30s; negative: never).
	StatsInterval time.Duration
	// Observer is told of commits and assignments (for metrics). Default: none.
	Observer Observer
	// Logger receives the consumer's logs. Default: a disabled logger.
	Logger *zerolog.Logger
}

// Observer is told of the consumer's commits and assignments: Assigned with
// the partitions of each generation, and Revoked with them once the
// generation's records are finished or given up and its last commit done,
// before the member rejoins the group, so that whatever the observer does
// for a partition stops before another member takes it. Its methods must be
// safe for concurrent use; all but Revoked must be quick.
type Observer interface {
	Committed(took time.Duration, err error)
	Assigned(partitions []int)
	Revoked(partitions []int)
}

type noObserver struct{}

func (noObserver) Committed(time.Duration, error) {}
func (noObserver) Assigned([]int)                 {}
func (noObserver) Revoked([]int)                  {}

// DefaultConfig returns the defaults of the optional settings, the values
// the zero fields take.
func DefaultConfig() Config {
	return Config{
		MaxInFlight:             64,
		MaxBufferedPerPartition: 1000,
		MaxBuffered:             2000,
		CommitInterval:          time.Second,
		ShutdownTimeout:         15 * time.Second,
		SessionTimeout:          30 * time.Second,
		HeartbeatInterval:       3 * time.Second,
		MaxWait:                 500 * time.Millisecond,
		RetryInitialInterval:    500 * time.Millisecond,
		RetryMaxInterval:        30 * time.Second,
		StatsInterval:           30 * time.Second,
	}
}

func (c *Config) setDefaults() {
	d := DefaultConfig()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt := func(n *int, def int) {
		if *n <= 0 {
			*n = def
		}
	}
	setInt(&c.MaxInFlight, d.MaxInFlight)
	setInt(&c.MaxBufferedPerPartition, d.MaxBufferedPerPartition)
	setInt(&c.MaxBuffered, d.MaxBuffered)
	setDur(&c.CommitInterval, d.CommitInterval)
	setDur(&c.ShutdownTimeout, d.ShutdownTimeout)
	setDur(&c.SessionTimeout, d.SessionTimeout)
	setDur(&c.HeartbeatInterval, d.HeartbeatInterval)
	setDur(&c.RebalanceTimeout, c.ShutdownTimeout+15*time.Second)
	setDur(&c.MaxWait, d.MaxWait)
	setDur(&c.RetryInitialInterval, d.RetryInitialInterval)
	setDur(&c.RetryMaxInterval, d.RetryMaxInterval)
	if c.StatsInterval == 0 {
		c.StatsInterval = d.StatsInterval
	}
	if c.KeyFunc == nil {
		c.KeyFunc = DefaultKey
	}
	if c.Logger == nil {
		l := zerolog.Nop()
		c.Logger = &l
	}
	if c.Observer == nil {
		c.Observer = noObserver{}
	}
}

// DefaultKey is the record's key, or its partition and offset when the key is
// empty (such records are not ordered among themselves).
func DefaultKey(m kafka.Message) string {
	if len(m.Key) > 0 {
		return string(m.Key)
	}
	return "\x00" + strconv.Itoa(m.Partition) + "/" + strconv.FormatInt(m.Offset, 10)
}

// Validate reports the first missing or wrong setting.
func (c *Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("no Kafka brokers configured")
	case c.GroupID == "":
		return errors.New("no consumer group id configured")
	case c.Topic == "":
		return errors.New("no orders topic configured")
	case c.MaxBuffered > 0 && c.MaxInFlight > c.MaxBuffered:
		return errors.New("max in flight exceeds max buffered")
	}
	return nil
}

// Consumer reads the orders topic as a member of a consumer group. It is meant
// to be Run once.
type Consumer struct {
	cfg     Config
	handler Handler
	log     zerolog.Logger
	global  chan struct{}
	sched   *scheduler

	mu    sync.Mutex
	parts map[int]*partition // the current generation's partitions
}

// New returns a Consumer that hands records to h.
func New(cfg Config, h Handler) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	c := &Consumer{cfg: cfg, handler: h, log: *cfg.Logger, global: make(chan struct{}, cfg.MaxBuffered)}
	c.sched = newScheduler(h, cfg.MaxInFlight, func() backoff.BackOff {
		return backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(cfg.RetryInitialInterval),
			backoff.WithMaxInterval(cfg.RetryMaxInterval),
			backoff.WithMaxElapsedTime(0), // never give up on a record: skipping it would lose it
		)
	}, c.log)
	return c, nil
}

// Run consumes until ctx ends. Then it stops fetching, lets the records being
// handled finish within the shutdown timeout, commits what finished, leaves the
// group and returns nil.
func (c *Consumer) Run(ctx context.Context) error {
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                c.cfg.GroupID,
		Brokers:           c.cfg.Brokers,
		Dialer:            c.cfg.Dialer,
		Topics:            []string{c.cfg.Topic},
		HeartbeatInterval: c.cfg.HeartbeatInterval,
		SessionTimeout:    c.cfg.SessionTimeout,
		RebalanceTimeout:  c.cfg.RebalanceTimeout,
		JoinGroupBackoff:  time.Second,
		StartOffset:       kafka.FirstOffset,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			c.log.Warn().Str("component", "kafka-group").Msgf(msg, args...)
		}),
	})
	if err != nil {
		return err
	}
	var gens sync.WaitGroup
	defer func() {
		// Leave the group only after the generation's last commit.
		gens.Wait()
		if err := group.Close(); err != nil {
			c.log.Warn().Err(err).Msg("leaving the consumer group")
		}
		c.sched.wait()
	}()
	if c.cfg.StatsInterval > 0 {
		stop := make(chan struct{})
		defer close(stop)
		go c.logStats(stop)
	}
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				return nil
			}
			if c.cfg.Fatal != nil && c.cfg.Fatal(err) {
				return fmt.Errorf("joining the consumer group: %w", err)
			}
			c.log.Error().Err(err).Msg("joining the consumer group; retrying")
			if sleep(ctx, time.Second) != nil {
				return nil
			}
			continue
		}
		c.runGeneration(ctx, gen, &gens)
	}
}

// runGeneration starts one fetcher per assigned partition and the committer.
// The generation ends when the group rebalances or ctx ends; the committer then
// drains and commits before the group may move on.
func (c *Consumer) runGeneration(ctx context.Context, gen *kafka.Generation, gens *sync.WaitGroup) {
	assigned := gen.Assignments[c.cfg.Topic]
	parts := make(map[int]*partition, len(assigned))
	for _, a := range assigned {
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		p := &partition{
			topic:    c.cfg.Topic,
			id:       a.ID,
			ctx:      pctx,
			cancel:   cancel,
			stop:     make(chan struct{}),
			tracker:  newTracker(a.Offset),
			buffered: make(chan struct{}, c.cfg.MaxBufferedPerPartition),
			global:   c.global,
		}
		parts[a.ID] = p
		offset := a.Offset
		gens.Add(1)
		gen.Start(func(gctx context.Context) {
			defer gens.Done()
			c.fetch(ctx, gctx, p, offset)
		})
	}
	c.mu.Lock()
	c.parts = parts
	c.mu.Unlock()
	ids := make([]int, 0, len(parts))
	for id := range parts {
		ids = append(ids, id)
	}
	c.log.Info().Int32("generation", gen.ID).Ints("partitions", ids).Msg("partitions assigned")
	c.cfg.Observer.Assigned(ids)

	gens.Add(1)
	gen.Start(func(gctx context.Context) {
		defer gens.Done()
		c.commitLoop(ctx, gctx, gen, parts)
	})
}

// fetch reads one partition from offset and submits its records, pausing while
// the buffers are full.
func (c *Consumer) fetch(ctx, gctx context.Context, p *partition, offset int64) {
	fctx, cancel := context.WithCancel(gctx)
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
			cancel()
		case <-fctx.Done():
		}
	}()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   c.cfg.Brokers,
		Topic:     p.topic,
		Partition: p.id,
		Dialer:    c.cfg.Dialer,
		MaxWait:   c.cfg.MaxWait,
		// One fetch holds at most this much per partition: with the buffers
		// above it bounds memory however deep the backlog is.
		MaxBytes: 1 << 20,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			c.log.Warn().Str("component", "kafka-reader").Int("partition", p.id).Msgf(msg, args...)
		}),
	})
	defer r.Close()
	if err := r.SetOffset(offset); err != nil {
		c.log.Error().Err(err).Int("partition", p.id).Int64("offset", offset).Msg("setting the start offset")
		return
	}
	for {
		select {
		case p.buffered <- struct{}{}:
		case <-fctx.Done():
			return
		}
		select {
		case p.global <- struct{}{}:
		case <-fctx.Done():
			<-p.buffered
			return
		}
		msg, err := r.FetchMessage(fctx)
		if err != nil {
			<-p.global
			<-p.buffered
			if fctx.Err() != nil {
				return
			}
			// The reader reconnects by itself; wait a little rather than spin.
			c.log.Error().Err(err).Int("partition", p.id).Msg("fetching orders")
			if sleep(fctx, time.Second) != nil {
				return
			}
			continue
		}
		if err := p.tracker.add(msg.Offset, time.Now()); err != nil {
			// Cannot happen with one reader per partition; refuse rather than risk a wrong commit.
			<-p.global
			<-p.buffered
			c.log.Error().Err(err).Int("partition", p.id).Msg("offset out of order; record ignored, it stays uncommitted")
			continue
		}
		c.sched.submit(&item{msg: msg, key: c.cfg.KeyFunc(msg), part: p})
	}
}

// commitLoop commits finished offsets every interval, and when the generation
// ends (rebalance) or ctx ends (shutdown): stops the partitions, waits for the
// records being handled up to the shutdown timeout, and commits a last time.
func (c *Consumer) commitLoop(ctx, gctx context.Context, gen *kafka.Generation, parts map[int]*partition) {
	t := time.NewTicker(c.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.commit(gen, parts)
			continue
		case <-gctx.Done():
		case <-ctx.Done():
		}
		break
	}
	for _, p := range parts {
		p.giveUp()
	}
	deadline := time.Now().Add(c.cfg.ShutdownTimeout)
	for running(parts) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := running(parts); n > 0 {
		c.log.Warn().Int64("records", n).Dur("shutdown_timeout_ms", c.cfg.ShutdownTimeout).
			Msg("records still being handled at the shutdown timeout are cancelled; they will be redelivered")
	}
	for _, p := range parts {
		p.cancel()
	}
	c.commit(gen, parts)
	ids := make([]int, 0, len(parts))
	for id := range parts {
		ids = append(ids, id)
	}
	c.cfg.Observer.Revoked(ids)
	c.log.Info().Int32("generation", gen.ID).Msg("partitions released")
}

func running(parts map[int]*partition) int64 {
	var n int64
	for _, p := range parts {
		n += p.running.Load()
	}
	return n
}

// commit commits every partition whose finished watermark moved.
func (c *Consumer) commit(gen *kafka.Generation, parts map[int]*partition) {
	offsets := map[int]int64{}
	for id, p := range parts {
		if w, ok := p.tracker.committable(); ok {
			offsets[id] = w
		}
	}
	if len(offsets) == 0 {
		return
	}
	start := time.Now()
	err := gen.CommitOffsets(map[string]map[int]int64{c.cfg.Topic: offsets})
	c.cfg.Observer.Committed(time.Since(start), err)
	if err != nil {
		// Typically a rebalance in progress: the records are redelivered to the
		// partition's next owner, and handling them is idempotent.
		c.log.Warn().Err(err).Msg("committing offsets failed; uncommitted records will be redelivered")
		return
	}
	for id, w := range offsets {
		parts[id].tracker.markCommitted(w)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Package consumer reads records from a Kafka consumer group and hands them to a
// Handler: records of one key in offset order, different keys in parallel, each
// offset committed only once every record before it on its partition finished.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
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
	// Dialer connects the partition readers to the brokers (TLS, SASL).
	// Default kafka.DefaultDialer.
	Dialer *kafka.Dialer
	// Transport carries the group's requests (TLS, SASL): joining, heartbeats,
	// commits. Default: one with Dialer's TLS and SASL, or
	// kafka.DefaultTransport without a Dialer.
	Transport kafka.RoundTripper
	// GroupInstanceID makes this member static (KIP-345): after a crash, a
	// restart with the same id takes its partitions back at once instead of
	// waiting out the dead member's session. It must be unique in the group
	// and stable across restarts of one instance (its pod's name). Default
	// empty: a dynamic member.
	GroupInstanceID string
	// Outages is told when Kafka fails and when it answers again. Default:
	// every failure logged.
	Outages Outages
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
	// SessionTimeout is the group session timeout: a member whose heartbeat
	// the coordinator has not had for this long is expelled. Default 10s.
	SessionTimeout time.Duration
	// HeartbeatInterval is how often the group is told we live, and how soon
	// a member learns of a rebalance. Default 1s.
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
// each generation's id (the group's, the same for every member) and this
// member's partitions in it, and Revoked with them once the
// generation's records are finished or given up and its last commit done,
// before the member rejoins the group, so that whatever the observer does
// for a partition stops before another member takes it. Its methods must be
// safe for concurrent use; all but Revoked must be quick.
type Observer interface {
	Committed(took time.Duration, err error)
	Assigned(generation int32, partitions []int)
	// Revoked is told the partitions released and how long their drain
	// and last commit took.
	Revoked(partitions []int, drained time.Duration)
}

// Outages is told of Kafka's failures and successes (see outage.Tracker).
type Outages interface {
	Failed(err error, held int)
	Recovered()
}

type logOutages struct{ log zerolog.Logger }

func (o logOutages) Failed(err error, _ int) { o.log.Error().Err(err).Msg("Kafka failed") }
func (logOutages) Recovered()                {}

type noObserver struct{}

func (noObserver) Committed(time.Duration, error) {}
func (noObserver) Assigned(int32, []int)          {}
func (noObserver) Revoked([]int, time.Duration)   {}

// DefaultConfig returns the defaults of the optional settings, the values
// the zero fields take.
func DefaultConfig() Config {
	return Config{
		MaxInFlight:             64,
		MaxBufferedPerPartition: 1000,
		MaxBuffered:             2000,
		CommitInterval:          time.Second,
		ShutdownTimeout:         15 * time.Second,
		SessionTimeout:          10 * time.Second,
		HeartbeatInterval:       time.Second,
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
	if c.Outages == nil {
		c.Outages = logOutages{*c.Logger}
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

	// commitMu makes one commit at a time, so that a watermark marked
	// committed is never older than one committed after it.
	commitMu sync.Mutex
	mu       sync.Mutex
	parts    map[int]*partition // the partitions held
	gen      *generation        // the generation they are held in
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
//
// A rebalance costs what it must: with the group on our cooperative
// assignor, a member keeps fetching and handling the partitions it keeps
// while the group rebalances, and drains only those that move; the assignor
// gives a moving partition to its new owner one rebalance later, once the old
// owner has drained it, committed and rejoined. A group still on range (an
// older version of the service among its members) rebalances eagerly: every
// partition is drained before the member rejoins.
func (c *Consumer) Run(ctx context.Context) error {
	transport := c.cfg.Transport
	switch d := c.cfg.Dialer; {
	case transport != nil:
	case d != nil:
		// The group speaks with the readers' TLS and SASL.
		tr := &kafka.Transport{TLS: d.TLS, SASL: d.SASLMechanism, ClientID: d.ClientID, DialTimeout: d.Timeout}
		defer tr.CloseIdleConnections()
		transport = tr
	default:
		transport = kafka.DefaultTransport
	}
	g := &group{
		client:     &kafka.Client{Addr: kafka.TCP(c.cfg.Brokers...), Transport: transport},
		id:         c.cfg.GroupID,
		instanceID: c.cfg.GroupInstanceID,
		topic:      c.cfg.Topic,
		session:    c.cfg.SessionTimeout,
		rebalance:  c.cfg.RebalanceTimeout,
		heartbeat:  c.cfg.HeartbeatInterval,
		log:        c.log,
	}
	owned := map[int]*partition{}
	var gen *generation
	commits := make(chan struct{})
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		c.commitLoop(commits)
	}()
	defer func() {
		c.release(owned, partitionIDs(owned))
		close(commits)
		<-committed
		if gen != nil {
			gen.release()
		}
		g.leave()
		c.sched.wait()
	}()
	if c.cfg.StatsInterval > 0 {
		stop := make(chan struct{})
		defer close(stop)
		go c.logStats(stop)
	}
	for {
		g.owned = partitionIDs(owned)
		next, err := g.join(ctx)
		if err != nil {
			if len(owned) > 0 {
				// Without the group we cannot know the partitions are still ours.
				c.release(owned, partitionIDs(owned))
			}
			if gen != nil {
				gen.release()
				gen = nil
			}
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, errFenced) || (c.cfg.Fatal != nil && c.cfg.Fatal(err)) {
				return fmt.Errorf("joining the consumer group: %w", err)
			}
			c.cfg.Outages.Failed(fmt.Errorf("joining the consumer group: %w", err), 0)
			if sleep(ctx, time.Second) != nil {
				return nil
			}
			continue
		}
		c.cfg.Outages.Recovered()
		if gen != nil {
			gen.release()
		}
		gen = next
		// Commits of the partitions kept go on under the new generation.
		c.mu.Lock()
		c.gen = gen
		c.mu.Unlock()
		var gone []int
		for id := range owned {
			if _, still := gen.Assigned[id]; !still {
				gone = append(gone, id)
			}
		}
		c.release(owned, gone)
		for id, offset := range gen.Assigned {
			if owned[id] == nil {
				owned[id] = c.start(ctx, id, offset)
			}
		}
		c.mu.Lock()
		c.parts = maps.Clone(owned)
		c.mu.Unlock()
		ids := partitionIDs(owned)
		c.log.Info().Int32("generation", gen.ID).Str("protocol", gen.Protocol).Ints("partitions", ids).Ints("released", gone).Msg("partitions assigned")
		c.cfg.Observer.Assigned(gen.ID, ids)
		if len(gone) > 0 && gen.cooperative() {
			// What we released is withheld from its next owner until we rejoin.
			continue
		}
		select {
		case <-gen.Done():
		case <-ctx.Done():
			return nil
		}
		why := context.Cause(gen.ctx)
		switch {
		case errors.Is(why, errFenced):
			c.release(owned, partitionIDs(owned))
			return fmt.Errorf("consumer group instance %q: %w", c.cfg.GroupInstanceID, errFenced)
		case !gen.cooperative() || !errors.Is(why, kafka.RebalanceInProgress):
			// Eager, or expelled: nothing may be kept. The heartbeat goes
			// on while the partitions drain, so the member stays in the group.
			c.release(owned, partitionIDs(owned))
		}
		c.log.Info().Int32("generation", gen.ID).AnErr("reason", why).Msg("rejoining the consumer group")
	}
}

// start begins fetching and handling one newly assigned partition.
func (c *Consumer) start(ctx context.Context, id int, offset int64) *partition {
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	fctx, stopFetch := context.WithCancel(ctx)
	p := &partition{
		topic:     c.cfg.Topic,
		id:        id,
		ctx:       pctx,
		cancel:    cancel,
		stopFetch: stopFetch,
		fetched:   make(chan struct{}),
		stop:      make(chan struct{}),
		tracker:   newTracker(offset),
		buffered:  make(chan struct{}, c.cfg.MaxBufferedPerPartition),
		global:    c.global,
	}
	go func() {
		defer close(p.fetched)
		c.fetch(fctx, p, offset)
	}()
	return p
}

// release stops the partitions ids of owned, lets their records being
// handled finish within the shutdown timeout, commits what finished and
// removes them from owned; the observer is then told. The member goes on
// heartbeating meanwhile.
func (c *Consumer) release(owned map[int]*partition, ids []int) {
	if len(ids) == 0 {
		return
	}
	start := time.Now()
	parts := make(map[int]*partition, len(ids))
	for _, id := range ids {
		p := owned[id]
		parts[id] = p
		p.stopFetch()
		p.giveUp()
	}
	for _, p := range parts {
		<-p.fetched
	}
	deadline := start.Add(c.cfg.ShutdownTimeout)
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
	c.commit(parts)
	for _, id := range ids {
		delete(owned, id)
	}
	c.mu.Lock()
	c.parts = maps.Clone(owned)
	c.mu.Unlock()
	drained := time.Since(start)
	c.cfg.Observer.Revoked(ids, drained)
	c.log.Info().Ints("partitions", ids).Dur("drained_ms", drained).Msg("partitions released")
}

func partitionIDs(parts map[int]*partition) []int {
	ids := make([]int, 0, len(parts))
	for id := range parts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// fetch reads one partition from offset and submits its records, pausing while
// the buffers are full.
func (c *Consumer) fetch(fctx context.Context, p *partition, offset int64) {
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
			c.cfg.Outages.Failed(fmt.Errorf("fetching orders of partition %d: %w", p.id, err), 0)
			if sleep(fctx, time.Second) != nil {
				return
			}
			continue
		}
		c.cfg.Outages.Recovered()
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

// commitLoop commits the finished offsets of the partitions held, every
// interval, until stop is closed.
func (c *Consumer) commitLoop(stop <-chan struct{}) {
	t := time.NewTicker(c.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.mu.Lock()
			parts := c.parts
			c.mu.Unlock()
			c.commit(parts)
		case <-stop:
			return
		}
	}
}

func running(parts map[int]*partition) int64 {
	var n int64
	for _, p := range parts {
		n += p.running.Load()
	}
	return n
}

// commit commits every partition of parts whose finished watermark moved,
// as a member of the current generation.
func (c *Consumer) commit(parts map[int]*partition) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	if gen == nil {
		return
	}
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
	err := gen.CommitOffsets(context.Background(), offsets)
	c.cfg.Observer.Committed(time.Since(start), err)
	if err != nil {
		// Typically a rebalance in progress: the next commit, in the next
		// generation, carries the offsets; or the partition's next owner gets
		// the records again, and handling them is idempotent.
		ev := c.log.Warn()
		if errors.Is(err, kafka.RebalanceInProgress) {
			ev = c.log.Debug()
		}
		ev.Err(err).Msg("committing offsets failed; uncommitted records will be redelivered")
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

package pipeline

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/redact"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// FollowUpConfig configures the follow-up of subscribers left pending on their
// end user. The zero value of each field selects the default given in its
// comment.
type FollowUpConfig struct {
	// Topic is the compacted topic of the follow-up records. Required (the
	// service names it after its orders topic: <orders>-followups). It needs
	// at least as many partitions as the orders topic: an order's record goes
	// to the order's partition, so that the member that owns the order owns
	// its follow-up.
	Topic string
	// SweepInterval is the first wait between two sweeps, each one list call
	// per page of subscribers whose status changed since the last. While no
	// subscriber resolves the wait doubles, up to MaxSweepInterval. Default 30s.
	SweepInterval time.Duration
	// MaxSweepInterval caps the wait between sweeps. Default 5m.
	MaxSweepInterval time.Duration
	// Deadline is how long a subscriber may wait on its end user; then the
	// order ends failed (pending_timeout). Default 14 days.
	Deadline time.Duration
	// ConsentMoveAfter, when positive, sends the consent move email once to a
	// subscriber still in pending_user_migration this long after its order
	// was answered. Default 0: never.
	ConsentMoveAfter time.Duration
}

// DefaultFollowUpConfig returns the defaults, the values the zero fields take.
func DefaultFollowUpConfig() FollowUpConfig {
	return FollowUpConfig{SweepInterval: 30 * time.Second, MaxSweepInterval: 5 * time.Minute, Deadline: 14 * 24 * time.Hour}
}

func (c *FollowUpConfig) setDefaults() {
	d := DefaultFollowUpConfig()
	if c.SweepInterval <= 0 {
		c.SweepInterval = d.SweepInterval
	}
	if c.MaxSweepInterval <= 0 {
		c.MaxSweepInterval = d.MaxSweepInterval
	}
	c.MaxSweepInterval = max(c.MaxSweepInterval, c.SweepInterval)
	if c.Deadline <= 0 {
		c.Deadline = d.Deadline
	}
}

// sweepMargin widens each sweep's "changed since" backwards: Webex's clock and
// ours need not agree, and a change seen twice is answered once.
const sweepMargin = time.Minute

// FollowUpAPI is what the follow-up asks of Webex; *provisioning.Client is one.
type FollowUpAPI interface {
	ListSubscribers(ctx context.Context, f provisioning.ListFilter, next string) ([]provisioning.Subscriber, string, error)
	SendConsentMove(ctx context.Context, subscriberID string) error
}

// Follower follows the subscribers that orders left pending on their end
// user, for the partitions this member owns, and publishes each order's
// final outcome once its subscriber leaves the pending state. Its state is
// the follow-up topic, read back when a partition is assigned, so that a
// member that takes a partition over, or restarts after a crash, goes on
// where the last one stopped. It is safe for concurrent use; Run owns its
// goroutines.
type Follower struct {
	cfg     FollowUpConfig
	brokers []string
	dialer  *kafka.Dialer
	client  *kafka.Client // end offsets of the follow-up topic
	api     FollowUpAPI
	p       *Pipeline
	log     zerolog.Logger

	mu    sync.Mutex
	parts map[int]*followedPartition
	want  []int         // the partitions of the last assignment
	wake  chan struct{} // an assignment to start reading
}

// followedPartition is one assigned partition of the follow-up topic.
type followedPartition struct {
	id     int
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex // entries, loaded, pos and moved
	loaded  bool       // read up to the end offset it had when assigned
	entries map[string]*followed
	pos     int64         // the offset after the last record read
	moved   chan struct{} // closed when pos moves; made by a waiter
	// emitting is held while this partition's answers are written; Revoked
	// takes it, so that no answer of a partition goes out once it is revoked.
	emitting sync.Mutex
	revoked  bool
}

type followed struct {
	f schemas.FollowUp
	// checked is when a sweep last looked for its change (zero: never).
	checked time.Time
}

// NewFollower returns the Follower of p's pending orders, configured by p's
// FollowUp config, that reads the follow-up topic at brokers (its readers
// through dialer, its end offsets through transport; nil for the defaults)
// and asks api. p then supersedes the followed
// orders of a subscriber a later order removes.
func NewFollower(p *Pipeline, brokers []string, dialer *kafka.Dialer, transport kafka.RoundTripper, api FollowUpAPI) *Follower {
	f := &Follower{cfg: p.cfg.FollowUp, brokers: brokers, dialer: dialer, api: api, p: p, log: p.log.With().Str("component", "follow-up").Logger(),
		parts: map[int]*followedPartition{}, wake: make(chan struct{}, 1)}
	f.client = &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: transport}
	p.follower = f
	return f
}

// Topic returns the follow-up topic.
func (f *Follower) Topic() string { return f.cfg.Topic }

// Assigned is told the orders partitions of a new generation (consumer observer).
func (f *Follower) Assigned(_ int32, partitions []int) {
	f.mu.Lock()
	f.want = slices.Clone(partitions)
	f.mu.Unlock()
	f.poke()
}

// Committed is part of the consumer's observer; the follow-up needs nothing of it.
func (f *Follower) Committed(time.Duration, error) {}

// Revoked is told that a generation's partitions are released (consumer
// observer). It returns once no answer of them can be written any more.
func (f *Follower) Revoked(partitions []int, _ time.Duration) {
	f.mu.Lock()
	f.want = nil
	var gone []*followedPartition
	for _, id := range partitions {
		if p := f.parts[id]; p != nil {
			gone = append(gone, p)
			delete(f.parts, id)
		}
	}
	f.mu.Unlock()
	for _, p := range gone {
		p.emitting.Lock()
		p.revoked = true
		p.emitting.Unlock()
		p.cancel()
		<-p.done
	}
}

func (f *Follower) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Stats returns how many orders wait on their end user in the partitions
// this member owns, and since when the oldest waits.
func (f *Follower) Stats() (pending int, oldest time.Time) {
	for _, p := range f.partitions() {
		p.mu.Lock()
		for _, e := range p.entries {
			pending++
			if oldest.IsZero() || e.f.Since.Before(oldest) {
				oldest = e.f.Since
			}
		}
		p.mu.Unlock()
	}
	return pending, oldest
}

func (f *Follower) partitions() []*followedPartition {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*followedPartition, 0, len(f.parts))
	for _, p := range f.parts {
		out = append(out, p)
	}
	return out
}

// Run follows until ctx ends: it reads the assigned partitions of the
// follow-up topic and sweeps, backing off while nothing resolves.
func (f *Follower) Run(ctx context.Context) error {
	defer func() {
		for _, p := range f.partitions() {
			p.cancel()
			<-p.done
		}
	}()
	interval := f.cfg.SweepInterval
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.wake:
			f.reconcile(ctx)
			continue
		case <-timer.C:
		}
		f.reconcile(ctx)
		resolved, err := f.sweep(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			f.log.Warn().Err(err).Dur("retry_in_ms", interval).Msg("following pending subscribers failed; the next sweep tries again")
		case resolved > 0:
			interval = f.cfg.SweepInterval
		default:
			interval = min(2*interval, f.cfg.MaxSweepInterval)
		}
		timer.Reset(interval)
	}
}

// reconcile starts reading the partitions newly assigned.
func (f *Follower) reconcile(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range f.want {
		if f.parts[id] != nil {
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		p := &followedPartition{id: id, cancel: cancel, done: make(chan struct{}), entries: map[string]*followed{}}
		f.parts[id] = p
		go func() {
			defer close(p.done)
			f.read(pctx, p)
		}()
	}
}

// read reads one partition of the follow-up topic from its start, and then
// as records arrive, into p.entries.
func (f *Follower) read(ctx context.Context, p *followedPartition) {
	end, err := f.endOffset(ctx, p.id)
	for err != nil {
		if ctx.Err() != nil {
			return
		}
		f.log.Warn().Err(err).Int("partition", p.id).Msg("reading the follow-up topic's end offset; trying again")
		if provisioning.Sleep(ctx, time.Second) != nil {
			return
		}
		end, err = f.endOffset(ctx, p.id)
	}
	if end == 0 {
		p.mu.Lock()
		p.loaded = true
		p.mu.Unlock()
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: f.brokers, Topic: f.cfg.Topic, Partition: p.id, Dialer: f.dialer,
		MaxWait: time.Second, StartOffset: kafka.FirstOffset})
	defer r.Close()
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return // ctx ended; the reader retries everything else itself
		}
		key := string(m.Key)
		fu, err := schemas.FollowUp{}, error(nil)
		if m.Value != nil {
			if fu, err = schemas.DecodeFollowUp(m.Value); err != nil {
				f.log.Error().Err(err).Int("partition", p.id).Int64("offset", m.Offset).Msg("a follow-up record cannot be read; it is left out")
			}
		}
		p.mu.Lock()
		switch old := p.entries[key]; {
		case m.Value == nil:
			delete(p.entries, key)
		case err != nil:
		case old == nil:
			p.entries[key] = &followed{f: fu}
		default:
			old.f = fu
		}
		p.pos = m.Offset + 1
		if p.moved != nil {
			close(p.moved)
			p.moved = nil
		}
		loadedNow := !p.loaded && p.pos >= end
		if loadedNow {
			p.loaded = true
		}
		p.mu.Unlock()
		if loadedNow {
			f.poke()
		}
	}
}

func (f *Follower) endOffset(ctx context.Context, partition int) (int64, error) {
	res, err := f.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{f.cfg.Topic: {kafka.LastOffsetOf(partition)}}})
	if err != nil {
		return 0, err
	}
	for _, po := range res.Topics[f.cfg.Topic] {
		if po.Error != nil {
			return 0, po.Error
		}
		return po.LastOffset, nil
	}
	return 0, fmt.Errorf("no end offset for %s/%d", f.cfg.Topic, partition)
}

// sweep looks once at every followed order of the loaded partitions: the
// deadline, the consent reminder, and, with one list call per page of
// subscribers that became provisioned or error since they were last looked
// at, whether they left the pending state. It returns how many orders it
// answered.
func (f *Follower) sweep(ctx context.Context) (int, error) {
	start := f.p.cfg.Now()
	type target struct {
		p *followedPartition
		e *followed
	}
	byID := map[string]target{}
	var from time.Time
	for _, p := range f.partitions() {
		p.mu.Lock()
		if p.loaded {
			for _, e := range p.entries {
				byID[e.f.Subscriber.ID] = target{p, e}
				since := e.f.Since
				if !e.checked.IsZero() {
					since = e.checked
				}
				if from.IsZero() || since.Before(from) {
					from = since
				}
			}
		}
		p.mu.Unlock()
	}
	if len(byID) == 0 {
		return 0, nil
	}
	answered := 0
	for _, t := range byID {
		switch {
		case start.After(t.e.f.Deadline):
			if f.finish(ctx, t.p, t.e, nil, schemas.ReasonPendingTimeout,
				fmt.Sprintf("the subscriber still waited on its end user (Webex status %s) at the deadline, %s after the order", t.e.f.Subscriber.WebexStatus, f.cfg.Deadline)) {
				answered++
				delete(byID, t.e.f.Subscriber.ID)
			}
		case f.cfg.ConsentMoveAfter > 0 && t.e.f.ConsentMoveSentAt == nil && t.e.f.Subscriber.WebexStatus == provisioning.SubscriberPendingUserMigration &&
			start.Sub(t.e.f.Since) >= f.cfg.ConsentMoveAfter:
			f.remind(ctx, t.p, t.e, start)
		}
	}
	// Only the end states are listed: an idle sweep costs two calls however
	// many subscribers wait, and a wait that ends in a status Webex may add
	// later ends at the deadline.
	for _, status := range []string{provisioning.SubscriberProvisioned, provisioning.SubscriberError} {
		next := ""
		for {
			items, link, err := f.api.ListSubscribers(ctx, provisioning.ListFilter{Status: status, LastStatusChange: from.Add(-sweepMargin)}, next)
			if err != nil {
				return answered, fmt.Errorf("listing the subscribers now %s: %w", status, err)
			}
			for i := range items {
				sub := &items[i]
				if t, ok := byID[sub.ID]; ok && sub.Status == status {
					if f.finish(ctx, t.p, t.e, sub, "", "") {
						answered++
					}
					delete(byID, sub.ID)
				}
			}
			if link == "" {
				break
			}
			next = link
		}
	}
	for _, t := range byID {
		t.p.mu.Lock()
		t.e.checked = start
		t.p.mu.Unlock()
	}
	return answered, nil
}

// remind sends the consent move email once and records that it did.
func (f *Follower) remind(ctx context.Context, p *followedPartition, e *followed, now time.Time) {
	if err := f.api.SendConsentMove(ctx, e.f.Subscriber.ID); err != nil {
		f.log.Warn().Err(err).Str("order_id", e.f.OrderID).Str("email", redact.Email(e.f.Email)).Msg("sending the consent move email failed; the next sweep tries again")
		return
	}
	fu := e.f
	fu.ConsentMoveSentAt, fu.Attempts = &now, fu.Attempts+1
	p.emitting.Lock()
	defer p.emitting.Unlock()
	if p.revoked {
		return
	}
	m, err := f.p.pub.FollowUp(fu.OrderID, p.id, &fu)
	if err == nil {
		err = f.p.pub.Publish(ctx, m)
	}
	if err != nil {
		f.log.Error().Err(err).Str("order_id", fu.OrderID).Msg("recording the consent move email failed; it may be sent again")
		return
	}
	p.mu.Lock()
	e.f = fu
	p.mu.Unlock()
	f.log.Info().Str("order_id", fu.OrderID).Str("email", redact.Email(fu.Email)).Str("subscriber_id", fu.Subscriber.ID).Msg("consent move email sent again")
}

// Supersede ends the wait of the orders of partition whose subscriber
// (customer and email) a later order removed: they are answered failed
// (superseded by that order). It is a no-op for a partition this member does
// not follow.
func (f *Follower) Supersede(ctx context.Context, partition int, customerID, email, byOrderID string) {
	f.mu.Lock()
	p := f.parts[partition]
	f.mu.Unlock()
	if p == nil {
		return
	}
	// The follow-up of an order of this key answered just before is written
	// but perhaps not read yet: without it, that order would wait out its
	// deadline for a subscriber that is gone.
	b := backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithInitialInterval(50*time.Millisecond),
		backoff.WithMaxInterval(time.Second), backoff.WithMaxElapsedTime(0)), ctx)
	if err := backoff.Retry(func() error { return f.caughtUp(ctx, p) }, b); err != nil {
		f.log.Warn().Err(err).Str("order_id", byOrderID).Str("email", redact.Email(email)).
			Msg("the follow-up topic could not be read up to its end: an order of this subscriber left pending ends at its deadline")
		return
	}
	p.mu.Lock()
	var hits []*followed
	for _, e := range p.entries {
		if e.f.CustomerID == customerID && strings.EqualFold(e.f.Email, email) {
			hits = append(hits, e)
		}
	}
	p.mu.Unlock()
	for _, e := range hits {
		f.finish(ctx, p, e, nil, schemas.ReasonSuperseded, "the subscriber was removed by order "+byOrderID+" before its end user acted")
	}
}

// caughtUp waits until p has read every record its partition of the
// follow-up topic held when caughtUp was called.
func (f *Follower) caughtUp(ctx context.Context, p *followedPartition) error {
	end, err := f.endOffset(ctx, p.id)
	if err != nil {
		return err
	}
	for {
		p.mu.Lock()
		if p.pos >= end {
			p.mu.Unlock()
			return nil
		}
		if p.moved == nil {
			p.moved = make(chan struct{})
		}
		moved := p.moved
		p.mu.Unlock()
		select {
		case <-moved:
		case <-p.done:
			return backoff.Permanent(errors.New("the partition was revoked"))
		case <-ctx.Done():
			return backoff.Permanent(ctx.Err())
		}
	}
}

// finish publishes the final outcome of a followed order (and its dead
// letter, when it failed), then removes its follow-up record. sub is the
// subscriber that left the pending state; nil with reason for a wait that
// ended otherwise. It reports whether the answer was written.
func (f *Follower) finish(ctx context.Context, p *followedPartition, e *followed, sub *provisioning.Subscriber, reason schemas.FailureReason, message string) bool {
	p.emitting.Lock()
	defer p.emitting.Unlock()
	if p.revoked {
		return false
	}
	fu := e.f
	out := schemas.Outcome{
		SchemaVersion: schemas.OutcomeSchemaVersion, EventID: FinalEventID(fu.PendingEventID), OrderID: fu.OrderID,
		Action: fu.Action, CustomerID: fu.CustomerID, Email: fu.Email, ProcessedAt: f.p.cfg.Now().UTC(),
		Attempts: fu.Attempts, PendingEventID: fu.PendingEventID,
	}
	t := fu.OrderOccurredAt
	out.OrderOccurredAt = &t
	switch {
	case sub != nil && sub.Status == provisioning.SubscriberProvisioned:
		out.Status = schemas.StatusProvisioned
		ref := fu.Subscriber
		ref.PersonID, ref.WebexStatus, ref.Packages = sub.PersonID, sub.Status, sub.Packages
		out.Subscriber = &ref
	case sub != nil:
		reason = schemas.ReasonProvisioningError
		message = fmt.Sprintf("Webex reports the subscriber in status %s after it waited on its end user", sub.Status)
		fallthrough
	default:
		out.Status = schemas.StatusFailed
		failure := &schemas.Failure{Reason: reason, Message: message}
		if sub != nil {
			for _, it := range sub.Errors {
				failure.Errors = append(failure.Errors, schemas.APIError{Code: it.ErrorCode, Description: it.Description})
			}
		}
		out.Failure = failure
	}
	var msgs []kafka.Message
	if out.Status == schemas.StatusFailed {
		orig := kafka.Message{Topic: fu.Source.Topic, Partition: fu.Source.Partition, Offset: fu.Source.Offset, Time: fu.Source.Timestamp}
		orig.Key, _ = fu.Source.Key.Raw()
		orig.Value, _ = fu.Source.Value.Raw()
		for _, h := range fu.Source.Headers {
			v, _ := h.Value.Raw()
			orig.Headers = append(orig.Headers, kafka.Header{Key: h.Key, Value: v})
		}
		d := f.p.deadLetterOf(&job{msg: orig}, fu.OrderID, schemas.Fault{Class: schemas.ErrorClassPermanent, Step: schemas.StepFollowUp,
			Reason: string(out.Failure.Reason), Message: out.Failure.Message, Attempts: fu.Attempts, Failure: out.Failure})
		m, err := f.p.pub.DeadLetter(orig, *d)
		if err != nil {
			f.log.Error().Err(err).Str("order_id", fu.OrderID).Msg("building the dead letter of a followed order")
			return false
		}
		msgs = append(msgs, m)
	}
	om, err := f.p.pub.Outcome(orderKey(fu), out)
	if err != nil {
		f.log.Error().Err(err).Str("order_id", fu.OrderID).Msg("building the final outcome of a followed order")
		return false
	}
	// The tombstone last: should the outcome be written and the tombstone
	// not, the next owner answers again, under the same event id.
	tomb, err := f.p.pub.FollowUp(fu.OrderID, p.id, nil)
	if err != nil {
		return false
	}
	msgs = append(msgs, om, tomb)
	if err := f.p.pub.Publish(ctx, msgs...); err != nil {
		f.log.Error().Err(err).Str("order_id", fu.OrderID).Msg("writing the final outcome of a followed order failed; the next sweep tries again")
		return false
	}
	p.mu.Lock()
	delete(p.entries, fu.OrderID)
	p.mu.Unlock()
	ev := f.log.Info().Str("order_id", fu.OrderID).Str("customer_id", fu.CustomerID).Str("email", redact.Email(fu.Email)).
		Str("subscriber_id", fu.Subscriber.ID).Str("outcome", string(out.Status)).Dur("waited_ms", out.ProcessedAt.Sub(fu.Since))
	if out.Failure != nil {
		ev = ev.Str("reason", string(out.Failure.Reason))
	}
	ev.Msg("pending order finished")
	if f.p.cfg.Observer != nil {
		reason := ""
		if out.Failure != nil {
			reason = string(out.Failure.Reason)
		}
		dead := ""
		if len(msgs) == 3 {
			dead = reason
		}
		f.p.cfg.Observer.Finished(string(out.Status), reason, dead)
	}
	return true
}

// orderKey is the Kafka key of the order a follow-up answers.
func orderKey(fu schemas.FollowUp) []byte {
	k, err := fu.Source.Key.Raw()
	if err != nil || len(k) == 0 {
		return []byte(fu.OrderID)
	}
	return k
}

// FinalEventID is the event id of the final outcome of an order that was
// pending on its end user: a name-based UUID of its pending outcome's event
// id, so that it is the same whoever answers it, however often.
func FinalEventID(pendingEventID string) string {
	sum := sha1.Sum([]byte("wholesale-provisioner/final-outcome/v1\x00" + pendingEventID))
	return uuidOf(sum)
}

// followUpOf is the follow-up record of an order answered pending.
func (p *Pipeline) followUpOf(r *job, out schemas.Outcome) *schemas.FollowUp {
	hs := make([]schemas.Header, 0, len(r.msg.Headers))
	for _, h := range r.msg.Headers {
		hs = append(hs, schemas.Header{Key: h.Key, Value: schemas.NewBytes(h.Value)})
	}
	fu := &schemas.FollowUp{
		SchemaVersion: schemas.FollowUpSchemaVersion, OrderID: out.OrderID, PendingEventID: out.EventID,
		Action: out.Action, CustomerID: out.CustomerID, Email: out.Email, Subscriber: *out.Subscriber,
		Since: out.ProcessedAt, Deadline: out.ProcessedAt.Add(p.cfg.FollowUp.Deadline), Attempts: out.Attempts,
		Source: schemas.Source{Topic: r.msg.Topic, Partition: r.msg.Partition, Offset: r.msg.Offset, Timestamp: r.msg.Time.UTC(),
			Key: schemas.NewBytes(r.msg.Key), Value: schemas.NewBytes(r.msg.Value), Headers: hs},
	}
	if out.OrderOccurredAt != nil {
		fu.OrderOccurredAt = *out.OrderOccurredAt
	}
	return fu
}

// ReadFollowUps reads the follow-up topic at brokers to its end, every
// partition, and returns the orders still followed: what `provisioner
// pending` shows. It reads without a consumer group and changes nothing.
func ReadFollowUps(ctx context.Context, brokers []string, dialer *kafka.Dialer, transport kafka.RoundTripper, topic string) ([]schemas.FollowUp, error) {
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: transport}
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("reading the metadata of %s: %w", topic, err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		return nil, fmt.Errorf("the follow-up topic %s is not there", topic)
	}
	var reqs []kafka.OffsetRequest
	for _, p := range md.Topics[0].Partitions {
		reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	lo, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("listing the offsets of %s: %w", topic, err)
	}
	var out []schemas.FollowUp
	for _, po := range lo.Topics[topic] {
		if po.Error != nil {
			return nil, po.Error
		}
		if po.LastOffset <= po.FirstOffset {
			continue
		}
		entries := map[string]schemas.FollowUp{}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: po.Partition, Dialer: dialer, MaxWait: time.Second})
		if err := r.SetOffset(po.FirstOffset); err != nil {
			r.Close()
			return nil, err
		}
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				r.Close()
				return nil, fmt.Errorf("reading %s/%d: %w", topic, po.Partition, err)
			}
			if m.Value == nil {
				delete(entries, string(m.Key))
			} else if fu, err := schemas.DecodeFollowUp(m.Value); err == nil {
				entries[string(m.Key)] = fu
			}
			if m.Offset+1 >= po.LastOffset {
				break
			}
		}
		r.Close()
		for _, fu := range entries {
			out = append(out, fu)
		}
	}
	slices.SortFunc(out, func(a, b schemas.FollowUp) int { return a.Since.Compare(b.Since) })
	return out, nil
}

package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
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

// budget tells the peers of every assignment of the orders topic, which
// sets the limiter's share.
type budget struct {
	peers  *peers
	client *kafka.Client
	topic  string
	log    *zerolog.Logger
	// partitions is the topic's partition count last read; 0 before.
	partitions int
}

// metadataTimeout bounds the read of the topic's partition count, which
// delays the start of a generation's work.
const metadataTimeout = 5 * time.Second

func (b *budget) Assigned(generation int32, partitions []int) {
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
	share := b.peers.assigned(generation, len(partitions), b.partitions, time.Now())
	b.log.Info().Int32("generation", generation).Int("partitions_assigned", len(partitions)).Int("partitions_total", b.partitions).
		Float64("budget_share", share).Float64("webex_rate_limit", b.peers.limiter.Stats().Rate).
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
// that they pause for what remains of it too.
//
// A member that dies holds its partitions, and so its share, until the
// group expels it (the session timeout): the group would run that long on
// the survivors' shares. So every instance also writes a heartbeat to the
// budget topic each second with its generation and its partition count,
// and an instance that reads silentBeats of its own heartbeats without one
// of another member of its generation counts that member's partitions out
// of the total: the survivors split its share until the next generation.
// The topic's order is the clock (no clocks compared, and a reader that
// lags sees its own heartbeats late too). The topic is one partition,
// compacted, keyed by instance; readers start at its end.
//
// Partitions are not work: a member whose partitions are drained would sit
// on its share while another works a backlog at its own. So a heartbeat
// also carries the fraction of the group's budget its writer used in the
// last second, and whether it lends: a member that uses less than a
// lendBelow part of its fair share while another member does not lend
// lends a lendPart of what it leaves, and the members that do not lend
// split what is lent by their partitions. Every member reads the same
// records, so the shares still add up to the budget. A lender keeps enough to grow: it stops lending once it uses
// stopLendingAt of what it kept, and takes its whole share back when it
// reads that heartbeat of its own, as the borrowers read it too.

// budgetRecord is the value of a budget topic record: a heartbeat, and a
// pause when PauseMs is set.
type budgetRecord struct {
	SchemaVersion int    `json:"schemaVersion"`
	Instance      string `json:"instance"`
	PauseMs       int64  `json:"pauseMs,omitempty"`
	// Generation and Partitions are the writer's consumer group generation
	// and its partition count in it (generation 0: none yet, or a writer
	// from before heartbeats).
	Generation int32 `json:"generation,omitempty"`
	Partitions int   `json:"partitions,omitempty"`
	// Used is the fraction of the group's budget the writer's calls used in
	// the last second; Lending says that it lends what it leaves of its share.
	Used    float64 `json:"used,omitempty"`
	Lending bool    `json:"lending,omitempty"`
}

const (
	// maxBudgetRecord bounds what is decoded of a budget topic record: its
	// writers are instances of this service, but its bytes are still untrusted.
	maxBudgetRecord = 512
	// beatEvery is how often an instance writes its heartbeat.
	beatEvery = time.Second
	// silentBeats of this instance's own heartbeats read with none of
	// another member make that member silent: between 2 and 3 s of silence,
	// far above a heartbeat's write time, far below a session timeout.
	silentBeats = 3
	// maxPeers bounds the members remembered; more are never counted out.
	maxPeers = 4096
	// lendBelow, lendPart and stopLendingAt shape lending (see above): a
	// member lends below a third of its fair share, so that one working at
	// its share never does, and keeps a tenth of what it leaves, so that a
	// new burst of its own has room for a heartbeat or two.
	lendBelow     = 0.3
	lendPart      = 0.9
	stopLendingAt = 0.9
)

// peers carries the pauses and heartbeats between the instances that share
// the budget, and sets the limiter's share from the assignment and from who
// is silent.
type peers struct {
	limiter  *provisioning.Limiter
	instance string
	// budget is the group's rate budget in requests per second; 0 when none
	// is set, and then nothing is lent.
	budget float64
	log    *zerolog.Logger
	// told holds the latest pause this instance met and has not sent yet.
	told chan time.Duration
	// beat asks for a heartbeat at once: a new generation's.
	beat chan struct{}

	mu     sync.Mutex
	roster roster
	usage  usage
	// lending and borrowing are what was last logged of them.
	lending, borrowing bool
}

// newPeers: budget is the group's rate budget (requests/s, 0 for none);
// silence is how long a silent member's share may be taken. Past it, a
// member the group has not expelled is alive as far as the group knows, and
// its share is given back.
func newPeers(instance string, budget float64, silence time.Duration, log *zerolog.Logger) *peers {
	return &peers{instance: instance, budget: budget, log: log, told: make(chan time.Duration, 1), beat: make(chan struct{}, 1),
		roster: roster{self: instance, silence: silence, claims: map[string]*claim{}}}
}

// usage measures the fraction of the budget this instance's calls use;
// only run's goroutine touches it.
type usage struct {
	calls    int64
	at       time.Time
	used     float64
	measured bool
}

// of is the fraction of budget used since the last measure, given the
// limiter's count of calls; measured is false until a first interval is
// over. An interval shorter than half a heartbeat (a heartbeat sent at once
// for a pause or an assignment) is too short to say: the last measure stands.
func (u *usage) of(calls int64, now time.Time, budget float64) (used float64, measured bool) {
	switch dt := now.Sub(u.at); {
	case budget <= 0:
		return 0, false
	case u.at.IsZero():
		u.calls, u.at = calls, now
	case dt >= beatEvery/2:
		u.used = min(1, max(0, float64(calls-u.calls)/dt.Seconds()/budget))
		u.calls, u.at, u.measured = calls, now, true
	}
	return u.used, u.measured
}

// onPause is the limiter's OnPause: it must not block, and the latest
// pause is the one worth sending.
func (p *peers) onPause(d time.Duration) {
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

// assigned records this instance's new generation and sets the share it
// gives; it asks for a heartbeat at once, so that the others learn of it
// within a fetch.
func (p *peers) assigned(generation int32, mine, total int, now time.Time) float64 {
	p.mu.Lock()
	p.roster.assigned(generation, mine, total)
	share := p.applyLocked(now)
	p.mu.Unlock()
	select {
	case p.beat <- struct{}{}:
	default:
	}
	return share
}

// applyLocked gives the limiter the roster's share, and logs the members
// counted out or back in since the last time, and a start or an end of
// borrowing.
func (p *peers) applyLocked(now time.Time) float64 {
	share, out, back := p.roster.share(now)
	if borrowing := share > p.roster.fair; borrowing != p.borrowing {
		p.borrowing = borrowing
		msg := "no other instance lends this one a part of its share of the Webex budget any more"
		if borrowing {
			msg = "other instances lend the part of their share of the Webex budget that they leave idle: this one borrows it"
		}
		p.log.Info().Bool("borrowing", borrowing).Float64("budget_share", share).Float64("fair_share", p.roster.fair).Msg(msg)
	}
	for _, c := range out {
		p.log.Info().Str("instance", c.instance).Int32("generation", c.gen).Int("partitions", c.partitions).
			Int64("silent_ms", now.Sub(c.at).Milliseconds()).Float64("budget_share", share).
			Msg("another instance is silent on the budget topic: taking its share of the Webex budget until the group rebalances")
	}
	for _, c := range back {
		p.log.Info().Str("instance", c.instance).Float64("budget_share", share).
			Msg("another instance counted silent is heard again, or its time is up: its share of the Webex budget is its own again")
	}
	if share > 0 {
		p.limiter.SetShare(share)
	}
	return share
}

// run writes this instance's heartbeats and pauses to topic and follows the
// others' until ctx ends.
func (p *peers) run(ctx context.Context, brokers []string, topic string, dialer *kafka.Dialer, transport kafka.RoundTripper) {
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
	tick := time.NewTicker(beatEvery)
	defer tick.Stop()
	failing := false
	for {
		var pause time.Duration
		select {
		case <-ctx.Done():
			return
		case pause = <-p.told:
		case <-p.beat:
		case now := <-tick.C:
			// A silent member's time may be up with nothing read.
			p.mu.Lock()
			p.applyLocked(now)
			p.mu.Unlock()
		}
		rec := p.heartbeat(pause, time.Now())
		v, _ := json.Marshal(rec)
		err := w.WriteMessages(ctx, kafka.Message{Key: []byte(p.instance), Value: v, Time: time.Now()})
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && (!failing || pause > 0):
			failing = true
			p.log.Warn().Err(err).Str("topic", topic).Int64("pause_ms", rec.PauseMs).
				Msg("cannot write to the budget topic: the other instances hear neither this instance's heartbeat nor its pauses (said once until it works again, and for every pause)")
		case err == nil && failing:
			failing = false
			p.log.Info().Str("topic", topic).Msg("writing to the budget topic again")
		}
	}
}

// heartbeat is this instance's next record, with what it used of the
// budget and whether it lends; it logs a start or an end of lending.
func (p *peers) heartbeat(pause time.Duration, now time.Time) budgetRecord {
	used, measured := p.usage.of(p.limiter.Stats().Acquired, now, p.budget)
	p.mu.Lock()
	defer p.mu.Unlock()
	lending := measured && p.roster.lends(used)
	if lending != p.lending {
		p.lending = lending
		msg := "this instance needs its share of the Webex budget again: it lends no more of it"
		if lending {
			msg = "this instance uses little of its share of the Webex budget: it lends the rest to the other instances until its orders need it"
		}
		p.log.Info().Bool("lending", lending).Float64("budget_used", used).Float64("fair_share", p.roster.fair).Msg(msg)
	}
	return budgetRecord{SchemaVersion: 1, Instance: p.instance, PauseMs: pause.Milliseconds(),
		Generation: p.roster.gen, Partitions: p.roster.mine, Used: used, Lending: lending}
}

// follow reads the budget topic: the others' pauses are applied for what
// remains of them, and every record moves the roster.
func (p *peers) follow(ctx context.Context, r *kafka.Reader) {
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return // ctx ended; the reader retries broker errors itself
		}
		now := time.Now()
		rec, left, err := p.recordOf(m, now)
		if err != nil {
			p.log.Warn().Err(err).Int64("offset", m.Offset).Int("bytes", len(m.Value)).Msg("ignoring a budget topic record that is not a heartbeat or a pause")
			continue
		}
		if left > 0 {
			p.limiter.Pause(left)
			p.log.Info().Str("from_instance", rec.Instance).Int64("pause_ms", left.Milliseconds()).
				Msg("another instance met a Webex 429: pausing with it")
		}
		p.mu.Lock()
		p.roster.heard(rec, now)
		p.applyLocked(now)
		p.mu.Unlock()
	}
}

// recordOf reads a budget topic record, and what remains at now of the
// pause it carries (0 for this instance's own, or one over already).
func (p *peers) recordOf(m kafka.Message, now time.Time) (budgetRecord, time.Duration, error) {
	var rec budgetRecord
	switch {
	case len(m.Value) > maxBudgetRecord:
		return rec, 0, fmt.Errorf("%d bytes, more than a budget record's %d", len(m.Value), maxBudgetRecord)
	case json.Unmarshal(m.Value, &rec) != nil:
		return rec, 0, errors.New("not JSON of a budget record")
	case rec.SchemaVersion != 1 || rec.Instance == "" || rec.PauseMs < 0 || rec.Generation < 0 || rec.Partitions < 0 || rec.Partitions > maxPartitions ||
		rec.Used < 0 || rec.Used > 1:
		return rec, 0, fmt.Errorf("schema version %d, instance %q, pause %d ms, generation %d, %d partitions, %v of the budget used: not a budget record",
			rec.SchemaVersion, rec.Instance, rec.PauseMs, rec.Generation, rec.Partitions, rec.Used)
	case rec.Instance == p.instance || rec.PauseMs == 0:
		return rec, 0, nil
	}
	return rec, time.Duration(rec.PauseMs)*time.Millisecond - now.Sub(m.Time), nil
}

// maxPartitions is more partitions than a topic has (Kafka's own limits are
// far below it): a larger count is not a member's.
const maxPartitions = 1 << 20

// roster is what one instance knows of the members of its generation from
// the budget topic, and the share of the budget that follows from it.
type roster struct {
	self    string
	silence time.Duration
	// gen, mine and total: this instance's generation, its partitions in
	// it, and the orders topic's partition count.
	gen         int32
	mine, total int
	// beats counts this instance's own records read back: the roster's clock.
	beats  int
	claims map[string]*claim
	// used and lending are this instance's, as its last heartbeat of this
	// generation read back says: the others know them from that record too.
	used    float64
	lending bool
	// fair is the share of the last share call before lending and borrowing,
	// given what it gave, and borrowers the other members heard not lending.
	fair, given float64
	borrowers   int
}

// claim is another member's last record.
type claim struct {
	instance   string
	gen        int32
	partitions int
	beats      int       // the reader's beats when it was read
	at         time.Time // when it was read
	out        bool      // counted out of the total
	used       float64
	lending    bool
}

func (r *roster) assigned(gen int32, mine, total int) {
	r.gen, r.mine, r.total = gen, mine, total
	r.used, r.lending = 0, false
	for k, c := range r.claims {
		if c.gen < gen {
			delete(r.claims, k)
		}
	}
}

func (r *roster) heard(rec budgetRecord, now time.Time) {
	if rec.Instance == r.self {
		r.beats++
		if rec.Generation == r.gen {
			r.used, r.lending = rec.Used, rec.Lending
		}
		return
	}
	c := r.claims[rec.Instance]
	if c == nil {
		if len(r.claims) >= maxPeers {
			return
		}
		c = &claim{instance: rec.Instance}
		r.claims[rec.Instance] = c
	}
	c.gen, c.partitions, c.beats, c.at = rec.Generation, rec.Partitions, r.beats, now
	c.used, c.lending = rec.Used, rec.Lending
}

// lends says whether this instance lends in its next heartbeat, having used
// used of the budget: a lender goes on until it uses most of what it kept.
// It starts only when another member does not lend, so that an instance
// alone keeps its whole budget for its next orders.
func (r *roster) lends(used float64) bool {
	if r.lending {
		return used < stopLendingAt*r.given
	}
	return used < lendBelow*r.fair && r.borrowers > 0
}

// quiet: silentBeats or more of this instance's heartbeats read since c's
// last record, whether c is counted out or its silence time is up.
func (r *roster) quiet(c *claim) bool {
	return r.beats-c.beats >= silentBeats
}

// lent is what a member with a fair share that used used lends.
func lent(fair, used float64) float64 {
	return lendPart * max(0, fair-used)
}

// share is this instance's fraction of the budget: its partitions over the
// topic's, less those of the members of its generation that are silent. A
// member is silent after silentBeats of this instance's heartbeats without
// one of its own, and for at most the silence time. The total never falls
// below the partitions the members heard claim, so a member restarted
// under its static group instance id, which keeps the generation and the
// partitions of the one that died, takes its share back as soon as it is
// heard. Then lenders lend, and the others borrow by their partitions. out
// and back are the members counted out and back in by this call.
func (r *roster) share(now time.Time) (share float64, out, back []claim) {
	if r.total == 0 {
		return 0, nil, nil
	}
	silent, heard := 0, r.mine
	for _, c := range r.claims {
		if c.gen != r.gen {
			continue
		}
		quiet := r.quiet(c)
		isOut := quiet && now.Sub(c.at) < r.silence
		switch {
		case isOut:
			silent += c.partitions
		case !quiet:
			// A member quiet past the silence time has its share back, in
			// the topic's count; it is not heard, so its partitions are
			// not counted twice when a successor now claims them.
			heard += c.partitions
		}
		switch {
		case isOut && !c.out:
			out = append(out, *c)
		case !isOut && c.out:
			back = append(back, *c)
		}
		c.out = isOut
	}
	// An instance with no partition still serves customer orders: it keeps
	// a sliver of the budget rather than none.
	mine := max(r.mine, 1)
	total := float64(max(r.total-silent, heard, mine))
	r.fair = float64(mine) / total
	// What the lenders lend, and the borrowers other than this instance:
	// how many and their partitions.
	loans, borrowers, theirs := 0.0, 0, 0
	for _, c := range r.claims {
		switch {
		case c.gen != r.gen || r.quiet(c):
		case c.lending:
			loans += lent(float64(c.partitions)/total, c.used)
		default:
			borrowers++
			theirs += c.partitions
		}
	}
	r.borrowers = borrowers
	if r.lending {
		r.given = r.fair - lent(r.fair, r.used)
	} else {
		r.given = min(1, r.fair+loans*float64(mine)/float64(theirs+mine))
	}
	return r.given, out, back
}

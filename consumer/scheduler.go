package consumer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

// item is one fetched record on its way through the scheduler.
type item struct {
	msg  kafka.Message
	key  string
	part *partition
}

// keyQueue holds the records of one key, head first. Only the head runs.
type keyQueue struct {
	key      string
	items    []*item
	retrying bool // the head failed and waits for its next attempt
}

// scheduler runs records with the Confluent Parallel Consumer's "key order":
// records of one key one after another in offset order, records of different
// keys in parallel, at most maxInFlight at once. A record waiting to be retried
// gives its slot back, so that it does not hold a worker the others need.
//
// Workers are long-lived goroutines that take keys from a FIFO of keys whose
// head may start. A goroutine per key would be simpler, but each would grow a
// fresh stack for the handler's deep calls and a backlog of distinct keys
// would hold one goroutine per buffered record.
type scheduler struct {
	handler Handler
	max     int
	slots   chan struct{}
	log     zerolog.Logger
	retry   func() backoff.BackOff
	gate    *gate

	mu    sync.Mutex
	cond  sync.Cond // wakes idle workers; see wakeLocked
	keys  map[string]*keyQueue
	ready readyKeys // keys whose head may start
	// Every worker is busy (running a record or waiting for a slot), idle
	// (waiting for a ready key) or parked (waiting for a retry, the gate or a
	// yielded slot). New workers start only while fewer than max are busy.
	busy, idle int
	closing    bool
	wg         sync.WaitGroup

	inFlight atomic.Int64
}

func newScheduler(h Handler, maxInFlight int, retry func() backoff.BackOff, log zerolog.Logger) *scheduler {
	s := &scheduler{
		handler: h,
		max:     maxInFlight,
		slots:   make(chan struct{}, maxInFlight),
		retry:   retry,
		log:     log,
		keys:    make(map[string]*keyQueue),
		gate:    newGate(),
	}
	s.cond.L = &s.mu
	return s
}

// submit queues a record behind the earlier records of its key.
func (s *scheduler) submit(it *item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, queued := s.keys[it.key]; queued {
		q.items = append(q.items, it)
		return
	}
	q := &keyQueue{key: it.key, items: []*item{it}}
	s.keys[it.key] = q
	s.ready.push(q)
	s.wakeLocked()
}

// wakeLocked finds a worker for the ready keys while fewer than max are busy:
// an idle one, or a new one. The waker counts the idle worker as busy, so that
// a burst of submits wakes as many workers as it needs, not one.
func (s *scheduler) wakeLocked() {
	if s.ready.empty() || s.busy >= s.max {
		return
	}
	s.busy++
	if s.idle > 0 {
		s.idle--
		s.cond.Signal()
		return
	}
	s.wg.Add(1)
	go s.work()
}

// work is one worker: it runs the head of the oldest ready key, puts the key
// back at the end while it has records, and ends when it is surplus or the
// scheduler closes.
func (s *scheduler) work() {
	defer s.wg.Done()
	s.mu.Lock()
	for {
		q := s.takeLocked()
		if q == nil {
			s.mu.Unlock()
			return
		}
		it := q.items[0]
		s.mu.Unlock()

		s.run(it, q)

		s.mu.Lock()
		q.items[0] = nil
		q.items = q.items[1:]
		q.retrying = false
		if len(q.items) == 0 {
			delete(s.keys, q.key)
		} else {
			s.ready.push(q)
		}
	}
}

// takeLocked returns the next ready key, waiting for one; nil tells the worker
// to end, and it is then no longer counted. A worker over the max (parked
// workers came back) waits idle instead of taking work; idle workers are kept,
// up to max, so that the next burst does not start new goroutines.
func (s *scheduler) takeLocked() *keyQueue {
	for {
		if !s.ready.empty() && (s.busy <= s.max || s.closing) {
			return s.ready.pop()
		}
		s.busy--
		if s.closing || s.idle >= s.max {
			return nil
		}
		s.idle++
		s.cond.Wait() // whoever wakes this worker counts it busy again
	}
}

// readyKeys are the keys whose head may start: in the order they became
// ready within a partition, and partition by partition in turn. One FIFO
// for all would serve partitions in the order their records were fetched,
// and a partition assigned after another had filled the buffers (a
// member's partitions taken over after a crash) would wait for all of
// them: 2,000 records at 50 orders/s is 40 s without an answer.
type readyKeys struct {
	byPart map[*partition][]*keyQueue
	turns  []*partition // the partitions with ready keys, next first
}

func (r *readyKeys) empty() bool { return len(r.turns) == 0 }

func (r *readyKeys) push(q *keyQueue) {
	p := q.items[0].part
	if r.byPart == nil {
		r.byPart = map[*partition][]*keyQueue{}
	}
	qs, waiting := r.byPart[p]
	if !waiting {
		r.turns = append(r.turns, p)
	}
	r.byPart[p] = append(qs, q)
}

// pop takes the oldest ready key of the partition whose turn it is; the
// partition goes to the back of the turns while it has more.
func (r *readyKeys) pop() *keyQueue {
	p := r.turns[0]
	r.turns[0] = nil
	r.turns = r.turns[1:]
	qs := r.byPart[p]
	q := qs[0]
	qs[0] = nil
	if qs = qs[1:]; len(qs) > 0 {
		r.byPart[p] = qs
		r.turns = append(r.turns, p)
	} else {
		delete(r.byPart, p)
	}
	return q
}

// park marks the calling worker as waiting for something other than a slot,
// so that another worker may take the ready keys meanwhile; unpark undoes it.
func (s *scheduler) park() {
	s.mu.Lock()
	s.busy--
	s.wakeLocked()
	s.mu.Unlock()
}

func (s *scheduler) unpark() {
	s.mu.Lock()
	s.busy++
	s.mu.Unlock()
}

// waitGate returns once it may start, or false when its partition is given up.
func (s *scheduler) waitGate(it *item, p *partition) bool {
	open := s.gate.wait(it)
	if closed(open) {
		return true
	}
	return parkUntil(s, p, open)
}

// run handles one record until it is finished, or abandons it when its
// partition is being given up (it stays uncommitted and is redelivered).
func (s *scheduler) run(it *item, q *keyQueue) {
	p := it.part
	defer p.release()
	defer s.gate.leave(it) // an abandoned probe hands probing on
	var b, pause backoff.BackOff
	for {
		if !s.waitGate(it, p) {
			return
		}
		select {
		case <-p.stop:
			return
		case s.slots <- struct{}{}:
		}
		// The partition may have been given up, or the gate shut, while this
		// record waited for a slot: look again before starting it.
		if closed(p.stop) {
			<-s.slots
			return
		}
		if !closed(s.gate.wait(it)) {
			<-s.slots
			continue
		}
		p.running.Add(1)
		s.inFlight.Add(1)
		slot := &Slot{s: s, held: true}
		err := s.handler.Handle(p.ctx, it.msg, slot)
		slot.done()
		p.running.Add(-1)
		if err == nil {
			if s.gate.leave(it) {
				s.log.Info().Msg("the fault cleared: taking orders again")
			}
			p.tracker.finish(it.msg.Offset)
			return
		}
		if p.ctx.Err() != nil {
			return
		}
		var wait time.Duration
		if pausesConsumer(err) {
			if !s.gate.shut(it, err) {
				continue // another record probes; wait at the gate
			}
			if pause == nil {
				pause = s.retry()
			}
			wait = pause.NextBackOff()
			// One line per probe, not one per record: the fault is not the records' doing.
			s.log.Error().Err(err).Dur("retry_in_ms", wait).
				Msg("configuration fault: taking no new orders and committing nothing until it clears; trying again")
		} else {
			if b == nil {
				b = s.retry()
			}
			wait = b.NextBackOff()
			s.mu.Lock()
			q.retrying = true
			s.mu.Unlock()
			s.log.Error().Err(err).Str("topic", it.msg.Topic).Int("partition", it.msg.Partition).Int64("offset", it.msg.Offset).
				Dur("retry_in_ms", wait).Msg("order not finished; it will be handled again")
		}
		if !s.sleep(p, wait) {
			return
		}
	}
}

// sleep waits d without counting as busy; false when the partition is given up.
func (s *scheduler) sleep(p *partition, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	return parkUntil(s, p, t.C)
}

// parkUntil waits for ch parked, so that another worker may take the ready
// keys meanwhile; false when the partition is given up first.
func parkUntil[T any](s *scheduler, p *partition, ch <-chan T) bool {
	s.park()
	defer s.unpark()
	select {
	case <-p.stop:
		return false
	case <-ch:
		return true
	}
}

// closed reports whether ch is closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Slot is the worker slot of one Handle call. A handler that waits for
// something other than work of its own (a retry's backoff, a poll interval,
// the acknowledgement of a write) gives it back with Release and takes one
// again with Acquire before it goes on, so that the waiting record does not
// hold a worker the others need. It is used by that call's goroutine only,
// and only during the call. A nil *Slot holds nothing: both methods do
// nothing, for handlers run outside a Consumer.
type Slot struct {
	s    *scheduler
	held bool
	// yielded: the handler gave the slot back at least once, so its worker
	// is parked until the handler takes a slot again or returns.
	yielded bool
}

// Release gives the slot back; it does nothing if the slot is not held.
func (h *Slot) Release() {
	if h != nil && h.held {
		h.giveBack()
		if !h.yielded {
			h.yielded = true
			h.s.park()
		}
	}
}

// done ends the Handle call: the slot is given back, or the worker, parked
// since the handler gave it back, is busy again.
func (h *Slot) done() {
	switch {
	case h.held:
		h.giveBack()
	case h.yielded:
		h.resume()
	}
}

// resume ends the parking that the first Release started.
func (h *Slot) resume() {
	h.yielded = false
	h.s.unpark()
}

func (h *Slot) giveBack() {
	h.held = false
	h.s.inFlight.Add(-1)
	<-h.s.slots
}

// Acquire takes a slot again, waiting for one, or returns ctx's error; it
// does nothing if the slot is held.
func (h *Slot) Acquire(ctx context.Context) error {
	if h == nil || h.held {
		return nil
	}
	if h.yielded {
		h.resume()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case h.s.slots <- struct{}{}:
		h.held = true
		h.s.inFlight.Add(1)
		return nil
	}
}

// waitingBehindRetries counts the records queued behind a record that waits to
// be retried: head-of-line blocking that a metric or a log should show.
func (s *scheduler) waitingBehindRetries() (keys, records int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.keys {
		if q.retrying {
			keys++
			records += len(q.items) - 1
		}
	}
	return keys, records
}

// wait returns once the queued records are done or abandoned and every
// worker has ended. It is called when no more records will be submitted.
func (s *scheduler) wait() {
	s.mu.Lock()
	s.closing = true
	s.busy += s.idle
	s.idle = 0
	s.cond.Broadcast()
	s.mu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	s.closing = false
	s.mu.Unlock()
}

// partition is one assigned partition within one generation of the group.
type partition struct {
	topic string
	id    int
	// ctx is given to the handler; it is cancelled when in-flight records run
	// past the shutdown timeout.
	ctx    context.Context
	cancel context.CancelFunc
	// stopFetch ends the partition's fetcher; fetched is closed once it returned.
	stopFetch context.CancelFunc
	fetched   chan struct{}
	// stop is closed when the partition is being given up: queued records are
	// abandoned rather than started.
	stop     chan struct{}
	stopOnce sync.Once

	tracker *tracker
	running atomic.Int64
	// buffered counts fetched records not yet finished or abandoned; it and the
	// consumer-wide budget bound memory.
	buffered chan struct{}
	global   chan struct{}
}

// release gives back the buffer slots of one record.
func (p *partition) release() {
	<-p.buffered
	<-p.global
}

func (p *partition) giveUp() { p.stopOnce.Do(func() { close(p.stop) }) }

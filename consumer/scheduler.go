package consumer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/acme-sp/wholesale-provisioner/internal/yield"
)

// item is one fetched record on its way through the scheduler.
type item struct {
	msg  kafka.Message
	key  string
	part *partition
}

// keyQueue holds the records of one key, head first. Only the head runs.
type keyQueue struct {
	items    []*item
	retrying bool // the head failed and waits for its next attempt
}

// scheduler runs records with the Confluent Parallel Consumer's "key order":
// records of one key one after another in offset order, records of different
// keys in parallel, at most maxInFlight at once. A record waiting to be retried
// gives its slot back, so that it does not hold a worker the others need.
type scheduler struct {
	handler Handler
	slots   chan struct{}
	log     zerolog.Logger
	retry   func() backoff.BackOff

	mu   sync.Mutex
	keys map[string]*keyQueue
	wg   sync.WaitGroup
	gate *gate

	inFlight atomic.Int64
}

func newScheduler(h Handler, maxInFlight int, retry func() backoff.BackOff, log zerolog.Logger) *scheduler {
	return &scheduler{
		handler: h,
		slots:   make(chan struct{}, maxInFlight),
		retry:   retry,
		log:     log,
		keys:    make(map[string]*keyQueue),
		gate:    newGate(),
	}
}

// submit queues a record behind the earlier records of its key.
func (s *scheduler) submit(it *item) {
	s.mu.Lock()
	if q, busy := s.keys[it.key]; busy {
		q.items = append(q.items, it)
		s.mu.Unlock()
		return
	}
	q := &keyQueue{items: []*item{it}}
	s.keys[it.key] = q
	s.mu.Unlock()
	s.wg.Add(1)
	go s.runKey(it.key, q)
}

// runKey works through one key's queue and ends when it is empty. One
// goroutine per key with work keeps the key's records in order without locks
// held during handling.
func (s *scheduler) runKey(key string, q *keyQueue) {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		if len(q.items) == 0 {
			delete(s.keys, key)
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
		s.mu.Unlock()
	}
}

// run handles one record until it is finished, or abandons it when its
// partition is being given up (it stays uncommitted and is redelivered).
func (s *scheduler) run(it *item, q *keyQueue) {
	p := it.part
	defer p.release()
	defer s.gate.leave(it) // an abandoned probe hands probing on
	var b, pause backoff.BackOff
	for {
		select {
		case <-p.stop:
			return
		case <-s.gate.wait(it):
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
		slot := &heldSlot{s: s, held: true}
		err := s.handler.Handle(yield.With(p.ctx, slot), it.msg)
		slot.Release()
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
			s.log.Error().Err(err).Dur("retry_in", wait).
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
				Dur("retry_in", wait).Msg("order not finished; it will be handled again")
		}
		t := time.NewTimer(wait)
		select {
		case <-p.stop:
			t.Stop()
			return
		case <-t.C:
		}
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

// heldSlot is the worker slot of one Handle call; the handler may give it back
// while it waits (see package yield). Used by that call's goroutine only.
type heldSlot struct {
	s    *scheduler
	held bool
}

func (h *heldSlot) Release() {
	if h.held {
		h.held = false
		h.s.inFlight.Add(-1)
		<-h.s.slots
	}
}

func (h *heldSlot) Acquire(ctx context.Context) error {
	if h.held {
		return nil
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

// wait returns once every key goroutine has ended.
func (s *scheduler) wait() { s.wg.Wait() }

// partition is one assigned partition within one generation of the group.
type partition struct {
	topic string
	id    int
	// ctx is given to the handler; it is cancelled when in-flight records run
	// past the shutdown timeout.
	ctx    context.Context
	cancel context.CancelFunc
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

// Package outage turns the errors of one dependency that fails for a while
// into the few lines an operator reads: one when it starts, a reminder at most
// every interval, one when it ends with what it cost.
package outage

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// settle is how long a dependency must go without a failure before a success
// ends its outage: one answer among failures is not yet a recovery.
const settle = time.Second

// Tracker follows one dependency (Kafka, say). Its methods are safe for
// concurrent use, and Recovered is cheap while nothing fails: it sits on the
// hot path of every order.
type Tracker struct {
	name   string
	log    zerolog.Logger
	remind time.Duration
	now    func() time.Time

	down atomic.Bool
	mu   sync.Mutex
	// Of the current outage:
	since, lastFail, lastLine time.Time
	failures                  int
	held                      int
}

// New returns a Tracker of the dependency called name, logging to log, with a
// reminder at most every remind (30s when zero).
func New(name string, remind time.Duration, log zerolog.Logger) *Tracker {
	if remind <= 0 {
		remind = 30 * time.Second
	}
	return &Tracker{name: name, log: log, remind: remind, now: time.Now}
}

// Failed records a failure. held says how many orders it makes wait (an order
// whose outcome cannot be written: 1; a failed fetch: 0). The first failure
// of an outage is logged with its error, then a reminder with the counts at
// most every remind interval; the others only counted.
func (t *Tracker) Failed(err error, held int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.lastFail = now
	t.failures++
	t.held += held
	if !t.down.Load() {
		t.down.Store(true)
		t.since, t.lastLine, t.failures, t.held = now, now, 1, held
		t.log.Error().Err(err).Str("dependency", t.name).
			Msg(t.name + " unreachable: orders wait, none is committed until it answers; a reminder follows at most every " + t.remind.String())
		return
	}
	if now.Sub(t.lastLine) >= t.remind {
		t.lastLine = now
		t.log.Error().Err(err).Str("dependency", t.name).Dur("down_ms", now.Sub(t.since)).
			Int("failures", t.failures).Int("orders_held", t.held).Msg(t.name + " still unreachable")
	}
}

// Recovered records a success. It ends the outage once no failure came for
// a second, with one line of what it cost.
func (t *Tracker) Recovered() {
	if !t.down.Load() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if !t.down.Load() || now.Sub(t.lastFail) < settle {
		return
	}
	t.down.Store(false)
	t.log.Warn().Str("dependency", t.name).Dur("down_ms", now.Sub(t.since)).
		Int("failures", t.failures).Int("orders_held", t.held).Msg(t.name + " answers again: the outage is over")
}

// Down says whether an outage is going on.
func (t *Tracker) Down() bool { return t.down.Load() }

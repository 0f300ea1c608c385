package provisioning

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Constants of the adaptive rate. They are not configurable because they only
// shape how fast the rate moves, not where it settles.
const (
	// cutWindow is the shortest time between two decreases: the 429s of the
	// calls sent in one window are one signal, not several.
	cutWindow = time.Second
	// growInterval is how often the rate grows at most, so that Observe takes
	// the mutex only about ten times a second however many calls succeed.
	growInterval = 100 * time.Millisecond
	// maxGrowStep caps the time one growth accounts for, so that a limiter
	// that was idle does not jump up on its next success.
	maxGrowStep = 250 * time.Millisecond
	// slowStartGain is the relative growth per second before the first 429: the
	// limit is unknown, so it is searched for quickly.
	slowStartGain = 0.5
	// headroom is the fraction of the last 429's rate that the rate returns to
	// quickly after a decrease; beyond it the rate only creeps by IncreaseStep,
	// so that it stays just under the point where 429s start. The 429 came
	// when the server's allowance was used up, a little above its limit.
	headroom = 0.95
	// recoverTime is the time constant of that quick return.
	recoverTime = time.Second
	// missedCeiling scales the rate that met a 429 before the quick return
	// was over, to make the next ceiling: the return overshot the limit
	// at speed, so the rate that met the 429 was well above it.
	missedCeiling = 0.85
	// defaultStep is the default IncreaseStep as a fraction of the rate. Small,
	// because each 429 costs a pause of every caller: against a token bucket
	// like webexsim's, 1% per second reaches about 89% of the limit, 0.15% about 96%.
	defaultStep = 0.0015
	// probeGain is how much faster than IncreaseStep the rate grows per
	// second, per request per second that it is above the last 429's rate:
	// a limit that has risen is then found within about a minute.
	probeGain = 0.1
	// maxJitter caps the random delay added after a pause.
	maxJitter = time.Second
)

// LimiterConfig configures a Limiter. The zero value of each field selects the
// default given in its comment; the zero LimiterConfig sets no rate and no
// concurrency limit but still makes every caller honour Retry-After pauses.
type LimiterConfig struct {
	// Rate is the number of requests per second allowed across all callers.
	// Default 0: no rate limit, unless Adaptive is set. With Adaptive, Rate is
	// where the rate starts and the most it may reach.
	Rate float64
	// Burst is how many requests may start at once after a quiet spell.
	// Default 1: requests are paced evenly, because a client burst larger than
	// the server's own allowance is answered 429 at once.
	Burst int
	// MaxConcurrent caps the requests in progress at once. Default 0: no cap.
	MaxConcurrent int

	// Adaptive finds the server's limit and stays just under it (AIMD). A 429
	// multiplies the rate by DecreaseFactor, at most once a second and not for
	// 429s that arrive during a pause (they answer calls sent before it).
	// While callers wait for the rate, it grows every 100ms: by half its
	// value per second until the first 429; after one, quickly back to 95%
	// of the rate that met the 429, then by IncreaseStep per second, faster
	// once it is past that rate (the limit has then risen). It never exceeds
	// Rate when Rate is set. Default false.
	Adaptive bool
	// InitialRate is where an adaptive rate starts, at most Rate. Default:
	// Rate, or 50 when Rate is 0.
	InitialRate float64
	// MinRate is the floor of the adaptive rate. Default 1.
	MinRate float64
	// DecreaseFactor multiplies the adaptive rate on a 429; it must be below 1.
	// Default 0.7.
	DecreaseFactor float64
	// IncreaseStep is how many requests per second the adaptive rate gains per
	// second while it probes for the limit. Default 0: 0.15% of the current
	// rate, small because every 429 pauses all callers (see defaultStep).
	IncreaseStep float64

	// MaxPause caps the shared pause that one Retry-After asks for. Default 60s.
	MaxPause time.Duration

	// OnPause, when set, is told of every pause that a 429's Retry-After
	// started or lengthened here (not of those set by Pause), with its
	// length: the caller may tell other instances that share the budget.
	// It is called without the limiter's lock and must not block.
	OnPause func(d time.Duration)
}

// DefaultLimiterConfig returns what a service that shares one API account
// among many workers should start from: no rate limit (Webex publishes
// none), and at most 64 requests in progress. The zero value of each field
// means what its comment says.
func DefaultLimiterConfig() LimiterConfig {
	return LimiterConfig{MaxConcurrent: 64}
}

func (c *LimiterConfig) setDefaults() {
	if c.Burst <= 0 {
		c.Burst = 1
	}
	if c.InitialRate <= 0 {
		c.InitialRate = c.Rate
	}
	if c.InitialRate <= 0 {
		c.InitialRate = 50
	}
	if c.Rate > 0 {
		c.InitialRate = min(c.InitialRate, c.Rate)
	}
	if c.MinRate <= 0 {
		c.MinRate = 1
	}
	if c.DecreaseFactor <= 0 {
		c.DecreaseFactor = 0.7
	}
	if c.MaxPause <= 0 {
		c.MaxPause = 60 * time.Second
	}
}

// Validate reports the first field of c that is out of range.
func (c LimiterConfig) Validate() error {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 }
	switch {
	case !finite(c.Rate):
		return fmt.Errorf("limiter rate %v: want a finite number of requests per second, 0 for none", c.Rate)
	case c.Burst < 0:
		return fmt.Errorf("limiter burst %d must not be negative", c.Burst)
	case c.MaxConcurrent < 0:
		return fmt.Errorf("limiter max concurrent %d must not be negative", c.MaxConcurrent)
	case !finite(c.InitialRate), !finite(c.MinRate), !finite(c.IncreaseStep):
		return errors.New("limiter initial rate, min rate and increase step must be finite and not negative")
	case math.IsNaN(c.DecreaseFactor) || c.DecreaseFactor < 0 || c.DecreaseFactor >= 1:
		return fmt.Errorf("limiter decrease factor %v: want a number between 0 and 1", c.DecreaseFactor)
	case c.MaxPause < 0:
		return errors.New("limiter max pause must not be negative")
	}
	return nil
}

// LimiterStats is a snapshot of a Limiter, for logs and metrics.
type LimiterStats struct {
	// Rate is the number of requests per second allowed now; 0 when there is
	// no rate limit.
	Rate float64
	// Share is the fraction of the configured budget this limiter may use
	// (SetShare); 1 unless it was given another.
	Share float64
	// PausedUntil is when the current shared pause ends; zero when there is none.
	PausedUntil time.Time
	// InProgress is the number of calls between Acquire and release.
	InProgress int64
	// Acquired counts the calls let through since the limiter was made.
	Acquired int64
	// Waits counts the Acquire calls that had to wait, for a pause, a
	// concurrency slot or the rate; WaitTime is the time they waited in all.
	Waits    int64
	WaitTime time.Duration
	// Throttled counts the 429 answers observed; Pauses counts those that
	// started or lengthened the shared pause; Decreases counts the times the
	// adaptive rate was lowered.
	Throttled int64
	Pauses    int64
	Decreases int64
}

// Limiter is one rate budget for the API shared by all its callers: it paces
// requests to a rate, caps the requests in progress, and makes every caller wait
// out a Retry-After that any one of them was given. Call Acquire before each
// request and Observe with its answer. A Limiter is safe for concurrent use; a
// nil *Limiter limits nothing.
type Limiter struct {
	cfg   LimiterConfig // with defaults; read-only after NewLimiter
	epoch time.Time
	clock func() time.Time

	// pauseUntil is the end of the shared pause in nanoseconds since epoch, 0
	// when none: one atomic load is all that a caller pays when there is none.
	pauseUntil atomic.Int64
	// pace paces the requests; nil when there is no rate limit. Each pause
	// and each new share replaces it, which voids the reservations made
	// before: they were scheduled for a time that the pause took away, or at
	// a rate that added to the new one's would overshoot it.
	pace atomic.Pointer[pacer]
	// sem holds a token per request in progress; nil when there is no cap.
	sem       chan struct{}
	releaseFn func()

	inProgress atomic.Int64
	acquired   atomic.Int64
	waits      atomic.Int64
	waitNanos  atomic.Int64
	throttled  atomic.Int64
	pauses     atomic.Int64
	decreases  atomic.Int64

	// nextGrow is when a success may next grow the adaptive rate; the caller
	// that moves it forward does the growth, so successes rarely take mu.
	nextGrow atomic.Int64
	// limited is set when a caller waited for the rate since the last growth:
	// the rate grows only while it is what holds callers back.
	limited atomic.Bool

	mu       sync.Mutex // guards the adaptive state below and replacing lim
	share    float64    // the fraction of the budget this limiter may use (SetShare)
	rate     float64
	ceiling  float64 // the rate that met the last 429; 0 before the first one
	lastGrow int64
	lastCut  int64
}

// NewLimiter returns a Limiter configured by cfg, with the defaults documented
// on LimiterConfig. It panics if cfg.Validate reports an error: call Validate
// first to get the error instead.
func NewLimiter(cfg LimiterConfig) *Limiter {
	return newLimiter(cfg, time.Now)
}

// newLimiter lets tests give the limiter a clock of their own.
func newLimiter(cfg LimiterConfig, clock func() time.Time) *Limiter {
	if err := cfg.Validate(); err != nil {
		panic("provisioning: invalid limiter config: " + err.Error())
	}
	cfg.setDefaults()
	l := &Limiter{cfg: cfg, clock: clock, epoch: clock(), share: 1}
	l.releaseFn = l.release
	l.lastCut = -int64(cutWindow)
	if cfg.MaxConcurrent > 0 {
		l.sem = make(chan struct{}, cfg.MaxConcurrent)
	}
	switch {
	case cfg.Adaptive:
		l.rate = cfg.InitialRate
		l.pace.Store(newPacer(l.rate, cfg.Burst))
	case cfg.Rate > 0:
		l.rate = cfg.Rate
		l.pace.Store(newPacer(l.rate, cfg.Burst))
	}
	return l
}

// pacer is a token bucket whose replacement wakes the callers waiting for one
// of its reservations (replaced is closed), so that they reserve again from
// the new one at once instead of keeping a turn that no longer holds.
type pacer struct {
	lim      *rate.Limiter
	replaced chan struct{}
}

func newPacer(r float64, burst int) *pacer {
	return &pacer{lim: rate.NewLimiter(rate.Limit(r), burst), replaced: make(chan struct{})}
}

// replacePacerLocked starts a fresh bucket at the current rate.
func (l *Limiter) replacePacerLocked() {
	if old := l.pace.Load(); old != nil {
		l.pace.Store(newPacer(l.rate, l.cfg.Burst))
		close(old.replaced)
	}
}

// waitTurn waits d for a reservation of p, or until p is replaced (nil
// returned: the caller sees the new pacer and reserves again), or until ctx ends.
func waitTurn(ctx context.Context, d time.Duration, p *pacer) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	case <-p.replaced:
	}
	return nil
}

func noRelease() {}

// Acquire waits until the caller may send a request: until the shared pause (if
// any) is over, a concurrency slot is free and the rate allows it. It returns a
// release function to call exactly once, when the answer has been read, or the
// context's error when ctx ends first.
func (l *Limiter) Acquire(ctx context.Context) (release func(), err error) {
	if l == nil {
		return noRelease, nil
	}
	var waitStart int64 // when this caller first had to wait; 0 when it did not
	for {
		if err := l.waitPause(ctx, &waitStart); err != nil {
			l.countWait(waitStart)
			return nil, err
		}
		waited := false
		if l.sem != nil {
			select {
			case l.sem <- struct{}{}:
			default:
				if waitStart == 0 {
					waitStart = l.nanos()
				}
				waited = true
				select {
				case l.sem <- struct{}{}:
				case <-ctx.Done():
					l.countWait(waitStart)
					return nil, ctx.Err()
				}
			}
		}
		p := l.pace.Load()
		var r *rate.Reservation
		if p != nil {
			now := l.clock()
			r = p.lim.ReserveN(now, 1)
			if d := r.DelayFrom(now); d > 0 {
				if waitStart == 0 {
					waitStart = int64(now.Sub(l.epoch))
				}
				waited = true
				if !l.limited.Load() {
					l.limited.Store(true)
				}
				if err := waitTurn(ctx, d, p); err != nil {
					r.Cancel()
					l.releaseSlot()
					l.countWait(waitStart)
					return nil, err
				}
			}
		}
		// A pause or a new share may have come while this caller waited; its
		// reservation was then made for a schedule that it voided.
		if waited && (l.pace.Load() != p || l.paused()) {
			if r != nil {
				r.Cancel()
			}
			l.releaseSlot()
			continue
		}
		l.inProgress.Add(1)
		l.acquired.Add(1)
		l.countWait(waitStart)
		return l.releaseFn, nil
	}
}

func (l *Limiter) countWait(waitStart int64) {
	if waitStart != 0 {
		l.waits.Add(1)
		l.waitNanos.Add(l.nanos() - waitStart)
	}
}

// waitPause waits until the shared pause is over. Each waiter adds its own
// random delay of up to a tenth of its wait (at most a second), so that the
// end of a pause does not release every waiter at the same instant.
func (l *Limiter) waitPause(ctx context.Context, waitStart *int64) error {
	for {
		until := l.pauseUntil.Load()
		if until == 0 {
			return nil
		}
		now := l.nanos()
		if now >= until {
			// Later callers then skip reading the clock.
			l.pauseUntil.CompareAndSwap(until, 0)
			return nil
		}
		if *waitStart == 0 {
			*waitStart = now
		}
		wait := time.Duration(until - now)
		if j := min(wait/10, maxJitter); j > 0 {
			wait += rand.N(j)
		}
		if err := Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

func (l *Limiter) paused() bool {
	until := l.pauseUntil.Load()
	return until != 0 && l.nanos() < until
}

func (l *Limiter) release() {
	l.inProgress.Add(-1)
	l.releaseSlot()
}

func (l *Limiter) releaseSlot() {
	if l.sem != nil {
		<-l.sem
	}
}

// Observe is told the answer of each call: its HTTP status (0 when no answer
// came) and its Retry-After (0 when absent). A 429 with a Retry-After pauses
// every caller until then, capped at MaxPause; a pause is lengthened, never
// shortened. A 429 lowers an adaptive rate; other answers below 500 let it
// grow. A 423 is about one resource, not the budget: it pauses nobody here
// (the call that met it waits on its own).
func (l *Limiter) Observe(status int, retryAfter time.Duration) {
	if l == nil {
		return
	}
	// Most answers change nothing: do not even read the clock for them.
	if status == http.StatusTooManyRequests || l.cfg.Adaptive {
		l.observeAt(l.nanos(), status, retryAfter)
	}
}

func (l *Limiter) observeAt(now int64, status int, retryAfter time.Duration) {
	switch {
	case status == http.StatusTooManyRequests:
		l.throttled.Add(1)
		cut := l.cfg.Adaptive
		if !cut && retryAfter <= 0 {
			return
		}
		l.mu.Lock()
		// Cut before pausing: a 429 that arrives during a pause answers a
		// call sent before it, and must not cut the rate a second time.
		if cut {
			l.cutLocked(now)
		}
		paused := retryAfter > 0 && l.pauseLocked(now, retryAfter)
		l.mu.Unlock()
		if paused && l.cfg.OnPause != nil {
			l.cfg.OnPause(min(retryAfter, l.cfg.MaxPause))
		}
	case l.cfg.Adaptive && status >= 200 && status < 500:
		// 5xx and transport errors say nothing about the rate, and may mean
		// trouble: they do not make the rate grow.
		next := l.nextGrow.Load()
		if now < next || !l.nextGrow.CompareAndSwap(next, now+int64(growInterval)) {
			return
		}
		l.mu.Lock()
		l.growLocked(now)
		l.mu.Unlock()
	}
}

func (l *Limiter) cutLocked(now int64) {
	if now < l.lastCut+int64(cutWindow) || now < l.pauseUntil.Load() {
		return
	}
	r := max(l.cfg.MinRate, l.rate*l.cfg.DecreaseFactor)
	if l.rate < headroom*headroom*l.ceiling {
		// The 429 came while the rate was still well short of its target:
		// the last ceiling was far above the limit (or the limit fell), and
		// the quick return overshot it. Aim lower than usual next time.
		l.ceiling = missedCeiling * l.rate
	} else {
		l.ceiling = l.rate
	}
	l.lastCut, l.lastGrow = now, now
	l.setRateLocked(now, r)
	l.decreases.Add(1)
}

func (l *Limiter) growLocked(now int64) {
	dt := time.Duration(min(now-l.lastGrow, int64(maxGrowStep)))
	l.lastGrow = now
	// Answers that arrive during a pause were sent before it: they are no
	// evidence that the rate may grow.
	if dt <= 0 || now < l.pauseUntil.Load() || !l.limited.Swap(false) {
		return
	}
	c := l.cfg
	c.Rate = l.maxRateLocked()
	l.setRateLocked(now, nextRate(c, l.rate, l.ceiling, dt))
}

// SetShare gives the limiter a fraction s, in (0, 1], of the budget it was
// configured with: the rate limit, and an adaptive rate with its last
// ceiling, scale by s. Instances that share one API account each take their
// share of its budget, and change it when their share of the work changes.
// The concurrency cap is not scaled. Values outside (0, 1] are clipped to it.
func (l *Limiter) SetShare(s float64) {
	if l == nil || math.IsNaN(s) {
		return
	}
	s = min(max(s, 1e-6), 1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if s == l.share {
		return
	}
	scale := s / l.share
	l.share = s
	now := l.nanos()
	switch {
	case l.cfg.Adaptive:
		l.ceiling *= scale
		r := max(l.cfg.MinRate, l.rate*scale)
		if m := l.maxRateLocked(); m > 0 {
			r = min(r, m)
		}
		l.setRateLocked(now, r)
	case l.cfg.Rate > 0:
		l.setRateLocked(now, l.cfg.Rate*s)
	}
	// The turns already given were paced at the old share: kept, they would
	// add to the new share's and overshoot it (a share cut), or hold callers
	// to the old pace (a share raised).
	l.replacePacerLocked()
}

// maxRateLocked is the most the rate may be: the configured Rate times the
// share; 0 when there is no rate limit.
func (l *Limiter) maxRateLocked() float64 {
	return l.cfg.Rate * l.share
}

// nextRate is the adaptive rate r after dt of growth, given the rate that met
// the last 429 (0 when none has).
func nextRate(cfg LimiterConfig, r, ceiling float64, dt time.Duration) float64 {
	s := dt.Seconds()
	step := cfg.IncreaseStep
	if step == 0 {
		step = r * defaultStep
	}
	switch target := headroom * ceiling; {
	case ceiling == 0:
		r += r * slowStartGain * s
	case r < target:
		// Close the gap quickly at first and slowly near the target, so
		// that the rate does not overshoot into the next 429 at speed.
		r += max((target-r)/recoverTime.Seconds(), step) * s
	default:
		// Beyond the last 429's rate, that limit is evidently gone: probe
		// faster the further the rate is past it.
		r += (step + max(0, r-ceiling)*probeGain) * s
	}
	if cfg.Rate > 0 {
		r = min(r, cfg.Rate)
	}
	return r
}

func (l *Limiter) setRateLocked(now int64, r float64) {
	if r == l.rate {
		return
	}
	l.rate = r
	if p := l.pace.Load(); p != nil {
		p.lim.SetLimitAt(l.epoch.Add(time.Duration(now)), rate.Limit(r))
	}
}

// pauseLocked starts or lengthens the shared pause; it reports whether it did.
func (l *Limiter) pauseLocked(now int64, retryAfter time.Duration) bool {
	until := now + int64(min(retryAfter, l.cfg.MaxPause))
	for {
		old := l.pauseUntil.Load()
		if until <= old {
			return false
		}
		if l.pauseUntil.CompareAndSwap(old, until) {
			break
		}
	}
	l.pauses.Add(1)
	l.replacePacerLocked()
	return true
}

// Pause makes every caller wait d (capped at MaxPause), as a Retry-After
// would, for a 429 that another instance sharing the budget was given. It
// does not cut an adaptive rate (that instance's limiter did) and does not
// call OnPause.
func (l *Limiter) Pause(d time.Duration) {
	if l == nil || d <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pauseLocked(l.nanos(), d)
}

// Stats returns a snapshot of the limiter's state and counters.
func (l *Limiter) Stats() LimiterStats {
	if l == nil {
		return LimiterStats{}
	}
	st := LimiterStats{
		InProgress: l.inProgress.Load(),
		Acquired:   l.acquired.Load(),
		Waits:      l.waits.Load(),
		WaitTime:   time.Duration(l.waitNanos.Load()),
		Throttled:  l.throttled.Load(),
		Pauses:     l.pauses.Load(),
		Decreases:  l.decreases.Load(),
	}
	if p := l.pace.Load(); p != nil {
		st.Rate = float64(p.lim.Limit())
	}
	l.mu.Lock()
	st.Share = l.share
	l.mu.Unlock()
	if until := l.pauseUntil.Load(); until != 0 && l.nanos() < until {
		st.PausedUntil = l.epoch.Add(time.Duration(until))
	}
	return st
}

func (l *Limiter) nanos() int64 { return int64(l.clock().Sub(l.epoch)) }

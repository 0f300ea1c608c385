package provisioning

import (
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/acme-sp/wholesale-provisioner/schemas"
)

// These tests are in package provisioning, not provisioning_test, so that they
// can drive the adaptive rate with a clock of their own. They cannot import
// webexsim (which imports this package), so bucketServer below answers like
// webexsim's RateLimit option.

// manualClock is a clock that moves only when told to; tests that use it run
// in one goroutine.
type manualClock struct{ now time.Time }

func newManualClock() *manualClock { return &manualClock{now: time.Unix(1_700_000_000, 0)} }

func (c *manualClock) Now() time.Time          { return c.now }
func (c *manualClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6*max(1, math.Abs(b)) }

func TestLimiterConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  LimiterConfig
		ok   bool
	}{
		{"zero", LimiterConfig{}, true},
		{"full", LimiterConfig{Rate: 300, Burst: 5, MaxConcurrent: 64, Adaptive: true, InitialRate: 50, MinRate: 2, DecreaseFactor: 0.5, IncreaseStep: 3, MaxPause: time.Minute}, true},
		{"negative rate", LimiterConfig{Rate: -1}, false},
		{"NaN rate", LimiterConfig{Rate: math.NaN()}, false},
		{"infinite rate", LimiterConfig{Rate: math.Inf(1)}, false},
		{"negative burst", LimiterConfig{Burst: -1}, false},
		{"negative concurrency", LimiterConfig{MaxConcurrent: -1}, false},
		{"negative initial rate", LimiterConfig{InitialRate: -1}, false},
		{"negative step", LimiterConfig{IncreaseStep: -1}, false},
		{"decrease factor 1", LimiterConfig{DecreaseFactor: 1}, false},
		{"decrease factor NaN", LimiterConfig{DecreaseFactor: math.NaN()}, false},
		{"negative pause", LimiterConfig{MaxPause: -time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
	defer func() {
		if recover() == nil {
			t.Error("NewLimiter accepted an invalid config")
		}
	}()
	NewLimiter(LimiterConfig{Rate: -1})
}

func TestLimiterDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  LimiterConfig
		rate float64
	}{
		{"no rate", LimiterConfig{}, 0},
		{"fixed rate", LimiterConfig{Rate: 100}, 100},
		{"adaptive without rate starts at 50", LimiterConfig{Adaptive: true}, 50},
		{"adaptive starts at Rate", LimiterConfig{Adaptive: true, Rate: 300}, 300},
		{"adaptive initial rate", LimiterConfig{Adaptive: true, InitialRate: 20, Rate: 300}, 20},
		{"adaptive initial rate capped at Rate", LimiterConfig{Adaptive: true, InitialRate: 500, Rate: 300}, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NewLimiter(tc.cfg).Stats().Rate; got != tc.rate {
				t.Errorf("rate %v, want %v", got, tc.rate)
			}
		})
	}
	l := NewLimiter(LimiterConfig{})
	if l.cfg.Burst != 1 || l.cfg.MaxPause != time.Minute || l.cfg.DecreaseFactor != 0.7 || l.cfg.MinRate != 1 {
		t.Errorf("defaults %+v", l.cfg)
	}
}

func TestLimiterNil(t *testing.T) {
	var l *Limiter
	release, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	release()
	l.Observe(http.StatusTooManyRequests, time.Second)
	if st := l.Stats(); st != (LimiterStats{}) {
		t.Errorf("stats of a nil limiter: %+v", st)
	}
}

func TestLimiterPauseArithmetic(t *testing.T) {
	clk := newManualClock()
	l := newLimiter(LimiterConfig{MaxPause: 10 * time.Second}, clk.Now)
	t0 := clk.Now()
	want := func(step string, until time.Time) {
		t.Helper()
		if got := l.Stats().PausedUntil; !got.Equal(until) {
			t.Errorf("%s: paused until %v, want %v", step, got, until)
		}
	}
	l.Observe(http.StatusTooManyRequests, 0)
	want("429 without Retry-After", time.Time{})
	l.Observe(http.StatusServiceUnavailable, 5*time.Second)
	want("503 with Retry-After", time.Time{})
	l.Observe(http.StatusTooManyRequests, 2*time.Second)
	want("429", t0.Add(2*time.Second))
	clk.Advance(500 * time.Millisecond)
	l.Observe(http.StatusTooManyRequests, time.Second)
	want("shorter pause", t0.Add(2*time.Second))
	l.Observe(http.StatusLocked, 3*time.Second)
	want("a 423 is one resource's: it pauses nobody", t0.Add(2*time.Second))
	l.Observe(http.StatusTooManyRequests, 3*time.Second)
	want("429 lengthens", t0.Add(3500*time.Millisecond))
	l.Observe(http.StatusTooManyRequests, time.Hour)
	want("capped", t0.Add(10500*time.Millisecond))
	clk.Advance(10 * time.Second)
	want("over", time.Time{})
	st := l.Stats()
	if st.Throttled != 5 || st.Pauses != 3 || st.Decreases != 0 {
		t.Errorf("stats %+v: want 5 throttled (429s), 3 pauses, no decrease", st)
	}
}

func TestLimiterAdaptiveArithmetic(t *testing.T) {
	clk := newManualClock()
	l := newLimiter(LimiterConfig{Adaptive: true, InitialRate: 100, Rate: 1000, MinRate: 10}, clk.Now)
	rateIs := func(step string, want float64) {
		t.Helper()
		if got := l.Stats().Rate; !near(got, want) {
			t.Fatalf("%s: rate %v, want %v", step, got, want)
		}
	}
	ok := func() { l.Observe(http.StatusOK, 0) }

	clk.Advance(100 * time.Millisecond)
	ok()
	rateIs("no caller waited for the rate", 100)
	clk.Advance(100 * time.Millisecond)
	l.limited.Store(true)
	ok()
	rateIs("slow start: +50%/s for 100ms", 105)
	l.limited.Store(true)
	ok()
	rateIs("at most one growth per 100ms", 105)
	clk.Advance(time.Minute)
	ok()
	rateIs("growth takes 250ms at most", 105*(1+0.5*0.25))
	r := l.Stats().Rate

	clk.Advance(time.Second)
	l.Observe(http.StatusTooManyRequests, 0)
	rateIs("cut", 0.7*r)
	ceiling := r
	clk.Advance(900 * time.Millisecond)
	l.Observe(http.StatusTooManyRequests, 0)
	rateIs("one cut a second", 0.7*r)
	l.Observe(http.StatusLocked, 0)
	rateIs("a 423 does not cut", 0.7*r)

	clk.Advance(100 * time.Millisecond)
	l.Observe(http.StatusTooManyRequests, 2*time.Second)
	r = 0.7 * 0.7 * ceiling
	rateIs("a cut a second later", r)
	if got := l.ceiling; !near(got, missedCeiling*0.7*ceiling) {
		t.Errorf("a 429 well short of the target: ceiling %v, want %v", got, missedCeiling*0.7*ceiling)
	}
	ceiling = l.ceiling
	clk.Advance(1500 * time.Millisecond)
	l.Observe(http.StatusTooManyRequests, 0)
	rateIs("429 during the pause (it answers a call sent before it)", r)
	l.limited.Store(true)
	ok()
	rateIs("no growth during a pause", r)

	clk.Advance(600 * time.Millisecond)
	l.limited.Store(true)
	ok()
	target := headroom * ceiling
	r += (target - r) * 0.25
	rateIs("quick return toward 95% of the ceiling", r)
	for range 100 {
		clk.Advance(250 * time.Millisecond)
		l.limited.Store(true)
		ok()
	}
	if got := l.Stats().Rate; got < target || got > ceiling {
		t.Fatalf("after 25s: rate %v, want between %v and the ceiling %v", got, target, ceiling)
	}

	for range 20 {
		clk.Advance(1100 * time.Millisecond)
		l.Observe(http.StatusTooManyRequests, 0)
	}
	rateIs("floor", 10)
	if st := l.Stats(); st.Decreases < 3 || st.Throttled != 24 {
		t.Errorf("stats %+v: want 24 throttled (the 429s; the 423 is not the budget's)", st)
	}

	// The cap: a limiter at Rate does not grow past it.
	l = newLimiter(LimiterConfig{Adaptive: true, Rate: 200}, clk.Now)
	for range 10 {
		clk.Advance(250 * time.Millisecond)
		l.limited.Store(true)
		ok()
	}
	rateIs("capped at Rate", 200)
}

func TestNextRate(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cfg        LimiterConfig
		r, ceiling float64
		dt         time.Duration
		want       float64
	}{
		{name: "slow start", r: 100, dt: 100 * time.Millisecond, want: 105},
		{name: "quick return", r: 100, ceiling: 200, dt: 100 * time.Millisecond, want: 100 + (190-100)*0.1},
		{name: "quick return ends in a creep", r: 189.99, ceiling: 200, dt: time.Second, want: 189.99 * (1 + defaultStep)},
		{name: "creep", r: 195, ceiling: 200, dt: time.Second, want: 195 * (1 + defaultStep)},
		{name: "configured step", cfg: LimiterConfig{IncreaseStep: 2}, r: 195, ceiling: 200, dt: 500 * time.Millisecond, want: 196},
		{name: "past the ceiling", r: 250, ceiling: 200, dt: time.Second, want: 250*(1+defaultStep) + 50*probeGain},
		{name: "capped", cfg: LimiterConfig{Rate: 101}, r: 100, dt: time.Second, want: 101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextRate(tc.cfg, tc.r, tc.ceiling, tc.dt); !near(got, tc.want) {
				t.Errorf("nextRate(%v, %v, %v) = %v, want %v", tc.r, tc.ceiling, tc.dt, got, tc.want)
			}
		})
	}
}

// simResult counts, per second of simulated time, the calls a server let
// through and those it answered 429, and the limiter's rate.
type simResult struct {
	ok, rejected []int
	rates        []float64
}

// sum returns the calls let through and rejected in seconds [from, to).
func (r simResult) sum(from, to int) (ok, rejected int) {
	for i := from; i < to; i++ {
		ok += r.ok[i]
		rejected += r.rejected[i]
	}
	return ok, rejected
}

// simulate drives a Limiter in simulated time, with unlimited demand, against
// a server that allows serverRate(second) requests per second with a burst of
// a tenth of that and answers 429 with Retry-After: 1 above it, as webexsim
// does. Answers take rtt; pauses end with webexsim-like jitter. It is
// deterministic, so its bounds can be tight.
func simulate(cfg LimiterConfig, serverRate func(sec int) float64, d, rtt time.Duration) simResult {
	clk := newManualClock()
	base := clk.Now()
	at := func(n int64) time.Time { return base.Add(time.Duration(n)) }
	l := newLimiter(cfg, clk.Now)
	sr := serverRate(0)
	srv := rate.NewLimiter(rate.Limit(sr), max(1, int(sr/10)))
	rng := rand.New(rand.NewPCG(1, 2))
	secs := int(d / time.Second)
	res := simResult{ok: make([]int, secs+1), rejected: make([]int, secs+1), rates: make([]float64, secs+1)}
	type answer struct {
		at     int64
		status int
	}
	var inFlight []answer // in the order they arrive, as rtt is fixed
	deliver := func(upTo int64) {
		for len(inFlight) > 0 && inFlight[0].at <= upTo {
			a := inFlight[0]
			inFlight = inFlight[1:]
			clk.now = at(a.at)
			if a.status == http.StatusTooManyRequests {
				l.Observe(a.status, time.Second)
			} else {
				l.Observe(a.status, 0)
			}
		}
	}
	for t := int64(0); t < int64(d); {
		deliver(t)
		clk.now = at(t)
		res.rates[t/int64(time.Second)] = l.rate
		if until := l.pauseUntil.Load(); until > t {
			deliver(until)
			t = until + rng.Int64N(max(1, (until-t)/10))
			continue
		}
		p := l.pace.Load()
		r := p.lim.ReserveN(at(t), 1)
		send := t + int64(r.DelayFrom(at(t)))
		if send > t {
			l.limited.Store(true)
		}
		deliver(send)
		t = send
		if l.pace.Load() != p || l.pauseUntil.Load() > send {
			continue // the pause voided the reservation, as in Acquire
		}
		arrive := send + int64(rtt/2)
		sec := int(arrive / int64(time.Second))
		if s := serverRate(sec); s != sr {
			sr = s
			srv.SetLimitAt(at(arrive), rate.Limit(s))
			srv.SetBurstAt(at(arrive), max(1, int(s/10)))
		}
		status := http.StatusOK
		if !srv.AllowN(at(arrive), 1) {
			status = http.StatusTooManyRequests
		}
		if sec <= secs {
			if status == http.StatusOK {
				res.ok[sec]++
			} else {
				res.rejected[sec]++
			}
		}
		inFlight = append(inFlight, answer{send + int64(rtt), status})
	}
	return res
}

func constantRate(r float64) func(int) float64 { return func(int) float64 { return r } }

// TestLimiterAgainstTokenBucketSimulated checks where the limiter settles
// against a webexsim-like rate limit, in three minutes of simulated time.
func TestLimiterAgainstTokenBucketSimulated(t *testing.T) {
	for _, limit := range []float64{100, 300, 1000} {
		for _, tc := range []struct {
			name string
			cfg  LimiterConfig
			// minShare is the least share of the limit served after a minute.
			minShare float64
		}{
			{"configured at the limit", LimiterConfig{Rate: limit}, 0.995},
			{"adaptive from 50", LimiterConfig{Adaptive: true}, 0.94},
			{"adaptive from twice the limit", LimiterConfig{Adaptive: true, InitialRate: 2 * limit}, 0.94},
		} {
			res := simulate(tc.cfg, constantRate(limit), 180*time.Second, 2*time.Millisecond)
			ok, rejected := res.sum(60, 180)
			share := float64(ok) / 120 / limit
			frac := float64(rejected) / float64(ok+rejected)
			t.Logf("limit %v, %s: %.1f%% of the limit, %.3f%% answered 429 (first minute: %d 429s)",
				limit, tc.name, 100*share, 100*frac, func() int { _, r := res.sum(0, 60); return r }())
			if share < tc.minShare || frac > 0.001 {
				t.Errorf("limit %v, %s: %.1f%% of the limit (want >= %.1f%%) with %.3f%% 429s (want <= 0.1%%)",
					limit, tc.name, 100*share, 100*tc.minShare, 100*frac)
			}
		}
	}
}

// TestLimiterAdaptiveFollowsLimitSimulated checks that the adaptive rate finds
// a limit that rose and follows one that fell.
func TestLimiterAdaptiveFollowsLimitSimulated(t *testing.T) {
	limit := func(sec int) float64 {
		switch {
		case sec < 60:
			return 300
		case sec < 180:
			return 600
		default:
			return 200
		}
	}
	res := simulate(LimiterConfig{Adaptive: true}, limit, 240*time.Second, 2*time.Millisecond)
	found := slices.IndexFunc(res.rates[60:], func(r float64) bool { return r >= 0.95*600 })
	t.Logf("the rate reached 95%% of a limit risen from 300 to 600 after %ds", found)
	if found < 0 || found > 90 {
		t.Errorf("the rate did not find the risen limit within 90s (rates %v)", res.rates[60:180])
	}
	ok, rejected := res.sum(195, 240)
	t.Logf("15s after the limit fell to 200: %.1f%% of it served, %d 429s in 45s", float64(ok)/45/2, rejected)
	if float64(ok) < 0.9*200*45 || rejected > 3 {
		t.Errorf("after the limit fell to 200: %d calls let through and %d rejected in 45s", ok, rejected)
	}
}

// bucketServer answers like webexsim with RateLimit set: 429 with
// Retry-After: 1 above the limit, otherwise an empty subscriber list.
type bucketServer struct {
	lim          *rate.Limiter // nil: no limit
	ok, rejected atomic.Int64
	mu           sync.Mutex
	oks, rejects []time.Time
}

func (s *bucketServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	if s.lim != nil && !s.lim.AllowN(now, 1) {
		s.rejected.Add(1)
		s.mu.Lock()
		s.rejects = append(s.rejects, now)
		s.mu.Unlock()
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"message":"Too many requests"}`)
		return
	}
	s.ok.Add(1)
	s.mu.Lock()
	s.oks = append(s.oks, now)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"items":[]}`)
}

// countIn returns how many of ts fall in [from, to).
func countIn(ts []time.Time, from, to time.Time) int {
	n := 0
	for _, x := range ts {
		if !x.Before(from) && x.Before(to) {
			n++
		}
	}
	return n
}

// newLimitedClient returns a Client of h through lim; the server is closed
// when the test ends.
func newLimitedClient(t *testing.T, h http.Handler, lim *Limiter) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := NewClient(ClientConfig{BaseURL: srv.URL + "/v1", Tokens: StaticToken("t"), Limiter: lim, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// hammer runs n goroutines that call c until ctx ends, pausing between calls.
func hammer(ctx context.Context, c *Client, n int, gap time.Duration) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				_, _ = c.FindSubscriber(ctx, "customer-1", "a@acme.example")
				if gap > 0 {
					_ = Sleep(ctx, gap)
				}
			}
		})
	}
	wg.Wait()
}

// TestLimiterSharedBackoff is the test: after one 429 with
// Retry-After: 2, no call reaches the server for 2s, whichever worker sends it.
func TestLimiterSharedBackoff(t *testing.T) {
	var (
		mu       sync.Mutex
		arrivals []time.Time
		first    time.Time // when the 429 was answered
	)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		now := time.Now()
		if first.IsZero() {
			first = now
			mu.Unlock()
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		arrivals = append(arrivals, now)
		mu.Unlock()
		_, _ = io.WriteString(w, `{"items":[]}`)
	})
	lim := NewLimiter(LimiterConfig{})
	c := newLimitedClient(t, h, lim)
	ctx, cancel := context.WithTimeout(context.Background(), 3500*time.Millisecond)
	defer cancel()
	hammer(ctx, c, 20, 2*time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	// Calls already sent when the 429 was answered may still arrive: the
	// pause begins when the client reads the 429.
	const grace = 50 * time.Millisecond
	var late, inPause, after []time.Duration
	for _, a := range arrivals {
		switch d := a.Sub(first); {
		case d < grace:
			late = append(late, d)
		case d < 2*time.Second:
			inPause = append(inPause, d)
		default:
			after = append(after, d)
		}
	}
	t.Logf("%d calls arrived in the %s after the 429 (the last at %v), %d after the pause", len(late), grace, slices.Max(append(late, 0)), len(after))
	if len(inPause) > 0 {
		t.Errorf("%d calls reached the server during the 2s pause, at %v after the 429", len(inPause), inPause)
	}
	if len(after) == 0 {
		t.Fatal("no call after the pause")
	}
	// Waiters come back within the jitter: a tenth of the pause.
	if resume := slices.Min(after); resume > 2200*time.Millisecond+200*time.Millisecond {
		t.Errorf("the first call after the pause came %v after the 429", resume)
	}
	if st := lim.Stats(); st.Pauses != 1 || st.Throttled != 1 || st.Waits < 19 || st.InProgress != 0 {
		t.Errorf("stats %+v: want 1 pause, 1 throttled, a wait for each worker, none in progress", st)
	}
}

// TestLimiterPauseSpreadsWaiters checks that the end of a pause does not
// release every waiter at once.
func TestLimiterPauseSpreadsWaiters(t *testing.T) {
	lim := NewLimiter(LimiterConfig{})
	lim.Observe(http.StatusTooManyRequests, time.Second)
	var mu sync.Mutex
	var got []time.Time
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			release, err := lim.Acquire(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			release()
			mu.Lock()
			got = append(got, time.Now())
			mu.Unlock()
		})
	}
	wg.Wait()
	spread := slices.MaxFunc(got, time.Time.Compare).Sub(slices.MinFunc(got, time.Time.Compare))
	t.Logf("50 waiters released over %v", spread)
	if spread < 20*time.Millisecond || spread > 150*time.Millisecond {
		t.Errorf("waiters released over %v, want a jitter of up to 100ms", spread)
	}
}

func TestLimiterRate(t *testing.T) {
	srv := &bucketServer{}
	c := newLimitedClient(t, srv, NewLimiter(LimiterConfig{Rate: 100}))
	ctx, cancel := context.WithTimeout(context.Background(), 1300*time.Millisecond)
	defer cancel()
	hammer(ctx, c, 20, 0)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	start := srv.oks[0]
	n := countIn(srv.oks, start, start.Add(time.Second))
	t.Logf("%d calls in the first second, %d in all", n, len(srv.oks))
	// One at once (the burst) and one every 10ms; arrival jitter may let one
	// more in. The lower bound is loose: a loaded machine may be late.
	if n > 102 || n < 80 {
		t.Errorf("%d calls in one second at a rate of 100/s", n)
	}
}

// TestLimiterRateAfterPause checks that a pause voids the schedule of the
// callers that were waiting for the rate: when it ends, they are paced again
// instead of all going at once.
func TestLimiterRateAfterPause(t *testing.T) {
	lim := NewLimiter(LimiterConfig{Rate: 50})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []time.Time
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			for {
				release, err := lim.Acquire(ctx)
				if err != nil {
					return
				}
				mu.Lock()
				got = append(got, time.Now())
				mu.Unlock()
				release()
			}
		})
	}
	time.Sleep(200 * time.Millisecond) // 40 waiters hold reservations up to 800ms ahead
	lim.Observe(http.StatusTooManyRequests, 500*time.Millisecond)
	end := lim.Stats().PausedUntil
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if n := countIn(got, end.Add(-450*time.Millisecond), end); n > 0 {
		t.Errorf("%d calls during the pause", n)
	}
	n := countIn(got, end, end.Add(time.Second))
	t.Logf("%d calls in the second after the pause", n)
	if n > 52 {
		t.Errorf("%d calls in the second after the pause, at a rate of 50/s", n)
	}
}

func TestLimiterMaxConcurrent(t *testing.T) {
	var cur, peak atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		defer cur.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		_, _ = io.WriteString(w, `{"items":[]}`)
	})
	lim := NewLimiter(LimiterConfig{MaxConcurrent: 4})
	c := newLimitedClient(t, h, lim)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var over atomic.Int64
	for range 30 {
		wg.Go(func() {
			for range 5 {
				if _, err := c.FindSubscriber(ctx, "customer-1", "a@acme.example"); err != nil {
					t.Error(err)
				}
				if n := lim.Stats().InProgress; n > 4 {
					over.Store(n)
				}
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p != 4 {
		t.Errorf("at most %d calls in progress at the server, want 4", p)
	}
	if n := over.Load(); n != 0 {
		t.Errorf("the limiter counted %d calls in progress", n)
	}
	if st := lim.Stats(); st.InProgress != 0 || st.Waits == 0 {
		t.Errorf("stats %+v: want none in progress and some waits", st)
	}
}

// TestLimiterAdaptive runs a client that starts at 150/s against a server
// that allows 100/s: the adaptive rate must come down to the limit and keep
// the 429s rare. Each 429 pauses every caller for a second, and it takes a few
// of them to get there (see the simulated tests for the long run), so the
// bounds apply to the last 5 of 10 seconds and are loose: on a loaded machine
// calls bunch up on their way and use up the server's burst. Without
// adaptation, about a quarter of the limit gets through.
func TestLimiterAdaptive(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 10s")
	}
	srv := &bucketServer{lim: rate.NewLimiter(100, 10)}
	lim := NewLimiter(LimiterConfig{Adaptive: true, InitialRate: 150})
	c := newLimitedClient(t, srv, lim)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hammer(ctx, c, 20, 0)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	from, to := start.Add(5*time.Second), start.Add(10*time.Second)
	ok, rejected := countIn(srv.oks, from, to), countIn(srv.rejects, from, to)
	st := lim.Stats()
	t.Logf("%d let through and %d 429s in all; in the last 5s: %.0f/s let through, %d 429s; rate now %.1f, %d decreases",
		srv.ok.Load(), srv.rejected.Load(), float64(ok)/5, rejected, st.Rate, st.Decreases)
	if r := float64(ok) / 5; r < 55 || r > 103 {
		t.Errorf("%.0f calls/s let through in the last 5s, want close to 100", r)
	}
	if frac := float64(rejected) / float64(ok+rejected); frac > 0.03 {
		t.Errorf("%.1f%% of the calls answered 429 in the last 5s", 100*frac)
	}
	if st.Decreases == 0 || st.Rate > 115 {
		t.Errorf("stats %+v: the rate should have come down", st)
	}
}

func TestLimiterAcquireHonoursContext(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   LimiterConfig
		setup func(*Limiter)
	}{
		{"pause", LimiterConfig{}, func(l *Limiter) { l.Observe(http.StatusTooManyRequests, time.Minute) }},
		{"concurrency", LimiterConfig{MaxConcurrent: 1}, func(l *Limiter) {
			if _, err := l.Acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
		{"rate", LimiterConfig{Rate: 0.01}, func(l *Limiter) {
			release, err := l.Acquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			release()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLimiter(tc.cfg)
			tc.setup(l)
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			start := time.Now()
			_, err := l.Acquire(ctx)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if took := time.Since(start); took > time.Second {
				t.Errorf("Acquire returned %v after it was cancelled", took)
			}
			if tc.name != "concurrency" && l.Stats().InProgress != 0 {
				t.Errorf("in progress %d after a cancelled Acquire", l.Stats().InProgress)
			}
			ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			if _, err := l.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want context.DeadlineExceeded", err)
			}
		})
	}
}

// TestClientLimiter checks the plumbing in Client.do: a cancelled wait is the
// context's error, not a transport error, and nothing is sent; a 429 pauses the
// next call of every caller.
func TestClientLimiter(t *testing.T) {
	var calls atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "60")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	lim := NewLimiter(LimiterConfig{})
	c := newLimitedClient(t, h, lim)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err := c.GetSubscriber(ctx, "sub-1")
	cancel()
	var api *APIError
	if !errors.As(err, &api) || api.StatusCode != http.StatusTooManyRequests || api.RetryAfter != time.Minute {
		t.Fatalf("first call: %v", err)
	}
	if until := lim.Stats().PausedUntil; time.Until(until) < 59*time.Second {
		t.Errorf("paused until %v, want a minute from now", until)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, _, err = c.Provision(ctx, ProvisionRequest{CustomerID: "c", Email: "a@acme.example"})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's error", err)
	}
	var tr *TransportError
	if errors.As(err, &tr) || errors.As(err, &api) {
		t.Errorf("a call that waited for the limiter and was never sent is reported as %T", err)
	}
	if d := Classify(err); d.Class != schemas.ErrorClassTransient {
		t.Errorf("classified %+v", d)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d calls reached the server, want 1", n)
	}
}

// TestClientLockedPausesNobody: a 423 says one resource is busy ("the
// requested resource is temporarily unavailable"), so the call that met it
// carries its Retry-After for its own retry, and every other call goes on.
func TestClientLockedPausesNobody(t *testing.T) {
	var calls atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "60")
			w.WriteHeader(http.StatusLocked)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"sub-2","status":"provisioned"}`))
	})
	lim := NewLimiter(LimiterConfig{})
	c := newLimitedClient(t, h, lim)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.GetSubscriber(ctx, "sub-1")
	var api *APIError
	if !errors.As(err, &api) || api.StatusCode != http.StatusLocked || api.RetryAfter != time.Minute {
		t.Fatalf("first call: %v", err)
	}
	if d := Classify(err); d.Class != schemas.ErrorClassTransient || d.RetryAfter != time.Minute {
		t.Errorf("the 423 is classified %+v, want transient with its own Retry-After", d)
	}
	if until := lim.Stats().PausedUntil; !until.IsZero() {
		t.Errorf("a 423 paused every caller until %v", until)
	}
	other, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	if _, err := c.GetSubscriber(other, "sub-2"); err != nil {
		t.Errorf("another call after a 423: %v, want it sent at once", err)
	}
}

// BenchmarkLimiterAcquire measures what the limiter adds to each call:
// Acquire, release and Observe from parallel callers.
func BenchmarkLimiterAcquire(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  LimiterConfig
	}{
		{"unlimited", LimiterConfig{}},
		{"max-concurrent", LimiterConfig{MaxConcurrent: 1 << 16}},
		{"adaptive", LimiterConfig{Adaptive: true, Rate: 1e12, InitialRate: 1e12}},
		{"rate", LimiterConfig{Rate: 1e12}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l := NewLimiter(bc.cfg)
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					release, err := l.Acquire(ctx)
					if err != nil {
						b.Fatal(err)
					}
					release()
					l.Observe(http.StatusOK, 0)
				}
			})
		})
	}
}

func TestLimiterShare(t *testing.T) {
	clk := newManualClock()
	l := newLimiter(LimiterConfig{Rate: 300}, clk.Now)
	for _, tc := range []struct {
		share, rate float64
	}{{4.0 / 12, 100}, {6.0 / 12, 150}, {1, 300}, {2, 300}, {0, 300e-6}, {1.0 / 3, 100}} {
		l.SetShare(tc.share)
		if st := l.Stats(); !near(st.Rate, tc.rate) {
			t.Errorf("share %v: rate %v, want %v", tc.share, st.Rate, tc.rate)
		}
	}
	if st := l.Stats(); !near(st.Share, 1.0/3) {
		t.Errorf("share %v, want 1/3", st.Share)
	}

	// Adaptive: the rate, its ceiling and its cap scale together.
	a := newLimiter(LimiterConfig{Adaptive: true, Rate: 300, InitialRate: 300}, clk.Now)
	a.SetShare(0.5)
	if got := a.Stats().Rate; !near(got, 150) {
		t.Fatalf("adaptive rate after share 1/2: %v, want 150", got)
	}
	for range 20 {
		clk.Advance(250 * time.Millisecond)
		a.limited.Store(true)
		a.Observe(http.StatusOK, 0)
	}
	if got := a.Stats().Rate; !near(got, 150) {
		t.Errorf("adaptive rate grew to %v past its share of the cap, 150", got)
	}
	clk.Advance(time.Second)
	a.Observe(http.StatusTooManyRequests, 0)
	a.SetShare(1)
	if got, want := a.Stats().Rate, 2*0.7*150.0; !near(got, want) || !near(a.ceiling, 300) {
		t.Errorf("after a 429 at 150 and share 1: rate %v, ceiling %v; want %v and 300", got, a.ceiling, want)
	}

	// Measured: two limiters with half the budget each send about the budget.
	var sent atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range 2 {
		l := NewLimiter(LimiterConfig{Rate: 200})
		l.SetShare(0.5)
		callAsAllowed(ctx, l, &sent, &wg)
	}
	wg.Wait()
	if n := sent.Load(); n < 150 || n > 230 {
		t.Errorf("two halves of 200/s sent %d calls in a second, want about 200", n)
	}
}

// A new share applies to the callers already waiting for their turn: a cut
// share does not let the turns given at the old rate overshoot the new one
// (the group's other members take the rest), and a raised one lets them go
// at the new rate at once.
func TestLimiterShareAppliesToTheCallersWaiting(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after float64
		atLeast       int64
		atMost        int64
	}{
		{"cut from 200/s to 50/s", 1, 0.25, 25, 80},
		{"raised from 50/s to 200/s", 0.25, 1, 140, 230},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLimiter(LimiterConfig{Rate: 200})
			l.SetShare(tc.before)
			ctx, cancel := context.WithCancel(context.Background())
			var sent atomic.Int64
			var wg sync.WaitGroup
			for range 200 { // a queue of turns a second deep or more
				callAsAllowed(ctx, l, &sent, &wg)
			}
			time.Sleep(300 * time.Millisecond)
			l.SetShare(tc.after)
			from := sent.Load()
			time.Sleep(time.Second)
			n := sent.Load() - from
			cancel()
			wg.Wait()
			if n < tc.atLeast || n > tc.atMost {
				t.Errorf("%d calls in the second after the new share, want %d to %d", n, tc.atLeast, tc.atMost)
			}
		})
	}
}

// callAsAllowed starts a caller that calls through l as fast as it allows,
// counting its calls in sent, until ctx ends; wg waits for it.
func callAsAllowed(ctx context.Context, l *Limiter, sent *atomic.Int64, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			release, err := l.Acquire(ctx)
			if err != nil {
				return
			}
			sent.Add(1)
			release()
		}
	}()
}

func TestLimiterPauseFromElsewhere(t *testing.T) {
	clk := newManualClock()
	var told []time.Duration
	l := newLimiter(LimiterConfig{Rate: 100, MaxPause: 10 * time.Second, OnPause: func(d time.Duration) { told = append(told, d) }}, clk.Now)
	l.Observe(http.StatusTooManyRequests, 2*time.Second)
	l.Observe(http.StatusTooManyRequests, time.Second) // inside the pause: does not lengthen it
	l.Observe(http.StatusTooManyRequests, time.Minute) // lengthens it, capped
	if !slices.Equal(told, []time.Duration{2 * time.Second, 10 * time.Second}) {
		t.Errorf("OnPause told %v, want the pauses that began or grew: 2s, then 10s (capped)", told)
	}
	clk.Advance(11 * time.Second)
	l.Pause(3 * time.Second)
	if st := l.Stats(); st.PausedUntil.Sub(clk.Now()) != 3*time.Second || len(told) != 2 {
		t.Errorf("Pause: paused until %v (now %v), OnPause told %v; want 3s and no echo", st.PausedUntil, clk.Now(), told)
	}
	if st := l.Stats(); st.Rate != 100 {
		t.Errorf("a pause from elsewhere changed the rate to %v", st.Rate)
	}
}

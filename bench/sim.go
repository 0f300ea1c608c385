package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// simToken is the bearer token the simulator accepts and the service sends.
const simToken = "bench-token"

// simulator is the Webex simulator of one trial on a loopback port. It notes
// the time of the first API call, from which the sustained request rate counts.
type simulator struct {
	sim       *webexsim.Server
	baseURL   string
	firstCall atomic.Int64 // Unix nanoseconds; 0 before the first call
	gaps      gaps
	// calls counts the API calls of each second since began, for the rate
	// around a disruption; calls after the last second are not counted.
	began time.Time
	calls [4 * 3600]atomic.Int64
	stop  func()
}

// startSimulator serves a fresh simulator with the scenario's latency and rate limit.
func startSimulator(ctx context.Context, sc Scenario) (*simulator, error) {
	s := &simulator{began: time.Now(), sim: webexsim.New(webexsim.Config{
		Token:     simToken,
		Latency:   sc.Latency,
		RateLimit: sc.SimRateLimit,
	})}
	addr, stop, err := serve(ctx, s, "simulator")
	if err != nil {
		return nil, fmt.Errorf("serving the Webex simulator: %w", err)
	}
	s.baseURL, s.stop = s.sim.BaseURL("http://"+addr), stop
	return s, nil
}

// ServeHTTP notes the first call and hands every call to the simulator.
func (s *simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now().UnixNano()
	if s.firstCall.Load() == 0 {
		s.firstCall.CompareAndSwap(0, now)
	}
	s.gaps.call(now)
	if i := (now - s.began.UnixNano()) / int64(time.Second); i < int64(len(s.calls)) {
		s.calls[i].Add(1)
	}
	s.sim.ServeHTTP(w, r)
}

// callsEachSecond is the API calls of each of the n whole seconds from from.
func (s *simulator) callsEachSecond(from time.Time, n int) []int64 {
	first := int(from.Sub(s.began) / time.Second)
	out := make([]int64, 0, n)
	for i := first; i < first+n && i < len(s.calls); i++ {
		if i >= 0 {
			out = append(out, s.calls[i].Load())
		}
	}
	return out
}

// callsPerSec is the API calls per second in the whole seconds from from,
// for d (at least one second).
func (s *simulator) callsPerSec(from time.Time, d time.Duration) float64 {
	first := int(from.Sub(s.began) / time.Second)
	n := max(int(d/time.Second), 1)
	var sum int64
	for i := first; i < first+n && i >= 0 && i < len(s.calls); i++ {
		sum += s.calls[i].Load()
	}
	return float64(sum) / float64(n)
}

// watchGaps starts timing the longest time without an API call.
func (s *simulator) watchGaps() { s.gaps.from.CompareAndSwap(0, time.Now().UnixNano()) }

// serve serves h on a fresh loopback port until stop is called; the server's
// goroutines carry the profiler label component=label. Call stop once the
// clients are done: it closes the connections and waits for the server.
func serve(ctx context.Context, h http.Handler, label string) (addr string, stop func(), err error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listening on loopback: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go pprof.Do(context.WithoutCancel(ctx), pprof.Labels("component", label), func(context.Context) {
		defer wg.Done()
		// ErrServerClosed after stop; a broken listener shows up as failed calls.
		_ = srv.Serve(ln)
	})
	stop = func() {
		// The clients have stopped. Close, not Shutdown: Shutdown waits up to 5 s
		// for connections a client dialed but never used.
		_ = srv.Close()
		wg.Wait()
	}
	return ln.Addr().String(), stop, nil
}

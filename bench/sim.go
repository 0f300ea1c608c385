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
	stop      func()
}

// startSimulator serves a fresh simulator with the scenario's latency and rate limit.
func startSimulator(ctx context.Context, sc Scenario) (*simulator, error) {
	s := &simulator{sim: webexsim.New(webexsim.Config{
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
	s.sim.ServeHTTP(w, r)
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

package consumer

import (
	"errors"
	"sync"
	"time"
)

func pausesConsumer(err error) bool {
	var p *PauseError
	return errors.As(err, &p)
}

// gate stops the consumer from starting records while such a fault lasts. The
// record that met it becomes the probe: it alone is retried, with backoff, and
// when it succeeds the gate opens again.
type gate struct {
	mu     sync.Mutex
	open   chan struct{} // closed while records may start
	prober *item
	since  time.Time
	cause  error
}

func newGate() *gate {
	ch := make(chan struct{})
	close(ch)
	return &gate{open: ch}
}

// wait returns a channel that is closed when it may start: at once unless the
// gate is shut and it is not the probe.
func (g *gate) wait(it *item) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.prober == it {
		return closedChan
	}
	return g.open
}

// shut closes the gate with it as the probe, unless another record probes
// already. It reports whether it is the probe.
func (g *gate) shut(it *item, cause error) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.prober == nil {
		g.prober, g.open, g.since = it, make(chan struct{}), time.Now()
	}
	if g.prober == it {
		g.cause = cause
		return true
	}
	return false
}

// leave opens the gate if it is the probe: after its success, or when it is
// abandoned (another record will meet the fault and probe). It reports whether
// the gate opened.
func (g *gate) leave(it *item) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.prober != it {
		return false
	}
	g.prober, g.cause = nil, nil
	close(g.open)
	return true
}

// state reports whether the gate is shut, since when, and why.
func (g *gate) state() (bool, time.Time, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.prober != nil, g.since, g.cause
}

var closedChan = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

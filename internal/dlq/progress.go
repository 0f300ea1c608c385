package dlq

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// counters are the running counts of a read, shared with the progress display.
type counters struct {
	read, replayed, refused, skipped atomic.Int64
}

// progress shows how far a read has come: on a terminal a bar redrawn in
// place, elsewhere (a log file, CI) one line every interval. A nil *progress
// shows nothing; its methods are safe for concurrent use.
type progress struct {
	w        io.Writer
	tty      bool
	label    string
	total    int64
	c        *counters
	tail     func(c *counters) string
	perSec   func(c *counters) int64
	start    time.Time
	interval time.Duration

	mu    sync.Mutex // serialises writes to w and to the output lines
	drawn bool
	stop  chan struct{}
	done  chan struct{}
}

// startProgress starts showing the progress of reading total records on w;
// nil w shows nothing. tail adds the counts after "n/total read"; perSec
// picks the count whose rate is shown.
func startProgress(w io.Writer, label string, total int64, c *counters, interval time.Duration,
	tail func(c *counters) string, perSec func(c *counters) int64) *progress {
	if w == nil {
		return nil
	}
	p := &progress{w: w, tty: isTerminal(w), label: label, total: total, c: c, tail: tail, perSec: perSec,
		start: time.Now(), interval: interval, stop: make(chan struct{}), done: make(chan struct{})}
	if p.interval <= 0 {
		p.interval = 2 * time.Second
	}
	tick := p.interval
	if p.tty {
		tick = 200 * time.Millisecond
	}
	go func() {
		defer close(p.done)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.mu.Lock()
				p.draw()
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// println writes one line to out without tearing the bar: on a terminal it
// clears the bar first; the next tick draws it again.
func (p *progress) println(out io.Writer, line string) {
	if p == nil {
		fmt.Fprintln(out, line)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	fmt.Fprintln(out, line)
}

// finish stops the display and leaves the last state on the terminal.
func (p *progress) finish() {
	if p == nil {
		return
	}
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		p.draw()
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

func (p *progress) status() string {
	read := p.c.read.Load()
	s := fmt.Sprintf("%d/%d read", read, p.total)
	if p.tail != nil {
		if t := p.tail(p.c); t != "" {
			s += ", " + t
		}
	}
	if secs := time.Since(p.start).Seconds(); secs >= 1 && p.perSec != nil {
		s += fmt.Sprintf(", %.1f/s", float64(p.perSec(p.c))/secs)
	}
	return s
}

func (p *progress) draw() {
	if !p.tty {
		fmt.Fprintf(p.w, "%s: %s\n", p.label, p.status())
		return
	}
	const width = 30
	filled := width
	if p.total > 0 {
		filled = int(min(p.c.read.Load(), p.total) * width / p.total)
	}
	fmt.Fprintf(p.w, "\r\x1b[K%s [%s%s] %s", p.label, strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.status())
	p.drawn = true
}

func (p *progress) clear() {
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

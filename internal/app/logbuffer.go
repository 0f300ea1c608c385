package app

import (
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Log lines wait at most logFlushDelay, or until logFlushBytes of them are
// gathered, before they are written: one write per line cost a system call
// per order (a pipe's on Kubernetes), about 2% of an order's CPU
// (BENCHMARKS.md, issue 16).
const (
	logFlushBytes = 32 << 10
	logFlushDelay = 100 * time.Millisecond
)

// LogBuffer gathers zerolog's lines and writes them to its writer in batches.
// A warning or worse is written at once, with the lines before it, so that
// what precedes a failure is never held back; a process killed with SIGKILL
// loses at most logFlushDelay of informational lines. It is safe for
// concurrent use; Close writes what is left.
type LogBuffer struct {
	mu     sync.Mutex
	w      io.Writer
	buf    []byte
	timer  *time.Timer // the pending delayed flush, nil when none
	closed bool
}

// NewLogBuffer returns a LogBuffer writing to w.
func NewLogBuffer(w io.Writer) *LogBuffer { return &LogBuffer{w: w} }

// Write buffers one line.
func (b *LogBuffer) Write(p []byte) (int, error) { return b.WriteLevel(zerolog.NoLevel, p) }

// WriteLevel buffers one line of level l (zerolog's LevelWriter).
func (b *LogBuffer) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return b.w.Write(p)
	}
	b.buf = append(b.buf, p...)
	if (l >= zerolog.WarnLevel && l <= zerolog.PanicLevel) || len(b.buf) >= logFlushBytes {
		return len(p), b.flushLocked()
	}
	if b.timer == nil {
		b.timer = time.AfterFunc(logFlushDelay, b.flushLater)
	}
	return len(p), nil
}

// flushLater is the delayed flush. One that fired while a write flushed
// finds an empty buffer, or flushes the next lines a little early: both
// harmless.
func (b *LogBuffer) flushLater() {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.flushLocked()
}

// flushLocked writes the buffered lines; b.mu is held.
func (b *LogBuffer) flushLocked() error {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	if cap(b.buf) > 4*logFlushBytes {
		b.buf = nil // a burst's buffer is not kept
	} else {
		b.buf = b.buf[:0]
	}
	return err
}

// Close writes the buffered lines; later lines are written at once.
func (b *LogBuffer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return b.flushLocked()
}

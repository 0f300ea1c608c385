package app

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// countingWriter records each write it is given.
type countingWriter struct {
	mu     sync.Mutex
	writes []string
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func (w *countingWriter) snapshot() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.writes...)
}

// TestLogBufferBatchesLines: informational lines reach the writer together,
// within the flush delay, whole and in order.
func TestLogBufferBatchesLines(t *testing.T) {
	w := &countingWriter{}
	b := NewLogBuffer(w)
	log := zerolog.New(b)
	for i := range 50 {
		log.Info().Int("n", i).Msg("order finished")
	}
	if got := w.snapshot(); len(got) != 0 {
		t.Fatalf("%d writes at once, want the lines held for the flush delay", len(got))
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(w.snapshot()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := w.snapshot()
	if len(got) != 1 {
		t.Fatalf("%d writes for 50 lines, want 1", len(got))
	}
	lines := strings.Split(strings.TrimSuffix(got[0], "\n"), "\n")
	if len(lines) != 50 || !strings.Contains(lines[0], `"n":0`) || !strings.Contains(lines[49], `"n":49`) {
		t.Fatalf("lines = %d, first %q, last %q", len(lines), lines[0], lines[len(lines)-1])
	}
}

// TestLogBufferWritesWarningsAtOnce: a warning is written at once, with the
// lines before it, and Close writes what is left.
func TestLogBufferWritesWarningsAtOnce(t *testing.T) {
	w := &countingWriter{}
	b := NewLogBuffer(w)
	log := zerolog.New(b)
	log.Info().Msg("first")
	log.Warn().Msg("webex answers 503")
	got := w.snapshot()
	if len(got) != 1 || !strings.Contains(got[0], "first") || !strings.Contains(got[0], "503") {
		t.Fatalf("writes = %q, want one with the info line and the warning", got)
	}
	log.Info().Msg("last")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	got = w.snapshot()
	if len(got) != 2 || !strings.Contains(got[1], "last") {
		t.Fatalf("writes after Close = %q, want the last line written", got)
	}
	log.Info().Msg("after close")
	if got := w.snapshot(); len(got) != 3 {
		t.Fatalf("%d writes, want a line after Close written at once", len(got))
	}
}

// TestLogBufferConcurrentLinesStayWhole: lines written from many goroutines
// are never interleaved, and a full buffer is written without waiting.
func TestLogBufferConcurrentLinesStayWhole(t *testing.T) {
	var out bytes.Buffer
	w := &lockedBuffer{b: &out}
	b := NewLogBuffer(w)
	log := zerolog.New(b)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				log.Info().Int("g", g).Int("i", i).Str("pad", strings.Repeat("x", 40)).Msg("line")
			}
		}()
	}
	wg.Wait()
	if w.len() == 0 {
		t.Fatal("nothing written after 4,000 lines: a full buffer must be written without waiting")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4000 {
		t.Fatalf("%d lines, want 4000", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, `{"level":"info"`) || !strings.HasSuffix(l, `"message":"line"}`) {
			t.Fatalf("broken line %q", l)
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

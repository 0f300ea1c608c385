// Package testkit holds what the tests of several packages share: waiting for
// a condition, a log buffer safe for concurrent writers, reading a header.
package testkit

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// WaitFor calls check every 50 ms until it returns nil, and fails the test
// with check's last error, naming what, when ctx ends first.
func WaitFor(ctx context.Context, t testing.TB, what string, check func() error) {
	t.Helper()
	for {
		err := check()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Buffer is a bytes.Buffer safe for concurrent writers, e.g. the log output
// of several provisioner instances.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// Bytes returns a copy of what was written.
func (l *Buffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.b.Bytes()...)
}

// Header returns the value of the record's header k ("" when absent).
func Header(m kafka.Message, k string) string {
	for _, h := range m.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// FreeAddr returns a 127.0.0.1 address with a port free a moment ago, for a
// child process that must be told where to listen (port 0 would not tell the
// test where it listens).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

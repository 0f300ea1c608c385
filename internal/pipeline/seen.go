package pipeline

import (
	"crypto/sha256"
	"sync"
)

// seenOrders remembers the content digest of recently answered order ids, so
// that an order id reused for different content is caught. It is bounded (the
// oldest entries are forgotten) and per instance: a best-effort guard against a
// billing system's mistake, not a registry. A nil *seenOrders remembers nothing.
type seenOrders struct {
	mu   sync.Mutex
	byID map[string]seenEntry
	// ring holds the ids in the order they were last answered; next is the
	// slot the next one takes, forgetting the id there. A slot whose id was
	// answered again later is stale: its entry points at the newer slot.
	ring []string
	next int
}

type seenEntry struct {
	digest [sha256.Size]byte
	slot   int
}

func newSeenOrders(max int) *seenOrders {
	if max <= 0 {
		return nil
	}
	return &seenOrders{byID: make(map[string]seenEntry, max), ring: make([]string, max)}
}

// conflicts reports whether id was answered before for other content.
func (s *seenOrders) conflicts(id string, digest [sha256.Size]byte) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byID[id]
	return ok && e.digest != digest
}

// add remembers that id was answered with content digest.
func (s *seenOrders) add(id string, digest [sha256.Size]byte) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.ring[s.next]; old != "" && s.byID[old].slot == s.next {
		delete(s.byID, old)
	}
	s.ring[s.next] = id
	s.byID[id] = seenEntry{digest: digest, slot: s.next}
	s.next = (s.next + 1) % len(s.ring)
}

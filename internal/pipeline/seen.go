package pipeline

import (
	"container/list"
	"crypto/sha256"
	"sync"
)

// seenOrders remembers the content digest of recently answered order ids, so
// that an order id reused for different content is caught. It is bounded (the
// oldest entries are forgotten) and per instance: a best-effort guard against a
// billing system's mistake, not a registry. A nil *seenOrders remembers nothing.
type seenOrders struct {
	mu    sync.Mutex
	max   int
	byID  map[string]*list.Element
	order *list.List // front: most recent
}

type seenEntry struct {
	id     string
	digest [sha256.Size]byte
}

func newSeenOrders(max int) *seenOrders {
	if max <= 0 {
		return nil
	}
	return &seenOrders{max: max, byID: make(map[string]*list.Element), order: list.New()}
}

// conflicts reports whether id was answered before for other content.
func (s *seenOrders) conflicts(id string, digest [sha256.Size]byte) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byID[id]
	return ok && e.Value.(*seenEntry).digest != digest
}

// add remembers that id was answered with content digest.
func (s *seenOrders) add(id string, digest [sha256.Size]byte) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.byID[id]; ok {
		e.Value.(*seenEntry).digest = digest
		s.order.MoveToFront(e)
		return
	}
	s.byID[id] = s.order.PushFront(&seenEntry{id: id, digest: digest})
	if s.order.Len() > s.max {
		last := s.order.Back()
		s.order.Remove(last)
		delete(s.byID, last.Value.(*seenEntry).id)
	}
}

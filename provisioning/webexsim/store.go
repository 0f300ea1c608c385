package webexsim

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

// record is one stored subscriber. sub is the state answered by the provision
// call; when settle is set, the subscriber moves to the settled state at
// settle.at. Reads compute the state for the current time instead of writing
// the change, so that GET and list only need the read lock.
type record struct {
	seq    uint64
	key    string // lower-cased email
	sub    provisioning.Subscriber
	settle *settlement
}

// settlement is the state a subscriber reaches when its provisioning finishes.
type settlement struct {
	at               time.Time
	status           string
	personID         string
	errors           []provisioning.ErrorItem
	lastStatusChange string
}

// view returns the subscriber as it is at now. The copy shares the Packages
// slice, which is never changed in place once stored.
func (rec *record) view(now time.Time) provisioning.Subscriber {
	sub := rec.sub
	if st := rec.settle; st != nil && !now.Before(st.at) {
		sub.Status = st.status
		sub.PersonID = st.personID
		sub.Errors = st.errors
		sub.LastStatusChange = st.lastStatusChange
	}
	return sub
}

// listFilter selects subscribers in a list call; empty fields match all.
type listFilter struct {
	customerID         string
	emailKey           string // lower-cased
	status             string
	personID           string
	externalCustomerID string
}

func (f *listFilter) match(rec *record, sub *provisioning.Subscriber) bool {
	return (f.customerID == "" || sub.CustomerID == f.customerID) &&
		(f.emailKey == "" || rec.key == f.emailKey) &&
		(f.status == "" || sub.Status == f.status) &&
		(f.personID == "" || sub.PersonID == f.personID) &&
		(f.externalCustomerID == "" || sub.ExternalCustomerID == f.externalCustomerID)
}

// store holds the subscribers. Its lock is held only for map and slice work,
// never during a sleep or while writing to a client.
type store struct {
	mu      sync.RWMutex
	seq     uint64
	byID    map[string]*record
	byEmail map[string]*record
	ordered []*record // by seq, which is creation order
}

func newStore() *store {
	s := &store{}
	s.reset()
	return s
}

func (s *store) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID = make(map[string]*record)
	s.byEmail = make(map[string]*record)
	s.ordered = nil
}

// insert stores rec unless a subscriber with the same email exists. Checking
// and inserting under one lock is what makes a create happen at most once per
// email however many calls race.
func (s *store) insert(rec *record) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byEmail[rec.key]; ok {
		return false
	}
	s.seq++
	rec.seq = s.seq
	s.byID[rec.sub.ID] = rec
	s.byEmail[rec.key] = rec
	s.ordered = append(s.ordered, rec)
	return true
}

func (s *store) hasEmail(key string) bool {
	s.mu.RLock()
	_, ok := s.byEmail[key]
	s.mu.RUnlock()
	return ok
}

func (s *store) get(id string, now time.Time) (provisioning.Subscriber, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rec, ok := s.byID[id]
	if !ok {
		return provisioning.Subscriber{}, false
	}
	return rec.view(now), true
}

// list returns up to max matching subscribers after skipping offset of them,
// in creation order, and whether more match.
func (s *store) list(f *listFilter, offset, max int, now time.Time) (items []provisioning.Subscriber, more bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	items = make([]provisioning.Subscriber, 0, min(max, 16))
	// An email matches at most one subscriber: use the index rather than a scan,
	// since the lookup by email is what clients do after an uncertain create.
	candidates := s.ordered
	if f.emailKey != "" {
		rec, ok := s.byEmail[f.emailKey]
		if !ok {
			return items, false
		}
		candidates = []*record{rec}
	}
	for _, rec := range candidates {
		sub := rec.view(now)
		if !f.match(rec, &sub) {
			continue
		}
		if offset > 0 {
			offset--
			continue
		}
		if len(items) == max {
			return items, true
		}
		items = append(items, sub)
	}
	return items, false
}

// update replaces the packages of a subscriber and returns it as it is now.
func (s *store) update(id string, pkgs []string, pkg string, now time.Time) (provisioning.Subscriber, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.byID[id]
	if !ok {
		return provisioning.Subscriber{}, false
	}
	// Replace the slice rather than change it: views handed out earlier share it.
	rec.sub.Packages = pkgs
	rec.sub.Package = pkg
	return rec.view(now), true
}

// packagesOf returns the current packages of a subscriber.
func (s *store) packagesOf(id string) ([]string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rec, ok := s.byID[id]
	if !ok {
		return nil, false
	}
	return rec.sub.Packages, true
}

func (s *store) remove(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.byID[id]
	if !ok {
		return false
	}
	delete(s.byID, id)
	delete(s.byEmail, rec.key)
	if i, found := slices.BinarySearchFunc(s.ordered, rec.seq, func(r *record, seq uint64) int {
		return cmp.Compare(r.seq, seq)
	}); found {
		s.ordered = slices.Delete(s.ordered, i, i+1)
	}
	return true
}

func (s *store) all(now time.Time) []provisioning.Subscriber {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]provisioning.Subscriber, 0, len(s.ordered))
	for _, rec := range s.ordered {
		out = append(out, rec.view(now))
	}
	return out
}

func (s *store) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byID)
}

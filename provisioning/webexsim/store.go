package webexsim

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

// record is one stored subscriber. sub is its state until settle.at; when
// settle is set, the subscriber moves to the settled state at settle.at.
// Reads compute the state for the current time instead of writing the change,
// so that GET and list only need the read lock; a write (update, resolve)
// first folds a settlement that is due into sub.
type record struct {
	seq     uint64
	key     string // lower-cased email
	sub     provisioning.Subscriber
	created int64 // sub.Created, in Unix milliseconds
	changed int64 // sub.LastStatusChange, in Unix milliseconds
	settle  *settlement
}

// settlement is the state a subscriber reaches when a change in progress
// (provisioning, updating, a pending user migration) finishes.
type settlement struct {
	at               time.Time
	status           string
	personID         string
	errors           []provisioning.ErrorItem
	lastStatusChange string
	changed          int64 // lastStatusChange in Unix milliseconds
}

// instant is a time as the API shows it: RFC 3339 with milliseconds, and the
// same time in Unix milliseconds for the list filters. Times are cut to the
// millisecond first, so that the string a client reads and the number the
// filters compare are the same instant.
type instant struct {
	t     time.Time
	stamp string
	ms    int64
}

func instantOf(t time.Time) instant {
	t = t.UTC().Truncate(time.Millisecond)
	return instant{t: t, stamp: t.Format(timeLayout), ms: t.UnixMilli()}
}

// settleAt returns a settlement at t to status, with personID and errors.
func settleAt(t time.Time, status, personID string, errs []provisioning.ErrorItem) *settlement {
	at := instantOf(t)
	return &settlement{at: at.t, status: status, personID: personID, errors: errs,
		lastStatusChange: at.stamp, changed: at.ms}
}

// due returns the settlement that applies at now, or nil.
func (rec *record) due(now time.Time) *settlement {
	if st := rec.settle; st != nil && !now.Before(st.at) {
		return st
	}
	return nil
}

// state returns what the list filters need of the subscriber at now, without
// copying it.
func (rec *record) state(now time.Time) (status, personID string, changed int64) {
	if st := rec.due(now); st != nil {
		return st.status, st.personID, st.changed
	}
	return rec.sub.Status, rec.sub.PersonID, rec.changed
}

// view returns the subscriber as it is at now. The copy shares the Packages
// slice, which is never changed in place once stored.
func (rec *record) view(now time.Time) provisioning.Subscriber {
	sub := rec.sub
	if st := rec.due(now); st != nil {
		sub.Status = st.status
		sub.PersonID = st.personID
		sub.Errors = st.errors
		sub.LastStatusChange = st.lastStatusChange
	}
	return sub
}

// fold writes a settlement that is due at now into sub; the store's write
// lock must be held.
func (rec *record) fold(now time.Time) {
	st := rec.due(now)
	if st == nil {
		return
	}
	rec.sub.Status = st.status
	rec.sub.PersonID = st.personID
	rec.sub.Errors = st.errors
	rec.sub.LastStatusChange = st.lastStatusChange
	rec.changed = st.changed
	rec.settle = nil
}

// setStatus changes the status at once, at now, dropping any settlement.
func (rec *record) setStatus(now instant, status, personID string, errs []provisioning.ErrorItem) {
	rec.settle = nil
	rec.sub.PersonID, rec.sub.Errors = personID, errs
	if rec.sub.Status != status {
		rec.sub.Status = status
		rec.sub.LastStatusChange, rec.changed = now.stamp, now.ms
	}
}

// listFilter selects subscribers in a list call; empty fields match all.
type listFilter struct {
	customerID         string
	emailKey           string // lower-cased
	status             string
	personID           string
	externalCustomerID string
	// createdAfter and changedAfter, when their flag is set, keep only the
	// subscribers created, or whose status last changed, strictly after them
	// (Unix milliseconds). Stored times are whole milliseconds, so comparing
	// with the floor of a finer filter time gives the same answer.
	createdAfter, changedAfter     int64
	byCreatedAfter, byChangedAfter bool
}

func (f *listFilter) match(rec *record, now time.Time) bool {
	if (f.customerID != "" && rec.sub.CustomerID != f.customerID) ||
		(f.emailKey != "" && rec.key != f.emailKey) ||
		(f.externalCustomerID != "" && rec.sub.ExternalCustomerID != f.externalCustomerID) ||
		(f.byCreatedAfter && rec.created <= f.createdAfter) {
		return false
	}
	status, personID, changed := rec.state(now)
	return (f.status == "" || status == f.status) &&
		(f.personID == "" || personID == f.personID) &&
		(!f.byChangedAfter || changed > f.changedAfter)
}

// listOrder is the order of a list answer.
type listOrder struct {
	byLastStatusChange bool // else by created
	descending         bool
}

// store holds the subscribers. Its lock is held only for map and slice work,
// never during a sleep or while writing to a client.
type store struct {
	mu      sync.RWMutex
	seq     uint64
	byID    map[string]*record
	byEmail map[string]*record
	ordered []*record // by seq, which is creation order
	// removed maps the ids of removed subscribers to their lower-cased email,
	// so that calls that name a removed subscriber are still counted per email.
	removed map[string]string
	// perCustomer counts the stored subscribers of each customer id, which a
	// customer's delete asks for.
	perCustomer map[string]int
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
	s.removed = make(map[string]string)
	s.perCustomer = make(map[string]int)
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
	s.perCustomer[rec.sub.CustomerID]++
	delete(s.removed, rec.sub.ID) // ids are random: only for completeness
	return true
}

// subscribersOf returns the number of stored subscribers of a customer.
func (s *store) subscribersOf(customerID string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.perCustomer[customerID]
}

// renameCustomer shows a customer's new externalId in its subscribers'
// externalCustomerId.
func (s *store) renameCustomer(customerID, externalID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perCustomer[customerID] == 0 {
		return
	}
	for _, rec := range s.ordered {
		if rec.sub.CustomerID == customerID {
			rec.sub.ExternalCustomerID = externalID
		}
	}
}

func (s *store) hasEmail(key string) bool {
	s.mu.RLock()
	_, ok := s.byEmail[key]
	s.mu.RUnlock()
	return ok
}

// emailOf returns the lower-cased email of the subscriber id names, stored or
// removed, for the per-email counters.
func (s *store) emailOf(id string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if rec, ok := s.byID[id]; ok {
		return rec.key, true
	}
	key, ok := s.removed[id]
	return key, ok
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
// in the order asked for, and whether more match. In creation order, either
// way, it is one scan that copies only the page; by lastStatusChange it sorts
// the matching subscribers, which only a caller asking for that order pays.
// The filter a poller uses (status and lastStatusChange) is checked on each
// record without copying it.
func (s *store) list(f *listFilter, order listOrder, offset, max int, now time.Time) (items []provisioning.Subscriber, more bool) {
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
	// take adds rec to the page; it reports false once the page is full and
	// another subscriber matches.
	take := func(rec *record) bool {
		if offset > 0 {
			offset--
			return true
		}
		if len(items) == max {
			more = true
			return false
		}
		items = append(items, rec.view(now))
		return true
	}
	if order.byLastStatusChange {
		type match struct {
			rec     *record
			changed int64
		}
		var matched []match
		for _, rec := range candidates {
			if f.match(rec, now) {
				_, _, changed := rec.state(now)
				matched = append(matched, match{rec, changed})
			}
		}
		slices.SortFunc(matched, func(a, b match) int {
			c := cmp.Or(cmp.Compare(a.changed, b.changed), cmp.Compare(a.rec.seq, b.rec.seq))
			if order.descending {
				return -c
			}
			return c
		})
		for _, m := range matched {
			if !take(m.rec) {
				break
			}
		}
		return items, more
	}
	if order.descending {
		for i := len(candidates) - 1; i >= 0; i-- {
			if rec := candidates[i]; f.match(rec, now) && !take(rec) {
				break
			}
		}
		return items, more
	}
	for _, rec := range candidates {
		if f.match(rec, now) && !take(rec) {
			break
		}
	}
	return items, more
}

// updateOutcome is what an update did.
type updateOutcome int

const (
	updateDone updateOutcome = iota
	updateNotFound
	updateBusy          // the subscriber is provisioning or updating
	updateNumberMissing // a move to calling without a number or extension
)

// update replaces the packages of a subscriber and returns it as it is now.
// A provisioned subscriber shows "updating" for delay when delay is positive;
// one waiting on its end user or in error only has its packages replaced. The
// checks that depend on the stored subscriber are made under the same lock as
// the change, so that two racing updates cannot both pass them.
func (s *store) update(id string, pkgs []string, pkg string, number bool, delay time.Duration, now time.Time) (provisioning.Subscriber, updateOutcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.byID[id]
	if !ok {
		return provisioning.Subscriber{}, updateNotFound
	}
	rec.fold(now)
	switch rec.sub.Status {
	case provisioning.SubscriberProvisioning, provisioning.SubscriberUpdating:
		return rec.view(now), updateBusy
	}
	// A number is only needed when a subscriber without calling gets it.
	if needsNumber(pkgs) && !needsNumber(rec.sub.Packages) && !number {
		return rec.view(now), updateNumberMissing
	}
	// Replace the slice rather than change it: views handed out earlier share it.
	rec.sub.Packages = pkgs
	rec.sub.Package = pkg
	if rec.sub.Status == provisioning.SubscriberProvisioned && delay > 0 {
		at := instantOf(now)
		personID := rec.sub.PersonID
		rec.setStatus(at, provisioning.SubscriberUpdating, personID, nil)
		rec.settle = settleAt(at.t.Add(delay), provisioning.SubscriberProvisioned, personID, nil)
	}
	return rec.view(now), updateDone
}

// remove deletes a subscriber and frees its email. It returns the subscriber's
// lower-cased email.
func (s *store) remove(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.byID[id]
	if !ok {
		return "", false
	}
	delete(s.byID, id)
	delete(s.byEmail, rec.key)
	s.removed[id] = rec.key
	if n := s.perCustomer[rec.sub.CustomerID] - 1; n > 0 {
		s.perCustomer[rec.sub.CustomerID] = n
	} else {
		delete(s.perCustomer, rec.sub.CustomerID)
	}
	if i, found := slices.BinarySearchFunc(s.ordered, rec.seq, func(r *record, seq uint64) int {
		return cmp.Compare(r.seq, seq)
	}); found {
		s.ordered = slices.Delete(s.ordered, i, i+1)
	}
	return rec.key, true
}

// statusOf returns the status of a subscriber at now and its lower-cased email.
func (s *store) statusOf(id string, now time.Time) (status, key string, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rec, ok := s.byID[id]
	if !ok {
		return "", "", false
	}
	status, _, _ = rec.state(now)
	return status, rec.key, true
}

// resolve ends the wait of the subscriber with this lower-cased email, if it
// waits on its end user at now: status is provisioned (with a new personId)
// or error (with errs), from now on.
func (s *store) resolve(key, status string, errs []provisioning.ErrorItem, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.byEmail[key]
	if !ok {
		return false
	}
	rec.fold(now)
	if !strings.HasPrefix(rec.sub.Status, "pending_") {
		return false
	}
	personID := ""
	if status == provisioning.SubscriberProvisioned {
		personID = webexID(personIDPrefix)
	}
	rec.setStatus(instantOf(now), status, personID, errs)
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

package webexsim

import (
	"sync"
	"time"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

// customerRecord is one stored customer. cust is its state until settle.at;
// then the customer is settle.next or, after a delete, gone. As for
// subscribers, reads compute the state for their time instead of writing
// the change, and writes first fold a settlement that is due into cust.
type customerRecord struct {
	seq  uint64
	cust provisioning.Customer // OrgID is left empty: view shows orgID by status
	// orgID is the customer's Webex organisation, the one the create named or
	// one made up; the API shows it only once the customer is provisioned.
	orgID string
	// pkgs is the package list the last create or update asked for, which a
	// customer still provisioning or in review shows only as resourceDetails.
	pkgs   []string
	settle *customerSettlement
}

// customerSettlement is the state a customer reaches when the change in
// progress (provisioning, updating, deleting) finishes.
type customerSettlement struct {
	at   time.Time
	next provisioning.Customer // unless gone
	gone bool                  // a delete: the customer is no more
}

// due returns the settlement that applies at now, or nil.
func (rec *customerRecord) due(now time.Time) *customerSettlement {
	if st := rec.settle; st != nil && !now.Before(st.at) {
		return st
	}
	return nil
}

// gone reports whether a delete of the customer has finished at now.
func (rec *customerRecord) gone(now time.Time) bool {
	st := rec.due(now)
	return st != nil && st.gone
}

// state returns the stored customer as it is at now, and false once it is
// gone. The copy shares its slices, which are never changed in place once
// stored.
func (rec *customerRecord) state(now time.Time) (provisioning.Customer, bool) {
	if st := rec.due(now); st != nil {
		if st.gone {
			return provisioning.Customer{}, false
		}
		return st.next, true
	}
	return rec.cust, true
}

// view returns the customer as the API shows it at now: with its orgId only
// in the statuses that show one, and with the license ids of its packages
// only when asked (GET's includePackageLicenseInfo).
func (rec *customerRecord) view(now time.Time, licenses bool) (provisioning.Customer, bool) {
	c, ok := rec.state(now)
	if !ok {
		return c, false
	}
	if showsOrgID(c.Status) {
		c.OrgID = rec.orgID
	}
	if !licenses {
		c.ResourceDetails = withoutLicenses(c.ResourceDetails)
	}
	return c, true
}

// fold writes a settlement that is due at now into cust; the store's write
// lock must be held, and purge must have removed the customers gone by now.
func (rec *customerRecord) fold(now time.Time) {
	if st := rec.due(now); st != nil && !st.gone {
		rec.cust = st.next
		rec.settle = nil
	}
}

// customerFilter selects customers in a list call; empty fields match all.
type customerFilter struct {
	externalID string
	orgID      string
	statuses   []string // any of them
}

func (f *customerFilter) match(c *provisioning.Customer) bool {
	if (f.externalID != "" && c.ExternalID != f.externalID) || (f.orgID != "" && c.OrgID != f.orgID) {
		return false
	}
	if len(f.statuses) == 0 {
		return true
	}
	for _, st := range f.statuses {
		if c.Status == st {
			return true
		}
	}
	return false
}

// customerOf is what a subscriber call needs to know of the customer it names.
type customerOf struct {
	known      bool // a customer of this simulator, stored or deleted
	deleted    bool
	status     string
	externalID string
}

// changeOutcome is what an update or delete of a customer did.
type changeOutcome int

const (
	changeDone changeOutcome = iota
	changeNotFound
	changeBusy            // provisioning, updating or deleting
	changeExternalIDTaken // the update's externalId is another customer's
	changeHasSubscribers  // a delete while subscribers remain
)

// customerChange is what an accepted update changes.
type customerChange struct {
	packages   []string
	externalID string                // "" keeps the current one
	address    *provisioning.Address // nil keeps the current one
}

// customerStore holds the customers. Its lock is held only for map and slice
// work, never during a sleep or while writing to a client. Where a call needs
// both this store's lock and the subscriber store's, it takes this one
// first: a subscriber create holds the read lock on its customer while it
// inserts, and a customer's update and delete hold the write lock while they
// read or change its subscribers, so that neither sees the other half done.
type customerStore struct {
	mu           sync.RWMutex
	seq          uint64
	byID         map[string]*customerRecord
	byExternalID map[string]*customerRecord
	ordered      []*customerRecord // by seq, which is creation order
	// removed maps the ids of deleted customers to their externalId, so that
	// calls that name a deleted customer are still counted per externalId.
	removed map[string]string
	// deleting counts the records whose settlement deletes them, so that
	// writes look for customers gone only when there can be some.
	deleting int
}

func newCustomerStore() *customerStore {
	s := &customerStore{}
	s.reset()
	return s
}

func (s *customerStore) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID = make(map[string]*customerRecord)
	s.byExternalID = make(map[string]*customerRecord)
	s.ordered = nil
	s.removed = make(map[string]string)
	s.deleting = 0
}

// purge drops the customers whose delete has finished at now; the write lock
// must be held. Reads skip such customers without it.
func (s *customerStore) purge(now time.Time) {
	if s.deleting == 0 {
		return
	}
	kept := s.ordered[:0]
	for _, rec := range s.ordered {
		if !rec.gone(now) {
			kept = append(kept, rec)
			continue
		}
		delete(s.byID, rec.cust.ID)
		if s.byExternalID[rec.cust.ExternalID] == rec {
			delete(s.byExternalID, rec.cust.ExternalID)
		}
		s.removed[rec.cust.ID] = rec.cust.ExternalID
		s.deleting--
	}
	clear(s.ordered[len(kept):]) // no stale pointers past the end
	s.ordered = kept
}

// insert stores rec unless a customer with the same externalId exists, even
// one still deleting. Checking and inserting under one lock is what makes a
// create happen at most once per externalId however many calls race.
func (s *customerStore) insert(rec *customerRecord, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(now)
	if _, ok := s.byExternalID[rec.cust.ExternalID]; ok {
		return false
	}
	s.seq++
	rec.seq = s.seq
	s.byID[rec.cust.ID] = rec
	s.byExternalID[rec.cust.ExternalID] = rec
	s.ordered = append(s.ordered, rec)
	return true
}

// hasExternalID reports whether a customer at now has this externalId.
func (s *customerStore) hasExternalID(ext string, now time.Time) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rec, ok := s.byExternalID[ext]
	return ok && !rec.gone(now)
}

// externalIDOf returns the externalId of the customer id names, stored or
// deleted, for the per-externalId counters.
func (s *customerStore) externalIDOf(id string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if rec, ok := s.byID[id]; ok {
		return rec.cust.ExternalID, true
	}
	ext, ok := s.removed[id]
	return ext, ok
}

func (s *customerStore) get(id string, now time.Time, licenses bool) (provisioning.Customer, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rec, ok := s.byID[id]
	if !ok {
		return provisioning.Customer{}, false
	}
	return rec.view(now, licenses)
}

// list returns up to max matching customers, in creation order, after
// skipping offset of them, and whether more match.
func (s *customerStore) list(f *customerFilter, offset, max int, now time.Time) (items []provisioning.Customer, more bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	items = make([]provisioning.Customer, 0, min(max, 16))
	candidates := s.ordered
	if f.externalID != "" {
		rec, ok := s.byExternalID[f.externalID]
		if !ok {
			return items, false
		}
		candidates = []*customerRecord{rec}
	}
	for _, rec := range candidates {
		c, ok := rec.view(now, false)
		if !ok || !f.match(&c) {
			continue
		}
		if offset > 0 {
			offset--
			continue
		}
		if len(items) == max {
			return items, true
		}
		items = append(items, c)
	}
	return items, false
}

// lookup returns what a subscriber call needs of the customer id names.
func (s *customerStore) lookup(id string, now time.Time) customerOf {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lookupLocked(id, now)
}

func (s *customerStore) lookupLocked(id string, now time.Time) customerOf {
	if rec, ok := s.byID[id]; ok {
		c, ok := rec.state(now)
		if !ok {
			return customerOf{known: true, deleted: true, externalID: rec.cust.ExternalID}
		}
		return customerOf{known: true, status: c.Status, externalID: c.ExternalID}
	}
	if ext, ok := s.removed[id]; ok {
		return customerOf{known: true, deleted: true, externalID: ext}
	}
	return customerOf{}
}

// hold is lookup that, when id names a stored customer, keeps the read lock
// until release is called, so that the customer cannot be deleted, or change
// its externalId, before the subscriber call that checked it is done.
func (s *customerStore) hold(id string, now time.Time) (c customerOf, release func()) {
	s.mu.RLock()
	c = s.lookupLocked(id, now)
	if !c.known || c.deleted {
		s.mu.RUnlock()
		return c, func() {}
	}
	return c, s.mu.RUnlock
}

// busy reports whether a change of a customer in status is in progress, so
// that another is refused.
func busy(status string) bool {
	switch status {
	case provisioning.CustomerProvisioning, provisioning.CustomerUpdating, provisioning.CustomerDeleting:
		return true
	}
	return false
}

// update applies an accepted PUT: the customer is "updating" from now and,
// delay later, provisioned with ch.packages. A new externalId or address is
// in effect at once; renamed is called, under the write lock, with the new
// externalId, to pass it on to the customer's subscribers. It returns the
// customer's status when the update is refused because it is busy.
func (s *customerStore) update(id string, ch customerChange, delay time.Duration, now time.Time,
	renamed func(customerID, externalID string)) (string, changeOutcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(now)
	rec, ok := s.byID[id]
	if !ok {
		return "", changeNotFound
	}
	rec.fold(now)
	if busy(rec.cust.Status) {
		return rec.cust.Status, changeBusy
	}
	if ext := ch.externalID; ext != "" && ext != rec.cust.ExternalID {
		if _, taken := s.byExternalID[ext]; taken {
			return rec.cust.Status, changeExternalIDTaken
		}
		delete(s.byExternalID, rec.cust.ExternalID)
		s.byExternalID[ext] = rec
		rec.cust.ExternalID = ext
		renamed(id, ext)
	}
	if ch.address != nil {
		a := *ch.address
		rec.cust.Address = &a
	}
	rec.pkgs = ch.packages
	rec.cust = updatingState(rec.cust, ch.packages)
	rec.settle = &customerSettlement{at: now.Add(delay),
		next: customerOutcome(rec.cust, provisioning.CustomerProvisioned, ch.packages)}
	return provisioning.CustomerUpdating, changeDone
}

// remove applies a DELETE: the customer is "deleting" from now and gone
// delay later. subscribers returns the number of subscribers of a customer;
// a customer that has some is not deleted. It returns the customer's status
// and, for changeHasSubscribers, how many remain.
func (s *customerStore) remove(id string, subscribers func(customerID string) int, delay time.Duration,
	now time.Time) (status string, n int, outcome changeOutcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(now)
	rec, ok := s.byID[id]
	if !ok {
		return "", 0, changeNotFound
	}
	rec.fold(now)
	if n := subscribers(id); n > 0 {
		return rec.cust.Status, n, changeHasSubscribers
	}
	if busy(rec.cust.Status) {
		return rec.cust.Status, 0, changeBusy
	}
	rec.cust = deletingState(rec.cust)
	rec.settle = &customerSettlement{at: now.Add(delay), gone: true}
	s.deleting++
	return provisioning.CustomerDeleting, 0, changeDone
}

// resolve ends the provisioning or the compliance review of the customer
// with this externalId now, in status. It reports false, and changes
// nothing, for a customer in another status or none.
func (s *customerStore) resolve(ext, status string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(now)
	rec, ok := s.byExternalID[ext]
	if !ok {
		return false
	}
	rec.fold(now)
	switch rec.cust.Status {
	case provisioning.CustomerProvisioning, provisioning.CustomerPendingRPLReview:
	default:
		return false
	}
	rec.cust = customerOutcome(rec.cust, status, rec.pkgs)
	rec.settle = nil
	return true
}

// all returns every customer as it is at now, license ids included, in
// creation order.
func (s *customerStore) all(now time.Time) []provisioning.Customer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]provisioning.Customer, 0, len(s.ordered))
	for _, rec := range s.ordered {
		if c, ok := rec.view(now, true); ok {
			out = append(out, c)
		}
	}
	return out
}

// len returns the number of customers at now, those deleting included.
func (s *customerStore) len(now time.Time) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, rec := range s.ordered {
		if !rec.gone(now) {
			n++
		}
	}
	return n
}

package webexsim

import (
	"strings"
	"sync"
	"sync/atomic"
)

// Endpoint names used as keys of Stats.Calls.
const (
	EndpointPrecheck = "precheck" // POST /wholesale/subscribers/validate
	EndpointList     = "list"     // GET /wholesale/subscribers
	EndpointCreate   = "create"   // POST /wholesale/subscribers
	EndpointGet      = "get"      // GET /wholesale/subscribers/{id}
	EndpointUpdate   = "update"   // PUT /wholesale/subscribers/{id}
	EndpointDelete   = "delete"   // DELETE /wholesale/subscribers/{id}
	// EndpointConsentMove is POST /subscribers/{id}/emails/consentMove, below
	// the base path but outside /wholesale.
	EndpointConsentMove = "consentMove"

	EndpointCustomerPrecheck = "customerPrecheck" // POST /wholesale/customers/validate
	EndpointCustomerList     = "customerList"     // GET /wholesale/customers
	EndpointCustomerCreate   = "customerCreate"   // POST /wholesale/customers
	EndpointCustomerGet      = "customerGet"      // GET /wholesale/customers/{id}
	EndpointCustomerUpdate   = "customerUpdate"   // PUT /wholesale/customers/{id}
	EndpointCustomerDelete   = "customerDelete"   // DELETE /wholesale/customers/{id}

	EndpointOther = "other" // unknown paths and wrong methods
)

// endpoint indexes the call counters.
type endpoint int

const (
	epPrecheck endpoint = iota
	epList
	epCreate
	epGet
	epUpdate
	epDelete
	epConsentMove
	epCustomerPrecheck
	epCustomerList
	epCustomerCreate
	epCustomerGet
	epCustomerUpdate
	epCustomerDelete
	epOther
	numEndpoints
)

var endpointNames = [numEndpoints]string{
	epPrecheck:    EndpointPrecheck,
	epList:        EndpointList,
	epCreate:      EndpointCreate,
	epGet:         EndpointGet,
	epUpdate:      EndpointUpdate,
	epDelete:      EndpointDelete,
	epConsentMove: EndpointConsentMove,

	epCustomerPrecheck: EndpointCustomerPrecheck,
	epCustomerList:     EndpointCustomerList,
	epCustomerCreate:   EndpointCustomerCreate,
	epCustomerGet:      EndpointCustomerGet,
	epCustomerUpdate:   EndpointCustomerUpdate,
	epCustomerDelete:   EndpointCustomerDelete,

	epOther: EndpointOther,
}

// statusSlots covers the HTTP status codes; slot 0 counts calls that got no
// answer (a reset connection).
const statusSlots = 600

// Stats is a snapshot of the simulator's counters since New or the last Reset.
type Stats struct {
	// Calls counts API calls by endpoint name (the Endpoint constants) and HTTP
	// status; status 0 counts calls answered by closing the connection.
	Calls map[string]map[int]int64 `json:"calls"`
	// Requests is the number of API calls, the sum of Calls.
	Requests int64 `json:"requests"`
	// CreateCalls is the number of POST /wholesale/subscribers calls whose body
	// named an email, whatever their answer.
	CreateCalls int64 `json:"createCalls"`
	// Creates is the number of subscribers actually created.
	Creates int64 `json:"creates"`
	// MaxCreatesPerEmail is the largest number of subscribers created for one
	// email; above 1 only when a subscriber was deleted and created again.
	MaxCreatesPerEmail int `json:"maxCreatesPerEmail"`
	// EmailsCreatedMoreThanOnce is the number of emails created more than once.
	EmailsCreatedMoreThanOnce int `json:"emailsCreatedMoreThanOnce"`
	// TooManyRequests is the number of 429 answers, injected or from the rate limit.
	TooManyRequests int64 `json:"tooManyRequests"`
	// RateLimited is the number of 429 answers from the rate limit.
	RateLimited int64 `json:"rateLimited"`
	// InjectedFaults is the number of calls that got an injected fault, lost
	// responses included.
	InjectedFaults int64 `json:"injectedFaults"`
	// UpdateCalls is the number of PUT /wholesale/subscribers/{id} calls that
	// named a subscriber, stored or removed, whatever their answer.
	UpdateCalls int64 `json:"updateCalls"`
	// Updates is the number of updates that took effect.
	Updates int64 `json:"updates"`
	// RemoveCalls is the number of DELETE /wholesale/subscribers/{id} calls that
	// named a subscriber, stored or already removed, whatever their answer.
	RemoveCalls int64 `json:"removeCalls"`
	// Removes is the number of subscribers removed.
	Removes int64 `json:"removes"`
	// ConsentMoveCalls is the number of consent move calls that named a
	// subscriber, stored or removed, whatever their answer.
	ConsentMoveCalls int64 `json:"consentMoveCalls"`
	// ConsentMoves is the number of consent move emails sent (answers 204).
	ConsentMoves int64 `json:"consentMoves"`
	// LostResponses is the number of answers replaced by 504 or a reset: of
	// creates, and with FaultRates.LostResponseAll of updates and removes.
	LostResponses int64 `json:"lostResponses"`
	// PermanentErrors is the number of creates refused by the Permanent fault
	// (also counted in InjectedFaults).
	PermanentErrors int64 `json:"permanentErrors"`
	// Subscribers is the number of stored subscribers.
	Subscribers int `json:"subscribers"`

	// CustomerCreateCalls is the number of POST /wholesale/customers calls
	// whose body named an externalId, whatever their answer.
	CustomerCreateCalls int64 `json:"customerCreateCalls"`
	// CustomerCreates is the number of customers actually created.
	CustomerCreates int64 `json:"customerCreates"`
	// CustomerUpdateCalls is the number of PUT /wholesale/customers/{id} calls
	// that named a customer, stored or deleted, whatever their answer.
	CustomerUpdateCalls int64 `json:"customerUpdateCalls"`
	// CustomerUpdates is the number of customer updates accepted (202).
	CustomerUpdates int64 `json:"customerUpdates"`
	// CustomerRemoveCalls is the number of DELETE /wholesale/customers/{id}
	// calls that named a customer, stored or deleted, whatever their answer.
	CustomerRemoveCalls int64 `json:"customerRemoveCalls"`
	// CustomerRemoves is the number of customer deletes accepted (202).
	CustomerRemoves int64 `json:"customerRemoves"`
	// Customers is the number of stored customers, those still deleting
	// included.
	Customers int `json:"customers"`
}

// Count returns the number of calls of an endpoint answered with status.
func (st Stats) Count(endpoint string, status int) int64 {
	return st.Calls[endpoint][status]
}

// emailCounts counts the calls about one email.
type emailCounts struct {
	calls            int // create calls
	creates          int
	updateCalls      int
	updates          int
	removeCalls      int
	removes          int
	consentMoveCalls int
	consentMoves     int
}

// customerCounts counts the calls about one customer externalId.
type customerCounts struct {
	createCalls int
	creates     int
	updateCalls int
	updates     int
	removeCalls int
	removes     int
}

// counters are the live counters behind Stats. Call counts are atomics, so that
// recording a call takes no lock; the per-email counts take a short lock.
type counters struct {
	calls           [numEndpoints][statusSlots]atomic.Int64
	rateLimited     atomic.Int64
	injectedFaults  atomic.Int64
	lostResponses   atomic.Int64
	permanentErrors atomic.Int64

	mu          sync.Mutex
	emails      map[string]*emailCounts
	createCalls int64
	creates     int64
	maxCreates  int
	dupEmails   int
	// Totals of the per-email counts of updates, removes and consent moves.
	updateCalls, updates, removeCalls, removes, consentMoveCalls, consentMoves int64

	// customers counts by externalId; custTotals are the totals.
	customers  map[string]*customerCounts
	custTotals customerTotals
}

// customerTotals are the totals of the per-externalId customer counts.
type customerTotals struct {
	createCalls, creates, updateCalls, updates, removeCalls, removes int64
}

func (c *counters) record(ep endpoint, status int) {
	if status < 0 || status >= statusSlots {
		status = 0
	}
	c.calls[ep][status].Add(1)
}

func (c *counters) emailLocked(key string) *emailCounts {
	if c.emails == nil {
		c.emails = make(map[string]*emailCounts)
	}
	ec := c.emails[key]
	if ec == nil {
		ec = &emailCounts{}
		c.emails[key] = ec
	}
	return ec
}

func (c *counters) createCall(key string) {
	c.mu.Lock()
	c.emailLocked(key).calls++
	c.createCalls++
	c.mu.Unlock()
}

func (c *counters) created(key string) {
	c.mu.Lock()
	ec := c.emailLocked(key)
	ec.creates++
	c.creates++
	if ec.creates == 2 {
		c.dupEmails++
	}
	c.maxCreates = max(c.maxCreates, ec.creates)
	c.mu.Unlock()
}

// count applies f to the counts of the email key and the totals, under the lock.
func (c *counters) count(key string, f func(ec *emailCounts, c *counters)) {
	c.mu.Lock()
	f(c.emailLocked(key), c)
	c.mu.Unlock()
}

func (c *counters) updateCall(key string) {
	c.count(key, func(ec *emailCounts, c *counters) { ec.updateCalls++; c.updateCalls++ })
}

func (c *counters) updated(key string) {
	c.count(key, func(ec *emailCounts, c *counters) { ec.updates++; c.updates++ })
}

func (c *counters) removeCall(key string) {
	c.count(key, func(ec *emailCounts, c *counters) { ec.removeCalls++; c.removeCalls++ })
}

func (c *counters) removed(key string) {
	c.count(key, func(ec *emailCounts, c *counters) { ec.removes++; c.removes++ })
}

func (c *counters) consentMoveCall(key string) {
	c.count(key, func(ec *emailCounts, c *counters) { ec.consentMoveCalls++; c.consentMoveCalls++ })
}

func (c *counters) consentMoved(key string) {
	c.count(key, func(ec *emailCounts, c *counters) { ec.consentMoves++; c.consentMoves++ })
}

// countCustomer applies f to the counts of the customer externalId and the
// totals, under the lock.
func (c *counters) countCustomer(externalID string, f func(cc *customerCounts, t *customerTotals)) {
	c.mu.Lock()
	if c.customers == nil {
		c.customers = make(map[string]*customerCounts)
	}
	cc := c.customers[externalID]
	if cc == nil {
		cc = &customerCounts{}
		c.customers[externalID] = cc
	}
	f(cc, &c.custTotals)
	c.mu.Unlock()
}

func (c *counters) customerCreateCall(ext string) {
	c.countCustomer(ext, func(cc *customerCounts, t *customerTotals) { cc.createCalls++; t.createCalls++ })
}

func (c *counters) customerCreated(ext string) {
	c.countCustomer(ext, func(cc *customerCounts, t *customerTotals) { cc.creates++; t.creates++ })
}

func (c *counters) customerUpdateCall(ext string) {
	c.countCustomer(ext, func(cc *customerCounts, t *customerTotals) { cc.updateCalls++; t.updateCalls++ })
}

func (c *counters) customerUpdated(ext string) {
	c.countCustomer(ext, func(cc *customerCounts, t *customerTotals) { cc.updates++; t.updates++ })
}

func (c *counters) customerRemoveCall(ext string) {
	c.countCustomer(ext, func(cc *customerCounts, t *customerTotals) { cc.removeCalls++; t.removeCalls++ })
}

func (c *counters) customerRemoved(ext string) {
	c.countCustomer(ext, func(cc *customerCounts, t *customerTotals) { cc.removes++; t.removes++ })
}

// forCustomer returns the counts of a customer externalId (compared exactly,
// as Webex treats it: an opaque string of the partner's).
func (c *counters) forCustomer(externalID string) customerCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.customers[externalID]; cc != nil {
		return *cc
	}
	return customerCounts{}
}

func (c *counters) forEmail(email string) emailCounts {
	key := strings.ToLower(strings.TrimSpace(email))
	c.mu.Lock()
	defer c.mu.Unlock()
	if ec := c.emails[key]; ec != nil {
		return *ec
	}
	return emailCounts{}
}

func (c *counters) maxCreatesPerEmail() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxCreates
}

// reset zeroes the counters. Calls that run meanwhile may be counted before or
// after the reset; tests reset between scenarios, not during them.
func (c *counters) reset() {
	for ep := range c.calls {
		for i := range c.calls[ep] {
			c.calls[ep][i].Store(0)
		}
	}
	c.rateLimited.Store(0)
	c.injectedFaults.Store(0)
	c.lostResponses.Store(0)
	c.permanentErrors.Store(0)
	c.mu.Lock()
	c.emails = nil
	c.createCalls, c.creates, c.maxCreates, c.dupEmails = 0, 0, 0, 0
	c.updateCalls, c.updates, c.removeCalls, c.removes, c.consentMoveCalls, c.consentMoves = 0, 0, 0, 0, 0, 0
	c.customers, c.custTotals = nil, customerTotals{}
	c.mu.Unlock()
}

func (c *counters) snapshot() Stats {
	st := Stats{Calls: make(map[string]map[int]int64)}
	for ep := range c.calls {
		for status := range c.calls[ep] {
			n := c.calls[ep][status].Load()
			if n == 0 {
				continue
			}
			name := endpointNames[ep]
			if st.Calls[name] == nil {
				st.Calls[name] = make(map[int]int64)
			}
			st.Calls[name][status] = n
			st.Requests += n
			if status == 429 {
				st.TooManyRequests += n
			}
		}
	}
	st.RateLimited = c.rateLimited.Load()
	st.InjectedFaults = c.injectedFaults.Load()
	st.LostResponses = c.lostResponses.Load()
	st.PermanentErrors = c.permanentErrors.Load()
	c.mu.Lock()
	st.CreateCalls = c.createCalls
	st.Creates = c.creates
	st.MaxCreatesPerEmail = c.maxCreates
	st.EmailsCreatedMoreThanOnce = c.dupEmails
	st.UpdateCalls, st.Updates = c.updateCalls, c.updates
	st.RemoveCalls, st.Removes = c.removeCalls, c.removes
	st.ConsentMoveCalls, st.ConsentMoves = c.consentMoveCalls, c.consentMoves
	ct := c.custTotals
	st.CustomerCreateCalls, st.CustomerCreates = ct.createCalls, ct.creates
	st.CustomerUpdateCalls, st.CustomerUpdates = ct.updateCalls, ct.updates
	st.CustomerRemoveCalls, st.CustomerRemoves = ct.removeCalls, ct.removes
	c.mu.Unlock()
	return st
}

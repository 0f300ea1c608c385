package webexsim

import (
	"bytes"
	"context"
	"crypto/subtle"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/encoding/json"
	"golang.org/x/time/rate"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

// Server is the simulator. It implements http.Handler: the API is served under
// Config.BasePath and the admin endpoints, which take no token, under /_sim/.
// A Server is safe for concurrent use; its setters may be called while it serves.
type Server struct {
	cfg  Config // with defaults; read-only after New
	base string

	token   atomic.Pointer[string]
	oauth   atomic.Pointer[oauthState]
	faults  atomic.Pointer[FaultRates] // nil when no fault is enabled: the fast path
	denied  atomic.Bool                // the partner lacks the precheck's entitlement
	latency atomic.Int64               // nanoseconds
	limiter *rate.Limiter              // nil when unlimited

	rejectEmails map[string]struct{} // lower-cased; read-only after New
	rejectDomain string
	pendingDom   string
	acceptDom    string
	declineDom   string
	errorDom     string
	// The customer domains, lower-cased.
	custErrorDom, custPartialDom, custReviewDom string

	rngMu sync.Mutex
	rng   *rand.Rand

	trackingPrefix string
	trackingSeq    atomic.Uint64

	store     *store
	customers *customerStore
	stats     counters
}

// New returns a simulator configured by cfg, with the defaults documented on
// Config. It panics if cfg.Validate reports an error: call Validate first to
// get the error instead.
func New(cfg Config) *Server {
	if err := cfg.Validate(); err != nil {
		panic("webexsim: invalid config: " + err.Error())
	}
	cfg.setDefaults()
	seed := uint64(cfg.Seed)
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	s := &Server{
		cfg:          cfg,
		base:         strings.TrimSuffix(cfg.BasePath, "/"),
		rejectEmails: make(map[string]struct{}, len(cfg.PrecheckRejectEmails)),
		rejectDomain: strings.ToLower(strings.TrimSpace(cfg.PrecheckRejectDomain)),
		pendingDom:   strings.ToLower(strings.TrimSpace(cfg.PendingMigrationDomain)),
		acceptDom:    strings.ToLower(strings.TrimSpace(cfg.AcceptDomain)),
		declineDom:   strings.ToLower(strings.TrimSpace(cfg.DeclineDomain)),
		errorDom:     strings.ToLower(strings.TrimSpace(cfg.ErrorDomain)),
		rng:          rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		store:        newStore(),
		customers:    newCustomerStore(),

		custErrorDom:   strings.ToLower(strings.TrimSpace(cfg.CustomerErrorDomain)),
		custPartialDom: strings.ToLower(strings.TrimSpace(cfg.CustomerPartialDomain)),
		custReviewDom:  strings.ToLower(strings.TrimSpace(cfg.CustomerReviewDomain)),
	}
	for _, e := range cfg.PrecheckRejectEmails {
		s.rejectEmails[strings.ToLower(strings.TrimSpace(e))] = struct{}{}
	}
	s.trackingPrefix = "WEBEXSIM_" + strconv.FormatUint(s.rng.Uint64()&0xffffffff, 16) + "_"
	s.SetToken(cfg.Token)
	s.SetEntitled(!cfg.NotEntitled)
	s.SetFaults(cfg.Faults)
	s.SetLatency(cfg.Latency)
	if cfg.RateLimit > 0 {
		burst := max(1, int(cfg.RateLimit/10))
		s.limiter = rate.NewLimiter(rate.Limit(cfg.RateLimit), burst)
	}
	return s
}

// SetToken sets the accepted bearer token; "" accepts any non-empty token.
// Calls already past authentication are not affected.
func (s *Server) SetToken(tok string) {
	s.token.Store(&tok)
}

// SetEntitled grants or withdraws the partner's wxc-wholesale entitlement:
// without it every precheck, of a subscriber or of a customer, is answered 403.
func (s *Server) SetEntitled(ok bool) { s.denied.Store(!ok) }

// SetFaults replaces the fault rates. It panics if f.Validate reports an error.
func (s *Server) SetFaults(f FaultRates) {
	if err := f.Validate(); err != nil {
		panic("webexsim: invalid fault rates: " + err.Error())
	}
	if f.zero() {
		s.faults.Store(nil)
		return
	}
	s.faults.Store(&f)
}

// Faults returns the current fault rates.
func (s *Server) Faults() FaultRates {
	if f := s.faults.Load(); f != nil {
		return *f
	}
	return FaultRates{}
}

// SetLatency replaces the latency added to every API call; a negative d is 0.
func (s *Server) SetLatency(d time.Duration) {
	s.latency.Store(int64(max(d, 0)))
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	st := s.stats.snapshot()
	st.Subscribers = s.store.len()
	st.Customers = s.customers.len(time.Now())
	return st
}

// CreateCalls returns the number of POST /wholesale/subscribers calls that
// reached the endpoint with this email (compared case-insensitively),
// whatever their answer, lost responses included.
func (s *Server) CreateCalls(email string) int {
	return s.stats.forEmail(email).calls
}

// SuccessfulCreates returns the number of subscribers created for this email
// (compared case-insensitively).
func (s *Server) SuccessfulCreates(email string) int {
	return s.stats.forEmail(email).creates
}

// MaxSuccessfulCreates returns the largest SuccessfulCreates over all emails.
func (s *Server) MaxSuccessfulCreates() int {
	return s.stats.maxCreatesPerEmail()
}

// UpdateCalls returns the number of PUT /wholesale/subscribers/{id} calls that
// reached the endpoint naming a subscriber of this email (compared
// case-insensitively), stored or removed, whatever their answer, lost
// responses included.
func (s *Server) UpdateCalls(email string) int {
	return s.stats.forEmail(email).updateCalls
}

// SuccessfulUpdates returns the number of updates that took effect (answered
// 200, or lost after taking effect) on subscribers of this email.
func (s *Server) SuccessfulUpdates(email string) int {
	return s.stats.forEmail(email).updates
}

// RemoveCalls returns the number of DELETE /wholesale/subscribers/{id} calls
// that reached the endpoint naming a subscriber of this email, stored or
// already removed (a repeated DELETE, answered 404), lost responses included.
func (s *Server) RemoveCalls(email string) int {
	return s.stats.forEmail(email).removeCalls
}

// SuccessfulRemoves returns the number of subscribers of this email removed;
// above 1 only when the email was provisioned again after a remove.
func (s *Server) SuccessfulRemoves(email string) int {
	return s.stats.forEmail(email).removes
}

// ConsentMoveCalls returns the number of POST
// /subscribers/{id}/emails/consentMove calls that reached the endpoint naming
// a subscriber of this email, stored or removed, whatever their answer.
func (s *Server) ConsentMoveCalls(email string) int {
	return s.stats.forEmail(email).consentMoveCalls
}

// ConsentMoves returns the number of consent move emails sent (answers 204)
// to the subscriber of this email.
func (s *Server) ConsentMoves(email string) int {
	return s.stats.forEmail(email).consentMoves
}

// ResolvePending ends the wait of the subscriber of this email (compared
// case-insensitively) on its end user, now, as if the user had answered:
// status is provisioning.SubscriberProvisioned (the subscriber gets a
// personId) or provisioning.SubscriberError (errors[] holds
// MigrationErrorCode), and lastStatusChange is now. It reports false, and
// changes nothing, when there is no such subscriber or it is not in a
// pending_* status (already resolved, e.g. by AcceptDomain). It overrides a
// resolution that AcceptDomain or DeclineDomain planned for later. It panics
// for another status: a bug in the test that calls it.
func (s *Server) ResolvePending(email, status string) bool {
	errs, ok := resolution(status)
	if !ok {
		panic("webexsim: ResolvePending to status " + strconv.Quote(status) + ": want provisioned or error")
	}
	return s.store.resolve(strings.ToLower(strings.TrimSpace(email)), status, errs, time.Now())
}

// resolution returns the errors[] of a pending subscriber resolved to status,
// and false for a status a pending subscriber cannot be resolved to.
func resolution(status string) ([]provisioning.ErrorItem, bool) {
	switch status {
	case provisioning.SubscriberProvisioned:
		return nil, true
	case provisioning.SubscriberError:
		return migrationErrors, true
	}
	return nil, false
}

// Subscribers returns every stored subscriber as it is now, in creation order.
func (s *Server) Subscribers() []provisioning.Subscriber {
	return s.store.all(time.Now())
}

// Customers returns every stored customer as it is now, those still deleting
// included, in creation order, with the license ids of their packages.
func (s *Server) Customers() []provisioning.Customer {
	return s.customers.all(time.Now())
}

// ResolveCustomer ends, now, the provisioning or the Denied Party List
// review (status pending_rpl_review) of the customer with this externalId
// (compared exactly): status is provisioning.CustomerProvisioned,
// provisioning.CustomerProvisionedWithErrors (its first package failed with
// CustomerPackageErrorCode) or provisioning.CustomerError (errors[] holds
// CustomerProvisioningErrorCode). It overrides the outcome the customer's
// domain planned for later. It reports false, and changes nothing, when there
// is no such customer or it is in another status (already provisioned,
// updating, deleting, in error). It panics for another status: a bug in the
// test that calls it.
func (s *Server) ResolveCustomer(externalID, status string) bool {
	if !customerResolution(status) {
		panic("webexsim: ResolveCustomer to status " + strconv.Quote(status) +
			": want provisioned, provisioned_with_errors or error")
	}
	return s.customers.resolve(externalID, status, time.Now())
}

// customerResolution reports whether a customer can be resolved to status.
func customerResolution(status string) bool {
	switch status {
	case provisioning.CustomerProvisioned, provisioning.CustomerProvisionedWithErrors, provisioning.CustomerError:
		return true
	}
	return false
}

// CustomerCreateCalls returns the number of POST /wholesale/customers calls
// that reached the endpoint with this externalId (compared exactly), whatever
// their answer, lost responses included.
func (s *Server) CustomerCreateCalls(externalID string) int {
	return s.stats.forCustomer(externalID).createCalls
}

// SuccessfulCustomerCreates returns the number of customers created with this
// externalId; above 1 only when one was deleted and created again.
func (s *Server) SuccessfulCustomerCreates(externalID string) int {
	return s.stats.forCustomer(externalID).creates
}

// CustomerUpdateCalls returns the number of PUT /wholesale/customers/{id}
// calls that reached the endpoint naming a customer, stored or deleted, that
// had this externalId when the call arrived, whatever their answer, lost
// responses included.
func (s *Server) CustomerUpdateCalls(externalID string) int {
	return s.stats.forCustomer(externalID).updateCalls
}

// SuccessfulCustomerUpdates returns the number of updates accepted (202, or
// lost after being accepted) of customers of this externalId.
func (s *Server) SuccessfulCustomerUpdates(externalID string) int {
	return s.stats.forCustomer(externalID).updates
}

// CustomerRemoveCalls returns the number of DELETE /wholesale/customers/{id}
// calls that reached the endpoint naming a customer of this externalId,
// stored or already deleted (answered 404), lost responses included.
func (s *Server) CustomerRemoveCalls(externalID string) int {
	return s.stats.forCustomer(externalID).removeCalls
}

// SuccessfulCustomerRemoves returns the number of deletes accepted (202, or
// lost after being accepted) of customers of this externalId.
func (s *Server) SuccessfulCustomerRemoves(externalID string) int {
	return s.stats.forCustomer(externalID).removes
}

// Reset removes every subscriber and customer and zeroes the counters. The
// token, faults, latency and rate limit are kept.
func (s *Server) Reset() {
	s.store.reset()
	s.customers.reset()
	s.stats.reset()
}

// BaseURL returns the API's base URL for a simulator reached at hostURL, e.g.
// BaseURL("http://127.0.0.1:8080") is "http://127.0.0.1:8080/v1".
func (s *Server) BaseURL(hostURL string) string {
	return strings.TrimSuffix(hostURL, "/") + s.base
}

// ServeHTTP serves the API under the base path and the admin endpoints under
// /_sim/. An API call goes through, in order: latency, authentication (401),
// the rate limit (429), injected faults, then the endpoint (405 for a wrong
// method), with LostResponse applied last (to creates of subscribers and
// customers, and with LostResponseAll to their updates and removes too). Unknown paths are answered 404
// without authentication. A call whose client gives up during the latency is
// answered 504, which nobody reads, and counted so.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if strings.HasPrefix(path, adminPrefix) {
		s.serveAdmin(w, r)
		return
	}
	if path == s.base+provisioning.PathAccessToken {
		s.serveToken(w, r)
		return
	}
	ep, id, known := s.route(r.Method, path)
	if !known {
		s.finish(w, r, epOther, errReply(http.StatusNotFound, "The requested resource could not be found."))
		return
	}
	if !s.delay(r.Context()) {
		// The client gave up: nobody will read this answer, but a handler that
		// wrote nothing would be answered 200 by net/http.
		s.finish(w, r, ep, errReply(http.StatusGatewayTimeout, "The request timed out."))
		return
	}
	if !s.authorized(r) {
		s.finish(w, r, ep, errReply(http.StatusUnauthorized,
			"The request requires a valid access token set in the Authorization request header."))
		return
	}
	if s.limiter != nil && !s.limiter.Allow() {
		s.stats.rateLimited.Add(1)
		rep := errReply(http.StatusTooManyRequests, "Too many requests have been sent in a given amount of time.")
		rep.retryAfter = "1"
		s.finish(w, r, ep, rep)
		return
	}
	f := s.faults.Load()
	if f != nil && s.injectFault(w, r, ep, f) {
		return
	}

	var rep reply
	switch ep {
	case epPrecheck:
		rep = s.precheck(r)
	case epList:
		rep = s.list(r)
	case epCreate:
		rep = s.create(r)
	case epGet:
		rep = s.get(id)
	case epUpdate:
		rep = s.update(r, id)
	case epDelete:
		rep = s.remove(id)
	case epConsentMove:
		rep = s.consentMove(id)
	case epCustomerPrecheck:
		rep = s.precheckCustomer(r)
	case epCustomerList:
		rep = s.listCustomers(r)
	case epCustomerCreate:
		rep = s.createCustomer(r)
	case epCustomerGet:
		rep = s.getCustomer(r, id)
	case epCustomerUpdate:
		rep = s.updateCustomer(r, id)
	case epCustomerDelete:
		rep = s.removeCustomer(id)
	default:
		rep = errReply(http.StatusMethodNotAllowed, "The request was made to a resource using an HTTP request method that is not supported.")
		rep.allow = s.allowed(path)
	}

	if f != nil && f.LostResponse > 0 && f.losesAnswer(ep) && s.float64() < f.LostResponse {
		s.stats.injectedFaults.Add(1)
		s.stats.lostResponses.Add(1)
		if f.LostResponseAsReset {
			s.stats.record(ep, 0)
			abort(w)
			return
		}
		rep = errReply(http.StatusGatewayTimeout, "An upstream server failed to respond on time.")
	}
	s.finish(w, r, ep, rep)
}

// route maps a method and path to an endpoint and the subscriber or customer
// id it names.
// known is false for a path outside the API, and a wrong method on a known
// path gives epOther.
func (s *Server) route(method, path string) (ep endpoint, id string, known bool) {
	rest, ok := strings.CutPrefix(path, s.base)
	if !ok {
		return epOther, "", false
	}
	switch {
	case rest == provisioning.PathSubscribers:
		switch method {
		case http.MethodGet:
			return epList, "", true
		case http.MethodPost:
			return epCreate, "", true
		}
		return epOther, "", true
	case rest == provisioning.PathValidate:
		if method == http.MethodPost {
			return epPrecheck, "", true
		}
		return epOther, "", true
	case rest == provisioning.PathCustomers:
		switch method {
		case http.MethodGet:
			return epCustomerList, "", true
		case http.MethodPost:
			return epCustomerCreate, "", true
		}
		return epOther, "", true
	case rest == provisioning.PathCustomerValidate:
		if method == http.MethodPost {
			return epCustomerPrecheck, "", true
		}
		return epOther, "", true
	}
	if id, ok := itemID(rest, provisioning.PathCustomers); ok {
		switch method {
		case http.MethodGet:
			return epCustomerGet, id, true
		case http.MethodPut:
			return epCustomerUpdate, id, true
		case http.MethodDelete:
			return epCustomerDelete, id, true
		}
		return epOther, id, true
	}
	if id, ok := consentMoveID(rest); ok {
		if method == http.MethodPost {
			return epConsentMove, id, true
		}
		return epOther, id, true
	}
	id, ok = itemID(rest, provisioning.PathSubscribers)
	if !ok {
		return epOther, "", false
	}
	switch method {
	case http.MethodGet:
		return epGet, id, true
	case http.MethodPut:
		return epUpdate, id, true
	case http.MethodDelete:
		return epDelete, id, true
	}
	return epOther, id, true
}

// itemID returns the id of a path (below the base path) that names one item
// of collection, and false for another path.
func itemID(rest, collection string) (string, bool) {
	id, ok := strings.CutPrefix(rest, collection+"/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}

// consentMovePrefix and consentMoveSuffix surround the subscriber id in the
// path of the consent move call, which Cisco's description puts below
// /subscribers, not /wholesale/subscribers.
var consentMovePrefix, consentMoveSuffix, _ = strings.Cut(provisioning.PathConsentMove, "{id}")

// consentMoveID returns the subscriber id of a consent move path (below the
// base path), and false for another path.
func consentMoveID(rest string) (string, bool) {
	id, ok := strings.CutPrefix(rest, consentMovePrefix)
	if !ok {
		return "", false
	}
	id, ok = strings.CutSuffix(id, consentMoveSuffix)
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}

// allowed returns the Allow header of a known API path.
func (s *Server) allowed(path string) string {
	rest := strings.TrimPrefix(path, s.base)
	switch rest {
	case provisioning.PathSubscribers, provisioning.PathCustomers:
		return "GET, POST"
	case provisioning.PathValidate, provisioning.PathCustomerValidate:
		return "POST"
	}
	if _, ok := consentMoveID(rest); ok {
		return "POST"
	}
	return "GET, PUT, DELETE"
}

// delay sleeps for the latency and jitter. It returns false when the request's
// context ended first.
func (s *Server) delay(ctx context.Context) bool {
	d := time.Duration(s.latency.Load())
	if j := s.cfg.LatencyJitter; j > 0 {
		s.rngMu.Lock()
		d += time.Duration(s.rng.Int64N(int64(j) + 1))
		s.rngMu.Unlock()
	}
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// authorized checks the bearer token of r.
func (s *Server) authorized(r *http.Request) bool {
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	tok := strings.TrimSpace(h[len(prefix):])
	if tok == "" {
		return false
	}
	if st := s.oauth.Load(); st != nil {
		return st.validAccessToken(tok)
	}
	want := *s.token.Load()
	return want == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1
}

func (s *Server) float64() float64 {
	s.rngMu.Lock()
	x := s.rng.Float64()
	s.rngMu.Unlock()
	return x
}

// injectFault draws the fault of one call and, when there is one, answers the
// call and reports true.
func (s *Server) injectFault(w http.ResponseWriter, r *http.Request, ep endpoint, f *FaultRates) bool {
	x := s.float64()
	var rep reply
	c := 0.0
	switch {
	case x < add(&c, f.Status429):
		rep = errReply(http.StatusTooManyRequests, "Too many requests have been sent in a given amount of time.")
		rep.retryAfter = s.retryAfter()
	case x < add(&c, f.Status423):
		rep = errReply(http.StatusLocked, "The requested resource is temporarily unavailable.")
		rep.retryAfter = s.retryAfter()
	case x < add(&c, f.Status500):
		rep = errReply(http.StatusInternalServerError, "Something went wrong on the server.")
	case x < add(&c, f.Status502):
		rep = errReply(http.StatusBadGateway, "The server received an invalid response from an upstream server.")
	case x < add(&c, f.Status503):
		rep = errReply(http.StatusServiceUnavailable, "Service Unavailable: the server is overloaded with requests. Try again later.")
	case x < add(&c, f.Status504):
		rep = errReply(http.StatusGatewayTimeout, "An upstream server failed to respond on time.")
	case x < add(&c, f.Timeout):
		var shutdown <-chan struct{} // nil, which blocks, unless run by Serve
		if ctx, ok := r.Context().Value(shutdownKey{}).(context.Context); ok {
			shutdown = ctx.Done()
		}
		t := time.NewTimer(s.cfg.TimeoutHold)
		select {
		case <-t.C:
		case <-r.Context().Done():
		case <-shutdown:
		}
		t.Stop()
		rep = errReply(http.StatusGatewayTimeout, "An upstream server failed to respond on time.")
	case x < add(&c, f.Reset):
		s.stats.injectedFaults.Add(1)
		s.stats.record(ep, 0)
		abort(w)
		return true
	default:
		return false
	}
	s.stats.injectedFaults.Add(1)
	s.finish(w, r, ep, rep)
	return true
}

// add adds v to *c and returns the new sum: the cumulative bound of a fault.
func add(c *float64, v float64) float64 {
	*c += v
	return *c
}

// retryAfter is the Retry-After value of injected 429 and 423 answers, in whole
// seconds rounded up.
func (s *Server) retryAfter() string {
	secs := (s.cfg.RetryAfter + time.Second - 1) / time.Second
	return strconv.FormatInt(int64(secs), 10)
}

// abort closes the connection without an answer. When the connection cannot be
// hijacked (HTTP/2, or a ResponseRecorder), it panics with http.ErrAbortHandler,
// which net/http turns into a reset stream or a closed connection.
func abort(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	// Linger 0 makes the close send RST, as a dropped connection in the wild does.
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// reply is an answer computed by an endpoint, written by finish.
type reply struct {
	status     int
	body       any // nil for no body
	location   string
	link       string
	retryAfter string
	allow      string
}

// errReply returns an error answer whose body has one error item with msg as
// its description.
func errReply(status int, msg string, items ...provisioning.ErrorItem) reply {
	if len(items) == 0 {
		items = []provisioning.ErrorItem{{Description: msg}}
	}
	return reply{status: status, body: &provisioning.ErrorBody{Message: msg, Errors: items}}
}

// Header values shared by every answer; net/http only reads them.
var (
	jsonContentType = []string{"application/json"}
	retryAfterOne   = []string{"1"}
)

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// finish writes rep, with the tracking id of the call, and counts it.
func (s *Server) finish(w http.ResponseWriter, r *http.Request, ep endpoint, rep reply) {
	s.stats.record(ep, rep.status)
	h := w.Header()
	tid := r.Header.Get("TrackingID")
	if tid == "" {
		tid = s.newTrackingID()
	}
	h.Set("TrackingID", tid)
	if eb, ok := rep.body.(*provisioning.ErrorBody); ok {
		eb.TrackingID = tid
	}
	if rep.retryAfter == "1" {
		h["Retry-After"] = retryAfterOne
	} else if rep.retryAfter != "" {
		h.Set("Retry-After", rep.retryAfter)
	}
	if rep.location != "" {
		h.Set("Location", rep.location)
	}
	if rep.link != "" {
		h.Set("Link", rep.link)
	}
	if rep.allow != "" {
		h.Set("Allow", rep.allow)
	}
	if rep.body == nil {
		w.WriteHeader(rep.status)
		return
	}
	writeJSON(w, rep.status, rep.body)
}

// writeJSON writes v as the JSON body of an answer with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		// Only the simulator's own types are encoded here, so this is a bug.
		http.Error(w, `{"message":"webexsim: encoding the answer failed"}`, http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// newTrackingID returns a tracking id for a call that sent none.
func (s *Server) newTrackingID() string {
	var b [48]byte
	out := append(b[:0], s.trackingPrefix...)
	out = strconv.AppendUint(out, s.trackingSeq.Add(1), 10)
	return string(out)
}

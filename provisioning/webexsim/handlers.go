package webexsim

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/acme-sp/wholesale-provisioner/internal/strictjson"
	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

// Packages known to the API. The deprecated package field takes the legacy
// set; the packages array also takes the add-ons and contact-center packages.
const (
	pkgCalling         = "webex_calling"
	pkgMeetings        = "webex_meetings"
	pkgSuite           = "webex_suite"
	pkgVoice           = "webex_voice"
	pkgCXEssentials    = "cx_essentials"
	pkgCallingStandard = "webex_calling_standard"
	pkgAttendant       = "attendant_console"
	pkgCXPremiumAgent  = "cx_premium_agent"
	pkgCXStandardAgent = "cx_standard_agent"
)

var (
	legacyPackages = map[string]bool{
		pkgCalling: true, pkgMeetings: true, pkgSuite: true, pkgVoice: true,
		pkgCXEssentials: true, pkgCallingStandard: true,
	}
	arrayPackages = map[string]bool{
		pkgCalling: true, pkgMeetings: true, pkgSuite: true, pkgVoice: true,
		pkgCXEssentials: true, pkgCallingStandard: true,
		pkgAttendant: true, pkgCXPremiumAgent: true, pkgCXStandardAgent: true,
	}
	// callingPackages need a primary phone number, an extension or both.
	callingPackages = map[string]bool{
		pkgCalling: true, pkgCallingStandard: true, pkgSuite: true, pkgVoice: true, pkgCXEssentials: true,
	}
	// attendantBases are the packages attendant_console depends on.
	attendantBases = map[string]bool{pkgCalling: true, pkgSuite: true, pkgCXEssentials: true}
)

// Base64 of "ciscospark://us/SUBSCRIBER/" and "ciscospark://us/PEOPLE/", the
// prefixes of Webex ids.
const (
	subscriberIDPrefix = "ciscospark://us/SUBSCRIBER/"
	personIDPrefix     = "ciscospark://us/PEOPLE/"
)

const (
	maxBodyBytes = 1 << 20
	timeLayout   = "2006-01-02T15:04:05.000Z" // RFC 3339 with milliseconds, in UTC
)

// Messages of the answers that clients may want to recognise.
const (
	msgPackageChoice = "Either packages or package field is required but not both."
	msgEmailInUse    = "The email is already associated with an existing user."
	msgPrecheckOK    = "Provisioning Precheck validation successful."
	msgNotFound      = "Subscriber not found."
	msgNotManaged    = "The customer is not managed by this partner."
	msgNotEntitled   = "The partner organization is not entitled to use this API (wxc-wholesale)."
	msgBusy          = "The subscriber is being changed: try again when its status is no longer provisioning or updating"
)

// migrationErrors are the errors[] of a subscriber in DeclineDomain once its
// user migration failed.
var migrationErrors = []provisioning.ErrorItem{{
	ErrorCode:   MigrationErrorCode,
	Description: "The user did not consent to moving their existing Webex account: the user migration failed.",
}}

// provisionBody is the body of the provision call. It reuses
// provisioning.ProvisionRequest but takes provisioningParameters as a pointer,
// which hides the embedded field, so that a missing object can be told from an
// empty one: the provision call requires it.
type provisionBody struct {
	provisioning.ProvisionRequest
	ProvisioningParameters *provisioning.ProvisioningParameters `json:"provisioningParameters"`
}

// bodyLimits bound a request body: requests nest three levels deep.
var bodyLimits = strictjson.Limits{MaxDepth: 32, MaxNumberLen: 32, AllowDuplicateKeys: true}

// decodeJSON reads the JSON body of r into v. It returns false and the answer
// to give when the body is not JSON.
func decodeJSON(r *http.Request, v any) (reply, bool) {
	mediaType, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	if !strings.EqualFold(strings.TrimSpace(mediaType), "application/json") {
		return errReply(http.StatusUnsupportedMediaType, "The request body must be sent with Content-Type application/json."), false
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, maxBodyBytes+1)); err != nil {
		return errReply(http.StatusBadRequest, "The request body could not be read."), false
	}
	if buf.Len() > maxBodyBytes {
		return errReply(http.StatusBadRequest, "The request body is too large."), false
	}
	// Bounded before decoding, as the client bounds the answers: a request
	// body's shape must not decide how long the simulator spends on it.
	if err := strictjson.Check(buf.Bytes(), bodyLimits); err != nil {
		return errReply(http.StatusBadRequest, "The request body is not valid JSON: "+err.Error()), false
	}
	if err := json.Unmarshal(buf.Bytes(), v); err != nil {
		return errReply(http.StatusBadRequest, "The request body is not valid JSON."), false
	}
	return reply{}, true
}

// emailKey returns the lower-cased email and its domain, or ok false when the
// email is not of the form local@domain.
func emailKey(email string) (key, domain string, ok bool) {
	key = strings.ToLower(strings.TrimSpace(email))
	local, domain, found := strings.Cut(key, "@")
	if !found || local == "" || domain == "" || strings.ContainsAny(domain, "@ \t") || strings.ContainsAny(local, " \t") {
		return "", "", false
	}
	return key, domain, true
}

// checkPackages validates the package choice of a request and returns the
// packages it names. When required is false, naming none is allowed.
func checkPackages(pkg string, pkgs []string, required bool) ([]string, reply, bool) {
	switch {
	case pkg != "" && pkgs != nil:
		return nil, errReply(http.StatusBadRequest, msgPackageChoice), false
	case pkg == "" && pkgs == nil:
		if required {
			return nil, errReply(http.StatusBadRequest, msgPackageChoice), false
		}
		return nil, reply{}, true
	case pkg != "":
		if !legacyPackages[pkg] {
			return nil, errReply(http.StatusBadRequest, "Invalid package: "+strconv.Quote(pkg)+"."), false
		}
		return []string{pkg}, reply{}, true
	}
	if len(pkgs) == 0 {
		return nil, errReply(http.StatusBadRequest, "The packages field must name a package."), false
	}
	bases, attendant, attendantBase := 0, false, false
	for i, p := range pkgs {
		if !arrayPackages[p] {
			return nil, errReply(http.StatusBadRequest, "Invalid package: "+strconv.Quote(p)+"."), false
		}
		for _, q := range pkgs[:i] {
			if q == p {
				return nil, errReply(http.StatusBadRequest, "Duplicate package: "+strconv.Quote(p)+"."), false
			}
		}
		if p == pkgAttendant {
			attendant = true
			continue
		}
		bases++
		attendantBase = attendantBase || attendantBases[p]
	}
	// The API takes one package today; attendant_console is an add-on to one of
	// its bases, which is the only way to name two.
	if bases > 1 {
		return nil, errReply(http.StatusBadRequest, "Only one package is accepted in packages."), false
	}
	if attendant && !attendantBase {
		return nil, errReply(http.StatusBadRequest, "attendant_console is dependent on: webex_calling, webex_suite, cx_essentials."), false
	}
	return pkgs, reply{}, true
}

// basePackage returns the package mirrored into the deprecated package field:
// the base package (attendant_console is an add-on) when the field can name it,
// else "", which leaves the field out. Cisco's OpenAPI description allows only
// the legacy packages in Subscriber.package, so a contact-center package shows
// in packages alone.
func basePackage(pkgs []string) string {
	for _, p := range pkgs {
		if p != pkgAttendant {
			if !legacyPackages[p] {
				return ""
			}
			return p
		}
	}
	return ""
}

func needsNumber(pkgs []string) bool {
	for _, p := range pkgs {
		if callingPackages[p] {
			return true
		}
	}
	return false
}

func hasNumber(pp *provisioning.ProvisioningParameters) bool {
	return pp != nil && (strings.TrimSpace(pp.PrimaryPhoneNumber) != "" || strings.TrimSpace(pp.Extension) != "")
}

func numberMissing() reply {
	return errReply(http.StatusBadRequest,
		"A primary phone number, extension, or both must be supplied when assigning a calling-enabled package.")
}

func emailInUse() reply {
	return errReply(http.StatusConflict, msgEmailInUse,
		provisioning.ErrorItem{ErrorCode: provisioning.CodeEmailInUse, Description: msgEmailInUse})
}

// precheck serves POST /wholesale/subscribers/validate.
func (s *Server) precheck(r *http.Request) reply {
	if s.denied.Load() {
		return errReply(http.StatusForbidden, msgNotEntitled)
	}
	var req provisioning.PrecheckRequest
	if rep, ok := decodeJSON(r, &req); !ok {
		return rep
	}
	if strings.TrimSpace(req.Email) == "" {
		return errReply(http.StatusBadRequest, "The email field is required.")
	}
	key, domain, ok := emailKey(req.Email)
	if !ok {
		return errReply(http.StatusBadRequest, "The email field is not a valid email address.")
	}
	if req.CustomerInfo != nil && strings.TrimSpace(req.CustomerInfo.PrimaryEmail) == "" {
		return errReply(http.StatusBadRequest, "The customerInfo.primaryEmail field is required when customerInfo is sent.")
	}
	pkgs, rep, ok := checkPackages(req.Package, req.Packages, false)
	if !ok {
		return rep
	}
	if needsNumber(pkgs) && !hasNumber(req.ProvisioningParameters) {
		return numberMissing()
	}
	if req.CustomerID != "" {
		if rep, ok := customerReady(s.customers.lookup(req.CustomerID, time.Now())); !ok {
			return rep
		}
	}
	if s.store.hasEmail(key) {
		return emailInUse()
	}
	if _, rejected := s.rejectEmails[key]; rejected || (s.rejectDomain != "" && domain == s.rejectDomain) {
		const msg = "Precheck failed: the email domain is not allowed for this customer."
		return errReply(http.StatusBadRequest, msg,
			provisioning.ErrorItem{ErrorCode: PrecheckRejectCode, Description: msg})
	}
	return s.precheckPassed()
}

// precheckObject is the precheck answer with info as an object, the form of
// Cisco's OpenAPI description; provisioning.PrecheckResponse encodes an array.
type precheckObject struct {
	Message string                    `json:"message"`
	Info    provisioning.PrecheckInfo `json:"info"`
}

// create serves POST /wholesale/subscribers.
func (s *Server) create(r *http.Request) reply {
	var req provisionBody
	if rep, ok := decodeJSON(r, &req); !ok {
		return rep
	}
	if strings.TrimSpace(req.Email) == "" {
		return errReply(http.StatusBadRequest, "The email field is required.")
	}
	key, domain, ok := emailKey(req.Email)
	if !ok {
		return errReply(http.StatusBadRequest, "The email field is not a valid email address.")
	}
	s.stats.createCall(key)
	if f := s.faults.Load(); f != nil && f.FailsPermanently(key) {
		s.stats.injectedFaults.Add(1)
		s.stats.permanentErrors.Add(1)
		return errReply(http.StatusForbidden, msgNotManaged,
			provisioning.ErrorItem{ErrorCode: PermanentRejectCode, Description: msgNotManaged})
	}
	switch {
	case strings.TrimSpace(req.CustomerID) == "":
		return errReply(http.StatusBadRequest, "The customerId field is required.")
	case req.ProvisioningParameters == nil:
		return errReply(http.StatusBadRequest, "The provisioningParameters field is required.")
	}
	pkgs, rep, ok := checkPackages(req.Package, req.Packages, true)
	if !ok {
		return rep
	}
	if needsNumber(pkgs) && !hasNumber(req.ProvisioningParameters) {
		return numberMissing()
	}
	now := time.Now()
	// The customer must stay as checked until the subscriber is stored: a
	// customer delete must not miss it, nor a new externalId skip it.
	cust, release := s.customers.hold(req.CustomerID, now)
	defer release()
	if rep, ok := customerReady(cust); !ok {
		return rep
	}
	// Refuse a known email before building the record: duplicates are common in
	// the tests (redelivered orders) and the insert below checks again anyway.
	if s.store.hasEmail(key) {
		return emailInUse()
	}

	at := instantOf(now)
	extCustomerID := cust.externalID
	if !cust.known {
		extCustomerID = externalCustomerID(req.CustomerID)
	}
	rec := &record{key: key, created: at.ms, changed: at.ms, sub: provisioning.Subscriber{
		ID:                 webexID(subscriberIDPrefix),
		Email:              strings.TrimSpace(req.Email),
		CustomerID:         req.CustomerID,
		ExternalCustomerID: extCustomerID,
		Package:            basePackage(pkgs),
		Packages:           pkgs,
		Created:            at.stamp,
		LastStatusChange:   at.stamp,
	}}
	status := http.StatusOK
	switch {
	case domain == s.pendingDom:
		status = http.StatusAccepted
		rec.sub.Status = provisioning.SubscriberPendingUserMigration
	case domain == s.acceptDom:
		// The user accepts the move: pending first, as Webex answers, then
		// provisioned. With no delay the settlement is due at once, so that
		// the first read after this answer shows it.
		status = http.StatusAccepted
		rec.sub.Status = provisioning.SubscriberPendingUserMigration
		rec.settle = settleAt(at.t.Add(s.cfg.PendingResolveDelay), provisioning.SubscriberProvisioned, webexID(personIDPrefix), nil)
	case domain == s.declineDom:
		status = http.StatusAccepted
		rec.sub.Status = provisioning.SubscriberPendingUserMigration
		rec.settle = settleAt(at.t.Add(s.cfg.PendingResolveDelay), provisioning.SubscriberError, "", migrationErrors)
	case domain == s.errorDom:
		rec.sub.Status = provisioning.SubscriberProvisioning
		rec.settle = settleAt(at.t.Add(s.cfg.ProvisioningDelay), provisioning.SubscriberError, "", []provisioning.ErrorItem{{
			ErrorCode:   ProvisioningErrorCode,
			Description: "Provisioning the subscriber failed.",
		}})
	case s.cfg.ProvisioningDelay > 0:
		rec.sub.Status = provisioning.SubscriberProvisioning
		rec.settle = settleAt(at.t.Add(s.cfg.ProvisioningDelay), provisioning.SubscriberProvisioned, webexID(personIDPrefix), nil)
	default:
		rec.sub.Status = provisioning.SubscriberProvisioned
		rec.sub.PersonID = webexID(personIDPrefix)
	}
	// Copy the answer before the insert publishes rec to concurrent updates.
	answer := rec.sub
	if !s.store.insert(rec) {
		return emailInUse()
	}
	s.stats.created(key)
	return reply{
		status:   status,
		body:     &answer,
		location: s.absoluteURL(r, s.base+provisioning.PathSubscribers+"/"+rec.sub.ID),
	}
}

// get serves GET /wholesale/subscribers/{id}.
func (s *Server) get(id string) reply {
	sub, ok := s.store.get(id, time.Now())
	if !ok {
		return errReply(http.StatusNotFound, msgNotFound)
	}
	return reply{status: http.StatusOK, body: &sub}
}

// list serves GET /wholesale/subscribers.
func (s *Server) list(r *http.Request) reply {
	q := r.URL.Query()
	offset, limit, rep, ok := pageParams(q)
	if !ok {
		return rep
	}
	f := listFilter{
		customerID:         q.Get("customerId"),
		emailKey:           strings.ToLower(strings.TrimSpace(q.Get("email"))),
		status:             q.Get("status"),
		personID:           q.Get("personId"),
		externalCustomerID: q.Get("externalCustomerId"),
	}
	if v := q.Get("after"); v != "" {
		if f.createdAfter, ok = parseInstant(v); !ok {
			return errReply(http.StatusBadRequest, "The after parameter must be a time in epoch milliseconds or ISO 8601 (RFC 3339).")
		}
		f.byCreatedAfter = true
	}
	if v := q.Get("lastStatusChange"); v != "" {
		if f.changedAfter, ok = parseInstant(v); !ok {
			return errReply(http.StatusBadRequest, "The lastStatusChange parameter must be a time in epoch milliseconds or ISO 8601 (RFC 3339).")
		}
		f.byChangedAfter = true
	}
	var order listOrder
	switch q.Get("sortBy") {
	case "", "created":
	case "lastStatusChange":
		order.byLastStatusChange = true
	default:
		return errReply(http.StatusBadRequest, "The sortBy parameter must be created or lastStatusChange.")
	}
	// The description names ASC and DESC, in capitals: take exactly those, so
	// that a client relying on a looser spelling finds out here.
	switch q.Get("sortOrder") {
	case "", "ASC":
	case "DESC":
		order.descending = true
	default:
		return errReply(http.StatusBadRequest, "The sortOrder parameter must be ASC or DESC.")
	}
	items, more := s.store.list(&f, order, offset, limit, time.Now())
	rep = reply{status: http.StatusOK, body: &provisioning.SubscriberList{Items: items}}
	if more {
		rep.link = s.nextPage(r, q, offset+len(items), limit)
	}
	return rep
}

// defaultPageSize is the page of a list call that names no max. Cisco's
// description gives no default; the simulator's is smaller than the largest
// page, so that a client that sends no max still meets paging.
const defaultPageSize = 50

// pageParams reads the offset and max parameters of a list call; max is
// from 1 to 100.
func pageParams(q url.Values) (offset, limit int, rep reply, ok bool) {
	limit = defaultPageSize
	if v := q.Get("max"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return 0, 0, errReply(http.StatusBadRequest, "The max parameter must be an integer from 1 to 100."), false
		}
		limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, 0, errReply(http.StatusBadRequest, "The offset parameter must be an integer of 0 or more."), false
		}
		offset = n
	}
	return offset, limit, reply{}, true
}

// nextPage returns the Link header of a list answer with more to come: the
// same call, filters kept, from offset.
func (s *Server) nextPage(r *http.Request, q url.Values, offset, limit int) string {
	q.Set("max", strconv.Itoa(limit))
	q.Set("offset", strconv.Itoa(offset))
	return "<" + s.absoluteURL(r, r.URL.Path+"?"+q.Encode()) + `>; rel="next"`
}

// parseInstant reads a time of the after and lastStatusChange list filters,
// which Cisco's description takes in epoch milliseconds (preferred) or ISO
// 8601: here RFC 3339, with or without a fraction of a second and with Z or
// an offset. It returns the time in Unix milliseconds, rounded down.
func parseInstant(v string) (int64, bool) {
	digits := true
	for i := 0; i < len(v); i++ {
		digits = digits && v[i] >= '0' && v[i] <= '9'
	}
	if digits {
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return 0, false
	}
	return t.UnixMilli(), true
}

// updateBody is the body of PUT /wholesale/subscribers/{id} in Cisco's
// description: the package choice and, for a move from a package without
// calling to a calling one, provisioningParameters (primaryPhoneNumber,
// extension, locationId). The description does not say that other fields are
// refused, so they (firstName and lastName included) are accepted and ignored.
type updateBody struct {
	Package                string                               `json:"package"`
	Packages               []string                             `json:"packages"`
	ProvisioningParameters *provisioning.ProvisioningParameters `json:"provisioningParameters"`
}

// update serves PUT /wholesale/subscribers/{id}: it replaces the packages. A
// subscriber still provisioning or updating is answered 409: the client waits
// until it settles and tries again.
func (s *Server) update(r *http.Request, id string) reply {
	key, known := s.store.emailOf(id)
	if known {
		s.stats.updateCall(key)
	}
	var req updateBody
	if rep, ok := decodeJSON(r, &req); !ok {
		return rep
	}
	pkgs, rep, ok := checkPackages(req.Package, req.Packages, true)
	if !ok {
		return rep
	}
	sub, outcome := s.store.update(id, pkgs, basePackage(pkgs), hasNumber(req.ProvisioningParameters), s.cfg.UpdateDelay, time.Now())
	switch outcome {
	case updateNotFound:
		return errReply(http.StatusNotFound, msgNotFound)
	case updateBusy:
		return errReply(http.StatusConflict, msgBusy+" (status "+sub.Status+").")
	case updateNumberMissing:
		return numberMissing()
	}
	s.stats.updated(key)
	return reply{
		status:   http.StatusOK,
		body:     &sub,
		location: s.absoluteURL(r, s.base+provisioning.PathSubscribers+"/"+id),
	}
}

// remove serves DELETE /wholesale/subscribers/{id}. The subscriber's email is
// free again at once.
func (s *Server) remove(id string) reply {
	if key, known := s.store.emailOf(id); known {
		s.stats.removeCall(key)
	}
	key, ok := s.store.remove(id)
	if !ok {
		return errReply(http.StatusNotFound, msgNotFound)
	}
	s.stats.removed(key)
	return reply{status: http.StatusNoContent}
}

// consentMove serves POST /subscribers/{id}/emails/consentMove: Webex mails
// the user of a subscriber in pending_user_migration the request to consent
// to the move again. A subscriber in another status is answered 409, not 400:
// the call itself is well formed (it has no body and its only parameter names
// an existing subscriber), it conflicts with the subscriber's state, which is
// what the description's 409 ("conflicts with some established rule of the
// system") is for; both are in the operation's documented statuses.
func (s *Server) consentMove(id string) reply {
	status, key, ok := s.store.statusOf(id, time.Now())
	if !ok {
		if key, known := s.store.emailOf(id); known {
			s.stats.consentMoveCall(key)
		}
		return errReply(http.StatusNotFound, msgNotFound)
	}
	s.stats.consentMoveCall(key)
	if status != provisioning.SubscriberPendingUserMigration {
		return errReply(http.StatusConflict, "The subscriber is not in pending_user_migration (status "+status+"): there is no move to consent to.")
	}
	s.stats.consentMoved(key)
	return reply{status: http.StatusNoContent}
}

// absoluteURL returns the URL of path on the host the client called.
func (s *Server) absoluteURL(r *http.Request, path string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + path
}

// webexID returns a new id in the form of Webex ids: the unpadded URL-safe
// base64 of prefix followed by a random UUID.
func webexID(prefix string) string {
	var raw [64]byte
	b := append(raw[:0], prefix...)
	b = appendUUID(b, rand.Uint64(), rand.Uint64())
	return base64.RawURLEncoding.EncodeToString(b)
}

// appendUUID appends the version 4 UUID made of hi and lo.
func appendUUID(b []byte, hi, lo uint64) []byte {
	var u [16]byte
	for i := range 8 {
		u[i] = byte(hi >> (56 - 8*i))
		u[8+i] = byte(lo >> (56 - 8*i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var h [32]byte
	hex.Encode(h[:], u[:])
	b = append(b, h[0:8]...)
	b = append(b, '-')
	b = append(b, h[8:12]...)
	b = append(b, '-')
	b = append(b, h[12:16]...)
	b = append(b, '-')
	b = append(b, h[16:20]...)
	b = append(b, '-')
	return append(b, h[20:32]...)
}

// externalCustomerID derives a stable external id from a customer id the
// simulator did not make (it has no record of such a customer): the same
// customer always gets the same one.
func externalCustomerID(customerID string) string {
	sum := sha1.Sum([]byte(customerID))
	var raw [36]byte
	return string(appendUUID(raw[:0], binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:16])))
}

package webexsim

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

// The Wholesale Customers calls: a customer is the partner's mapping of one
// of its customers to a Webex organisation, which subscribers are then
// provisioned in. Cisco's description makes every change asynchronous: the
// create, update and delete are answered 202 and the customer's status says
// how the change went.

// customerPackages is the WholesalePackagesCustomer enum of Cisco's
// description.
var customerPackages = map[string]bool{
	"common_area_calling": true, pkgCalling: true, pkgMeetings: true, pkgSuite: true, pkgVoice: true,
	pkgCXEssentials: true, pkgCallingStandard: true, pkgCallingPlan: true, pkgAttendant: true,
	pkgCXPremiumAgent: true, pkgCXStandardAgent: true, "cx_voice_ports": true, "cx_ai_assistant": true,
	"webex_ai_agent": true,
}

// pkgCallingPlan is a customer package only: subscribers do not take it.
const pkgCallingPlan = "cisco_calling_plan"

// The packages that the description's "packages Note" says cisco_calling_plan
// depends on; attendant_console depends on attendantBases, as for subscribers.
var (
	callingPlanBases = map[string]bool{
		"common_area_calling": true, pkgCalling: true, pkgSuite: true, pkgVoice: true,
		pkgCXEssentials: true, pkgCallingStandard: true,
	}
)

// Statuses of a package in resourceDetails: the description's Package.status
// enum, which differs from the customer's.
const (
	pkgStatusProvisioned  = "provisioned"
	pkgStatusProvisioning = "provisioning"
	pkgStatusDeleting     = "deleting"
	pkgStatusError        = "error"
)

// Base64 of these are the prefixes of the ids the simulator makes up; the
// customer's is that of the ids in Cisco's examples.
const (
	customerIDPrefix = "ciscospark://us/ENTERPRISE/"
	orgIDPrefix      = "ciscospark://us/ORGANIZATION/"
	licenseIDPrefix  = "ciscospark://us/LICENSE/"
)

// maxAddressLine is the description's "50 character limit on each address line".
const maxAddressLine = 50

// Messages of the customer answers that clients may want to recognise.
const (
	msgCustomerNotFound = "Customer not found."
	msgCustomerExists   = "The externalId is already used by an existing customer."
	msgCustomerBusy     = "The customer is being changed: try again when its status is no longer provisioning, updating or deleting"
	msgCustomerDeleted  = "The customer was deleted."
)

// customerErrors are the errors[] of a customer whose provisioning failed.
var customerErrors = []provisioning.ErrorItem{{
	ErrorCode:   CustomerProvisioningErrorCode,
	Description: "Provisioning the customer failed.",
}}

// packageErrors are the errors[] of the package that failed in a customer
// provisioned with errors.
var packageErrors = []provisioning.ErrorItem{{
	ErrorCode:   CustomerPackageErrorCode,
	Description: "Provisioning the package failed.",
}}

// customerBody is the body of a customer's create and precheck. It reuses
// provisioning.CustomerRequest but takes address as a pointer, which hides
// the embedded field, so that a missing address can be told from an empty
// one.
type customerBody struct {
	provisioning.CustomerRequest
	Address *provisioning.Address `json:"address"`
}

// customerUpdateBody is the body of PUT /wholesale/customers/{id}, with
// externalId as a pointer so that one sent empty can be told from none.
type customerUpdateBody struct {
	provisioning.CustomerUpdateRequest
	ExternalID *string `json:"externalId"`
}

func customerExists() reply {
	return errReply(http.StatusConflict, msgCustomerExists,
		provisioning.ErrorItem{ErrorCode: CustomerExistsCode, Description: msgCustomerExists})
}

// checkAddress validates a customer's billing address, as the description's
// schemas and text give it.
func checkAddress(a *provisioning.Address) (reply, bool) {
	bad := func(msg string) (reply, bool) { return errReply(http.StatusBadRequest, msg), false }
	switch {
	case a == nil:
		return bad("The address field is required.")
	case strings.TrimSpace(a.AddressLine1) == "":
		return bad("The address.addressLine1 field is required.")
	case strings.TrimSpace(a.City) == "":
		return bad("The address.city field is required.")
	case strings.TrimSpace(a.Country) == "":
		return bad("The address.country field is required.")
	case !isCountryCode(a.Country):
		return bad("The address.country field must be an ISO 3166-1 alpha-2 country code of 2 letters.")
	case utf8.RuneCountInString(a.AddressLine1) > maxAddressLine:
		return bad("The address.addressLine1 field is longer than " + strconv.Itoa(maxAddressLine) + " characters.")
	case utf8.RuneCountInString(a.AddressLine2) > maxAddressLine:
		return bad("The address.addressLine2 field is longer than " + strconv.Itoa(maxAddressLine) + " characters.")
	}
	return reply{}, true
}

// isCountryCode reports whether s is two ASCII letters. Either case is taken:
// the description says "ISO2 country code", not how it is written.
func isCountryCode(s string) bool {
	if len(s) != 2 {
		return false
	}
	for i := range 2 {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// checkCustomerPackages validates a customer's package list: every item in
// the WholesalePackagesCustomer enum, none twice, and the dependencies of
// the description's "packages Note". When required is false, a missing or
// empty list is allowed.
func checkCustomerPackages(pkgs []string, required bool) (reply, bool) {
	if len(pkgs) == 0 {
		if required {
			return errReply(http.StatusBadRequest, "The packages field is required and must name at least one package."), false
		}
		return reply{}, true
	}
	calling, attendant := false, false
	for i, p := range pkgs {
		if !customerPackages[p] {
			return errReply(http.StatusBadRequest, "Invalid package: "+strconv.Quote(p)+"."), false
		}
		for _, q := range pkgs[:i] {
			if q == p {
				return errReply(http.StatusBadRequest, "Duplicate package: "+strconv.Quote(p)+"."), false
			}
		}
		calling = calling || callingPlanBases[p]
		attendant = attendant || attendantBases[p]
	}
	for _, p := range pkgs {
		switch {
		case p == pkgCallingPlan && !calling:
			return errReply(http.StatusBadRequest, "cisco_calling_plan is dependent on: common_area_calling, webex_calling, webex_suite, webex_voice, cx_essentials, webex_calling_standard."), false
		case p == pkgAttendant && !attendant:
			return errReply(http.StatusBadRequest, "attendant_console is dependent on: webex_calling, webex_suite, cx_essentials."), false
		}
	}
	return reply{}, true
}

// checkPrimaryEmail validates customerInfo.primaryEmail and returns its
// lower-cased form and domain.
func checkPrimaryEmail(info *provisioning.CustomerInfo) (key, domain string, rep reply, ok bool) {
	if strings.TrimSpace(info.PrimaryEmail) == "" {
		return "", "", errReply(http.StatusBadRequest, "The customerInfo.primaryEmail field is required when customerInfo is sent."), false
	}
	key, domain, ok = emailKey(info.PrimaryEmail)
	if !ok {
		return "", "", errReply(http.StatusBadRequest, "The customerInfo.primaryEmail field is not a valid email address."), false
	}
	return key, domain, reply{}, true
}

// precheckCustomer serves POST /wholesale/customers/validate. Only the
// address is required; what else is sent is checked as the create would.
func (s *Server) precheckCustomer(r *http.Request) reply {
	if s.denied.Load() {
		return errReply(http.StatusForbidden, msgNotEntitled)
	}
	var req customerBody
	if rep, ok := decodeJSON(r, &req); !ok {
		return rep
	}
	if rep, ok := checkAddress(req.Address); !ok {
		return rep
	}
	var key, domain string
	if req.CustomerInfo != nil {
		var rep reply
		var ok bool
		if key, domain, rep, ok = checkPrimaryEmail(req.CustomerInfo); !ok {
			return rep
		}
	}
	if rep, ok := checkCustomerPackages(req.Packages, false); !ok {
		return rep
	}
	if req.ExternalID != "" && s.customers.hasExternalID(req.ExternalID, time.Now()) {
		return customerExists()
	}
	if key != "" {
		if _, rejected := s.rejectEmails[key]; rejected || (s.rejectDomain != "" && domain == s.rejectDomain) {
			const msg = "Precheck failed: the customer's email domain is not allowed."
			return errReply(http.StatusBadRequest, msg,
				provisioning.ErrorItem{ErrorCode: PrecheckRejectCode, Description: msg})
		}
	}
	return s.precheckPassed()
}

// precheckPassed is the answer of a successful precheck, of a subscriber or
// of a customer: Cisco describes both alike.
func (s *Server) precheckPassed() reply {
	info := provisioning.PrecheckInfo{InfoCode: provisioning.PrecheckSuccessCode, Description: msgPrecheckOK}
	if c := s.cfg.PrecheckInfoCode; c != info.InfoCode {
		info = provisioning.PrecheckInfo{InfoCode: c, Description: "Provisioning preCheck validation successful, with information code " + strconv.Itoa(c) + "."}
	}
	if s.cfg.PrecheckInfoAsArray {
		return reply{status: http.StatusOK, body: &provisioning.PrecheckResponse{
			Message: "success", Info: provisioning.PrecheckInfos{info},
		}}
	}
	return reply{status: http.StatusOK, body: &precheckObject{Message: "success", Info: info}}
}

// createCustomer serves POST /wholesale/customers: 202 with the customer's
// URL, the customer "provisioning" until CustomerProvisioningDelay has passed.
func (s *Server) createCustomer(r *http.Request) reply {
	var req customerBody
	if rep, ok := decodeJSON(r, &req); !ok {
		return rep
	}
	ext := req.ExternalID
	if strings.TrimSpace(ext) != "" {
		s.stats.customerCreateCall(ext)
	}
	if strings.TrimSpace(req.ProvisioningID) == "" {
		return errReply(http.StatusBadRequest, "The provisioningId field is required.")
	}
	if rep, ok := checkCustomerPackages(req.Packages, true); !ok {
		return rep
	}
	if strings.TrimSpace(ext) == "" {
		return errReply(http.StatusBadRequest, "The externalId field is required.")
	}
	if rep, ok := checkAddress(req.Address); !ok {
		return rep
	}
	final := provisioning.CustomerProvisioned
	switch info := req.CustomerInfo; {
	case info == nil && strings.TrimSpace(req.OrgID) == "":
		return errReply(http.StatusBadRequest, "The customerInfo field is required for a new customer (one without orgId).")
	case info != nil:
		if strings.TrimSpace(info.Name) == "" {
			return errReply(http.StatusBadRequest, "The customerInfo.name field is required when customerInfo is sent.")
		}
		if strings.Contains(info.Name, "%") {
			return errReply(http.StatusBadRequest, `The customerInfo.name field must not include the "%" character.`)
		}
		_, domain, rep, ok := checkPrimaryEmail(info)
		if !ok {
			return rep
		}
		final = s.customerOutcomeFor(domain)
	}
	// Refuse a known externalId before building the record; the insert
	// checks again under its lock.
	now := time.Now()
	if s.customers.hasExternalID(ext, now) {
		return customerExists()
	}
	addr := *req.Address
	cust := provisioning.Customer{
		ID:              webexID(customerIDPrefix),
		ExternalID:      ext,
		Address:         &addr,
		Status:          provisioning.CustomerProvisioning,
		ResourceDetails: packageDetails(req.Packages, pkgStatusProvisioning),
	}
	orgID := strings.TrimSpace(req.OrgID)
	if orgID == "" {
		orgID = webexID(orgIDPrefix)
	}
	rec := &customerRecord{cust: cust, orgID: orgID, pkgs: req.Packages, settle: &customerSettlement{
		at:   now.Add(s.cfg.CustomerProvisioningDelay),
		next: customerOutcome(cust, final, req.Packages),
	}}
	if !s.customers.insert(rec, now) {
		return customerExists()
	}
	s.stats.customerCreated(ext)
	return s.customerAccepted(r, cust.ID)
}

// customerOutcomeFor returns the status a new customer whose primary email
// is in domain ends in.
func (s *Server) customerOutcomeFor(domain string) string {
	switch domain {
	case s.custErrorDom:
		return provisioning.CustomerError
	case s.custPartialDom:
		return provisioning.CustomerProvisionedWithErrors
	case s.custReviewDom:
		return provisioning.CustomerPendingRPLReview
	}
	return provisioning.CustomerProvisioned
}

// customerAccepted is the 202 answer of a create or update: the customer's
// absolute URL in the Location header and in the body.
func (s *Server) customerAccepted(r *http.Request, id string) reply {
	u := s.absoluteURL(r, s.base+provisioning.PathCustomers+"/"+id)
	return reply{status: http.StatusAccepted, body: &provisioning.ResourceURL{URL: u}, location: u}
}

// getCustomer serves GET /wholesale/customers/{id}.
func (s *Server) getCustomer(r *http.Request, id string) reply {
	licenses := false
	if v := r.URL.Query().Get("includePackageLicenseInfo"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errReply(http.StatusBadRequest, "The includePackageLicenseInfo parameter must be true or false.")
		}
		licenses = b
	}
	c, ok := s.customers.get(id, time.Now(), licenses)
	if !ok {
		return errReply(http.StatusNotFound, msgCustomerNotFound)
	}
	return reply{status: http.StatusOK, body: &c}
}

// listCustomers serves GET /wholesale/customers. status is an array in the
// description: it is taken repeated, comma-separated, or both.
func (s *Server) listCustomers(r *http.Request) reply {
	q := r.URL.Query()
	offset, limit, rep, ok := pageParams(q)
	if !ok {
		return rep
	}
	f := customerFilter{externalID: q.Get("externalId"), orgID: q.Get("orgId")}
	for _, v := range q["status"] {
		for part := range strings.SplitSeq(v, ",") {
			if p := strings.TrimSpace(part); p != "" {
				f.statuses = append(f.statuses, p)
			}
		}
	}
	items, more := s.customers.list(&f, offset, limit, time.Now())
	rep = reply{status: http.StatusOK, body: &provisioning.CustomerList{Items: items}}
	if more {
		rep.link = s.nextPage(r, q, offset+len(items), limit)
	}
	return rep
}

// updateCustomer serves PUT /wholesale/customers/{id}: 202, the customer
// "updating" until CustomerUpdateDelay has passed, then provisioned with the
// packages sent, the complete list. A PUT of the packages the customer
// already has is a change all the same: Webex does not look.
func (s *Server) updateCustomer(r *http.Request, id string) reply {
	ext, known := s.customers.externalIDOf(id)
	if known {
		s.stats.customerUpdateCall(ext)
	}
	var req customerUpdateBody
	if rep, ok := decodeJSON(r, &req); !ok {
		return rep
	}
	if rep, ok := checkCustomerPackages(req.Packages, true); !ok {
		return rep
	}
	ch := customerChange{packages: req.Packages}
	if req.ExternalID != nil {
		if strings.TrimSpace(*req.ExternalID) == "" {
			return errReply(http.StatusBadRequest, "The externalId field must not be empty when it is sent.")
		}
		ch.externalID = *req.ExternalID
	}
	if req.Address != nil {
		if rep, ok := checkAddress(req.Address); !ok {
			return rep
		}
		ch.address = req.Address
	}
	status, outcome := s.customers.update(id, ch, s.cfg.CustomerUpdateDelay, time.Now(), s.store.renameCustomer)
	switch outcome {
	case changeNotFound:
		return errReply(http.StatusNotFound, msgCustomerNotFound)
	case changeBusy:
		return errReply(http.StatusConflict, msgCustomerBusy+" (status "+status+").")
	case changeExternalIDTaken:
		return customerExists()
	}
	s.stats.customerUpdated(ext)
	return s.customerAccepted(r, id)
}

// removeCustomer serves DELETE /wholesale/customers/{id}: 202, the customer
// "deleting" until CustomerDeleteDelay has passed, then gone. A customer
// with subscribers is not deleted: Webex would leave them without an
// organisation.
func (s *Server) removeCustomer(id string) reply {
	ext, known := s.customers.externalIDOf(id)
	if known {
		s.stats.customerRemoveCall(ext)
	}
	status, n, outcome := s.customers.remove(id, s.store.subscribersOf, s.cfg.CustomerDeleteDelay, time.Now())
	switch outcome {
	case changeNotFound:
		return errReply(http.StatusNotFound, msgCustomerNotFound)
	case changeHasSubscribers:
		noun := "subscribers"
		if n == 1 {
			noun = "subscriber"
		}
		msg := "The customer still has " + strconv.Itoa(n) + " " + noun + ": remove them before the customer."
		return errReply(http.StatusConflict, msg,
			provisioning.ErrorItem{ErrorCode: CustomerHasSubscribersCode, Description: msg})
	case changeBusy:
		return errReply(http.StatusConflict, msgCustomerBusy+" (status "+status+").")
	}
	s.stats.customerRemoved(ext)
	return reply{status: http.StatusAccepted}
}

// customerReady checks the customer of a subscriber precheck or create. A
// customer id the simulator did not make is taken for a provisioned
// customer of another system (tests name arbitrary ones); one it made must
// be provisioned, with errors or not, and one it deleted is not found.
func customerReady(c customerOf) (reply, bool) {
	switch {
	case !c.known:
		return reply{}, true
	case c.deleted:
		return errReply(http.StatusNotFound, msgCustomerDeleted), false
	case c.status == provisioning.CustomerProvisioned || c.status == provisioning.CustomerProvisionedWithErrors:
		return reply{}, true
	}
	msg := "The customer is not provisioned (status " + c.status + ")."
	return errReply(http.StatusBadRequest, msg, provisioning.ErrorItem{ErrorCode: CustomerNotReadyCode, Description: msg}), false
}

// showsOrgID reports whether a customer in status shows its orgId: Cisco's
// description says only when provisioned, and one provisioned with errors
// has its organisation too.
func showsOrgID(status string) bool {
	return status == provisioning.CustomerProvisioned || status == provisioning.CustomerProvisionedWithErrors
}

// packageDetails returns resourceDetails with every package in status.
func packageDetails(pkgs []string, status string) *provisioning.ResourceDetails {
	details := make([]provisioning.PackageDetail, len(pkgs))
	for i, p := range pkgs {
		details[i] = provisioning.PackageDetail{Name: p, Status: status}
	}
	return &provisioning.ResourceDetails{Packages: details}
}

// licensesOf returns the license ids of the provisioned packages of c.
func licensesOf(c provisioning.Customer) map[string][]string {
	if c.ResourceDetails == nil {
		return nil
	}
	out := make(map[string][]string, len(c.ResourceDetails.Packages))
	for _, d := range c.ResourceDetails.Packages {
		if d.Status == pkgStatusProvisioned && len(d.LicenseIDs) > 0 {
			out[d.Name] = d.LicenseIDs
		}
	}
	return out
}

// customerOutcome returns c once a create or update with pkgs has ended in
// status. A package keeps the license id it had; a new one gets one.
func customerOutcome(c provisioning.Customer, status string, pkgs []string) provisioning.Customer {
	old := licensesOf(c)
	license := func(p string) []string {
		if l, ok := old[p]; ok {
			return l
		}
		return []string{webexID(licenseIDPrefix)}
	}
	c.Status, c.Errors = status, nil
	switch status {
	case provisioning.CustomerProvisioned, provisioning.CustomerProvisionedWithErrors:
		c.Packages = pkgs
		details := make([]provisioning.PackageDetail, len(pkgs))
		for i, p := range pkgs {
			details[i] = provisioning.PackageDetail{Name: p, Status: pkgStatusProvisioned, LicenseIDs: license(p)}
		}
		if status == provisioning.CustomerProvisionedWithErrors && len(details) > 0 {
			details[0] = provisioning.PackageDetail{Name: pkgs[0], Status: pkgStatusError, Errors: packageErrors}
		}
		c.ResourceDetails = &provisioning.ResourceDetails{Packages: details}
	case provisioning.CustomerError:
		c.Packages = nil
		c.ResourceDetails = packageDetails(pkgs, pkgStatusError)
		c.Errors = customerErrors
	default: // pending_rpl_review: nothing is provisioned before the review
		c.Packages = nil
		c.ResourceDetails = packageDetails(pkgs, pkgStatusProvisioning)
	}
	return c
}

// updatingState returns c while an update to pkgs is in progress: its
// packages are still those it had, and resourceDetails shows the packages
// it keeps as they are, those added as provisioning and those left out as
// deleting.
func updatingState(c provisioning.Customer, pkgs []string) provisioning.Customer {
	had := map[string]provisioning.PackageDetail{}
	if c.ResourceDetails != nil {
		for _, d := range c.ResourceDetails.Packages {
			had[d.Name] = d
		}
	}
	details := make([]provisioning.PackageDetail, 0, len(pkgs)+len(had))
	kept := make(map[string]bool, len(pkgs))
	for _, p := range pkgs {
		kept[p] = true
		if d, ok := had[p]; ok && d.Status == pkgStatusProvisioned {
			details = append(details, d)
			continue
		}
		details = append(details, provisioning.PackageDetail{Name: p, Status: pkgStatusProvisioning})
	}
	for _, p := range c.Packages {
		if !kept[p] {
			details = append(details, provisioning.PackageDetail{Name: p, Status: pkgStatusDeleting})
		}
	}
	c.Status, c.Errors = provisioning.CustomerUpdating, nil
	c.ResourceDetails = &provisioning.ResourceDetails{Packages: details}
	return c
}

// deletingState returns c while its delete is in progress.
func deletingState(c provisioning.Customer) provisioning.Customer {
	var names []string
	if c.ResourceDetails != nil {
		for _, d := range c.ResourceDetails.Packages {
			names = append(names, d.Name)
		}
	}
	c.Status, c.Errors = provisioning.CustomerDeleting, nil
	c.ResourceDetails = packageDetails(names, pkgStatusDeleting)
	return c
}

// withoutLicenses returns rd without license ids, copying it only when it
// has some: stored details are shared with earlier views.
func withoutLicenses(rd *provisioning.ResourceDetails) *provisioning.ResourceDetails {
	if rd == nil {
		return nil
	}
	has := false
	for _, d := range rd.Packages {
		has = has || len(d.LicenseIDs) > 0
	}
	if !has {
		return rd
	}
	out := &provisioning.ResourceDetails{Packages: make([]provisioning.PackageDetail, len(rd.Packages))}
	for i, d := range rd.Packages {
		d.LicenseIDs = nil
		out.Packages[i] = d
	}
	return out
}

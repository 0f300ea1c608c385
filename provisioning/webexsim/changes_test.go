package webexsim_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
	"github.com/acme-sp/wholesale-provisioner/provisioning/webexsim"
)

// Tests of the calls that change or follow a subscriber after its create:
// update, remove, consent move, pending subscribers that resolve, and the
// list filters a poller uses.

func itemPath(id string) string { return provisioning.PathSubscribers + "/" + id }

func consentPath(id string) string { return "/subscribers/" + id + "/emails/consentMove" }

func (h *harness) get(id string) provisioning.Subscriber {
	h.t.Helper()
	res := h.do(call{method: http.MethodGet, path: itemPath(id)})
	if res.status != http.StatusOK {
		h.t.Fatalf("GET %s: status %d, body %s", id, res.status, res.body)
	}
	return res.subscriber(h.t)
}

func (h *harness) put(id string, body any) result {
	h.t.Helper()
	return h.do(call{method: http.MethodPut, path: itemPath(id), body: body})
}

// stamp parses a time of the API, failing the test unless it is RFC 3339.
func stamp(t *testing.T, v string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		t.Fatalf("time %q: %v", v, err)
	}
	return ts
}

func TestUpdateWithDelay(t *testing.T) {
	const delay = 150 * time.Millisecond
	h := newHarness(t, webexsim.Config{UpdateDelay: delay})
	const email = "upd@acme.example"
	sub := h.mustCreate(customerA, email)
	time.Sleep(3 * time.Millisecond) // so that lastStatusChange can be seen to move

	res := h.put(sub.ID, map[string]any{"packages": []string{"webex_suite"}})
	got := res.subscriber(t)
	if res.status != http.StatusOK || got.Status != provisioning.SubscriberUpdating {
		t.Fatalf("PUT: status %d, body %s; want 200 updating", res.status, res.body)
	}
	if !slices.Equal(got.Packages, []string{"webex_suite"}) || got.Package != "webex_suite" || got.PersonID != sub.PersonID {
		t.Errorf("PUT answer %+v: want the new package at once and the same personId", got)
	}
	if loc := res.header.Get("Location"); loc != h.base+itemPath(sub.ID) {
		t.Errorf("Location = %q", loc)
	}
	putAt := stamp(t, got.LastStatusChange)
	if !putAt.After(stamp(t, sub.LastStatusChange)) {
		t.Errorf("lastStatusChange %s did not move from %s", got.LastStatusChange, sub.LastStatusChange)
	}
	if now := h.get(sub.ID); now.Status != provisioning.SubscriberUpdating || !slices.Equal(now.Packages, []string{"webex_suite"}) {
		t.Errorf("GET while updating: %+v", now)
	}
	// Busy: a second change is refused until the first settles.
	eb := wantError(t, h.put(sub.ID, map[string]any{"packages": []string{"webex_voice"}}), http.StatusConflict, 0)
	if !strings.Contains(eb.Message, "updating") {
		t.Errorf("409 message %q does not say why", eb.Message)
	}
	items, _ := listPage(t, h, provisioning.PathSubscribers+"?status=updating")
	if len(items) != 1 || items[0].ID != sub.ID {
		t.Errorf("list status=updating = %+v", items)
	}

	time.Sleep(delay + 20*time.Millisecond)
	done := h.get(sub.ID)
	if done.Status != provisioning.SubscriberProvisioned || !slices.Equal(done.Packages, []string{"webex_suite"}) || done.PersonID != sub.PersonID {
		t.Fatalf("GET after the delay: %+v, want provisioned with webex_suite and the same personId", done)
	}
	if d := stamp(t, done.LastStatusChange).Sub(putAt); d != delay {
		t.Errorf("lastStatusChange moved %s after the PUT, want the delay %s", d, delay)
	}
	if res := h.put(sub.ID, map[string]any{"packages": []string{"webex_voice"}}); res.status != http.StatusOK || res.subscriber(t).Status != provisioning.SubscriberUpdating {
		t.Errorf("PUT after settling: status %d, body %s", res.status, res.body)
	}
	if calls, ok := h.sim.UpdateCalls(email), h.sim.SuccessfulUpdates(email); calls != 3 || ok != 2 {
		t.Errorf("UpdateCalls = %d, SuccessfulUpdates = %d; want 3 and 2", calls, ok)
	}
	if st := h.sim.Stats(); st.UpdateCalls != 3 || st.Updates != 2 || st.Count(webexsim.EndpointUpdate, 409) != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestUpdateWhileProvisioning(t *testing.T) {
	h := newHarness(t, webexsim.Config{ProvisioningDelay: time.Minute})
	sub := h.mustCreate(customerA, "slow@acme.example")
	wantError(t, h.put(sub.ID, map[string]any{"packages": []string{"webex_suite"}}), http.StatusConflict, 0)
	if got := h.get(sub.ID); !slices.Equal(got.Packages, []string{"webex_calling"}) {
		t.Errorf("a refused PUT changed the packages to %v", got.Packages)
	}
	if ok := h.sim.SuccessfulUpdates("slow@acme.example"); ok != 0 {
		t.Errorf("SuccessfulUpdates = %d, want 0", ok)
	}
}

func TestUpdateAtOnce(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	meetings := provisionBody(customerA, "m@acme.example")
	meetings.Packages = []string{"webex_meetings"}
	sub := h.do(call{method: http.MethodPost, path: provisioning.PathSubscribers, body: meetings}).subscriber(t)
	time.Sleep(3 * time.Millisecond)

	// Names are not in Cisco's update body: sent anyway, they are ignored, as
	// is a field the description does not have.
	res := h.put(sub.ID, map[string]any{
		"packages":               []string{"webex_calling"},
		"provisioningParameters": map[string]string{"firstName": "Grace", "lastName": "Hopper", "primaryPhoneNumber": "+12405551313"},
		"comment":                "not in the description",
	})
	got := res.subscriber(t)
	if res.status != http.StatusOK || got.Status != provisioning.SubscriberProvisioned || got.Package != "webex_calling" {
		t.Fatalf("PUT: status %d, body %s", res.status, res.body)
	}
	// The status did not change, so neither did lastStatusChange.
	if got.LastStatusChange != sub.LastStatusChange {
		t.Errorf("lastStatusChange moved from %s to %s without a status change", sub.LastStatusChange, got.LastStatusChange)
	}
	// Names alone are no number for a move to calling.
	meetings = provisionBody(customerA, "n@acme.example")
	meetings.Packages = []string{"webex_meetings"}
	other := h.do(call{method: http.MethodPost, path: provisioning.PathSubscribers, body: meetings}).subscriber(t)
	wantError(t, h.put(other.ID, map[string]any{"packages": []string{"webex_calling"},
		"provisioningParameters": map[string]string{"firstName": "Grace", "lastName": "Hopper"}}), http.StatusBadRequest, 0)
	if got := h.get(other.ID); got.Package != "webex_meetings" {
		t.Errorf("a refused PUT changed the package to %q", got.Package)
	}
}

func TestUpdatePending(t *testing.T) {
	h := newHarness(t, webexsim.Config{UpdateDelay: time.Minute})
	sub := h.mustCreate(customerA, "p@free.example")
	res := h.put(sub.ID, map[string]any{"packages": []string{"webex_suite"}})
	got := res.subscriber(t)
	if res.status != http.StatusOK || got.Status != provisioning.SubscriberPendingUserMigration || got.Package != "webex_suite" {
		t.Errorf("PUT of a pending subscriber: status %d, body %s; want its packages replaced and the status kept", res.status, res.body)
	}
}

func TestRemoveAndCreateAgain(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	const email = "again@acme.example"
	first := h.mustCreate(customerA, email)
	other := h.mustCreate(customerA, "other@acme.example")

	res := h.do(call{method: http.MethodDelete, path: itemPath(first.ID) + "?onBehalfOfSubPartnerOrgId=c3Vi"})
	if res.status != http.StatusNoContent || len(res.body) != 0 {
		t.Fatalf("DELETE: status %d, body %q", res.status, res.body)
	}
	wantError(t, h.do(call{method: http.MethodDelete, path: itemPath(first.ID)}), http.StatusNotFound, 0)
	wantError(t, h.do(call{method: http.MethodDelete, path: itemPath("nope")}), http.StatusNotFound, 0)
	wantError(t, h.do(call{method: http.MethodGet, path: itemPath(first.ID)}), http.StatusNotFound, 0)
	if items, _ := listPage(t, h, provisioning.PathSubscribers+"?email="+email); len(items) != 0 {
		t.Errorf("lookup by email after the remove: %+v", items)
	}
	// The email is free again: the precheck passes and the create succeeds.
	if res := h.do(call{method: http.MethodPost, path: provisioning.PathValidate, body: provisioning.PrecheckRequest{Email: email}}); res.status != http.StatusOK {
		t.Errorf("precheck after the remove: status %d, body %s", res.status, res.body)
	}
	second := h.mustCreate(customerA, email)
	if second.ID == first.ID {
		t.Error("the new subscriber has the removed one's id")
	}
	if calls, removes := h.sim.RemoveCalls(email), h.sim.SuccessfulRemoves(email); calls != 2 || removes != 1 {
		t.Errorf("RemoveCalls = %d, SuccessfulRemoves = %d; want 2 (one repeated) and 1", calls, removes)
	}
	if calls, creates := h.sim.CreateCalls(email), h.sim.SuccessfulCreates(email); calls != 2 || creates != 2 {
		t.Errorf("CreateCalls = %d, SuccessfulCreates = %d; want 2 and 2", calls, creates)
	}
	if h.sim.RemoveCalls(other.Email) != 0 || h.sim.SuccessfulRemoves(other.Email) != 0 {
		t.Error("removes counted for another email")
	}
	// A PUT of the removed id is counted for the email too, and is 404.
	wantError(t, h.put(first.ID, map[string]any{"packages": []string{"webex_suite"}}), http.StatusNotFound, 0)
	if calls, ok := h.sim.UpdateCalls(email), h.sim.SuccessfulUpdates(email); calls != 1 || ok != 0 {
		t.Errorf("UpdateCalls = %d, SuccessfulUpdates = %d; want 1 and 0", calls, ok)
	}
	if res := h.do(call{method: http.MethodDelete, path: itemPath(second.ID)}); res.status != http.StatusNoContent {
		t.Fatalf("second DELETE: %d", res.status)
	}
	st := h.sim.Stats()
	if st.Removes != 2 || st.RemoveCalls != 3 || st.Creates != 3 || st.EmailsCreatedMoreThanOnce != 1 || st.Subscribers != 1 ||
		st.Count(webexsim.EndpointDelete, 204) != 2 || st.Count(webexsim.EndpointDelete, 404) != 2 {
		t.Errorf("stats = %+v", st)
	}
	if got := h.sim.SuccessfulRemoves(email); got != 2 {
		t.Errorf("SuccessfulRemoves = %d after removing both, want 2", got)
	}
}

func TestConsentMove(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	const email = "Pat@Free.example"
	pending := h.mustCreate(customerA, email)
	done := h.mustCreate(customerA, "done@acme.example")
	for range 2 {
		res := h.do(call{method: http.MethodPost, path: consentPath(pending.ID) + "?onBehalfOfSubPartnerOrgId=c3Vi"})
		if res.status != http.StatusNoContent || len(res.body) != 0 {
			t.Fatalf("consentMove: status %d, body %q; want 204", res.status, res.body)
		}
	}
	if got := h.get(pending.ID); got.Status != provisioning.SubscriberPendingUserMigration {
		t.Errorf("status %q after a consent move, want it still pending", got.Status)
	}
	wantError(t, h.do(call{method: http.MethodPost, path: consentPath(done.ID)}), http.StatusConflict, 0)
	wantError(t, h.do(call{method: http.MethodPost, path: consentPath("nope")}), http.StatusNotFound, 0)
	if moves, calls := h.sim.ConsentMoves("pat@free.example"), h.sim.ConsentMoveCalls(email); moves != 2 || calls != 2 {
		t.Errorf("ConsentMoves = %d, ConsentMoveCalls = %d; want 2 and 2", moves, calls)
	}
	if moves, calls := h.sim.ConsentMoves(done.Email), h.sim.ConsentMoveCalls(done.Email); moves != 0 || calls != 1 {
		t.Errorf("provisioned: ConsentMoves = %d, ConsentMoveCalls = %d; want 0 and 1", moves, calls)
	}
	// Once resolved, there is no move to consent to.
	h.sim.ResolvePending(email, provisioning.SubscriberProvisioned)
	wantError(t, h.do(call{method: http.MethodPost, path: consentPath(pending.ID)}), http.StatusConflict, 0)
	wantError(t, h.do(call{method: http.MethodPost, path: consentPath(pending.ID), token: strp("bad")}), http.StatusUnauthorized, 0)
	st := h.sim.Stats()
	if st.Count(webexsim.EndpointConsentMove, 204) != 2 || st.Count(webexsim.EndpointConsentMove, 409) != 2 ||
		st.Count(webexsim.EndpointConsentMove, 404) != 1 || st.ConsentMoves != 2 || st.ConsentMoveCalls != 4 {
		t.Errorf("stats = %+v", st)
	}
	if _, ok := st.Calls[webexsim.EndpointConsentMove]; !ok {
		t.Errorf("no %q key in Stats.Calls: %v", webexsim.EndpointConsentMove, st.Calls)
	}
}

func TestAcceptAndDeclineDomains(t *testing.T) {
	const delay = 120 * time.Millisecond
	h := newHarness(t, webexsim.Config{AcceptDomain: "accepts.example", DeclineDomain: "Migration-Fails.example", PendingResolveDelay: delay})
	accept, decline := h.create(customerA, "a@Accepts.example"), h.create(customerA, "d@migration-fails.example")
	for _, res := range []result{accept, decline} {
		if sub := res.subscriber(t); res.status != http.StatusAccepted || sub.Status != provisioning.SubscriberPendingUserMigration || sub.PersonID != "" {
			t.Fatalf("create: status %d, body %s; want 202 pending_user_migration", res.status, res.body)
		}
	}
	a, d := accept.subscriber(t), decline.subscriber(t)
	if got := h.get(a.ID); got.Status != provisioning.SubscriberPendingUserMigration {
		t.Errorf("GET at once: %q, want pending for the delay", got.Status)
	}
	if res := h.do(call{method: http.MethodPost, path: consentPath(a.ID)}); res.status != http.StatusNoContent {
		t.Errorf("consentMove while pending: %d", res.status)
	}
	time.Sleep(delay + 20*time.Millisecond)

	got := h.get(a.ID)
	if got.Status != provisioning.SubscriberProvisioned || got.PersonID == "" || len(got.Errors) != 0 {
		t.Errorf("accepted: %+v, want provisioned with a personId", got)
	}
	if d := stamp(t, got.LastStatusChange).Sub(stamp(t, got.Created)); d != delay {
		t.Errorf("accepted: lastStatusChange %s after created, want the resolve delay %s", d, delay)
	}
	if again := h.get(a.ID); again.PersonID != got.PersonID {
		t.Errorf("personId changed from %s to %s", got.PersonID, again.PersonID)
	}
	bad := h.get(d.ID)
	if bad.Status != provisioning.SubscriberError || bad.PersonID != "" || len(bad.Errors) != 1 ||
		bad.Errors[0].ErrorCode != webexsim.MigrationErrorCode || bad.Errors[0].Description == "" {
		t.Errorf("declined: %+v, want error with one MigrationErrorCode item", bad)
	}
	if d := stamp(t, bad.LastStatusChange).Sub(stamp(t, bad.Created)); d != delay {
		t.Errorf("declined: lastStatusChange %s after created, want %s", d, delay)
	}
	wantError(t, h.do(call{method: http.MethodPost, path: consentPath(a.ID)}), http.StatusConflict, 0)
	// Only the configured domains resolve: free.example stays pending.
	p := h.mustCreate(customerA, "f@free.example")
	time.Sleep(delay + 20*time.Millisecond)
	if got := h.get(p.ID); got.Status != provisioning.SubscriberPendingUserMigration {
		t.Errorf("free.example: %q, want it pending still", got.Status)
	}
}

func TestAcceptDomainAtOnce(t *testing.T) {
	h := newHarness(t, webexsim.Config{AcceptDomain: "accepts.example"})
	res := h.create(customerA, "a@accepts.example")
	if res.status != http.StatusAccepted || res.subscriber(t).Status != provisioning.SubscriberPendingUserMigration {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	got := h.get(res.subscriber(t).ID)
	if got.Status != provisioning.SubscriberProvisioned || got.PersonID == "" || got.LastStatusChange != got.Created {
		t.Errorf("first GET: %+v, want provisioned at once, lastStatusChange the creation time", got)
	}
}

func TestResolvePending(t *testing.T) {
	h := newHarness(t, webexsim.Config{AcceptDomain: "accepts.example", PendingResolveDelay: time.Hour})
	yes, no, later := h.mustCreate(customerA, "yes@free.example"), h.mustCreate(customerA, "no@free.example"), h.mustCreate(customerA, "later@accepts.example")
	done := h.mustCreate(customerA, "done@acme.example")
	time.Sleep(3 * time.Millisecond)
	before := time.Now().Truncate(time.Millisecond)

	if !h.sim.ResolvePending("YES@free.example", provisioning.SubscriberProvisioned) {
		t.Fatal("ResolvePending(yes) = false")
	}
	got := h.get(yes.ID)
	if got.Status != provisioning.SubscriberProvisioned || got.PersonID == "" {
		t.Errorf("resolved: %+v", got)
	}
	if at := stamp(t, got.LastStatusChange); at.Before(before) || at.After(time.Now()) {
		t.Errorf("lastStatusChange %s, want the resolution time (after %s)", got.LastStatusChange, before.Format(time.RFC3339Nano))
	}
	if h.sim.ResolvePending("yes@free.example", provisioning.SubscriberError) {
		t.Error("resolved twice")
	}
	if h.sim.ResolvePending(done.Email, provisioning.SubscriberError) || h.sim.ResolvePending("nobody@free.example", provisioning.SubscriberProvisioned) {
		t.Error("resolved a subscriber that was not pending, or none")
	}
	if got := h.get(done.ID); got.Status != provisioning.SubscriberProvisioned {
		t.Errorf("a refused resolve changed %+v", got)
	}
	// Over the admin endpoint, for a simulator in another process.
	admin := func(body any) result {
		return h.do(call{method: http.MethodPost, path: h.srv.URL + "/_sim/resolve", body: body, token: strp("")})
	}
	if res := admin(map[string]string{"email": no.Email, "status": "error"}); res.status != http.StatusNoContent {
		t.Fatalf("POST /_sim/resolve: %d %s", res.status, res.body)
	}
	if got := h.get(no.ID); got.Status != provisioning.SubscriberError || len(got.Errors) != 1 || got.Errors[0].ErrorCode != webexsim.MigrationErrorCode {
		t.Errorf("resolved to error: %+v", got)
	}
	if res := admin(map[string]string{"email": no.Email, "status": "error"}); res.status != http.StatusNotFound {
		t.Errorf("resolving again: %d", res.status)
	}
	for _, body := range []string{`{"email":"later@accepts.example","status":"updating"}`, `{"email":"later@accepts.example"}`, `{"email":"x","status":"error","x":1}`} {
		if res := admin(body); res.status != http.StatusBadRequest {
			t.Errorf("POST /_sim/resolve %s: %d, want 400", body, res.status)
		}
	}
	// A resolution planned for later is overridden.
	if !h.sim.ResolvePending(later.Email, provisioning.SubscriberError) || h.get(later.ID).Status != provisioning.SubscriberError {
		t.Error("ResolvePending did not override the accept domain's planned resolution")
	}
	if st := h.sim.Stats(); st.Requests == 0 || st.Count(webexsim.EndpointOther, 204) != 0 {
		t.Errorf("stats = %+v", st)
	}
	defer func() {
		if recover() == nil {
			t.Error("ResolvePending to an unknown status did not panic")
		}
	}()
	h.sim.ResolvePending(yes.Email, "bogus")
}

// emailsOf lists the emails of subscribers, in order.
func emailsOf(subs []provisioning.Subscriber) string {
	out := make([]string, 0, len(subs))
	for _, s := range subs {
		out = append(out, s.Email)
	}
	return strings.Join(out, ",")
}

func TestListTimeFiltersAndSort(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	for _, e := range []string{"a@free.example", "b@acme.example", "c@free.example"} {
		h.mustCreate(customerA, e)
	}
	time.Sleep(3 * time.Millisecond)
	mid := time.Now()
	time.Sleep(3 * time.Millisecond)
	for _, e := range []string{"d@acme.example", "e@free.example"} {
		h.mustCreate(customerA, e)
	}
	time.Sleep(3 * time.Millisecond)
	resolvedFrom := time.Now()
	time.Sleep(3 * time.Millisecond)
	// Resolved in the order c, then a: lastStatusChange order differs from
	// the creation order.
	h.sim.ResolvePending("c@free.example", provisioning.SubscriberProvisioned)
	time.Sleep(3 * time.Millisecond)
	h.sim.ResolvePending("a@free.example", provisioning.SubscriberError)

	ms := func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return provisioning.PathSubscribers + "?" + v.Encode()
	}
	cases := []struct{ name, path, want string }{
		{"after, epoch ms", q("after", ms(mid)), "d@acme.example,e@free.example"},
		{"after, RFC 3339 with fraction", q("after", mid.UTC().Format(time.RFC3339Nano)), "d@acme.example,e@free.example"},
		{"after, RFC 3339 with offset", q("after", mid.In(time.FixedZone("", 2*3600)).Format("2006-01-02T15:04:05.000000-07:00")), "d@acme.example,e@free.example"},
		{"after, RFC 3339 without fraction, long ago", q("after", "2001-02-03T04:05:06Z"), "a@free.example,b@acme.example,c@free.example,d@acme.example,e@free.example"},
		{"after, in the future", q("after", "2999-01-01T00:00:00+02:00"), ""},
		{"after, epoch 0", q("after", "0"), "a@free.example,b@acme.example,c@free.example,d@acme.example,e@free.example"},
		{"lastStatusChange, epoch ms", q("lastStatusChange", ms(resolvedFrom)), "a@free.example,c@free.example"},
		{"lastStatusChange, RFC 3339", q("lastStatusChange", resolvedFrom.UTC().Format(time.RFC3339Nano)), "a@free.example,c@free.example"},
		{"lastStatusChange and status", q("lastStatusChange", ms(resolvedFrom), "status", "provisioned"), "c@free.example"},
		{"lastStatusChange sorted", q("lastStatusChange", ms(resolvedFrom), "sortBy", "lastStatusChange"), "c@free.example,a@free.example"},
		{"lastStatusChange sorted DESC", q("lastStatusChange", ms(resolvedFrom), "sortBy", "lastStatusChange", "sortOrder", "DESC"), "a@free.example,c@free.example"},
		{"lastStatusChange, at mid", q("lastStatusChange", ms(mid)), "a@free.example,c@free.example,d@acme.example,e@free.example"},
		{"created DESC", q("sortOrder", "DESC", "sortBy", "created"), "e@free.example,d@acme.example,c@free.example,b@acme.example,a@free.example"},
		{"created DESC with offset", q("sortOrder", "DESC", "offset", "3"), "b@acme.example,a@free.example"},
		{"both filters", q("after", ms(mid), "lastStatusChange", ms(resolvedFrom)), ""},
		{"by lastStatusChange, all", q("sortBy", "lastStatusChange"), "b@acme.example,d@acme.example,e@free.example,c@free.example,a@free.example"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			items, next := listPage(t, h, tc.path)
			if got := emailsOf(items); got != tc.want {
				t.Errorf("items = %s, want %s", got, tc.want)
			}
			if next != "" {
				t.Errorf("unexpected next link %q", next)
			}
		})
	}
	// A subscriber's own lastStatusChange, sent back, excludes it: "after".
	c := h.get(h.sim.Subscribers()[2].ID)
	if items, _ := listPage(t, h, q("lastStatusChange", c.LastStatusChange)); emailsOf(items) != "a@free.example" {
		t.Errorf("lastStatusChange=%s (c's own) = %s, want a only", c.LastStatusChange, emailsOf(items))
	}
	for _, bad := range []string{
		q("after", "yesterday"), q("after", "2026-05-04"), q("after", "1.5e12"), q("after", "-5"),
		q("lastStatusChange", "2026-05-04 10:00:00Z"), q("lastStatusChange", "99999999999999999999"),
		q("sortBy", "userCreationTimestamp"), q("sortBy", "email"), q("sortOrder", "asc"), q("sortOrder", "up"),
	} {
		wantError(t, h.do(call{method: http.MethodGet, path: bad}), http.StatusBadRequest, 0)
	}
}

// TestListPagingByLastStatusChange follows, as a poller does, the subscribers
// whose status changed since a time, over pages of 100 linked by rel="next".
func TestListPagingByLastStatusChange(t *testing.T) {
	h := newHarness(t, webexsim.Config{})
	const total, resolved = 300, 250
	for i := range total {
		h.mustCreate(customerA, fmt.Sprintf("user%03d@free.example", i))
	}
	time.Sleep(3 * time.Millisecond)
	since := time.Now()
	time.Sleep(3 * time.Millisecond)
	want := map[string]bool{}
	for i := range total {
		if i%6 == 5 { // 50 stay pending
			continue
		}
		email := fmt.Sprintf("user%03d@free.example", i)
		if !h.sim.ResolvePending(email, provisioning.SubscriberProvisioned) {
			t.Fatalf("ResolvePending(%s) = false", email)
		}
		want[email] = true
	}
	if len(want) != resolved {
		t.Fatalf("resolved %d, want %d", len(want), resolved)
	}

	for _, from := range []string{strconv.FormatInt(since.UnixMilli(), 10), since.UTC().Format(time.RFC3339Nano)} {
		t.Run(from, func(t *testing.T) {
			v := url.Values{"lastStatusChange": {from}, "status": {"provisioned"}, "max": {"100"}}
			next := provisioning.PathSubscribers + "?" + v.Encode()
			seen := map[string]bool{}
			var sizes []int
			for next != "" {
				var items []provisioning.Subscriber
				items, next = listPage(t, h, next)
				sizes = append(sizes, len(items))
				for _, s := range items {
					if seen[s.Email] {
						t.Errorf("%s listed twice", s.Email)
					}
					seen[s.Email] = true
					if !want[s.Email] || s.Status != provisioning.SubscriberProvisioned {
						t.Errorf("listed %s in status %s, which did not change since %s", s.Email, s.Status, from)
					}
				}
				if next == "" {
					break
				}
				u, err := url.Parse(next)
				if err != nil || !strings.HasPrefix(next, h.srv.URL+"/") {
					t.Fatalf("next link %q is not an absolute URL of the simulator", next)
				}
				if lq := u.Query(); lq.Get("lastStatusChange") != from || lq.Get("status") != "provisioned" || lq.Get("max") != "100" {
					t.Errorf("next link %q does not keep the filters", next)
				}
				if len(sizes) > 5 {
					t.Fatal("too many pages")
				}
			}
			if !slices.Equal(sizes, []int{100, 100, 50}) || len(seen) != resolved {
				t.Errorf("pages of %v, %d subscribers; want 100, 100, 50 and %d", sizes, len(seen), resolved)
			}
		})
	}
	if got := h.sim.Stats().Count(webexsim.EndpointList, 200); got != 6 {
		t.Errorf("%d list calls counted, want 6", got)
	}
}

func TestFaultsOnChanges(t *testing.T) {
	for _, f := range []webexsim.FaultRates{{Status429: 1}, {Status423: 1}, {Status500: 1}, {Status503: 1}, {Status504: 1}} {
		h := newHarness(t, webexsim.Config{})
		const email = "f@free.example"
		sub := h.mustCreate(customerA, email)
		h.sim.SetFaults(f)
		var status int
		for _, c := range []call{
			{method: http.MethodPut, path: itemPath(sub.ID), body: map[string]any{"packages": []string{"webex_suite"}}},
			{method: http.MethodDelete, path: itemPath(sub.ID)},
			{method: http.MethodPost, path: consentPath(sub.ID)},
		} {
			res := h.do(c)
			if res.status < 423 || res.status == 200 || res.status == 204 {
				t.Fatalf("%+v: %s %s answered %d, want the fault", f, c.method, c.path, res.status)
			}
			wantError(t, res, res.status, 0)
			if status != 0 && res.status != status {
				t.Errorf("%+v: statuses %d and %d", f, status, res.status)
			}
			status = res.status
		}
		h.sim.SetFaults(webexsim.FaultRates{})
		// The faults came before the endpoints acted.
		if got := h.get(sub.ID); !slices.Equal(got.Packages, []string{"webex_calling"}) {
			t.Errorf("%+v: packages %v behind a fault", f, got.Packages)
		}
		if h.sim.UpdateCalls(email)+h.sim.RemoveCalls(email)+h.sim.ConsentMoveCalls(email) != 0 {
			t.Errorf("%+v: calls behind a fault counted as reaching the endpoint", f)
		}
		st := h.sim.Stats()
		if st.InjectedFaults != 3 || st.Count(webexsim.EndpointUpdate, status) != 1 || st.Count(webexsim.EndpointDelete, status) != 1 ||
			st.Count(webexsim.EndpointConsentMove, status) != 1 {
			t.Errorf("%+v: stats = %+v", f, st)
		}
	}
	h := newHarness(t, webexsim.Config{})
	sub := h.mustCreate(customerA, "r@acme.example")
	h.sim.SetFaults(webexsim.FaultRates{Reset: 1})
	for _, c := range []call{
		{method: http.MethodPut, path: itemPath(sub.ID), body: map[string]any{"packages": []string{"webex_suite"}}},
		{method: http.MethodDelete, path: itemPath(sub.ID)},
		{method: http.MethodPost, path: consentPath(sub.ID)},
	} {
		if _, err := h.try(c); err == nil {
			t.Errorf("%s %s: got an answer, want a reset", c.method, c.path)
		}
	}
	h.sim.SetFaults(webexsim.FaultRates{})
	h.get(sub.ID)
}

func TestLostResponseAll(t *testing.T) {
	const email = "lost@acme.example"
	t.Run("creates only by default", func(t *testing.T) {
		h := newHarness(t, webexsim.Config{})
		sub := h.mustCreate(customerA, email)
		pending := h.mustCreate(customerA, "p@free.example")
		h.sim.SetFaults(webexsim.FaultRates{LostResponse: 1})
		if res := h.put(sub.ID, map[string]any{"packages": []string{"webex_suite"}}); res.status != http.StatusOK {
			t.Errorf("PUT: %d, want its answer without LostResponseAll", res.status)
		}
		if res := h.do(call{method: http.MethodPost, path: consentPath(pending.ID)}); res.status != http.StatusNoContent {
			t.Errorf("consentMove: %d", res.status)
		}
		if res := h.do(call{method: http.MethodDelete, path: itemPath(sub.ID)}); res.status != http.StatusNoContent {
			t.Errorf("DELETE: %d", res.status)
		}
		if st := h.sim.Stats(); st.LostResponses != 0 {
			t.Errorf("LostResponses = %d", st.LostResponses)
		}
	})
	t.Run("504", func(t *testing.T) {
		h := newHarness(t, webexsim.Config{})
		sub := h.mustCreate(customerA, email)
		pending := h.mustCreate(customerA, "p@free.example")
		h.sim.SetFaults(webexsim.FaultRates{LostResponse: 1, LostResponseAll: true})

		wantError(t, h.put(sub.ID, map[string]any{"packages": []string{"webex_suite"}}), http.StatusGatewayTimeout, 0)
		// The careful client looks the subscriber up: the PUT took effect.
		if got := h.get(sub.ID); !slices.Equal(got.Packages, []string{"webex_suite"}) {
			t.Errorf("after a lost PUT: packages %v, want the PUT in effect", got.Packages)
		}
		if calls, ok := h.sim.UpdateCalls(email), h.sim.SuccessfulUpdates(email); calls != 1 || ok != 1 {
			t.Errorf("UpdateCalls = %d, SuccessfulUpdates = %d; want 1 and 1", calls, ok)
		}
		// Reads, the precheck and consent moves keep their answers.
		if res := h.do(call{method: http.MethodPost, path: consentPath(pending.ID)}); res.status != http.StatusNoContent {
			t.Errorf("consentMove: %d", res.status)
		}
		if res := h.do(call{method: http.MethodPost, path: provisioning.PathValidate, body: provisioning.PrecheckRequest{Email: "x@acme.example"}}); res.status != http.StatusOK {
			t.Errorf("precheck: %d", res.status)
		}

		wantError(t, h.do(call{method: http.MethodDelete, path: itemPath(sub.ID)}), http.StatusGatewayTimeout, 0)
		items, _ := listPage(t, h, provisioning.PathSubscribers+"?email="+email)
		if len(items) != 0 {
			t.Errorf("after a lost DELETE: lookup found %+v, want it removed", items)
		}
		// A blind retry is lost too (its 404), and removes nothing more.
		wantError(t, h.do(call{method: http.MethodDelete, path: itemPath(sub.ID)}), http.StatusGatewayTimeout, 0)
		if calls, removes := h.sim.RemoveCalls(email), h.sim.SuccessfulRemoves(email); calls != 2 || removes != 1 {
			t.Errorf("RemoveCalls = %d, SuccessfulRemoves = %d; want 2 and 1", calls, removes)
		}
		if st := h.sim.Stats(); st.LostResponses != 3 || st.Count(webexsim.EndpointDelete, 504) != 2 || st.Count(webexsim.EndpointUpdate, 504) != 1 {
			t.Errorf("stats = %+v", st)
		}
	})
	t.Run("reset", func(t *testing.T) {
		h := newHarness(t, webexsim.Config{})
		sub := h.mustCreate(customerA, email)
		h.sim.SetFaults(webexsim.FaultRates{LostResponse: 1, LostResponseAll: true, LostResponseAsReset: true})
		if _, err := h.try(call{method: http.MethodPut, path: itemPath(sub.ID), body: map[string]any{"packages": []string{"webex_voice"}}}); err == nil {
			t.Fatal("PUT: got an answer, want a reset")
		}
		if _, err := h.try(call{method: http.MethodDelete, path: itemPath(sub.ID)}); err == nil {
			t.Fatal("DELETE: got an answer, want a reset")
		}
		if h.sim.SuccessfulUpdates(email) != 1 || h.sim.SuccessfulRemoves(email) != 1 || len(h.sim.Subscribers()) != 0 {
			t.Errorf("updates %d, removes %d, %d subscribers: want the lost calls in effect",
				h.sim.SuccessfulUpdates(email), h.sim.SuccessfulRemoves(email), len(h.sim.Subscribers()))
		}
		// Settable over the admin endpoint.
		res := h.do(call{method: http.MethodPut, path: h.srv.URL + "/_sim/faults", body: `{"lostResponse":0.5,"lostResponseAll":true}`, token: strp("")})
		if res.status != http.StatusOK || !h.sim.Faults().LostResponseAll {
			t.Errorf("PUT /_sim/faults: %d %s", res.status, res.body)
		}
	})
}

func TestConfigValidateChanges(t *testing.T) {
	bad := map[string]webexsim.Config{
		"negative update delay":          {UpdateDelay: -1},
		"negative resolve delay":         {PendingResolveDelay: -time.Second},
		"accept is the pending default":  {AcceptDomain: "free.example"},
		"decline is the error default":   {DeclineDomain: "Error.Example"},
		"accept and decline":             {AcceptDomain: "x.example", DeclineDomain: "X.example "},
		"pending and accept, configured": {PendingMigrationDomain: "p.example", AcceptDomain: "p.example"},
	}
	for name, cfg := range bad {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, cfg)
		}
	}
	ok := webexsim.Config{AcceptDomain: "accepts.example", DeclineDomain: "migration-fails.example", PendingResolveDelay: time.Second, UpdateDelay: time.Second}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", ok, err)
	}
}

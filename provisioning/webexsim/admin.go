package webexsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/acme-sp/wholesale-provisioner/provisioning"
)

// adminPrefix is where the admin endpoints live, outside the API base path.
const adminPrefix = "/_sim/"

// shutdownKey is the request context key of the context whose end starts the
// shutdown of Serve.
type shutdownKey struct{}

// shutdownGrace bounds how long Serve waits for calls in progress when its
// context ends; calls held by the Timeout fault are cut off after it.
const shutdownGrace = 5 * time.Second

// serveAdmin serves the admin endpoints, for tests that run the simulator in
// another process. They take no token, no latency and no faults, and are not
// counted in Stats:
//
//	GET  /_sim/healthz      200 {"status":"ok"}
//	GET  /_sim/stats        200 Stats
//	POST /_sim/reset        204, as Reset
//	GET  /_sim/faults       200 FaultRates
//	PUT  /_sim/faults       FaultRates → 200 FaultRates, as SetFaults
//	PUT  /_sim/token        {"token":"..."} → 204, as SetToken
//	PUT  /_sim/latency      {"latency":"50ms"} → 204, as SetLatency
//	GET  /_sim/subscribers  200 {"items":[...]}, as Subscribers
//	POST /_sim/resolve      {"email":"...","status":"provisioned"|"error"} → 204,
//	                        as ResolvePending; 404 when no subscriber of that
//	                        email is pending
//	GET  /_sim/customers    200 {"items":[...]}, as Customers
//	POST /_sim/resolve-customer
//	                        {"externalId":"...","status":"provisioned"|
//	                        "provisioned_with_errors"|"error"} → 204, as
//	                        ResolveCustomer; 404 when no customer of that
//	                        externalId is provisioning or in review
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	type route struct{ method, path string }
	switch (route{r.Method, r.URL.Path}) {
	case route{http.MethodGet, adminPrefix + "healthz"}:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	case route{http.MethodGet, adminPrefix + "stats"}:
		writeJSON(w, http.StatusOK, s.Stats())
	case route{http.MethodPost, adminPrefix + "reset"}:
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	case route{http.MethodGet, adminPrefix + "faults"}:
		writeJSON(w, http.StatusOK, s.Faults())
	case route{http.MethodPut, adminPrefix + "faults"}:
		var f FaultRates
		if err := decodeAdmin(r, &f); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		if err := f.Validate(); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.SetFaults(f)
		writeJSON(w, http.StatusOK, s.Faults())
	case route{http.MethodPut, adminPrefix + "token"}:
		var body struct {
			Token *string `json:"token"`
		}
		if err := decodeAdmin(r, &body); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		if body.Token == nil {
			adminError(w, http.StatusBadRequest, `the body must be {"token":"..."}; "" accepts any token`)
			return
		}
		s.SetToken(*body.Token)
		w.WriteHeader(http.StatusNoContent)
	case route{http.MethodPut, adminPrefix + "latency"}:
		var body struct {
			Latency string `json:"latency"`
		}
		if err := decodeAdmin(r, &body); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		d, err := time.ParseDuration(body.Latency)
		if err != nil || d < 0 {
			adminError(w, http.StatusBadRequest, `the body must be {"latency":"<Go duration, e.g. 50ms>"}`)
			return
		}
		s.SetLatency(d)
		w.WriteHeader(http.StatusNoContent)
	case route{http.MethodGet, adminPrefix + "subscribers"}:
		writeJSON(w, http.StatusOK, provisioning.SubscriberList{Items: s.Subscribers()})
	case route{http.MethodPost, adminPrefix + "resolve"}:
		var body struct {
			Email  string `json:"email"`
			Status string `json:"status"`
		}
		if err := decodeAdmin(r, &body); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		if _, ok := resolution(body.Status); !ok || body.Email == "" {
			adminError(w, http.StatusBadRequest, `the body must be {"email":"...","status":"provisioned" or "error"}`)
			return
		}
		if !s.ResolvePending(body.Email, body.Status) {
			adminError(w, http.StatusNotFound, "no subscriber of this email waits on its end user")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case route{http.MethodGet, adminPrefix + "customers"}:
		writeJSON(w, http.StatusOK, provisioning.CustomerList{Items: s.Customers()})
	case route{http.MethodPost, adminPrefix + "resolve-customer"}:
		var body struct {
			ExternalID string `json:"externalId"`
			Status     string `json:"status"`
		}
		if err := decodeAdmin(r, &body); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		if !customerResolution(body.Status) || body.ExternalID == "" {
			adminError(w, http.StatusBadRequest,
				`the body must be {"externalId":"...","status":"provisioned", "provisioned_with_errors" or "error"}`)
			return
		}
		if !s.ResolveCustomer(body.ExternalID, body.Status) {
			adminError(w, http.StatusNotFound, "no customer of this externalId is provisioning or waits on its review")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		adminError(w, http.StatusNotFound, "no such admin endpoint or method")
	}
}

// decodeAdmin decodes a small JSON admin body strictly, so that a misspelt
// field is an error rather than a silent zero.
func decodeAdmin(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding the body: %w", err)
	}
	return nil
}

func adminError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, provisioning.ErrorBody{Message: msg})
}

// ListenAndServe serves s on addr until ctx is done, then shuts down
// gracefully: it stops accepting connections and waits up to 5 seconds for the
// calls in progress. It returns nil after a shutdown caused by ctx.
func ListenAndServe(ctx context.Context, addr string, s *Server) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	return Serve(ctx, ln, s)
}

// Serve is ListenAndServe on a listener the caller opened, e.g. on port 0 to
// learn the address before serving. It closes ln.
func Serve(ctx context.Context, ln net.Listener, s *Server) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		// Calls held by the Timeout fault end when ctx does, so that shutdown does
		// not wait for them; other calls, and their latency, complete normally.
		BaseContext: func(net.Listener) context.Context {
			return context.WithValue(context.Background(), shutdownKey{}, ctx)
		},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving the webex simulator: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Calls still running after the grace period are cut off: closing their
		// connections ends their request contexts, so their handlers return.
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving the webex simulator: %w", err)
	}
	return nil
}

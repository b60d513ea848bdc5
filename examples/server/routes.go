package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/tenancy"
)

// route is one registered pattern; the OpenAPI test compares them with the
// document.
type route struct {
	Method, Path string
	Console      bool
}

type access int

const (
	public access = iota // no credentials
	member               // a bearer access token or API key
)

// apiHandler is an API handler: an error is answered in the API's shape.
type apiHandler func(w http.ResponseWriter, r *http.Request) error

//go:embed openapi.yaml
var openapiYAML []byte

func (a *app) buildRoutes() error {
	if _, err := queryParams(); err != nil {
		return err
	}
	a.mux = http.NewServeMux()
	// Operations.
	a.api("GET /healthz", public, a.healthz)
	a.api("GET /readyz", public, a.readyz)
	a.api("GET /openapi.yaml", public, func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/yaml")
		_, err := w.Write(openapiYAML)
		return err
	})
	a.api("GET /v1/sandbox", public, a.sandboxInfo)

	// Sign-up, sessions, API keys.
	a.api("POST /v1/signup", public, a.signup)
	a.api("POST /v1/login", public, a.login)
	a.api("POST /v1/token/refresh", public, a.refresh)
	a.api("POST /v1/logout", member, a.logout)
	a.api("GET /v1/me", member, a.me)
	a.api("GET /v1/api-keys", member, a.listAPIKeys)
	a.api("POST /v1/api-keys", member, a.createAPIKey)
	a.api("DELETE /v1/api-keys/{id}", member, a.revokeAPIKey)

	// Tenant.
	a.api("GET /v1/tenant", member, a.getTenant)
	a.api("POST /v1/tenant/close", member, a.closeTenant)
	a.api("POST /v1/tenant/reopen", member, a.reopenTenant)
	a.api("GET /v1/audit", member, a.auditLog)

	// Connections and TikTok.
	a.api("GET /v1/connections", member, a.listConnections)
	a.api("GET /v1/connections/{id}", member, a.getConnection)
	a.api("DELETE /v1/connections/{id}", member, a.disconnect)
	a.api("POST /v1/connections/tiktok/start", member, a.tiktokStart)
	a.api("POST /v1/connections/tiktok/complete", member, a.tiktokComplete)
	a.api("POST /v1/connections/{id}/sync", member, a.tiktokSync)
	a.api("GET /v1/connections/{id}/insights", member, a.insights)
	a.api("POST /v1/connections/{id}/tiktok/publish", member, a.tiktokPublish)
	a.api("GET /v1/connections/{id}/tiktok/publish/{publish_id}", member, a.tiktokPublishStatus)
	a.api("POST /v1/sandbox/tiktok/deauthorize", member, a.sandboxTikTokDeauthorize)
	a.api("POST /v1/connections/meta/start", member, a.metaStart)
	a.api("POST /v1/connections/meta/complete", member, a.metaComplete)
	a.api("POST /v1/connections/{id}/meta/publish", member, a.metaPublish)
	a.mux.Handle("POST /webhooks/tiktok", edgeErrors(a.tiktokWebhook(), false))
	a.routes = append(a.routes, route{Method: "POST", Path: "/webhooks/tiktok"})

	// CRM records and the Messenger inbox.
	a.crmRoutes()
	a.api("GET /v1/conversations", member, a.listConversations)
	a.api("GET /v1/conversations/{id}/messages", member, a.conversationMessages)
	a.api("POST /v1/conversations/{id}/reply", member, a.replyConversation)
	a.api("POST /v1/sandbox/meta/message", member, a.sandboxMetaMessage)
	mw, err := a.metaWebhook()
	if err != nil {
		return err
	}
	a.mux.Handle("GET /webhooks/meta", edgeErrors(mw, false))
	a.mux.Handle("POST /webhooks/meta", edgeErrors(mw, false))
	a.routes = append(a.routes, route{Method: "GET", Path: "/webhooks/meta"}, route{Method: "POST", Path: "/webhooks/meta"})
	// Meta's Deauthorize and Data Deletion Request callbacks.
	if a.callbacks, err = a.sdk.MetaCallbacks(a.plat.metaCfg, a.publicURL+"/meta/deletion-status", meta.WithLogger(a.log)); err != nil {
		return err
	}
	a.mux.Handle("POST /webhooks/meta/deauthorize", edgeErrors(a.callbacks.DeauthorizeHandler(), false))
	a.mux.Handle("POST /webhooks/meta/data-deletion", edgeErrors(a.callbacks.DataDeletionHandler(), false))
	a.mux.Handle("GET /meta/deletion-status", edgeErrors(a.callbacks.DeletionStatusHandler(), true))
	a.routes = append(a.routes, route{Method: "POST", Path: "/webhooks/meta/deauthorize"},
		route{Method: "POST", Path: "/webhooks/meta/data-deletion"}, route{Method: "GET", Path: "/meta/deletion-status"})

	// Data-subject requests and the data map.
	a.api("GET /v1/privacy/requests", member, a.listRequests)
	a.api("POST /v1/privacy/requests", member, a.createRequest)
	a.api("GET /v1/privacy/requests/{id}", member, a.getRequest)
	a.api("POST /v1/privacy/requests/{id}/verify", member, a.verifyRequest)
	a.api("GET /v1/privacy/requests/{id}/export", member, a.exportRequest)
	a.api("POST /v1/privacy/requests/{id}/erase", member, a.eraseRequest)
	a.api("GET /v1/privacy/datamap", member, a.dataMap)

	a.metricsRoute()
	return a.consoleRoutes()
}

// closedOK are the routes a signed-in member of a closed tenant may still
// use: to see the tenant, reopen it (owners) and sign out. Every other
// route refuses a closed tenant's sessions at once.
var closedOK = map[string]bool{"GET /v1/me": true, "GET /v1/tenant": true, "POST /v1/tenant/reopen": true,
	"POST /v1/logout": true, "GET /console/{$}": true, "POST /console/tenant/reopen": true, "POST /console/logout": true,
	// Sent again once closed (a double click): says it is closed.
	"POST /console/tenant/close": true}

// errTenantClosed answers a closed tenant's requests.
var errTenantClosed = &apiError{Status: http.StatusForbidden, Code: "tenant_closed",
	Message: "the tenant is closed: an owner may reopen it before it is purged"}

// api registers an API route. It refuses query parameters the OpenAPI
// document does not list for the operation, and NUL characters in the
// query or the path, before the handler runs.
func (a *app) api(pattern string, acc access, h apiHandler) {
	method, path, _ := strings.Cut(pattern, " ")
	a.routes = append(a.routes, route{Method: method, Path: path})
	params, _ := queryParams() // buildRoutes checked the error
	allowed := params[pattern]
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := checkQuery(r, allowed); err != nil {
			writeError(w, r, a.log, err)
			return
		}
		if acc == member {
			p, sid, err := a.bearer(r)
			if err != nil {
				writeError(w, r, a.log, err)
				return
			}
			ctx := withSession(tenancy.WithPrincipal(r.Context(), p), sid)
			// API keys of a closed tenant are refused by tenancy; a
			// session's tenant is checked here, on every request.
			if sid != "" && !closedOK[pattern] {
				if err := a.tenantActive(ctx); err != nil {
					writeError(w, r, a.log, err)
					return
				}
			}
			r = r.WithContext(ctx)
		}
		if err := h(w, r); err != nil {
			writeError(w, r, a.log, err)
		}
	})
}

// bearer authenticates an API request: an access token from sign-in (whose
// session must still be live) or an API key, in the Authorization header
// (never in a cookie: API routes are not reachable by cross-site forms). It
// returns the session id, "" for an API key.
func (a *app) bearer(r *http.Request) (tenancy.Principal, string, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return tenancy.Principal{}, "", errUnauthorized
	}
	if strings.HasPrefix(tok, "at1.") {
		c, ok := a.tokens.verifyAccess(tok)
		if !ok {
			return tenancy.Principal{}, "", errUnauthorized
		}
		live, err := a.tokens.live(r.Context(), c)
		if err != nil {
			return tenancy.Principal{}, "", err
		}
		if !live {
			return tenancy.Principal{}, "", errUnauthorized
		}
		return c.principal(), c.Session, nil
	}
	p, err := a.sdk.Tenants.AuthenticateAPIKey(r.Context(), tok)
	if err != nil {
		return tenancy.Principal{}, "", errUnauthorized
	}
	return p, "", nil
}

// tenantActive refuses a closed (or purged) tenant.
func (a *app) tenantActive(ctx context.Context) error {
	t, err := a.sdk.Tenants.Tenant(ctx)
	if err != nil {
		if errors.Is(err, tenancy.ErrNotFound) {
			return errUnauthorized
		}
		return err
	}
	if t.Status != tenancy.StatusActive {
		return errTenantClosed
	}
	return nil
}

// checkQuery refuses query parameters outside allowed, all named at once,
// and NUL characters in the query or the path.
func checkQuery(r *http.Request, allowed map[string]bool) error {
	var v validator
	if strings.IndexByte(r.URL.Path, 0) >= 0 {
		v.check(false, "path", nulProblem)
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		v.check(false, "query", "malformed query string")
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		switch {
		case !allowed[k]:
			v.check(false, k, "unknown query parameter")
		case strings.IndexByte(k, 0) >= 0 || slices.ContainsFunc(q[k], func(s string) bool { return strings.IndexByte(s, 0) >= 0 }):
			v.check(false, k, nulProblem)
		}
	}
	return v.err()
}

// queryParams are the query parameters of each operation in the OpenAPI
// document, by route pattern ("GET /v1/contacts").
var queryParams = sync.OnceValues(func() (map[string]map[string]bool, error) {
	type param struct {
		Name string `yaml:"name"`
		In   string `yaml:"in"`
		Ref  string `yaml:"$ref"`
	}
	var doc struct {
		Paths      map[string]map[string]yaml.Node `yaml:"paths"`
		Components struct {
			Parameters map[string]param `yaml:"parameters"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(openapiYAML, &doc); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	add := func(set map[string]bool, ps []param) {
		for _, p := range ps {
			if p.Ref != "" {
				p = doc.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
			}
			if p.In == "query" {
				set[p.Name] = true
			}
		}
	}
	out := map[string]map[string]bool{}
	for path, item := range doc.Paths {
		var shared []param
		if n, ok := item["parameters"]; ok {
			if err := n.Decode(&shared); err != nil {
				return nil, fmt.Errorf("openapi.yaml: %s: %w", path, err)
			}
		}
		for method, n := range item {
			if method == "parameters" {
				continue
			}
			var op struct {
				Parameters []param `yaml:"parameters"`
			}
			if err := n.Decode(&op); err != nil {
				return nil, fmt.Errorf("openapi.yaml: %s %s: %w", method, path, err)
			}
			set := map[string]bool{}
			add(set, shared)
			add(set, op.Parameters)
			out[strings.ToUpper(method)+" "+path] = set
		}
	}
	return out, nil
})

// middleware logs each request and sets the headers every answer carries.
func (a *app) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Socialcrm-Mode", a.modeHeader())
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		lvl := slogLevel(rec.status)
		a.log.Log(r.Context(), lvl, "request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration_ms", time.Since(start).Milliseconds())
	})
}

// serve dispatches to the routes; an unknown path or method outside the
// console is answered in the API's error shape (ServeMux's own answers are
// plain text).
func (a *app) serve(w http.ResponseWriter, r *http.Request) {
	h, pattern := a.mux.Handler(r)
	if pattern != "" || strings.HasPrefix(r.URL.Path, "/console/") || strings.HasPrefix(r.URL.Path, "/connect/") {
		a.mux.ServeHTTP(w, r)
		return
	}
	c := &discardWriter{header: http.Header{}}
	h.ServeHTTP(c, r)
	if c.status == http.StatusMethodNotAllowed {
		allow := c.header.Get("Allow")
		w.Header().Set("Allow", allow)
		writeAPIError(w, r, &apiError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
			Message: r.Method + " is not allowed here; allowed: " + allow})
		return
	}
	writeAPIError(w, r, &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "no such route: " + r.Method + " " + r.URL.Path})
}

// discardWriter notes the status and headers of ServeMux's own 404 and 405.
type discardWriter struct {
	header http.Header
	status int
}

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(code int)        { d.status = code }

func (a *app) modeHeader() string {
	return "tiktok=" + mode(a.plat.tiktokSandbox) + "; meta=" + mode(a.plat.metaSandbox)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (a *app) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "mode": a.modes()})
	return nil
}

func (a *app) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.db.PingContext(ctx); err != nil {
		a.log.WarnContext(ctx, "not ready", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "database unreachable"})
		return nil
	}
	last := a.jobReport()
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "mode": a.modes(), "jobs": last})
	return nil
}

func (a *app) modes() map[string]string {
	return map[string]string{"tiktok": mode(a.plat.tiktokSandbox), "meta": mode(a.plat.metaSandbox)}
}

// sandboxInfo tells a client which platforms are emulated and which
// accounts their consent pages offer.
func (a *app) sandboxInfo(w http.ResponseWriter, r *http.Request) error {
	out := map[string]any{"mode": a.modes()}
	if a.plat.tiktokSandbox {
		out["tiktok_accounts"] = []string{sandboxCreator, sandboxBrand}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

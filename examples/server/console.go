package main

import (
	"bytes"
	"cmp"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/inbox"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
)

// The console is server-rendered HTML: no scripts, no external assets, no
// build step. It signs in with cookies (HttpOnly, SameSite=Lax — Lax so
// that the platform's OAuth redirect back to /connect/…/callback carries
// them — and Secure when the server is reached over https) and refuses
// cross-origin form posts with net/http's CrossOriginProtection (the
// browser's Sec-Fetch-Site and Origin headers), so forms carry no token.

//go:embed console/*.html
var consoleFS embed.FS

const (
	cookieAccess  = "sc_at"
	cookieRefresh = "sc_rt"
	// cookieFlash carries the message the page after a redirect shows,
	// signed; messages never come from the URL.
	cookieFlash = "sc_flash"
)

// page is what every console template receives.
type page struct {
	Title  string
	Mode   map[string]string
	Signed bool
	Tenant tenancy.Tenant
	Role   tenancy.Role
	// CSRF is always empty: CrossOriginProtection guards the forms; the
	// templates' hidden csrf inputs are left over and may go.
	CSRF    string
	Flash   string
	Error   *apiError
	Data    any
	NowYear int
	// Form is what a POST sent: the page shown again after a validation
	// error keeps what was typed (never a password: no template reads one).
	Form url.Values
	// Path is the request's path, for the navigation's current page.
	Path string
	// requestID is the request's id, shown with an error to quote when
	// asking for help.
	requestID string
}

// Sent returns what the form posting to action sent when this page
// answers that form (shown again after a validation error), nil
// otherwise: a page of several forms refills only the one sent, not
// another with a field of the same name.
func (p *page) Sent(action string) url.Values {
	if p.Path != action {
		return nil
	}
	return p.Form
}

// Active reports whether the signed-in tenant is open: a closed tenant's
// pages show no links that would only answer "closed".
func (p *page) Active() bool { return p.Signed && p.Tenant.Status == tenancy.StatusActive }

// DecidesRequests reports whether the signed-in member may verify a
// data-subject request's identity and erase (an owner or admin, as the
// retention engine requires): other members see no such buttons.
func (p *page) DecidesRequests() bool {
	return p.Role == tenancy.RoleOwner || p.Role == tenancy.RoleAdmin
}

type consoleHandler func(w http.ResponseWriter, r *http.Request, p *page) error

func (a *app) consoleTemplates() (*template.Template, error) {
	return template.New("console").Funcs(template.FuncMap{
		"date":         func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
		"formKey":      randomToken,
		"passwordHint": func() string { return passwordHint },
		"day":          func(t time.Time) string { return t.UTC().Format("2006-01-02") },
		"trend":        trendChart,
		"bars":         barChart,
		"percent":      func(f float64) string { return fmt.Sprintf("%.1f%%", f*100) },
		"join":         strings.Join,
		"scopes":       func(s social.Scopes) string { return s.Join(" ") },
		"daysLeft":     func(t time.Time) int { return int(time.Until(t).Hours() / 24) },
		"subject":      subjectString,
		"kindLabel":    kindLabel,
		"fieldLabel":   fieldLabel,
		"money":        money,
		"isSandbox":    func(m map[string]string, k string) bool { return m[k] == "sandbox" },
		"navItems":     navFor,
		"navCurrent":   navCurrent,
		"connKind":     connKind,
		"scopeSummary": scopeSummary,
		"privacyLabel": privacyLabel,
		"contactName":  contactName,
		"stages":       contactStages,
		"moneyInput":   moneyInput,
		"sub":          func(x, y int64) int64 { return x - y },
		"list":         func(s ...string) []string { return s },
	}).ParseFS(consoleFS, "console/*.html")
}

// fieldLabels name the fields of the console's forms as their labels do,
// for the error box (which also shows the field's code, as the API names
// it).
var fieldLabels = map[string]string{
	"tenant_name": "Organization", "name": "Name", "email": "E-mail", "password": "Password",
	"first_name": "First name", "last_name": "Last name", "phone": "Phone", "tags": "Tags", "stage": "Stage",
	"subject.email": "E-mail address", "subject.phone": "Phone number", "subject": "Identifier", "kind": "Right exercised",
	"client_id": "Client", "client_name": "New client's name", "role": "Role", "file": "CSV file", "q": "Search",
	"confirm": "Confirmation", "title": "Title", "amount": "Amount", "currency": "Currency", "due": "Due",
	"privacy_level": "Who can see this video", "video": "Video file",
	"quantity": "Quantity", "unit_price": "Unit price", "tax_rate": "Tax rate", "description": "Line: description",
	"number": "Number", "body": "Text", "text": "Message", "stages": "Stages", "version": "Version",
	"outcome": "Identity", "on_match": "When a row matches", "action": "Consent", "channel": "Channel", "purpose": "Purpose",
	"source": "How it was given", "message": "Message", "link": "Link", "image_url": "Image URL", "caption": "Caption",
	"duplicate": "Duplicate", "contact_id": "Contact", "pipeline_id": "Pipeline", "subject_value": "Identifier",
	"subject_kind": "Identify the person by", "form_key": "Form",
}

func fieldLabel(field string) string { return fieldLabels[field] }

// kindLabel names an identifier kind for the privacy form.
func kindLabel(kind string) string {
	if l, ok := map[string]string{
		crm.SubjectEmail:         "e-mail address",
		crm.SubjectPhone:         "phone number",
		crm.SubjectThread:        "Messenger PSID or Instagram-scoped id",
		inbox.SubjectUserRef:     "Messenger user_ref of a website plugin guest",
		social.SubjectOpenID:     "TikTok open_id",
		social.SubjectAccount:    "platform account id (Meta app-scoped id, TikTok open_id)",
		crm.SubjectContact:       "contact id",
		social.SubjectConnection: "connection id",
		crm.SubjectConversation:  "conversation id",
		crm.SubjectInvoice:       "invoice number's id (the invoice's recipient)",
		crm.SubjectClientContact: "client id, for its billing contact details only",
		"client_id":              "client id (a client organization's records)",
		retention.SubjectMember:  "team member id",
	}[kind]; ok {
		return l + " (" + kind + ")"
	}
	return kind
}

// subjectString shows a request's identifiers: the kinds only, for the
// values are stored sealed (retention.WithIdentifierProtection).
func subjectString(r retention.Request) string {
	if len(r.Subject) > 0 {
		parts := make([]string, 0, len(r.Subject))
		for k, v := range r.Subject {
			parts = append(parts, k+": "+v)
		}
		return strings.Join(parts, ", ")
	}
	return strings.Join(r.IdentifierKinds, ", ") + " (sealed)"
}

// consoleRoutes registers the console's pages and forms.
func (a *app) consoleRoutes() error {
	tmpl, err := a.consoleTemplates()
	if err != nil {
		return fmt.Errorf("console templates: %w", err)
	}
	a.consoleTmpl = tmpl
	a.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
	})
	a.routes = append(a.routes, route{Method: "GET", Path: "/{$}", Console: true})
	a.page("GET /console/login", public, "login", func(w http.ResponseWriter, r *http.Request, p *page) error { return nil })
	a.page("POST /console/login", public, "login", a.consoleLogin)
	a.page("POST /console/login/pick", public, "login", a.consolePick)
	a.page("GET /console/signup", public, "signup", func(w http.ResponseWriter, r *http.Request, p *page) error { return nil })
	a.page("POST /console/signup", public, "signup", a.consoleSignup)
	a.page("POST /console/logout", member, "", a.consoleLogout)
	a.page("GET /console/{$}", member, "home", a.consoleHome)
	a.page("GET /console/connections", member, "connections", a.consoleConnections)
	a.page("POST /console/connect/tiktok", member, "", a.consoleConnectTikTok)
	a.page("GET /connect/tiktok/callback", member, "connections", a.consoleTikTokCallback)
	a.page("POST /console/connect/meta", member, "", a.consoleConnectMeta)
	a.page("GET /connect/meta/callback", member, "connections", a.consoleMetaCallback)
	a.form("POST /console/connections/{id}/meta/publish", member, "connection", "/console/connections/{id}", a.consoleMetaPublish)
	a.page("GET /console/connections/{id}", member, "connection", a.consoleConnection)
	a.form("POST /console/connections/{id}/sync", member, "connection", "/console/connections/{id}", a.consoleSync)
	a.page("POST /console/connections/{id}/publish", member, "connection", a.consolePublish)
	a.form("POST /console/connections/{id}/disconnect", member, "connection", "/console/connections", a.consoleDisconnect)
	a.page("GET /console/privacy", member, "privacy", a.consolePrivacy)
	a.form("POST /console/privacy/requests", member, "privacy", "/console/privacy", a.consoleCreateRequest)
	a.form("POST /console/privacy/requests/{id}/verify", member, "privacy", "/console/privacy", a.consoleVerify)
	a.form("POST /console/privacy/requests/{id}/erase", member, "privacy", "/console/privacy", a.consoleErase)
	a.page("GET /console/privacy/requests/{id}/export", member, "privacy", a.consoleExport)
	a.page("GET /console/datamap", member, "datamap", a.consoleDataMap)
	a.form("POST /console/tenant/close", member, "settings", "/console/", a.consoleCloseTenant)
	a.form("POST /console/tenant/reopen", member, "home", "/console/", a.consoleReopenTenant)
	a.consoleCRMRoutes()
	a.consoleBillingRoutes()
	a.page("GET /console/settings", member, "settings", a.consoleSettings)
	a.page("GET /console/team", member, "team", a.consoleTeam)
	a.form("POST /console/team", member, "team", "/console/team", a.consoleAddMember)
	a.form("POST /console/team/{id}/role", member, "team", "/console/team", a.consoleSetRole)
	a.form("POST /console/team/{id}/remove", member, "team", "/console/team", a.consoleRemoveMember)
	a.page("GET /console/keys", member, "keys", a.consoleKeys)
	a.form("POST /console/keys", member, "keys", "/console/keys", a.consoleCreateKey)
	a.form("POST /console/keys/{id}/revoke", member, "keys", "/console/keys", a.consoleRevokeKey)
	// Any other console path or method: a 404 inside the layout.
	a.page("/console/", member, "error", func(w http.ResponseWriter, r *http.Request, p *page) error {
		p.Title = "Not found"
		return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "There is no such page."}
	})
	// The fallback is no operation of its own: /console/ is the overview's.
	a.routes = a.routes[:len(a.routes)-1]
	return nil
}

// page registers a console route rendering template name with the data
// the handler leaves in p (a handler that redirected renders nothing).
func (a *app) page(pattern string, acc access, name string, h consoleHandler) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "", pattern
	}
	a.routes = append(a.routes, route{Method: method, Path: path, Console: true})
	// The template rendered after the handler: set once here, for the
	// handler runs on many goroutines at once.
	tmplName := name
	if tmplName == "" {
		tmplName = "error"
	}
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self' "+a.formTargets()+"; frame-ancestors 'none'")
		w.Header().Set("Cache-Control", "no-store")
		p := &page{Mode: a.modes(), NowYear: time.Now().Year(), Path: r.URL.Path, requestID: requestID(r.Context())}
		if err := a.crossOrigin.Check(r); err != nil {
			a.render(w, http.StatusForbidden, "error", p, &apiError{Status: http.StatusForbidden, Code: "cross_origin",
				Message: "the form was sent from another site than " + a.publicURL + "; open the console there and try again"})
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxVideo+1<<20)
			// Parse the form now: the handlers and the kept input read r.Form.
			_ = r.ParseMultipartForm(32 << 20)
		}
		if prin, sid, ok := a.consoleSession(w, r); ok {
			r = r.WithContext(withSession(tenancy.WithPrincipal(r.Context(), prin), sid))
			p.Signed, p.Role = true, prin.Role
			if t, err := a.sdk.Tenants.Tenant(r.Context()); err == nil {
				p.Tenant = t
			}
			// A closed tenant's members see the overview (with the reopen
			// button) and may sign out; nothing else.
			if acc == member && p.Tenant.Status != tenancy.StatusActive && !closedOK[pattern] {
				a.render(w, errTenantClosed.Status, "error", p, errTenantClosed)
				return
			}
		} else if acc == member {
			// A request that carried a session which is no more (signed
			// out, removed from the team, expired), or a form sent from a
			// page of a session since signed out in another tab, is told
			// why it must sign in; a first visit is not.
			flash := ""
			if pattern == "POST /console/logout" {
				flash = "Signed out." // already, in another tab
			} else if hasSessionCookie(r) || r.Method == http.MethodPost {
				flash = sessionEnded
				if pattern == "POST /console/tenant/close" {
					// Sent twice (a double click): the first closed the
					// organization and may have ended this session.
					flash = cmp.Or(a.closedFlash(r), flash)
				}
			}
			_ = a.seeOther(w, r, "/console/login", flash)
			return
		}
		if r.Method == http.MethodGet {
			p.Flash = a.takeFlash(w, r)
		} else if r.MultipartForm != nil {
			p.Form = r.MultipartForm.Value
		} else {
			p.Form = r.PostForm
		}
		if field := notText(p.Form); field != "" {
			// A NUL or bytes that are not UTF-8 (no browser sends them from
			// a form typed in) never reach a handler or the database.
			a.render(w, http.StatusBadRequest, "error", p, &apiError{Status: http.StatusBadRequest, Code: "invalid",
				Message: "the form holds characters that are not text: open the page again and type it anew",
				Fields:  []fieldProblem{{Field: field, Problem: "holds a NUL character or bytes that are not UTF-8"}}})
			return
		}
		rec := &redirectRecorder{ResponseWriter: w}
		err := h(rec, r, p)
		if rec.done {
			return
		}
		status := http.StatusOK
		var ae *apiError
		if err != nil {
			var ok bool
			if ae, ok = toAPIError(err); !ok {
				a.log.ErrorContext(r.Context(), "console request failed", "path", r.URL.Path, "err", err)
				ae = &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
			}
			status = ae.Status
		}
		a.render(w, status, tmplName, p, ae)
	})
}

// notText returns the first field of form (in name order) whose name or
// value holds a NUL or bytes that are not UTF-8, or "".
func notText(form url.Values) string {
	for _, k := range slices.Sorted(maps.Keys(form)) {
		bad := !utf8.ValidString(k) || strings.ContainsRune(k, 0)
		for _, v := range form[k] {
			bad = bad || !utf8.ValidString(v) || strings.ContainsRune(v, 0)
		}
		if bad {
			return strings.ToValidUTF8(strings.ReplaceAll(k, "\x00", ""), "")
		}
	}
	return ""
}

// formTargets are the consent pages forms may post to (the emulators').
func (a *app) formTargets() string {
	var out []string
	for _, target := range []string{a.plat.tiktokCfg.AuthorizeURL, a.plat.metaCfg.DialogURL} {
		if u, err := url.Parse(target); err == nil && u.Host != "" {
			out = append(out, u.Scheme+"://"+u.Host)
		}
	}
	if a.plat.tiktokCfg.AuthorizeURL == "" {
		out = append(out, "https://www.tiktok.com")
	}
	if a.plat.metaCfg.DialogURL == "" {
		out = append(out, "https://www.facebook.com")
	}
	return strings.Join(out, " ")
}

func (a *app) render(w http.ResponseWriter, status int, name string, p *page, ae *apiError) {
	p.Error = ae
	if ae != nil {
		out := *ae // the shared sentinels stay as they are
		out.RequestID = p.requestID
		if out.Message == errInvalid().Message && len(out.Fields) > 0 {
			// The API's words; a person is told what to do.
			out.Message = "Not saved: correct what is listed below and send again."
		}
		p.Error = &out
	}
	var buf bytes.Buffer
	if err := a.consoleTmpl.ExecuteTemplate(&buf, name, p); err != nil {
		a.log.Error("render", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// redirectRecorder notes that a handler answered by itself (a redirect or
// a download), so the page is not rendered after it.
type redirectRecorder struct {
	http.ResponseWriter
	done bool
}

func (r *redirectRecorder) WriteHeader(code int) { r.done = true; r.ResponseWriter.WriteHeader(code) }
func (r *redirectRecorder) Write(b []byte) (int, error) {
	r.done = true
	return r.ResponseWriter.Write(b)
}
func (r *redirectRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// setCookie sets a console cookie: Secure when the server is reached over
// https (its public URL, or this request's TLS), so that a browser on a
// plain-http LAN address keeps it.
func (a *app) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: int(maxAge / time.Second),
		HttpOnly: true, Secure: a.secureCookies(r), SameSite: http.SameSiteLaxMode})
}

func (a *app) secureCookies(r *http.Request) bool {
	return strings.HasPrefix(a.publicURL, "https://") || r.TLS != nil
}

func (a *app) setSessionCookies(w http.ResponseWriter, r *http.Request, p pair) {
	a.setCookie(w, r, cookieAccess, p.AccessToken, accessTTL)
	a.setCookie(w, r, cookieRefresh, p.RefreshToken, sessionTTL)
}

// consoleSession returns the principal of the console's cookies and its
// session id, rotating the refresh token when the access token has
// expired. A signed-out or revoked session is no session, at once.
func (a *app) consoleSession(w http.ResponseWriter, r *http.Request) (tenancy.Principal, string, bool) {
	if c, err := r.Cookie(cookieAccess); err == nil {
		if claims, ok := a.tokens.verifyAccess(c.Value); ok {
			if live, err := a.tokens.live(r.Context(), claims); err == nil && live {
				return claims.principal(), claims.Session, true
			} else if err != nil {
				a.log.ErrorContext(r.Context(), "console session check failed", "err", err)
				return tenancy.Principal{}, "", false
			}
		}
	}
	c, err := r.Cookie(cookieRefresh)
	if err != nil {
		return tenancy.Principal{}, "", false
	}
	p, err := a.tokens.refresh(r.Context(), c.Value)
	if err != nil {
		// Keep the cookie: a request that lost a refresh race to another
		// tab must not sign that tab out; a dead token just fails again.
		return tenancy.Principal{}, "", false
	}
	a.setSessionCookies(w, r, p)
	claims, _ := a.tokens.verifyAccess(p.AccessToken)
	return claims.principal(), claims.Session, true
}

// sessionEnded is the message of a page or form that needed the session
// its request carried, which has ended.
const sessionEnded = "Sign in again to go on: your session has ended (signed out, maybe in another tab, or expired). A form you sent was not saved."

// hasSessionCookie reports whether r carries a console session cookie.
func hasSessionCookie(r *http.Request) bool {
	for _, name := range []string{cookieAccess, cookieRefresh} {
		if c, err := r.Cookie(name); err == nil && c.Value != "" {
			return true
		}
	}
	return false
}

// seeOther redirects to path after a successful form, leaving flash for
// the next page in a signed cookie.
func (a *app) seeOther(w http.ResponseWriter, r *http.Request, path, flash string) error {
	if flash != "" {
		v := base64.RawURLEncoding.EncodeToString([]byte(truncate(flash, 1000)))
		a.setCookie(w, r, cookieFlash, v+"."+a.tokens.mac("flash."+v), time.Minute)
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
	return nil
}

// takeFlash returns the message a redirect left, and clears it.
func (a *app) takeFlash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(cookieFlash)
	if err != nil {
		return ""
	}
	a.setCookie(w, r, cookieFlash, "", -1)
	v, mac, ok := strings.Cut(c.Value, ".")
	if !ok || subtle.ConstantTimeCompare([]byte(mac), []byte(a.tokens.mac("flash."+v))) != 1 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// confirmed reports whether a destructive form's confirmation box was
// ticked; the form marks it required, the server checks it again.
func confirmed(r *http.Request) error {
	if r.FormValue("confirm") != "yes" {
		return errInvalid(fieldProblem{Field: "confirm", Problem: "tick the box to confirm"})
	}
	return nil
}

// consoleSignup creates an organization once, however often its form is
// sent: a second sending signs in to the organization the first created
// (with the password the form carries), or, while the first is still
// running, sends the person to sign in.
func (a *app) consoleSignup(w http.ResponseWriter, r *http.Request, p *page) error {
	req := signupRequest{TenantName: r.FormValue("tenant_name"), Email: r.FormValue("email"), Name: r.FormValue("name"), Password: r.FormValue("password")}
	p.Data = map[string]string{"tenant_name": req.TenantName, "email": req.Email, "name": req.Name}
	done, tenantID, dup, err := a.claimSignup(r)
	if err != nil {
		return err
	}
	if dup {
		return a.signupSentTwice(w, r, tenantID, req)
	}
	t, _, tok, err := a.signUp(r.Context(), req, r.UserAgent())
	done(t.ID, err)
	if err != nil {
		return err
	}
	a.setSessionCookies(w, r, tok)
	return a.seeOther(w, r, "/console/", "Welcome to "+t.Name+". Next time, sign in with your e-mail and password.")
}

// signupSentTwice answers a sign-up form sent again: signed in to the
// organization the first sending created when the form's password opens
// it, else sent to sign in. Nothing is created.
func (a *app) signupSentTwice(w http.ResponseWriter, r *http.Request, tenantID string, req signupRequest) error {
	const signIn = "Already done: this form was sent twice and creates one organization. Sign in with your e-mail and password."
	if tenantID == "" {
		return a.seeOther(w, r, "/console/login", signIn)
	}
	if ok, err := a.logins.allow(r.Context(), clientIP(r)); err != nil {
		return err
	} else if !ok {
		return errRateLimited
	}
	prin, err := a.sdk.Tenants.Authenticate(r.Context(), tenantID, strings.ToLower(strings.TrimSpace(req.Email)), req.Password,
		tenancy.RequestInfo{IP: clientIP(r), UserAgent: r.UserAgent()})
	if err != nil {
		return a.seeOther(w, r, "/console/login", signIn)
	}
	tok, err := a.tokens.start(r.Context(), prin, r.UserAgent())
	if err != nil {
		return err
	}
	a.setSessionCookies(w, r, tok)
	return a.seeOther(w, r, "/console/", signedUpTwice)
}

func (a *app) consoleLogout(w http.ResponseWriter, r *http.Request, p *page) error {
	if c, err := r.Cookie(cookieAccess); err == nil {
		if claims, ok := a.tokens.verifyAccess(c.Value); ok {
			if err := a.tokens.revoke(r.Context(), claims); err != nil {
				return err
			}
		}
	}
	a.setCookie(w, r, cookieAccess, "", -1)
	a.setCookie(w, r, cookieRefresh, "", -1)
	return a.seeOther(w, r, "/console/login", "Signed out.")
}

func (a *app) consoleHome(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Overview"
	if p.Role == tenancy.RoleClient {
		// A client's member sees its client's proposals and invoices only.
		p.Data = map[string]any{"Client": true}
		return nil
	}
	conns, err := a.connections(r.Context(), social.ConnectionFilter{})
	if err != nil {
		return err
	}
	data := map[string]any{"Connections": conns}
	if p.Tenant.Status == tenancy.StatusActive && p.Staff() {
		if data["Tasks"], err = a.dueTasks(r.Context()); err != nil {
			return err
		}
	}
	if p.Role == tenancy.RoleOwner || p.Role == tenancy.RoleAdmin || p.Role == tenancy.RoleStaff {
		reqs, err := a.requests(r.Context())
		if err != nil {
			return err
		}
		open := 0
		for _, q := range reqs {
			if q.Status == retention.StatusOpen {
				open++
			}
		}
		data["OpenRequests"] = open
	}
	p.Data = data
	return nil
}

func (a *app) consoleCloseTenant(w http.ResponseWriter, r *http.Request, p *page) error {
	if p.Tenant.Status != tenancy.StatusActive {
		// Sent again (a double click, another tab): closed already.
		return a.seeOther(w, r, "/console/", closedAlready(p.Tenant))
	}
	if err := a.consoleSettings(w, r, p); err != nil {
		return err
	}
	if r.FormValue("confirm") != p.Tenant.Name {
		return errInvalid(fieldProblem{Field: "confirm", Problem: "type the organization's name to confirm"})
	}
	t, err := a.sdk.Tenants.CloseTenant(r.Context(), a.sdk.Retention.Policy().ClosureGrace)
	if err != nil {
		return err
	}
	if err := a.tokens.revokeTenant(r.Context(), sessionOf(r.Context())); err != nil {
		return err
	}
	a.schedulePurge(r.Context(), t)
	return a.seeOther(w, r, "/console/", "Closed. Everything is erased after "+t.PurgeAfter.UTC().Format("2006-01-02")+" unless you reopen before.")
}

// closedAlready is the flash of a close form sent to an organization
// closed already.
func closedAlready(t tenancy.Tenant) string {
	return "Already done: the organization is closed. Everything is erased after " + t.PurgeAfter.UTC().Format("2006-01-02") + " unless it is reopened before."
}

// closedFlash is the flash of a close form whose session has ended: when
// the session its cookies name belongs to a closed organization (closed
// by the form's first sending, which ended the other sessions), it says
// so and how to reopen; "" otherwise.
func (a *app) closedFlash(r *http.Request) string {
	tid, ok := a.tokens.sessionTenant(r.Context(), r)
	if !ok {
		return ""
	}
	t, err := a.sdk.Tenants.Tenant(tenancy.WithPrincipal(r.Context(), tenancy.Principal{TenantID: tid}))
	if err != nil || t.Status == tenancy.StatusActive {
		return ""
	}
	return closedAlready(t) + " Sign in to reopen it."
}

func (a *app) consoleReopenTenant(w http.ResponseWriter, r *http.Request, p *page) error {
	if _, err := a.sdk.Tenants.ReopenTenant(r.Context()); err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/", "Reopened.")
}

func (a *app) consoleConnections(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Connected accounts"
	conns, err := a.connections(r.Context(), social.ConnectionFilter{})
	if err != nil {
		return err
	}
	p.Data = map[string]any{"Connections": conns, "Scopes": a.plat.tiktokFlow.Scopes(), "MetaScopes": a.plat.metaFlow.Scopes()}
	return nil
}

func (a *app) consoleConnectTikTok(w http.ResponseWriter, r *http.Request, p *page) error {
	u, err := a.plat.tiktokFlow.Begin(r.Context())
	if err != nil {
		return err
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
	return nil
}

func (a *app) consoleConnectMeta(w http.ResponseWriter, r *http.Request, p *page) error {
	u, err := a.plat.metaFlow.Begin(r.Context())
	if err != nil {
		return err
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
	return nil
}

func (a *app) consoleMetaCallback(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Connected accounts"
	user, pages, err := a.metaConnect(r.Context(), r.URL.Query())
	var scope *social.ScopeError
	if errors.As(err, &scope) && user.ID != "" {
		// The login went through with permissions unticked on the
		// dialog: the Facebook user is connected, no Page could be.
		return a.seeOther(w, r, "/console/connections", fmt.Sprintf("Connected %s on Facebook, but no Page: the permission %s was not granted. "+
			"Connect again and keep it ticked to connect your Pages and their Instagram accounts.", user.DisplayName, scope.Missing.Join(", ")))
	}
	if err != nil {
		return err
	}
	n, ig := 0, 0
	for _, pc := range pages {
		if pc.Err == nil {
			n++
		}
		if pc.Instagram != nil {
			ig++
		}
	}
	return a.seeOther(w, r, "/console/connections", fmt.Sprintf("Connected %s on Facebook: %d Page(s), %d Instagram account(s).", user.DisplayName, n, ig))
}

func (a *app) consoleMetaPublish(w http.ResponseWriter, r *http.Request, p *page) error {
	v, err := a.loadConnection(r, p)
	if err != nil {
		return err
	}
	in := metaPublishInput{Message: strings.TrimSpace(r.FormValue("message")), Link: strings.TrimSpace(r.FormValue("link")),
		ImageURL: strings.TrimSpace(r.FormValue("image_url")), Caption: strings.TrimSpace(r.FormValue("caption"))}
	if _, err := a.publishMeta(r.Context(), v.Connection, in); err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/connections/"+v.Connection.ID, "Published.")
}

func (a *app) consoleTikTokCallback(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Connected accounts"
	c, err := a.plat.tiktokFlow.Complete(r.Context(), r.URL.Query())
	if err != nil {
		return err
	}
	name := c.DisplayName
	if name == "" {
		name = c.AccountID
	}
	return a.seeOther(w, r, "/console/connections/"+c.ID, "Connected "+name+" on TikTok.")
}

type connectionView struct {
	Connection social.Connection
	Instagram  bool
	MetaPage   bool
	Snapshots  []social.Snapshot
	// Latest is the newest snapshot; its counts print "unknown" when the
	// platform did not give them.
	Latest     *social.Snapshot
	Audience   *audienceView
	Media      []social.Media
	Engagement float64
	// Creator is what TikTok says the account may post, asked each time
	// the post form renders; nil hides the form.
	Creator   *tiktok.CreatorInfo
	Publish   *tiktok.PublishStatus
	PublishID string
	// PublishKey is the post form's one-time Idempotency-Key: a resent
	// form never posts twice.
	PublishKey string
	// InDoubt are the connection's publishes whose outcome is unknown.
	InDoubt []publishRecord
}

func (a *app) loadConnection(r *http.Request, p *page) (*connectionView, error) {
	c, err := a.connection(r)
	if err != nil {
		return nil, err
	}
	v := &connectionView{Connection: c, Instagram: isInstagram(c)}
	v.MetaPage = c.Platform == meta.Platform && !v.Instagram && c.Scopes.Has(meta.PermPagesManagePosts)
	p.Title = c.DisplayName
	if p.Title == "" {
		p.Title = c.Platform + " account " + c.AccountID
	}
	p.Data = v
	if v.Snapshots, err = a.sdk.Social.Snapshots(r.Context(), c.ID); err != nil {
		return v, err
	}
	if n := len(v.Snapshots); n > 0 {
		v.Latest = &v.Snapshots[n-1]
	}
	if v.Media, err = a.sdk.Social.Media(r.Context(), c.ID); err != nil {
		return v, err
	}
	v.Engagement = social.EngagementRate(v.Media)
	v.Audience = audienceOf(v.Snapshots)
	return v, nil
}

// audienceView is the latest snapshot's audience demographics: per
// breakdown, its largest values.
type audienceView struct {
	TakenAt    time.Time
	Source     string
	Breakdowns []audienceBreakdown
}

type audienceBreakdown struct {
	Name   string
	Values []audienceValue
}

type audienceValue struct {
	Key   string
	Count int64
}

// audienceShown is how many values of a breakdown the page lists.
const audienceShown = 10

// audienceOf returns the demographics of the latest snapshot that has
// some, nil when none has.
func audienceOf(snaps []social.Snapshot) *audienceView {
	for i := len(snaps) - 1; i >= 0; i-- {
		s := snaps[i]
		if len(s.Breakdowns) == 0 {
			continue
		}
		v := &audienceView{TakenAt: s.TakenAt, Source: s.Source}
		for _, name := range []string{"age", "gender", "country", "city"} {
			vals := s.Breakdowns[name]
			if len(vals) == 0 {
				continue
			}
			b := audienceBreakdown{Name: name}
			for k, n := range vals {
				b.Values = append(b.Values, audienceValue{Key: k, Count: n})
			}
			slices.SortFunc(b.Values, func(x, y audienceValue) int {
				if c := cmp.Compare(y.Count, x.Count); c != 0 {
					return c
				}
				return strings.Compare(x.Key, y.Key)
			})
			b.Values = b.Values[:min(len(b.Values), audienceShown)]
			v.Breakdowns = append(v.Breakdowns, b)
		}
		return v
	}
	return nil
}

func (a *app) consoleConnection(w http.ResponseWriter, r *http.Request, p *page) error {
	v, err := a.loadConnection(r, p)
	if err != nil {
		return err
	}
	if v.Connection.Status == social.StatusActive && v.Connection.Scopes.Has(tiktok.ScopeVideoPublish) {
		client, err := a.plat.tiktokClient(r.Context(), a.sdk.Social, v.Connection.ID)
		if err != nil {
			return err
		}
		// Creator info each time the post form renders: its privacy options
		// are the only ones offered.
		info, _, err := client.Posting.CreatorInfo(r.Context())
		if err == nil && len(info.PrivacyLevelOptions) > 0 {
			v.Creator, v.PublishKey = info, randomToken()
		} else if err != nil {
			a.log.WarnContext(r.Context(), "creator info", "err", err)
		}
	}
	if v.Connection.Platform == tiktok.Platform {
		if v.InDoubt, err = a.publishesInDoubt(r.Context(), v.Connection.ID); err != nil {
			return err
		}
	}
	if id := r.URL.Query().Get("publish_id"); id != "" && len(id) < 100 && v.Connection.Status == social.StatusActive {
		if client, err := a.plat.tiktokClient(r.Context(), a.sdk.Social, v.Connection.ID); err == nil {
			if st, _, err := client.Posting.Status(r.Context(), id); err == nil {
				v.Publish, v.PublishID = st, id
			}
		}
	}
	return nil
}

func (a *app) consoleSync(w http.ResponseWriter, r *http.Request, p *page) error {
	v, err := a.loadConnection(r, p)
	if err != nil {
		return err
	}
	if v.Connection.Platform == meta.Platform {
		if _, err := a.syncMeta(r.Context(), v.Connection); err != nil {
			return err
		}
	} else if _, _, err := a.syncTikTok(r.Context(), v.Connection); err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/connections/"+v.Connection.ID, "Synced.")
}

func (a *app) consolePublish(w http.ResponseWriter, r *http.Request, p *page) error {
	v, err := a.loadConnection(r, p)
	if err != nil {
		return err
	}
	f, done, err := readPublishForm(w, r)
	if err != nil {
		return err
	}
	defer done()
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	out, err := a.publishOnce(r.Context(), v.Connection, f, key)
	if err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/connections/"+v.Connection.ID+"?publish_id="+url.QueryEscape(out.PublishID), publishFlash(out))
}

func (a *app) consoleDisconnect(w http.ResponseWriter, r *http.Request, p *page) error {
	v, err := a.loadConnection(r, p)
	if err != nil {
		return err
	}
	if err := confirmed(r); err != nil {
		return err
	}
	if _, err := a.disconnectConnection(r.Context(), v.Connection); err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/connections", "Disconnected: the platform authorization is revoked and the tokens deleted.")
}

type privacyView struct {
	Requests []retention.Request
	Kinds    []retention.RequestKind
	Subjects []string
}

func (a *app) loadPrivacy(r *http.Request, p *page) (*privacyView, error) {
	p.Title = "Data-subject requests"
	v := &privacyView{Kinds: requestKinds, Subjects: a.subjectKinds()}
	p.Data = v
	var err error
	v.Requests, err = a.requests(r.Context())
	return v, err
}

func (a *app) consolePrivacy(w http.ResponseWriter, r *http.Request, p *page) error {
	_, err := a.loadPrivacy(r, p)
	return err
}

func (a *app) consoleCreateRequest(w http.ResponseWriter, r *http.Request, p *page) error {
	if _, err := a.loadPrivacy(r, p); err != nil {
		return err
	}
	in := requestInput{Kind: retention.RequestKind(r.FormValue("kind")), Subject: map[string]string{}}
	if k, v := r.FormValue("subject_kind"), strings.TrimSpace(r.FormValue("subject_value")); k != "" || v != "" {
		in.Subject[k] = v
	}
	req, err := a.submitRequest(r.Context(), in)
	if err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/privacy", fmt.Sprintf("Request %s recorded; due %s.", req.ID, req.DueAt.UTC().Format("2006-01-02")))
}

func (a *app) consoleVerify(w http.ResponseWriter, r *http.Request, p *page) error {
	if _, err := a.loadPrivacy(r, p); err != nil {
		return err
	}
	req, err := a.request(r)
	if err != nil {
		return err
	}
	outcome := retention.Verification(r.FormValue("outcome"))
	if outcome != retention.VerificationVerified && outcome != retention.VerificationFailed {
		return errInvalid(fieldProblem{Field: "outcome", Problem: "must be verified or failed"})
	}
	if _, err := a.sdk.Retention.SetVerification(r.Context(), req.ID, outcome); err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/privacy", "Identity "+string(outcome)+".")
}

func (a *app) consoleErase(w http.ResponseWriter, r *http.Request, p *page) error {
	if _, err := a.loadPrivacy(r, p); err != nil {
		return err
	}
	if err := confirmed(r); err != nil {
		return err
	}
	receipt, err := a.erase(r)
	if err != nil {
		return err
	}
	if receipt.Outcome == retention.OutcomeNoDataFound {
		return a.seeOther(w, r, "/console/privacy", fmt.Sprintf("No data found for this person: nothing was erased (%d categories searched).", len(receipt.Categories)))
	}
	n, touched := receipt.Erased(), 0
	for _, c := range receipt.Categories {
		if c.Erased > 0 {
			touched++
		}
	}
	return a.seeOther(w, r, "/console/privacy", fmt.Sprintf("Erased %d records in %d categories (%d searched).", n, touched, len(receipt.Categories)))
}

func (a *app) consoleExport(w http.ResponseWriter, r *http.Request, p *page) error {
	if _, err := a.loadPrivacy(r, p); err != nil {
		return err
	}
	err := a.exportRequest(w, r)
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return err
}

func (a *app) consoleDataMap(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Data map"
	p.Data = map[string]any{"Map": a.sdk.Retention.DataMap()}
	return nil
}

func (a *app) consoleKeys(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "API keys"
	keys, err := a.sdk.Tenants.APIKeys(r.Context())
	p.Data = map[string]any{"Keys": keys}
	return err
}

func (a *app) consoleCreateKey(w http.ResponseWriter, r *http.Request, p *page) error {
	if err := a.consoleKeys(w, r, p); err != nil {
		return err
	}
	name := strings.TrimSpace(r.FormValue("name"))
	if name == "" || len(name) > 100 {
		return errInvalid(fieldProblem{Field: "name", Problem: "required, at most 100 characters"})
	}
	key, _, err := a.sdk.Tenants.CreateAPIKey(r.Context(), name, tenancy.RoleStaff)
	if err != nil {
		return err
	}
	keys, err := a.sdk.Tenants.APIKeys(r.Context())
	p.Data = map[string]any{"Keys": keys, "NewKey": key}
	return err
}

func (a *app) consoleRevokeKey(w http.ResponseWriter, r *http.Request, p *page) error {
	if err := a.consoleKeys(w, r, p); err != nil {
		return err
	}
	id := r.PathValue("id")
	if tenancy.ValidateID(id) != nil {
		return errNotFound("api key")
	}
	if err := confirmed(r); err != nil {
		return err
	}
	if err := a.sdk.Tenants.RevokeAPIKey(r.Context(), id); err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/keys", "Key revoked.")
}

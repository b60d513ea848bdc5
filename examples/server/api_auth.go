package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/socialcrm/socialcrm/tenancy"
)

func slogLevel(status int) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelError
	case status >= 400:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

type signupRequest struct {
	TenantName string `json:"tenant_name"`
	Email      string `json:"email"`
	Name       string `json:"name"`
	Password   string `json:"password"`
}

func (s signupRequest) validate() error {
	var v validator
	v.check(strings.TrimSpace(s.TenantName) != "", "tenant_name", "required")
	v.check(len(s.TenantName) <= 200, "tenant_name", "at most 200 characters")
	_, err := mail.ParseAddress(s.Email)
	v.check(err == nil && !strings.ContainsAny(s.Email, "<> "), "email", "must be an email address")
	v.check(strings.TrimSpace(s.Name) != "", "name", "required")
	v.check(len(s.Name) <= 200, "name", "at most 200 characters")
	v.check(passwordProblem(s.Password) == "", "password", passwordProblem(s.Password))
	return v.err()
}

// signUp creates a tenant with its owner and the tenant's data key, then
// signs the owner in.
func (a *app) signUp(ctx context.Context, req signupRequest, userAgent string) (tenancy.Tenant, tenancy.Member, pair, error) {
	if err := req.validate(); err != nil {
		return tenancy.Tenant{}, tenancy.Member{}, pair{}, err
	}
	t, m, err := a.sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: strings.TrimSpace(req.TenantName),
		Owner: tenancy.NewMember{Email: req.Email, Name: strings.TrimSpace(req.Name), Password: req.Password}})
	if err != nil {
		return t, m, pair{}, err
	}
	// Create the tenant's data key now, outside any request transaction.
	if _, err := a.sdk.Vault.EnsureKey(tenancy.WithPrincipal(ctx, m.Principal())); err != nil {
		return t, m, pair{}, err
	}
	tok, err := a.tokens.start(ctx, m.Principal(), userAgent)
	return t, m, tok, err
}

func (a *app) signup(w http.ResponseWriter, r *http.Request) error {
	var req signupRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	t, m, tok, err := a.signUp(r.Context(), req, r.UserAgent())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"tenant": t, "owner": m, "session": tok})
	return nil
}

type loginRequest struct {
	// TenantID names the tenant to sign in to; without it, every tenant
	// where the e-mail has an account is tried (openTenants). With Ticket
	// it is the tenant picked.
	TenantID string `json:"tenant_id"`
	Email    string `json:"email"`
	Password string `json:"password"`
	// Ticket is the pick ticket of an earlier answer that listed several
	// tenants the password opened (the answer's ticket).
	Ticket string `json:"ticket"`
}

// loginChoice is a tenant a password opened, offered by name.
type loginChoice struct {
	TenantID string `json:"tenant_id"`
	Name     string `json:"name"`
}

// signIn checks the per-IP rate limit, then the credentials in the tenant
// req names (with tenancy's lockout).
func (a *app) signIn(r *http.Request, req loginRequest) (tenancy.Principal, error) {
	var v validator
	v.check(tenancy.ValidateID(req.TenantID) == nil, "tenant_id", "must be a UUID")
	v.check(req.Email != "", "email", "required")
	v.check(req.Password != "", "password", "required")
	if err := v.err(); err != nil {
		return tenancy.Principal{}, err
	}
	if ok, err := a.logins.allow(r.Context(), clientIP(r)); err != nil {
		return tenancy.Principal{}, err
	} else if !ok {
		return tenancy.Principal{}, errRateLimited
	}
	return a.sdk.Tenants.Authenticate(r.Context(), req.TenantID, req.Email, req.Password,
		tenancy.RequestInfo{IP: clientIP(r), UserAgent: r.UserAgent()})
}

// login signs in: to tenant_id when given; otherwise by e-mail and
// password alone, in the one tenant they open, or, when they open several,
// answering their names with a pick ticket, which a second call presents
// with the tenant picked (ticket and tenant_id, no password).
func (a *app) login(w http.ResponseWriter, r *http.Request) error {
	var req loginRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	var p tenancy.Principal
	switch {
	case req.Ticket != "":
		var v validator
		v.check(req.Email == "" && req.Password == "", "ticket", "send the ticket with tenant_id only")
		v.check(tenancy.ValidateID(req.TenantID) == nil, "tenant_id", "must be a UUID")
		if err := v.err(); err != nil {
			return err
		}
		c, err := a.picked(req.Ticket, req.TenantID)
		if err != nil {
			return err
		}
		p = c.principal()
	case req.TenantID != "":
		var err error
		if p, err = a.signIn(r, req); err != nil {
			return err
		}
	default:
		choices, err := a.openTenants(r, req.Email, req.Password)
		if err != nil {
			return err
		}
		if len(choices) > 1 {
			names := make([]loginChoice, len(choices))
			for i, c := range choices {
				names[i] = loginChoice{TenantID: c.TenantID, Name: c.Name}
			}
			writeJSON(w, http.StatusOK, map[string]any{"choose": names, "ticket": a.ticketFor(choices)})
			return nil
		}
		p = choices[0].principal()
	}
	tok, err := a.tokens.start(r.Context(), p, r.UserAgent())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenant_id": p.TenantID, "member_id": p.MemberID, "role": p.Role, "session": tok})
	return nil
}

func (a *app) refresh(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.RefreshToken == "" {
		return errInvalid(fieldProblem{Field: "refresh_token", Problem: "required"})
	}
	tok, err := a.tokens.refresh(r.Context(), req.RefreshToken)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"session": tok})
	return nil
}

func (a *app) logout(w http.ResponseWriter, r *http.Request) error {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	c, ok := a.tokens.verifyAccess(tok)
	if !ok {
		return &apiError{Status: http.StatusBadRequest, Code: "not_a_session", Message: "sign out with a session's access token, not an API key"}
	}
	if err := a.tokens.revoke(r.Context(), c); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *app) me(w http.ResponseWriter, r *http.Request) error {
	p, _ := tenancy.FromContext(r.Context())
	t, err := a.sdk.Tenants.Tenant(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenant": t, "member_id": p.MemberID, "role": p.Role, "mode": a.modes()})
	return nil
}

func (a *app) listAPIKeys(w http.ResponseWriter, r *http.Request) error {
	keys, err := a.sdk.Tenants.APIKeys(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"api_keys": keys})
	return nil
}

func (a *app) createAPIKey(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name string       `json:"name"`
		Role tenancy.Role `json:"role"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	var v validator
	v.check(strings.TrimSpace(req.Name) != "" && len(req.Name) <= 100, "name", "required, at most 100 characters")
	v.check(req.Role == "" || (req.Role.Valid() && req.Role != tenancy.RoleClient), "role", "must be owner, admin, staff or creator")
	if err := v.err(); err != nil {
		return err
	}
	if req.Role == "" {
		req.Role = tenancy.RoleStaff
	}
	key, rec, err := a.sdk.Tenants.CreateAPIKey(r.Context(), strings.TrimSpace(req.Name), req.Role)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"key": key, "api_key": rec, "note": "the key is shown this once"})
	return nil
}

func (a *app) revokeAPIKey(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if tenancy.ValidateID(id) != nil {
		return errNotFound("api key")
	}
	if err := a.sdk.Tenants.RevokeAPIKey(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *app) getTenant(w http.ResponseWriter, r *http.Request) error {
	t, err := a.sdk.Tenants.Tenant(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenant": t})
	return nil
}

// closeTenant closes the tenant: its data stays for the policy's closure
// grace (30 days), during which it can be reopened; then the scheduled
// purge erases it and destroys its data key.
func (a *app) closeTenant(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Confirm string `json:"confirm"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	t, err := a.sdk.Tenants.Tenant(r.Context())
	if err != nil {
		return err
	}
	if req.Confirm != t.Name {
		return errInvalid(fieldProblem{Field: "confirm", Problem: "type the tenant's name to confirm"})
	}
	t, err = a.sdk.Tenants.CloseTenant(r.Context(), a.sdk.Retention.Policy().ClosureGrace)
	if err != nil {
		return err
	}
	// Every other session ends now; the closer's stays, to reopen.
	if err := a.tokens.revokeTenant(r.Context(), sessionOf(r.Context())); err != nil {
		return err
	}
	a.schedulePurge(r.Context(), t)
	writeJSON(w, http.StatusOK, map[string]any{"tenant": t})
	return nil
}

func (a *app) reopenTenant(w http.ResponseWriter, r *http.Request) error {
	t, err := a.sdk.Tenants.ReopenTenant(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenant": t})
	return nil
}

func (a *app) auditLog(w http.ResponseWriter, r *http.Request) error {
	entries, err := a.sdk.Audit.List(r.Context(), tenancy.AuditListOptions{Limit: 1000})
	if err != nil {
		return err
	}
	head, err := a.sdk.Audit.Verify(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries, "verified_head": head, "checked_at": time.Now().UTC()})
	return nil
}

// passwordHint is how a password's length is told to a person: bcrypt
// keeps 72 bytes, which are 72 characters of plain letters, digits and
// punctuation, and fewer of others.
const passwordHint = "10 to 72 characters; accented and other non-ASCII ones count 2 to 4 each"

// passwordProblem says what is wrong with a password's length, in
// characters with the note for non-ASCII ones, or "" when it fits
// [tenancy.MinPasswordLen, tenancy.MaxPasswordLen] bytes.
func passwordProblem(pw string) string {
	switch {
	case len(pw) < tenancy.MinPasswordLen:
		return "too short: at least 10 characters"
	case len(pw) > tenancy.MaxPasswordLen:
		return "too long: at most 72 bytes, which is 72 plain characters (letters, digits, punctuation); accented letters and other non-ASCII characters count 2 to 4 each"
	}
	return ""
}

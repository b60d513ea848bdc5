package main

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
)

// The console signs in by e-mail and password: the tenants whose member has
// that e-mail are looked up, the password is checked in each, and when it
// opens more than one the person picks one. The pick carries a short-lived
// signed ticket naming the tenants the password opened, so the password is
// not sent again and no tenant is offered before the password is right.

// pickTTL bounds how long a tenant picker stays valid.
const pickTTL = 5 * time.Minute

// tenantChoice is one tenant a password opened.
type tenantChoice struct {
	TenantID string       `json:"t"`
	MemberID string       `json:"m"`
	Role     tenancy.Role `json:"r"`
	Name     string       `json:"-"`
}

type pickTicket struct {
	Choices []tenantChoice `json:"c"`
	Expires int64          `json:"e"`
}

// tenantsOfEmail returns the tenants (open or closed, not purged) that have
// a member with email. It reads each tenant's members under that tenant's
// row security, so it costs one small transaction per tenant: fine for the
// example server's scale, a directory table for a larger one.
func (a *app) tenantsOfEmail(ctx context.Context, email string) ([]tenancy.Tenant, error) {
	sys := tenancy.System(ctx, "console-login")
	all, err := a.sdk.Tenants.Tenants(sys, tenancy.TenantFilter{})
	if err != nil {
		return nil, err
	}
	var out []tenancy.Tenant
	for _, t := range all {
		if t.Status == tenancy.StatusPurged {
			continue
		}
		tctx, err := tenancy.AsTenant(sys, t.ID)
		if err != nil {
			return nil, err
		}
		var n int64
		err = tenancy.RunInTx(tctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
			var err error
			n, err = tx.NewSelect().Model((*tenancy.Member)(nil)).Where("mb.tenant_id = ?", t.ID).Where("mb.email = ?", email).Count(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		if n > 0 {
			out = append(out, t)
		}
	}
	return out, nil
}

// consoleLogin checks the e-mail and password and signs in, or shows the
// tenant picker when the password opens several tenants.
func (a *app) consoleLogin(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Sign in"
	email := strings.ToLower(strings.TrimSpace(r.FormValue("email")))
	password := r.FormValue("password")
	var v validator
	v.check(email != "", "email", "required")
	v.check(password != "", "password", "required")
	if err := v.err(); err != nil {
		return err
	}
	if ok, err := a.logins.allow(r.Context(), clientIP(r)); err != nil {
		return err
	} else if !ok {
		return errRateLimited
	}
	info := tenancy.RequestInfo{IP: clientIP(r), UserAgent: r.UserAgent()}
	tenants, err := a.tenantsOfEmail(r.Context(), email)
	if err != nil {
		return err
	}
	if len(tenants) == 0 {
		// The same answer, after the same bcrypt work, as a wrong password.
		_, err := a.sdk.Tenants.Authenticate(r.Context(), "", email, password, info)
		return err
	}
	var choices []tenantChoice
	var lastErr error
	for _, t := range tenants {
		prin, err := a.sdk.Tenants.Authenticate(r.Context(), t.ID, email, password, info)
		if err != nil {
			lastErr = err
			continue
		}
		choices = append(choices, tenantChoice{TenantID: t.ID, MemberID: prin.MemberID, Role: prin.Role, Name: t.Name})
	}
	switch len(choices) {
	case 0:
		return lastErr
	case 1:
		return a.startConsoleSession(w, r, choices[0])
	}
	slices.SortFunc(choices, func(x, y tenantChoice) int { return strings.Compare(x.Name, y.Name) })
	body, _ := json.Marshal(pickTicket{Choices: choices, Expires: a.now().Add(pickTTL).Unix()})
	raw := "pk1." + base64.RawURLEncoding.EncodeToString(body)
	p.Title = "Choose an organization"
	p.Data = map[string]any{"Ticket": raw + "." + a.tokens.mac(raw), "Choices": choices}
	a.render(w, http.StatusOK, "pick", p, nil)
	return nil
}

// consolePick signs in to the tenant picked from a ticket.
func (a *app) consolePick(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Sign in"
	expired := &apiError{Status: http.StatusBadRequest, Code: "pick_expired", Message: "the choice expired; sign in again"}
	tok := r.FormValue("ticket")
	i := strings.LastIndexByte(tok, '.')
	if i < 0 || !strings.HasPrefix(tok, "pk1.") || !hmacEqual(a.tokens.mac(tok[:i]), tok[i+1:]) {
		return expired
	}
	body, err := base64.RawURLEncoding.DecodeString(tok[4:i])
	var t pickTicket
	if err != nil || json.Unmarshal(body, &t) != nil || a.now().Unix() >= t.Expires {
		return expired
	}
	for _, c := range t.Choices {
		if c.TenantID == r.FormValue("tenant_id") {
			return a.startConsoleSession(w, r, c)
		}
	}
	return errInvalid(fieldProblem{Field: "tenant_id", Problem: "choose one of the organizations listed"})
}

func (a *app) startConsoleSession(w http.ResponseWriter, r *http.Request, c tenantChoice) error {
	tok, err := a.tokens.start(r.Context(), tenancy.Principal{TenantID: c.TenantID, MemberID: c.MemberID, Role: c.Role}, r.UserAgent())
	if err != nil {
		return err
	}
	a.setSessionCookies(w, r, tok)
	return a.seeOther(w, r, "/console/", "")
}

func hmacEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

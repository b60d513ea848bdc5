package main

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
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

func (c tenantChoice) principal() tenancy.Principal {
	return tenancy.Principal{TenantID: c.TenantID, MemberID: c.MemberID, Role: c.Role}
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

// openTenants is sign-in by e-mail and password, shared by the console
// and POST /v1/login: it checks the per-IP rate limit, then the password
// in every tenant that has a member with email (each attempt counts
// toward that member's lockout), and returns the tenants it opened,
// sorted by name. It fails as a wrong password does when it opens none —
// for an unknown e-mail too, after the same bcrypt work — so that nothing
// tells who has an account, or where, without the password. The checks of
// several tenants run in parallel, up to GOMAXPROCS at once: beyond that
// many tenants for one e-mail, the answer takes longer.
func (a *app) openTenants(r *http.Request, email, password string) ([]tenantChoice, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var v validator
	v.check(email != "", "email", "required")
	v.check(password != "", "password", "required")
	if err := v.err(); err != nil {
		return nil, err
	}
	if ok, err := a.logins.allow(r.Context(), clientIP(r)); err != nil {
		return nil, err
	} else if !ok {
		return nil, errRateLimited
	}
	info := tenancy.RequestInfo{IP: clientIP(r), UserAgent: r.UserAgent()}
	tenants, err := a.tenantsOfEmail(r.Context(), email)
	if err != nil {
		return nil, err
	}
	if len(tenants) == 0 {
		// The same answer, after the same bcrypt work, as a wrong password.
		_, err := a.sdk.Tenants.Authenticate(r.Context(), "", email, password, info)
		return nil, err
	}
	// The checks run side by side (as many at once as there are CPUs), so
	// that the time taken depends less on how many accounts the e-mail
	// has (an unknown one costs one check).
	type check struct {
		prin tenancy.Principal
		err  error
	}
	checks := make([]check, len(tenants))
	slots := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, t := range tenants {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			checks[i].prin, checks[i].err = a.sdk.Tenants.Authenticate(r.Context(), t.ID, email, password, info)
		})
	}
	wg.Wait()
	var choices []tenantChoice
	var lastErr error
	for i, t := range tenants {
		if checks[i].err != nil {
			lastErr = checks[i].err
			continue
		}
		prin := checks[i].prin
		choices = append(choices, tenantChoice{TenantID: t.ID, MemberID: prin.MemberID, Role: prin.Role, Name: t.Name})
	}
	if len(choices) == 0 {
		return nil, lastErr
	}
	slices.SortFunc(choices, func(x, y tenantChoice) int { return strings.Compare(x.Name, y.Name) })
	return choices, nil
}

// ticketFor is the signed ticket that lets the person pick one of choices
// for pickTTL without sending the password again.
func (a *app) ticketFor(choices []tenantChoice) string {
	body, _ := json.Marshal(pickTicket{Choices: choices, Expires: a.now().Add(pickTTL).Unix()})
	raw := "pk1." + base64.RawURLEncoding.EncodeToString(body)
	return raw + "." + a.tokens.mac(raw)
}

// errPickExpired answers a tenant pick whose ticket is forged or expired.
var errPickExpired = &apiError{Status: http.StatusBadRequest, Code: "pick_expired", Message: "the choice expired; sign in again"}

// picked returns the choice of tenantID in ticket (ticketFor).
func (a *app) picked(ticket, tenantID string) (tenantChoice, error) {
	i := strings.LastIndexByte(ticket, '.')
	if i < 0 || !strings.HasPrefix(ticket, "pk1.") || !hmacEqual(a.tokens.mac(ticket[:i]), ticket[i+1:]) {
		return tenantChoice{}, errPickExpired
	}
	body, err := base64.RawURLEncoding.DecodeString(ticket[4:i])
	var t pickTicket
	if err != nil || json.Unmarshal(body, &t) != nil || a.now().Unix() >= t.Expires {
		return tenantChoice{}, errPickExpired
	}
	for _, c := range t.Choices {
		if c.TenantID == tenantID {
			return c, nil
		}
	}
	return tenantChoice{}, errInvalid(fieldProblem{Field: "tenant_id", Problem: "choose one of the organizations listed"})
}

// consoleLogin checks the e-mail and password and signs in, or shows the
// tenant picker when the password opens several tenants.
func (a *app) consoleLogin(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Sign in"
	choices, err := a.openTenants(r, r.FormValue("email"), r.FormValue("password"))
	if err != nil {
		return err
	}
	if len(choices) == 1 {
		return a.startConsoleSession(w, r, choices[0])
	}
	p.Title = "Choose an organization"
	p.Data = map[string]any{"Ticket": a.ticketFor(choices), "Choices": choices}
	a.render(w, http.StatusOK, "pick", p, nil)
	return nil
}

// consolePick signs in to the tenant picked from a ticket.
func (a *app) consolePick(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Sign in"
	c, err := a.picked(r.FormValue("ticket"), r.FormValue("tenant_id"))
	if err != nil {
		return err
	}
	return a.startConsoleSession(w, r, c)
}

func (a *app) startConsoleSession(w http.ResponseWriter, r *http.Request, c tenantChoice) error {
	tok, err := a.tokens.start(r.Context(), c.principal(), r.UserAgent())
	if err != nil {
		return err
	}
	a.setSessionCookies(w, r, tok)
	return a.seeOther(w, r, "/console/", "")
}

func hmacEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
)

// TestSessionsEndAtOnce: an access token is refused the moment its session
// ends — signed out through the API or the console — and a session of a
// tenant closed by any path (here the SDK, out of band) reaches nothing but
// the tenant, reopening and signing out, well within the access token's 15
// minutes.
func TestSessionsEndAtOnce(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	c := newClient(t, a.URL)
	su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Sess", "email": "s@s.example", "name": "S", "password": "long enough password"}, 201)
	tenantID := str(su, "tenant", "id")
	c.token = str(su, "session", "access_token")
	login := map[string]string{"tenant_id": tenantID, "email": "s@s.example", "password": "long enough password"}
	const csrf = "fedcba9876543210fedcba9876543210fedc"

	// Console: sign out, then replay the access cookie.
	con := str(c.call("POST", "/v1/login", login, 200), "session", "access_token")
	status, _ := consoleGet(t, a, con, csrf, "/console/contacts")
	require.Equal(t, http.StatusOK, status)
	form := url.Values{"csrf": {csrf}}
	req, err := http.NewRequest("POST", a.URL+"/console/logout", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: cookieAccess, Value: con})
	resp, err := noRedirect().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	status, _ = consoleGet(t, a, con, csrf, "/console/contacts")
	require.Equal(t, http.StatusSeeOther, status, "the replayed cookie of a signed-out session is no session")
	api := newClient(t, a.URL)
	api.token = con
	api.call("GET", "/v1/me", nil, 401)

	// A session whose expiry passed in the database is refused too, even
	// with an access token that has not expired.
	ex := newClient(t, a.URL)
	ex.token = str(c.call("POST", "/v1/login", login, 200), "session", "access_token")
	claims, ok := a.tokens.verifyAccess(ex.token)
	require.True(t, ok)
	ctx := tenancy.WithPrincipal(t.Context(), claims.principal())
	require.NoError(t, tenancy.RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewUpdate().Model((*session)(nil)).Set("expires_at = ?", time.Now().Add(-time.Minute)).Where("id = ?", claims.Session).Exec(ctx)
		return err
	}))
	ex.call("GET", "/v1/me", nil, 401)

	// The tenant closed out of band: the session's next request is refused.
	c.call("GET", "/v1/contacts", nil, 200)
	_, err = a.sdk.Tenants.CloseTenant(tenancy.WithPrincipal(t.Context(), claims.principal()), 30*24*time.Hour)
	require.NoError(t, err)
	require.Equal(t, "tenant_closed", str(c.call("GET", "/v1/contacts", nil, 403), "error", "code"))
	c.call("GET", "/v1/deals", nil, 403)
	status, html := consoleGet(t, a, c.token, csrf, "/console/contacts")
	require.Equal(t, http.StatusForbidden, status)
	require.Contains(t, html, "the tenant is closed")
	status, _ = consoleGet(t, a, c.token, csrf, "/console/")
	require.Equal(t, http.StatusOK, status, "the overview, with the reopen button")
	c.call("GET", "/v1/tenant", nil, 200)
	c.call("POST", "/v1/tenant/reopen", nil, 200)
	c.call("GET", "/v1/contacts", nil, 200)
}

package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/tenancy"
)

func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// TestConsoleCrossOrigin: a console form posted from another site (by the
// browser's Sec-Fetch-Site or Origin) is refused before anything runs; one
// from the console's origin, or from a client that is no browser, reaches
// its handler. The console's cookies fit the scheme: Secure over https
// only, so that the console works on a plain-http LAN address.
func TestConsoleCrossOrigin(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	hc := noRedirect()
	resp, err := hc.Get(a.URL + "/console/login")
	require.NoError(t, err)
	resp.Body.Close()
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")

	post := func(headers map[string]string) (int, []*http.Cookie) {
		form := url.Values{"tenant_name": {"Origin Test"}, "email": {"o@b.example"}, "name": {"O"}, "password": {"long enough password"}, "form_key": {randomToken()}}
		req, err := http.NewRequest("POST", a.URL+"/console/signup", strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode, resp.Cookies()
	}
	status, cookies := post(map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"})
	require.Equal(t, http.StatusForbidden, status)
	require.Empty(t, cookies, "a refused form signs nobody in")
	status, _ = post(map[string]string{"Origin": "http://evil.example"})
	require.Equal(t, http.StatusForbidden, status, "an old browser's cross-origin form")

	status, cookies = post(map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": a.URL})
	require.Equal(t, http.StatusSeeOther, status, "a form of the console's origin signs up")
	require.NotEmpty(t, cookies)
	for _, c := range cookies {
		require.True(t, c.HttpOnly, c.Name)
		require.False(t, c.Secure, "%s: Secure over plain http would be dropped by the browser", c.Name)
		require.Equal(t, http.SameSiteLaxMode, c.SameSite)
	}

	// Behind https (the public URL), the cookies are Secure.
	b := newTestApp(t)
	b.publicURL = "https://crm.example"
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/", nil)
	b.setCookie(rec, req, cookieAccess, "v", time.Minute)
	require.True(t, rec.Result().Cookies()[0].Secure)
}

// TestLoginRateLimit: sign-in attempts beyond the per-IP rate are refused
// with 429 before any password is checked.
func TestLoginRateLimit(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "-login-rate", "1")
	c := newClient(t, a.URL)
	login := map[string]string{"tenant_id": tenancy.NewID(), "email": "a@b.example", "password": "whatever password"}
	c.call("POST", "/v1/login", login, http.StatusUnauthorized)
	require.Equal(t, "rate_limited", str(c.call("POST", "/v1/login", login, http.StatusTooManyRequests), "error", "code"))

	// Two limiters on one database, as two replicas: the count is shared.
	clk := fakeclock.New()
	hash := func(k string) string { return a.tokens.mac("login." + k) }
	l1 := newLimiter(a.db, 2, time.Minute, clk.Now, hash)
	l2 := newLimiter(a.db, 2, time.Minute, clk.Now, hash)
	allow := func(l *limiter, key string) bool {
		ok, err := l.allow(t.Context(), key)
		require.NoError(t, err)
		return ok
	}
	require.True(t, allow(l1, "ip"))
	require.True(t, allow(l2, "ip"))
	require.False(t, allow(l1, "ip"), "the second replica's attempt counts")
	require.False(t, allow(l2, "ip"))
	require.True(t, allow(l2, "other"))
	clk.Advance(time.Minute)
	require.True(t, allow(l1, "ip"), "a new window")
	var stored []string
	require.NoError(t, a.db.NewRaw("SELECT key_hash FROM ?", bun.Ident(tableLoginAttempts)).Scan(t.Context(), &stored))
	require.NotContains(t, stored, "ip", "only keyed hashes of addresses are stored")
	clk.Advance(2 * time.Minute)
	require.NoError(t, l1.prune(t.Context()))
	var n int
	require.NoError(t, a.db.NewRaw("SELECT count(*) FROM ? WHERE key_hash IN (?)", bun.Ident(tableLoginAttempts),
		bun.In([]string{hash("ip"), hash("other")})).Scan(t.Context(), &n))
	require.Zero(t, n, "ended windows are pruned")
}

// TestTokens: access tokens expire and refuse tampering; refresh tokens
// rotate; a replayed one ends the session.
func TestTokens(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	clk := fakeclock.New()
	a.tokens.now = clk.Now
	_, m, _, err := a.signUp(t.Context(), signupRequest{TenantName: "T", Email: "t@t.example", Name: "T", Password: "long enough password"}, "test")
	require.NoError(t, err)
	p, err := a.tokens.start(t.Context(), m.Principal(), "test")
	require.NoError(t, err)
	c, ok := a.tokens.verifyAccess(p.AccessToken)
	require.True(t, ok)
	require.Equal(t, m.ID, c.Member)
	_, ok = a.tokens.verifyAccess(p.AccessToken[:len(p.AccessToken)-2] + "xx")
	require.False(t, ok, "a tampered token")
	clk.Advance(accessTTL)
	_, ok = a.tokens.verifyAccess(p.AccessToken)
	require.False(t, ok, "an expired token")

	p2, err := a.tokens.refresh(t.Context(), p.RefreshToken)
	require.NoError(t, err)
	_, err = a.tokens.refresh(t.Context(), p.RefreshToken)
	require.ErrorIs(t, err, tenancy.ErrInvalidCredentials, "a race of two tabs: refused…")
	p2b, err := a.tokens.refresh(t.Context(), p2.RefreshToken)
	require.NoError(t, err, "…without ending the session")
	p2 = p2b
	clk.Advance(refreshGrace + time.Second)
	_, err = a.tokens.refresh(t.Context(), p.RefreshToken)
	require.ErrorIs(t, err, tenancy.ErrInvalidCredentials)
	require.ErrorIs(t, err, errSpentRefresh)
	_, err = a.tokens.refresh(t.Context(), p2.RefreshToken)
	require.ErrorIs(t, err, tenancy.ErrInvalidCredentials, "the replay revoked the session")

	p3, err := a.tokens.start(t.Context(), m.Principal(), "test")
	require.NoError(t, err)
	clk.Advance(sessionTTL)
	_, err = a.tokens.refresh(t.Context(), p3.RefreshToken)
	require.ErrorIs(t, err, tenancy.ErrInvalidCredentials, "an expired session")
}

// TestScheduledJobs: one run of the scheduled jobs over a tenant with a
// connection in progress completes without errors.
func TestScheduledJobs(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	_, m, _, err := a.signUp(t.Context(), signupRequest{TenantName: "J", Email: "j@j.example", Name: "J", Password: "long enough password"}, "test")
	require.NoError(t, err)
	_, err = a.plat.tiktokFlow.Begin(tenancy.WithPrincipal(t.Context(), m.Principal()))
	require.NoError(t, err)
	rep := a.runJobsOnce(t.Context())
	require.Zero(t, rep.Failed)
	resp, err := http.Get(a.URL + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

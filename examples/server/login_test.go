package main

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAPISignInByEmail: POST /v1/login takes e-mail and password without
// a tenant_id. The e-mail in one organization signs in at once; a password
// that opens two answers their names (and nothing of a third whose
// password differs) with a ticket, and the second call with the ticket and
// the tenant picked signs in there; the ticket cannot be forged or used for
// another tenant. A wrong password and an unknown e-mail get the same
// answer, which names no organization; tenant_id sign-in still works, and
// the per-IP rate limit counts e-mail sign-ins too.
func TestAPISignInByEmail(t *testing.T) {
	t.Parallel()
	eachDB(t, testAPISignInByEmail)
}

func testAPISignInByEmail(t *testing.T, a *testApp) {
	c := patientClient(t, a)
	const pw = "long enough password"
	tenants := map[string]string{}
	for _, org := range []string{"Zinc Studio", "Amber Shop"} {
		out := c.call("POST", "/v1/signup", map[string]any{"tenant_name": org, "email": "sam@two.example", "name": "Sam", "password": pw}, 201)
		tenants[org] = str(out, "tenant", "id")
	}
	solo := str(c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Solo", "email": "solo@one.example", "name": "Solo", "password": pw}, 201), "tenant", "id")
	c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Other pw", "email": "sam@two.example", "name": "Sam", "password": "another long password"}, 201)

	// One organization: a session at once.
	out := c.call("POST", "/v1/login", map[string]string{"email": " Solo@One.example", "password": pw}, 200)
	require.Equal(t, solo, str(out, "tenant_id"))
	tok := str(out, "session", "access_token")
	require.NotEmpty(t, tok)
	me := c.callAs(tok, "GET", "/v1/me", nil, 200)
	require.Equal(t, "Solo", str(me, "tenant", "name"))

	// Two organizations the password opens: their names and a ticket, no
	// session; the third, with another password, is not offered.
	out = c.call("POST", "/v1/login", map[string]string{"email": "sam@two.example", "password": pw}, 200)
	require.Nil(t, out["session"])
	var choose []loginChoice
	b, err := json.Marshal(out["choose"])
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &choose))
	require.Equal(t, []loginChoice{{TenantID: tenants["Amber Shop"], Name: "Amber Shop"}, {TenantID: tenants["Zinc Studio"], Name: "Zinc Studio"}}, choose)
	ticket := str(out, "ticket")
	require.NotEmpty(t, ticket)

	out = c.call("POST", "/v1/login", map[string]string{"ticket": ticket, "tenant_id": tenants["Zinc Studio"]}, 200)
	require.Equal(t, tenants["Zinc Studio"], str(out, "tenant_id"))
	require.Equal(t, "Zinc Studio", str(c.callAs(str(out, "session", "access_token"), "GET", "/v1/me", nil, 200), "tenant", "name"))
	require.Equal(t, "pick_expired", str(c.call("POST", "/v1/login", map[string]string{"ticket": ticket + "x", "tenant_id": tenants["Zinc Studio"]}, 400), "error", "code"))
	require.Equal(t, []string{"tenant_id"}, problems(c.call("POST", "/v1/login", map[string]string{"ticket": ticket, "tenant_id": solo}, 400)),
		"a ticket opens only the tenants it lists")
	require.Equal(t, []string{"ticket"}, problems(c.call("POST", "/v1/login", map[string]string{"ticket": ticket, "tenant_id": tenants["Zinc Studio"], "password": pw}, 400)))

	// A wrong password, an unknown e-mail: one answer, naming nothing.
	wrong := c.call("POST", "/v1/login", map[string]string{"email": "sam@two.example", "password": "not the password"}, 401)
	unknown := c.call("POST", "/v1/login", map[string]string{"email": "nobody@two.example", "password": "not the password"}, 401)
	require.Equal(t, withoutRequestID(wrong), withoutRequestID(unknown))
	require.Equal(t, "invalid_credentials", str(wrong, "error", "code"))
	raw, err := json.Marshal(wrong)
	require.NoError(t, err)
	for org, id := range tenants {
		require.NotContains(t, string(raw), org)
		require.NotContains(t, string(raw), id)
	}
	require.Equal(t, []string{"email", "password"}, problems(c.call("POST", "/v1/login", map[string]string{}, 400)))

	// Naming the tenant still works.
	out = c.call("POST", "/v1/login", map[string]string{"tenant_id": tenants["Amber Shop"], "email": "sam@two.example", "password": pw}, 200)
	require.Equal(t, tenants["Amber Shop"], str(out, "tenant_id"))
}

// TestAPISignInByEmailRateLimited: e-mail sign-ins count toward the per-IP
// limit that tenant sign-ins share, and are refused past it before any
// password is checked.
func TestAPISignInByEmailRateLimited(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "-login-rate", "2")
	c := patientClient(t, a)
	c.call("POST", "/v1/login", map[string]string{"email": "a@b.example", "password": "whatever password"}, http.StatusUnauthorized)
	c.call("POST", "/v1/login", map[string]string{"tenant_id": "01a23000-0000-7000-8000-000000000000", "email": "a@b.example", "password": "whatever password"}, http.StatusUnauthorized)
	require.Equal(t, "rate_limited", str(c.call("POST", "/v1/login", map[string]string{"email": "a@b.example", "password": "whatever password"}, http.StatusTooManyRequests), "error", "code"))
}

package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConsoleTeam: through the Team page's forms an owner changes a
// member's role and removes a member. A role change ends the member's
// sessions (they carry the old role); a removal ends them too and revokes
// the member's API keys. The last owner can be neither demoted nor removed
// (409, the picked role kept in the form); an admin cannot touch an owner;
// staff get no forms and are refused; removal needs its confirmation; a
// member of another organization is not found.
func TestConsoleTeam(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	const csrf = "0123456789abcdef0123456789abcdef0123"
	const pw = "long enough password"
	c := patientClient(t, a)
	su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Team", "email": "olga@team.example", "name": "Olga", "password": pw}, 201)
	owner := str(su, "session", "access_token")
	ownerID := str(c.callAs(owner, "GET", "/v1/me", nil, 200), "member_id")
	other := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Elsewhere", "email": "e@else.example", "name": "E", "password": pw}, 201)
	otherID := str(c.callAs(str(other, "session", "access_token"), "GET", "/v1/me", nil, 200), "member_id")

	// signIn signs a member in through the console and returns their
	// access token and member id.
	signIn := func(email string) (string, string) {
		t.Helper()
		resp, html := consolePost(t, a, "", csrf, "/console/login", url.Values{"email": {email}, "password": {pw}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, html)
		for _, ck := range resp.Cookies() {
			if ck.Name == cookieAccess {
				return ck.Value, str(c.callAs(ck.Value, "GET", "/v1/me", nil, 200), "member_id")
			}
		}
		t.Fatal("no access cookie")
		return "", ""
	}
	for _, m := range []struct{ name, email, role string }{{"Ada", "ada@team.example", "staff"}, {"Ben", "ben@team.example", "staff"}} {
		resp, html := consolePost(t, a, owner, csrf, "/console/team", url.Values{"name": {m.name}, "email": {m.email}, "role": {m.role}, "password": {pw}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, html)
	}
	ada, adaID := signIn("ada@team.example")
	ben, benID := signIn("ben@team.example")

	// Staff see the team without forms, and a forged form is refused.
	status, html := consoleGet(t, a, ada, csrf, "/console/team")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, html, "Ben")
	require.NotContains(t, html, "/console/team/"+benID+"/role")
	resp, _ := consolePost(t, a, ada, csrf, "/console/team/"+benID+"/role", url.Values{"role": {"admin"}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	// The owner sees a role select and a remove button per member.
	status, html = consoleGet(t, a, owner, csrf, "/console/team")
	require.Equal(t, http.StatusOK, status)
	for _, id := range []string{ownerID, adaID, benID} {
		require.Contains(t, html, `action="/console/team/`+id+`/role"`)
		require.Contains(t, html, `action="/console/team/`+id+`/remove"`)
	}

	// Ada becomes an admin: a flash, the page shows it, her session ends.
	resp, html = consolePost(t, a, owner, csrf, "/console/team/"+adaID+"/role", url.Values{"role": {"admin"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, html)
	require.Equal(t, "Ada is now admin.", flashOf(t, a, resp))
	status, html = consoleGet(t, a, owner, csrf, "/console/team")
	require.Equal(t, http.StatusOK, status)
	require.Regexp(t, `id="role-`+adaID+`"[^>]*><option>staff</option><option selected>admin</option>`, html)
	c.callAs(ada, "GET", "/v1/me", nil, 401)
	ada, _ = signIn("ada@team.example")
	require.Equal(t, "admin", str(c.callAs(ada, "GET", "/v1/me", nil, 200), "role"))

	// The admin cannot make an owner nor touch the owner; the owner's row
	// has no forms on her page.
	status, html = consoleGet(t, a, ada, csrf, "/console/team")
	require.Equal(t, http.StatusOK, status)
	require.NotContains(t, html, "/console/team/"+ownerID+"/")
	require.Contains(t, html, `action="/console/team/`+benID+`/remove"`)
	resp, _ = consolePost(t, a, ada, csrf, "/console/team/"+benID+"/role", url.Values{"role": {"owner"}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = consolePost(t, a, ada, csrf, "/console/team/"+ownerID+"/remove", url.Values{"confirm": {"yes"}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	// The last owner: neither demoted (the picked role stays in the form)
	// nor removed, and still signed in.
	resp, html = consolePost(t, a, owner, csrf, "/console/team/"+ownerID+"/role", url.Values{"role": {"staff"}})
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	require.Contains(t, html, "last owner")
	require.Regexp(t, `id="role-`+ownerID+`"[^>]*><option selected>staff</option>`, html)
	resp, _ = consolePost(t, a, owner, csrf, "/console/team/"+ownerID+"/remove", url.Values{"confirm": {"yes"}})
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	require.Equal(t, "owner", str(c.callAs(owner, "GET", "/v1/me", nil, 200), "role"))

	// Bad input: an unknown role keeps the page (400), another
	// organization's member and a malformed id are not found.
	resp, html = consolePost(t, a, owner, csrf, "/console/team/"+benID+"/role", url.Values{"role": {"wizard"}})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, html, `<table id="members"`)
	resp, _ = consolePost(t, a, owner, csrf, "/console/team/"+otherID+"/role", url.Values{"role": {"staff"}})
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, _ = consolePost(t, a, owner, csrf, "/console/team/"+otherID+"/remove", url.Values{"confirm": {"yes"}})
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, _ = consolePost(t, a, owner, csrf, "/console/team/nope/remove", url.Values{"confirm": {"yes"}})
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	c.callAs(str(other, "session", "access_token"), "GET", "/v1/me", nil, 200)

	// Removal: refused without the ticked box; then Ben is gone, signed
	// out, and the key he created no longer works.
	// (Ben, made an admin, signs in again and creates a key.)
	resp, _ = consolePost(t, a, owner, csrf, "/console/team/"+benID+"/role", url.Values{"role": {"admin"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	ben, _ = signIn("ben@team.example")
	key := str(c.callAs(ben, "POST", "/v1/api-keys", map[string]any{"name": "ben's script"}, 201), "key")
	c.callAs(key, "GET", "/v1/me", nil, 200)
	resp, html = consolePost(t, a, ada, csrf, "/console/team/"+benID+"/remove", url.Values{})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, html, "tick the box")
	c.callAs(ben, "GET", "/v1/me", nil, 200)
	resp, html = consolePost(t, a, ada, csrf, "/console/team/"+benID+"/remove", url.Values{"confirm": {"yes"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, html)
	require.Contains(t, flashOf(t, a, resp), "Member removed")
	status, html = consoleGet(t, a, owner, csrf, "/console/team")
	require.Equal(t, http.StatusOK, status)
	require.NotContains(t, html, "ben@team.example")
	c.callAs(ben, "GET", "/v1/me", nil, 401)
	c.callAs(key, "GET", "/v1/me", nil, 401)
	resp, _ = consolePost(t, a, owner, csrf, "/console/login", url.Values{"email": {"ben@team.example"}, "password": {pw}})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.False(t, strings.Contains(html, "Ben"), "the removed member is not listed")
}

// callAs is c.call with another bearer token (an access token or API key).
func (c *client) callAs(token, method, path string, body any, want int) map[string]any {
	c.t.Helper()
	d := *c
	d.token = token
	return d.call(method, path, body, want)
}

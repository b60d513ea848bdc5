package main

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCreatorSeesOnlyOwnConnections: two creators of one agency sign in
// and each connects their own TikTok account through the API. Each lists,
// reads, syncs and reads the insights of only their own connection; every
// path to the other's — get, insights, sync, publish, publish status,
// disconnect — answers 404 with no data, never a 500, and connecting the
// other's account answers 403. CRM records and privacy requests answer 403.
// The owner sees both connections, and a creator's disconnect of their own
// works.
func TestCreatorSeesOnlyOwnConnections(t *testing.T) {
	eachDB(t, func(t *testing.T, a *testApp) {
		c := patientClient(t, a)
		su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Agency", "email": "o@ag.example", "name": "O", "password": "long enough password"}, 201)
		c.token = str(su, "session", "access_token")
		tid := str(c.call("GET", "/v1/me", nil, 200), "tenant_id")
		creator := func(email string) string {
			c.call("POST", "/v1/members", map[string]any{"email": email, "name": "Creator", "role": "creator", "password": "long enough password"}, 201)
			lg := c.call("POST", "/v1/login", map[string]string{"tenant_id": tid, "email": email, "password": "long enough password"}, 200)
			return str(lg, "session", "access_token")
		}
		ann, bob := creator("ann@creators.example"), creator("bob@creators.example")
		connect := func(token, account string, want int) string {
			st := c.callAs(token, "POST", "/v1/connections/tiktok/start", nil, 200)
			out := c.callAs(token, "POST", "/v1/connections/tiktok/complete", map[string]string{"callback_url": c.consent(str(st, "authorize_url"), account)}, want)
			return str(out, "connection", "id")
		}
		annConn, bobConn := connect(ann, sandboxCreator, 201), connect(bob, sandboxBrand, 201)
		connect(bob, sandboxCreator, 403) // Ann's account: Bob does not take it over

		ids := func(token string) []string {
			var out []string
			for _, x := range c.callAs(token, "GET", "/v1/connections", nil, 200)["connections"].([]any) {
				out = append(out, x.(map[string]any)["id"].(string))
			}
			return out
		}
		require.ElementsMatch(t, []string{annConn, bobConn}, ids(c.token), "the owner sees every creator's connection")
		for _, x := range []struct{ token, own, other string }{{ann, annConn, bobConn}, {bob, bobConn, annConn}} {
			require.Equal(t, []string{x.own}, ids(x.token))
			c.callAs(x.token, "GET", "/v1/connections/"+x.own, nil, 200)
			c.callAs(x.token, "POST", "/v1/connections/"+x.own+"/sync", nil, 200)
			ins := c.callAs(x.token, "GET", "/v1/connections/"+x.own+"/insights", nil, 200)
			require.NotEmpty(t, ins)
			for _, r := range [][2]string{{"GET", "/v1/connections/" + x.other}, {"GET", "/v1/connections/" + x.other + "/insights"},
				{"POST", "/v1/connections/" + x.other + "/sync"}, {"GET", "/v1/connections/" + x.other + "/tiktok/publish/p-1"},
				{"POST", "/v1/connections/" + x.other + "/meta/publish"}, {"DELETE", "/v1/connections/" + x.other}} {
				out := c.callAs(x.token, r[0], r[1], map[string]any{}, 404)
				require.NotContains(t, out, "connection", "%s %s", r[0], r[1])
			}
			out := c.callAs(x.token, "GET", "/v1/contacts", nil, 403)
			require.NotContains(t, out, "contacts")
			c.callAs(x.token, "GET", "/v1/privacy/requests", nil, 403)
		}
		// The console: each creator's connections page names only their own
		// account; the other's pages and forms are 404, never a 500.
		const csrf = "0123456789abcdef0123456789abcdef0123"
		for _, x := range []struct{ token, own, other, ownName, otherName string }{
			{ann, annConn, bobConn, "Mia Sandbox", "Brand Sandbox"}, {bob, bobConn, annConn, "Brand Sandbox", "Mia Sandbox"}} {
			status, html := consoleGet(t, a, x.token, csrf, "/console/connections")
			require.Equal(t, http.StatusOK, status)
			require.Contains(t, html, x.ownName)
			require.NotContains(t, html, x.otherName)
			require.NotContains(t, html, x.other)
			status, html = consoleGet(t, a, x.token, csrf, "/console/connections/"+x.other)
			require.Equal(t, http.StatusNotFound, status)
			require.NotContains(t, html, x.otherName)
			for _, form := range []string{"sync", "disconnect", "publish"} {
				resp, html := consolePost(t, a, x.token, csrf, "/console/connections/"+x.other+"/"+form, url.Values{})
				require.Equal(t, http.StatusNotFound, resp.StatusCode, form)
				require.NotContains(t, html, x.otherName)
			}
			status, _ = consoleGet(t, a, x.token, csrf, "/console/")
			require.Less(t, status, 500, "a creator's console home")
		}
		status, html := consoleGet(t, a, c.token, csrf, "/console/connections")
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, html, "Mia Sandbox")
		require.Contains(t, html, "Brand Sandbox")

		// Publishing through the other's connection: 404 before any upload.
		d := *c
		d.token = ann
		d.publish(bobConn, "not mine", "SELF_ONLY", []byte("video"), 404)

		// The owner still reads Bob's; Ann disconnects her own.
		c.call("GET", "/v1/connections/"+bobConn, nil, 200)
		out := c.callAs(ann, "DELETE", "/v1/connections/"+annConn, nil, 200)
		require.Equal(t, "revoked", str(out, "connection", "status"))
		require.Equal(t, "active", str(c.call("GET", "/v1/connections/"+bobConn, nil, 200), "connection", "status"))
	})
}

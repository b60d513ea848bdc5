package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConsoleNewUserReadsS17 is what a walk through the console as a new
// user found reading badly, fixed: the inbox offered the sandbox's "have
// someone write" form before any Page was connected (it could only fail)
// and said no more than "No conversations yet"; the privacy form listed
// bare identifier kinds (client_id, member_id…) and an empty request table
// said nothing; a refused form was headed with the API's "the request has
// invalid fields" and named some fields by their code alone (quantity,
// unit_price); a proposal needed a client that a new organization does not
// have, with no way to name one; the consent and call forms forgot the
// channel, purpose, source and kind picked when refused; rejecting or withdrawing a proposal,
// which ends it, took one click with no confirmation; pressing "Change"
// on one's own role without changing it signed one out.
func TestConsoleNewUserReadsS17(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, a *testApp) {
		c := patientClient(t, a)
		su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Newbie", "email": "n@newbie.example", "name": "Nora", "password": "long enough password"}, 201)
		c.token = str(su, "session", "access_token")
		const csrf = "0123456789abcdef0123456789abcdef0123"

		// The inbox before any Page: advice and a link, no form bound to fail.
		status, html := consoleGet(t, a, c.token, csrf, "/console/inbox")
		require.Equal(t, http.StatusOK, status)
		require.NotContains(t, html, `action="/console/sandbox/message"`, "no sandbox form without a Page to write to")
		require.Contains(t, html, `id="no-conversations"`)
		require.Contains(t, html, `<a href="/console/connections">connect one on Accounts</a>`)

		// The privacy page: every identifier kind named in words, and an
		// empty list that says what goes there.
		_, html = consoleGet(t, a, c.token, csrf, "/console/privacy")
		require.Contains(t, html, `id="no-requests"`)
		for _, kind := range []string{"client_id", "member_id", "conversation_id", "invoice_id", "client_contact_id", "email", "contact_id"} {
			require.Contains(t, html, `<option value="`+kind+`"`, kind)
			require.NotContains(t, html, `>`+kind+`</option>`, "%s is offered by its code alone", kind)
		}

		// A refused invoice: a sentence a person acts on, every field named
		// in words, what was typed kept.
		_, html = consoleGet(t, a, c.token, csrf, "/console/invoices")
		resp, body := consolePost(t, a, c.token, csrf, "/console/invoices", url.Values{"client_name": {"Acme"}, "description": {"Typed line"},
			"quantity": {"two"}, "unit_price": {"ten"}, "tax_rate": {"200"}, "currency": {"EUR"}, "number": {"7"}, "form_key": {formKeyIn(t, html, "/console/invoices")}})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.NotContains(t, body, "the request has invalid fields")
		require.Contains(t, body, "Not saved: correct what is listed below and send again.")
		for _, f := range []string{"Quantity <code>quantity</code>", "Unit price <code>unit_price</code>", "Tax rate <code>tax_rate</code>"} {
			require.Contains(t, body, f)
		}
		require.Contains(t, body, `value="Typed line"`)
		require.Zero(t, len(c.call("GET", "/v1/clients", nil, 200)["items"].([]any)), "a refused invoice creates no client")

		// The contact page's consent and call forms, refused, keep what was
		// picked and typed.
		contact := str(c.call("POST", "/v1/contacts", map[string]any{"first_name": "Kim"}, 201), "contact", "id")
		cp := "/console/contacts/" + contact
		resp, body = consolePost(t, a, c.token, csrf, cp+"/consent", url.Values{"channel": {"sms"}, "purpose": {"birthday"}, "source": {"said so in the shop"}, "action": {"maybe"}})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		for _, kept := range []string{"<option selected>sms</option>", "<option selected>birthday</option>", `value="said so in the shop"`} {
			require.Contains(t, body, kept)
		}
		resp, body = consolePost(t, a, c.token, csrf, cp+"/activities", url.Values{"kind": {"meeting"}, "subject": {" "}})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Contains(t, body, "<option selected>meeting</option>")

		// A first proposal names its client.
		_, html = consoleGet(t, a, c.token, csrf, "/console/proposals")
		require.Contains(t, html, `<option value="">A new client…</option>`)
		resp, body = consolePost(t, a, c.token, csrf, "/console/proposals", url.Values{"title": {"Plan"}, "amount": {"100"}, "currency": {"EUR"}})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Contains(t, body, "New client&#39;s name <code>client_name</code>: pick a client, or name a new one")
		resp, body = consolePost(t, a, c.token, csrf, "/console/proposals", url.Values{"title": {"Plan"}, "amount": {"100"}, "currency": {"EURO"}, "client_name": {"New Co"}})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
		require.Zero(t, len(c.call("GET", "/v1/clients", nil, 200)["items"].([]any)), "a refused proposal leaves no client behind")
		resp, body = consolePost(t, a, c.token, csrf, "/console/proposals", url.Values{"title": {"Plan"}, "amount": {"100"}, "currency": {"EUR"}, "client_name": {"New Co"}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
		clients := c.call("GET", "/v1/clients", nil, 200)["items"].([]any)
		require.Len(t, clients, 1)
		require.Equal(t, "New Co", clients[0].(map[string]any)["name"])
		props := c.call("GET", "/v1/proposals", nil, 200)["items"].([]any)
		require.Len(t, props, 1)
		require.Equal(t, clients[0].(map[string]any)["id"], props[0].(map[string]any)["client_id"])

		// Rejecting or withdrawing a proposal ends it: the form asks first.
		prop := props[0].(map[string]any)["id"].(string)
		resp, _ = consolePost(t, a, c.token, csrf, "/console/proposals/"+prop+"/status", url.Values{"version": {"1"}, "to": {"sent"}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		_, html = consoleGet(t, a, c.token, csrf, "/console/proposals")
		require.Contains(t, html, "<summary>Withdraw…</summary>")
		require.Contains(t, html, "<summary>Rejected…</summary>")
		resp, body = consolePost(t, a, c.token, csrf, "/console/proposals/"+prop+"/status", url.Values{"version": {"2"}, "to": {"withdrawn"}})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Contains(t, body, "tick the box to confirm")
		require.Equal(t, "sent", str(c.call("GET", "/v1/proposals/"+prop, nil, 200), "proposal", "status"))
		resp, _ = consolePost(t, a, c.token, csrf, "/console/proposals/"+prop+"/status", url.Values{"version": {"2"}, "to": {"withdrawn"}, "confirm": {"yes"}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Equal(t, "withdrawn", str(c.call("GET", "/v1/proposals/"+prop, nil, 200), "proposal", "status"))

		// "Change" on one's own role, unchanged: no sign-out.
		me := str(su, "owner", "id")
		resp, body = consolePost(t, a, c.token, csrf, "/console/team/"+me+"/role", url.Values{"role": {"owner"}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
		require.Equal(t, "No change: Nora is owner already.", flashOf(t, a, resp))
		status, _ = consoleGet(t, a, c.token, csrf, "/console/team")
		require.Equal(t, http.StatusOK, status, "still signed in")

		// With the sandbox Page connected, the inbox offers its form.
		ms := c.call("POST", "/v1/connections/meta/start", nil, 200)
		c.call("POST", "/v1/connections/meta/complete", map[string]string{"callback_url": c.consentMeta(str(ms, "authorize_url"), "sandbox-fb-user")}, 201)
		_, html = consoleGet(t, a, c.token, csrf, "/console/inbox")
		require.Contains(t, html, `action="/console/sandbox/message"`)
		require.True(t, strings.Contains(html, "Messages to your Facebook Pages and Instagram accounts arrive here."), "the empty inbox says where messages come from")

		// A conversation linked to a new contact from a stale page (someone
		// linked it meanwhile): refused, and no contact is left behind.
		c.call("POST", "/v1/sandbox/meta/message", map[string]string{"psid": "psid-stale", "text": "Hello"}, 204)
		conv := c.call("GET", "/v1/conversations", nil, 200)["items"].([]any)[0].(map[string]any)["id"].(string)
		before := len(c.call("GET", "/v1/contacts", nil, 200)["items"].([]any))
		resp, body = consolePost(t, a, c.token, csrf, "/console/inbox/"+conv+"/link", url.Values{"version": {"99"}, "first_name": {"Ghost"}})
		require.Equal(t, http.StatusConflict, resp.StatusCode, errorOf(body))
		require.Len(t, c.call("GET", "/v1/contacts", nil, 200)["items"], before, "the refused link's new contact is gone")
	})
}

// TestConsoleClosureGraceS17: the settings page says how long a closed
// organization's data stays as the server is configured (it said "30
// days" whatever the closure grace).
func TestConsoleClosureGraceS17(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{{nil, "30 days"}, {[]string{"-closure-grace", "48h"}, "2 days"}, {[]string{"-closure-grace", "90m"}, "1h30m0s"}} {
		a := newTestApp(t, tc.args...)
		c := patientClient(t, a)
		su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Grace", "email": "g@grace.example", "name": "G", "password": "long enough password"}, 201)
		_, html := consoleGet(t, a, str(su, "session", "access_token"), "", "/console/settings")
		require.Contains(t, html, `<span id="grace">`+tc.want+`</span>`, "%v", tc.args)
	}
}

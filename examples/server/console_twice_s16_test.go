package main

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// formKeyIn returns the one-time key of the form posting to action in
// html.
func formKeyIn(t *testing.T, html, action string) string {
	t.Helper()
	m := regexp.MustCompile(`action="` + regexp.QuoteMeta(action) + `"[^>]*>(?:[^<]|<[^/]|</[^f])*?<input type="hidden" name="form_key" value="([A-Za-z0-9_-]+)"`).FindStringSubmatch(html)
	require.NotNil(t, m, "no form_key in the form posting to %s", action)
	return m[1]
}

// TestConsoleFormSentTwiceS16: a console form whose action reaches a
// person or a platform — a Messenger reply, a post to the Page, a
// data-subject request — or creates a record (a contact, a note, a task, a deal) acts once when the browser sends it twice (a
// double click, a reload that resends it, back and Send again): each
// form carries a one-time key, the second sending answers "Already done"
// and sends nothing. A form without its key is a 400 with a readable
// reason, and a refused form (bad input) frees its key for the corrected
// one.
func TestConsoleFormSentTwiceS16(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, a *testApp) {
		c := patientClient(t, a)
		su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Twice", "email": "t@twice.example", "name": "T", "password": "long enough password"}, 201)
		c.token = str(su, "session", "access_token")
		const csrf = "0123456789abcdef0123456789abcdef0123"
		ms := c.call("POST", "/v1/connections/meta/start", nil, 200)
		mc := c.call("POST", "/v1/connections/meta/complete", map[string]string{"callback_url": c.consentMeta(str(ms, "authorize_url"), "sandbox-fb-user")}, 201)
		page := str(mc["pages"].([]any)[0].(map[string]any), "page", "id")
		c.call("POST", "/v1/sandbox/meta/message", map[string]string{"psid": "psid-twice", "text": "Is the ring in stock?"}, 204)
		convs := c.call("GET", "/v1/conversations", nil, 200)["items"].([]any)
		require.Len(t, convs, 1)
		conv := convs[0].(map[string]any)["id"].(string)

		// The reply: sent twice with one key, it reaches Messenger once.
		sent := len(a.plat.metaSrv.SentMessages())
		_, html := consoleGet(t, a, c.token, csrf, "/console/inbox/"+conv)
		action := "/console/inbox/" + conv + "/reply"
		key := formKeyIn(t, html, action)
		resp, body := consolePost(t, a, c.token, csrf, action, url.Values{"text": {"  "}, "form_key": {key}})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "an empty reply is refused")
		require.Contains(t, body, "1 to 2000 characters")
		for i, want := range []string{"Sent.", alreadySent, alreadySent} {
			resp, body = consolePost(t, a, c.token, csrf, action, url.Values{"text": {"Yes, in every size."}, "form_key": {key}})
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, "sending %d: %s", i+1, body)
			require.Equal(t, "/console/inbox/"+conv, resp.Header.Get("Location"))
			require.Equal(t, want, flashOf(t, a, resp), "sending %d", i+1)
		}
		require.Len(t, a.plat.metaSrv.SentMessages(), sent+1, "one reply reached Messenger")
		out := 0
		for _, m := range c.call("GET", "/v1/conversations/"+conv+"/messages", nil, 200)["items"].([]any) {
			if m.(map[string]any)["direction"] == "out" {
				out++
			}
		}
		require.Equal(t, 1, out, "one reply stored")
		// The page shown again has a new key: the next reply goes out.
		_, html = consoleGet(t, a, c.token, csrf, "/console/inbox/"+conv)
		next := formKeyIn(t, html, action)
		require.NotEqual(t, key, next)
		resp, _ = consolePost(t, a, c.token, csrf, action, url.Values{"text": {"And engraved for free."}, "form_key": {next}})
		require.Equal(t, "Sent.", flashOf(t, a, resp))
		require.Len(t, a.plat.metaSrv.SentMessages(), sent+2)

		// Without its key (a page from before the key, a hand-made post):
		// 400, a readable reason, nothing sent.
		for _, k := range []string{"", "not a key!", strings.Repeat("k", 65)} {
			resp, body = consolePost(t, a, c.token, csrf, action, url.Values{"text": {"Hello"}, "form_key": {k}})
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, "key %q", k)
			require.Contains(t, body, "this form is out of date: open the page again")
		}
		require.Len(t, a.plat.metaSrv.SentMessages(), sent+2)

		// A post to the Page, sent twice: one post.
		posts := len(a.plat.metaSrv.Posts(sandboxPage))
		_, html = consoleGet(t, a, c.token, csrf, "/console/connections/"+page)
		action = "/console/connections/" + page + "/meta/publish"
		key = formKeyIn(t, html, action)
		for i, want := range []string{"Published.", alreadySent} {
			resp, body = consolePost(t, a, c.token, csrf, action, url.Values{"message": {"New collection"}, "form_key": {key}})
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, "sending %d: %s", i+1, body)
			require.Equal(t, want, flashOf(t, a, resp))
		}
		require.Len(t, a.plat.metaSrv.Posts(sandboxPage), posts+1, "one post on the Page")

		// A data-subject request, sent twice: one request.
		_, html = consoleGet(t, a, c.token, csrf, "/console/privacy")
		key = formKeyIn(t, html, "/console/privacy/requests")
		form := url.Values{"kind": {"access"}, "subject_kind": {"email"}, "subject_value": {"ann@twice.example"}, "form_key": {key}}
		for i, want := range []string{"Request ", alreadySent} {
			resp, body = consolePost(t, a, c.token, csrf, "/console/privacy/requests", form)
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, "sending %d: %s", i+1, body)
			require.True(t, strings.HasPrefix(flashOf(t, a, resp), want), "sending %d", i+1)
		}
		require.Len(t, c.call("GET", "/v1/privacy/requests", nil, 200)["requests"].([]any), 1, "one request recorded")

		// CRM records: a contact with a name alone (no e-mail to match a
		// duplicate by) and a note, each sent twice: one of each.
		_, html = consoleGet(t, a, c.token, csrf, "/console/contacts")
		key = formKeyIn(t, html, "/console/contacts")
		for i, want := range []string{"Contact created.", alreadySent} {
			resp, body = consolePost(t, a, c.token, csrf, "/console/contacts", url.Values{"first_name": {"Noemail"}, "form_key": {key}})
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, "sending %d: %s", i+1, body)
			require.Equal(t, want, flashOf(t, a, resp))
		}
		contacts := c.call("GET", "/v1/contacts", nil, 200)["items"].([]any)
		require.Len(t, contacts, 1, "one contact created")
		contact := contacts[0].(map[string]any)["id"].(string)
		_, html = consoleGet(t, a, c.token, csrf, "/console/contacts/"+contact)
		key = formKeyIn(t, html, "/console/contacts/"+contact+"/notes")
		for i, want := range []string{"Note added.", alreadySent} {
			resp, body = consolePost(t, a, c.token, csrf, "/console/contacts/"+contact+"/notes", url.Values{"body": {"Called twice"}, "form_key": {key}})
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, "sending %d: %s", i+1, body)
			require.Equal(t, want, flashOf(t, a, resp))
		}
		require.Len(t, c.call("GET", "/v1/notes?contact_id="+contact, nil, 200)["items"], 1, "one note added")
		_, html = consoleGet(t, a, c.token, csrf, "/console/tasks")
		key = formKeyIn(t, html, "/console/tasks")
		for i, want := range []string{"Task added.", alreadySent} {
			resp, body = consolePost(t, a, c.token, csrf, "/console/tasks", url.Values{"title": {"Call back"}, "form_key": {key}})
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, "sending %d: %s", i+1, body)
			require.Equal(t, want, flashOf(t, a, resp))
		}
		require.Len(t, c.call("GET", "/v1/tasks", nil, 200)["items"], 1, "one task added")
		pl := str(c.call("POST", "/v1/pipelines", map[string]any{"name": "Sales", "stages": []string{"new", "won"}}, 201), "pipeline", "id")
		_, html = consoleGet(t, a, c.token, csrf, "/console/deals")
		key = formKeyIn(t, html, "/console/deals")
		for i, want := range []string{"Deal created.", alreadySent} {
			resp, body = consolePost(t, a, c.token, csrf, "/console/deals", url.Values{"pipeline_id": {pl}, "title": {"Ring"}, "amount": {"120"}, "currency": {"EUR"}, "form_key": {key}})
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, "sending %d: %s", i+1, body)
			require.Equal(t, want, flashOf(t, a, resp))
		}
		require.Len(t, c.call("GET", "/v1/deals", nil, 200)["items"], 1, "one deal created")
	})
}

// TestConsoleMetaPartialGrantS16: a person who unticks pages_show_list on
// Facebook's dialog comes back to the accounts page with what happened
// and what to do (the Facebook user connected, no Page, connect again
// with it ticked), not a bare 403 "lacks scopes".
func TestConsoleMetaPartialGrantS16(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, a *testApp) {
		c := patientClient(t, a)
		su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Partial", "email": "p@partial.example", "name": "P", "password": "long enough password"}, 201)
		c.token = str(su, "session", "access_token")
		const csrf = "0123456789abcdef0123456789abcdef0123"
		resp, _ := consolePost(t, a, c.token, csrf, "/console/connect/meta", url.Values{})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		dialog := resp.Header.Get("Location")
		dresp, page := c.do("GET", dialog, "", nil)
		require.Equal(t, http.StatusOK, dresp.StatusCode)
		form := url.Values{"metatest_user": {"sandbox-fb-user"}, "metatest_decision": {"allow"}, "metatest_grant": {"public_profile"}}
		for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)"`).FindAllSubmatch(page, -1) {
			form.Add(string(m[1]), htmlUnescape(string(m[2])))
		}
		dresp, body := c.do("POST", dialog, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		require.Contains(t, []int{http.StatusFound, http.StatusSeeOther}, dresp.StatusCode, "%s", body)
		cb := dresp.Header.Get("Location")
		require.True(t, strings.HasPrefix(cb, a.URL+"/connect/meta/callback?"), cb)

		req, err := http.NewRequest("GET", cb, nil)
		require.NoError(t, err)
		req.AddCookie(&http.Cookie{Name: cookieAccess, Value: c.token})
		resp, err = noRedirect().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Equal(t, "/console/connections", resp.Header.Get("Location"))
		flash := flashOf(t, a, resp)
		require.Contains(t, flash, "but no Page: the permission pages_show_list was not granted")
		require.Contains(t, flash, "Connect again and keep it ticked")
		_, html := consoleGet(t, a, c.token, csrf, "/console/connections")
		require.Contains(t, html, "Facebook user", "the login is listed, to disconnect or complete")
		require.Len(t, c.call("GET", "/v1/connections", nil, 200)["connections"].([]any), 1, "the Facebook user alone")
	})
}

// TestConsoleSessionEndedS16: a page or form that needs a session which
// has ended (signed out in another tab, a revoked session, a spent
// refresh token) sends to the sign-in page with why, and that the form
// was not saved; a first visit goes there without a message; a sign-out
// from a tab already signed out says "Signed out."; the sign-in page of
// a person still signed in (the back button after signing in) says so
// and links to the overview.
func TestConsoleSessionEndedS16(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, a *testApp) {
		c := patientClient(t, a)
		c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Ended", "email": "e@ended.example", "name": "E", "password": "long enough password"}, 201)
		const csrf = "0123456789abcdef0123456789abcdef0123"

		// A first visit: to the sign-in page, no message.
		status, html := consoleGet(t, a, "", csrf, "/console/contacts")
		require.Equal(t, http.StatusSeeOther, status)
		require.NotContains(t, html, "session has ended")
		req, err := http.NewRequest("GET", a.URL+"/console/contacts", nil)
		require.NoError(t, err)
		resp, err := noRedirect().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, "/console/login", resp.Header.Get("Location"))
		require.Empty(t, flashOf(t, a, resp))

		// Signed in through the console; the sign-in page says so.
		resp, _ = consolePost(t, a, "", csrf, "/console/login", url.Values{"email": {"e@ended.example"}, "password": {"long enough password"}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		var token string
		for _, ck := range resp.Cookies() {
			if ck.Name == cookieAccess {
				token = ck.Value
			}
		}
		require.NotEmpty(t, token)
		status, html = consoleGet(t, a, token, csrf, "/console/login")
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, html, `id="signed-in"`)
		require.Contains(t, html, "You are signed in to Ended.")

		// Signed out (another tab): a form sent with the dead session is
		// not saved, and the person is told.
		req, err = http.NewRequest("POST", a.URL+"/v1/logout", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err = noRedirect().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Less(t, resp.StatusCode, 300)
		resp, _ = consolePost(t, a, token, csrf, "/console/contacts", url.Values{"first_name": {"Lost"}, "email": {"lost@ended.example"}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Equal(t, "/console/login", resp.Header.Get("Location"))
		require.Equal(t, sessionEnded, flashOf(t, a, resp))
		// The same form from a tab whose cookies the sign-out cleared.
		resp, _ = consolePost(t, a, "", csrf, "/console/contacts", url.Values{"first_name": {"Lost"}})
		require.Equal(t, sessionEnded, flashOf(t, a, resp))
		// Sign out there too: "Signed out.", nothing alarming.
		resp, _ = consolePost(t, a, "", csrf, "/console/logout", url.Values{})
		require.Equal(t, "/console/login", resp.Header.Get("Location"))
		require.Equal(t, "Signed out.", flashOf(t, a, resp))
		// A page opened with the dead session: the same message.
		status, _ = consoleGet(t, a, token, csrf, "/console/deals")
		require.Equal(t, http.StatusSeeOther, status)

		c.token = str(c.call("POST", "/v1/login", map[string]any{"email": "e@ended.example", "password": "long enough password"}, 200), "session", "access_token")
		got := c.call("GET", "/v1/contacts", nil, 200)["items"]
		require.Empty(t, got, "the form sent with the dead session saved nothing")
	})
}

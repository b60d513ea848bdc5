package main

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// s17Unkeyed are the console's POST forms without a one-time key, with
// why: sending one twice changes nothing twice.
var s17Unkeyed = map[string]string{
	"/console/login":           "signs in: a second sending starts a second session of the same person",
	"/console/login/pick":      "signs in to the organization picked",
	"/console/logout":          "signs out; a second sending finds the session ended",
	"/console/contacts/search": "keeps the query in a cookie; changes no record",
	"/console/connect/tiktok":  "starts TikTok's consent: a second sending starts a fresh one, the first expires unused",
	"/console/connect/meta":    "starts Facebook's consent: a second sending starts a fresh one, the first expires unused",
	// The TikTok post form carries an idempotency key of its own (the
	// publishes table): a video is posted once per key.
	"/console/connections/{id}/publish": "carries the publishes' idempotency_key",
}

var formTagRE = regexp.MustCompile(`(?s)<form method="post" action="([^"]+)"[^>]*>(.*?)</form>`)

// TestConsoleEveryFormKeyedS17: every POST form of the console's templates
// carries a one-time key (form_key) unless s17Unkeyed says why not, and
// every POST route of the console but those refuses a form without its
// key: 400 with a readable reason, before it acts.
func TestConsoleEveryFormKeyedS17(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("console/*.html")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range formTagRE.FindAllStringSubmatch(string(b), -1) {
			action := regexp.MustCompile(`\{\{[^}]*\}\}`).ReplaceAllString(m[1], "{id}")
			n++
			if _, ok := s17Unkeyed[action]; ok {
				require.NotContains(t, m[2], `name="form_key"`, "%s: %s is listed as unkeyed", f, action)
				continue
			}
			require.Contains(t, m[2], `<input type="hidden" name="form_key" value="{{formKey}}">`, "%s: the form posting to %s has no one-time key", f, action)
			// Back to a form that acted, the page is fetched anew with a new
			// key (no-store): nothing typed may be restored into it.
			require.Contains(t, m[0][:strings.Index(m[0], ">")], `autocomplete="off"`, "%s: the form posting to %s restores what was typed on back", f, action)
		}
	}
	require.Greater(t, n, 40, "the templates' forms were found")

	eachDB(t, func(t *testing.T, a *testApp) {
		c := patientClient(t, a)
		su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Keyed", "email": "k@keyed.example", "name": "K", "password": "long enough password"}, 201)
		c.token = str(su, "session", "access_token")
		const csrf = "0123456789abcdef0123456789abcdef0123"
		routes := 0
		for _, rt := range a.routes {
			if !rt.Console || rt.Method != http.MethodPost || rt.Path == "/console/signup" {
				continue
			}
			path := strings.ReplaceAll(rt.Path, "{id}", "00000000-0000-4000-8000-000000000000")
			if _, ok := s17Unkeyed[rt.Path]; ok || strings.HasPrefix(rt.Path, "/console/test/") {
				continue
			}
			routes++
			for _, k := range []string{"", "not a key!", strings.Repeat("k", 65)} {
				resp, body := consolePost(t, a, c.token, csrf, path, url.Values{"form_key": {k}, "confirm": {"yes"}})
				require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s with key %q: %s", rt.Path, k, body)
				require.Contains(t, body, "this form is out of date: open the page again", rt.Path)
			}
		}
		require.Greater(t, routes, 35, "the console's POST routes were found")
		// The sign-up form too, signed out.
		resp, body := consolePost(t, a, "", csrf, "/console/signup", url.Values{"form_key": {""}, "tenant_name": {"Nokey"},
			"email": {"n@keyed.example"}, "name": {"N"}, "password": {"long enough password"}})
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, body)
		require.Contains(t, body, "this form is out of date")
		ts, err := a.tenantsOfEmail(context.Background(), "n@keyed.example")
		require.NoError(t, err)
		require.Empty(t, ts, "a sign-up without its key creates nothing")
	})
}

// consoleMultipart posts fields and a file the way a browser sends a form
// with a file input.
func consoleMultipart(t *testing.T, a *testApp, token, csrf, path string, fields url.Values, file, content string) (*http.Response, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	require.NoError(t, mw.WriteField("csrf", csrf))
	for k, vs := range fields {
		for _, v := range vs {
			require.NoError(t, mw.WriteField(k, v))
		}
	}
	fw, err := mw.CreateFormFile(file, "contacts.csv")
	require.NoError(t, err)
	_, _ = io.WriteString(fw, content)
	require.NoError(t, mw.Close())
	req, err := http.NewRequest("POST", a.URL+path, &buf)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.AddCookie(&http.Cookie{Name: cookieAccess, Value: token})
	resp, err := noRedirect().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// TestConsoleEveryFormOnceS17: each console form that session 16 left
// without a one-time key, sent twice with the key of the page it was read
// from (a double click, a reload that resends it, back and Send again),
// acts once: one pipeline, invoice (and one client named in it),
// proposal, API key, team member, imported contact, logged call, consent
// record, sandbox message and contact made by linking a conversation; and
// an edit, a stage move, an issue, a payment, a proposal move, a role
// change, a verification, a deletion, a revocation or a disconnection
// sent again answers "Already done" instead of a conflict or a 404. A
// sign-up sent twice creates one organization and signs in to it.
func TestConsoleEveryFormOnceS17(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, a *testApp) {
		c := patientClient(t, a)
		const pw = "long enough password"
		su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Once", "email": "o@once.example", "name": "O", "password": pw}, 201)
		c.token = str(su, "session", "access_token")
		const csrf = "0123456789abcdef0123456789abcdef0123"
		count := func(path, field string) int {
			t.Helper()
			return len(c.call("GET", path, nil, 200)[field].([]any))
		}
		// twice reads page, takes the key of the form posting to action,
		// and sends form with it twice: the first sending answers want, the
		// second is sent to back with dupFlash.
		twice := func(page, action string, form url.Values, want int, back, dupFlash string) (*http.Response, string) {
			t.Helper()
			status, html := consoleGet(t, a, c.token, csrf, page)
			require.Equal(t, http.StatusOK, status, page)
			form.Set("form_key", formKeyIn(t, html, action))
			first, body := consolePost(t, a, c.token, csrf, action, form)
			require.Equal(t, want, first.StatusCode, "%s, first sending: %s", action, body)
			resp, body2 := consolePost(t, a, c.token, csrf, action, form)
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, "%s, second sending: %s", action, body2)
			require.Equal(t, back, resp.Header.Get("Location"), action)
			require.Equal(t, dupFlash, flashOf(t, a, resp), action)
			return first, body
		}

		// Pipelines and the deals board.
		twice("/console/deals", "/console/pipelines", url.Values{"name": {"Sales"}, "stages": {"new, won"}}, http.StatusSeeOther, "/console/deals", alreadySent)
		pls := c.call("GET", "/v1/pipelines", nil, 200)["items"].([]any)
		require.Len(t, pls, 1, "one pipeline")
		pl := pls[0].(map[string]any)["id"].(string)
		deal := str(c.call("POST", "/v1/deals", map[string]any{"pipeline_id": pl, "title": "Ring"}, 201), "deal", "id")
		twice("/console/deals", "/console/deals/"+deal+"/stage", url.Values{"version": {"1"}, "stage": {"won"}}, http.StatusSeeOther, "/console/deals", alreadySent)
		require.Len(t, c.call("GET", "/v1/deals/"+deal+"/history", nil, 200)["items"], 2, "created, moved once")

		// Invoices: one invoice, one client named in it; issued and paid once.
		twice("/console/invoices", "/console/invoices", url.Values{"number": {"2026-001"}, "client_name": {"Acme"}, "description": {"Ring"},
			"quantity": {"1"}, "unit_price": {"100"}, "tax_rate": {"20"}, "currency": {"EUR"}}, http.StatusSeeOther, "/console/invoices", alreadySent)
		invs := c.call("GET", "/v1/invoices", nil, 200)["items"].([]any)
		require.Len(t, invs, 1, "one invoice")
		require.Equal(t, 1, count("/v1/clients", "items"), "one client")
		inv := invs[0].(map[string]any)["id"].(string)
		twice("/console/invoices", "/console/invoices/"+inv+"/issue", url.Values{"version": {"1"}}, http.StatusSeeOther, "/console/invoices", alreadySent)
		twice("/console/invoices", "/console/invoices/"+inv+"/pay", url.Values{"version": {"2"}, "amount": {"50"}}, http.StatusSeeOther, "/console/invoices", alreadySent)
		got := c.call("GET", "/v1/invoices/"+inv, nil, 200)["invoice"].(map[string]any)
		require.Equal(t, "partially_paid", got["status"], "one payment of 50 on 120")
		// A refused invoice (its number taken) leaves no client behind.
		_, html := consoleGet(t, a, c.token, csrf, "/console/invoices")
		resp, body := consolePost(t, a, c.token, csrf, "/console/invoices", url.Values{"number": {"2026-001"}, "client_name": {"Other"},
			"description": {"Ring"}, "quantity": {"1"}, "unit_price": {"100"}, "tax_rate": {"20"}, "currency": {"EUR"},
			"form_key": {formKeyIn(t, html, "/console/invoices")}})
		require.Less(t, resp.StatusCode, 500, body)
		require.GreaterOrEqual(t, resp.StatusCode, 400, body)
		require.Equal(t, 1, count("/v1/clients", "items"), "the refused invoice's new client is gone")

		// Proposals.
		client := c.call("GET", "/v1/clients", nil, 200)["items"].([]any)[0].(map[string]any)["id"].(string)
		twice("/console/proposals", "/console/proposals", url.Values{"client_id": {client}, "title": {"Plan"}, "amount": {"100"}, "currency": {"EUR"}},
			http.StatusSeeOther, "/console/proposals", alreadySent)
		props := c.call("GET", "/v1/proposals", nil, 200)["items"].([]any)
		require.Len(t, props, 1, "one proposal")
		prop := props[0].(map[string]any)["id"].(string)
		twice("/console/proposals", "/console/proposals/"+prop+"/status", url.Values{"version": {"1"}, "to": {"sent"}}, http.StatusSeeOther, "/console/proposals", alreadySent)
		require.Len(t, c.call("GET", "/v1/proposals/"+prop+"/history", nil, 200)["items"], 2, "drafted, sent once")

		// API keys: one key; its secret was shown to the first sending.
		keysBefore := count("/v1/api-keys", "api_keys")
		_, body = twice("/console/keys", "/console/keys", url.Values{"name": {"script"}}, http.StatusOK, "/console/keys", dupFlash["/console/keys"])
		require.Contains(t, body, `<code id="new-key">`, "the first answer shows the key")
		keys := c.call("GET", "/v1/api-keys", nil, 200)["api_keys"].([]any)
		require.Len(t, keys, keysBefore+1, "one key created")
		key := keys[len(keys)-1].(map[string]any)["id"].(string)
		twice("/console/keys", "/console/keys/"+key+"/revoke", url.Values{"confirm": {"yes"}}, http.StatusSeeOther, "/console/keys", alreadySent)

		// Team: one member; a role changed once.
		twice("/console/team", "/console/team", url.Values{"name": {"Sam"}, "email": {"sam@once.example"}, "role": {"staff"}, "password": {pw}},
			http.StatusSeeOther, "/console/team", alreadySent)
		members := c.call("GET", "/v1/members", nil, 200)["items"].([]any)
		require.Len(t, members, 2, "one member added")
		var sam string
		for _, m := range members {
			if m.(map[string]any)["name"] == "Sam" {
				sam = m.(map[string]any)["id"].(string)
			}
		}
		twice("/console/team", "/console/team/"+sam+"/role", url.Values{"role": {"admin"}}, http.StatusSeeOther, "/console/team", alreadySent)
		twice("/console/team", "/console/team/"+sam+"/remove", url.Values{"confirm": {"yes"}}, http.StatusSeeOther, "/console/team", alreadySent)

		// Contacts: a CSV import, a call logged, a consent recorded, an edit.
		_, html = consoleGet(t, a, c.token, csrf, "/console/contacts")
		fk := formKeyIn(t, html, "/console/contacts/import")
		for i, want := range []string{"Imported 1 rows: 1 created", alreadySent} {
			resp, body := consoleMultipart(t, a, c.token, csrf, "/console/contacts/import", url.Values{"form_key": {fk}}, "file", "first_name,last_name\nZed,Noemail\n")
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, "import %d: %s", i+1, body)
			require.True(t, strings.HasPrefix(flashOf(t, a, resp), want), "import %d: %s", i+1, flashOf(t, a, resp))
		}
		contacts := c.call("GET", "/v1/contacts", nil, 200)["items"].([]any)
		require.Len(t, contacts, 1, "one contact imported")
		contact := contacts[0].(map[string]any)["id"].(string)
		cp := "/console/contacts/" + contact
		twice(cp, cp+"/activities", url.Values{"kind": {"call"}, "subject": {"Rang about the ring"}}, http.StatusSeeOther, cp, alreadySent)
		require.Len(t, c.call("GET", "/v1/activities?contact_id="+contact, nil, 200)["items"], 1, "one call logged")
		twice(cp, cp+"/consent", url.Values{"channel": {"email"}, "purpose": {"marketing"}, "source": {"shop counter"}, "action": {"grant"}},
			http.StatusSeeOther, cp, alreadySent)
		require.Len(t, c.call("GET", "/v1/contacts/"+contact+"/consent/history", nil, 200)["items"], 1, "one consent recorded")
		twice(cp, cp+"/edit", url.Values{"version": {"1"}, "first_name": {"Zed"}, "last_name": {"Renamed"}}, http.StatusSeeOther, cp, alreadySent)

		// Inbox: a sandbox message, a conversation linked to a new contact.
		ms := c.call("POST", "/v1/connections/meta/start", nil, 200)
		mc := c.call("POST", "/v1/connections/meta/complete", map[string]string{"callback_url": c.consentMeta(str(ms, "authorize_url"), "sandbox-fb-user")}, 201)
		page := str(mc["pages"].([]any)[0].(map[string]any), "page", "id")
		twice("/console/inbox", "/console/sandbox/message", url.Values{"text": {"Is the ring in stock?"}}, http.StatusSeeOther, "/console/inbox", alreadySent)
		convs := c.call("GET", "/v1/conversations", nil, 200)["items"].([]any)
		require.Len(t, convs, 1)
		conv := convs[0].(map[string]any)["id"].(string)
		require.Len(t, c.call("GET", "/v1/conversations/"+conv+"/messages", nil, 200)["items"], 1, "one message arrived")
		ver := c.call("GET", "/v1/conversations", nil, 200)["items"].([]any)[0].(map[string]any)["version"]
		twice("/console/inbox/"+conv, "/console/inbox/"+conv+"/link", url.Values{"version": {strconv.FormatFloat(ver.(float64), 'f', -1, 64)}, "first_name": {"Pat"}},
			http.StatusSeeOther, "/console/inbox/"+conv, alreadySent)
		require.Len(t, c.call("GET", "/v1/contacts", nil, 200)["items"], 2, "one contact made by linking")

		// Connections: a sync, a disconnection.
		twice("/console/connections/"+page, "/console/connections/"+page+"/sync", url.Values{}, http.StatusSeeOther, "/console/connections/"+page, alreadySent)
		twice("/console/connections/"+page, "/console/connections/"+page+"/disconnect", url.Values{"confirm": {"yes"}}, http.StatusSeeOther, "/console/connections", alreadySent)

		// A contact deleted: the second sending is no 404.
		twice(cp, cp+"/delete", url.Values{"confirm": {"yes"}}, http.StatusSeeOther, "/console/contacts", alreadySent)

		// A sign-up sent twice: one organization, and the second sending
		// signs in to it.
		status, html := consoleGet(t, a, "", "", "/console/signup")
		require.Equal(t, http.StatusOK, status)
		form := url.Values{"tenant_name": {"Double"}, "email": {"d@once.example"}, "name": {"D"}, "password": {pw}, "form_key": {formKeyIn(t, html, "/console/signup")}}
		resp, body = consolePost(t, a, "", csrf, "/console/signup", form)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
		require.Equal(t, "/console/", resp.Header.Get("Location"))
		resp, body = consolePost(t, a, "", csrf, "/console/signup", form)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
		require.Equal(t, "/console/", resp.Header.Get("Location"))
		require.Equal(t, signedUpTwice, flashOf(t, a, resp))
		var access string
		for _, ck := range resp.Cookies() {
			if ck.Name == cookieAccess {
				access = ck.Value
			}
		}
		require.NotEmpty(t, access, "the second sending signs in")
		status, html = consoleGet(t, a, access, csrf, "/console/")
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, html, "Double")
		ts, err := a.tenantsOfEmail(context.Background(), "d@once.example")
		require.NoError(t, err)
		require.Len(t, ts, 1, "one organization")
		// The same key with another password signs nobody in.
		form.Set("password", "another long password")
		resp, _ = consolePost(t, a, "", csrf, "/console/signup", form)
		require.Equal(t, "/console/login", resp.Header.Get("Location"))
		for _, ck := range resp.Cookies() {
			require.NotEqual(t, cookieAccess, ck.Name, "no session for a wrong password")
		}
	})
}

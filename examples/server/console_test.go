package main

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
)

// flashOf returns the message a console redirect left for the next page
// (its signed cookie), as that page would show it.
func flashOf(t *testing.T, a *testApp, resp *http.Response) string {
	t.Helper()
	req := httptest.NewRequest("GET", "/console/", nil)
	for _, c := range resp.Cookies() {
		if c.Name == cookieFlash {
			req.AddCookie(c)
		}
	}
	return a.takeFlash(httptest.NewRecorder(), req)
}

// eachDB runs fn against a test app on SQLite and, when
// SOCIALCRM_TEST_POSTGRES is set, on PostgreSQL with two roles.
func eachDB(t *testing.T, fn func(t *testing.T, a *testApp)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, newTestApp(t))
	})
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv(dbtest.EnvPostgres) == "" {
			t.Skip("set SOCIALCRM_TEST_POSTGRES to run the PostgreSQL half (CI does)")
		}
		t.Parallel()
		db := dbtest.Postgres(t)
		fn(t, newTestApp(t, "-db", db.DSN(), "-owner-db", db.OwnerDSN()))
	})
}

// patientClient is an API client for the console tests: its timeout
// allows for a first request that waits for the SQL guard's compile under
// -race on a loaded machine.
func patientClient(t *testing.T, a *testApp) *client {
	c := newClient(t, a.URL)
	c.hc.Timeout = 2 * time.Minute
	return c
}

// consolePost posts a console form with the session and csrf cookies,
// without following the redirect.
func consolePost(t *testing.T, a *testApp, token, csrf, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	form.Set("csrf", csrf)
	if !form.Has("form_key") {
		// As the page would render it: a form sent once (tests of a form
		// sent twice pass the key of the page they read).
		form.Set("form_key", randomToken())
	}
	req, err := http.NewRequest("POST", a.URL+path, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		req.AddCookie(&http.Cookie{Name: cookieAccess, Value: token})
	}
	resp, err := noRedirect().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// TestConsoleSignInByEmail: the console signs in with e-mail and password
// alone; a password that opens two organizations shows a picker of exactly
// those, whose ticket cannot be forged; a wrong password keeps the e-mail
// typed and says nothing about which organizations exist.
func TestConsoleSignInByEmail(t *testing.T) {
	t.Parallel()
	eachDB(t, testConsoleSignInByEmail)
}

func testConsoleSignInByEmail(t *testing.T, a *testApp) {
	c := patientClient(t, a)
	const pw = "long enough password"
	for _, org := range []string{"Zinc Studio", "Amber Shop"} {
		c.call("POST", "/v1/signup", map[string]any{"tenant_name": org, "email": "sam@two.example", "name": "Sam", "password": pw}, 201)
	}
	c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Solo", "email": "solo@one.example", "name": "Solo", "password": pw}, 201)
	c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Other pw", "email": "sam@two.example", "name": "Sam", "password": "another long password"}, 201)
	const csrf = "0123456789abcdef0123456789abcdef0123"

	// One organization: signed in at once.
	resp, _ := consolePost(t, a, "", csrf, "/console/login", url.Values{"email": {"Solo@One.example"}, "password": {pw}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/console/", resp.Header.Get("Location"))
	var access string
	for _, ck := range resp.Cookies() {
		if ck.Name == cookieAccess {
			access = ck.Value
		}
	}
	status, html := consoleGet(t, a, access, csrf, "/console/settings")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, html, "Solo")

	// Two organizations open with this password (a third has another).
	resp, html = consolePost(t, a, "", csrf, "/console/login", url.Values{"email": {"sam@two.example"}, "password": {pw}})
	require.Equal(t, http.StatusOK, resp.StatusCode, html)
	require.Contains(t, html, "Choose an organization")
	require.Contains(t, html, "Amber Shop")
	require.Contains(t, html, "Zinc Studio")
	require.NotContains(t, html, "Other pw")
	require.Less(t, strings.Index(html, "Amber Shop"), strings.Index(html, "Zinc Studio"), "listed by name")
	ticket := between(html, `name="ticket" value="`, `"`)
	tenant := between(html, `name="tenant_id" value="`, `"`)
	require.NotEmpty(t, ticket)
	resp, _ = consolePost(t, a, "", csrf, "/console/login/pick", url.Values{"ticket": {ticket}, "tenant_id": {tenant}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	resp, html = consolePost(t, a, "", csrf, "/console/login/pick", url.Values{"ticket": {ticket + "x"}, "tenant_id": {tenant}})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, html, "sign in again")
	resp, _ = consolePost(t, a, "", csrf, "/console/login/pick", url.Values{"ticket": {ticket}, "tenant_id": {"01a23000-0000-7000-8000-000000000000"}})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// A wrong password and an unknown e-mail get the same answer; the
	// e-mail stays in the form, the password does not.
	resp, html = consolePost(t, a, "", csrf, "/console/login", url.Values{"email": {"sam@two.example"}, "password": {"wrong password!"}})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Contains(t, html, `value="sam@two.example"`)
	require.NotContains(t, html, "wrong password!")
	require.NotContains(t, html, "Amber")
	resp2, html2 := consolePost(t, a, "", csrf, "/console/login", url.Values{"email": {"nobody@two.example"}, "password": {"wrong password!"}})
	require.Equal(t, resp.StatusCode, resp2.StatusCode)
	require.Contains(t, html2, "invalid credentials")
}

func between(s, start, end string) string {
	i := strings.Index(s, start)
	if i < 0 {
		return ""
	}
	s = s[i+len(start):]
	return s[:strings.Index(s, end)]
}

// TestConsolePages: flash text never comes from the URL; unknown pages are
// 404s inside the layout; a validation error keeps what was typed;
// destructive forms need their confirmation; a closed organization's pages
// link nowhere that would answer 403.
func TestConsolePages(t *testing.T) {
	t.Parallel()
	eachDB(t, testConsolePages)
}

func testConsolePages(t *testing.T, a *testApp) {
	c := patientClient(t, a)
	su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Pages", "email": "p@p.example", "name": "P", "password": "long enough password"}, 201)
	c.token = str(su, "session", "access_token")
	const csrf = "0123456789abcdef0123456789abcdef0123"

	status, html := consoleGet(t, a, c.token, csrf, "/console/?flash=Your+account+is+suspended")
	require.Equal(t, http.StatusOK, status)
	require.NotContains(t, html, "suspended")

	status, html = consoleGet(t, a, c.token, csrf, "/console/no/such/page")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, html, "There is no such page")
	require.Contains(t, html, `<nav aria-label="Console">`)
	resp, html := consolePost(t, a, c.token, csrf, "/console/no/such/form", url.Values{})
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Contains(t, html, `<nav aria-label="Console">`)
	req, err := http.NewRequest("DELETE", a.URL+"/console/contacts", nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: cookieAccess, Value: c.token})
	dresp, err := noRedirect().Do(req)
	require.NoError(t, err)
	dresp.Body.Close()
	require.Equal(t, http.StatusNotFound, dresp.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", dresp.Header.Get("Content-Type"))
	status, html = consoleGet(t, a, c.token, csrf, "/console/contacts/01a23000-0000-7000-8000-000000000000")
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, html, `<nav aria-label="Console">`)

	// A bad phone number: 400, the form keeps every field.
	resp, html = consolePost(t, a, c.token, csrf, "/console/contacts", url.Values{"first_name": {"Kim"}, "last_name": {"<Lo>"}, "email": {"kim@lo.example"}, "phone": {"12"}, "tags": {"vip, ring"}, "form_key": {randomToken()}})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, html)
	for _, v := range []string{`value="Kim"`, `value="&lt;Lo&gt;"`, `value="kim@lo.example"`, `value="12"`, `value="vip, ring"`} {
		require.Contains(t, html, v)
	}
	resp, _ = consolePost(t, a, c.token, csrf, "/console/contacts", url.Values{"first_name": {"Kim"}, "email": {"kim@lo.example"}, "form_key": {randomToken()}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "Contact created.", flashOf(t, a, resp))
	kim := strings.TrimPrefix(resp.Header.Get("Location"), "/console/contacts/")

	// The timeline shows a note and a task; delete needs its confirmation.
	resp, _ = consolePost(t, a, c.token, csrf, "/console/contacts/"+kim+"/notes", url.Values{"body": {"Prefers rose gold"}, "form_key": {randomToken()}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	resp, _ = consolePost(t, a, c.token, csrf, "/console/contacts/"+kim+"/tasks", url.Values{"title": {"Call back"}, "due": {"2026-12-24"}, "form_key": {randomToken()}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	_, html = consoleGet(t, a, c.token, csrf, "/console/contacts/"+kim)
	tl := between(html, `id="timeline">`, `</ul>`)
	require.Contains(t, tl, "Prefers rose gold")
	require.Contains(t, tl, "Call back — due 2026-12-24")
	resp, _ = consolePost(t, a, c.token, csrf, "/console/contacts/"+kim+"/request", url.Values{"kind": {"export"}, "form_key": {randomToken()}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	_, html = consoleGet(t, a, c.token, csrf, "/console/contacts/"+kim)
	require.Contains(t, between(html, `id="timeline">`, `</ul>`), "export — open")

	// Merge a duplicate: confirmed, its note moves here, it is gone.
	dup := str(c.call("POST", "/v1/contacts?allow_duplicate=true", map[string]any{"first_name": "Kim", "last_name": "L."}, 201), "contact", "id")
	c.call("POST", "/v1/notes", map[string]any{"contact_id": dup, "body": "Asked about earrings"}, 201)
	resp, _ = consolePost(t, a, c.token, csrf, "/console/contacts/"+kim+"/merge", url.Values{"duplicate": {dup}})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	c.call("GET", "/v1/contacts/"+dup, nil, 200)
	resp, _ = consolePost(t, a, c.token, csrf, "/console/contacts/"+kim+"/merge", url.Values{"duplicate": {dup}, "confirm": {"yes"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	c.call("GET", "/v1/contacts/"+dup, nil, 404)
	_, html = consoleGet(t, a, c.token, csrf, "/console/contacts/"+kim)
	require.Contains(t, between(html, `id="timeline">`, `</ul>`), "Asked about earrings")

	resp, html = consolePost(t, a, c.token, csrf, "/console/contacts/"+kim+"/delete", url.Values{})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, html, "tick the box to confirm")
	c.call("GET", "/v1/contacts/"+kim, nil, 200)
	resp, _ = consolePost(t, a, c.token, csrf, "/console/contacts/"+kim+"/delete", url.Values{"confirm": {"yes"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	c.call("GET", "/v1/contacts/"+kim, nil, 404)

	// Closed: the overview offers reopening and no link that answers 403.
	resp, _ = consolePost(t, a, c.token, csrf, "/console/tenant/close", url.Values{"confirm": {"Pages"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	status, html = consoleGet(t, a, c.token, csrf, "/console/")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, html, `id="reopen"`)
	for _, href := range regexpAll(`href="(/[^"]*)"`, html) {
		st, _ := consoleGet(t, a, c.token, csrf, href)
		require.Less(t, st, 400, "%s on a closed organization's overview answers %d", href, st)
	}
}

// regexpAll returns the first group of every match of expr in s.
func regexpAll(expr, s string) []string {
	var out []string
	for _, m := range regexp.MustCompile(expr).FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestTikTokPostChoices: a post names its audience (no default), allows
// only the interactions the creator's settings allow, discloses commercial
// content, and a paid partnership cannot be private; every bad choice is
// named at once, and what was chosen reaches TikTok.
func TestTikTokPostChoices(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, a *testApp) {
		c := patientClient(t, a)
		su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Posts", "email": "p@posts.example", "name": "P", "password": "long enough password"}, 201)
		c.token = str(su, "session", "access_token")
		st := c.call("POST", "/v1/connections/tiktok/start", nil, 200)
		conn := c.call("POST", "/v1/connections/tiktok/complete", map[string]string{"callback_url": c.consent(str(st, "authorize_url"), sandboxCreator)}, 201)
		connID := str(conn, "connection", "id")
		post := func(fields map[string]string, want int) map[string]any {
			t.Helper()
			var buf bytes.Buffer
			mw := multipart.NewWriter(&buf)
			for k, v := range fields {
				require.NoError(t, mw.WriteField(k, v))
			}
			require.NoError(t, mw.WriteField("idempotency_key", randomToken()))
			fw, err := mw.CreateFormFile("video", "clip.mp4")
			require.NoError(t, err)
			_, _ = fw.Write(bytes.Repeat([]byte{0, 0, 0, 0x18, 'f', 't', 'y', 'p'}, 1<<14))
			require.NoError(t, mw.Close())
			resp, raw := c.do("POST", "/v1/connections/"+connID+"/tiktok/publish", mw.FormDataContentType(), &buf)
			require.Equal(t, want, resp.StatusCode, "%s", raw)
			out := map[string]any{}
			require.NoError(t, json.Unmarshal(raw, &out))
			return out
		}
		require.Equal(t, []string{"privacy_level"}, problems(post(map[string]string{"title": "x"}, 400)))
		require.Equal(t, []string{"privacy_level", "commercial"}, problems(post(map[string]string{"commercial": "yes"}, 400)), "every bad choice at once")
		require.Equal(t, []string{"privacy_level"}, problems(post(map[string]string{"privacy_level": "SELF_ONLY", "brand_content": "true"}, 400)))
		require.Equal(t, []string{"allow_stitch"}, problems(post(map[string]string{"privacy_level": "SELF_ONLY", "allow_stitch": "true"}, 400)))
		require.Empty(t, a.plat.tiktokSrv.RequestsTo("/v2/post/publish/video/init/"), "nothing reached TikTok")

		post(map[string]string{"privacy_level": "MUTUAL_FOLLOW_FRIENDS", "allow_comment": "true", "brand_organic": "true", "commercial": "yes"}, 202)
		inits := a.plat.tiktokSrv.RequestsTo("/v2/post/publish/video/init/")
		require.Len(t, inits, 1)
		var sent struct {
			PostInfo map[string]any `json:"post_info"`
		}
		require.NoError(t, json.Unmarshal(inits[0].Body, &sent))
		require.Equal(t, map[string]any{"privacy_level": "MUTUAL_FOLLOW_FRIENDS", "disable_comment": false, "disable_duet": true,
			"disable_stitch": true, "brand_content_toggle": false, "brand_organic_toggle": true}, sent.PostInfo)
	})
}

package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPrivacyOneStep: the privacy API and console find a person by the
// identifier she gives — a phone number written differently than stored,
// her e-mail address, her Messenger PSID — in one step, export her data
// and erase it; a person who is not there gets "no data found", in the API
// and on the console page, never a plain "completed".
func TestPrivacyOneStep(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	c := newClient(t, a.URL)
	su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Shop", "email": "o@shop.example", "name": "O", "password": "long enough password"}, 201)
	c.token = str(su, "session", "access_token")
	ct := c.call("POST", "/v1/contacts", map[string]any{"first_name": "Zelda", "email": "zelda@example.com", "phone": "+15557654321"}, 201)
	c.call("POST", "/v1/contacts?allow_duplicate=true", map[string]any{"first_name": "Zeldup", "email": "ZELDA@example.com"}, 201)
	c.call("POST", "/v1/notes", map[string]any{"contact_id": str(ct, "contact", "id"), "body": "likes opals"}, 201)

	request := c.privacyRequest
	bad := c.call("POST", "/v1/privacy/requests", map[string]any{"kind": "access", "subject": map[string]string{"shoe_size": "42"}}, 400)
	require.Equal(t, []string{"subject.shoe_size"}, problems(bad))

	// Export by phone, in another format than stored: both contacts, her note.
	id := request("access", map[string]string{"phone": "+1 (555) 765-4321"})
	resp, zipped := c.do("GET", "/v1/privacy/requests/"+id+"/export", "", nil)
	require.Equal(t, 200, resp.StatusCode, "%s", zipped)
	all, _ := unzipText(t, zipped)
	for _, want := range []string{"Zelda", "Zeldup", "zelda@example.com", "likes opals", `"outcome": "data_found"`} {
		require.Contains(t, all, want)
	}

	// Erasure by e-mail: both contacts go.
	id = request("erasure", map[string]string{"email": "Zelda@Example.com"})
	rc := c.call("POST", "/v1/privacy/requests/"+id+"/erase", nil, 200)
	require.Equal(t, "data_found", str(rc, "receipt", "outcome"))
	require.Equal(t, "completed", str(c.call("GET", "/v1/privacy/requests/"+id, nil, 200), "request", "status"))
	require.Empty(t, c.call("GET", "/v1/contacts?email=zelda@example.com", nil, 200)["items"])

	// Nobody by that PSID: its own outcome, in the API and on the console.
	id = request("erasure", map[string]string{"thread_id": "psid-nobody"})
	rc = c.call("POST", "/v1/privacy/requests/"+id+"/erase", nil, 200)
	require.Equal(t, "no_data_found", str(rc, "receipt", "outcome"))
	got := c.call("GET", "/v1/privacy/requests/"+id, nil, 200)
	require.Equal(t, "no_data_found", str(got, "request", "status"))
	require.Equal(t, "no_data_found", str(got, "request", "outcome"))

	const csrf = "0123456789abcdef0123456789abcdef0123"
	status, html := consoleGet(t, a, c.token, csrf, "/console/privacy")
	require.Equal(t, http.StatusOK, status, html)
	require.Contains(t, html, `id="req-`+id+`"`)
	row := html[strings.Index(html, `id="req-`+id+`"`):]
	row = row[:strings.Index(row, "</tr>")]
	require.Contains(t, row, "No data found")
	require.Contains(t, row, "thread_id (sealed)", "the kind is shown, the identifier is stored sealed")
	require.NotContains(t, html, "psid-nobody")
	require.NotContains(t, fmt.Sprint(c.call("GET", "/v1/privacy/requests", nil, 200)), "psid-nobody")
	for _, k := range []string{`value="email"`, `value="phone"`, `value="thread_id"`, `value="open_id"`} {
		require.Contains(t, html, k, "the form offers every identifier kind")
	}

	// Through the console's form: the flash says no data was found.
	form := url.Values{"csrf": {csrf}, "kind": {"erasure"}, "subject_kind": {"open_id"}, "subject_value": {"open-nobody"}, "form_key": {randomToken()}}
	post := func(path string, form url.Values) *http.Response {
		req, err := http.NewRequest("POST", a.URL+path, strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: cookieAccess, Value: c.token})
		resp, err := noRedirect().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	require.Equal(t, http.StatusSeeOther, post("/console/privacy/requests", form).StatusCode)
	reqs := c.call("GET", "/v1/privacy/requests", nil, 200)["requests"].([]any)
	var openID string
	for _, r := range reqs {
		m := r.(map[string]any)
		if m["status"] == "open" && m["kind"] == "erasure" {
			openID = m["id"].(string)
		}
	}
	require.NotEmpty(t, openID)
	c.call("POST", "/v1/privacy/requests/"+openID+"/verify", map[string]string{"outcome": "verified"}, 200)
	resp = post("/console/privacy/requests/"+openID+"/erase", url.Values{"csrf": {csrf}, "confirm": {"yes"}, "form_key": {randomToken()}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/console/privacy", resp.Header.Get("Location"))
	require.Contains(t, flashOf(t, a, resp), "No data found")
}

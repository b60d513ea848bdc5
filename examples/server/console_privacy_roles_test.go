package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConsolePrivacyButtonsFollowRole: verifying a data-subject request's
// identity and erasing take an owner or admin (the retention engine
// refuses staff), so the privacy page shows staff neither button — only
// a note that an owner or admin verifies — and a forged verify form from
// staff is refused (403) and changes nothing. The owner sees both forms.
func TestConsolePrivacyButtonsFollowRole(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	const csrf = "0123456789abcdef0123456789abcdef0123"
	const pw = "long enough password"
	c := patientClient(t, a)
	su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Roles", "email": "olga@roles.example", "name": "Olga", "password": pw}, 201)
	owner := str(su, "session", "access_token")
	resp, html := consolePost(t, a, owner, csrf, "/console/team", url.Values{"name": {"Sam"}, "email": {"sam@roles.example"}, "role": {"staff"}, "password": {pw}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, html)
	resp, html = consolePost(t, a, "", csrf, "/console/login", url.Values{"email": {"sam@roles.example"}, "password": {pw}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, html)
	var staff string
	for _, ck := range resp.Cookies() {
		if ck.Name == cookieAccess {
			staff = ck.Value
		}
	}
	require.NotEmpty(t, staff)

	id := str(c.callAs(owner, "POST", "/v1/privacy/requests", map[string]any{"kind": "erasure", "subject": map[string]string{"email": "someone@roles.example"}}, 201), "request", "id")
	row := func(html string) string {
		t.Helper()
		i := strings.Index(html, `id="req-`+id+`"`)
		require.GreaterOrEqual(t, i, 0, "the request is listed")
		r := html[i:]
		return r[:strings.Index(r, "</tr>")]
	}

	status, html := consoleGet(t, a, staff, csrf, "/console/privacy")
	require.Equal(t, http.StatusOK, status)
	r := row(html)
	require.NotContains(t, r, "/verify", "staff get no verify form")
	require.NotContains(t, r, "/erase", "staff get no erase form")
	require.Contains(t, r, "An owner or admin verifies")
	resp, _ = consolePost(t, a, staff, csrf, "/console/privacy/requests/"+id+"/verify", url.Values{"outcome": {"verified"}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	status, html = consoleGet(t, a, owner, csrf, "/console/privacy")
	require.Equal(t, http.StatusOK, status)
	r = row(html)
	require.Contains(t, r, `action="/console/privacy/requests/`+id+`/verify"`)
	require.NotContains(t, r, "An owner or admin verifies")
	require.Equal(t, "pending", str(c.callAs(owner, "GET", "/v1/privacy/requests/"+id, nil, 200), "request", "verification"), "the refused form changed nothing")
	resp, _ = consolePost(t, a, owner, csrf, "/console/privacy/requests/"+id+"/verify", url.Values{"outcome": {"verified"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	status, html = consoleGet(t, a, owner, csrf, "/console/privacy")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, row(html), `/console/privacy/requests/`+id+`/erase"`)
}

package main

import (
	"archive/zip"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPrivacyByPlatformIdentifiers: through the server's privacy API, a
// person known only by her Messenger PSID (her messages arrived by
// webhook) and a creator known only by her TikTok open_id (her account
// connected and synced) are each exported whole and erased in one step;
// the erasure of the creator's connection revokes it at TikTok, and
// another person's thread and another creator's connection stay. The
// console lists both requests as completed, and a request by an unknown
// open_id as "no data found".
func TestPrivacyByPlatformIdentifiers(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	c := newClient(t, a.URL)
	su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Shop", "email": "o@shop.example", "name": "O", "password": "long enough password"}, 201)
	c.token = str(su, "session", "access_token")

	connect := func(openID string) string {
		st := c.call("POST", "/v1/connections/tiktok/start", nil, 200)
		conn := c.call("POST", "/v1/connections/tiktok/complete", map[string]string{"callback_url": c.consent(str(st, "authorize_url"), openID)}, 201)
		id := str(conn, "connection", "id")
		c.call("POST", "/v1/connections/"+id+"/sync", nil, 200)
		return id
	}
	creator, brand := connect("sandbox-creator"), connect("sandbox-brand")
	ms := c.call("POST", "/v1/connections/meta/start", nil, 200)
	c.call("POST", "/v1/connections/meta/complete", map[string]string{"callback_url": c.consentMeta(str(ms, "authorize_url"), "sandbox-fb-user")}, 201)
	c.call("POST", "/v1/sandbox/meta/message", map[string]string{"psid": "psid-zed", "text": "CanaryZedAsksAboutOpals"}, 204)
	c.call("POST", "/v1/sandbox/meta/message", map[string]string{"psid": "psid-other", "text": "CanaryOtherPerson"}, 204)
	require.Len(t, c.call("GET", "/v1/conversations", nil, 200)["items"], 2)

	request := func(kind string, subject map[string]string) string { return c.privacyRequest(kind, subject) }
	export := func(subject map[string]string) (string, []string) {
		resp, zipped := c.do("GET", "/v1/privacy/requests/"+request("access", subject)+"/export", "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", zipped)
		return unzipText(t, zipped)
	}

	// By PSID: her thread and its message, nobody else's.
	text, names := export(map[string]string{"thread_id": "psid-zed"})
	require.Contains(t, text, "CanaryZedAsksAboutOpals")
	require.Contains(t, text, "psid-zed", "the thread id, opened")
	require.NotContains(t, text, "CanaryOtherPerson")
	require.Contains(t, names, "crm.message.json")

	// By open_id: her connection with what the syncs fetched.
	text, names = export(map[string]string{"open_id": "sandbox-creator"})
	require.Contains(t, names, "social.media.json")
	require.Contains(t, names, "social.metrics.json")
	require.Contains(t, text, creator)
	require.NotContains(t, text, brand)

	erase := func(subject map[string]string) string {
		id := request("erasure", subject)
		rc := c.call("POST", "/v1/privacy/requests/"+id+"/erase", nil, 200)
		require.Equal(t, "data_found", str(rc, "receipt", "outcome"), "%v", rc)
		require.Equal(t, "completed", str(c.call("GET", "/v1/privacy/requests/"+id, nil, 200), "request", "status"))
		return id
	}
	psidReq := erase(map[string]string{"thread_id": "psid-zed"})
	convs := c.call("GET", "/v1/conversations", nil, 200)["items"].([]any)
	require.Len(t, convs, 1, "the other person's thread stays")
	msgs := c.call("GET", "/v1/conversations/"+convs[0].(map[string]any)["id"].(string)+"/messages", nil, 200)
	require.Equal(t, "CanaryOtherPerson", msgs["items"].([]any)[0].(map[string]any)["text"])

	revokes := len(a.plat.tiktokSrv.RequestsTo("/v2/oauth/revoke/"))
	openReq := erase(map[string]string{"open_id": "sandbox-creator"})
	c.call("GET", "/v1/connections/"+creator, nil, 404)
	require.Equal(t, "active", str(c.call("GET", "/v1/connections/"+brand, nil, 200), "connection", "status"))
	require.Equal(t, revokes+1, len(a.plat.tiktokSrv.RequestsTo("/v2/oauth/revoke/")), "the erased connection is revoked at TikTok")

	nobody := request("erasure", map[string]string{"open_id": "sandbox-nobody"})
	rc := c.call("POST", "/v1/privacy/requests/"+nobody+"/erase", nil, 200)
	require.Equal(t, "no_data_found", str(rc, "receipt", "outcome"))

	const csrf = "0123456789abcdef0123456789abcdef0123"
	status, html := consoleGet(t, a, c.token, csrf, "/console/privacy")
	require.Equal(t, http.StatusOK, status, html)
	row := func(id string) string {
		r := html[strings.Index(html, `id="req-`+id+`"`):]
		return r[:strings.Index(r, "</tr>")]
	}
	require.Contains(t, row(psidReq), `class="status">completed`)
	require.Contains(t, row(openReq), `class="status">completed`)
	require.Contains(t, row(nobody), "No data found")
	for _, v := range []string{"psid-zed", "sandbox-creator", "sandbox-nobody"} {
		require.NotContains(t, html, v, "identifiers are not shown")
	}
}

// privacyRequest submits a data-subject request of kind about subject and
// marks the person's identity verified; it returns the request's id.
func (c *client) privacyRequest(kind string, subject map[string]string) string {
	r := c.call("POST", "/v1/privacy/requests", map[string]any{"kind": kind, "subject": subject}, 201)
	id := str(r, "request", "id")
	c.call("POST", "/v1/privacy/requests/"+id+"/verify", map[string]string{"outcome": "verified"}, 200)
	return id
}

// unzipText returns the contents of every file of a zip archive, one
// after the other, and the files' names.
func unzipText(t *testing.T, zipped []byte) (string, []string) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	require.NoError(t, err)
	var all strings.Builder
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		rc, err := f.Open()
		require.NoError(t, err)
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		rc.Close()
		all.Write(b)
	}
	return all.String(), names
}

package main

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/meta/metatest"
)

// TestRefusedGrantIs4xxEverywhereS10: when the platform refuses a grant —
// a code spent already, a refresh token or an access token revoked at the
// platform without the webhook reaching the server — every route that
// touches OAuth answers 4xx (API and console alike), never 500.
func TestRefusedGrantIs4xxEverywhereS10(t *testing.T) {
	eachDB(t, func(t *testing.T, a *testApp) {
		c := patientClient(t, a)
		su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Grants", "email": "g@grants.example", "name": "G", "password": "long enough password"}, 201)
		c.token = str(su, "session", "access_token")
		no5xx := func(resp *http.Response, body []byte, what string) {
			t.Helper()
			require.Less(t, resp.StatusCode, 500, "%s answered %d: %s", what, resp.StatusCode, body)
		}
		console := func(method, path string, form url.Values) {
			t.Helper()
			var resp *http.Response
			var body string
			if method == "GET" {
				var status int
				status, body = consoleGet(t, a, c.token, "", path)
				resp = &http.Response{StatusCode: status}
			} else {
				resp, body = consolePost(t, a, c.token, "", path, form)
			}
			no5xx(resp, []byte(body), method+" "+path)
		}
		reuse := func(cb, spent string) string {
			u, err := url.Parse(cb)
			require.NoError(t, err)
			q := u.Query()
			q.Set("code", mustQuery(t, spent, "code"))
			u.RawQuery = q.Encode()
			return u.String()
		}
		path := func(raw string) string {
			u, err := url.Parse(raw)
			require.NoError(t, err)
			return u.RequestURI()
		}

		// TikTok: a spent code, through the API and the console callback.
		st := c.call("POST", "/v1/connections/tiktok/start", nil, 200)
		first := c.consent(str(st, "authorize_url"), sandboxCreator)
		conn := str(c.call("POST", "/v1/connections/tiktok/complete", map[string]string{"callback_url": first}, 201), "connection", "id")
		st = c.call("POST", "/v1/connections/tiktok/start", nil, 200)
		c.call("POST", "/v1/connections/tiktok/complete", map[string]string{"callback_url": reuse(c.consent(str(st, "authorize_url"), sandboxCreator), first)}, 400)
		st = c.call("POST", "/v1/connections/tiktok/start", nil, 200)
		console("GET", path(reuse(c.consent(str(st, "authorize_url"), sandboxCreator), first)), nil)

		// The creator's tokens revoked at TikTok, no webhook: every use of
		// the connection is refused by the platform.
		a.plat.tiktokSrv.Revoke(sandboxTikTokKey, sandboxCreator)
		resp, body := c.do("POST", "/v1/connections/"+conn+"/sync", "", nil)
		no5xx(resp, body, "sync")
		resp, body = c.do("GET", "/v1/connections/"+conn+"/insights", "", nil)
		no5xx(resp, body, "insights")
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("title", "clip")
		_ = mw.WriteField("privacy_level", "SELF_ONLY")
		_ = mw.WriteField("idempotency_key", randomToken())
		fw, err := mw.CreateFormFile("video", "clip.mp4")
		require.NoError(t, err)
		_, _ = fw.Write(bytes.Repeat([]byte{1}, 1024))
		require.NoError(t, mw.Close())
		resp, body = c.do("POST", "/v1/connections/"+conn+"/tiktok/publish", mw.FormDataContentType(), &buf)
		no5xx(resp, body, "publish")
		resp, body = c.do("GET", "/v1/connections/"+conn+"/tiktok/publish/v_pub_file~v2.1", "", nil)
		no5xx(resp, body, "publish status")
		console("GET", "/console/connections/"+conn, nil)
		console("POST", "/console/connections/"+conn+"/sync", url.Values{"form_key": {randomToken()}})
		console("POST", "/console/connections/"+conn+"/publish", url.Values{"title": {"clip"}, "privacy_level": {"SELF_ONLY"}})
		resp, body = c.do("DELETE", "/v1/connections/"+conn, "", nil)
		no5xx(resp, body, "disconnect")

		// Meta: a spent code, through the API and the console callback.
		ms := c.call("POST", "/v1/connections/meta/start", nil, 200)
		mfirst := c.consentMeta(str(ms, "authorize_url"), sandboxFBUser)
		mc := c.call("POST", "/v1/connections/meta/complete", map[string]string{"callback_url": mfirst}, 201)
		page := str(mc["pages"].([]any)[0].(map[string]any), "page", "id")
		ms = c.call("POST", "/v1/connections/meta/start", nil, 200)
		c.call("POST", "/v1/connections/meta/complete", map[string]string{"callback_url": reuse(c.consentMeta(str(ms, "authorize_url"), sandboxFBUser), mfirst)}, 400)
		ms = c.call("POST", "/v1/connections/meta/start", nil, 200)
		console("GET", path(reuse(c.consentMeta(str(ms, "authorize_url"), sandboxFBUser), mfirst)), nil)

		// The Page token dies at Meta (190, the user changed the password):
		// publish and sync are refused, the client is told so with a 4xx.
		for _, p := range []string{"/*/feed", "/*"} {
			require.NoError(t, a.plat.metaSrv.InjectFault(metatest.Fault{Path: p, Count: 1, Code: 190, Subcode: 460}))
		}
		resp, body = c.do("POST", "/v1/connections/"+page+"/meta/publish", "application/json", strings.NewReader(`{"message":"hello"}`))
		no5xx(resp, body, "meta publish")
		require.NoError(t, a.plat.metaSrv.InjectFault(metatest.Fault{Path: "/*", Count: 3, Code: 190, Subcode: 460}))
		resp, body = c.do("POST", "/v1/connections/"+page+"/sync", "", nil)
		no5xx(resp, body, "meta sync")
		require.NoError(t, a.plat.metaSrv.InjectFault(metatest.Fault{Path: "/*", Count: 3, Code: 190, Subcode: 460}))
		console("POST", "/console/connections/"+page+"/meta/publish", url.Values{"message": {"hello"}, "form_key": {randomToken()}})
	})
}

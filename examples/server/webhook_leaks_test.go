package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/meta/metatest"
)

// TestWebhookErrorsLeaks: every error answer of the platforms' webhooks
// and of Meta's callbacks carries the request's id — the one in the
// X-Request-Id header, the caller's own when it sent one — in the API's
// JSON error shape; the deletion status page, which a person opens, says
// it on a line of its own, or in JSON when asked.
func TestWebhookErrorsLeaks(t *testing.T) {
	p := newTestApp(t)
	c := newClient(t, p.URL)
	forged, err := metatest.EncodeSignedRequest("not-the-secret", metatest.SignedRequestPayload{Algorithm: "HMAC-SHA256", IssuedAt: time.Now().Unix(), UserID: "someone"})
	require.NoError(t, err)
	form := "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		method, path, contentType, body string
		status                          int
	}{
		{"POST", "/webhooks/tiktok", "application/json", `{"event":"authorization.removed"}`, http.StatusUnauthorized},
		{"POST", "/webhooks/tiktok", "application/json", strings.Repeat("x", 2<<20), http.StatusRequestEntityTooLarge},
		{"GET", "/webhooks/meta?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1", "", "", http.StatusForbidden},
		{"POST", "/webhooks/meta", "application/json", `{"object":"page","entry":[]}`, http.StatusUnauthorized},
		{"POST", "/webhooks/meta/deauthorize", form, "", http.StatusBadRequest},
		{"POST", "/webhooks/meta/deauthorize", form, url.Values{"signed_request": {forged}}.Encode(), http.StatusUnauthorized},
		{"POST", "/webhooks/meta/data-deletion", form, "", http.StatusBadRequest},
		{"POST", "/webhooks/meta/data-deletion", form, url.Values{"signed_request": {forged}}.Encode(), http.StatusUnauthorized},
		{"GET", "/meta/deletion-status?code=unknown", "application/json", "", http.StatusNotFound},
		{"GET", "/webhooks/tiktok", "", "", http.StatusMethodNotAllowed},
		{"PUT", "/webhooks/meta", "", "", http.StatusMethodNotAllowed},
		{"GET", "/webhooks/meta/data-deletion", "", "", http.StatusMethodNotAllowed},
	} {
		for _, sent := range []string{"", "caller-id-42"} {
			req, err := http.NewRequest(tc.method, p.URL+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			req.Header.Set("Accept", "application/json")
			if sent != "" {
				req.Header.Set(headerRequestID, sent)
			}
			resp, err := c.hc.Do(req)
			require.NoError(t, err)
			var out struct {
				Error apiError `json:"error"`
			}
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			name := tc.method + " " + tc.path[:min(len(tc.path), 40)]
			require.Equal(t, tc.status, resp.StatusCode, name)
			require.NoError(t, err, "%s: the error body is the API's JSON shape", name)
			id := resp.Header.Get(headerRequestID)
			require.NotEmpty(t, id, name)
			if sent != "" {
				require.Equal(t, sent, id, name)
			}
			require.Equal(t, id, out.Error.RequestID, "%s: the error body names the request", name)
			require.NotEmpty(t, out.Error.Code, name)
			require.NotEmpty(t, out.Error.Message, name)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"), name)
		}
	}

	// The status page a person opens: plain text, the id on its own line.
	resp, body := c.do("GET", "/meta/deletion-status?code=unknown", "", nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"))
	require.Contains(t, string(body), "No data deletion request has this confirmation code.")
	require.Contains(t, string(body), "\nRequest id: "+resp.Header.Get(headerRequestID)+"\n")

	// Successes pass through as they were.
	resp, body = c.do("GET", "/webhooks/meta?hub.mode=subscribe&hub.verify_token=sandbox-meta-verify&hub.challenge=12345", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "12345", string(body))
}

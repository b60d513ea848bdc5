package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/tenancy"
)

// TestNoInputAnswers500 sends malformed and hostile bodies and path values
// to every API route, signed in as an owner: each answer is a 4xx (or a
// success), never a 500, and errors have the one error shape.
func TestNoInputAnswers500(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	c := newClient(t, a.URL)
	su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Fuzz", "email": "f@f.example", "name": "F", "password": "long enough password"}, 201)
	c.token = str(su, "session", "access_token")

	bodies := []string{"", "{", "[]", "null", `"x"`, `{"a":1}`, `{"kind":7}`, `{"subject":{"":""}}`,
		`{"name":"` + strings.Repeat("x", 5000) + `"}`, `{"outcome":"verified","confirm":null}`,
		`{"callback_url":"http://127.0.0.1/?state=x&code=y"}`, `{"refresh_token":"rt1.a.b.c"}`, "\x00\xff",
		`{"version":1,"stage":"nope"}`, `{"version":-1,"status":"paid","amount":-5}`, `{"version":9223372036854775807,"amount":9223372036854775807}`,
		`{"lines":[{"description":"x","quantity":9223372036854775807,"unit_price":9223372036854775807}],"currency":"EUR"}`,
		`{"values":{"a":[1],"b":{"c":null}}}`, `{"member_id":"` + tenancy.NewID() + `"}`, `{"channel":"email","purpose":"marketing","source":"x"}`,
		`{"record_kind":"contact","name":"A B","type":"select"}`, "a,b\n\"unterminated"}
	// CSV import: malformed files are a 4xx or a per-row report.
	for _, b := range append(bodies, "a\n", "first_name\n\"x", "email,email\nx,y\n", strings.Repeat("a,", 10000)+"\n1\n") {
		resp, raw := c.do("POST", "/v1/contacts/import", "text/csv", strings.NewReader(b))
		require.Less(t, resp.StatusCode, 500, "import of %q answered %s", b, raw)
	}
	ids := []string{tenancy.NewID(), "x", "..%2f..", strings.Repeat("9", 300)}
	param := regexp.MustCompile(`\{[a-z_]+\}`)
	for _, r := range a.routes {
		if r.Console || r.Path == "/v1/logout" {
			continue
		}
		for _, id := range ids {
			path := param.ReplaceAllString(r.Path, id)
			for _, b := range bodies {
				resp, raw := c.do(r.Method, path, "application/json", strings.NewReader(b))
				require.Less(t, resp.StatusCode, 500, "%s %s with %q answered %s", r.Method, path, b, raw)
				if resp.StatusCode >= 400 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
					require.Contains(t, string(raw), `"error":{"code":`, "%s %s", r.Method, path)
				}
				if r.Method == http.MethodGet || r.Method == http.MethodDelete {
					break // no body read
				}
			}
		}
	}
}

// TestErrorShape: every refusal of the API has the one JSON error shape
// with the request's id (also in X-Request-Id) — an unknown route (404), a
// wrong method (405, with Allow), a body over 1 MiB (413), a NUL character
// in a JSON string or a query (400), malformed JSON, an authorization code
// the platform refuses (invalid_grant) — a 401 names its scheme in
// WWW-Authenticate, every bad field and unknown query parameter is listed
// at once.
func TestErrorShape(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	c := newClient(t, a.URL)
	su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Shape", "email": "s@s.example", "name": "S", "password": "long enough password"}, 201)
	c.token = str(su, "session", "access_token")

	refused := func(method, path, contentType, body string, status int, code string) map[string]any {
		t.Helper()
		resp, raw := c.do(method, path, contentType, strings.NewReader(body))
		require.Equal(t, status, resp.StatusCode, "%s %s: %s", method, path, raw)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"), "%s %s", method, path)
		var out struct {
			Error map[string]any `json:"error"`
		}
		require.NoError(t, json.Unmarshal(raw, &out), "%s", raw)
		require.Equal(t, code, out.Error["code"], "%s", raw)
		require.NotEmpty(t, out.Error["message"])
		require.Regexp(t, `^[0-9a-f]{32}$`, out.Error["request_id"])
		require.Equal(t, out.Error["request_id"], resp.Header.Get("X-Request-Id"))
		return out.Error
	}
	fields := func(e map[string]any) map[string]string {
		out := map[string]string{}
		for _, f := range e["fields"].([]any) {
			f := f.(map[string]any)
			out[f["field"].(string)] = f["problem"].(string)
		}
		return out
	}

	refused("GET", "/v1/nothing-here", "", "", http.StatusNotFound, "not_found")
	refused("GET", "/nothing", "", "", http.StatusNotFound, "not_found")
	resp, _ := c.do("PATCH", "/v1/contacts", "", nil)
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Allow"), "POST")
	refused("PATCH", "/v1/contacts", "", "", http.StatusMethodNotAllowed, "method_not_allowed")
	refused("POST", "/v1/contacts", "application/json", `{"first_name":"`+strings.Repeat("x", 2<<20)+`"}`, http.StatusRequestEntityTooLarge, "too_large")
	refused("POST", "/v1/contacts", "application/json", `{"first_name":`, http.StatusBadRequest, "invalid")

	e := refused("POST", "/v1/contacts", "application/json", `{"first_name":"A\u0000B","last_name":"Lee"}`, http.StatusBadRequest, "invalid")
	require.Equal(t, map[string]string{"first_name": "must not contain a NUL character"}, fields(e))
	e = refused("GET", "/v1/contacts?tag=a%00b", "", "", http.StatusBadRequest, "invalid")
	require.Equal(t, map[string]string{"tag": "must not contain a NUL character"}, fields(e))

	e = refused("POST", "/v1/contacts", "application/json", `{"first_name":7,"tags":"x","nope":1,"last_name":"Lee"}`, http.StatusBadRequest, "invalid")
	require.Equal(t, map[string]string{"first_name": "must be a string", "tags": "must be a array", "nope": "unknown field"}, fields(e),
		"every bad field at once")
	e = refused("GET", "/v1/contacts?bogus=1&limit=5&other=2", "", "", http.StatusBadRequest, "invalid")
	require.Equal(t, map[string]string{"bogus": "unknown query parameter", "other": "unknown query parameter"}, fields(e))

	anon := newClient(t, a.URL)
	resp, _ = anon.do("GET", "/v1/contacts", "", nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, `Bearer realm="socialcrm"`, resp.Header.Get("WWW-Authenticate"))
	anon.token = "at1.forged.token"
	resp, _ = anon.do("GET", "/v1/me", "", nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("WWW-Authenticate"))

	// A code TikTok refuses at the token exchange.
	start := c.call("POST", "/v1/connections/tiktok/start", nil, 200)
	callback, err := url.Parse(c.consent(str(start, "authorize_url"), sandboxCreator))
	require.NoError(t, err)
	q := callback.Query()
	q.Set("code", "not-the-code")
	callback.RawQuery = q.Encode()
	refused("POST", "/v1/connections/tiktok/complete", "application/json", `{"callback_url":"`+callback.String()+`"}`, http.StatusBadRequest, "invalid_grant")
}

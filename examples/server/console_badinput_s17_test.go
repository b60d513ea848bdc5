package main

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// consoleFormFields returns the fields of each POST form of the console's
// templates, by action (ids as "{id}").
func consoleFormFields(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob("console/*.html")
	require.NoError(t, err)
	nameRE := regexp.MustCompile(`name="([a-z_]+)"`)
	out := map[string][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range formTagRE.FindAllStringSubmatch(string(b), -1) {
			action := regexp.MustCompile(`\{\{[^}]*\}\}`).ReplaceAllString(m[1], "{id}")
			for _, n := range nameRE.FindAllStringSubmatch(m[2], -1) {
				if n[1] != "csrf" && n[1] != "form_key" {
					out[action] = append(out[action], n[1])
				}
			}
		}
	}
	return out
}

// TestConsoleBadInputS17: every POST form of the console, sent with each
// of its fields empty, huge, not UTF-8, holding a NUL, of the wrong type
// or out of range (a NUL and bytes that are not UTF-8 are refused before
// any handler, naming the field), on real records (so that the handlers get past "not
// found" to the fields), answers a 4xx page that says what is wrong (or
// acts, when the value is acceptable), never a 500; and a refused form
// shows what was typed.
func TestConsoleBadInputS17(t *testing.T) {
	t.Parallel()
	fields := consoleFormFields(t)
	eachDB(t, func(t *testing.T, a *testApp) {
		c := patientClient(t, a)
		const pw = "long enough password"
		su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Fuzz", "email": "f@fuzz.example", "name": "F", "password": pw}, 201)
		c.token = str(su, "session", "access_token")
		const csrf = "0123456789abcdef0123456789abcdef0123"
		// A record of every kind a form posts on.
		ids := map[string]string{}
		ids["contacts"] = str(c.call("POST", "/v1/contacts", map[string]any{"first_name": "Fay"}, 201), "contact", "id")
		ms := c.call("POST", "/v1/connections/meta/start", nil, 200)
		mc := c.call("POST", "/v1/connections/meta/complete", map[string]string{"callback_url": c.consentMeta(str(ms, "authorize_url"), "sandbox-fb-user")}, 201)
		ids["connections"] = str(mc["pages"].([]any)[0].(map[string]any), "page", "id")
		c.call("POST", "/v1/sandbox/meta/message", map[string]string{"psid": "psid-fuzz", "text": "Hi"}, 204)
		ids["inbox"] = c.call("GET", "/v1/conversations", nil, 200)["items"].([]any)[0].(map[string]any)["id"].(string)
		pl := str(c.call("POST", "/v1/pipelines", map[string]any{"name": "Sales", "stages": []string{"new", "won"}}, 201), "pipeline", "id")
		ids["deals"] = str(c.call("POST", "/v1/deals", map[string]any{"pipeline_id": pl, "title": "Ring"}, 201), "deal", "id")
		client := str(c.call("POST", "/v1/clients", map[string]any{"name": "Acme"}, 201), "client", "id")
		ids["invoices"] = str(c.call("POST", "/v1/invoices", map[string]any{"number": "1", "client_id": client, "currency": "EUR", "bill_to": map[string]string{"bill_to_name": "Acme"},
			"lines": []map[string]any{{"description": "x", "quantity": 1, "unit_price": 100}}}, 201), "invoice", "id")
		ids["proposals"] = str(c.call("POST", "/v1/proposals", map[string]any{"client_id": client, "title": "Plan", "currency": "EUR"}, 201), "proposal", "id")
		ids["tasks"] = str(c.call("POST", "/v1/tasks", map[string]any{"title": "Call", "status": "open"}, 201), "task", "id")
		ids["requests"] = str(c.call("POST", "/v1/privacy/requests", map[string]any{"kind": "erasure", "subject": map[string]string{"email": "x@fuzz.example"}}, 201), "request", "id")
		ids["keys"] = str(c.call("POST", "/v1/api-keys", map[string]string{"name": "ci", "role": "staff"}, 201), "api_key", "id")
		ids["team"] = str(c.call("POST", "/v1/members", map[string]any{"name": "Sam", "email": "s@fuzz.example", "role": "staff", "password": pw}, 201), "member", "id")
		idFor := func(path string) string {
			for k, id := range ids {
				if strings.Contains(path, "/"+k+"/") {
					return id
				}
			}
			t.Fatalf("no record for %s", path)
			return ""
		}

		values := map[string]string{"empty": "", "huge": strings.Repeat("x", 100_000), "not UTF-8": "\xff\xfe\xfd", "NUL": "a\x00b",
			"wrong type": "abc", "out of range": "9223372036854775808"}
		sent := 0
		for action, names := range fields {
			switch action {
			case "/console/logout", "/console/connections/{id}/publish", "/console/contacts/import":
				continue // signs out; multipart forms with a file, fuzzed by the API test
			}
			path := action
			if strings.Contains(path, "{id}") {
				path = strings.ReplaceAll(path, "{id}", idFor(path))
			}
			for what, v := range values {
				form := url.Values{}
				for _, n := range names {
					form.Set(n, v)
				}
				token := c.token
				if action == "/console/signup" || strings.HasPrefix(action, "/console/login") {
					token = ""
				}
				resp, body := consolePost(t, a, token, csrf, path, form)
				sent++
				require.Less(t, resp.StatusCode, 500, "%s with every field %s: %s", action, what, errorOf(body))
				require.NotContains(t, body, "internal error", "%s with every field %s", action, what)
				if resp.StatusCode >= 400 {
					require.Contains(t, body, `id="error" role="alert"`, "%s with every field %s: the page says what is wrong", action, what)
				}
			}
		}
		require.Greater(t, sent, 150, "every form was sent")
		status, _ := consoleGet(t, a, c.token, csrf, "/console/")
		require.Equal(t, http.StatusOK, status, "the organization is still open")
	})
}

// errorOf is the error box of a console page, or the page's title.
func errorOf(html string) string {
	if i := strings.Index(html, `id="error"`); i >= 0 {
		return html[i:min(len(html), i+600)]
	}
	if i := strings.Index(html, "<title>"); i >= 0 {
		return html[i:min(len(html), i+200)]
	}
	return html[:min(len(html), 300)]
}

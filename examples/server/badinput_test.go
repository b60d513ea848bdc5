package main

import (
	"net/http"
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

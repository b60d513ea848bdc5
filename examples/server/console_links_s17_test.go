package main

import (
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConsoleNoDeadLinksS17 follows every link of the console from the
// overview, signed in as the owner of an organization with a record of
// each kind: every page a link leads to answers 200 (or a download), none
// a 404 or a 500.
func TestConsoleNoDeadLinksS17(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, a *testApp) {
		c := patientClient(t, a)
		su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Links", "email": "l@links.example", "name": "L", "password": "long enough password"}, 201)
		c.token = str(su, "session", "access_token")
		contact := str(c.call("POST", "/v1/contacts", map[string]any{"first_name": "Lin", "email": "lin@links.example"}, 201), "contact", "id")
		c.call("POST", "/v1/tasks", map[string]any{"title": "Call", "status": "open", "contact_id": contact}, 201)
		ms := c.call("POST", "/v1/connections/meta/start", nil, 200)
		c.call("POST", "/v1/connections/meta/complete", map[string]string{"callback_url": c.consentMeta(str(ms, "authorize_url"), "sandbox-fb-user")}, 201)
		c.call("POST", "/v1/sandbox/meta/message", map[string]string{"psid": "psid-links", "text": "Hi"}, 204)
		pl := str(c.call("POST", "/v1/pipelines", map[string]any{"name": "Sales", "stages": []string{"new", "won"}}, 201), "pipeline", "id")
		c.call("POST", "/v1/deals", map[string]any{"pipeline_id": pl, "title": "Ring", "contact_id": contact}, 201)
		client := str(c.call("POST", "/v1/clients", map[string]any{"name": "Acme"}, 201), "client", "id")
		c.call("POST", "/v1/invoices", map[string]any{"number": "1", "client_id": client, "currency": "EUR", "bill_to": map[string]string{"bill_to_name": "Acme"},
			"lines": []map[string]any{{"description": "x", "quantity": 1, "unit_price": 100}}}, 201)
		c.call("POST", "/v1/proposals", map[string]any{"client_id": client, "title": "Plan", "currency": "EUR"}, 201)
		c.call("POST", "/v1/privacy/requests", map[string]any{"kind": "access", "subject": map[string]string{"email": "lin@links.example"}}, 201)

		hrefRE := regexp.MustCompile(`<a [^>]*href="(/[^"#]*)"`)
		seen := map[string]bool{"/console/": true}
		queue := []string{"/console/"}
		for len(queue) > 0 && len(seen) < 300 {
			path := queue[0]
			queue = queue[1:]
			status, body := consoleGet(t, a, c.token, "", path)
			require.Contains(t, []int{http.StatusOK}, status, "%s answered %d: %s", path, status, errorOf(body))
			if !strings.Contains(body, "<html") {
				continue // a download
			}
			for _, m := range hrefRE.FindAllStringSubmatch(body, -1) {
				next := html.UnescapeString(m[1])
				if !strings.HasPrefix(next, "/console/") || next == "/console/login" || seen[next] {
					continue
				}
				seen[next] = true
				queue = append(queue, next)
			}
		}
		require.Greater(t, len(seen), 20, "the crawl reached the console's pages")
	})
}

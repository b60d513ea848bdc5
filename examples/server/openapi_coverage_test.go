package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOpenAPIRecordRoundTrips drives, in-process, the record operations
// the end-to-end tests leave out — read one, update it with what was read,
// delete it — so that each API operation is validated against openapi.yaml
// at least once (TestMain checks it after a full run).
func TestOpenAPIRecordRoundTrips(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	c := newClient(t, a.URL)
	su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Round trips", "email": "r@r.example", "name": "R", "password": "long enough password"}, 201)
	c.token = str(su, "session", "access_token")

	// CRUD kinds: the record read is the body of its update.
	pl := c.call("POST", "/v1/pipelines", map[string]any{"name": "Sales", "stages": []string{"new", "won"}}, 201)
	ct := c.call("POST", "/v1/contacts", map[string]any{"first_name": "Ada", "email": "ada@example.com"}, 201)
	co := c.call("POST", "/v1/companies", map[string]any{"name": "Atelier"}, 201)
	contactID := str(ct, "contact", "id")
	dl := c.call("POST", "/v1/deals", map[string]any{"pipeline_id": str(pl, "pipeline", "id"), "title": "Rings", "amount": 100, "currency": "EUR", "contact_id": contactID}, 201)
	ac := c.call("POST", "/v1/activities", map[string]any{"kind": "call", "direction": "out", "contact_id": contactID, "occurred_at": "2026-01-02T10:00:00Z"}, 201)
	tk := c.call("POST", "/v1/tasks", map[string]any{"title": "Call back", "contact_id": contactID}, 201)
	nt := c.call("POST", "/v1/notes", map[string]any{"body": "Likes opals", "contact_id": contactID}, 201)
	for _, r := range []struct {
		path, name string
		created    map[string]any
		del        bool
	}{
		{"/v1/pipelines", "pipeline", pl, false},
		{"/v1/companies", "company", co, false},
		{"/v1/deals", "deal", dl, true},
		{"/v1/activities", "activity", ac, true},
		{"/v1/tasks", "task", tk, true},
		{"/v1/notes", "note", nt, true},
	} {
		id := str(r.created, r.name, "id")
		got := c.call("GET", r.path+"/"+id, nil, 200)
		c.call("PUT", r.path+"/"+id, got[r.name], 200)
		if r.del {
			c.call("DELETE", r.path+"/"+id, nil, 204)
			c.call("GET", r.path+"/"+id, nil, 404)
		}
	}
	c.call("DELETE", "/v1/contacts/"+contactID, nil, 204)

	// Input kinds: the update names the version it read.
	cl := c.call("POST", "/v1/clients", map[string]any{"name": "Brand"}, 201)
	clientID := str(cl, "client", "id")
	c.call("GET", "/v1/clients/"+clientID, nil, 200)
	cp := c.call("POST", "/v1/campaigns", map[string]any{"client_id": clientID, "name": "Spring", "status": "active", "currency": "EUR"}, 201)
	c.call("GET", "/v1/campaigns/"+str(cp, "campaign", "id"), nil, 200)
	c.call("DELETE", "/v1/campaigns/"+str(cp, "campaign", "id"), nil, 204)
	pr := c.call("POST", "/v1/proposals", map[string]any{"client_id": clientID, "title": "Content", "amount": 900, "currency": "EUR"}, 201)
	c.call("GET", "/v1/proposals/"+str(pr, "proposal", "id"), nil, 200)
	c.call("DELETE", "/v1/proposals/"+str(pr, "proposal", "id"), nil, 204)
	inv := func(number string) string {
		return str(c.call("POST", "/v1/invoices", map[string]any{"number": number, "client_id": clientID, "currency": "EUR", "bill_to": map[string]any{"bill_to_name": "Brand"},
			"lines": []map[string]any{{"description": "Posts", "quantity": 1, "unit_price": 1000}}}, 201), "invoice", "id")
	}
	draft, issued := inv("R-1"), inv("R-2")
	c.call("PUT", "/v1/invoices/"+draft, map[string]any{"version": 1, "number": "R-1b", "client_id": clientID, "currency": "EUR", "bill_to": map[string]any{"bill_to_name": "Brand"},
		"lines": []map[string]any{{"description": "Posts", "quantity": 2, "unit_price": 1000}}}, 200)
	c.call("DELETE", "/v1/invoices/"+draft, nil, 204)
	c.call("POST", "/v1/invoices/"+issued+"/issue", map[string]any{"version": 1}, 200)
	require.Equal(t, "void", str(c.call("POST", "/v1/invoices/"+issued+"/void", map[string]any{"version": 2}, 200), "invoice", "status"))

	// A client's portal member: linked, then unlinked.
	m := c.call("POST", "/v1/members", map[string]any{"email": "p@brand.example", "name": "P", "role": "client", "client_id": clientID, "password": "long enough password"}, 201)
	memberID := str(m, "member", "id")
	c.call("POST", "/v1/clients/"+clientID+"/members", map[string]any{"member_id": memberID}, 201)
	require.Len(t, c.call("GET", "/v1/clients/"+clientID+"/members", nil, 200)["items"], 1)
	c.call("DELETE", "/v1/clients/"+clientID+"/members/"+memberID, nil, 204)
	spare := str(c.call("POST", "/v1/clients", map[string]any{"name": "Spare"}, 201), "client", "id")
	c.call("DELETE", "/v1/clients/"+spare, nil, 204)
}

package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/tenancy"
)

// driveRecords drives the CRM records beyond contacts and companies through
// the API as the tenant's owner c: pipelines and deals with stage moves,
// activities, tasks, notes, consent, clients, campaigns, proposals,
// invoices, contacts CSV and custom fields; then the client portal as a
// member with the client role.
func driveRecords(t *testing.T, c *client, base, tenantID string) {
	other := tenancy.NewID() // an id the tenant does not have

	// Pipelines and deals: stage moves recorded, stale versions refused.
	require.Subset(t, problems(c.call("POST", "/v1/pipelines", map[string]any{"name": "", "stages": []string{"a", "a"}}, 400)), []string{"name"})
	pl := c.call("POST", "/v1/pipelines", map[string]any{"name": "Sales", "stages": []string{"new", "won over", "closed"},
		"won_stage": "won over", "lost_stage": "closed"}, 201)
	plID := str(pl, "pipeline", "id")
	c.call("POST", "/v1/pipelines", map[string]any{"name": "Sales", "stages": []string{"new"}, "id": other}, 400) // the server gives ids
	ct := c.call("POST", "/v1/contacts", map[string]any{"first_name": "Bo", "email": "bo@example.com"}, 201)
	contactID := str(ct, "contact", "id")
	require.Subset(t, problems(c.call("POST", "/v1/deals", map[string]any{"pipeline_id": plID, "title": "", "amount": -1}, 400)), []string{"title", "amount"})
	dl := c.call("POST", "/v1/deals", map[string]any{"pipeline_id": plID, "title": "Rings", "amount": 120000, "currency": "EUR", "contact_id": contactID}, 201)
	dealID := str(dl, "deal", "id")
	require.Equal(t, "new", str(dl, "deal", "stage"))
	require.Equal(t, "open", str(dl, "deal", "status"))
	mv := c.call("POST", "/v1/deals/"+dealID+"/stage", map[string]any{"version": 1, "stage": "won over"}, 200)
	require.Equal(t, "won over", str(mv, "deal", "stage"))
	require.Equal(t, "won", str(mv, "deal", "status"), "the won stage wins the deal")
	c.call("POST", "/v1/deals/"+dealID+"/stage", map[string]any{"version": 1, "stage": "closed"}, 409)
	c.call("POST", "/v1/deals/"+dealID+"/stage", map[string]any{"version": 2, "stage": "nowhere"}, 400)
	c.call("POST", "/v1/deals/"+dealID+"/stage", map[string]any{"stage": "closed"}, 400)
	require.Len(t, c.call("GET", "/v1/deals/"+dealID+"/history", nil, 200)["items"], 2)
	require.Len(t, c.call("GET", "/v1/deals?stage=won%20over&pipeline_id="+plID, nil, 200)["items"], 1)
	require.Len(t, c.call("GET", "/v1/deals?status=won", nil, 200)["items"], 1)
	// An update names the version it read: without one it is invalid input
	// (every bad field at once), not a conflict; the server-owned fields of
	// a record read back are ignored, the status still follows the stage.
	d := field(c.call("GET", "/v1/deals/"+dealID, nil, 200), "deal").(map[string]any)
	noVersion := map[string]any{"pipeline_id": plID, "title": "", "stage": "new"}
	require.ElementsMatch(t, []string{"version", "title"}, problems(c.call("PUT", "/v1/deals/"+dealID, noVersion, 400)))
	d["stage"], d["status"] = "new", "won"
	back := c.call("PUT", "/v1/deals/"+dealID, d, 200)
	require.Equal(t, "open", str(back, "deal", "status"), "back at an open stage the deal reopens")
	require.Equal(t, []string{"bogus"}, problems(c.call("PUT", "/v1/deals/"+dealID, map[string]any{"version": 3, "bogus": 1}, 400)))
	require.Equal(t, []string{"contact_id"}, problems(c.call("GET", "/v1/deals?contact_id=x", nil, 400)))
	c.call("GET", "/v1/deals/"+other, nil, 404)
	c.call("GET", "/v1/deals/"+other+"/history", nil, 404)

	// Keyset pages.
	for i := range 3 {
		c.call("POST", "/v1/tasks", map[string]any{"title": fmt.Sprintf("Call %d", i), "contact_id": contactID}, 201)
	}
	p1 := c.call("GET", "/v1/tasks?limit=2", nil, 200)
	require.Len(t, p1["items"], 2)
	p2 := c.call("GET", "/v1/tasks?limit=2&cursor="+str(p1, "next_cursor"), nil, 200)
	require.Len(t, p2["items"], 1)
	c.call("GET", "/v1/tasks?cursor=garbage", nil, 400)

	// Activities and notes.
	require.Subset(t, problems(c.call("POST", "/v1/activities", map[string]any{"kind": "telegram"}, 400)), []string{"kind"})
	ac := c.call("POST", "/v1/activities", map[string]any{"kind": "call", "direction": "out", "contact_id": contactID, "occurred_at": "2026-01-02T10:00:00Z"}, 201)
	c.call("GET", "/v1/activities/"+str(ac, "activity", "id"), nil, 200)
	require.Len(t, c.call("GET", "/v1/activities?contact_id="+contactID, nil, 200)["items"], 1)
	nt := c.call("POST", "/v1/notes", map[string]any{"body": "Likes opals", "deal_id": dealID}, 201)
	n := field(nt, "note").(map[string]any)
	n["body"] = "Likes opals and pearls"
	c.call("PUT", "/v1/notes/"+str(nt, "note", "id"), n, 200)
	c.call("PUT", "/v1/notes/"+str(nt, "note", "id"), n, 409)
	c.call("POST", "/v1/notes", map[string]any{"body": "x", "contact_id": other}, 400) // not this tenant's contact: refused by crm

	// Consent: grant, withdraw, history.
	require.Subset(t, problems(c.call("POST", "/v1/contacts/"+contactID+"/consent/grant", map[string]any{"channel": "pigeon", "purpose": "marketing"}, 400)), []string{"channel", "source"})
	c.call("POST", "/v1/contacts/"+contactID+"/consent/grant", map[string]any{"channel": "email", "purpose": "marketing", "source": "signup form"}, 200)
	c.call("POST", "/v1/contacts/"+contactID+"/consent/withdraw", map[string]any{"channel": "email", "purpose": "marketing", "source": "unsubscribe link"}, 200)
	require.Len(t, c.call("GET", "/v1/contacts/"+contactID+"/consent/history", nil, 200)["items"], 2)
	require.Len(t, c.call("GET", "/v1/contacts/"+contactID+"/consent", nil, 200)["items"], 1)
	c.call("POST", "/v1/contacts/"+other+"/consent/grant", map[string]any{"channel": "email", "purpose": "marketing", "source": "x"}, 404)

	// Clients, campaigns, proposals, invoices.
	require.Equal(t, []string{"name"}, problems(c.call("POST", "/v1/clients", map[string]any{"name": ""}, 400)))
	ca := c.call("POST", "/v1/clients", map[string]any{"name": "Brand A"}, 201)
	cb := c.call("POST", "/v1/clients", map[string]any{"name": "Brand B"}, 201)
	clientA, clientB := str(ca, "client", "id"), str(cb, "client", "id")
	c.call("PUT", "/v1/clients/"+clientA, map[string]any{"version": 1, "name": "Brand A Ltd"}, 200)
	c.call("PUT", "/v1/clients/"+clientA, map[string]any{"version": 1, "name": "Brand A Inc"}, 409)
	c.call("PUT", "/v1/clients/"+clientA, map[string]any{"name": "Brand A Inc"}, 400)
	campaign := func(client, name string) string {
		return str(c.call("POST", "/v1/campaigns", map[string]any{"client_id": client, "name": name, "status": "active", "budget": 5000, "currency": "EUR"}, 201), "campaign", "id")
	}
	campA := campaign(clientA, "Spring A")
	campaign(clientB, "Spring B")
	require.Subset(t, problems(c.call("POST", "/v1/campaigns", map[string]any{"client_id": clientA, "name": "x", "status": "dreaming", "currency": "XXQ"}, 400)), []string{"status", "currency"})
	c.call("PUT", "/v1/campaigns/"+campA, map[string]any{"version": 1, "client_id": clientA, "name": "Spring A", "status": "paused", "currency": "EUR"}, 200)

	pr := c.call("POST", "/v1/proposals", map[string]any{"client_id": clientA, "title": "Spring content", "amount": 90000, "currency": "EUR"}, 201)
	prID := str(pr, "proposal", "id")
	rv := c.call("POST", "/v1/proposals/"+prID+"/revisions", map[string]any{"version": 1, "title": "Spring content v2", "amount": 95000, "currency": "EUR"}, 200)
	require.EqualValues(t, 2, field(rv, "proposal", "revision"))
	require.Len(t, c.call("GET", "/v1/proposals/"+prID+"/revisions", nil, 200)["items"], 2)
	bad := c.call("POST", "/v1/proposals/"+prID+"/status", map[string]any{"version": 2, "status": "accepted"}, 409)
	require.Equal(t, "invalid_transition", str(bad, "error", "code"))
	c.call("POST", "/v1/proposals/"+prID+"/status", map[string]any{"version": 2, "status": "sent", "note": "emailed"}, 200)
	require.NotEmpty(t, c.call("GET", "/v1/proposals/"+prID+"/history", nil, 200)["items"])

	invoice := func(client, number string) map[string]any {
		return c.call("POST", "/v1/invoices", map[string]any{"number": number, "client_id": client, "currency": "EUR",
			"bill_to": map[string]any{"bill_to_name": "Brand"},
			"lines": []map[string]any{{"description": "Posts", "quantity": 3, "unit_price": 10000, "tax_rate": 2000},
				{"description": "Discount", "quantity": 1, "unit_price": -5000}}}, 201)
	}
	ia := invoice(clientA, "2026-001")
	require.EqualValues(t, 25000, field(ia, "invoice", "subtotal"))
	require.EqualValues(t, 6000, field(ia, "invoice", "tax"))
	require.EqualValues(t, 31000, field(ia, "invoice", "total"))
	invA := str(ia, "invoice", "id")
	invB := str(invoice(clientB, "2026-002"), "invoice", "id")
	require.Subset(t, problems(c.call("POST", "/v1/invoices", map[string]any{"number": "", "client_id": clientA, "currency": "EUR", "lines": []any{}}, 400)), []string{"number", "lines"})
	c.call("POST", "/v1/invoices/"+invA+"/payments", map[string]any{"version": 1, "amount": 100}, 409) // a draft takes no payment
	c.call("POST", "/v1/invoices/"+invA+"/issue", map[string]any{"version": 1}, 200)
	c.call("POST", "/v1/invoices/"+invB+"/issue", map[string]any{"version": 1}, 200)
	pay := c.call("POST", "/v1/invoices/"+invA+"/payments", map[string]any{"version": 2, "amount": 1000}, 200)
	require.Equal(t, "partially_paid", str(pay, "invoice", "status"))
	c.call("POST", "/v1/invoices/"+invA+"/payments", map[string]any{"version": 3, "amount": 0}, 400)
	require.Equal(t, "paid", str(c.call("POST", "/v1/invoices/"+invA+"/payments", map[string]any{"version": 3, "amount": 30000}, 200), "invoice", "status"))
	c.call("DELETE", "/v1/invoices/"+invA, nil, 409) // only a draft can go
	require.Len(t, c.call("GET", "/v1/invoices?status=issued", nil, 200)["items"], 1)

	// Custom fields.
	require.Equal(t, []string{"record_kind"}, problems(c.call("GET", "/v1/fields?record_kind=spaceship", nil, 400)))
	fd := c.call("POST", "/v1/fields", map[string]any{"record_kind": "contact", "name": "ring_size", "type": "number"}, 201)
	require.Len(t, c.call("GET", "/v1/fields?record_kind=contact", nil, 200)["items"], 1)
	require.Subset(t, problems(c.call("PUT", "/v1/records/contact/"+contactID+"/fields", map[string]any{"values": map[string]any{"ring_size": "big"}}, 400)), []string{"values.ring_size"})
	c.call("PUT", "/v1/records/contact/"+contactID+"/fields", map[string]any{"values": map[string]any{"ring_size": 6}}, 200)
	require.EqualValues(t, 6, field(c.call("GET", "/v1/records/contact/"+contactID+"/fields", nil, 200), "values", "ring_size"))
	c.call("GET", "/v1/records/spaceship/"+contactID+"/fields", nil, 404)
	c.call("DELETE", "/v1/fields/"+str(fd, "field", "id"), nil, 204)

	// Contacts CSV: export, then an import with a bad row reported.
	resp, csv := c.do("GET", "/v1/contacts/export", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", csv)
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv"))
	require.Contains(t, string(csv), "bo@example.com")
	header := strings.SplitN(string(csv), "\n", 2)[0]
	cols := strings.Split(header, ",")
	row := func(vals map[string]string) string {
		out := make([]string, len(cols))
		for i, col := range cols {
			out[i] = vals[col]
		}
		return strings.Join(out, ",")
	}
	body := header + "\n" + row(map[string]string{"first_name": "Cy", "email": "cy@example.com"}) + "\n" +
		row(map[string]string{"first_name": "Di", "email": "not-an-email"}) + "\n" + row(map[string]string{"first_name": "Ed"}) + "\n"
	c.call("POST", "/v1/contacts/import", body, 415) // text/csv only
	resp, raw := c.do("POST", "/v1/contacts/import", "text/csv", strings.NewReader(body))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	require.Contains(t, string(raw), `"created":2`)
	require.Contains(t, string(raw), `"row":3`)
	resp, raw = c.do("POST", "/v1/contacts/import", "text/csv", strings.NewReader(""))
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s", raw)

	// The client portal: a member with the client role, linked to Brand A,
	// sees Brand A's campaigns, proposals (sent) and invoices (issued)
	// only, and nothing else of the tenant.
	const portalPassword = "portal-password-1"
	m := c.call("POST", "/v1/members", map[string]any{"email": "pat@brand-a.example", "name": "Pat", "role": "client", "client_id": clientA, "password": portalPassword}, 201)
	memberID := str(m, "member", "id")
	c.call("POST", "/v1/members", map[string]any{"email": "x", "role": "client", "password": "short"}, 400)
	c.call("POST", "/v1/clients/"+clientA+"/members", map[string]any{"member_id": memberID}, 201)
	require.Len(t, c.call("GET", "/v1/clients/"+clientA+"/members", nil, 200)["items"], 1)
	pc := newClient(t, base)
	li := pc.call("POST", "/v1/login", map[string]string{"tenant_id": tenantID, "email": "pat@brand-a.example", "password": portalPassword}, 200)
	pc.token = str(li, "session", "access_token")
	require.Equal(t, "client", str(li, "role"))
	for _, kind := range []string{"campaigns", "proposals", "invoices"} {
		got := pc.call("GET", "/v1/"+kind, nil, 200)["items"].([]any)
		require.Len(t, got, 1, kind)
		require.Equal(t, clientA, got[0].(map[string]any)["client_id"], kind)
	}
	pc.call("GET", "/v1/invoices/"+invA, nil, 200)
	pc.call("GET", "/v1/invoices/"+invB, nil, 404)
	for _, path := range []string{"/v1/contacts", "/v1/deals", "/v1/tasks", "/v1/notes", "/v1/activities", "/v1/pipelines", "/v1/contacts/export"} {
		pc.call("GET", path, nil, 403)
	}
	pc.call("GET", "/v1/contacts/"+contactID, nil, 403)
	pc.call("POST", "/v1/contacts", map[string]any{"first_name": "Mallory"}, 403)
	pc.call("POST", "/v1/campaigns", map[string]any{"client_id": clientA, "name": "Mine", "status": "active", "currency": "EUR"}, 403)
	pc.call("POST", "/v1/invoices/"+invB+"/void", map[string]any{"version": 2}, 403) // every portal write but answering a proposal
	pc.call("POST", "/v1/members", map[string]any{"email": "p2@brand-a.example", "name": "P2", "role": "owner", "password": portalPassword}, 403)
	// It may answer a proposal sent to its client.
	require.Equal(t, "accepted", str(pc.call("POST", "/v1/proposals/"+prID+"/status", map[string]any{"version": 3, "status": "accepted"}, 200), "proposal", "status"))
	pc.call("POST", "/v1/logout", nil, 204)
}

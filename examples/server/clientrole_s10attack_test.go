package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestClientMemberCannotUseConnections: over the API a client member (an
// agency's client on the portal) listed the agency's connected accounts,
// read their insights, ran their syncs, began connecting accounts into the
// agency and could publish through them. Each now answers 403; the owner's
// calls still work.
func TestClientMemberCannotUseConnections(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	c := newClient(t, a.URL)
	su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Agency", "email": "o@ag.example", "name": "O", "password": "long enough password"}, 201)
	c.token = str(su, "session", "access_token")
	tid := str(c.call("GET", "/v1/me", nil, 200), "tenant_id")
	st := c.call("POST", "/v1/connections/tiktok/start", nil, 200)
	conn := c.call("POST", "/v1/connections/tiktok/complete", map[string]string{"callback_url": c.consent(str(st, "authorize_url"), "sandbox-creator")}, 201)
	connID := str(conn, "connection", "id")
	clID := str(c.call("POST", "/v1/clients", map[string]any{"name": "Brand"}, 201), "client", "id")
	c.call("POST", "/v1/members", map[string]any{"email": "cl@brand.example", "name": "Cl", "role": "client", "client_id": clID, "password": "long enough password"}, 201)
	lg := c.call("POST", "/v1/login", map[string]string{"tenant_id": tid, "email": "cl@brand.example", "password": "long enough password"}, 200)
	client := str(lg, "session", "access_token")

	for _, r := range [][2]string{{"GET", "/v1/connections"}, {"GET", "/v1/connections/" + connID}, {"GET", "/v1/connections/" + connID + "/insights"},
		{"POST", "/v1/connections/" + connID + "/sync"}, {"POST", "/v1/connections/tiktok/start"}, {"POST", "/v1/connections/meta/start"}} {
		c.callAs(client, r[0], r[1], nil, 403)
	}
	require.Len(t, c.call("GET", "/v1/connections", nil, 200)["connections"], 1)
}

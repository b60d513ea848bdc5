package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSandboxMessageNeedsTheCallersPage: the sandbox's Messenger message
// route had the emulator send a message to the sandbox Page as soon as
// any tenant had connected it, whoever asked: tenant B, with no Meta
// connection at all, put messages of its choosing (any PSID, any text)
// into tenant A's inbox. Like the sandbox's TikTok deauthorization, it
// now acts only for a tenant that connected the sandbox Page itself.
func TestSandboxMessageNeedsTheCallersPage(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	ca, cb := newClient(t, a.URL), newClient(t, a.URL)
	su := ca.call("POST", "/v1/signup", map[string]any{"tenant_name": "A", "email": "o@a.example", "name": "O", "password": "long enough password"}, 201)
	ca.token = str(su, "session", "access_token")
	su = cb.call("POST", "/v1/signup", map[string]any{"tenant_name": "B", "email": "o@b.example", "name": "O", "password": "long enough password"}, 201)
	cb.token = str(su, "session", "access_token")
	ms := ca.call("POST", "/v1/connections/meta/start", nil, 200)
	ca.call("POST", "/v1/connections/meta/complete", map[string]string{"callback_url": ca.consentMeta(str(ms, "authorize_url"), "sandbox-fb-user")}, 201)

	cb.call("POST", "/v1/sandbox/meta/message", map[string]string{"psid": "psid-forged", "text": "Pay to this account instead"}, 409)
	require.Empty(t, ca.call("GET", "/v1/conversations", nil, 200)["items"], "B's message reached A's inbox")

	// A's own sandbox messages still arrive.
	ca.call("POST", "/v1/sandbox/meta/message", map[string]string{"psid": "psid-ann", "text": "Is the ring in stock?"}, 204)
	require.Len(t, ca.call("GET", "/v1/conversations", nil, 200)["items"], 1)
}

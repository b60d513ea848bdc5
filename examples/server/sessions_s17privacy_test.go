package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS17SessionsKeepNoUserAgent: a sign-up and a sign-in open sessions
// that do not keep the client's user agent (personal data nothing reads):
// the sessions table holds none.
func TestS17SessionsKeepNoUserAgent(t *testing.T) {
	t.Parallel()
	a := newTestApp(t)
	c := newClient(t, a.URL)
	su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Agents", "email": "ua@agents.example", "name": "U", "password": "long enough password"}, 201)
	tid := str(su, "tenant", "id")
	c.call("POST", "/v1/login", map[string]any{"tenant_id": tid, "email": "ua@agents.example", "password": "long enough password"}, 200)
	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tid, MemberID: str(su, "owner", "id"), Role: tenancy.RoleOwner})
	var agents []string
	require.NoError(t, tenancy.RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewRaw("SELECT user_agent FROM ? WHERE tenant_id = ?", bun.Ident(tableSessions), tid).Scan(ctx, &agents)
	}))
	require.Len(t, agents, 2, "two sessions")
	for _, ua := range agents {
		require.Empty(t, ua, "a session keeps the client's user agent")
	}
}

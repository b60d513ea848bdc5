package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
)

// TestTenantCannotReachTheServersSharedTables: River's tables and the
// sign-in attempts lie in the SDK's database, and the Guard did not know
// them, so a tenant's code on the SDK's handle (a host's plugin) read
// every job's arguments (other tenants' ids), paused the queue that runs
// every tenant's sweeps, purges and erasures, deleted the jobs, and reset
// the sign-in rate limit that slows guessing of every tenant's
// passwords. Under a tenant's principal each is now refused.
func TestTenantCannotReachTheServersSharedTables(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "-login-rate", "1")
	_, m, _, err := a.signUp(t.Context(), signupRequest{TenantName: "B", Email: "b@b.example", Name: "B", Password: "long enough password"}, "test")
	require.NoError(t, err)
	b := tenancy.WithPrincipal(t.Context(), m.Principal())
	j, err := a.startJobs(context.WithoutCancel(t.Context()), time.Hour)
	require.NoError(t, err)
	t.Cleanup(func() {
		stop, done := context.WithTimeout(context.Background(), 10*time.Second)
		defer done()
		_ = j.stop(stop)
		j.close()
	})
	c := newClient(t, a.URL)
	c.call("POST", "/v1/login", map[string]string{"tenant_id": tenancy.NewID(), "email": "a@b.example", "password": "whatever password"}, 401)

	for name, q := range map[string]string{
		"read the jobs' arguments": "SELECT args FROM river_job",
		"pause the queue":          "UPDATE river_queue SET paused_at = CURRENT_TIMESTAMP",
		"delete the jobs":          "DELETE FROM river_job",
		"depose the leader":        "DELETE FROM river_leader",
		"reset the sign-in limit":  "DELETE FROM " + tableLoginAttempts,
		"read the sign-in counts":  "SELECT key_hash, attempts FROM " + tableLoginAttempts,
	} {
		err := tenancy.RunInTx(b, a.sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.ExecContext(ctx, q)
			return err
		})
		require.ErrorIs(t, err, tenancy.ErrUnscoped, name)
	}
	// The limit still holds.
	c.call("POST", "/v1/login", map[string]string{"tenant_id": tenancy.NewID(), "email": "a@b.example", "password": "whatever password"}, 429)
}

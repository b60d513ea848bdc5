package crm_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS17UnclaimedFunctionLocksOnlyTheCallersKeys: the server function a
// create in a caller's transaction calls, socialcrm_crm_contact_unclaimed,
// took the advisory locks of whatever keys it was given, so a tenant
// could hold another tenant's (the Guard refuses tenants' own
// advisory-lock calls). It now derives its keys from app.tenant_id: while
// tenant A's transaction holds the lock of an e-mail index, tenant B's
// call naming A and that index returns at once, and the key stays A's
// (the system principal's try answers false until A's transaction ends).
func TestS17UnclaimedFunctionLocksOnlyTheCallersKeys(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		if e.db.Name != "postgres" {
			return // no advisory locks, no server function
		}
		a, err := tenancy.TenantID(e.A)
		require.NoError(t, err)
		const call = "SELECT socialcrm_crm_contact_unclaimed(?::text, 'idx-s17'::text, ''::text)"
		held, done, release := make(chan error, 1), make(chan error, 1), make(chan struct{})
		go func() {
			done <- tenancy.RunInTx(e.A, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.ExecContext(ctx, call, a)
				held <- err
				<-release
				return err
			})
		}()
		require.NoError(t, <-held)
		defer func() { close(release); require.NoError(t, <-done) }()

		ctx, cancel := context.WithTimeout(e.B, 5*time.Second)
		defer cancel()
		start := time.Now()
		err = tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.ExecContext(ctx, call, a)
			return err
		})
		require.NoError(t, err, "B's call naming A does not wait for A's lock")
		require.Less(t, time.Since(start), 5*time.Second)

		var free bool
		require.NoError(t, e.db.Admin(t).NewRaw("SELECT pg_try_advisory_xact_lock(socialcrm_crm_contact_lock_key(?, 'email', 'idx-s17'))", a).
			Scan(context.Background(), &free))
		require.False(t, free, "A's transaction holds its own key")
	})
}

package vault_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// TestAuditKeys: one audit key per database, stored wrapped by the KEK:
// per-tenant MACs are stable across vaults and KEK rotation, differ between
// tenants, outlive a tenant's destroyed data keys, and a vault with another
// KEK cannot produce them.
func TestAuditKeys(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		kek1, kek2 := testkit.NewKEK(t), testkit.NewKEK(t)
		v := newVault(t, db, kek1)
		log, err := v.AuditLog(ctx, db)
		require.NoError(t, err)
		require.Nil(t, log.Keys(), "no audit key until AuditKeys creates it")

		k, err := v.AuditKeys(ctx)
		require.NoError(t, err)
		a, b := tenancy.NewID(), tenancy.NewID()
		msg := []byte("entry")
		macA, err := k.AuditMAC(ctx, a, msg)
		require.NoError(t, err)
		require.Len(t, macA, 32)
		macB, err := k.AuditMAC(ctx, b, msg)
		require.NoError(t, err)
		require.NotEqual(t, macA, macB, "keys are per tenant")

		// Another process on the same database finds the same key.
		k2, err := newVault(t, db.Reopen(t), kek1).AuditKeys(ctx)
		require.NoError(t, err)
		again, err := k2.AuditMAC(ctx, a, msg)
		require.NoError(t, err)
		require.Equal(t, macA, again)

		// Destroying the tenant's data keys leaves its audit key.
		_, err = v.Seal(owner(a), []byte("x"), vault.Binding{Record: "r", Field: "f"})
		require.NoError(t, err)
		require.NoError(t, v.DestroyKey(owner(a)))
		again, err = k.AuditMAC(ctx, a, msg)
		require.NoError(t, err)
		require.Equal(t, macA, again)

		// A vault with an unrelated KEK cannot unwrap it.
		_, err = newVault(t, db.Reopen(t), kek2).AuditKeys(ctx)
		require.ErrorIs(t, err, vault.ErrKEK)

		// After RotateKEK, the new KEK alone opens the same key.
		_, err = v.RotateKEK(system(), kek2)
		require.NoError(t, err)
		k3, err := newVault(t, db.Reopen(t), kek2).AuditKeys(ctx)
		require.NoError(t, err)
		again, err = k3.AuditMAC(ctx, a, msg)
		require.NoError(t, err)
		require.Equal(t, macA, again)
	})
}

package vault_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// TestConcurrentDestroyKey destroys the keys of tenants that never had
// one from two vaults at once, as two replicas' purges would: both calls
// succeed (no duplicate tombstone), each tenant is left with a tombstone
// and one "vault.key_destroyed" entry.
func TestConcurrentDestroyKey(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		kek := testkit.NewKEK(t)
		vs := []*vault.Vault{newVault(t, db, kek), newVault(t, db.Reopen(t), kek)}
		for range 3 {
			tid := tenancy.NewID()
			sctx, err := tenancy.AsTenant(system(), tid)
			require.NoError(t, err)
			start := make(chan struct{})
			errs := make([]error, len(vs))
			var wg sync.WaitGroup
			for i, v := range vs {
				wg.Go(func() {
					<-start
					errs[i] = v.DestroyKey(sctx)
				})
			}
			close(start)
			wg.Wait()
			require.NoError(t, errs[0])
			require.NoError(t, errs[1])
			_, err = vs[0].Seal(owner(tid), []byte("x"), vault.Binding{Record: "r", Field: "f"})
			require.ErrorIs(t, err, vault.ErrKeyDestroyed)
			require.Equal(t, []string{"vault.key_destroyed"}, auditActions(t, owner(tid), db))
		}
	})
}

package socialcrm_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// TestConcurrentPurgesOfOneTenant runs two purges of the same closed
// tenants at once, as two replicas whose schedules meet would: both
// succeed, each tenant's key is destroyed once, each tenant is marked
// purged once, and the receipts count every erased contact exactly once.
func TestConcurrentPurgesOfOneTenant(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		clk := fakeclock.New()
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t), Now: clk.Now})
		require.NoError(t, err)

		const contacts = 7
		var tenants []string
		for i := range 3 {
			tn, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "T" + strconv.Itoa(i),
				Owner: tenancy.NewMember{Email: "o" + strconv.Itoa(i) + "@example.com", Name: "O"}})
			require.NoError(t, err)
			octx := tenancy.WithPrincipal(ctx, owner.Principal())
			if i > 0 {
				for j := range contacts {
					_, err := sdk.CRM.Contacts().Create(octx, crm.ContactInput{FirstName: "C" + strconv.Itoa(j)})
					require.NoError(t, err)
				}
			}
			_, err = sdk.Tenants.CloseTenant(octx, time.Hour)
			require.NoError(t, err)
			tenants = append(tenants, tn.ID)
		}
		clk.Advance(2 * time.Hour)
		sys := tenancy.System(ctx, "retention")

		// Both runs start together; each purges every due tenant.
		start := make(chan struct{})
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for r := range errs {
			wg.Go(func() {
				<-start
				_, errs[r] = sdk.Retention.PurgeTenants(sys, clk.Now())
			})
		}
		close(start)
		wg.Wait()
		require.NoError(t, errs[0], "first run")
		require.NoError(t, errs[1], "second run")

		for i, id := range tenants {
			tctx, err := tenancy.AsTenant(sys, id)
			require.NoError(t, err)
			got, err := sdk.Tenants.Tenant(tctx)
			require.NoError(t, err)
			require.Equal(t, tenancy.StatusPurged, got.Status)
			_, err = sdk.Vault.Seal(tctx, []byte("x"), vault.Binding{Record: "r", Field: "f"})
			require.ErrorIs(t, err, vault.ErrKeyDestroyed, "tenant %d: the key is destroyed", i)

			entries, err := sdk.Audit.List(tctx, tenancy.AuditListOptions{Limit: 1000})
			require.NoError(t, err)
			actions := map[string]int{}
			erased := 0
			for _, e := range entries {
				actions[e.Action]++
				if e.Action == "retention.purged" && e.Metadata["category"] == "crm.contact" {
					n, err := strconv.Atoi(e.Metadata["count"])
					require.NoError(t, err)
					erased += n
				}
			}
			require.Equal(t, 1, actions["tenant.purged"], "tenant %d is marked purged once: %v", i, actions)
			require.Equal(t, 1, actions["vault.key_destroyed"], "tenant %d's key is destroyed once: %v", i, actions)
			if i > 0 {
				require.Equal(t, contacts, erased, "tenant %d: the receipts count each contact once", i)
			}
		}
	}, migrated)
}

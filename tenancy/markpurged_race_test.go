package tenancy_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestConcurrentMarkPurged marks closed tenants purged from two goroutines
// at once, as two replicas' purges that meet would: both succeed, and
// each tenant is marked, and audited, once.
func TestConcurrentMarkPurged(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		clk := newClock()
		s, err := tenancy.NewStore(db, cheapPasswords, tenancy.WithClock(clk.Now))
		require.NoError(t, err)
		sys := tenancy.System(context.Background(), "test")
		for range 3 {
			tn, m, err := s.CreateTenant(context.Background(), tenancy.SignUp{TenantName: "Race",
				Owner: tenancy.NewMember{Email: "o@race.example", Name: "O"}})
			require.NoError(t, err)
			owner := tenancy.WithPrincipal(context.Background(), m.Principal())
			_, err = s.CloseTenant(owner, time.Hour)
			require.NoError(t, err)
			clk.Advance(2 * time.Hour)
			asTn, err := tenancy.AsTenant(sys, tn.ID)
			require.NoError(t, err)

			start := make(chan struct{})
			got := make([]tenancy.Tenant, 2)
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i := range got {
				wg.Go(func() {
					<-start
					got[i], errs[i] = s.MarkPurged(asTn)
				})
			}
			close(start)
			wg.Wait()
			for i := range got {
				require.NoError(t, errs[i])
				require.Equal(t, tenancy.StatusPurged, got[i].Status)
			}
			entries, err := s.Audit().List(asTn, tenancy.AuditListOptions{})
			require.NoError(t, err)
			purged := 0
			for _, e := range entries {
				if e.Action == "tenant.purged" {
					purged++
				}
			}
			require.Equal(t, 1, purged, "the tenant is marked purged once")
		}
	})
}

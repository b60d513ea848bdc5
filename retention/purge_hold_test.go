package retention_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestTenantHoldPlacedMidPurgeKeepsTheAuditLog: a tenant hold placed
// while a tenant purge is under way (before its first category) keeps the
// tenant's audit log whole (under a policy that lets a purge truncate it): the truncation, which a purge skips under a
// tenant hold, looks at the holds as they are when it runs, not as they
// were when the purge began; and the tenant is not marked purged, its key
// not destroyed.
func TestTenantHoldPlacedMidPurgeKeepsTheAuditLog(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		var hooks atomic.Int32
		// A policy that keeps the audit log under no legal obligation: a
		// purge then truncates it (a kept one it leaves to the sweeps).
		pol := testPolicy()
		for i := range pol.Rules {
			if pol.Rules[i].Category == retention.CategoryAudit {
				pol.Rules[i].Keep = false
			}
		}
		v := newEnv(t, db, retention.WithPolicy(pol), retention.WithTenantPurgeHook(func(context.Context) error { hooks.Add(1); return nil }))
		v.clock.Set(epoch.Add(-13 * retention.Month))
		aid, a := v.tenant(t, "alpha") // tenant.created, 13 months ago: due
		v.clock.Set(epoch)
		_, err := v.store.CloseTenant(a, 0)
		require.NoError(t, err)
		sys, err := tenancy.AsTenant(system(), aid)
		require.NoError(t, err)
		require.Len(t, receipts(t, a, db, "tenant.created"), 1)

		var placed atomic.Bool
		retention.SetTrace(v.e, func(p string) {
			if p != "purge.category" || placed.Swap(true) {
				return
			}
			if _, err := v.e.PlaceHold(sys, retention.Hold{Scope: retention.HoldTenant, Reason: "placed mid-purge"}); err != nil {
				t.Errorf("PlaceHold: %v", err)
			}
		})
		res, err := v.e.PurgeTenants(system(), epoch)
		require.NoError(t, err)
		require.True(t, placed.Load())
		require.Len(t, res, 1)
		require.False(t, res[0].Purged, "a tenant held mid-purge is not purged")
		require.Zero(t, hooks.Load(), "the key survives the hold")
		require.Len(t, receipts(t, a, db, "tenant.created"), 1, "the audit log stays whole under the tenant hold")
	})
}

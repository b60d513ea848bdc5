package retention_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestPurgeTenants(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		var mu sync.Mutex
		var destroyed []string
		fail := true
		hook := func(ctx context.Context) error {
			tid, err := tenancy.TenantID(ctx)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if fail {
				fail = false
				return errors.New("kms unavailable")
			}
			destroyed = append(destroyed, tid)
			return nil
		}
		v := newEnv(t, db, retention.WithTenantPurgeHook(hook))
		aid, a := v.tenant(t, "alpha")
		_, b := v.tenant(t, "beta")
		for _, ctx := range []context.Context{a, b} {
			insert(t, ctx, db, &[]response{{ID: "r1", AccountID: "x", Body: "{}", FetchedAt: epoch}})
			insert(t, ctx, db, &[]contact{{ID: "k1", Email: ptr("ann@example.com"), Name: "Ann", UpdatedAt: epoch}})
			insert(t, ctx, db, &[]invoice{{ID: "i1", ContactID: "k1", Amount: 1, IssuedAt: epoch}})
		}
		_, err := v.store.CloseTenant(a, v.e.Policy().ClosureGrace)
		require.NoError(t, err)

		res, err := v.e.PurgeTenants(system(), epoch.Add(29*retention.Day))
		require.NoError(t, err)
		require.Empty(t, res, "nothing is due during the grace period")

		v.clock.Advance(30 * retention.Day)
		_, err = v.e.PurgeTenants(system(), v.clock.Now())
		require.ErrorContains(t, err, "kms unavailable")
		require.Empty(t, ids(t, a, db, "test_responses"), "data erased before the hook ran")

		res, err = v.e.PurgeTenants(system(), v.clock.Now())
		require.NoError(t, err)
		require.Len(t, res, 1)
		require.True(t, res[0].Purged)
		require.Equal(t, []string{aid}, destroyed)
		require.Empty(t, ids(t, a, db, "test_responses"))
		require.Empty(t, ids(t, a, db, "test_contacts"))
		require.Empty(t, ids(t, a, db, "test_notes"))
		require.Empty(t, ids(t, a, db, tenancy.TableMembers))
		require.Equal(t, []string{"i1"}, ids(t, a, db, "test_invoices"), "billing records are kept (legal obligation)")
		require.Equal(t, []string{"r1"}, ids(t, b, db, "test_responses"), "an active tenant is untouched")
		require.NotEmpty(t, receipts(t, tenancyAs(t, aid), db, "retention.purged"))

		sys, err := tenancy.AsTenant(system(), aid)
		require.NoError(t, err)
		tn, err := v.store.Tenant(sys)
		require.NoError(t, err)
		require.Equal(t, tenancy.StatusPurged, tn.Status)

		// Idempotent: a purged tenant is not due again.
		res, err = v.e.PurgeTenants(system(), v.clock.Now())
		require.NoError(t, err)
		require.Empty(t, res)

		// Seven years later the sweep removes the kept invoice too.
		_, err = v.e.Sweep(system(), epoch.Add(7*retention.Year+retention.Day))
		require.NoError(t, err)
		require.Empty(t, ids(t, a, db, "test_invoices"))

		_, err = v.e.PurgeTenants(a, v.clock.Now())
		require.ErrorIs(t, err, tenancy.ErrNotSystem)
	})
}

func TestPurgeHeldTenantWaits(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		calls := 0
		v := newEnv(t, db, retention.WithTenantPurgeHook(func(context.Context) error { calls++; return nil }))
		_, a := v.tenant(t, "alpha")
		insert(t, a, db, &[]response{{ID: "r1", AccountID: "x", Body: "{}", FetchedAt: epoch}, {ID: "r2", AccountID: "y", Body: "{}", FetchedAt: epoch}})
		h, err := v.e.PlaceHold(a, retention.Hold{Scope: retention.HoldRecord, Category: catRawResponse, RecordID: "r2", Reason: "court order"})
		require.NoError(t, err)
		_, err = v.store.CloseTenant(a, 0)
		require.NoError(t, err)
		res, err := v.e.PurgeTenants(system(), epoch)
		require.NoError(t, err)
		require.Len(t, res, 1)
		require.False(t, res[0].Purged)
		require.Zero(t, calls, "the key survives while a hold keeps data")
		require.Equal(t, []string{"r2"}, ids(t, a, db, "test_responses"))

		sys, err := tenancy.AsTenant(system(), res[0].Tenant)
		require.NoError(t, err)
		_, err = v.e.ReleaseHold(sys, h.ID)
		require.NoError(t, err)
		res, err = v.e.PurgeTenants(system(), epoch)
		require.NoError(t, err)
		require.True(t, res[0].Purged)
		require.Equal(t, 1, calls)
		require.Empty(t, ids(t, a, db, "test_responses"))
	})
}

func TestAuditLogTruncatedBySweep(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		v.clock.Set(epoch.Add(-13 * retention.Month))
		_, a := v.tenant(t, "alpha") // tenant.created, 13 months ago
		v.clock.Set(epoch)
		_, err := v.e.Submit(a, retention.Request{Kind: retention.KindAccess, Subject: map[string]string{"email": "x@example.com"}})
		require.NoError(t, err)
		rep, err := v.e.Sweep(system(), epoch)
		require.NoError(t, err)
		require.EqualValues(t, 1, rep.Erased())
		rs := receipts(t, a, db, "retention.swept") // verifies the chain after truncation
		require.Len(t, rs, 1)
		require.Equal(t, retention.CategoryAudit, rs[0].Metadata["category"])
		require.Empty(t, receipts(t, a, db, "tenant.created"))
	})
}

func tenancyAs(t *testing.T, tid string) context.Context {
	ctx, err := tenancy.AsTenant(system(), tid)
	require.NoError(t, err)
	return ctx
}

func TestDataMapGolden(t *testing.T) {
	db := dbtest.SQLite(t, setup)
	v := newEnv(t, db)
	dm := v.e.DataMap()
	var md, js bytes.Buffer
	require.NoError(t, dm.WriteMarkdown(&md))
	require.NoError(t, dm.WriteJSON(&js))
	golden(t, "datamap.md.golden", md.Bytes())
	golden(t, "datamap.json.golden", js.Bytes())
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -run %s -update to create it", t.Name())
	require.Equal(t, string(want), string(got), "%s differs; run with -update after checking the change", path)
}

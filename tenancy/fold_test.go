package tenancy_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestTenantSettingRidesWithStatements: on PostgreSQL the tenant setting
// costs no round trip of its own — a scoped statement (RunScoped) is one
// round trip, a transaction with one statement is two (the statement with
// BEGIN and the setting, then COMMIT), an empty transaction none — and the
// wall is the same: raw SQL sees only the tenant's rows, another tenant's
// row is refused, and the setting outlives neither the statement nor the
// transaction on the one pooled connection. On SQLite RunScoped runs the
// statement as it is.
func TestTenantSettingRidesWithStatements(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		for _, tid := range []string{a, a, b} {
			require.NoError(t, insert(as(tid), db, &widget{ID: tenancy.NewID(), Name: "w"}))
		}
		raw := db.Reopen(t) // no Guard, no hooks: only row-level security scopes raw SQL
		raw.SetMaxOpenConns(1)
		count := func(ctx context.Context, idb bun.IDB) int {
			var n int
			require.NoError(t, idb.NewRaw("SELECT count(*) FROM test_widgets WHERE tenant_id IN (?, ?)", a, b).Scan(ctx, &n))
			return n
		}
		scoped := func(ctx context.Context) (n int) {
			require.NoError(t, tenancy.RunScoped(ctx, raw, func(ctx context.Context, idb bun.IDB) error {
				n = count(ctx, idb)
				return nil
			}))
			return n
		}
		if db.Name != "postgres" {
			require.Equal(t, 3, scoped(as(a)), "SQLite has no row-level security: the hooks and the Guard scope")
			require.ErrorIs(t, tenancy.RunScoped(context.Background(), raw, func(context.Context, bun.IDB) error { return nil }), tenancy.ErrNoTenant)
			return
		}
		trips := func(f func()) int64 {
			before, ok := sqldb.RoundTrips(raw.DB)
			require.True(t, ok)
			f()
			after, _ := sqldb.RoundTrips(raw.DB)
			return after - before
		}
		scoped(as(a)) // warm: the connection is open, the statements prepared
		require.EqualValues(t, 1, trips(func() { require.Equal(t, 2, scoped(as(a))) }), "a scoped statement is one round trip")
		require.EqualValues(t, 1, trips(func() { require.Equal(t, 1, scoped(as(b))) }))
		require.Zero(t, count(context.Background(), raw), "the setting ended with the statement")

		inTx := func(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
			return tenancy.RunInTx(ctx, raw, nil, fn)
		}
		one := func(context.Context, bun.Tx) error { return nil }
		require.NoError(t, inTx(as(a), func(ctx context.Context, tx bun.Tx) error { count(ctx, tx); return one(ctx, tx) })) // warm
		require.EqualValues(t, 2, trips(func() {
			require.NoError(t, inTx(as(a), func(ctx context.Context, tx bun.Tx) error {
				require.Equal(t, 2, count(ctx, tx))
				return nil
			}))
		}), "a transaction of one statement: the statement with BEGIN and the setting, then COMMIT")
		require.Zero(t, trips(func() {
			require.NoError(t, inTx(as(a), one))
		}), "an empty transaction sends nothing")
		require.Zero(t, count(context.Background(), raw), "the setting ended with the transaction")

		// Later statements of the transaction keep the tenant; a write to
		// another tenant's row is refused and rolls the transaction back.
		err := inTx(as(a), func(ctx context.Context, tx bun.Tx) error {
			require.Equal(t, 2, count(ctx, tx))
			require.Equal(t, 2, count(ctx, tx))
			_, err := tx.ExecContext(ctx, "INSERT INTO test_widgets (tenant_id, id, name, size) VALUES (?, ?, 'planted', 0)", b, tenancy.NewID())
			return err
		})
		require.ErrorContains(t, err, "row-level security")
		require.Equal(t, 1, scoped(as(b)), "B is as it was")
		var setting *string
		require.NoError(t, raw.NewRaw("SELECT NULLIF(current_setting('app.tenant_id', true), '')").Scan(context.Background(), &setting))
		require.Nil(t, setting, "app.tenant_id must not outlive its statement or transaction")

		// A nested RunInTx switches the tenant for its part and back.
		require.NoError(t, inTx(as(a), func(ctx context.Context, tx bun.Tx) error {
			require.NoError(t, tenancy.RunInTx(as(b), tx, nil, func(ctx context.Context, tx bun.Tx) error {
				require.Equal(t, 1, count(ctx, tx))
				return nil
			}))
			require.Equal(t, 2, count(ctx, tx))
			return nil
		}))
	}, setup)
}

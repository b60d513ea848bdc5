package tenancy_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestRowLevelSecurity proves the second wall: a handle without the Guard or
// any hook, running raw SQL, still sees and changes only the transaction's
// tenant on PostgreSQL.
func TestRowLevelSecurity(t *testing.T) {
	if !hasPostgres() {
		t.Log("PostgreSQL half not run: " + dbtest.EnvPostgres + " is not set")
	}
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		if db.Name != "postgres" {
			return // SQLite has no row-level security; the hooks and the Guard are its wall.
		}
		a, b := tenancy.NewID(), tenancy.NewID()
		for _, tid := range []string{a, a, b} {
			require.NoError(t, insert(as(tid), db, &widget{ID: tenancy.NewID(), Name: "w"}))
		}
		raw := db.Reopen(t) // no Guard, no hooks on raw SQL
		raw.SetMaxOpenConns(1)

		countIn := func(ctx context.Context) int {
			var n int
			require.NoError(t, tenancy.RunInTx(ctx, raw, nil, func(ctx context.Context, tx bun.Tx) error {
				return tx.NewRaw("SELECT count(*) FROM test_widgets").Scan(ctx, &n)
			}))
			return n
		}
		require.Equal(t, 2, countIn(as(a)), "a raw SELECT with no WHERE sees only A's rows")
		require.Equal(t, 1, countIn(as(b)))

		// Outside a tenant transaction nothing is visible, before and after
		// a transaction ran on the same (single) pooled connection: the
		// setting does not leak.
		var n int
		require.NoError(t, raw.NewRaw("SELECT count(*) FROM test_widgets").Scan(context.Background(), &n))
		require.Zero(t, n)
		var setting *string
		require.NoError(t, raw.NewRaw("SELECT NULLIF(current_setting('app.tenant_id', true), '')").Scan(context.Background(), &setting))
		require.Nil(t, setting, "app.tenant_id must not outlive its transaction")

		// Writes to another tenant's rows are invisible or refused.
		err := tenancy.RunInTx(as(a), raw, nil, func(ctx context.Context, tx bun.Tx) error {
			res, err := tx.ExecContext(ctx, "UPDATE test_widgets SET name = 'x'")
			require.NoError(t, err)
			rows, _ := res.RowsAffected()
			require.EqualValues(t, 2, rows, "only A's two rows are updated")
			_, err = tx.ExecContext(ctx, "INSERT INTO test_widgets (tenant_id, id, name, size) VALUES (?, ?, 'planted', 0)", b, tenancy.NewID())
			return err
		})
		require.ErrorContains(t, err, "row-level security")
		require.Equal(t, 1, countIn(as(b)), "the refused insert left B as it was")

		// Every table with a tenant_id column has forced row security and a policy.
		var unprotected []string
		require.NoError(t, raw.NewRaw(`
			SELECT c.relname FROM pg_class c
			JOIN pg_namespace ns ON ns.oid = c.relnamespace AND ns.nspname = current_schema()
			JOIN pg_attribute at ON at.attrelid = c.oid AND at.attname = 'tenant_id' AND NOT at.attisdropped
			WHERE c.relkind = 'r' AND NOT (c.relrowsecurity AND c.relforcerowsecurity
				AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid))`).Scan(context.Background(), &unprotected))
		require.Empty(t, unprotected)
		var owner bool
		require.NoError(t, raw.NewRaw("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user").Scan(context.Background(), &owner))
		require.False(t, owner, "tests must connect as a role that row-level security binds")
	}, setup)
}

package tenancy_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS17TenantCannotChangeIndexes: on SQLite the application's handle
// owns every table, and the Guard let a tenant create and drop indexes of
// tenant-owned tables. Tenant B's CREATE INDEX probe ON test_widgets
// (json(CASE WHEN name = 'secret-a' THEN 'x' ELSE '1' END)) failed with
// "malformed JSON" exactly when some tenant's row held that name — an
// oracle for tenant A's values, one guess per statement; B's CREATE UNIQUE
// INDEX … (tenant_id, size) made A's next widget of a size A already had
// fail; B's DROP INDEX test_widgets_tenant_id made A's upserts on
// (tenant_id, id) fail ("ON CONFLICT clause does not match any PRIMARY KEY
// or UNIQUE constraint"). On PostgreSQL the application role owns no
// table and the server refused each. Under a tenant's principal the Guard
// now refuses every CREATE INDEX and DROP INDEX on both databases, as it
// does triggers; migrations (no principal) still make them.
func TestS17TenantCannotChangeIndexes(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(a), db, &widget{ID: "wa-" + a, Name: "secret-a", Size: 1}))
		require.NoError(t, insert(as(b), db, &widget{ID: "wb-" + b, Name: "mine-b", Size: 2}))
		for _, q := range []string{
			"CREATE INDEX probe ON test_widgets (json(CASE WHEN name = 'secret-a' THEN 'x' ELSE '1' END))",
			"CREATE UNIQUE INDEX probe ON test_widgets (tenant_id, size)",
			"create unique index if not exists main.probe on test_widgets (tenant_id, size)",
			"CREATE INDEX probe ON test_widgets (tenant_id) WHERE name = 'secret-a'",
			"CREATE INDEX probe ON test_widgets (name COLLATE NOCASE) WHERE name GLOB 's*'",
			"CREATE INDEX probe ON test_gadgets (label)",
			"DROP INDEX test_widgets_tenant_id",
			"DROP INDEX IF EXISTS main.test_widgets_tenant_id",
			`drop index "TEST_WIDGETS_TENANT_ID"`,
			"DROP INDEX CONCURRENTLY test_widgets_tenant_id",
		} {
			_, err := execAs(db, b, q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
			err = tenancy.RunScoped(as(b), db, func(ctx context.Context, db bun.IDB) error {
				_, err := db.ExecContext(ctx, q)
				return err
			})
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s (RunScoped)", q)
		}
		// A's writes behave as the schema says: a second widget of size 1,
		// and an upsert on (tenant_id, id).
		require.NoError(t, insert(as(a), db, &widget{ID: "wa2-" + a, Name: "secret-a", Size: 1}))
		_, err := exec(as(a), db, func(db bun.IDB) (sql.Result, error) {
			return db.NewInsert().Model(&widget{ID: "wa-" + a, Name: "renamed-a", Size: 1}).
				On("CONFLICT (tenant_id, id) DO UPDATE").Set("name = EXCLUDED.name").Exec(as(a))
		})
		require.NoError(t, err, "A's upsert")
		seen, err := execAs(db, a, "SELECT name FROM test_widgets WHERE tenant_id = '"+a+"' ORDER BY id")
		require.NoError(t, err)
		require.Equal(t, "renamed-a\nsecret-a", seen) // wa- sorts before wa2-
		if db.Name == "sqlite" {
			// Migrations, without a principal, still change indexes.
			_, err = db.ExecContext(context.Background(), "CREATE INDEX test_widgets_size ON test_widgets (tenant_id, size)")
			require.NoError(t, err)
			_, err = db.ExecContext(context.Background(), "DROP INDEX test_widgets_size")
			require.NoError(t, err)
		}
	})
}

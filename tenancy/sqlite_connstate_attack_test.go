package tenancy_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestGuardRefusesConnectionStateFunctions: a pooled SQLite connection
// serves tenant after tenant, and last_insert_rowid(), changes() and
// total_changes() answer about the statements the connection ran before.
// With one connection in the pool, tenant A inserted three widgets and
// updated them; tenant B, through ordinary bun selects, then read A's
// last rowid (how many widgets the table holds), how many rows A's update
// touched, and how many rows every tenant changed on the connection. The
// Guard refuses these functions now, in every spelling SQLite reads, on
// both databases; a column or a string that only holds the word runs.
func TestGuardRefusesConnectionStateFunctions(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		db.SetMaxOpenConns(1) // every statement below runs on the same connection
		a, b := tenancy.NewID(), tenancy.NewID()
		for i := range 3 {
			require.NoError(t, insert(as(a), db, &widget{ID: tenancy.NewID(), Name: fmt.Sprint("secret-a-", i), Size: i}))
		}
		res, err := db.NewUpdate().Model((*widget)(nil)).Set("size = size + 1").Where("size >= 0").Exec(as(a))
		require.NoError(t, err)
		if n, _ := res.RowsAffected(); db.Name == "sqlite" {
			require.EqualValues(t, 3, n) // on PostgreSQL, outside tenancy.RunInTx, row-level security shows A none
		}

		// What B read of A's statements through the shared connection.
		for _, fn := range []string{"last_insert_rowid()", "changes()", "total_changes()"} {
			var got int64
			err := db.NewSelect().ColumnExpr(fn).Scan(as(b), &got)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "tenant B read %s = %d, left by tenant A's statements", fn, got)
		}
		for _, q := range []string{
			"SELECT last_insert_rowid()",
			"select LAST_INSERT_ROWID ( )",
			"SELECT changes() AS n",
			`SELECT "changes"()`,
			"SELECT [total_changes]()",
			"SELECT `total_changes`()",
			"SELECT /* x */ total_changes /* y */ ()",
			"SELECT 1 WHERE changes() > 0",
			"SELECT (SELECT last_insert_rowid()) AS n",
			"WITH c AS (SELECT changes() AS n) SELECT n FROM c",
			"SELECT 1; SELECT total_changes()",
			"SELECT name FROM test_widgets WHERE tenant_id = '" + b + "' AND size < changes()",
		} {
			_, err := db.ExecContext(as(b), q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
			_, err = db.ExecContext(context.Background(), q)
			require.True(t, errors.Is(err, tenancy.ErrUnscoped) || errors.Is(err, tenancy.ErrNoTenant), "without a principal: %s: %v", q, err)
		}
		// The words alone are no call.
		for _, q := range []string{"SELECT 'changes()' AS w", "SELECT 1 AS changes", "SELECT 'total_changes' AS last_insert_rowid"} {
			_, err := db.ExecContext(as(b), q)
			require.NoError(t, err, "%s", q)
		}
	})
}

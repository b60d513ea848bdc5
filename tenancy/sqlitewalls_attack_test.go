package tenancy_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestGuardRefusesConnectionSettingsAndPageStats: on SQLite, tenant A's
// statements through the guarded handle changed settings of the pooled
// connection that the next caller of any tenant inherits —
// "PRAGMA secure_delete = OFF" left another tenant's erased rows in the
// file's free space (crm's TestNameFTSErasureSurvivesAPragmaOfAnotherTenant),
// recursive_triggers, foreign_keys, query_only changed what every tenant's
// statements do — and the dbstat virtual table counted the cells of every
// tenant-owned table: B's three widgets were a count A could read. Both
// are refused now, in every spelling, on both databases; the pragmas the
// SDK and its tests use (a checkpoint, reading secure_delete, a table's
// columns) still run on SQLite.
func TestGuardRefusesConnectionSettingsAndPageStats(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		for i := range 3 {
			require.NoError(t, insert(as(b), db, &widget{ID: tenancy.NewID(), Name: fmt.Sprint("secret-b-", i), Size: i}))
		}
		if db.Name == "sqlite" {
			// What the page statistics told A before: B's rows, counted.
			var n int
			err := db.NewRaw("SELECT count(*) FROM dbstat").Scan(as(a), &n)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "dbstat read %d rows of page statistics", n)
		}
		for _, q := range []string{
			"PRAGMA secure_delete = OFF",
			"PRAGMA secure_delete=0",
			"pragma SECURE_DELETE = fast",
			"PRAGMA main.secure_delete = 0",
			"PRAGMA main . secure_delete(0)",
			`PRAGMA "secure_delete" = 'off'`,
			"PRAGMA secure_delete(FALSE)",
			"/* x */ PRAGMA /* y */ secure_delete /* z */ = 0",
			"SELECT 1; PRAGMA secure_delete = 0",
			"PRAGMA recursive_triggers = OFF",
			"PRAGMA foreign_keys = OFF",
			"PRAGMA query_only = ON",
			"PRAGMA trusted_schema = ON",
			"PRAGMA ignore_check_constraints = ON",
			"PRAGMA cell_size_check = OFF",
			"PRAGMA journal_mode = DELETE",
			"PRAGMA schema_version = 1",
			"PRAGMA legacy_alter_table = ON",
			"SELECT count(*) FROM dbstat",
			"SELECT name, sum(ncell) FROM dbstat WHERE name LIKE 'test_wid%' GROUP BY name",
			"SELECT * FROM DBSTAT('main', 1)",
			`SELECT * FROM "dbstat"`,
			"SELECT * FROM main.dbstat",
			"SELECT * FROM 'dbstat'",
			"SELECT (SELECT count(*) FROM dbstat) AS n",
			"WITH s AS (SELECT * FROM dbstat) SELECT count(*) FROM s",
			"CREATE VIRTUAL TABLE temp.stats USING dbstat(main)",
			"CREATE VIRTUAL TABLE temp.stats USING 'dbstat'",
			"SELECT data FROM sqlite_dbpage",
		} {
			_, err := db.ExecContext(as(a), q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
			_, err = db.ExecContext(context.Background(), q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "without a principal: %s", q)
		}
		if db.Name != "sqlite" {
			return
		}
		var on int
		require.NoError(t, db.NewRaw("PRAGMA secure_delete").Scan(as(a), &on))
		require.Equal(t, 1, on, "the connection keeps secure_delete")
		for _, q := range []string{"PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA main.wal_checkpoint(PASSIVE)", "PRAGMA table_info(socialcrm_migrations)",
			"PRAGMA recursive_triggers", "PRAGMA optimize", "PRAGMA busy_timeout = 10000"} {
			_, err := db.ExecContext(as(a), q)
			require.NoError(t, err, "%s", q)
		}
		// A name that only contains the word is not refused.
		_, err := db.ExecContext(as(a), "SELECT 'dbstat is a word' AS w")
		require.NoError(t, err)
	})
}

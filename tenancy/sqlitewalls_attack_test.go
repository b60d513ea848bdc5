package tenancy_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
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
			"PRAGMA busy_timeout = 0",
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
		for _, q := range []string{"PRAGMA table_info(socialcrm_migrations)",
			"PRAGMA recursive_triggers", "PRAGMA optimize", "PRAGMA busy_timeout"} {
			_, err := db.ExecContext(as(a), q)
			require.NoError(t, err, "%s", q)
		}
		// Checkpoints run as the system principal (under a tenant's, only
		// the SDK's own: TestS17SQLiteFileCountersStayHidden).
		for _, q := range []string{"PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA main.wal_checkpoint(PASSIVE)"} {
			_, err := db.ExecContext(tenancy.System(context.Background(), "test"), q)
			require.NoError(t, err, "%s", q)
		}
		// A name that only contains the word is not refused.
		_, err := db.ExecContext(as(a), "SELECT 'dbstat is a word' AS w")
		require.NoError(t, err)
	})
}

// TestGuardRefusesCopiesAndAttachedFiles: VACUUM INTO wrote a copy of
// the whole database — every tenant's rows, B's widgets among them, and
// whatever an erasure removes later — to any path tenant A named, and
// ATTACH opened any file the process can reach beside it. Both are
// refused now; a plain VACUUM still runs (SQLite).
func TestGuardRefusesCopiesAndAttachedFiles(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(b), db, &widget{ID: tenancy.NewID(), Name: "secret-b", Size: 1}))
		copyPath := filepath.Join(t.TempDir(), "copy.db")
		for _, q := range []string{
			"VACUUM INTO '" + copyPath + "'",
			"vacuum main into '" + copyPath + "'",
			"/* x */ VACUUM /* y */ INTO '" + copyPath + "'",
			"SELECT 1; VACUUM INTO '" + copyPath + "'",
			"ATTACH DATABASE ':memory:' AS aux",
			"attach 'file:other.db' as other",
		} {
			_, err := db.ExecContext(as(a), q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
			require.NoFileExists(t, copyPath, "%s", q)
		}
		if db.Name == "sqlite" {
			_, err := db.ExecContext(as(a), "VACUUM")
			require.NoError(t, err)
		}
	})
}

// TestGuardRefusesSQLiteStatistics: ANALYZE (which the planner needs, and
// PRAGMA optimize runs) writes SQLite's statistics tables, and
// sqlite_stat4 keeps sample keys of every index: tenant A ran ANALYZE and
// read B's tenant id and B's widget ids out of the samples of the
// widgets' (tenant_id, id) index through the guarded handle (on crm's
// tables: B's contact ids, blind indexes, update times, and the FTS5 name
// index's term prefixes and entry counts). Reading any sqlite_stat table
// is refused now, on both databases; ANALYZE still runs.
func TestGuardRefusesSQLiteStatistics(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		var ids []string
		for i := range 3 {
			w := &widget{ID: tenancy.NewID(), Name: fmt.Sprint("secret-b-", i), Size: i}
			require.NoError(t, insert(as(b), db, w))
			ids = append(ids, w.ID)
		}
		if db.Name == "sqlite" {
			_, err := db.ExecContext(as(a), "ANALYZE")
			require.NoError(t, err)
			var samples []string
			err = db.NewRaw("SELECT hex(sample) FROM sqlite_stat4").Scan(as(a), &samples)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "A read %d samples of every index, B's ids among them: %v",
				len(samples), strings.Contains(strings.Join(samples, " "), fmt.Sprintf("%X", ids[0])))
		}
		for _, q := range []string{
			"SELECT * FROM sqlite_stat1",
			"SELECT hex(sample) FROM sqlite_stat4",
			"SELECT * FROM main.sqlite_stat4 WHERE tbl = 'test_widgets'",
			`SELECT * FROM "SQLITE_STAT4"`,
			"SELECT * FROM 'sqlite_stat4'",
			"SELECT (SELECT count(*) FROM sqlite_stat1)",
			"SELECT * FROM sqlite_stat3",
			"WITH s AS (SELECT * FROM sqlite_stat4) SELECT count(*) FROM s",
			"CREATE TEMP VIEW s AS SELECT * FROM sqlite_stat4",
		} {
			_, err := db.ExecContext(as(a), q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
		}
	})
}

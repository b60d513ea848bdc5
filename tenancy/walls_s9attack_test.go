package tenancy_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestGuardKeepsSharedServerStateFromTenants: the application role is one
// role for every tenant, and PostgreSQL shares some state between all of
// its sessions, which row-level security does not filter. Through the
// guarded handle tenant B read pg_locks (every session's locks: the
// advisory-lock key of tenant A's audit chain while A appended, and the
// process ids of A's connections), could cancel or terminate those
// connections (pg_cancel_backend, pg_terminate_backend on sessions of its
// own role), send NOTIFY and pg_notify to every listener of the database
// and leave LISTEN on a pooled connection, create, read, overwrite and
// unlink large objects that are every tenant's (they belong to the role),
// read the statements other tenants had run on its pooled connection and
// how often (pg_prepared_statements), and with DEALLOCATE ALL make every
// statement the driver had prepared on that connection fail for whoever
// ran next — A's next read failed with "prepared statement … does not
// exist". Each is refused on both databases; transaction-level advisory
// locks and cursors without HOLD still run.
func TestGuardKeepsSharedServerStateFromTenants(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(a), db, &widget{ID: tenancy.NewID(), Name: "secret-a", Size: 1}))
		for _, q := range []string{
			"SELECT locktype, classid, objid, pid FROM pg_locks",
			"SELECT * FROM pg_catalog.PG_LOCKS WHERE locktype = 'advisory'",
			"SELECT * FROM pg_lock_status()",
			"SELECT pg_blocking_pids(pg_backend_pid())",
			"SELECT pg_cancel_backend(pid) FROM (SELECT 1 AS pid) AS x",
			"SELECT pg_catalog.pg_terminate_backend(1)",
			"SELECT pg_notify('river_control', '{\"action\":\"cancel\"}')",
			"NOTIFY river_control, 'x'",
			"LISTEN river_insert",
			"UNLISTEN *",
			"SELECT pg_listening_channels()",
			"SELECT lo_create(0)",
			"SELECT lo_from_bytea(0, 'x'::bytea)",
			"SELECT lo_get(1)",
			"SELECT lo_put(1, 0, 'x'::bytea)",
			"SELECT lo_unlink(1)",
			"SELECT loread(0, 1)",
			"SELECT oid FROM pg_largeobject_metadata",
			"SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements",
			"SELECT * FROM pg_prepared_statement()",
			"SELECT name FROM pg_cursors",
			"DEALLOCATE ALL",
			"DEALLOCATE PREPARE stmtcache_1",
			"PREPARE stmtcache_1 AS SELECT 1",
			"EXECUTE stmtcache_1",
			"DECLARE c CURSOR WITH HOLD FOR SELECT 1",
		} {
			_, err := execAs(db, b, q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
		}
		if db.Name != "postgres" {
			return
		}
		// The one connection of the pool: A's read after B's statements
		// ran on the connection B used.
		db.SetMaxOpenConns(1)
		defer db.SetMaxOpenConns(0)
		mine := "SELECT name FROM test_widgets WHERE tenant_id = '" + a + "'"
		seen, err := execAs(db, a, mine)
		require.NoError(t, err)
		require.Equal(t, "secret-a", seen)
		_, err = execAs(db, b, "DEALLOCATE ALL")
		require.ErrorIs(t, err, tenancy.ErrUnscoped)
		seen, err = execAs(db, a, mine)
		require.NoError(t, err, "A's next statement on the connection")
		require.Equal(t, "secret-a", seen)
		// What ends with the transaction still runs.
		_, err = execAs(db, b, "DECLARE c CURSOR FOR SELECT 1", "FETCH c", "SELECT pg_backend_pid()")
		require.NoError(t, err)
		_, err = execAs(db, b, "SELECT pg_advisory_xact_lock(42)") // one space for every tenant (guard_locks.go)
		require.ErrorIs(t, err, tenancy.ErrUnscoped)
	})
}

// TestGuardRefusesSQLiteFileCounters: on SQLite, PRAGMA page_count and
// freelist_count — as statements and as the table-valued functions
// pragma_page_count() and pragma_freelist_count — count the pages of
// every tenant's rows together, as pg_database_size does on PostgreSQL
// (refused there): read by tenant B before and after tenant A's work,
// they grew with what A wrote and shrank with what A erased (the test
// saw page_count grow by A's rows alone). data_version changes with every
// other connection's commit, every tenant's. Each is refused on both
// databases; the pragmas that read a table's schema still run.
func TestGuardRefusesSQLiteFileCounters(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		if db.Name == "sqlite" {
			// What B saw before: the file grew with A's rows.
			raw := db.Reopen(t)
			var before, after int
			require.NoError(t, raw.QueryRow("PRAGMA page_count").Scan(&before))
			require.NoError(t, tenancy.RunInTx(as(a), db, nil, func(ctx context.Context, tx bun.Tx) error {
				for range 200 {
					if _, err := tx.NewInsert().Model(&widget{ID: tenancy.NewID(), Name: fmt.Sprintf("%0200d", 1), Size: 1}).Exec(ctx); err != nil {
						return err
					}
				}
				return nil
			}))
			require.NoError(t, raw.QueryRow("PRAGMA page_count").Scan(&after))
			require.Greater(t, after, before, "page_count counts A's rows")
		}
		for _, q := range []string{
			"PRAGMA page_count",
			"pragma main.PAGE_COUNT",
			"PRAGMA freelist_count",
			"PRAGMA data_version",
			"SELECT * FROM pragma_page_count",
			"SELECT page_count FROM pragma_page_count()",
			"SELECT * FROM main.pragma_freelist_count()",
			"SELECT data_version FROM pragma_data_version",
			"SELECT (SELECT page_count FROM pragma_page_count) AS n",
		} {
			var n sql.NullInt64
			err := db.NewRaw(q).Scan(as(b), &n)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s answered %v", q, n)
		}
		if db.Name == "sqlite" {
			var cols []string
			require.NoError(t, db.NewRaw("SELECT name FROM pragma_table_info('test_widgets')").Scan(as(b), &cols))
			require.Contains(t, cols, "tenant_id")
		}
	})
}

// TestTenantCannotWriteTheMigrationTables: on SQLite every statement could
// write the table of applied migrations and its lock table, and tenant B's
// ordinary statements did: a row in the lock table made every later
// migration fail (the next release's start-up), and deleting rows of the
// migrations table made the next start-up run those migrations again. On
// PostgreSQL the application role holds no privilege on them. Under a
// tenant's principal the Guard refuses any write of either, on both
// databases; migrations, which run without a principal, still run.
func TestTenantCannotWriteTheMigrationTables(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		b := tenancy.NewID()
		var applied int
		require.NoError(t, db.NewRaw("SELECT count(*) FROM socialcrm_migrations").Scan(context.Background(), &applied))
		for _, q := range []string{
			"INSERT INTO socialcrm_migrations_locks (table_name) VALUES ('socialcrm_migrations')",
			"INSERT OR IGNORE INTO SOCIALCRM_MIGRATIONS_LOCKS (table_name) VALUES ('socialcrm_migrations')",
			"DELETE FROM socialcrm_migrations",
			"UPDATE socialcrm_migrations SET name = 'x' WHERE id = (SELECT max(id) FROM socialcrm_migrations)",
			"WITH gone AS (DELETE FROM main.socialcrm_migrations RETURNING id) SELECT count(*) FROM gone",
			"INSERT INTO socialcrm_migrations (name, group_id, migrated_at) SELECT '2', 1, '2026-01-01'",
		} {
			if db.Name == "postgres" && (q[:9] == "INSERT OR" || q[:4] == "WITH") {
				continue // SQLite's syntax and schema name
			}
			_, err := execAs(db, b, q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
		}
		var after, locks int
		require.NoError(t, db.NewRaw("SELECT count(*) FROM socialcrm_migrations").Scan(context.Background(), &after))
		require.Equal(t, applied, after)
		require.NoError(t, db.NewRaw("SELECT count(*) FROM socialcrm_migrations_locks").Scan(context.Background(), &locks))
		require.Zero(t, locks)
		require.NoError(t, setup(context.Background(), db.DB), "migrations still run")
	})
}

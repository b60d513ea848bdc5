package tenancy_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestGuardRefusesTemporaryShadowsOfOwnedTables: the Guard refused CREATE
// TEMP TABLE of a tenant-owned table's name, but not the same table made
// in the temporary schema by name, nor another relation renamed to it.
// Tenant B ran, on PostgreSQL, CREATE TABLE pg_temp.stash (…) and CREATE
// TABLE pg_temp.test_widgets () INHERITS (pg_temp.stash): the temporary
// schema comes first in the search path, so tenant A's next insert on
// that pooled connection went into B's table, where row-level security
// does not reach, and B read A's row from stash. On SQLite CREATE TABLE
// temp.test_widgets took A's rows the same way, lost with the
// connection, and A's erasures erased nothing. Each form is refused on
// both databases, and A's row lands in the table.
func TestGuardRefusesTemporaryShadowsOfOwnedTables(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		db.SetMaxOpenConns(1) // A's statements run on the connection B used
		defer db.SetMaxOpenConns(0)
		const cols = "(tenant_id TEXT NOT NULL, id TEXT PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL)"
		_, err := db.ExecContext(as(b), "CREATE TEMP TABLE stash "+cols)
		if db.Name == "postgres" {
			// On PostgreSQL a temporary table must go with the
			// transaction (TestGuardKeepsNoTemporaryObjects).
			require.ErrorIs(t, err, tenancy.ErrUnscoped)
		} else {
			require.NoError(t, err, "a temporary table of another name")
		}
		for _, q := range []string{
			"CREATE TABLE temp.test_widgets " + cols,
			`CREATE TABLE "TEMP"."Test_Widgets" ` + cols,
			"CREATE TABLE pg_temp.test_widgets () INHERITS (pg_temp.stash)",
			"CREATE TABLE pg_temp_3.test_widgets " + cols,
			"CREATE TABLE pg_temp.test_widgets PARTITION OF pg_temp.stash DEFAULT",
			"CREATE TEMP SEQUENCE test_widgets",
			"CREATE SEQUENCE pg_temp.test_gadgets",
			"CREATE TEMP TABLE test_gadgets " + cols,
			"ALTER TABLE stash RENAME TO test_widgets",
			"ALTER TABLE temp.stash RENAME TO TEST_WIDGETS",
			"ALTER TABLE pg_temp.stash RENAME TO test_widgets",
			"ALTER VIEW stash RENAME TO test_gadgets",
			"ALTER TABLE stash RENAME TO 'test_widgets'",
			"CREATE TABLE temp.'test_widgets' (tenant_id TEXT)",
			"CREATE TEMP VIEW test_widgets AS SELECT * FROM stash",
			"CREATE VIEW pg_temp.test_widgets AS SELECT * FROM stash",
			"CREATE INDEX test_widgets ON stash (name)",
			"ALTER TABLE stash RENAME TO socialcrm_tenants",
			"CREATE TABLE pg_temp.socialcrm_tenants (id TEXT)",
			"CREATE TEMP TABLE socialcrm_migrations (id TEXT)",
			"ALTER TABLE stash RENAME TO socialcrm_migrations_locks",
		} {
			_, err := db.ExecContext(as(b), q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
		}
		require.NoError(t, insert(as(a), db, &widget{ID: tenancy.NewID(), Name: "secret-a", Size: 1}))
		seen, err := execAs(db, a, "SELECT name FROM test_widgets WHERE tenant_id = '"+a+"'")
		require.NoError(t, err)
		require.Equal(t, "secret-a", seen)
		if db.Name == "sqlite" {
			seen, err = execAs(db, b, "SELECT name FROM stash")
			require.NoError(t, err)
			require.Empty(t, seen, "B's table holds none of A's rows")
		}
		seen, err = execAs(db.Owner, a, "SELECT name FROM test_widgets WHERE tenant_id = '"+a+"'")
		require.NoError(t, err)
		require.Equal(t, "secret-a", seen, "A's row is in the tenant-owned table, read on another connection")
	})
}

// TestGuardKeepsNoTemporaryObjects: on PostgreSQL the temporary schema is
// searched first for relations and for types, and it stays with the
// pooled connection. Tenant B's CREATE TYPE pg_temp.int8 AS ENUM ('x')
// made tenant A's next statement on that connection with '1'::int8 fail
// ("operator does not exist: integer = int8"); a temporary table's row
// type is a type of its name as well. Under a tenant's principal a
// temporary table must be ON COMMIT DROP, and no temporary view,
// sequence, type or domain may be made; within the transaction a
// temporary table still works. SQLite has no such search for types: its
// temporary tables of other names than the Guard's tables run.
func TestGuardKeepsNoTemporaryObjects(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		db.SetMaxOpenConns(1) // A's statements run on the connection B used
		defer db.SetMaxOpenConns(0)
		require.NoError(t, insert(as(a), db, &widget{ID: tenancy.NewID(), Name: "secret-a", Size: 1}))
		if db.Name == "postgres" {
			for _, q := range []string{
				"CREATE TYPE pg_temp.int8 AS ENUM ('x')",
				"CREATE DOMAIN pg_temp.text AS integer",
				"CREATE TYPE pg_temp.varchar AS (x int)",
				"CREATE TYPE PG_TEMP.int4 AS RANGE (subtype = int8)",
				"CREATE TEMP TABLE int8 (x int)",
				"CREATE TABLE pg_temp.int8 (x int) ON COMMIT PRESERVE ROWS",
				"CREATE TEMP TABLE int8 AS SELECT 1 AS x",
				"CREATE TEMP VIEW int8 AS SELECT 1 AS x",
				"CREATE TEMP SEQUENCE int8",
				"SELECT 1 AS x INTO TEMP int8",
				"SELECT 1 AS x INTO pg_temp.int8",
				"SELECT name INTO TEMP TABLE test_widgets FROM test_widgets WHERE tenant_id = '" + b + "'",
			} {
				_, err := execAs(db, b, q)
				require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
			}
		}
		mine := "SELECT name FROM test_widgets WHERE tenant_id = '" + a + "' AND size = '1'::int8"
		if db.Name == "sqlite" {
			mine = "SELECT name FROM test_widgets WHERE tenant_id = '" + a + "' AND size = CAST('1' AS int8)"
		}
		seen, err := execAs(db, a, mine)
		require.NoError(t, err)
		require.Equal(t, "secret-a", seen)
		// A temporary table of the transaction's own still runs.
		temp := "CREATE TEMP TABLE scratch (x int) ON COMMIT DROP"
		if db.Name == "sqlite" {
			temp = "CREATE TEMP TABLE scratch (x int)"
		}
		seen, err = execAs(db, b, temp, "INSERT INTO scratch VALUES (1)", "SELECT 'n' || x FROM scratch")
		require.NoError(t, err)
		require.Equal(t, "n1", seen)
	})
}

// TestSavepointOutsideTransactionLeavesNoTransaction: on SQLite a
// SAVEPOINT outside a transaction begins one, and the Guard lets
// SAVEPOINT run. Tenant B's db.ExecContext(ctx, "SAVEPOINT x") returned
// the pooled connection inside that transaction: tenant A's next RunInTx
// on it failed ("cannot start a transaction within a transaction"), A's
// next write ran inside B's transaction, and B's ROLLBACK TO x undid it.
// Such a connection is closed instead of pooled (closing rolls its
// transaction back); on PostgreSQL a SAVEPOINT outside a transaction
// fails.
func TestSavepointOutsideTransactionLeavesNoTransaction(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		db.SetMaxOpenConns(1) // A's statements run on the connection B used
		defer db.SetMaxOpenConns(0)
		_, err := db.ExecContext(as(b), "SAVEPOINT x")
		if db.Name == "postgres" {
			require.Error(t, err)
		} else {
			require.NoError(t, err)
		}
		require.NoError(t, insert(as(a), db, &widget{ID: tenancy.NewID(), Name: "secret-a", Size: 1}), "A's RunInTx")
		_, err = db.NewInsert().Model(&widget{ID: tenancy.NewID(), Name: "secret-a2", Size: 2}).Exec(as(a))
		if db.Name == "sqlite" { // on PostgreSQL row-level security needs RunInTx's setting
			require.NoError(t, err)
		}
		_, err = db.ExecContext(as(b), "ROLLBACK TO x")
		require.Error(t, err, "B's savepoint is gone")
		seen, err := execAs(db.Owner, a, "SELECT name FROM test_widgets WHERE tenant_id = '"+a+"' ORDER BY size")
		require.NoError(t, err)
		want := "secret-a"
		if db.Name == "sqlite" {
			want = "secret-a\nsecret-a2"
		}
		require.Equal(t, want, seen)
		// Savepoints in a transaction keep their connection.
		seen, err = execAs(db, b, "SAVEPOINT s1", "ROLLBACK TO SAVEPOINT s1", "RELEASE SAVEPOINT s1", "SELECT 'done'")
		require.NoError(t, err)
		require.Equal(t, "done", seen)
	})
}

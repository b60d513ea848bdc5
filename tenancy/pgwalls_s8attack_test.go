package tenancy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// execAs runs q in tenant's transaction and returns every text value of
// every row it returns.
func execAs(db bun.IDB, tenant string, stmts ...string) (string, error) {
	var out []string
	err := tenancy.RunInTx(as(tenant), db, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, q := range stmts {
			rows, err := tx.QueryContext(ctx, q)
			if err != nil {
				return err
			}
			cols, err := rows.Columns()
			if err != nil {
				rows.Close()
				return err
			}
			for rows.Next() {
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					rows.Close()
					return err
				}
				for _, v := range vals {
					switch v := v.(type) {
					case []byte:
						out = append(out, string(v))
					case string:
						out = append(out, v)
					}
				}
			}
			if err := rows.Close(); err != nil {
				return err
			}
		}
		return nil
	})
	return strings.Join(out, "\n"), err
}

// TestGuardKeepsPostgresStatisticsFromTenants: PostgreSQL's statistics
// count every tenant's rows together, and row-level security does not
// filter them. Through the guarded handle tenant B read how many rows the
// other tenants hold (pg_stat_user_tables, pg_stat_get_live_tuples,
// pg_class.reltuples after ANALYZE), the text of the statements other
// tenants' connections last ran (pg_stat_activity: the application role is
// one role for every tenant, so it sees all of them), and — with EXPLAIN
// ANALYZE of a query confined to B after SET LOCAL enable_bitmapscan = off
// — "Rows Removed by Filter: 7", exactly tenant A's rows. The SQLite
// counterparts (dbstat, sqlite_stat1/4) were walled already.
func TestGuardKeepsPostgresStatisticsFromTenants(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		for range 7 {
			require.NoError(t, insert(as(a), db, &widget{ID: tenancy.NewID(), Name: "secret-a", Size: 1}))
		}
		require.NoError(t, insert(as(b), db, &widget{ID: tenancy.NewID(), Name: "mine-b", Size: 2}))
		scoped := "SELECT * FROM test_widgets WHERE tenant_id = '" + b + "'"
		for _, q := range [][]string{
			{"SET LOCAL enable_bitmapscan = off", "SET LOCAL enable_indexscan = off", "EXPLAIN ANALYZE " + scoped},
			{"SET LOCAL enable_bitmapscan = off", "SET LOCAL enable_indexscan = off", "EXPLAIN (ANALYZE, FORMAT JSON) " + scoped},
			{"SET LOCAL enable_bitmapscan = off", "SET LOCAL enable_indexscan = off", "EXPLAIN (ANALYZE true, COSTS false) " + scoped},
			{"SELECT n_live_tup, n_tup_ins FROM pg_stat_user_tables WHERE relname = 'test_widgets'"},
			{"SELECT n_tup_ins FROM pg_catalog.pg_stat_xact_user_tables WHERE relname = 'test_widgets'"},
			{"SELECT * FROM \"PG_STAT_ALL_TABLES\""},
			{"SELECT heap_blks_read FROM pg_statio_user_tables"},
			{"SELECT pg_stat_get_live_tuples('test_widgets'::regclass)"},
			{"SELECT pg_catalog.pg_stat_get_tuples_inserted('test_widgets'::regclass)"},
			{"SELECT query FROM pg_stat_activity"},
			{"SELECT * FROM pg_stat_get_activity(NULL)"},
			{"SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'test_widgets'"},
			{"SELECT pg_relation_size('test_widgets')"},
			{"SELECT pg_total_relation_size('test_widgets'), pg_table_size('test_widgets'), pg_indexes_size('test_widgets')"},
			{"SELECT reltuples, relpages FROM pg_class WHERE relname = 'test_widgets'"},
			{"SELECT c.* FROM pg_class AS c WHERE c.relname = 'test_widgets'"},
			{"SELECT to_json(c) FROM pg_class AS c WHERE c.relname = 'test_widgets'"},
		} {
			if db.Name == "sqlite" {
				q = q[len(q)-1:] // SQLite has no SET
			}
			seen, err := execAs(db, b, q...)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
			require.NotContains(t, seen, "Removed by Filter", "%s", q)
		}
		// Plans without running the statement (and without the estimates,
		// TestTenantCannotReadGlobalCounters), and the catalogue reads
		// socialcrm.CheckRole makes, still run.
		if db.Name == "postgres" {
			seen, err := execAs(db, b, "EXPLAIN (COSTS false) "+scoped)
			require.NoError(t, err)
			require.Contains(t, seen, "test_widgets")
			seen, err = execAs(db, b, "EXPLAIN (ANALYZE false, COSTS off) "+scoped)
			require.NoError(t, err)
			require.Contains(t, seen, "test_widgets")
			seen, err = execAs(db, b, "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'test_widgets'")
			require.NoError(t, err)
			require.Equal(t, "test_widgets", seen)
		}
	})
}

// TestGuardRefusesSettingsThatOutliveTheStatement: a session-level SET on
// PostgreSQL stays with the pooled connection that the next caller — of
// any tenant — gets, as a PRAGMA did on SQLite: after tenant B's SET
// default_transaction_read_only = on, tenant A's next insert on that
// connection failed. ALTER ROLE … SET reaches further: the application
// role is every tenant's, so one tenant's ALTER ROLE CURRENT_USER SET
// statement_timeout = '1ms' (which PostgreSQL lets a role do to itself)
// broke every new connection of every tenant and replica, across
// restarts. A session-level advisory lock is held by a pooled connection
// for good: with tenant A's audit-chain key (derived from A's id alone) it
// stopped every audited action of A. Each is refused; SET LOCAL and
// transaction-level advisory locks, which end with the transaction, run.
func TestGuardRefusesSettingsThatOutliveTheStatement(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		a, b := tenancy.NewID(), tenancy.NewID()
		refused := []string{
			"SET default_transaction_read_only = on",
			"SET SESSION statement_timeout = 1",
			"SET work_mem TO '64kB'",
			"SET TIME ZONE 'Pacific/Kiritimati'",
			"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
			"SELECT pg_advisory_lock(1)",
			"SELECT pg_catalog.pg_try_advisory_lock(1, 2)",
			"SELECT pg_advisory_lock_shared(1)",
			"SELECT pg_try_advisory_lock_shared(1)",
			// On PostgreSQL only the database-scoped form is sent below:
			// the others would change the shared test role.
			"ALTER ROLE CURRENT_USER SET statement_timeout = '1ms'",
			"ALTER ROLE CURRENT_USER PASSWORD 'taken'",
			"ALTER USER CURRENT_USER RESET ALL",
			"ALTER DATABASE postgres SET statement_timeout = '1ms'",
			"ALTER SYSTEM SET statement_timeout = '1ms'",
		}
		if db.Name == "postgres" {
			var name string
			require.NoError(t, db.NewRaw("SELECT current_database()").Scan(ctx, &name))
			t.Cleanup(func() {
				// Undo what an unguarded run changed: only this test's
				// database is named.
				_, _ = db.Admin(t).ExecContext(ctx, "ALTER ROLE socialcrm_tests_app IN DATABASE "+name+" RESET ALL")
			})
			refused = append(refused[:9], "ALTER ROLE CURRENT_USER IN DATABASE "+name+" SET default_transaction_read_only = on")
		}
		// One connection: what B's statement leaves on it is what A's
		// next statement gets, as with a pool under load.
		db.DB.DB.SetMaxOpenConns(1)
		for _, q := range refused {
			_, err := execAs(db, b, q)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
			require.NoError(t, insert(as(a), db, &widget{ID: tenancy.NewID(), Name: "after " + q, Size: 1}), "A writes after B's %s", q)
		}
		if db.Name == "postgres" {
			// A new connection, as another replica opens.
			other := db.Reopen(t)
			require.NoError(t, insert(as(a), other, &widget{ID: tenancy.NewID(), Name: "new connection", Size: 1}))
			// What ends with the transaction still runs.
			_, err := execAs(db, b, "SET LOCAL statement_timeout = 10000")
			require.NoError(t, err)
			// Advisory locks are one space for every tenant: refused even
			// when they end with the transaction (guard_locks.go).
			_, err = execAs(db, b, "SELECT pg_advisory_xact_lock(1)")
			require.ErrorIs(t, err, tenancy.ErrUnscoped)
			// The system principal's maintenance takes session locks (a
			// purge's claim), and releases them.
			sys, err := tenancy.AsTenant(tenancy.System(ctx, "test"), b)
			require.NoError(t, err)
			require.NoError(t, tenancy.RunInTx(sys, db, nil, func(ctx context.Context, tx bun.Tx) error {
				var got bool
				if err := tx.NewRaw("SELECT pg_try_advisory_lock(7, 8)").Scan(ctx, &got); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, "SELECT pg_advisory_unlock(7, 8)")
				return err
			}))
		}
	})
}

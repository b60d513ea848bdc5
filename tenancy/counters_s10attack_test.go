package tenancy_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestTenantCannotReadGlobalCounters: counters of the whole file or
// server moved with every tenant's work, and tenant B read them through
// its own rows or on their own: on SQLite the rowid of B's widgets (the
// gap between two of them was the number of rows every other tenant
// inserted in between, here A's three) and sqlite_sequence; on
// PostgreSQL the transaction ids (txid_current, the xmin of B's rows,
// age of an xid), ctid, the write-ahead log's position, snapshots,
// sequences and EXPLAIN's row estimates. Under a tenant's principal each
// is refused; the system principal still reads them, and a plan without
// its costs still runs.
func TestTenantCannotReadGlobalCounters(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(b), db, &widget{ID: tenancy.NewID(), Name: "b1", Size: 1}))
		for range 3 {
			require.NoError(t, insert(as(a), db, &widget{ID: tenancy.NewID(), Name: "a", Size: 1}))
		}
		require.NoError(t, insert(as(b), db, &widget{ID: tenancy.NewID(), Name: "b2", Size: 1}))
		mine := " FROM test_widgets WHERE tenant_id = '" + b + "'"
		attacks := []string{"SELECT max(rowid) - min(rowid)" + mine, "SELECT _rowid_" + mine, "SELECT w.oid FROM test_widgets w WHERE w.tenant_id = '" + b + "'",
			"SELECT id" + mine + " AND rowid > 2", "SELECT name, seq FROM sqlite_sequence"}
		if db.Name == "postgres" {
			attacks = []string{"SELECT txid_current()", "SELECT pg_current_xact_id()::text", "SELECT xmin::text" + mine,
				"SELECT ctid::text" + mine, "SELECT age(xmin)" + mine, "SELECT age('1'::xid)", "SELECT pg_current_wal_lsn()::text",
				"SELECT pg_catalog.pg_current_wal_insert_lsn()::text", "SELECT pg_current_snapshot()::text", "SELECT txid_current_snapshot()::text",
				"SELECT (pg_control_checkpoint()).next_xid", "SELECT last_value FROM pg_sequences", "SELECT nextval('x')",
				"EXPLAIN SELECT id" + mine, "EXPLAIN (FORMAT JSON) SELECT id" + mine, "EXPLAIN (COSTS true) SELECT id" + mine,
				"SELECT id" + mine + " AND xmax = '0'"}
		}
		for _, q := range attacks {
			err := tenancy.RunInTx(as(b), db, nil, func(ctx context.Context, tx bun.Tx) error {
				rows, err := tx.QueryContext(ctx, q)
				if err != nil {
					return err
				}
				return rows.Close()
			})
			require.ErrorIs(t, err, tenancy.ErrUnscoped, q)
		}

		// What stays: a plan without estimates, dates, the catalogues'
		// oid on PostgreSQL, and the system principal's reads.
		runs := []string{"SELECT count(*)" + mine}
		if db.Name == "postgres" {
			runs = append(runs, "EXPLAIN (COSTS false) SELECT id"+mine, "SELECT age(now(), now() - interval '1 day')",
				"SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'test_widgets'")
		}
		for _, q := range runs {
			require.NoError(t, tenancy.RunInTx(as(b), db, nil, func(ctx context.Context, tx bun.Tx) error {
				rows, err := tx.QueryContext(ctx, q)
				if err != nil {
					return err
				}
				return rows.Close()
			}), q)
		}
		sys := tenancy.System(context.Background(), "test")
		q := "SELECT name, seq FROM sqlite_sequence"
		if db.Name == "postgres" {
			q = "SELECT txid_current()"
		}
		rows, err := db.QueryContext(sys, q)
		require.NoError(t, err)
		require.NoError(t, rows.Close())
	})
}

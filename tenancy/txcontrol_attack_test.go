package tenancy_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/tenancy"
)

// countWidgets returns how many of tenant's widgets are committed.
func countWidgets(t *testing.T, db bun.IDB, tenant string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, tenancy.RunInTx(as(tenant), db, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		n, err = tx.NewSelect().Model((*widget)(nil)).Where("tenant_id = ?", tenant).Count(ctx)
		return err
	}))
	return n
}

var errCallback = errors.New("callback failed")

// txControl are statements that begin or end a transaction, in the
// spellings of both databases.
var txControl = []string{
	"BEGIN", "begin transaction", "START TRANSACTION", "BEGIN; SELECT 1", "SELECT 1; COMMIT",
	"BEGIN IMMEDIATE", "BEGIN EXCLUSIVE TRANSACTION", "/* x */ BEGIN DEFERRED",
	"COMMIT", "END", "END TRANSACTION", "ROLLBACK", "ABORT",
	"PREPARE TRANSACTION 'x'", "COMMIT PREPARED 'x'", "ROLLBACK PREPARED 'x'",
	"CREATE TEMP TRIGGER t AFTER INSERT ON tx_other BEGIN SELECT 1; END; BEGIN IMMEDIATE",
}

// TestGuardRefusesTransactionControl: a BEGIN sent in RunScoped returned
// the pooled connection inside a transaction; on SQLite the next user's
// statements ran in it (a RunInTx of another tenant failed with "cannot
// start a transaction within a transaction") and a ROLLBACK from the first
// tenant could undo them. The Guard refuses every statement that begins or
// ends a transaction, at the hook and at the driver, and the connection
// stays usable by the next tenant.
func TestGuardRefusesTransactionControl(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		db.DB.SetMaxOpenConns(1) // every statement reuses one connection
		a, b := tenancy.NewID(), tenancy.NewID()
		for i, q := range txControl {
			err := tenancy.RunScoped(as(a), db, func(ctx context.Context, db bun.IDB) error {
				_, err := db.ExecContext(ctx, q)
				return err
			})
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
			require.ErrorContains(t, err, "use tenancy.RunInTx", "%s", q)
			_, err = db.DB.DB.ExecContext(as(a), q) // database/sql directly: the driver's check
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)

			require.NoError(t, insert(as(b), db, &widget{ID: tenancy.NewID(), Name: "b", Size: 1}), "%s", q)
			_, err = db.ExecContext(as(a), "ROLLBACK")
			require.ErrorIs(t, err, tenancy.ErrUnscoped)
			require.Equal(t, int64(i+1), countWidgets(t, db, b), "%s", q)
		}
	})
}

// TestCommitInRunInTxKeepsItAtomic: a COMMIT, END or ROLLBACK sent in
// RunInTx's callback ended the SDK's transaction early, and the rest of
// the callback ran outside it: its rows stayed though RunInTx returned the
// callback's error. Refused now, the callback's failure undoes everything.
func TestCommitInRunInTxKeepsItAtomic(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a := tenancy.NewID()
		for _, q := range []string{"COMMIT", "END", "ROLLBACK", "COMMIT; SELECT 1"} {
			err := tenancy.RunInTx(as(a), db, nil, func(ctx context.Context, tx bun.Tx) error {
				require.NoError(t, insert(ctx, tx, &widget{ID: tenancy.NewID(), Name: "a1", Size: 1}))
				_, err := tx.ExecContext(ctx, q)
				require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
				require.NoError(t, insert(ctx, tx, &widget{ID: tenancy.NewID(), Name: "a2", Size: 1}))
				return errCallback
			})
			require.ErrorIs(t, err, errCallback)
			require.Zero(t, countWidgets(t, db, a), "%s", q)
		}
	})
}

// TestGuardAllowsSavepoints: SAVEPOINT, RELEASE and ROLLBACK TO — what
// bun's nested transactions send, and what fn may send itself — still run,
// and do what they say.
func TestGuardAllowsSavepoints(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a := tenancy.NewID()
		require.NoError(t, tenancy.RunInTx(as(a), db, nil, func(ctx context.Context, tx bun.Tx) error {
			require.NoError(t, insert(ctx, tx, &widget{ID: tenancy.NewID(), Name: "kept", Size: 1}))
			_, err := tx.ExecContext(ctx, "SAVEPOINT s1")
			require.NoError(t, err)
			require.NoError(t, insert(ctx, tx, &widget{ID: tenancy.NewID(), Name: "undone", Size: 1}))
			_, err = tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT s1")
			require.NoError(t, err)
			_, err = tx.ExecContext(ctx, "RELEASE SAVEPOINT s1")
			require.NoError(t, err)
			// bun's own savepoints: a failed nested RunInTx is undone alone.
			err = tenancy.RunInTx(ctx, tx, nil, func(ctx context.Context, tx bun.Tx) error {
				require.NoError(t, insert(ctx, tx, &widget{ID: tenancy.NewID(), Name: "nested", Size: 1}))
				return errCallback
			})
			require.ErrorIs(t, err, errCallback)
			return nil
		}))
		require.Equal(t, int64(1), countWidgets(t, db, a))
	})
}

// TestGuardLetsSQLiteTriggerBodiesEnd: the END that closes a SQLite
// trigger's body ends no transaction, and a trigger on a table that is
// not tenant-owned is created as before.
func TestGuardLetsSQLiteTriggerBodiesEnd(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		if db.Name != "sqlite" {
			return // PostgreSQL triggers call functions, which the Guard refuses to define
		}
		ctx := context.Background()
		_, err := db.ExecContext(ctx, "CREATE TABLE tx_other (x INTEGER)")
		require.NoError(t, err)
		_, err = db.ExecContext(ctx, "CREATE TRIGGER tx_other_t AFTER INSERT ON tx_other BEGIN SELECT 1; END")
		require.NoError(t, err)
	})
}

// TestPooledConnectionInTransactionIsDiscarded: on PostgreSQL a
// connection that a statement left inside a transaction — with the
// tenant setting of a folded statement (WithSetting) in force — is not
// reused: pgx's database/sql adapter discards it before its next use, so
// the next statement runs on another connection, without the setting.
// This is the handle's driver without
// the Guard, which refuses such statements first. SQLite has no such
// adapter check; there the Guard's refusal is the defence.
func TestPooledConnectionInTransactionIsDiscarded(t *testing.T) {
	if !hasPostgres() {
		t.Log("not run: " + dbtest.EnvPostgres + " is not set")
		return
	}
	db := dbtest.Postgres(t, setup)
	c, err := sqldb.PostgresConnector(db.DSN())
	require.NoError(t, err)
	raw := sql.OpenDB(c)
	defer raw.Close()
	raw.SetMaxOpenConns(1)
	ctx := context.Background()
	for _, folded := range []bool{true, false} {
		actx := ctx
		if folded {
			actx = sqldb.WithSetting(ctx, "app.tenant_id", tenancy.NewID())
		}
		var pid int
		require.NoError(t, raw.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid))
		_, err = raw.ExecContext(actx, "BEGIN") // on the pool's only connection
		require.NoError(t, err)

		var next int
		var setting string
		require.NoError(t, raw.QueryRowContext(ctx,
			"SELECT pg_backend_pid(), coalesce(current_setting('app.tenant_id', true), '')").Scan(&next, &setting))
		require.NotEqual(t, pid, next, "folded=%v: the connection was reused inside its transaction", folded)
		require.Empty(t, setting, "folded=%v", folded)
	}
}

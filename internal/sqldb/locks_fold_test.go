package sqldb_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/sqldb"
)

// TestAdvisoryLocksFoldIntoTheSetting: a statement under a setting its
// connection must send and under advisory locks (WithAdvisoryLocks) sends
// the set_config and the locks as one statement before it — two
// statements in its round trip, not three — with session-level and with
// transaction-local settings; the statement runs under its setting and
// holding the locks, and in a transaction the locks keep another session
// out until the transaction ends.
func TestAdvisoryLocksFoldIntoTheSetting(t *testing.T) {
	_, db := pgHandle(t)
	if db == nil {
		return
	}
	ctx := context.Background()
	probe, err := pgx.Connect(ctx, db.OwnerDSN())
	require.NoError(t, err)
	defer probe.Close(ctx)
	free := func(key int64) bool {
		t.Helper()
		var ok bool
		require.NoError(t, probe.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", key).Scan(&ok))
		return ok
	}
	const q = "SELECT current_setting('app.s', true), (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted)"
	for _, mode := range []string{"", "&socialcrm_settings=transaction"} {
		c, err := sqldb.PostgresConnector(db.OwnerDSN() + mode)
		require.NoError(t, err)
		h := sql.OpenDB(c)
		defer h.Close()
		h.SetMaxOpenConns(1)
		for i, value := range []string{"A", "B", "B"} {
			before := sqldb.BatchStatements()
			var v sql.NullString
			var held int64
			require.NoError(t, h.QueryRowContext(sqldb.WithAdvisoryLocks(sqldb.WithSetting(ctx, "app.s", value), []int64{7, 9}), q).Scan(&v, &held), mode)
			sent := sqldb.BatchStatements() - before
			require.Equal(t, value, v.String, mode)
			require.EqualValues(t, 2, held, "%s: the statement runs holding both locks", mode)
			require.EqualValues(t, 2, sent, "%s, statement %d: the locks travel with the set_config, or alone when none is sent", mode, i)
			require.True(t, free(7) && free(9), "%s: the locks end with the statement's implicit transaction", mode)
		}

		// In a transaction: the deferred BEGIN, the set_config with the
		// locks, the statement; the locks are held until the commit.
		tx, err := h.BeginTx(sqldb.WithSetting(ctx, "app.s", "T"), nil)
		require.NoError(t, err)
		before := sqldb.BatchStatements()
		var v sql.NullString
		var held int64
		require.NoError(t, tx.QueryRowContext(sqldb.WithAdvisoryLocks(ctx, []int64{7, 9}), q).Scan(&v, &held), mode)
		require.EqualValues(t, 3, sqldb.BatchStatements()-before, mode)
		require.Equal(t, "T", v.String, mode)
		require.EqualValues(t, 2, held, mode)
		require.False(t, free(7), "%s: another session waits for the transaction", mode)
		require.False(t, free(9), mode)
		require.NoError(t, tx.Commit())
		require.True(t, free(7) && free(9), mode)
	}
}

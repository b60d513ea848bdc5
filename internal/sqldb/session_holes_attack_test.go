package sqldb_test

import (
	"context"
	"database/sql/driver"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// TestAttackSavepointRollbackBehindComment: a savepoint of the
// application's own (the Guard allows SAVEPOINT and ROLLBACK TO), set
// before a statement under B, rolled back to by a statement that begins
// with a comment: the rollback undoes B's set_config, so the next
// statement under B must set it again, not run under the value before.
func TestAttackSavepointRollbackBehindComment(t *testing.T) {
	bothModes(t, attackSavepointRollbackBehindComment)
}

func attackSavepointRollbackBehindComment(t *testing.T) {
	h, _ := rlsHandle(t, 1)
	for _, rollback := range []string{
		"/* undo */ ROLLBACK TO SAVEPOINT s",
		"-- undo\nROLLBACK TO SAVEPOINT s",
		"ROLLBACK TO s",
		"rollback to savepoint s",
	} {
		tx, err := h.BeginTx(as("A"), nil)
		require.NoError(t, err)
		defer tx.Rollback() // a failure leaves no transaction open
		wall(t, as("A"), tx, "A", rollback+": before")
		_, err = tx.ExecContext(as("A"), "/* mine */ SAVEPOINT s")
		require.NoError(t, err)
		wall(t, as("B"), tx, "B", rollback+": after the savepoint")
		_, err = tx.ExecContext(as("B"), rollback)
		require.NoError(t, err)
		wall(t, as("B"), tx, "B", rollback+": B after the rollback undid its set_config")
		wall(t, as("A"), tx, "A", rollback+": A")
		require.NoError(t, tx.Rollback())
		coherent(t, h, rollback)
	}
}

// TestAttackSettingBehindComment: on a handle without the Guard, a
// statement that sets the session's setting itself, behind a comment or
// with its function's name spelled with a Unicode escape, must leave the
// connection not knowing what its session holds — the next statement
// with no tenant must see nothing.
func TestAttackSettingBehindComment(t *testing.T) { sessionMode(t, attackSettingBehindComment) }

func attackSettingBehindComment(t *testing.T) {
	h, _ := rlsHandle(t, 1)
	for _, s := range []string{
		"/* x */ SET app.tenant_id = 'A'",
		"-- x\nSET app.tenant_id = 'A'",
		`SELECT U&"set\005fconfig"('app.tenant_id', 'A', false)`,
		`UPDATE U&"pg\005fsettings" SET setting = 'A' WHERE name = 'app.tenant_id'`,
	} {
		wall(t, as(""), h, "", s+": before")
		_, err := h.ExecContext(context.Background(), s)
		require.NoError(t, err, s)
		coherent(t, h, s)
		wall(t, as(""), h, "", s+": after")
		wall(t, as("B"), h, "B", s+": then B")
	}
}

// TestAttackFirstStatementFailsToPrepare: the first statement of a
// transaction fails when the server parses it (an unknown column, before
// anything runs). The transaction must still be one: a later statement
// of it must not commit on its own — after a rollback, nothing it wrote
// remains.
func TestAttackFirstStatementFailsToPrepare(t *testing.T) {
	bothModes(t, attackFirstStatementFailsToPrepare)
}

func attackFirstStatementFailsToPrepare(t *testing.T) {
	h, _ := rlsHandle(t, 1)
	ctx := as("A")
	tx, err := h.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, "INSERT INTO att (tenant_id, id, nope) VALUES ('A', 100, 1)")
	require.Error(t, err)
	// PostgreSQL refuses every further statement of a failed transaction;
	// if this one runs, it must roll back with the transaction.
	_, _ = tx.ExecContext(ctx, "INSERT INTO att (tenant_id, id) VALUES ('A', 100)")
	require.NoError(t, tx.Rollback())
	var n int
	require.NoError(t, h.QueryRowContext(ctx, "SELECT count(*) FROM att WHERE id = 100").Scan(&n))
	require.Zero(t, n, "a statement of a rolled-back transaction committed")
	wall(t, ctx, h, "A", "after")
}

// TestAttackDuplicateSavepointName: PostgreSQL rolls back to (and
// releases) the most recent savepoint of a name; rolling back to the
// inner of two savepoints named alike must keep what was written between
// them.
func TestAttackDuplicateSavepointName(t *testing.T) { bothModes(t, attackDuplicateSavepointName) }

func attackDuplicateSavepointName(t *testing.T) {
	h, _ := rlsHandle(t, 1)
	ctx := as("A")
	tx, err := h.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer tx.Rollback()
	for _, s := range []string{
		"SAVEPOINT s",
		"INSERT INTO att (tenant_id, id) VALUES ('A', 100)",
		"SAVEPOINT s",
		"INSERT INTO att (tenant_id, id) VALUES ('A', 101)",
		"ROLLBACK TO SAVEPOINT s",
	} {
		_, err := tx.ExecContext(ctx, s)
		require.NoError(t, err, s)
	}
	require.NoError(t, tx.Commit())
	var ids []int
	rows, err := h.QueryContext(ctx, "SELECT id FROM att WHERE id >= 100 ORDER BY id")
	require.NoError(t, err)
	for rows.Next() {
		var id int
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []int{100}, ids, "the row written before the inner savepoint was lost")
}

// TestAttackSavepointSpellings: a savepoint of the application's own,
// taken and then rolled back to or released in any spelling PostgreSQL
// takes (lower case, without the word SAVEPOINT, quoted), works as on
// the server, and every statement after runs under its own tenant.
func TestAttackSavepointSpellings(t *testing.T) { bothModes(t, attackSavepointSpellings) }

func attackSavepointSpellings(t *testing.T) {
	h, _ := rlsHandle(t, 1)
	for _, sp := range [][3]string{
		{"SAVEPOINT s", "ROLLBACK TO s", "RELEASE s"},
		{"SAVEPOINT s", "rollback to savepoint s", "release savepoint s"},
		{"savepoint s", "ROLLBACK TO SAVEPOINT s", "RELEASE SAVEPOINT s"},
		{"SAVEPOINT s", `ROLLBACK TO SAVEPOINT "s"`, `RELEASE SAVEPOINT "s"`},
	} {
		ctx := as("A")
		tx, err := h.BeginTx(ctx, nil)
		require.NoError(t, err)
		defer tx.Rollback() // a failure leaves no transaction open
		_, err = tx.ExecContext(ctx, "INSERT INTO att (tenant_id, id) VALUES ('A', 100)")
		require.NoError(t, err, sp[0])
		_, err = tx.ExecContext(ctx, sp[0])
		require.NoError(t, err, sp[0])
		wall(t, as("B"), tx, "B", sp[0])
		_, err = tx.ExecContext(ctx, "INSERT INTO att (tenant_id, id) VALUES ('A', 101)")
		require.NoError(t, err, sp[0])
		_, err = tx.ExecContext(ctx, sp[1])
		require.NoError(t, err, sp[1])
		wall(t, as("B"), tx, "B", sp[1])
		_, err = tx.ExecContext(ctx, sp[2])
		require.NoError(t, err, sp[2])
		require.NoError(t, tx.Commit(), sp[2])
		var ids []int
		rows, err := h.QueryContext(ctx, "SELECT id FROM att WHERE id >= 100 ORDER BY id")
		require.NoError(t, err)
		for rows.Next() {
			var id int
			require.NoError(t, rows.Scan(&id))
			ids = append(ids, id)
		}
		require.NoError(t, rows.Err())
		require.Equal(t, []int{100}, ids, sp[1])
		_, err = h.ExecContext(ctx, "DELETE FROM att WHERE id >= 100")
		require.NoError(t, err)
	}
}

// TestAttackSavepointFirstStatementFailsToPrepare: a nested RunInTx whose
// first statement fails when the server parses it is rolled back to its
// savepoint, and the outer transaction goes on and commits, as on
// PostgreSQL without the deferral of SAVEPOINT.
func TestAttackSavepointFirstStatementFailsToPrepare(t *testing.T) {
	bothModes(t, attackSavepointFirstStatementFailsToPrepare)
}

func attackSavepointFirstStatementFailsToPrepare(t *testing.T) {
	h, _ := rlsHandle(t, 1)
	bdb := bun.NewDB(h, pgdialect.New())
	ctx := as("A")
	err := bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		wall(t, ctx, tx, "A", "outer")
		for range 2 { // the same statement again: still not parsed
			err := tx.RunInTx(ctx, nil, func(ctx context.Context, sp bun.Tx) error {
				_, err := sp.ExecContext(ctx, "INSERT INTO att (tenant_id, id, nope) VALUES ('A', 100, 1)")
				return err
			})
			require.Error(t, err)
			wall(t, ctx, tx, "A", "outer after the failed savepoint")
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO att (tenant_id, id) VALUES ('A', 100)")
		return err
	})
	require.NoError(t, err, "the savepoint's rollback recovers the transaction")
	var n int
	require.NoError(t, h.QueryRowContext(ctx, "SELECT count(*) FROM att WHERE id = 100").Scan(&n))
	require.Equal(t, 1, n)
}

// TestAttackFirstStatementNeverSent: the first statement of a transaction
// begun through the driver's connection (sql.Conn.Raw) meets a context
// that has ended, so nothing leaves the client; the transaction's next
// statement must still run inside it, and roll back with it.
func TestAttackFirstStatementNeverSent(t *testing.T) { bothModes(t, attackFirstStatementNeverSent) }

func attackFirstStatementNeverSent(t *testing.T) {
	h, _ := rlsHandle(t, 1)
	ctx := as("A")
	conn, err := h.Conn(context.Background())
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.Raw(func(dc any) error {
		tx, err := dc.(driver.ConnBeginTx).BeginTx(ctx, driver.TxOptions{})
		require.NoError(t, err)
		ended, cancel := context.WithCancel(ctx)
		cancel()
		ex := dc.(driver.ExecerContext)
		_, err = ex.ExecContext(ended, "INSERT INTO att (tenant_id, id) VALUES ('A', 100)", nil)
		require.Error(t, err)
		_, err = ex.ExecContext(ctx, "INSERT INTO att (tenant_id, id) VALUES ('A', 101)", nil)
		require.NoError(t, err)
		return tx.Rollback()
	}))
	var n int
	require.NoError(t, conn.QueryRowContext(ctx, "SELECT count(*) FROM att WHERE id >= 100").Scan(&n))
	require.Zero(t, n, "a statement of a rolled-back transaction committed")
}

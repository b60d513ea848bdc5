package sqldb_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// TestAttackSavepointFirstStatementFailsToPrepare: a nested RunInTx whose
// first statement fails when the server parses it is rolled back to its
// savepoint, and the outer transaction goes on and commits, as on
// PostgreSQL without the deferral of SAVEPOINT.
func TestAttackSavepointFirstStatementFailsToPrepare(t *testing.T) {
	if !havePostgres(t) {
		return
	}
	h, _ := rlsHandle(t, 1)
	bdb := bun.NewDB(h, pgdialect.New())
	ctx := as("A")
	err := bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		wall(t, ctx, tx, "A", "outer")
		err := tx.RunInTx(ctx, nil, func(ctx context.Context, sp bun.Tx) error {
			_, err := sp.ExecContext(ctx, "INSERT INTO att (tenant_id, id, nope) VALUES ('A', 100, 1)")
			return err
		})
		require.Error(t, err)
		_, err = tx.ExecContext(ctx, "INSERT INTO att (tenant_id, id) VALUES ('A', 100)")
		return err
	})
	require.NoError(t, err, "the savepoint's rollback recovers the transaction")
	var n int
	require.NoError(t, h.QueryRowContext(ctx, "SELECT count(*) FROM att WHERE id = 100").Scan(&n))
	require.Equal(t, 1, n)
}

package tenancy_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestNestedRunInTxFoldsRoundTrips: on PostgreSQL, a tenant scope nested in
// another's transaction sends its savepoint and its setting with its first
// statement, and the outer tenant's setting returns with the next
// statement outside it: the nesting costs no round trip of its own. Each
// part sees its own tenant's rows.
func TestNestedRunInTxFoldsRoundTrips(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(a), db, &widget{ID: tenancy.NewID(), Name: "a", Size: 1}))
		require.NoError(t, insert(as(b), db, &widget{ID: tenancy.NewID(), Name: "b", Size: 2}))
		require.NoError(t, insert(as(b), db, &widget{ID: tenancy.NewID(), Name: "b2", Size: 3}))
		count := func(ctx context.Context, tx bun.Tx) int {
			n, err := tx.NewSelect().Model((*widget)(nil)).Apply(tenancy.Scope(ctx)).Count(ctx)
			require.NoError(t, err)
			return int(n)
		}
		run := func() {
			err := tenancy.RunInTx(as(a), db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
				require.Equal(t, 1, count(ctx, tx))
				require.NoError(t, tenancy.RunInTx(as(b), tx, nil, func(ctx context.Context, tx bun.Tx) error {
					require.Equal(t, 2, count(ctx, tx))
					return nil
				}))
				require.Equal(t, 1, count(ctx, tx), "A's rows again after B's scope")
				return nil
			})
			require.NoError(t, err)
		}
		run() // a warm connection, its statements prepared
		before, _ := sqldb.RoundTrips(db.DB.DB)
		run()
		after, _ := sqldb.RoundTrips(db.DB.DB)
		if sqldb.Folds(db.DB.DB) {
			// BEGIN+setting+count, SAVEPOINT+setting+count,
			// RELEASE+setting+count, COMMIT.
			require.EqualValues(t, 4, after-before, "round trips")
		}
	})
}

// TestNestedRunInTxFailedStatement: a nested scope whose statement fails
// on the server rolls back to its savepoint (sent with that statement);
// the outer transaction goes on under its own tenant and commits its rows,
// none of the nested scope's.
func TestNestedRunInTxFailedStatement(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		dup := tenancy.NewID()
		require.NoError(t, insert(as(b), db, &widget{ID: dup, Name: "b", Size: 1}))
		err := tenancy.RunInTx(as(a), db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewInsert().Model(&widget{ID: tenancy.NewID(), Name: "a1"}).Exec(ctx)
			require.NoError(t, err)
			nested := tenancy.RunInTx(as(b), tx, nil, func(ctx context.Context, tx bun.Tx) error {
				if _, err := tx.NewInsert().Model(&widget{ID: tenancy.NewID(), Name: "b-lost"}).Exec(ctx); err != nil {
					return err
				}
				_, err := tx.NewInsert().Model(&widget{ID: dup, Name: "dup"}).Exec(ctx) // primary key taken
				return err
			})
			require.Error(t, nested)
			_, err = tx.NewInsert().Model(&widget{ID: tenancy.NewID(), Name: "a2"}).Exec(ctx)
			require.NoError(t, err, "A writes on after the failed scope")
			n, err := tx.NewSelect().Model((*widget)(nil)).Apply(tenancy.Scope(ctx)).Count(ctx)
			require.NoError(t, err)
			require.EqualValues(t, 2, n)
			return nil
		})
		require.NoError(t, err)
		var names []string
		require.NoError(t, tenancy.RunInTx(as(b), db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewSelect().Model((*widget)(nil)).Column("name").Scan(ctx, &names)
		}))
		require.Equal(t, []string{"b"}, names, "the failed scope left nothing")
	})
}

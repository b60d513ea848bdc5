package tenancy_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestAttackSavepointRollbackUnderGuard: through the Guard and
// tenancy.RunInTx only, with the one connection of the pool — a savepoint
// of the application's own taken in tenant A's transaction, a nested
// RunInTx of tenant B that reads B's rows, then, inside it, a ROLLBACK TO
// that savepoint written in any form the Guard lets through (behind a
// comment, after a form feed, without the word SAVEPOINT): the rollback
// undoes B's setting, and B's next read must still see B's rows only —
// never A's.
func TestAttackSavepointRollbackUnderGuard(t *testing.T) {
	if !hasPostgres() {
		t.Log("not run: " + dbtest.EnvPostgres + " is not set (SQLite has no row-level security)")
		return
	}
	db := dbtest.Postgres(t, setup)
	db.SetMaxOpenConns(1)
	a, b := tenancy.NewID(), tenancy.NewID()
	for _, tid := range []string{a, a, b} {
		require.NoError(t, insert(as(tid), db, &widget{ID: tenancy.NewID(), Name: "w"}))
	}
	read := func(ctx context.Context, q bun.IDB, tid string, msg string) {
		t.Helper()
		var ws []widget
		require.NoError(t, q.NewSelect().Model(&ws).Scan(ctx), msg)
		want := map[string]int{a: 2, b: 1}[tid]
		require.Len(t, ws, want, msg)
		for _, w := range ws {
			require.Equal(t, tid, w.TenantID, "%s: a row of another tenant", msg)
		}
	}
	for _, rollback := range []string{
		"/* undo */ ROLLBACK TO SAVEPOINT mine",
		"-- undo\nROLLBACK TO SAVEPOINT mine",
		"\fROLLBACK TO SAVEPOINT mine",
		"ROLLBACK TO mine",
	} {
		err := tenancy.RunInTx(as(a), db, nil, func(ctx context.Context, tx bun.Tx) error {
			read(ctx, tx, a, rollback+": A")
			if _, err := tx.ExecContext(ctx, "/* mine */ SAVEPOINT mine"); err != nil {
				return err
			}
			return tenancy.RunInTx(as(b), tx, nil, func(ctx context.Context, sp bun.Tx) error {
				read(ctx, sp, b, rollback+": B")
				if _, err := sp.ExecContext(ctx, rollback); err != nil {
					return err
				}
				var v string
				if err := sp.NewRaw("SELECT coalesce(current_setting('app.tenant_id', true), '')").Scan(ctx, &v); err != nil {
					return err
				}
				require.Equal(t, b, v, "%s: B's statement after the rollback runs under another tenant's setting", rollback)
				read(ctx, sp, b, rollback+": B after the rollback")
				return nil
			})
		})
		if err != nil {
			t.Logf("%q: %v", rollback, err) // the savepoint bun took was rolled back too
		}
		for _, tid := range []string{b, a} {
			require.NoError(t, tenancy.RunScoped(as(tid), db, func(ctx context.Context, q bun.IDB) error {
				read(ctx, q, tid, rollback+": after the transaction")
				return nil
			}))
		}
	}
}

package tenancy_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// tamper runs fn in one transaction for ctx's tenant with the audit log's
// append-only triggers switched off: what someone with the SQLite file, or
// with PostgreSQL's owner role, can do — and what Verify must still find.
// The application's own handle can do none of it.
func tamper(t *testing.T, db *dbtest.DB, ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) {
	t.Helper()
	if db.Name == "postgres" {
		owner := db.ReopenOwner(t)
		require.NoError(t, tenancy.RunInTx(ctx, owner, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.ExecContext(ctx, "ALTER TABLE socialcrm_audit_log DISABLE TRIGGER USER"); err != nil {
				return err
			}
			if err := fn(ctx, tx); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, "ALTER TABLE socialcrm_audit_log ENABLE TRIGGER USER")
			return err
		}))
		return
	}
	raw := db.Reopen(t)
	require.NoError(t, tenancy.RunInTx(ctx, raw, nil, func(ctx context.Context, tx bun.Tx) error {
		var triggers []string
		if err := tx.NewRaw("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'socialcrm_audit_log'").Scan(ctx, &triggers); err != nil {
			return err
		}
		for _, name := range []string{"socialcrm_audit_log_no_update", "socialcrm_audit_log_no_delete"} {
			if _, err := tx.ExecContext(ctx, "DROP TRIGGER "+name); err != nil {
				return err
			}
		}
		if err := fn(ctx, tx); err != nil {
			return err
		}
		for _, sql := range triggers {
			if _, err := tx.ExecContext(ctx, sql); err != nil {
				return err
			}
		}
		return nil
	}))
}

// execSQL returns a tamper body running query.
func execSQL(query string, args ...any) func(ctx context.Context, tx bun.Tx) error {
	return func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	}
}

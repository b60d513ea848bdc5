package socialcrm_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestMigrate checks that one call migrates every package, that a second
// call is a no-op, and that two processes migrating at once both succeed.
func TestMigrate(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		other := db.ReopenOwner(t)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, h := range []*bun.DB{db.Owner, other} {
			wg.Go(func() { errs[i] = socialcrm.Migrate(ctx, h) })
		}
		wg.Wait()
		require.NoError(t, errs[0])
		require.NoError(t, errs[1])
		require.NoError(t, socialcrm.Grant(ctx, db.Owner, dbtest.AppRole))

		var applied int
		require.NoError(t, db.NewRaw("SELECT count(*) FROM socialcrm_migrations").Scan(ctx, &applied))
		require.Positive(t, applied)
		require.NoError(t, socialcrm.Migrate(ctx, db.Owner))
		require.NoError(t, socialcrm.Migrate(ctx, db.DB), "the application role finds nothing to do")
		var again int
		require.NoError(t, db.NewRaw("SELECT count(*) FROM socialcrm_migrations").Scan(ctx, &again))
		require.Equal(t, applied, again, "a second Migrate applies nothing")

		for _, table := range []string{"socialcrm_tenants", "socialcrm_members", "socialcrm_api_keys", "socialcrm_audit_log", "socialcrm_vault_keys"} {
			var n int
			require.NoError(t, db.NewRaw("SELECT count(*) FROM ?", socialcrmIdent(table)).Scan(ctx, &n), table)
		}

		// Every SDK model is safe to guard: no relation crosses tenants.
		g, err := socialcrm.Guard(db.DB)
		require.NoError(t, err)
		require.Contains(t, g.Tables(), "socialcrm_members")
	})
}

func socialcrmIdent(s string) bun.Ident { return bun.Ident(s) }

// TestEveryTableHasACategory: nothing personal can be stored that the
// retention engine does not know about.
func TestEveryTableHasACategory(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		require.NoError(t, socialcrm.Migrate(ctx, db.Owner))
		require.NoError(t, socialcrm.Grant(ctx, db.Owner, dbtest.AppRole))
		audit, err := tenancy.NewAuditLog(db)
		require.NoError(t, err)
		engine, err := retention.New(db)
		require.NoError(t, err)
		require.NoError(t, engine.Register(socialcrm.Categories(audit)...))
		uncovered, err := engine.Uncovered(ctx)
		require.NoError(t, err)
		require.Empty(t, uncovered, "tenant-owned tables without a retention category")
		require.NoError(t, engine.Check(ctx), "every declared column exists")
	}, migrated)
}

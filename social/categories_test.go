package social_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// TestCategoriesCoverEveryTable: the package's categories name tables and
// columns that exist, leave none of its tenant-owned tables uncovered, and
// export sealed columns only when bound to a Store that can open them.
func TestCategoriesCoverEveryTable(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		v, err := vault.New(db.DB, testkit.NewKEK(t), vault.WithClock(fakeclock.New().Now))
		require.NoError(t, err)
		store, err := social.New(db.DB, v)
		require.NoError(t, err)
		for name, cats := range map[string][]retention.Category{"package": social.Categories(), "store": store.Categories()} {
			e, err := retention.New(db.DB)
			require.NoError(t, err)
			require.NoError(t, e.Register(cats...), name)
			require.NoError(t, e.Check(ctx), "%s: every declared table and column exists", name)
			left, err := e.Uncovered(ctx)
			require.NoError(t, err)
			for _, table := range left {
				require.False(t, strings.HasPrefix(table, "socialcrm_social_"), "%s: %s has no category", name, table)
			}
		}
		for i, c := range store.Categories() {
			pkg := social.Categories()[i]
			require.Equal(t, pkg.Name, c.Name)
			for _, col := range c.Sealed {
				require.Contains(t, pkg.Omit, col.Column, "the package's %s leaves out what it cannot open", c.Name)
				require.NotContains(t, c.Omit, col.Column)
			}
		}
	}, func(ctx context.Context, db *bun.DB) error {
		return migrations.Run(ctx, db, tenancy.Migrations(), vault.Migrations(), social.Migrations(), retention.Migrations())
	})
}

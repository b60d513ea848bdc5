package socialcrm_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/leakscan"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS15TenantPurgeLeavesNoName: a sole trader's workspace carries her
// name. Once the tenant is purged no table holds the name in clear, on
// SQLite not its file or WAL either, while another tenant's name stays.
func TestS15TenantPurgeLeavesNoName(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx, clk := context.Background(), fakeclock.New()
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t), Now: clk.Now})
		require.NoError(t, err)
		const name, kept = "CanaryAdaLovelacePhotography", "CanaryKeptWorkshop"
		_, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: name,
			Owner: tenancy.NewMember{Email: "ada@ada.example", Name: "Ada"}})
		require.NoError(t, err)
		_, _, err = sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: kept,
			Owner: tenancy.NewMember{Email: "bo@kept.example", Name: "Bo"}})
		require.NoError(t, err)
		ada := tenancy.WithPrincipal(ctx, owner.Principal())
		hits, err := leakscan.Tables(ctx, db.Admin(t), []string{name})
		require.NoError(t, err)
		require.NotEmpty(t, hits, "the scan sees the name before the purge")

		_, err = sdk.Tenants.CloseTenant(ada, time.Hour)
		require.NoError(t, err)
		clk.Advance(2 * time.Hour)
		res, err := sdk.Retention.PurgeTenants(tenancy.System(ctx, "test"), clk.Now())
		require.NoError(t, err)
		require.Len(t, res, 1)

		hits, err = leakscan.Tables(ctx, db.Admin(t), []string{name, kept})
		require.NoError(t, err)
		require.Equal(t, []leakscan.Hit{{Canary: kept, Where: tenancy.TableTenants + ".name"}}, hits,
			"the purged tenant's name is gone, the other tenant's stays")
		if db.Name == "sqlite" {
			_, err = db.DB.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
			require.NoError(t, err)
			hits, err = leakscan.Files([]string{name}, db.Path, db.Path+"-wal")
			require.NoError(t, err)
			require.Empty(t, hits, "nor in the SQLite file or its WAL")
		}
	}, migrated)
}

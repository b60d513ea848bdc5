package socialcrm_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestTenantCannotClaimAnAccount: a tenant's statements may write its own
// rows of the account index, and the index still matched rows that name
// an account's id in clear (as older versions wrote them). A Page's id is
// public, so tenant B inserted a row naming tenant A's Page for itself,
// and the Page's webhooks — A's customers' messages — were routed to B as
// well. Only rows under the account's blind index, which no tenant can
// compute, route now.
func TestTenantCannotClaimAnAccount(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		sdk := dsarSDK(t, db)
		a, b := dsarTenant(t, sdk, "claim-a"), dsarTenant(t, sdk, "claim-b")
		aID, err := tenancy.TenantID(a)
		require.NoError(t, err)
		bID, err := tenancy.TenantID(b)
		require.NoError(t, err)
		sys := tenancy.System(context.Background(), "webhook")
		// A's Page, indexed as the SDK does (sealed).
		require.NoError(t, tenancy.RunInTx(a, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewRaw("INSERT INTO "+social.TableAccounts+" (platform, account_id, tenant_id, connection_id, live) VALUES ('meta', '100200300', ?, 'conn-a', TRUE)", aID).Exec(ctx)
			return err
		}))
		_, err = sdk.Social.SealAccountIndex(sys)
		require.NoError(t, err)
		// B claims it by its public id.
		require.NoError(t, tenancy.RunInTx(b, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewRaw("INSERT INTO "+social.TableAccounts+" (platform, account_id, tenant_id, connection_id, live) VALUES ('meta', '100200300', ?, 'conn-b', TRUE)", bID).Exec(ctx)
			return err
		}))
		routes, err := sdk.Social.AccountTenants(sys, "meta", "100200300")
		require.NoError(t, err)
		require.Len(t, routes, 1, "B's row routes A's Page to B: %+v", routes)
		require.Equal(t, aID, routes[0].TenantID)
	}, migrated)
}

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

// TestTenantCannotReadTheAccountIndex: the account index (which tenants
// connected which platform account) was readable by every tenant, so that
// a webhook's write could count an account's tenants (social.Store.Routed).
// Tenant B's ordinary statements listed every tenant's connections,
// counted tenant A's, and — through Routed's condition, with A's id —
// asked whether A had connected a given Page. Under a tenant's principal
// the index is now confined to the tenant's own rows like any registry;
// the count a webhook's write needs comes from the account routes view,
// confined alike, which answers for the accounts the tenant connected
// itself. Routing without a principal (webhooks) and Routed's condition
// for the tenant's own route still work.
func TestTenantCannotReadTheAccountIndex(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		sdk := dsarSDK(t, db)
		a, b := dsarTenant(t, sdk, "index-a"), dsarTenant(t, sdk, "index-b")
		aID, err := tenancy.TenantID(a)
		require.NoError(t, err)
		bID, err := tenancy.TenantID(b)
		require.NoError(t, err)
		// A connected Page X, B Page Y (index rows written as older
		// versions did, then sealed as Open does).
		insert := func(ctx context.Context, tid, page, conn string) {
			t.Helper()
			require.NoError(t, tenancy.RunInTx(ctx, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.NewRaw("INSERT INTO "+social.TableAccounts+" (platform, account_id, tenant_id, connection_id, live) VALUES (?, ?, ?, ?, TRUE)",
					"meta", page, tid, conn).Exec(ctx)
				return err
			}))
		}
		insert(a, aID, "page-x", "conn-a")
		insert(b, bID, "page-y", "conn-b")
		sys := tenancy.System(context.Background(), "webhook")
		seal := func() {
			t.Helper()
			_, err := sdk.Social.SealAccountIndex(sys)
			require.NoError(t, err)
		}
		seal()

		routesX, err := sdk.Social.AccountTenants(sys, "meta", "page-x")
		require.NoError(t, err)
		require.Len(t, routesX, 1)
		routesY, err := sdk.Social.AccountTenants(sys, "meta", "page-y")
		require.NoError(t, err)
		require.Len(t, routesY, 1)

		asA, err := sdk.Social.Routed(b, "meta", "page-x", routesX, aID)
		require.NoError(t, err)
		attacks := map[string]func(ctx context.Context, tx bun.Tx) error{
			"list every tenant's connections": func(ctx context.Context, tx bun.Tx) error {
				var rows []struct{ TenantID, ConnectionID string }
				return tx.NewRaw("SELECT tenant_id, connection_id FROM "+social.TableAccounts).Scan(ctx, &rows)
			},
			"count A's connections": func(ctx context.Context, tx bun.Tx) error {
				var n int
				return tx.NewRaw("SELECT count(*) FROM "+social.TableAccounts+" WHERE tenant_id = ?", aID).Scan(ctx, &n)
			},
			"count the app's connections": func(ctx context.Context, tx bun.Tx) error {
				var n int
				return tx.NewRaw("SELECT count(*) FROM "+social.TableAccounts).Scan(ctx, &n)
			},
			"ask Routed whether A connected Page X": func(ctx context.Context, tx bun.Tx) error {
				var ok bool
				return tx.NewRaw("SELECT ?", asA).Scan(ctx, &ok)
			},
			"read the routes of every tenant": func(ctx context.Context, tx bun.Tx) error {
				var n int
				return tx.NewRaw("SELECT count(*) FROM socialcrm_social_account_routes").Scan(ctx, &n)
			},
			"read A's routes": func(ctx context.Context, tx bun.Tx) error {
				var n int
				return tx.NewRaw("SELECT count(*) FROM socialcrm_social_account_routes WHERE tenant_id = ?", aID).Scan(ctx, &n)
			},
		}
		for name, attack := range attacks {
			err := tenancy.RunInTx(b, sdk.DB, nil, attack)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, name)
		}

		// B's own route still checks in B's statement: it holds, and stops
		// holding once another tenant (A) connects the same account.
		routed := func() bool {
			t.Helper()
			cond, err := sdk.Social.Routed(b, "meta", "page-y", routesY, bID)
			require.NoError(t, err)
			var ok bool
			require.NoError(t, tenancy.RunInTx(b, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
				return tx.NewRaw("SELECT ?", cond).Scan(ctx, &ok)
			}))
			return ok
		}
		require.True(t, routed())
		insert(a, aID, "page-y", "conn-a2")
		seal()
		require.False(t, routed(), "A connected Page Y since the routes were looked up")
		routesY, err = sdk.Social.AccountTenants(sys, "meta", "page-y")
		require.NoError(t, err)
		require.Len(t, routesY, 2)
		require.True(t, routed())
	}, migrated)
}

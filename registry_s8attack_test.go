package socialcrm_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// TestTenantCannotReachOtherTenantsInTheRegistries: the list of tenants
// (tenancy.TableTenants) and the list of tenants with data keys
// (vault.TableKeyTenants) belong to no tenant, so neither the hooks nor
// row-level security confined them, and the Guard let tenant B's ordinary
// bun code through: B read every tenant's name and status, closed tenant
// A with a purge date in the past — the next scheduled PurgeTenants
// erased all of A's data and destroyed A's key — and deleted A from the
// key list, so that a KEK rotation skipped A and retiring the old version
// would have left A's data unreadable for good; B could also delete the
// vault's audit key (vault.TableAuditKey), every tenant's. Under a tenant's
// principal a statement on either table must now be confined to that
// tenant's own row, as on a tenant-owned table; the system principal (and
// sign-up, before there is a tenant) still reaches every row.
func TestTenantCannotReachOtherTenantsInTheRegistries(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		sdk := dsarSDK(t, db)
		a, b := dsarTenant(t, sdk, "registry-a"), dsarTenant(t, sdk, "registry-b")
		aID, err := tenancy.TenantID(a)
		require.NoError(t, err)
		bID, err := tenancy.TenantID(b)
		require.NoError(t, err)
		ann, err := sdk.CRM.Contacts().Create(a, crm.ContactInput{FirstName: "Ann", Email: "ann@example.com"})
		require.NoError(t, err)

		past := fakeclock.Start.Add(-48 * time.Hour)
		attacks := map[string]func(ctx context.Context, tx bun.Tx) error{
			"close A": func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.NewUpdate().Model((*tenancy.Tenant)(nil)).Set("status = ?", tenancy.StatusClosed).
					Set("closed_at = ?", past).Set("purge_after = ?", past).Where("id = ?", aID).Exec(ctx)
				return err
			},
			"close every tenant but B": func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.NewUpdate().Model((*tenancy.Tenant)(nil)).Set("status = ?", tenancy.StatusClosed).
					Set("closed_at = ?", past).Set("purge_after = ?", past).Where("id <> ?", bID).Exec(ctx)
				return err
			},
			"rename A through B's row": func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.NewUpdate().Model((*tenancy.Tenant)(nil)).Set("id = ?", aID).Where("id = ?", bID).Exec(ctx)
				return err
			},
			"list tenants": func(ctx context.Context, tx bun.Tx) error {
				var ts []tenancy.Tenant
				return tx.NewSelect().Model(&ts).Scan(ctx)
			},
			"count tenants": func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.NewSelect().Model((*tenancy.Tenant)(nil)).Count(ctx)
				return err
			},
			"A's name in a subquery": func(ctx context.Context, tx bun.Tx) error {
				var names []string
				return tx.NewRaw("SELECT name FROM "+tenancy.TableTenants+" WHERE id = ? UNION SELECT name FROM "+tenancy.TableTenants+" WHERE id IN (SELECT tenant_id FROM "+vault.TableKeyTenants+")", bID).Scan(ctx, &names)
			},
			"drop A from the key list": func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.ExecContext(ctx, "DELETE FROM "+vault.TableKeyTenants+" WHERE tenant_id = ?", aID)
				return err
			},
			"replace the audit key": func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.ExecContext(ctx, "DELETE FROM "+vault.TableAuditKey)
				return err
			},
			"read the key list": func(ctx context.Context, tx bun.Tx) error {
				var ids []string
				return tx.NewRaw("SELECT tenant_id FROM "+vault.TableKeyTenants).Scan(ctx, &ids)
			},
		}
		for name, attack := range attacks {
			err := tenancy.RunInTx(b, sdk.DB, nil, attack)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, name)
		}

		// A is whole: not closed, not purged, still in the key list.
		sys := tenancy.System(context.Background(), "test")
		_, err = sdk.Retention.PurgeTenants(sys, fakeclock.Start.Add(time.Hour))
		require.NoError(t, err)
		ta, err := sdk.Tenants.Tenant(a)
		require.NoError(t, err)
		require.Equal(t, tenancy.StatusActive, ta.Status)
		got, err := sdk.CRM.Contacts().Get(a, ann.ID)
		require.NoError(t, err)
		require.Equal(t, "Ann", got.FirstName)
		all, err := sdk.Tenants.Tenants(sys, tenancy.TenantFilter{})
		require.NoError(t, err)
		require.Len(t, all, 2)
		var keyed, auditKeys int
		require.NoError(t, db.Admin(t).NewRaw("SELECT count(*) FROM "+vault.TableKeyTenants+" WHERE tenant_id = ?", aID).Scan(context.Background(), &keyed))
		require.Equal(t, 1, keyed, "A stays in the key list")
		require.NoError(t, db.Admin(t).NewRaw("SELECT count(*) FROM "+vault.TableAuditKey).Scan(context.Background(), &auditKeys))
		require.Equal(t, 1, auditKeys, "the audit key stays")

		// B's own row stays B's to read and close.
		var name string
		require.NoError(t, tenancy.RunInTx(b, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewSelect().Model((*tenancy.Tenant)(nil)).Column("name").Where("id = ?", bID).Scan(ctx, &name)
		}))
		require.Equal(t, "registry-b", name)
		tb, err := sdk.Tenants.CloseTenant(b, time.Hour)
		require.NoError(t, err)
		require.Equal(t, tenancy.StatusClosed, tb.Status)
	}, migrated)
}

// TestTenantCannotRepointAnotherTenantsAccount: the account index
// (social.TableAccounts) routes a platform's webhooks, which name only
// the account, to the tenants that connected it. It belongs to no tenant
// and had no row-level security, so tenant B's ordinary bun code
// re-pointed tenant A's Page to B: AccountTenants then answered B for A's
// Page, and the Page's next Messenger messages — A's customers' — would
// have been stored in B's inbox. Under a tenant's principal a write of
// the index must be confined to that tenant's rows (and so must a read:
// TestTenantCannotReadTheAccountIndex).
func TestTenantCannotRepointAnotherTenantsAccount(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		sdk := dsarSDK(t, db)
		a, b := dsarTenant(t, sdk, "route-a"), dsarTenant(t, sdk, "route-b")
		aID, err := tenancy.TenantID(a)
		require.NoError(t, err)
		bID, err := tenancy.TenantID(b)
		require.NoError(t, err)
		// A's Page, as an index row written before SealAccountIndex.
		require.NoError(t, tenancy.RunInTx(a, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewRaw("INSERT INTO "+social.TableAccounts+" (platform, account_id, tenant_id, connection_id) VALUES (?, ?, ?, ?)",
				"meta", "page-of-a", aID, "conn-a").Exec(ctx)
			return err
		}))
		attacks := map[string]string{
			"re-point A's rows":  "UPDATE " + social.TableAccounts + " SET tenant_id = '" + bID + "' WHERE tenant_id = '" + aID + "'",
			"copy A's rows to B": "INSERT INTO " + social.TableAccounts + " (platform, account_id, tenant_id, connection_id) SELECT platform, account_id, '" + bID + "', 'conn-b' FROM " + social.TableAccounts + " WHERE tenant_id = '" + aID + "'",
			"delete A's rows":    "DELETE FROM " + social.TableAccounts + " WHERE platform = 'meta'",
			"take A's Page":      "INSERT INTO " + social.TableAccounts + " (platform, account_id, tenant_id, connection_id) VALUES ('meta', 'page-of-a', '" + aID + "', 'conn-b') ON CONFLICT (platform, account_id, tenant_id) DO UPDATE SET connection_id = EXCLUDED.connection_id",
		}
		for name, q := range attacks {
			err := tenancy.RunInTx(b, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
				rows, err := tx.QueryContext(ctx, q)
				if err != nil {
					return err
				}
				return rows.Close()
			})
			require.ErrorIs(t, err, tenancy.ErrUnscoped, name)
		}
		_, err = sdk.Social.SealAccountIndex(tenancy.System(context.Background(), "seal"))
		require.NoError(t, err)
		routed, err := sdk.Social.AccountTenants(tenancy.System(context.Background(), "webhook"), "meta", "page-of-a")
		require.NoError(t, err)
		require.Len(t, routed, 1)
		require.Equal(t, aID, routed[0].TenantID)
		require.Equal(t, "conn-a", routed[0].ConnectionID)

		var seen []string
		require.ErrorIs(t, tenancy.RunInTx(b, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewRaw("SELECT account_id FROM "+social.TableAccounts).Scan(ctx, &seen)
		}), tenancy.ErrUnscoped, "the index is confined for reads too (TestTenantCannotReadTheAccountIndex)")

		// B's own rows stay B's to write, as a connection does.
		require.NoError(t, tenancy.RunInTx(b, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO "+social.TableAccounts+" (platform, account_id, tenant_id, connection_id) VALUES ('meta', 'page-of-b', '"+bID+"', 'conn-b') ON CONFLICT (platform, account_id, tenant_id) DO UPDATE SET connection_id = EXCLUDED.connection_id")
			return err
		}))
	}, migrated)
}

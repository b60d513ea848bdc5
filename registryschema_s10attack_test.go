package socialcrm_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestTenantCannotChangeTheRegistriesSchema: the Guard kept tenants from
// changing the schema of tenant-owned tables, but not of the tables that
// belong to no tenant. On SQLite, where the application's handle owns
// every table, tenant B's statements dropped the list of tenants (no
// tenant could sign in, none was ever purged), the vault's key list and
// the webhook deliveries, renamed the account index and dropped the
// account routes view (every Messenger delivery failed), and added a
// unique index to the tenants that made every later sign-up fail. Under a
// tenant's principal each is now refused, on PostgreSQL too (where the
// application role owns none of them anyway).
func TestTenantCannotChangeTheRegistriesSchema(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		sdk := dsarSDK(t, db)
		a, b := dsarTenant(t, sdk, "schema-a"), dsarTenant(t, sdk, "schema-b")
		for _, q := range []string{
			"DROP TABLE socialcrm_tenants",
			"DROP TABLE IF EXISTS socialcrm_vault_tenants",
			"DROP TABLE socialcrm_social_webhook_deliveries",
			"DROP VIEW socialcrm_social_account_routes",
			"DROP TABLE socialcrm_migrations",
			"ALTER TABLE socialcrm_social_accounts RENAME TO gone",
			"ALTER TABLE socialcrm_tenants ADD COLUMN x INTEGER",
			"CREATE UNIQUE INDEX one_status ON socialcrm_tenants (status)",
			"CREATE INDEX x ON socialcrm_social_webhook_deliveries (key)",
		} {
			err := tenancy.RunInTx(b, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.ExecContext(ctx, q)
				return err
			})
			require.ErrorIs(t, err, tenancy.ErrUnscoped, q)
		}
		// Everything is where it was: A works, and a new tenant signs up.
		_, err := sdk.CRM.Contacts().Create(a, crm.ContactInput{FirstName: "Ann"})
		require.NoError(t, err)
		_, err = sdk.Tenants.Tenant(a)
		require.NoError(t, err)
		_ = dsarTenant(t, sdk, "schema-c")
	}, migrated)
}

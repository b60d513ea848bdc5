package crm_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestCommerceRowLevelSecurity: on PostgreSQL every commerce table has a
// forced row-level-security policy, so raw SQL on a handle without the
// Guard or hooks sees only the transaction's tenant's rows.
func TestCommerceRowLevelSecurity(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		if db.Name != "postgres" {
			return // SQLite has no row-level security; the hooks and the Guard are its wall.
		}
		e := newEnv(t, db)
		newShop(t, e, e.A, "acme", "INV-1")
		newShop(t, e, e.B, "globex", "INV-1")
		raw := db.Reopen(t)
		for _, table := range commerceTables {
			var protected bool
			require.NoError(t, raw.NewRaw(`SELECT c.relrowsecurity AND c.relforcerowsecurity AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)
				FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace AND ns.nspname = current_schema() WHERE c.relname = ?`, table).
				Scan(context.Background(), &protected), table)
			require.True(t, protected, "%s has forced row-level security", table)
		}
		for _, table := range []string{"socialcrm_crm_clients", "socialcrm_crm_campaigns", "socialcrm_crm_proposals", "socialcrm_crm_invoices"} {
			var tenants []string
			require.NoError(t, tenancy.RunInTx(e.A, raw, nil, func(ctx context.Context, tx bun.Tx) error {
				return tx.NewRaw("SELECT DISTINCT tenant_id FROM "+table).Scan(ctx, &tenants)
			}))
			require.Equal(t, []string{principal(e.A).TenantID}, tenants, "a raw SELECT on %s sees only A's rows", table)
		}
	}, setup)
}

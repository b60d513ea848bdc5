package socialcrm_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/testkit"
)

func s15Tables(t *testing.T, ctx context.Context, db bun.IDB) []string {
	t.Helper()
	var tables []string
	var err error
	if db.Dialect().Name() == dialect.PG {
		err = db.NewRaw("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1").Scan(ctx, &tables)
	} else {
		err = db.NewRaw("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1").Scan(ctx, &tables)
	}
	require.NoError(t, err)
	return tables
}

// s15Unmapped are the tables the data map does not list, each with why
// it holds no one's personal data (or none the map should name).
var s15Unmapped = map[string]string{
	"socialcrm_migrations":       "applied migration versions",
	"socialcrm_migrations_locks": "the migration lock",
	"sqlite_sequence":            "SQLite's autoincrement counters",
	"socialcrm_tenants":          "the tenants (id, status, dates; a name, emptied at the purge: TestS15TenantPurgeLeavesNoName)",
	"socialcrm_vault_audit_key":  "the key of the audit chain, sealed by the key-encryption key",
	"socialcrm_social_webhook_deliveries": "webhook deliveries already processed, by a keyed hash (under a vault key) of the " +
		"platform's event key, forgotten after the platform's retry window (PruneDeliveries): TestS16UnmappedTablesHoldNoIdentifier",
	// SQLite's full-text index of the contacts' keyed name tokens
	// (external content: it holds the tokens of socialcrm_crm_contacts, erased with them,
	// secure-delete on: TestS15ErasureLeavesNoCellOfThePerson).
	"socialcrm_crm_contact_name_fts":        "name index",
	"socialcrm_crm_contact_name_fts_config": "name index",
	"socialcrm_crm_contact_name_fts_data":   "name index",
	"socialcrm_crm_contact_name_fts_idx":    "name index",
	"socialcrm_crm_contact_name_fts_mark":   "name index",
}

// TestS15EveryTableInTheDataMap: every table the SDK's migrations create
// is in the engine's data map or among s15Unmapped — a table added
// without either fails here — and every table the data map names exists.
func TestS15EveryTableInTheDataMap(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t)})
		require.NoError(t, err)
		tables := s15Tables(t, ctx, db.Admin(t))
		mapped := map[string]bool{}
		for _, c := range sdk.Retention.DataMap().Categories {
			mapped[c.Table] = true
			require.Contains(t, tables, c.Table, "category %s names a table that does not exist", c.Name)
		}
		for _, tb := range tables {
			if !mapped[tb] {
				require.Contains(t, s15Unmapped, tb, "table %s is neither in the data map nor known to hold no personal data", tb)
			}
		}
	}, migrated)
}

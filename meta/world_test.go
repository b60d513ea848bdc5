package meta_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	socialcrm "github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// worldSetup migrates the SDK's packages and the callbacks' table (before
// Open, which checks that every table has its retention category).
func worldSetup(ctx context.Context, db *bun.DB) error {
	return migrations.Run(ctx, db, tenancy.Migrations(), vault.Migrations(), retention.Migrations(),
		social.Migrations(), crm.Migrations(), meta.CallbackMigrations())
}

func eachWorld(t *testing.T, fn func(t *testing.T, w *world)) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) { fn(t, newWorld(t, db)) }, worldSetup)
}

// world is the meta test env on a wired SDK (socialcrm.Open: retention
// categories, disconnect hook, Guard) with a crm store.
type world struct {
	*env
	sdk *socialcrm.SDK
	crm *crm.Store
}

func newWorld(t testing.TB, db *dbtest.DB, srvOpts ...metatest.Option) *world {
	t.Helper()
	e := newEnv(t, db, srvOpts...)
	sdk, err := socialcrm.Open(t.Context(), socialcrm.Config{DB: db.DB, KEK: testkit.NewKEK(t), Now: e.clk.Now,
		Logger: e.logger()})
	require.NoError(t, err)
	e.vault, e.store = sdk.Vault, sdk.Social
	return &world{env: e, sdk: sdk, crm: sdk.CRM}
}

// deauthorizedEvents counts the retention events recorded for tenant ctx.
func (w *world) deauthorizedEvents(ctx context.Context) int {
	w.t.Helper()
	n := 0
	err := tenancy.RunInTx(ctx, w.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
		c, err := tx.NewSelect().TableExpr("socialcrm_retention_events").
			Where("tenant_id = ?", mustTenantID(ctx)).Where("name = ?", retention.EventDeauthorized).Count(ctx)
		n = int(c)
		return err
	})
	require.NoError(w.t, err)
	return n
}

func mustTenantID(ctx context.Context) string {
	tid, _ := tenancy.TenantID(ctx)
	return tid
}

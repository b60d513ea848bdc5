package crm_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// setup migrates what crm builds on and crm itself, and installs the
// Guard, as an application does at start-up.
func setup(ctx context.Context, db *bun.DB) error {
	if err := migrations.Run(ctx, db, tenancy.Migrations(), vault.Migrations(), retention.Migrations(), crm.Migrations()); err != nil {
		return err
	}
	models := append(tenancy.Models(), vault.Models()...)
	models = append(models, retention.Models()...)
	_, err := tenancy.InstallGuard(db, append(models, crm.Models()...)...)
	return err
}

// env is one test's world: a database, a vault, a Store on a fake clock,
// and two tenants acting through A and B.
type env struct {
	db    *dbtest.DB
	vault *vault.Vault
	store *crm.Store
	clock *fakeclock.Clock
	// A and B act as an owner of two different tenants.
	A, B context.Context
}

// each runs fn on SQLite and, when configured, PostgreSQL.
func each(t *testing.T, fn func(t *testing.T, e *env)) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) { fn(t, newEnv(t, db)) }, setup)
}

func newEnv(t testing.TB, db *dbtest.DB, opts ...crm.Option) *env {
	t.Helper()
	kek := testkit.NewKEK(t)
	clock := fakeclock.New()
	v, err := vault.New(db.DB, kek, vault.WithClock(clock.Now), vault.WithColumns(crm.SealedColumns()...))
	require.NoError(t, err)
	s, err := crm.New(db.DB, v, append([]crm.Option{crm.WithClock(clock.Now)}, opts...)...)
	require.NoError(t, err)
	e := &env{db: db, vault: v, store: s, clock: clock, A: owner(tenancy.NewID()), B: owner(tenancy.NewID())}
	// Create both tenants' keys up front, outside any transaction (see the
	// vault's Concurrency section).
	for _, ctx := range []context.Context{e.A, e.B} {
		_, err := v.EnsureKey(ctx)
		require.NoError(t, err)
	}
	return e
}

// as returns a context acting as a member of tenant with role.
func as(tenant string, role tenancy.Role) context.Context {
	return tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenant, MemberID: tenancy.NewID(), Role: role})
}

func owner(tenant string) context.Context { return as(tenant, tenancy.RoleOwner) }

// whole returns a page's items, for the histories a test reads, which fit
// one page.
func whole[T any](p crm.Page[T], err error) ([]T, error) { return p.Items, err }

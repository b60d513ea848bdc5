package vault_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tink-crypto/tink-go/v2/core/registry"
	"github.com/tink-crypto/tink-go/v2/testing/fakekms"
	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// connection is a tenant-owned test model holding a sealed token, the way
// social connections will.
type connection struct {
	bun.BaseModel `bun:"table:test_vault_connections,alias:c"`
	tenancy.Owned
	ID    string       `bun:"id,pk"`
	Token vault.Sealed `bun:"token"`
	Email string       `bun:"email_index,notnull"`
}

// tokenColumn declares connection.Token for Reseal.
var tokenColumn = vault.Column{Table: "test_vault_connections", ID: "id", Sealed: "token"}

func testMigrations() *migrate.Migrations {
	ms := migrate.NewMigrations()
	migrations.Add(ms, "29990101000100", "vault_test_models", func(ctx context.Context, tx bun.Tx) error {
		if err := migrations.Exec(ctx, tx,
			`CREATE TABLE IF NOT EXISTS test_vault_connections (
				tenant_id TEXT NOT NULL,
				id TEXT NOT NULL,
				token BLOB,
				email_index TEXT NOT NULL,
				PRIMARY KEY (tenant_id, id)
			)`,
		); err != nil {
			return err
		}
		return tenancy.EnableRowSecurity(ctx, tx, "test_vault_connections")
	})
	return ms
}

// setup migrates tenancy, the vault and the test model and installs the
// Guard, as an application does at start-up.
func setup(ctx context.Context, db *bun.DB) error {
	if err := migrations.Run(ctx, db, tenancy.Migrations(), vault.Migrations(), testMigrations()); err != nil {
		return err
	}
	models := append(vault.Models(), (*connection)(nil), (*tenancy.AuditEntry)(nil))
	_, err := tenancy.InstallGuard(db, models...)
	return err
}

func each(t *testing.T, fn func(t *testing.T, db *dbtest.DB)) {
	dbtest.Each(t, fn, setup)
}

// as returns a context acting as a member of tenant with role.
func as(tenant string, role tenancy.Role) context.Context {
	return tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenant, MemberID: tenancy.NewID(), Role: role})
}

func owner(tenant string) context.Context { return as(tenant, tenancy.RoleOwner) }

func system() context.Context { return tenancy.System(context.Background(), "vault-test") }

func newVault(t testing.TB, db bun.IDB, kek tink.AEAD, opts ...vault.Option) *vault.Vault {
	t.Helper()
	v, err := vault.New(db, kek, opts...)
	require.NoError(t, err)
	return v
}

func newClock() *fakeclock.Clock { return fakeclock.New() }

// in runs fn in tenancy.RunInTx for ctx's tenant, as every tenant-owned
// access must on PostgreSQL.
func in(ctx context.Context, db bun.IDB, fn func(tx bun.Tx) error) error {
	return tenancy.RunInTx(ctx, db, nil, func(_ context.Context, tx bun.Tx) error { return fn(tx) })
}

func insertConn(t testing.TB, ctx context.Context, db bun.IDB, c *connection) {
	t.Helper()
	require.NoError(t, in(ctx, db, func(tx bun.Tx) error {
		_, err := tx.NewInsert().Model(c).Exec(ctx)
		return err
	}))
}

func getConn(t testing.TB, ctx context.Context, db bun.IDB, id string) connection {
	t.Helper()
	c := connection{ID: id}
	require.NoError(t, in(ctx, db, func(tx bun.Tx) error {
		return tx.NewSelect().Model(&c).WherePK().Scan(ctx)
	}))
	return c
}

func listConns(t testing.TB, ctx context.Context, db bun.IDB) []connection {
	t.Helper()
	var cs []connection
	require.NoError(t, in(ctx, db, func(tx bun.Tx) error {
		return tx.NewSelect().Model(&cs).Order("id").Scan(ctx)
	}))
	return cs
}

// auditActions returns the actions in ctx's tenant's audit log, in order.
func auditActions(t testing.TB, ctx context.Context, db bun.IDB) []string {
	t.Helper()
	log, err := tenancy.NewAuditLog(db)
	require.NoError(t, err)
	es, err := log.List(ctx, tenancy.AuditListOptions{Limit: 1000})
	require.NoError(t, err)
	var as []string
	for _, e := range es {
		as = append(as, e.Action)
	}
	_, err = log.Verify(ctx)
	require.NoError(t, err, "audit chain must verify")
	return as
}

var registerFakeKMS sync.Once

// fakeKMSURI registers Tink's fake KMS client (once per test binary: the
// KMS client registry is Tink's global) and returns a fresh key URI.
func fakeKMSURI(t testing.TB) string {
	t.Helper()
	registerFakeKMS.Do(func() {
		c, err := fakekms.NewClient("fake-kms://")
		require.NoError(t, err)
		registry.RegisterKMSClient(c)
	})
	uri, err := fakekms.NewKeyURI()
	require.NoError(t, err)
	return uri
}

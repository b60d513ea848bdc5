package tenancy_test

import (
	"context"
	"os"
	"testing"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/tenancy"
)

// widget and gadget are tenant-owned test models; a gadget belongs to a
// widget.
type widget struct {
	bun.BaseModel `bun:"table:test_widgets,alias:w"`
	tenancy.Owned
	ID      string    `bun:"id,pk"`
	Name    string    `bun:"name,notnull"`
	Size    int       `bun:"size,notnull"`
	Gadgets []*gadget `bun:"rel:has-many,join:id=widget_id,join:tenant_id=tenant_id"`
}

type gadget struct {
	bun.BaseModel `bun:"table:test_gadgets,alias:g"`
	tenancy.Owned
	ID       string  `bun:"id,pk"`
	WidgetID string  `bun:"widget_id,notnull"`
	Label    string  `bun:"label,notnull"`
	Widget   *widget `bun:"rel:belongs-to,join:widget_id=id,join:tenant_id=tenant_id"`
}

func testMigrations() *migrate.Migrations {
	ms := migrate.NewMigrations()
	migrations.Add(ms, "29990101000000", "tenancy_test_models", func(ctx context.Context, tx bun.Tx) error {
		if err := migrations.Exec(ctx, tx,
			`CREATE TABLE IF NOT EXISTS test_widgets (tenant_id TEXT NOT NULL, id TEXT PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL)`,
			`CREATE TABLE IF NOT EXISTS test_gadgets (tenant_id TEXT NOT NULL, id TEXT PRIMARY KEY, widget_id TEXT NOT NULL, label TEXT NOT NULL)`,
			`CREATE UNIQUE INDEX IF NOT EXISTS test_widgets_tenant_id ON test_widgets (tenant_id, id)`,
			`CREATE UNIQUE INDEX IF NOT EXISTS test_gadgets_tenant_id ON test_gadgets (tenant_id, id)`,
		); err != nil {
			return err
		}
		for _, t := range []string{"test_widgets", "test_gadgets"} {
			if err := tenancy.EnableRowSecurity(ctx, tx, t); err != nil {
				return err
			}
		}
		return nil
	})
	return ms
}

// setup migrates the tenancy tables and the test models and installs the
// Guard, as an application does at start-up.
func setup(ctx context.Context, db *bun.DB) error {
	if err := migrations.Run(ctx, db, tenancy.Migrations(), testMigrations()); err != nil {
		return err
	}
	_, err := tenancy.InstallGuard(db, (*widget)(nil), (*gadget)(nil), (*tenancy.Member)(nil),
		(*tenancy.APIKey)(nil), (*tenancy.AuditEntry)(nil))
	return err
}

// cheapPasswords makes a Store hash passwords at bcrypt's lowest cost: at
// PasswordCost one hash takes seconds under the race detector, and these
// tests sign up and sign in many times. TestPasswordCost checks the
// default cost; the examples keep it.
var cheapPasswords = tenancy.WithInsecurePasswordCost(4)

func each(t *testing.T, fn func(t *testing.T, db *dbtest.DB)) {
	dbtest.Each(t, fn, setup)
}

// as returns a context acting as a staff member of tenant.
func as(tenant string) context.Context {
	return tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenant, Role: tenancy.RoleStaff})
}

func hasPostgres() bool { return os.Getenv(dbtest.EnvPostgres) != "" }

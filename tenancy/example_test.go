package tenancy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// openExampleDB opens a throw-away SQLite database with socialcrm's tables
// and the host application's own, the widgets of these examples.
func openExampleDB() (*bun.DB, func()) {
	dir, err := os.MkdirTemp("", "tenancy-example")
	if err != nil {
		panic(err)
	}
	path := filepath.Join(dir, "example.db")
	if err := dbtest.SQLiteFile(path, exampleMigrate); err != nil {
		panic(err)
	}
	db, err := socialcrm.OpenDB(path) // or a postgres:// URL
	if err != nil {
		panic(err)
	}
	if err := exampleMigrate(context.Background(), db); err != nil {
		panic(err)
	}
	return db, func() { db.Close(); os.RemoveAll(dir) }
}

// widgetMigrations creates the host application's tenant-owned table, with
// row-level security on PostgreSQL, in socialcrm's migration history: a
// far-future version keeps it apart from socialcrm's own.
func widgetMigrations() *migrate.Migrations {
	ms := migrate.NewMigrations()
	ms.Add(migrate.Migration{Name: "29990101000000", Comment: "example widgets",
		Up: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
			return m.DB().RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				if _, err := tx.ExecContext(ctx, `CREATE TABLE test_widgets (tenant_id TEXT NOT NULL, id TEXT PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL)`); err != nil {
					return err
				}
				return tenancy.EnableRowSecurity(ctx, tx, "test_widgets")
			})
		}})
	return ms
}

// Queries on a model embedding Owned see only the context's tenant, and
// fail closed without one.
func ExampleOwned() {
	db, done := openExampleDB()
	defer done()
	if _, err := socialcrm.Guard(db, (*widget)(nil)); err != nil {
		panic(err)
	}
	acme := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), Role: tenancy.RoleStaff})
	globex := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), Role: tenancy.RoleStaff})

	for _, w := range []struct {
		ctx  context.Context
		name string
	}{{acme, "anvil"}, {acme, "rocket"}, {globex, "sprocket"}} {
		err := tenancy.RunInTx(w.ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewInsert().Model(&widget{ID: tenancy.NewID(), Name: w.name}).Exec(ctx)
			return err
		})
		if err != nil {
			panic(err)
		}
	}

	var ws []widget
	_ = tenancy.RunInTx(acme, db, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&ws).Order("name").Scan(ctx)
	})
	for _, w := range ws {
		fmt.Println(w.Name)
	}

	err := db.NewSelect().Model(&ws).Scan(context.Background())
	fmt.Println(errors.Is(err, tenancy.ErrNoTenant))

	_, err = db.NewSelect().Model((*widget)(nil)).Count(acme)
	fmt.Println(errors.Is(err, tenancy.ErrUnscoped))

	n, _ := db.NewSelect().Model((*widget)(nil)).Apply(tenancy.Scope(acme)).Count(acme)
	fmt.Println(n)
	// Output:
	// anvil
	// rocket
	// true
	// true
	// 2
}

// Sign-up creates a tenant and its owner; members then authenticate with
// their tenant, email and password.
func ExampleStore_Authenticate() {
	db, done := openExampleDB()
	defer done()
	store, _ := tenancy.NewStore(db)
	t, _, err := store.CreateTenant(context.Background(), tenancy.SignUp{
		TenantName: "Acme",
		Owner:      tenancy.NewMember{Email: "ada@acme.example", Name: "Ada", Password: "long enough secret"},
	})
	if err != nil {
		panic(err)
	}
	p, err := store.Authenticate(context.Background(), t.ID, "ada@acme.example", "long enough secret", tenancy.RequestInfo{IP: "192.0.2.1"})
	fmt.Println(p.Role, err)
	_, err = store.Authenticate(context.Background(), t.ID, "ada@acme.example", "wrong", tenancy.RequestInfo{IP: "192.0.2.1"})
	fmt.Println(err)
	// Output:
	// owner <nil>
	// tenancy: invalid credentials
}

// Every tenant's audit log is a hash chain that Verify checks.
func ExampleAuditLog_Verify() {
	db, done := openExampleDB()
	defer done()
	log, _ := tenancy.NewAuditLog(db)
	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), MemberID: "m1", Role: tenancy.RoleOwner})
	for _, action := range []string{"contact.exported", "connection.revoked"} {
		if _, err := log.Append(ctx, tenancy.AuditEvent{Action: action, Target: "contact:42"}); err != nil {
			panic(err)
		}
	}
	head, err := log.Verify(ctx)
	fmt.Println(head.Entries, head.Seq, err)
	// Output: 2 2 <nil>
}

// A single statement needs no transaction: RunScoped confines it to the
// context's tenant all the same (on PostgreSQL the tenant setting travels
// with the statement, one round trip).
func ExampleRunScoped() {
	db, done := openExampleDB()
	defer done()
	if _, err := socialcrm.Guard(db, (*widget)(nil)); err != nil {
		panic(err)
	}
	acme := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), Role: tenancy.RoleStaff})
	globex := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), Role: tenancy.RoleStaff})
	for _, ctx := range []context.Context{acme, globex} {
		if _, err := db.NewInsert().Model(&widget{ID: tenancy.NewID(), Name: "anvil"}).Exec(ctx); err != nil {
			panic(err)
		}
	}

	var ws []widget
	err := tenancy.RunScoped(acme, db, func(ctx context.Context, db bun.IDB) error {
		return db.NewSelect().Model(&ws).Scan(ctx)
	})
	fmt.Println(len(ws), err)
	err = tenancy.RunScoped(context.Background(), db, func(context.Context, bun.IDB) error { return nil })
	fmt.Println(errors.Is(err, tenancy.ErrNoTenant))
	// Output:
	// 1 <nil>
	// true
}

// exampleMigrate is the examples' migration. Their databases start as
// copies of a file it migrated once per test binary (dbtest.SQLiteFile),
// where it then finds nothing to do: migrating a new SQLite file takes
// seconds under the race detector, copying one does not.
func exampleMigrate(ctx context.Context, db *bun.DB) error {
	return socialcrm.Migrate(ctx, db, widgetMigrations())
}

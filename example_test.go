package socialcrm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault/insecurekeyfile"
)

// Open is the entry point: open the database and a key-encryption key,
// then the SDK, which migrates, installs the Guard and wires every part
// together. Here a tenant signs up and its members are read back.
func ExampleOpen() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "socialcrm-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	db, err := socialcrm.OpenDB(filepath.Join(dir, "crm.db")) // or a postgres:// URL
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	kek, err := insecurekeyfile.Open(filepath.Join(dir, "kek.json")) // or vault.KMS(uri)
	if err != nil {
		fmt.Println(err)
		return
	}
	sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db, KEK: kek})
	if err != nil {
		fmt.Println(err)
		return
	}

	tenant, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Ada's Bakery",
		Owner: tenancy.NewMember{Email: "ada@bakery.example", Name: "Ada"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	asOwner := tenancy.WithPrincipal(ctx, tenancy.Principal{TenantID: tenant.ID, MemberID: owner.ID, Role: owner.Role})
	members, err := sdk.Tenants.Members(asOwner)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tenant.Name, "-", members[0].Name, members[0].Role)
	left, err := sdk.Retention.Uncovered(ctx)
	fmt.Println("tables without a retention category:", len(left), err)
	// Output:
	// Ada's Bakery - Ada owner
	// tables without a retention category: 0 <nil>
}

// OpenDB opens SQLite by path (created if missing) or PostgreSQL by URL.
func ExampleOpenDB() {
	dir, err := os.MkdirTemp("", "socialcrm-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	db, err := socialcrm.OpenDB(filepath.Join(dir, "crm.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	fmt.Println(db.Dialect().Name(), db.PingContext(context.Background()))
	// Output: sqlite <nil>
}

// Migrate applies every package's schema migrations; running it again is a
// no-op.
func ExampleMigrate() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "socialcrm-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	db, err := socialcrm.OpenDB(filepath.Join(dir, "crm.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	applied := func() int64 {
		n, err := db.NewSelect().Table("socialcrm_migrations").Count(ctx)
		if err != nil {
			fmt.Println(err)
		}
		return n
	}
	fmt.Println(socialcrm.Migrate(ctx, db))
	first := applied()
	fmt.Println(socialcrm.Migrate(ctx, db), applied() == first && first > 0)
	// Output:
	// <nil>
	// <nil> true
}

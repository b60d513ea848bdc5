package vault_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
	"github.com/socialcrm/socialcrm/vault/insecurekeyfile"
)

// exampleEnv opens a migrated SQLite database and a local key file in a
// temporary directory, as an embedded application would at start-up.
func exampleEnv() (db *bun.DB, kek *insecurekeyfile.KeyFile, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "vault-example-")
	if err != nil {
		return nil, nil, nil, err
	}
	removeDir := func() { os.RemoveAll(dir) }
	path := filepath.Join(dir, "crm.db")
	err = dbtest.SQLiteFile(path, exampleMigrate)
	if err == nil {
		db, err = socialcrm.OpenDB(path) // or a postgres:// URL
	}
	if err == nil {
		err = exampleMigrate(context.Background(), db)
	}
	if err == nil {
		_, err = socialcrm.Guard(db)
	}
	if err == nil {
		kek, err = insecurekeyfile.Open(filepath.Join(dir, "kek.json"))
	}
	if err != nil {
		if db != nil {
			db.Close()
		}
		removeDir()
		return nil, nil, nil, err
	}
	return db, kek, func() { db.Close(); removeDir() }, nil
}

// exampleVault is exampleEnv with a Vault over it, configured by opts.
func exampleVault(opts ...vault.Option) (*vault.Vault, *insecurekeyfile.KeyFile, func(), error) {
	db, kek, cleanup, err := exampleEnv()
	if err != nil {
		return nil, nil, nil, err
	}
	v, err := vault.New(db, kek, opts...)
	if err != nil {
		cleanup()
		return nil, nil, nil, err
	}
	return v, kek, cleanup, nil
}

func Example() {
	v, _, cleanup, err := exampleVault()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cleanup()
	// The tenant comes from the context, as in every socialcrm call.
	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), Role: tenancy.RoleStaff})
	b := vault.Binding{Record: "connection-1", Field: "access_token"}

	sealed, err := v.Seal(ctx, []byte("EAAG-page-token"), b)
	if err != nil {
		fmt.Println(err)
		return
	}
	secret, err := v.Open(ctx, sealed, b)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer secret.Wipe()

	fmt.Println("printed:", secret)
	fmt.Printf("logged as: %v\n", slog.Any("token", secret).Value.Resolve())
	fmt.Println("revealed:", string(secret.Reveal()))

	// The same ciphertext under another binding does not open.
	_, err = v.Open(ctx, sealed, vault.Binding{Record: "connection-2", Field: "access_token"})
	fmt.Println(errors.Is(err, vault.ErrOpen))
	// Output:
	// printed: [REDACTED]
	// logged as: [REDACTED]
	// revealed: EAAG-page-token
	// true
}

func ExampleVault_RotateKey() {
	v, _, cleanup, err := exampleVault(vault.WithColumns(vault.Column{Table: "socialcrm_connections", ID: "id", Sealed: "access_token"}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cleanup()
	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), Role: tenancy.RoleOwner})
	b := vault.Binding{Record: "connection-1", Field: "access_token"}
	old, _ := v.Seal(ctx, []byte("token"), b)

	primary, err := v.RotateKey(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fresh, _ := v.Seal(ctx, []byte("token"), b)
	fmt.Println("old value under the new key:", old.KeyID() == primary)
	fmt.Println("new value under the new key:", fresh.KeyID() == primary)
	secret, err := v.Open(ctx, old, b)
	fmt.Println("old value still opens:", err == nil && string(secret.Reveal()) == "token")

	// Then a job moves the declared columns to the new key:
	// v.Reseal(ctx, vault.ResealOptions{Progress: report}).

	// Output:
	// old value under the new key: false
	// new value under the new key: true
	// old value still opens: true
}

func ExampleVault_DestroyKey() {
	v, kek, cleanup, err := exampleVault()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cleanup()
	tid := tenancy.NewID()
	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tid, Role: tenancy.RoleOwner})
	b := vault.Binding{Record: "contact-1", Field: "phone"}
	sealed, _ := v.Seal(ctx, []byte("+14155550100"), b)

	// Tenant erasure, run by the retention engine as the system.
	sys, _ := tenancy.AsTenant(tenancy.System(context.Background(), "retention"), tid)
	if err := v.DestroyKey(sys); err != nil {
		fmt.Println(err)
		return
	}
	_, err = v.Open(ctx, sealed, b)
	fmt.Println(err)
	fmt.Println(errors.Is(err, vault.ErrKeyDestroyed), errors.Is(err, vault.ErrOpen))

	// To reach backups too: rotate the KEK, rewrap, retire the old version.
	_ = kek.Rotate()
	n, _ := v.RotateKEK(tenancy.System(context.Background(), "kek-rotation"), kek)
	_ = kek.Retire()
	fmt.Println("tenants rewrapped:", n, "KEK versions left:", kek.Versions())
	// Output:
	// vault: tenant data key destroyed
	// true true
	// tenants rewrapped: 0 KEK versions left: 1
}

func ExampleVault_Index() {
	v, _, cleanup, err := exampleVault()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cleanup()
	ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), Role: tenancy.RoleStaff})

	// Normalize the same way when storing and when looking up.
	normalize := func(email string) string { return strings.ToLower(strings.TrimSpace(email)) }
	stored, _ := v.Index(ctx, normalize("Ada.Lovelace@Example.com"), "email")
	lookup, _ := v.Index(ctx, normalize(" ada.lovelace@example.com "), "email")
	other, _ := v.Index(ctx, normalize("ada.lovelace@example.com"), "billing_email")

	fmt.Println("same person found:", stored == lookup)
	fmt.Println("other field differs:", stored == other)
	fmt.Println("reveals the address:", strings.Contains(stored, "ada"))
	// Output:
	// same person found: true
	// other field differs: false
	// reveals the address: false
}

// exampleMigrate is the examples' migration. Their databases start as
// copies of a file it migrated once per test binary (dbtest.SQLiteFile),
// where it then finds nothing to do: migrating a new SQLite file takes
// seconds under the race detector, copying one does not.
func exampleMigrate(ctx context.Context, db *bun.DB) error { return socialcrm.Migrate(ctx, db) }

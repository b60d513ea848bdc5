package crm

import (
	"context"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// TablePrefix starts the name of every crm table, so that none collides
// with a host application's own tables.
const TablePrefix = "socialcrm_crm_"

// migration is one versioned schema change of the package.
type migration struct {
	// version is a UTC timestamp, unique across socialcrm. crm uses
	// 20261123000500–20261123000599 for the core records (this file's
	// coreMigrations) and 20261123000600–20261123000699 for the commerce
	// records (commerceMigrations in commerce.go).
	version, comment string
	up               func(ctx context.Context, tx bun.Tx) error
}

// Migrations returns the versioned migrations of the crm tables.
// socialcrm.Migrate runs them after those of tenancy, vault and retention.
func Migrations() *migrate.Migrations {
	ms := migrate.NewMigrations()
	for _, m := range append(coreMigrations(), commerceMigrations()...) {
		migrations.Add(ms, m.version, m.comment, m.up)
	}
	return ms
}

// Models returns a pointer to each tenant-owned model of the package, for
// tenancy.InstallGuard.
func Models() []any {
	return append(coreModels(), commerceModels()...)
}

// Categories returns the retention categories of every crm table: how a
// data subject's rows are found (by contact_id, and by email for the
// contacts), how they are erased, why they are kept.
func Categories() []retention.Category {
	return append(coreCategories(), commerceCategories()...)
}

// SealedColumns declares the package's sealed columns, for
// vault.WithColumns (key rotation reseals them).
func SealedColumns() []vault.Column {
	return append(coreSealedColumns(), commerceSealedColumns()...)
}

// ownedTables runs the DDL statements stmts (portable types, IF NOT
// EXISTS; see internal/migrations.Exec), then enables PostgreSQL row-level
// security on each of tables, which must be tenant-owned.
func ownedTables(ctx context.Context, tx bun.Tx, tables []string, stmts ...string) error {
	if err := migrations.Exec(ctx, tx, stmts...); err != nil {
		return err
	}
	for _, t := range tables {
		if err := tenancy.EnableRowSecurity(ctx, tx, t); err != nil {
			return err
		}
	}
	return nil
}

// coreMigrations are the migrations of the core records (contacts,
// companies, deals, activities, tasks, notes, consent, conversations and
// messages), in version order.
func coreMigrations() []migration {
	return []migration{}
}

// coreModels are the tenant-owned models of the core records.
func coreModels() []any {
	return []any{}
}

// coreCategories are the retention categories of the core tables.
func coreCategories() []retention.Category {
	return []retention.Category{}
}

// coreSealedColumns are the sealed columns of the core tables.
func coreSealedColumns() []vault.Column {
	return []vault.Column{}
}

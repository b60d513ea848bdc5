package crm

import (
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/vault"
)

// This file declares the commerce records (campaigns, proposals, invoices
// and their line items, client-portal scoping, attachments, custom fields)
// to the package-wide lists. The core records never edit it: their own
// declarations are the core* functions in migrations.go.
//
// Migration versions for the commerce records: 20261123000600 to
// 20261123000699, each created with ownedTables (row-level security on
// every tenant-owned table). Every table added here needs a model in
// commerceModels and a retention category in commerceCategories
// (socialcrm's root tests refuse a tenant-owned table without one).

// commerceMigrations are the migrations of the commerce records, in
// version order.
func commerceMigrations() []migration { return nil }

// commerceModels are the tenant-owned models of the commerce records.
func commerceModels() []any { return nil }

// commerceCategories are the retention categories of the commerce tables.
func commerceCategories() []retention.Category { return nil }

// commerceSealedColumns are the sealed columns of the commerce tables.
func commerceSealedColumns() []vault.Column { return nil }

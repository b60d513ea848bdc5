// Package crm holds the CRM records of a tenant — contacts with consent per
// channel, companies, deals and pipelines, activities, tasks, notes,
// attachments, custom fields, campaigns, proposals, invoices, conversations
// and messages — in tenant-scoped, validated repositories reached from one
// Store, each declared to the retention engine.
//
// The package is being built: the Store (New, WithClock, WithLogger, Using),
// its errors (*ValidationError, *ConflictError, ErrNotFound), keyset
// pagination (ListOptions, Page, All) and the package-wide declarations
// (Migrations, Models, Categories, SealedColumns) are in place; the
// repositories follow.
package crm

// Package crm holds the CRM records of a tenant — contacts with consent per
// channel, companies, deals and pipelines, activities, tasks, notes,
// attachments, custom fields, campaigns, proposals, invoices, conversations
// and messages — in tenant-scoped, validated repositories reached from one
// Store, each declared to the retention engine.
//
// The package is being built: it has no API yet.
package crm

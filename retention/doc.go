// Package retention is the generic retention, erasure and
// data-subject-request engine: packages declare their data as categories,
// policies give each category its periods and triggers, and the engine
// sweeps, honours legal holds, exports and erases a subject's data, purges
// closed tenants, and writes receipts to the audit log.
//
// The package is being built: it has no API yet.
package retention

// Package crm holds a tenant's CRM records — contacts with consent per
// channel and purpose, companies, pipelines and deals, activities, tasks,
// notes, conversations and messages (and, from the commerce half,
// campaigns, proposals, invoices, attachments and custom fields) — in
// validated, tenant-scoped repositories reached from one Store, each table
// declared to the retention engine.
//
//	store, err := crm.New(db, v, crm.WithClock(clock.Now), crm.WithLogger(log))
//	ctx = tenancy.WithPrincipal(ctx, principal) // who acts, for which tenant
//	c, err := store.Contacts().Create(ctx, crm.Contact{FirstName: "Ada", Email: "ada@example.com",
//		Source: "instagram", UTM: crm.UTM{Campaign: "spring"}})
//	page, err := store.Contacts().List(ctx, crm.ContactFilter{Stage: crm.StageCustomer}, crm.ListOptions{Limit: 100})
//	for c, err := range crm.All(ctx, crm.ListOptions{}, listFunc) { … } // every page
//
// socialcrm.Open builds the Store as SDK.CRM; on its own, run Migrations
// (after those of tenancy, vault and retention), install the Guard with
// Models, give the vault SealedColumns and the retention engine Categories.
//
// # Repositories
//
// Store.Contacts, Companies, Pipelines, Deals (with their stage history),
// Activities (a timeline, idempotent by external id), Tasks, Notes,
// Consents and Conversations (with their messages) each offer the
// operations their kind needs, in one shape: Create (or Record) takes the
// record and returns it as stored, with its ID, times and Version 1; Get
// returns ErrNotFound for an id the tenant does not have; Update takes the
// record as read and changed; List takes a filter and ListOptions and
// returns a Page.
//
// Lists are paged by keyset: pass Page.NextCursor back as
// ListOptions.Cursor for the next page. A cursor is opaque, belongs to one
// list, and stays valid when records are added or removed meanwhile.
//
// Conversations are keyed as platforms key them (channel, account, thread:
// a Page id and a Messenger PSID); Record stores a message once per
// external id, so webhook redeliveries are harmless, and MarkDelivered and
// MarkRead apply Messenger's watermarks to every outbound message sent
// before them.
//
// Consents keeps, per contact, channel (email, sms, whatsapp, messenger)
// and purpose (marketing, birthday, service), the current word and its
// whole history. A Scheduler finds the contacts due for a birthday greeting
// or a campaign that consented to it and hands them to a Notifier
// (LogNotifier logs); it never selects a contact whose latest word is not a
// grant, and it hands each occasion (Notification.Key) to a contact once.
//
// Contacts.ExportCSV and ImportCSV stream contacts as CSV; an import
// reports each bad row (line, field, problem) and creates the others.
//
// # Concurrency
//
// A Store and its repositories are safe for concurrent use and hold no
// state but their configuration. Every call runs in its own transaction
// (tenancy.RunInTx; on SQLite a call that is a single statement runs
// without an explicit one), or in a savepoint of the caller's transaction
// when the Store comes from Store.Using(tx). Updates are optimistic: each
// record has a Version, an update names the version it read, and a stale
// one fails with a *ConflictError without writing anything. Returned
// records and slices belong to the caller.
//
// # Errors
//
// Invalid input — on every create and update — returns a *ValidationError
// listing each field (by its JSON name) and the rule it broke; a failed
// create or update writes nothing. Match with errors.As, or errors.Is with
// ErrInvalid:
//
//	var verr *crm.ValidationError
//	if errors.As(err, &verr) {
//		for _, f := range verr.Fields { … f.Field, f.Rule, f.Message … }
//	}
//
// ErrNotFound (wrapped with the kind and id) is returned for a record the
// tenant does not have — another tenant's record included. A stale update
// returns a *ConflictError (errors.Is ErrConflict) with the version named
// and the version stored. ErrConfig comes from New and NewScheduler.
// tenancy.ErrNoTenant comes from a context without a tenant.
//
// # Security
//
// Every model embeds Record, which embeds tenancy.Owned: every query is
// scoped to the context's tenant by the hooks, checked by the Guard, and on
// PostgreSQL bound by row-level security. References between records (a
// deal's contact, a note's company) are checked to belong to the same
// tenant. A contact's e-mail address and phone number are stored only
// sealed by the vault, bound to tenant, contact and field, beside a blind
// index that finds them by exact match (no prefix search on them); the
// Store opens them when it returns a contact. Logs never carry them.
//
// Retention: Categories declares every table with the subject identifiers
// SubjectContact and SubjectThread, so that a data-subject export or
// erasure of a contact reaches every record kind; deals are anonymized
// rather than deleted, messages go with their conversation. Exports omit
// the sealed columns (ciphertext the export could not open); export the
// contact through Contacts.Get for its address.
//
// # Testing
//
// There is no crmtest package: a Store over a SQLite file (internal/dbtest
// in this module; any bun.DB in yours) is the real thing and fast. Inject a
// clock with WithClock to test birthdays and stage history without
// waiting.
package crm

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
//
// # Client portal
//
// A tenant's clients (Clients: the brands or organizations it works for)
// own campaigns, proposals and invoices. A member with the tenancy client
// role is bound to one client by a link the tenant makes (Clients.Link,
// which checks the member's role and tenancy's ClientID); such a principal
// sees only its client's records:
//
//	m, _ := tenants.AddMember(ctx, tenancy.NewMember{Email: e, Name: n, Role: tenancy.RoleClient, ClientID: brand.ID})
//	_, err := store.Clients().Link(ctx, brand.ID, m.ID)
//	portal := tenancy.WithPrincipal(ctx, m.Principal())
//	page, err := store.Invoices().List(portal, crm.InvoiceFilter{}, crm.ListOptions{}) // brand's only
//
// Its lists show its client's campaigns, proposals, invoices, their
// attachments and custom field values; a get of another record is
// ErrNotFound; every write is a *ForbiddenError (errors.Is ErrForbidden and
// tenancy.ErrForbidden) except accepting or rejecting a proposal sent to
// its client. Every other kind (contacts, companies, deals, activities,
// tasks, notes, consent, conversations, custom field definitions) refuses
// it, reads included, through one check every repository of those kinds
// passes (Store.tx calls authorize); creators get the same refusal. A
// client principal without a link, or whose tenancy ClientID differs from
// its link, sees nothing.
//
// # Billing
//
// Proposals keep every revision as a snapshot (Proposals.Revise,
// Revisions) and every status change with who and when (History); moves
// outside draft → sent → accepted/rejected/withdrawn are a
// *TransitionError. Invoices carry line items whose net, tax (basis points,
// rounded half away from zero) and totals the Store computes in exact
// integer arithmetic: a result outside int64 is a *ValidationError with rule
// "overflow", never a wrapped amount. Currencies are ISO 4217 codes and
// amounts minor units; numbers are unique per tenant; the payment status
// moves draft → issued → partially_paid/overdue → paid, or void, and only a
// draft can change or be deleted.
//
// Invoices are the retention category "billing.invoice", which
// retention.ExamplePolicy keeps for 7 years (legal obligation) from their
// date: an erasure request leaves them whole, with the customer's name,
// address and tax id that the law requires on an invoice. What the law does
// not require — the recipient's e-mail, phone and contact link — is kept
// apart (category "billing.invoice_recipient") and erased on request. When
// an invoice's period ends, its files, custom field values and recipient go
// with it. Clients are data subjects by "client_id": their erasure reaches
// campaigns, proposals with revisions and history, portal links, files and
// custom field values.
//
// Attachments keep metadata (owner, name, type, size, SHA-256) in the
// database and bytes in a Storage (WithStorage): DirStorage keeps each
// tenant in its own directory and resolves every path through an os.Root,
// so neither a key nor a planted symbolic link leads outside it. Erasing an
// attachment deletes its bytes; register Store.Categories (which bind that
// hook to the Store's storage) rather than the package's Categories, whose
// attachment hook refuses to erase without a storage. Custom fields are
// defined per record kind (Fields.Define: text, number, date, bool, select)
// and values are validated against them, each failure naming its field.
package crm

package crm

import (
	"context"
	"fmt"
	"strings"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// This file declares the commerce records (clients and client-portal
// links, campaigns, proposals with revisions and history, invoices with
// line items, attachments, custom fields) to the package-wide lists. The
// core records never edit it: their own declarations are the core*
// functions in migrations.go.
//
// Migration versions for the commerce records: 20261123000600 to
// 20261123000699, each created with ownedTables (row-level security on
// every tenant-owned table). Every table added here needs a model in
// commerceModels and a retention category in commerceCategories
// (socialcrm's root tests refuse a tenant-owned table without one).

// commerce is the part of a Store's settings the commerce records use.
type commerce struct {
	storage       Storage
	maxAttachment int64
}

// Tables of the commerce records.
const (
	TableClients           = "socialcrm_crm_clients"
	TableClientMembers     = "socialcrm_crm_client_members"
	TableCampaigns         = "socialcrm_crm_campaigns"
	TableProposals         = "socialcrm_crm_proposals"
	TableProposalRevisions = "socialcrm_crm_proposal_revisions"
	TableProposalEvents    = "socialcrm_crm_proposal_events"
	TableInvoices          = "socialcrm_crm_invoices"
	TableInvoiceRecipients = "socialcrm_crm_invoice_recipients"
	TableAttachments       = "socialcrm_crm_attachments"
	TableFieldDefs         = "socialcrm_crm_field_defs"
	TableFieldValues       = "socialcrm_crm_field_values"
)

// categoryAttachment is the retention category of the attachments, whose
// AfterErase hook deletes their bytes.
const categoryAttachment = "crm.attachment"

// categoryFieldValue is the retention category of custom field values.
const categoryFieldValue = "crm.custom_field_value"

// Retention categories of the billing records.
const (
	// CategoryInvoice is the invoices, which the law requires to be kept.
	CategoryInvoice = "billing.invoice"
	// CategoryInvoiceRecipient is the invoice recipients.
	CategoryInvoiceRecipient = "billing.invoice_recipient"
	// CategoryClientContact is the clients' billing e-mail addresses and
	// phone numbers, found by SubjectClientContact.
	CategoryClientContact = "crm.client_contact"
)

// commerceMigrations are the migrations of the commerce records, in
// version order.
func commerceMigrations() []migration {
	return []migration{{
		version: "20261123000600", comment: "crm_commerce_init",
		up: func(ctx context.Context, tx bun.Tx) error {
			return ownedTables(ctx, tx, []string{TableClients, TableClientMembers, TableCampaigns, TableProposals,
				TableProposalRevisions, TableProposalEvents, TableInvoices, TableInvoiceRecipients, TableAttachments,
				TableFieldDefs, TableFieldValues},
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_clients (
					`+recordColumns+`
					name TEXT NOT NULL, email TEXT, phone TEXT,
					PRIMARY KEY (tenant_id, id))`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_client_members (
					tenant_id TEXT NOT NULL, member_id TEXT NOT NULL, client_id TEXT NOT NULL,
					created_at TIMESTAMP NOT NULL,
					PRIMARY KEY (tenant_id, member_id))`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_client_members_client ON socialcrm_crm_client_members (tenant_id, client_id)`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_campaigns (
					`+recordColumns+`
					client_id TEXT NOT NULL,
					name TEXT NOT NULL, status TEXT NOT NULL, starts_at TIMESTAMP, ends_at TIMESTAMP,
					budget BIGINT NOT NULL, currency TEXT NOT NULL,
					PRIMARY KEY (tenant_id, id))`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_campaigns_client ON socialcrm_crm_campaigns (tenant_id, client_id, id)`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_proposals (
					`+recordColumns+`
					client_id TEXT NOT NULL, campaign_id TEXT,
					status TEXT NOT NULL, revision BIGINT NOT NULL,
					title TEXT NOT NULL, body TEXT NOT NULL, amount BIGINT NOT NULL, currency TEXT NOT NULL,
					PRIMARY KEY (tenant_id, id))`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_proposals_client ON socialcrm_crm_proposals (tenant_id, client_id, id)`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_proposal_revisions (
					tenant_id TEXT NOT NULL, id TEXT NOT NULL, proposal_id TEXT NOT NULL, number BIGINT NOT NULL,
					title TEXT NOT NULL, body TEXT NOT NULL, amount BIGINT NOT NULL, currency TEXT NOT NULL,
					author TEXT NOT NULL, created_at TIMESTAMP NOT NULL,
					PRIMARY KEY (tenant_id, id), UNIQUE (tenant_id, proposal_id, number))`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_proposal_events (
					tenant_id TEXT NOT NULL, id TEXT NOT NULL, proposal_id TEXT NOT NULL,
					from_status TEXT NOT NULL, to_status TEXT NOT NULL, revision BIGINT NOT NULL,
					actor TEXT NOT NULL, note TEXT NOT NULL, at TIMESTAMP NOT NULL,
					PRIMARY KEY (tenant_id, id))`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_proposal_events_proposal ON socialcrm_crm_proposal_events (tenant_id, proposal_id, at)`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_invoices (
					`+recordColumns+`
					number TEXT NOT NULL,
					client_id TEXT NOT NULL, campaign_id TEXT, currency TEXT NOT NULL, status TEXT NOT NULL,
					lines TEXT NOT NULL, subtotal BIGINT NOT NULL, tax BIGINT NOT NULL, total BIGINT NOT NULL,
					paid BIGINT NOT NULL, issued_at TIMESTAMP, due_at TIMESTAMP, dated_at TIMESTAMP NOT NULL,
					bill_to_name TEXT NOT NULL, bill_to_address TEXT NOT NULL, bill_to_tax_id TEXT NOT NULL,
					PRIMARY KEY (tenant_id, id), UNIQUE (tenant_id, number))`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_invoices_client ON socialcrm_crm_invoices (tenant_id, client_id, id)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_invoices_dated ON socialcrm_crm_invoices (tenant_id, dated_at)`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_invoice_recipients (
					tenant_id TEXT NOT NULL, invoice_id TEXT NOT NULL,
					contact_id TEXT, email TEXT, phone TEXT, created_at TIMESTAMP NOT NULL,
					PRIMARY KEY (tenant_id, invoice_id))`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_invoice_recipients_contact ON socialcrm_crm_invoice_recipients (tenant_id, contact_id)`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_attachments (
					`+recordColumns+`
					owner_kind TEXT NOT NULL, owner_id TEXT NOT NULL,
					file_name TEXT NOT NULL, content_type TEXT NOT NULL, size BIGINT NOT NULL, sha256 TEXT NOT NULL,
					client_id TEXT, author TEXT NOT NULL,
					PRIMARY KEY (tenant_id, id))`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_attachments_owner ON socialcrm_crm_attachments (tenant_id, owner_kind, owner_id, id)`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_field_defs (
					`+recordColumns+`
					record_kind TEXT NOT NULL, name TEXT NOT NULL,
					label TEXT NOT NULL, type TEXT NOT NULL, options TEXT, required BOOLEAN NOT NULL,
					PRIMARY KEY (tenant_id, id), UNIQUE (tenant_id, record_kind, name))`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_field_values (
					tenant_id TEXT NOT NULL, id TEXT NOT NULL, record_kind TEXT NOT NULL, record_id TEXT NOT NULL,
					field_id TEXT NOT NULL, value TEXT NOT NULL, updated_at TIMESTAMP NOT NULL,
					PRIMARY KEY (tenant_id, id), UNIQUE (tenant_id, record_kind, record_id, field_id))`,
			)
		},
	}, {version: "20261123000650", comment: "crm_commerce_sealed", up: func(ctx context.Context, tx bun.Tx) error {
		if err := sealTablesMigration(commerceSealedTables)(ctx, tx); err != nil {
			return err
		}
		return ownedTables(ctx, tx, nil,
			`CREATE INDEX IF NOT EXISTS socialcrm_crm_invoice_recipients_email ON socialcrm_crm_invoice_recipients (tenant_id, email_index)`)
	}}}
}

// commerceModels are the tenant-owned models of the commerce records.
func commerceModels() []any {
	return []any{(*Client)(nil), (*ClientMember)(nil), (*Campaign)(nil), (*Proposal)(nil), (*ProposalRevision)(nil),
		(*ProposalEvent)(nil), (*Invoice)(nil), (*invoiceRecipient)(nil), (*Attachment)(nil), (*FieldDef)(nil),
		(*fieldValue)(nil)}
}

// Subject conditions shared by the commerce categories. A client is found
// by "client_id"; a contact by "contact_id"; an invoice and its recipient
// by "invoice_id" (which crm's resolvers find from an e-mail address or
// phone number through the recipients' blind indexes).
const (
	clientCampaigns = "SELECT c.id FROM " + TableCampaigns + " c WHERE c.tenant_id = ?tenant AND c.client_id = ?value"
	clientProposals = "SELECT p.id FROM " + TableProposals + " p WHERE p.tenant_id = ?tenant AND p.client_id = ?value"
	// byOwner finds rows (attachments, custom field values) whose owner
	// record belongs to the client. Invoices are left out: their files
	// and fields are kept with them.
	clientOwned = "(%[1]s_kind = 'client' AND %[1]s_id = ?value)" +
		" OR (%[1]s_kind = 'campaign' AND %[1]s_id IN (" + clientCampaigns + "))" +
		" OR (%[1]s_kind = 'proposal' AND %[1]s_id IN (" + clientProposals + "))"
)

// commerceCategories are the retention categories of the commerce tables,
// in the order erasure must visit them: what refers to a record before the
// record itself.
func commerceCategories() []retention.Category {
	return commerceCategoriesWith(nil)
}

// commerceCategoriesWith returns the categories with the attachment
// category's hooks bound to s's storage: AfterErase deletes the bytes
// once the batch that erased their rows has committed (s nil, or no
// storage: BeforeErase refuses to erase attachments whose bytes it could
// not reach).
func commerceCategoriesWith(s *Store) []retention.Category {
	if s == nil {
		s = &Store{}
	}
	return []retention.Category{
		{Name: categoryFieldValue, Table: TableFieldValues, Time: "updated_at",
			Subject: map[string]string{
				"contact_id": contactOwnedBy("r.record"),
				"client_id":  sprintfOwned("r.record"),
			},
			Omit: s.omitSealed("value_sealed"), Sealed: s.sealedColumns(KindField, "value_sealed", "value"),
			LegalBasis: "contract", Purpose: "custom field values of CRM records"},
		{Name: categoryAttachment, Table: TableAttachments, Time: "created_at",
			Subject: map[string]string{
				"contact_id": contactOwnedBy("r.owner"),
				"client_id":  sprintfOwned("r.owner"),
			},
			BeforeErase: s.requireStorage,
			AfterErase:  s.deleteBytes,
			Files:       s.attachmentFilesOrNil(),
			Omit:        s.omitSealed("file_name_sealed"), Sealed: s.sealedColumns(KindAttachment, "file_name_sealed", "file_name"),
			LegalBasis: "contract", Purpose: "files attached to CRM records; erasing one deletes its bytes from storage once the rows are gone"},
		{Name: "crm.proposal_revision", Table: TableProposalRevisions, Time: "created_at",
			Subject: map[string]string{"client_id": "r.proposal_id IN (" + clientProposals + ")"},
			Omit:    s.omitSealed("title_sealed", "body_sealed"), Sealed: s.sealedColumns(KindProposal, "title_sealed", "title", "body_sealed", "body"),
			LegalBasis: "contract", Purpose: "revisions of proposals to clients"},
		{Name: "crm.proposal_event", Table: TableProposalEvents, Time: "at",
			Subject: map[string]string{"client_id": "r.proposal_id IN (" + clientProposals + ")"},
			Omit:    s.omitSealed("note_sealed"), Sealed: s.sealedColumns(KindProposal, "note_sealed", "note"),
			LegalBasis: "contract", Purpose: "status history of proposals to clients (who changed what, when)"},
		{Name: "crm.proposal", Table: TableProposals, Time: "updated_at",
			Subject: map[string]string{"client_id": "client_id"},
			Omit:    s.omitSealed("title_sealed", "body_sealed"), Sealed: s.sealedColumns(KindProposal, "title_sealed", "title", "body_sealed", "body"),
			LegalBasis: "contract", Purpose: "proposals to clients"},
		{Name: "crm.campaign", Table: TableCampaigns, Time: "updated_at",
			Subject:    map[string]string{"client_id": "client_id"},
			LegalBasis: "contract", Purpose: "campaigns run for clients"},
		{Name: CategoryInvoice, Table: TableInvoices, Time: "dated_at", BeforeErase: s.eraseInvoiceDependents,
			Subject: map[string]string{
				"client_id":    "client_id",
				"contact_id":   "r.id IN (SELECT x.invoice_id FROM " + TableInvoiceRecipients + " x WHERE x.tenant_id = ?tenant AND x.contact_id = ?value)",
				SubjectInvoice: "id",
			},
			Omit: s.omitSealed(invoiceSealedColumns...),
			Sealed: s.sealedColumns(KindInvoice, "lines_sealed", "lines", "bill_to_name_sealed", "bill_to_name",
				"bill_to_address_sealed", "bill_to_address", "bill_to_tax_id_sealed", "bill_to_tax_id"),
			LegalBasis: "legal obligation (tax and commercial law: invoices kept 7 years)",
			Purpose: "invoices with line items, totals and payment status; kept whole for the legal period " +
				"(number, dates, amounts, lines, and the customer's name, address and tax id, which the law requires on an invoice); " +
				"the recipient's e-mail, phone and contact link are in billing.invoice_recipient and erased on request"},
		{Name: CategoryInvoiceRecipient, Table: TableInvoiceRecipients, ID: "invoice_id", Time: "created_at",
			Subject: map[string]string{"contact_id": "contact_id", SubjectInvoice: "invoice_id",
				"client_id": "r.invoice_id IN (SELECT i.id FROM " + TableInvoices + " i WHERE i.tenant_id = ?tenant AND i.client_id = ?value)"},
			Omit:       append([]string{"email_index", "phone_index"}, s.omitSealed("email_sealed", "phone_sealed")...),
			Sealed:     s.sealedColumns(KindInvoice, "email_sealed", "recipient_email", "phone_sealed", "recipient_phone"),
			LegalBasis: "contract", Purpose: "where an invoice is sent (e-mail, phone, contact): not required on the invoice, erased on request while the invoice is kept"},
		{Name: "crm.client_member", Table: TableClientMembers, ID: "member_id", Time: "created_at",
			// Found by the client's id, and by the member's (a portal
			// user asking for her own data).
			Subject:    map[string]string{"client_id": "client_id", retention.SubjectMember: "member_id"},
			LegalBasis: "contract", Purpose: "which members see which client's records in the client portal"},
		{Name: "crm.client", Table: TableClients, Time: "updated_at",
			Subject:    map[string]string{"client_id": "id"},
			Omit:       s.omitSealed("name_sealed", "email_sealed", "phone_sealed"),
			Sealed:     s.sealedColumns(KindClient, "name_sealed", "name", "email_sealed", "email", "phone_sealed", "phone"),
			LegalBasis: "contract", Purpose: "the tenant's clients (customer organizations) and their billing contact details"},
		// The same rows seen from a person whose e-mail address or phone
		// number is a client's billing contact: her details only.
		{Name: CategoryClientContact, Table: TableClients, Time: "updated_at",
			Subject:    map[string]string{SubjectClientContact: "id"},
			Omit:       append([]string{"name_sealed"}, s.omitSealed("email_sealed", "phone_sealed")...),
			Sealed:     s.sealedColumns(KindClient, "email_sealed", "email", "phone_sealed", "phone"),
			Erase:      retention.Erase{Anonymize: map[string]any{"email_sealed": nil, "phone_sealed": nil}},
			LegalBasis: "contract", Purpose: "a client's billing e-mail address and phone number, which are a person's: " +
				"cleared on her request, the client and its records kept"},
		{Name: "crm.custom_field", Table: TableFieldDefs, Time: "updated_at",
			LegalBasis: "contract", Purpose: "definitions of custom fields (no personal data)"},
	}
}

// eraseInvoiceDependents is the invoice category's BeforeErase hook: when
// invoices go (their legal period over), their recipients, custom field
// values and attachments go with them; the attachments' bytes go at the
// engine's next visit of the tenant, once the batch has committed
// (deleteDependents).
func (s *Store) eraseInvoiceDependents(ctx context.Context, tx bun.Tx, ids []string) error {
	if _, err := s.deleteDependents(ctx, tx, KindInvoice, ids); err != nil {
		return err
	}
	if _, err := tx.NewDelete().Model((*invoiceRecipient)(nil)).Where("?TableAlias.invoice_id IN (?)", bun.In(ids)).Exec(ctx); err != nil {
		return fmt.Errorf("crm: erase invoice recipients: %w", err)
	}
	return nil
}

// deleteDependents deletes what hangs off records of kind that are being
// deleted: their custom field values and their attachments. It returns
// the attachments deleted, whose bytes must go once tx has committed
// (dropBytes): until then a failure (or a caller that went away) rolls
// back the rows and leaves the bytes as they were. tx records the bytes'
// deletion as due (retention.RecordAfterErase), so that a crash after the
// commit leaves it to the retention engine's next run.
func (s *Store) deleteDependents(ctx context.Context, tx bun.IDB, kind string, ids []string) ([]string, error) {
	var atts []string
	if err := tx.NewSelect().Model((*Attachment)(nil)).Column("id").Apply(tenancy.Scope(ctx)).
		Where("?TableAlias.owner_kind = ?", kind).Where("?TableAlias.owner_id IN (?)", bun.In(ids)).
		Scan(ctx, &atts); err != nil {
		return nil, fmt.Errorf("crm: delete %s attachments: %w", kind, err)
	}
	if len(atts) > 0 {
		if s.storage == nil {
			return nil, fmt.Errorf("%w: attachments cannot be erased without their storage (WithStorage)", ErrConfig)
		}
		if err := retention.RecordAfterErase(ctx, tx, categoryAttachment, atts, s.clock()); err != nil {
			return nil, err
		}
	}
	for i, q := range []*bun.DeleteQuery{
		tx.NewDelete().Model((*Attachment)(nil)).Where("?TableAlias.owner_kind = ?", kind).Where("?TableAlias.owner_id IN (?)", bun.In(ids)),
		tx.NewDelete().Model((*fieldValue)(nil)).Where("?TableAlias.record_kind = ?", kind).Where("?TableAlias.record_id IN (?)", bun.In(ids)),
	} {
		res, err := q.Exec(ctx)
		if err != nil {
			return nil, fmt.Errorf("crm: delete %s dependents: %w", kind, err)
		}
		// Within a retention hook, the rows count in its receipt.
		if n, err := res.RowsAffected(); err == nil {
			retention.CountErased(ctx, []string{categoryAttachment, categoryFieldValue}[i], n)
		}
	}
	return atts, nil
}

// dropBytes deletes the stored bytes of the attachments ids, whose rows a
// committed transaction deleted (deleteDependents), then clears their
// after-erase records; it runs even when ctx has ended, the deletion being
// committed. An error says the delete committed but the bytes wait for
// the retention engine's next run.
func (s *Store) dropBytes(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	if err := s.deleteBytes(ctx, ids); err != nil {
		return fmt.Errorf("crm: deleted; the files' bytes are left to the retention engine's next run: %w", err)
	}
	if err := retention.ClearAfterErase(ctx, s.db, categoryAttachment, ids); err != nil {
		return fmt.Errorf("crm: deleted: %w", err)
	}
	return nil
}

// reassignAttachments keeps the client of a record's attachments in step
// when the record moves to another client, so that the client portal shows
// them to the new client only.
func reassignAttachments(ctx context.Context, tx bun.IDB, kind, id, clientID string) error {
	if _, err := tx.NewUpdate().Model((*Attachment)(nil)).Set("client_id = ?", clientID).
		Where("?TableAlias.owner_kind = ?", kind).Where("?TableAlias.owner_id = ?", id).Exec(ctx); err != nil {
		return fmt.Errorf("crm: reassign %s attachments: %w", kind, err)
	}
	return nil
}

// contactOwnedBy finds rows (attachments, custom field values, with the
// column prefix given) that belong to a contact or to its notes, tasks,
// activities and deals. The contact's erasure deletes them: the notes,
// tasks and activities go too, and the deals, which stay anonymized in the
// figures, lose what was attached to them while they named the person — a
// file or a custom field value of a sale (a contract, a size, an address)
// is as personal as its title, which is erased. These categories come
// before the deals' in erasure order, while the deals still name the
// contact.
func contactOwnedBy(prefix string) string {
	cond := "(" + prefix + "_kind = 'contact' AND " + prefix + "_id = ?value)"
	for _, kt := range [][2]string{{kindNote, TableNotes}, {kindTask, TableTasks}, {kindActivity, TableActivities}, {kindDeal, TableDeals}} {
		kind, table := kt[0], kt[1]
		cond += " OR (" + prefix + "_kind = '" + kind + "' AND " + prefix + "_id IN (SELECT x.id FROM " + table +
			" x WHERE x.tenant_id = ?tenant AND x.contact_id = ?value))"
	}
	return "(" + cond + ")"
}

func sprintfOwned(prefix string) string {
	return "(" + strings.ReplaceAll(clientOwned, "%[1]s", prefix) + ")"
}

// Categories returns the retention categories of every crm table, like the
// package's Categories, with the attachment category's BeforeErase hook
// bound to the Store's storage, so that erasing an attachment deletes its
// bytes, and the contact's sealed e-mail address and phone number declared
// as retention.SealedColumn opened with the Store's vault, so that a
// data-subject export holds them in clear. Register these (not the package's Categories) with the retention
// engine of an application that keeps attachments.
func (s *Store) Categories() []retention.Category {
	return withClear(append(commerceCategoriesWith(s), coreCategoriesWith(s)...))
}

// commerceSealedColumns are the sealed columns of the commerce tables.
func commerceSealedColumns() []vault.Column { return nil }

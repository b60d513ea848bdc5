package crm

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// Subject identifier kinds the crm categories understand, for
// retention.Request.Subject.
const (
	// SubjectContact is a contact's id. A request may name the person by
	// her e-mail address or phone number instead (SubjectEmail,
	// SubjectPhone): Store.Resolvers turns them into contact ids.
	SubjectContact = "contact_id"
	// SubjectThread is a conversation's thread id on its platform (a
	// Messenger PSID), for a person known only there. Thread ids are
	// sealed, so no category matches them in SQL: resolve one to its
	// conversations with Conversations.FindThread (a blind-index lookup)
	// and name those by SubjectConversation.
	SubjectThread = "thread_id"
	// SubjectConversation is a conversation's id: the conversation and its
	// messages.
	SubjectConversation = "conversation_id"
)

// coreCategories are the retention categories of the core tables. They
// are registered in an order that lets each erasure find every row:
// records reached through a parent (messages through their conversation,
// stage changes through their deal) come before that parent, and the
// contact comes last.
func coreCategories() []retention.Category { return coreCategoriesWith(nil) }

// coreCategoriesWith returns the core categories; with a Store, the
// contact's sealed e-mail address and phone number are declared as
// retention.SealedColumn opened with s's vault, so that a data-subject
// export holds them in clear. Without one (the package's Categories)
// they are left out of exports, which cannot open them.
func coreCategoriesWith(s *Store) []retention.Category {
	const (
		basis   = "contract or legitimate interest (customer relationship)"
		byConv  = "r.conversation_id IN (SELECT c.id FROM " + TableConversations + " c WHERE c.tenant_id = ?tenant AND c.contact_id = ?value)"
		perDeal = "r.deal_id IN (SELECT d.id FROM " + TableDeals + " d WHERE d.tenant_id = ?tenant AND d.contact_id = ?value)"
	)
	byContact := map[string]string{SubjectContact: "contact_id"}
	return []retention.Category{
		{Name: "crm.message", Table: TableMessages, Time: "sent_at",
			Subject:    map[string]string{SubjectContact: byConv, SubjectConversation: "conversation_id"},
			Omit:       s.omitSealed("text_sealed", "attachments_sealed"),
			Sealed:     s.sealedColumns(kindMessage, "text_sealed", "text", "attachments_sealed", "attachments"),
			LegalBasis: basis, Purpose: "messages exchanged with a contact on a messaging channel"},
		{Name: "crm.conversation", Table: TableConversations, Time: "last_message_at",
			Subject:     map[string]string{SubjectContact: "contact_id", SubjectConversation: "id"},
			Omit:        append(s.omitSealed("thread_sealed"), "thread_index"),
			Sealed:      s.sealedColumns(kindConversation, "thread_sealed", "thread_id"),
			BeforeErase: eraseMessages, TimeIndex: conversationDue, Derived: conversationExact,
			LegalBasis: basis, Purpose: "conversation threads with a contact (platform thread id such as a Messenger PSID)"},
		{Name: "crm.consent_event", Table: TableConsentEvents, Time: "at", Subject: byContact,
			Omit: s.omitSealed("source_sealed"), Sealed: s.sealedColumns(kindConsent, "source_sealed", "source"),
			LegalBasis: "legal obligation (proof of consent) while the contact exists", Purpose: "history of a contact's consent per channel and purpose"},
		{Name: "crm.consent", Table: TableConsents, Time: "updated_at", Subject: byContact,
			Omit: s.omitSealed("source_sealed"), Sealed: s.sealedColumns(kindConsent, "source_sealed", "source"),
			LegalBasis: "consent", Purpose: "a contact's current consent per channel and purpose"},
		{Name: "crm.notification", Table: TableNotifications, Time: "sent_at", Subject: byContact,
			LegalBasis: "consent", Purpose: "which birthday and campaign notifications a contact was sent, so that none repeats"},
		{Name: "crm.contact_tag", Table: TableContactTags, Time: "updated_at", Subject: byContact,
			Omit:       []string{"tag_index"}, // a blind index: the tags are exported with the contact
			LegalBasis: basis, Purpose: "blind index of a contact's tags"},
		{Name: "crm.contact_name", Table: TableContactNames, ID: "contact_id", Subject: byContact, HeldWith: "crm.contact",
			SubjectIndex: contactNamesByToken, Lookup: "token", // no index on contact_id: contactNamesByToken
			Omit:       []string{"token"}, // a blind index: the name is exported with the contact
			LegalBasis: basis, Purpose: "blind index of the prefixes of a contact's name, for search (kept from the contact row by triggers)"},
		{Name: "crm.activity", Table: TableActivities, Time: "occurred_at", Subject: byContact, BeforeErase: s.eraseDependentsOf(kindActivity),
			Omit: s.omitSealed("subject_sealed", "body_sealed"), Sealed: s.sealedColumns(kindActivity, "subject_sealed", "subject", "body_sealed", "body"),
			LegalBasis: basis, Purpose: "timeline of calls, e-mails, messages and meetings with a contact"},
		{Name: "crm.task", Table: TableTasks, Time: "updated_at", Subject: byContact, BeforeErase: s.eraseDependentsOf(kindTask),
			Omit: s.omitSealed("title_sealed", "description_sealed"), Sealed: s.sealedColumns(kindTask, "title_sealed", "title", "description_sealed", "description"),
			LegalBasis: basis, Purpose: "work to do about a contact"},
		{Name: "crm.note", Table: TableNotes, Time: "updated_at", Subject: byContact, BeforeErase: s.eraseDependentsOf(kindNote),
			Omit: s.omitSealed("body_sealed"), Sealed: s.sealedColumns(kindNote, "body_sealed", "body"),
			LegalBasis: basis, Purpose: "notes about a contact"},
		{Name: "crm.deal_stage_change", Table: TableStageChanges, Time: "changed_at",
			Subject:    map[string]string{SubjectContact: perDeal},
			LegalBasis: basis, Purpose: "stage history of a contact's deals"},
		{Name: "crm.deal", Table: TableDeals, Time: "updated_at", Subject: byContact, BeforeErase: s.eraseDependentsOf(kindDeal),
			// The sale stays in the figures; nothing in it names the person.
			Erase: retention.Erase{Anonymize: map[string]any{"contact_id": nil, "title_sealed": nil}},
			Omit:  s.omitSealed("title_sealed"), Sealed: s.sealedColumns(kindDeal, "title_sealed", "title"),
			LegalBasis: basis, Purpose: "sales in progress with a contact"},
		{Name: "crm.company", Table: TableCompanies, Time: "updated_at",
			LegalBasis: "legitimate interest", Purpose: "organizations the tenant deals with (no data of a person)"},
		{Name: "crm.pipeline", Table: TablePipelines, Time: "updated_at",
			LegalBasis: "legitimate interest", Purpose: "the tenant's sales processes (no personal data)"},
		contactMergeCategory(),
		contactCategory(s),
	}
}

// contactCategory is the category of contacts. The blind indexes only
// repeat what is exported, and are left out; the profile (every personal
// field, sealed together) is exported opened, one column per field, when s
// is not nil, left out otherwise.
func contactCategory(s *Store) retention.Category {
	var sealed []retention.SealedColumn
	if s != nil && s.vault != nil {
		sealed = []retention.SealedColumn{{Column: "profile_sealed", Fields: profileFields, OpenFields: s.openProfileFields}}
	}
	return retention.Category{Name: "crm.contact", Table: TableContacts, Time: "updated_at",
		Subject:     map[string]string{SubjectContact: "id"},
		BeforeErase: s.eraseContact,
		Omit:        append([]string{"email_index", "phone_index", "birth_index", "name_index"}, s.omitSealed("profile_sealed")...),
		Sealed:      sealed,
		LegalBasis:  "contract or legitimate interest (customer relationship)",
		Purpose:     "contacts: people the tenant deals with, their stage, source and preferences"}
}

// openProfileFields opens a contact's profile for a data-subject export:
// the values of profileFields, each a string (UTM, birthday, preferences
// and tags as JSON) or nil when empty.
func (s *Store) openProfileFields(ctx context.Context, tenantID, id string, sealed []byte) ([]any, error) {
	if tid, err := tenancy.TenantID(ctx); err != nil || tid != tenantID {
		return nil, fmt.Errorf("crm: open sealed %s %s: the context does not act on tenant of the export", kindContact, profileField)
	}
	v, err := vault.ParseSealed(sealed)
	if err != nil {
		return nil, fmt.Errorf("crm: open sealed %s %s: %w", kindContact, profileField, err)
	}
	c := Contact{ProfileSealed: v}
	c.ID = id
	op := s.vault.Opener(ctx)
	if err := openProfile(&op, &c); err != nil {
		return nil, err
	}
	text := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	value := func(v any, empty bool) (any, error) {
		if empty {
			return nil, nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("crm: open sealed %s %s: %w", kindContact, profileField, err)
		}
		return string(b), nil
	}
	out := []any{text(c.FirstName), text(c.LastName), text(c.Email), text(c.Phone)}
	for _, f := range []struct {
		v     any
		empty bool
	}{{c.UTM, c.UTM == UTM{}}, {c.Birthday, c.Birthday.IsZero()}, {c.Preferences, len(c.Preferences) == 0}, {c.Tags, len(c.Tags) == 0}} {
		j, err := value(f.v, f.empty)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// clearColumns says, per category, which columns stay in clear and why
// (Category.Clear, for the data map).
var clearColumns = map[string]string{
	"crm.contact": "ids, times, version, stage and source (the tenant's own vocabulary, for filters), company and owner ids; " +
		"blind indexes (keyed hashes) of e-mail, phone and birthday month-day, for exact look-ups, and of name-word prefixes, for name search; " +
		"every personal field (names, e-mail, phone, UTM, birthday, preferences, tags) is sealed together in profile_sealed",
	"crm.contact_tag":        "contact id and the tag's blind index, for tag filters",
	"crm.contact_name":       "contact id and blind indexes of name-word prefixes, for name search",
	"crm.note":               "ids and times",
	"crm.task":               "ids, times, status and due date (for work lists)",
	"crm.activity":           "ids, kind, direction, external id (idempotency), times and duration",
	"crm.deal":               "ids, pipeline, stage, status, amount and currency (for the figures), times",
	"crm.conversation":       "ids, channel, account (the tenant's page), times and the thread id's blind index (to find a thread)",
	"crm.message":            "ids, direction, platform message id (idempotency), times and delivery status",
	"crm.consent":            "ids, channel, purpose, granted and time (to select audiences)",
	"crm.consent_event":      "ids, channel, purpose, action, actor and time",
	"crm.custom_field_value": "ids of the record and the field definition, time",
	"crm.attachment":         "ids, owner, content type, size, SHA-256 and author; the bytes are sealed in the storage",
	CategoryInvoice:          "number, ids, currency, status, amounts and dates (billing figures and the legal period)",
	CategoryInvoiceRecipient: "invoice and contact ids, time; blind indexes of e-mail and phone",
	"crm.proposal":           "ids, status, revision, amount and currency, times",
	"crm.proposal_revision":  "ids, number, amount, currency, author and time",
	"crm.proposal_event":     "ids, statuses, revision, actor and time",
	"crm.client":             "ids and times",
	CategoryClientContact:    "ids and times (the e-mail address and phone number are sealed)",
}

// withClear sets Category.Clear on cats from clearColumns.
func withClear(cats []retention.Category) []retention.Category {
	for i := range cats {
		cats[i].Clear = clearColumns[cats[i].Name]
	}
	return cats
}

// omitSealed returns cols when s cannot open them (the package's
// Categories, without a vault): they are left out of exports.
func (s *Store) omitSealed(cols ...string) []string {
	if s == nil || s.vault == nil {
		return cols
	}
	return nil
}

// sealedColumns declares the sealed columns colsAndFields (column, field
// bound, column, field bound, …) of kind, opened with s's vault and
// exported under the field's name; nil when s cannot open them.
func (s *Store) sealedColumns(kind string, colsAndFields ...string) []retention.SealedColumn {
	if s == nil || s.vault == nil {
		return nil
	}
	var out []retention.SealedColumn
	for i := 0; i+1 < len(colsAndFields); i += 2 {
		out = append(out, retention.SealedColumn{Column: colsAndFields[i], As: colsAndFields[i+1], Open: s.openSealed(kind, colsAndFields[i+1])})
	}
	return out
}

// openSealed returns a retention.SealedColumn's Open for a sealed field
// of kind, with the binding its repository seals it with.
func (s *Store) openSealed(kind, field string) func(ctx context.Context, tenantID, id string, sealed []byte) (string, error) {
	return func(ctx context.Context, tenantID, id string, sealed []byte) (string, error) {
		if tid, err := tenancy.TenantID(ctx); err != nil || tid != tenantID {
			return "", fmt.Errorf("crm: open sealed %s %s: the context does not act on tenant of the export", kind, field)
		}
		v, err := vault.ParseSealed(sealed)
		if err != nil {
			return "", fmt.Errorf("crm: open sealed %s %s: %w", kind, field, err)
		}
		sec, err := s.vault.Open(ctx, v, vault.Binding{Record: id, Field: field})
		if err != nil {
			return "", fmt.Errorf("crm: open sealed %s %s: %w", kind, field, err)
		}
		defer sec.Wipe()
		return string(sec.Reveal()), nil
	}
}

// eraseContactTags deletes the tag rows of contacts being erased, in the
// same transaction, after the batch has locked the contacts' rows: tags
// written by an update that committed after the erasure's crm.contact_tag
// batches (Contacts.Update rewrites them, under the contact's row lock)
// go with the contact, as Contacts.Delete takes them
// (TestS15LockOrderCompositeWritesDuringErasure).
var eraseContactTags = eraseRowsOf("crm.contact_tag", TableContactTags, "contact_id", "tags of erased contacts")

// eraseDependentsOf returns the BeforeErase hook of the category of
// records of kind (notes, tasks, activities, deals) that deletes, in the
// batch's transaction, the attachments and custom field values hanging
// off the batch's records (deleteDependents; the attachments' bytes go
// once the batch has committed). The attachment and custom field value
// categories find such rows through their owners, and come first in an
// erasure: a file attached while the erasure is past them would
// otherwise outlive its owner with nothing left to find it by
// (TestS16EraseTakesFilesAttachedMidRun). A Store without storage (the
// package's Categories) refuses to erase records with attachments
// (ErrConfig), as the attachment category does.
func (s *Store) eraseDependentsOf(kind string) func(ctx context.Context, tx bun.Tx, ids []string) error {
	if s == nil {
		s = &Store{}
	}
	return func(ctx context.Context, tx bun.Tx, ids []string) error {
		_, err := s.deleteDependents(ctx, tx, kind, ids)
		return err
	}
}

// eraseContact is the contact category's BeforeErase hook: the batch's
// contacts' tags (eraseContactTags) and their attachments and custom
// field values (eraseDependentsOf).
func (s *Store) eraseContact(ctx context.Context, tx bun.Tx, ids []string) error {
	if err := eraseContactTags(ctx, tx, ids); err != nil {
		return err
	}
	if err := eraseMerges(ctx, tx, ids); err != nil { // merge.go
		return err
	}
	return s.eraseDependentsOf(kindContact)(ctx, tx, ids)
}

// eraseMessages deletes the messages of conversations being erased, in the
// same transaction.
var eraseMessages = eraseRowsOf("crm.message", TableMessages, "conversation_id", "messages of erased conversations")

// eraseRowsOf returns a retention.Category.BeforeErase hook that deletes,
// in the batch's transaction, the context tenant's rows of table (of
// category, whose count they add to: retention.CountErased) whose column
// names one of the batch's rows; what names them in its errors.
func eraseRowsOf(category, table, column, what string) func(ctx context.Context, tx bun.Tx, ids []string) error {
	return func(ctx context.Context, tx bun.Tx, ids []string) error {
		tid, err := tenancy.TenantID(ctx)
		if err != nil {
			return err
		}
		res, err := tx.NewDelete().TableExpr(table).
			Where("tenant_id = ?", tid).Where("? IN (?)", bun.Ident(column), bun.In(ids)).Exec(ctx)
		if err != nil {
			return fmt.Errorf("crm: erase %s: %w", what, err)
		}
		if n, err := res.RowsAffected(); err == nil {
			retention.CountErased(ctx, category, n)
		}
		return nil
	}
}

// contactNamesByToken is the name index rows' retention.Category.SubjectIndex.
// On PostgreSQL TableContactNames has one b-tree, on token (migration
// 20261211010000 dropped the one on contact_id): a contact's rows are
// found through it by the tokens of the contact's name_index, every one
// of which the triggers wrote a row of, or none (pgNameIndexFunc: a
// contact's rows are always tokens of its name_index), with the contact's
// id among those tokens' rows. An erasure erases them before the
// contact (coreCategories' order), counting them; the contact's delete
// trigger then finds none left, or those a rename committed meanwhile
// wrote. A batch deletes the rows it selected through the token b-tree
// too (retention.Category.Lookup: a contact has one row per token). SQLite
// keeps no rows there (its name index is TableContactNameFTS).
func contactNamesByToken(d dialect.Name) map[string]string {
	if d != dialect.PG {
		return nil
	}
	return map[string]string{SubjectContact: "r.token = ANY(CAST((SELECT c.name_index FROM " + TableContacts +
		" c WHERE c.tenant_id = ?tenant AND c.id = ?value) AS TEXT[]))"}
}

// conversationDue is the conversations' retention.Category.TimeIndex. On
// PostgreSQL no index holds a conversation's exact last message time (it
// went so that a message's update of its conversation can be heap-only:
// conversationsHotMigration); the sweep's condition on it alone made the
// server read every conversation of the tenant, due or not — a sequential
// scan of the table among 10,100 conversations, 20 of them due
// (TestConversationSweepUsesAnIndexRange). The day the server keeps of
// that time, last_message_day (whole days since 1970-01-01 UTC,
// conversationsDayMigration), is indexed with the tenant: a row whose time
// is at or before cutoff has a day at or before cutoff's, so the sweep
// reads the tenant's rows of those days along that index, and Time's own
// condition keeps the exact cutoff. Ingest writes the stored time only
// when its hour changes (pgConversations), so a conversation is due only
// when none of its messages, found through their index by conversation
// and time, was sent after cutoff. SQLite indexes the exact time.
func conversationDue(d dialect.Name, cutoff time.Time) (string, []any) {
	if d != dialect.PG {
		return "", nil
	}
	return "r.last_message_day <= ? AND NOT EXISTS (SELECT FROM " + TableMessages + " AS m WHERE m.tenant_id = r.tenant_id" +
		" AND m.conversation_id = r.id AND m.sent_at > ?)", []any{unixDay(cutoff), cutoff}
}

// conversationExact gives a data-subject export of conversations on
// PostgreSQL the exact last message time, derived as every read derives it
// (pgConversations): the stored time may lag behind the conversation's
// messages within the hour. SQLite stores the exact time.
func conversationExact(d dialect.Name) map[string]string {
	if d != dialect.PG {
		return nil
	}
	return map[string]string{"last_message_at": pgLastMessageAt("r", "?tenant")}
}

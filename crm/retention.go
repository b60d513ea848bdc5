package crm

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"

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
	// Messenger PSID), for a person known only there.
	SubjectThread = "thread_id"
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
// export holds them in clear (P12). Without one (the package's Categories)
// they are left out of exports, which cannot open them.
func coreCategoriesWith(s *Store) []retention.Category {
	const (
		basis   = "contract or legitimate interest (customer relationship)"
		byConv  = "r.conversation_id IN (SELECT c.id FROM " + TableConversations + " c WHERE c.tenant_id = ?tenant AND c.%s = ?value)"
		perDeal = "r.deal_id IN (SELECT d.id FROM " + TableDeals + " d WHERE d.tenant_id = ?tenant AND d.contact_id = ?value)"
	)
	byContact := map[string]string{SubjectContact: "contact_id"}
	return []retention.Category{
		{Name: "crm.message", Table: TableMessages, Time: "sent_at",
			Subject:    map[string]string{SubjectContact: fmt.Sprintf(byConv, "contact_id"), SubjectThread: fmt.Sprintf(byConv, "thread_id")},
			LegalBasis: basis, Purpose: "messages exchanged with a contact on a messaging channel"},
		{Name: "crm.conversation", Table: TableConversations, Time: "last_message_at",
			Subject:     map[string]string{SubjectContact: "contact_id", SubjectThread: "thread_id"},
			BeforeErase: eraseMessages,
			LegalBasis:  basis, Purpose: "conversation threads with a contact (platform thread id such as a Messenger PSID)"},
		{Name: "crm.consent_event", Table: TableConsentEvents, Time: "at", Subject: byContact,
			LegalBasis: "legal obligation (proof of consent) while the contact exists", Purpose: "history of a contact's consent per channel and purpose"},
		{Name: "crm.consent", Table: TableConsents, Time: "updated_at", Subject: byContact,
			LegalBasis: "consent", Purpose: "a contact's current consent per channel and purpose"},
		{Name: "crm.notification", Table: TableNotifications, Time: "sent_at", Subject: byContact,
			LegalBasis: "consent", Purpose: "which birthday and campaign notifications a contact was sent, so that none repeats"},
		{Name: "crm.contact_tag", Table: TableContactTags, Time: "updated_at", Subject: byContact,
			LegalBasis: basis, Purpose: "index of a contact's tags"},
		{Name: "crm.activity", Table: TableActivities, Time: "occurred_at", Subject: byContact,
			LegalBasis: basis, Purpose: "timeline of calls, e-mails, messages and meetings with a contact"},
		{Name: "crm.task", Table: TableTasks, Time: "updated_at", Subject: byContact,
			LegalBasis: basis, Purpose: "work to do about a contact"},
		{Name: "crm.note", Table: TableNotes, Time: "updated_at", Subject: byContact,
			LegalBasis: basis, Purpose: "notes about a contact"},
		{Name: "crm.deal_stage_change", Table: TableStageChanges, Time: "changed_at",
			Subject:    map[string]string{SubjectContact: perDeal},
			LegalBasis: basis, Purpose: "stage history of a contact's deals"},
		{Name: "crm.deal", Table: TableDeals, Time: "updated_at", Subject: byContact,
			// The sale stays in the figures; nothing in it names the person.
			Erase:      retention.Erase{Anonymize: map[string]any{"contact_id": nil, "title": "erased"}},
			LegalBasis: basis, Purpose: "sales in progress with a contact"},
		{Name: "crm.company", Table: TableCompanies, Time: "updated_at",
			LegalBasis: "legitimate interest", Purpose: "organizations the tenant deals with (no data of a person)"},
		{Name: "crm.pipeline", Table: TablePipelines, Time: "updated_at",
			LegalBasis: "legitimate interest", Purpose: "the tenant's sales processes (no personal data)"},
		contactCategory(s),
	}
}

// contactCategory is the category of contacts. The blind indexes and
// folded names only repeat what is exported, and are left out; the sealed
// e-mail address and phone number are exported opened when s is not nil,
// left out otherwise.
func contactCategory(s *Store) retention.Category {
	c := retention.Category{Name: "crm.contact", Table: TableContacts, Time: "updated_at",
		Subject:    map[string]string{SubjectContact: "id"},
		Omit:       []string{"email_index", "phone_index", "name_fold", "last_fold"},
		LegalBasis: "contract or legitimate interest (customer relationship)",
		Purpose:    "contacts: people the tenant deals with, their stage, source and preferences"}
	if s == nil || s.vault == nil {
		c.Omit = append(c.Omit, "email_sealed", "phone_sealed")
		return c
	}
	c.Sealed = []retention.SealedColumn{
		{Column: "email_sealed", As: "email", Open: s.openSealed("email")},
		{Column: "phone_sealed", As: "phone", Open: s.openSealed("phone")},
	}
	return c
}

// openSealed returns a retention.SealedColumn's Open for a contact's
// sealed field, with the binding Contacts seals it with.
func (s *Store) openSealed(field string) func(ctx context.Context, tenantID, id string, sealed []byte) (string, error) {
	return func(ctx context.Context, tenantID, id string, sealed []byte) (string, error) {
		if tid, err := tenancy.TenantID(ctx); err != nil || tid != tenantID {
			return "", fmt.Errorf("crm: open sealed %s: the context does not act on tenant of the export", field)
		}
		v, err := vault.ParseSealed(sealed)
		if err != nil {
			return "", fmt.Errorf("crm: open sealed %s: %w", field, err)
		}
		sec, err := s.vault.Open(ctx, v, vault.Binding{Record: id, Field: field})
		if err != nil {
			return "", fmt.Errorf("crm: open sealed %s: %w", field, err)
		}
		defer sec.Wipe()
		return string(sec.Reveal()), nil
	}
}

// eraseMessages deletes the messages of conversations being erased, in the
// same transaction.
func eraseMessages(ctx context.Context, tx bun.Tx, ids []string) error {
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return err
	}
	if _, err := tx.NewDelete().TableExpr(TableMessages).
		Where("tenant_id = ?", tid).Where("conversation_id IN (?)", bun.In(ids)).Exec(ctx); err != nil {
		return fmt.Errorf("crm: erase messages of erased conversations: %w", err)
	}
	return nil
}

package crm

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// Subject identifier kinds the crm categories understand, for
// retention.Request.Subject.
const (
	// SubjectContact is a contact's id. Find it from an e-mail address or
	// phone number with Contacts.List (ContactFilter.Email, Phone): they
	// are sealed, so the retention engine cannot match them itself.
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
func coreCategories() []retention.Category {
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
		{Name: "crm.contact", Table: TableContacts, Time: "updated_at",
			Subject: map[string]string{SubjectContact: "id"},
			// Sealed values are ciphertext the export could not open, and
			// the indexes and folded names only repeat what is exported.
			Omit:       []string{"email_sealed", "email_index", "phone_sealed", "phone_index", "name_fold", "last_fold"},
			LegalBasis: basis, Purpose: "contacts: people the tenant deals with, their stage, source and preferences"},
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

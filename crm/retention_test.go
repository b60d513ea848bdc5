package crm_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/retention"
)

// coreKinds are the categories of the core records that hold a contact's
// data: export and erasure of a contact must reach each of them.
var coreKinds = []string{"crm.message", "crm.conversation", "crm.consent_event", "crm.consent", "crm.notification",
	"crm.contact_tag", "crm.activity", "crm.task", "crm.note", "crm.deal_stage_change", "crm.deal", "crm.contact"}

// commerceKinds are the categories of the commerce records that hold a
// contact's data — directly (her files and custom field values, the
// invoices sent to her) or through the client she is (campaigns,
// proposals, invoices, portal access).
var commerceKinds = []string{"crm.custom_field_value", "crm.attachment", "crm.proposal_revision", "crm.proposal_event",
	"crm.proposal", "crm.campaign", crm.CategoryInvoice, crm.CategoryInvoiceRecipient, "crm.client_member", "crm.client"}

// everyKind is every category of issue #5's record kinds that holds a
// contact's data.
var everyKind = append(append([]string(nil), coreKinds...), commerceKinds...)

// person is a contact with one record of every kind about her.
type person struct {
	contact crm.Contact
	// shop is the client she is (a sole trader), with a campaign, a
	// proposal and an invoice.
	shop shop
	// invoice is an invoice of another client sent to her.
	invoice crm.Invoice
	// files are the attachments of her own records (contact, note, deal,
	// campaign).
	files []crm.Attachment
}

// fillContact creates one record of every core kind about a new contact
// named name, and returns the contact.
func fillContact(t *testing.T, e *env, ctx context.Context, name string) crm.Contact {
	return fillPerson(t, e, ctx, name, false).contact
}

// fillPerson creates a contact named name with one record of every core
// kind and, with commerce, of every commerce kind about her. It needs a
// Store with storage for commerce.
func fillPerson(t *testing.T, e *env, ctx context.Context, name string, commerce bool) person {
	t.Helper()
	s := e.store
	c, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: name, Email: name + "@example.com", Phone: "+1415555" + phoneOf(name), Tags: []string{"vip"},
		Birthday: crm.Birthday{Month: int(fakeclock.Start.Month()), Day: fakeclock.Start.Day()}})
	require.NoError(t, err)
	key := crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page", ThreadID: "psid-" + name}
	m, err := s.Conversations().Record(ctx, crm.NewMessage{Conversation: key, Direction: crm.Inbound, ExternalID: "mid-" + name, Text: "hi", SentAt: fakeclock.Start})
	require.NoError(t, err)
	conv, err := s.Conversations().Get(ctx, m.ConversationID)
	require.NoError(t, err)
	_, err = s.Conversations().LinkContact(ctx, conv.ID, c.ID, conv.Version)
	require.NoError(t, err)
	_, err = s.Consents().Grant(ctx, crm.ConsentChange{ContactID: c.ID, Channel: crm.ChannelEmail, Purpose: crm.PurposeBirthday, Source: "form"})
	require.NoError(t, err)
	sc, err := crm.NewScheduler(s, crm.LogNotifier{})
	require.NoError(t, err)
	_, err = sc.Run(ctx, sc.Birthdays(crm.ChannelEmail))
	require.NoError(t, err)
	_, err = s.Activities().Create(ctx, crm.ActivityInput{Kind: crm.ActivityCall, Direction: crm.Outbound, ContactID: c.ID, OccurredAt: fakeclock.Start})
	require.NoError(t, err)
	_, err = s.Tasks().Create(ctx, crm.TaskInput{Title: "call " + name, ContactID: c.ID})
	require.NoError(t, err)
	_, err = s.Notes().Create(ctx, crm.NoteInput{Body: "about " + name, ContactID: c.ID})
	require.NoError(t, err)
	pl, err := s.Pipelines().Create(ctx, crm.PipelineInput{Name: "p-" + name, Stages: []string{"new", "won"}})
	require.NoError(t, err)
	d, err := s.Deals().Create(ctx, crm.DealInput{PipelineID: pl.ID, Title: "ring for " + name, ContactID: c.ID})
	require.NoError(t, err)
	d.Stage = "won"
	_, err = s.Deals().Update(ctx, d.ID, d.Version, d.DealInput)
	require.NoError(t, err)
	p := person{contact: c}
	if !commerce {
		return p
	}
	p.shop = newShop(t, e, ctx, name+"-studio", "INV-"+name+"-1")
	_, _ = portalMember(t, e, ctx, p.shop.client.ID, name+"@portal.example")
	biller, err := s.Clients().Create(ctx, crm.ClientInput{Name: "biller of " + name})
	require.NoError(t, err)
	in := invoiceInput(biller.ID, "INV-"+name+"-2")
	in.Recipient = &crm.Recipient{ContactID: c.ID, Email: c.Email}
	p.invoice, err = s.Invoices().Create(ctx, in)
	require.NoError(t, err)
	p.invoice, err = s.Invoices().Issue(ctx, p.invoice.ID, p.invoice.Version)
	require.NoError(t, err)
	for _, kind := range []string{"contact", "deal"} {
		_, err = s.Fields().Define(ctx, crm.FieldDefInput{RecordKind: kind, Name: "note_" + name, Type: crm.FieldText})
		require.NoError(t, err)
	}
	_, err = s.Fields().Set(ctx, "contact", c.ID, map[string]any{"note_" + name: "size M"})
	require.NoError(t, err)
	_, err = s.Fields().Set(ctx, "deal", d.ID, map[string]any{"note_" + name: "engraving: " + name})
	require.NoError(t, err)
	note, err := s.Notes().List(ctx, crm.NoteFilter{ContactID: c.ID}, crm.ListOptions{})
	require.NoError(t, err)
	for _, o := range [][2]string{{"contact", c.ID}, {"note", note.Items[0].ID}, {"deal", d.ID}, {crm.KindCampaign, p.shop.campaign.ID}} {
		a, err := s.Attachments().Attach(ctx, crm.AttachmentInput{OwnerKind: o[0], OwnerID: o[1], FileName: o[0] + ".pdf",
			ContentType: "application/pdf"}, strings.NewReader(o[0]+" of "+name))
		require.NoError(t, err)
		p.files = append(p.files, a)
	}
	return p
}

// phoneOf gives each test name its own phone number's last digits.
func phoneOf(name string) string {
	return map[string]string{"ada": "0101", "bob": "0102"}[name]
}

// TestRetentionExportAndEraseReachEveryKind: the data-subject export and
// erasure of a person — a contact who is also a client — reach every
// record kind of issue #5 (core and commerce): her sealed e-mail and phone
// are exported in clear; on erasure her invoices are kept for their legal
// period with the recipient's details erased, her deal stays anonymized
// without its files and custom fields, and every file's bytes leave the
// storage. Another contact and another tenant are untouched.
func TestRetentionExportAndEraseReachEveryKind(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		e, dir := storageEnv(t, db, 0)
		eng := commerceEngine(t, e)

		ada := fillPerson(t, e, e.A, "ada", true)
		bob := fillPerson(t, e, e.A, "bob", true)
		other := fillPerson(t, e, e.B, "ada", true)
		// A conversation with no contact, known by its thread only.
		_, err := e.store.Conversations().Record(e.A, crm.NewMessage{Conversation: crm.ConversationKey{Channel: crm.ChannelInstagram, AccountID: "ig", ThreadID: "igsid-1"},
			Direction: crm.Inbound, Text: "anon", SentAt: fakeclock.Start})
		require.NoError(t, err)

		subject := map[string]string{crm.SubjectContact: ada.contact.ID, "client_id": ada.shop.client.ID}
		r := request(t, e.A, eng, retention.KindExport, subject)
		var zip bytes.Buffer
		man, err := eng.Export(e.A, r.ID, &zip)
		require.NoError(t, err)
		rows := map[string]int64{}
		for _, c := range man.Categories {
			rows[c.Name] = c.Rows
		}
		for _, k := range everyKind {
			require.Positive(t, rows[k], "the export of a contact does not reach %s", k)
		}
		require.Equal(t, int64(2), rows[crm.CategoryInvoice], "her studio's invoice and the one sent to her")
		require.Equal(t, int64(4), rows["crm.attachment"], "the files of her contact, note, deal and campaign")
		require.Equal(t, int64(2), rows["crm.custom_field_value"], "her contact's and her deal's")
		files := contactExport(t, e, e.A, e.store.Categories(), ada.contact.ID)
		require.Contains(t, files["crm.contact.json"], `"email":"ada@example.com"`)
		require.Contains(t, files["crm.contact.json"], `"phone":"+14155550101"`)

		r = request(t, e.A, eng, retention.KindErasure, subject)
		rc, err := eng.Erase(e.A, r.ID)
		require.NoError(t, err)
		erased, kept := map[string]int64{}, map[string]int64{}
		for _, c := range rc.Categories {
			erased[c.Category], kept[c.Category] = c.Erased, c.Kept
		}
		for _, k := range everyKind {
			if k == crm.CategoryInvoice {
				require.Equal(t, int64(2), kept[k], "invoices are kept for their legal period")
				require.Zero(t, erased[k])
				continue
			}
			require.Positive(t, erased[k], "the erasure of a contact does not reach %s", k)
		}

		// Ada is gone everywhere; Bob and the other tenant's Ada are whole.
		_, err = e.store.Contacts().Get(e.A, ada.contact.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		for _, a := range ada.files {
			_, err = e.store.Attachments().Get(e.A, a.ID)
			require.ErrorIs(t, err, crm.ErrNotFound)
			require.NoFileExists(t, filepath.Join(dir, a.TenantID, a.ID), "the bytes of %s's file", a.OwnerKind)
		}
		inv, err := e.store.Invoices().Get(e.A, ada.invoice.ID)
		require.NoError(t, err, "the invoice sent to her is kept")
		require.Nil(t, inv.Recipient, "without her e-mail and contact link")
		require.Equal(t, ada.invoice.Total, inv.Total)
		_, err = e.store.Invoices().Get(e.A, ada.shop.invoice.ID)
		require.NoError(t, err, "her studio's invoice is kept")
		for kind, n := range map[string]int{crm.KindCampaign: 1, crm.KindProposal: 1, crm.KindClient: 3} {
			require.Equal(t, n, countKind(t, e, e.A, kind), "bob's %s, and the billers, are left; her studio's is gone", kind)
		}
		for _, p := range []person{bob, other} {
			ctx, id := e.A, p.contact.ID
			if p.contact.TenantID != ada.contact.TenantID {
				ctx = e.B
			}
			got, err := e.store.Contacts().Get(ctx, id)
			require.NoError(t, err)
			require.NotEmpty(t, got.Email)
			for _, n := range []int{count(t, ctx, e.store.Activities().List, crm.ActivityFilter{ContactID: id}),
				count(t, ctx, e.store.Notes().List, crm.NoteFilter{ContactID: id}),
				count(t, ctx, e.store.Tasks().List, crm.TaskFilter{ContactID: id}),
				count(t, ctx, e.store.Deals().List, crm.DealFilter{ContactID: id}),
				count(t, ctx, e.store.Conversations().List, crm.ConversationFilter{ContactID: id})} {
				require.Equal(t, 1, n)
			}
			h, err := whole(e.store.Consents().History(ctx, id, crm.ListOptions{}))
			require.NoError(t, err)
			require.Len(t, h, 1)
			for _, a := range p.files {
				_, err = e.store.Attachments().Get(ctx, a.ID)
				require.NoError(t, err)
				require.FileExists(t, filepath.Join(dir, a.TenantID, a.ID))
			}
			inv, err := e.store.Invoices().Get(ctx, p.invoice.ID)
			require.NoError(t, err)
			require.NotNil(t, inv.Recipient)
			vals, err := e.store.Fields().Values(ctx, "contact", id)
			require.NoError(t, err)
			require.Len(t, vals, 1)
		}
		h, err := whole(e.store.Consents().History(e.A, ada.contact.ID, crm.ListOptions{}))
		require.NoError(t, err)
		require.Empty(t, h)
		deals, err := e.store.Deals().List(e.A, crm.DealFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, deals.Items, 2, "the erased contact's deal stays, anonymized")
		var titles []string
		for _, d := range deals.Items {
			titles = append(titles, d.Title)
			if d.Title == "" { // anonymized: the sealed title is gone
				vals, err := e.store.Fields().Values(e.A, "deal", d.ID)
				require.NoError(t, err)
				require.Empty(t, vals, "the anonymized deal keeps no custom field value of hers")
				atts, err := e.store.Attachments().List(e.A, "deal", d.ID, crm.ListOptions{})
				require.NoError(t, err)
				require.Empty(t, atts.Items, "nor a file")
			}
		}
		require.ElementsMatch(t, []string{"", "ring for bob"}, titles)
		convs, err := e.store.Conversations().List(e.A, crm.ConversationFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, convs.Items, 2, "bob's and the unlinked one")

		// A person known only by a platform thread id: found by its blind
		// index, then erased by conversation.
		threads, err := e.store.Conversations().FindThread(e.A, "igsid-1")
		require.NoError(t, err)
		require.Len(t, threads, 1)
		r = request(t, e.A, eng, retention.KindErasure, map[string]string{crm.SubjectConversation: threads[0].ID})
		_, err = eng.Erase(e.A, r.ID)
		require.NoError(t, err)
		_, err = e.store.Conversations().Find(e.A, crm.ConversationKey{Channel: crm.ChannelInstagram, AccountID: "ig", ThreadID: "igsid-1"})
		require.ErrorIs(t, err, crm.ErrNotFound)
	}, setup)
}

// countKind counts the tenant's records of a commerce kind.
func countKind(t *testing.T, e *env, ctx context.Context, kind string) int {
	t.Helper()
	table := map[string]string{crm.KindCampaign: crm.TableCampaigns, crm.KindProposal: crm.TableProposals, crm.KindClient: crm.TableClients}[kind]
	return countRows(t, e, ctx, table)
}

func count[F any, T any](t *testing.T, ctx context.Context, list func(context.Context, F, crm.ListOptions) (crm.Page[T], error), f F) int {
	t.Helper()
	p, err := list(ctx, f, crm.ListOptions{Limit: crm.MaxLimit})
	require.NoError(t, err)
	return len(p.Items)
}

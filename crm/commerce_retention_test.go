package crm_test

import (
	"archive/zip"
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// commerceEngine is a retention engine with crm's categories (bound to
// the Store's storage) and the default period of invoices.
func commerceEngine(t testing.TB, e *env) *retention.Engine {
	t.Helper()
	cats := e.store.Categories()
	p := retention.Policy{Name: "invoices kept", Rules: []retention.Rule{
		{Category: crm.CategoryInvoice, Period: 7 * retention.Year, Keep: true}}}
	eng, err := retention.New(e.db.DB, retention.WithClock(e.clock.Now), retention.WithPolicy(p))
	require.NoError(t, err)
	require.NoError(t, eng.Register(cats...))
	for kind, r := range e.store.Resolvers() {
		require.NoError(t, eng.RegisterResolver(kind, r))
	}
	require.NoError(t, eng.Check(context.Background()), "every declared table and column exists")
	uncovered, err := eng.Uncovered(context.Background())
	require.NoError(t, err)
	for _, table := range uncovered {
		require.False(t, strings.HasPrefix(table, crm.TablePrefix) && slices.Contains(commerceTables, table),
			"commerce table %s has no retention category", table)
	}
	return eng
}

var commerceTables = []string{crm.TableClients, crm.TableClientMembers, crm.TableCampaigns, crm.TableProposals,
	crm.TableProposalRevisions, crm.TableProposalEvents, crm.TableInvoices, crm.TableInvoiceRecipients,
	crm.TableAttachments, crm.TableFieldDefs, crm.TableFieldValues}

func request(t testing.TB, ctx context.Context, eng *retention.Engine, kind retention.RequestKind, subject map[string]string) retention.Request {
	t.Helper()
	r, err := eng.Submit(ctx, retention.Request{Kind: kind, Subject: subject})
	require.NoError(t, err)
	r, err = eng.SetVerification(ctx, r.ID, retention.VerificationVerified)
	require.NoError(t, err)
	return r
}

func countRows(t testing.TB, e *env, ctx context.Context, table string) int {
	t.Helper()
	var n int
	err := tenancy.RunInTx(ctx, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewRaw("SELECT count(*) FROM "+table+" WHERE tenant_id = ?", principal(ctx).TenantID).Scan(ctx, &n)
	})
	require.NoError(t, err)
	return n
}

// TestCommerceRetention: the data-subject export and erasure of a contact
// and of a client reach every commerce record; invoices are kept for their
// legal period while the recipient's personal details go; attachment bytes
// are deleted with their metadata; the other tenant is untouched.
func TestCommerceRetention(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		e, dir := storageEnv(t, db, 0)
		s := e.store
		eng := commerceEngine(t, e)
		sh := newShop(t, e, e.A, "acme", "INV-1")
		shB := newShop(t, e, e.B, "acme", "INV-1")
		_, _ = portalMember(t, e, e.A, sh.client.ID, "buyer@acme.example")
		contact, err := s.Contacts().Create(e.A, crm.ContactInput{FirstName: "Ann", Email: "ann@acme.example"})
		require.NoError(t, err)

		// The contact receives an invoice of the client and has a file
		// and a custom field of her own.
		in := invoiceInput(sh.client.ID, "INV-2")
		in.Recipient = &crm.Recipient{ContactID: contact.ID, Email: "ann@acme.example", Phone: "+4930999999"}
		inv2, err := s.Invoices().Create(e.A, in)
		require.NoError(t, err)
		inv2, err = s.Invoices().Issue(e.A, inv2.ID, inv2.Version)
		require.NoError(t, err)
		_, err = s.Fields().Define(e.A, crm.FieldDefInput{RecordKind: "contact", Name: "size", Type: crm.FieldText})
		require.NoError(t, err)
		_, err = s.Fields().Define(e.A, crm.FieldDefInput{RecordKind: crm.KindCampaign, Name: "platform", Type: crm.FieldText})
		require.NoError(t, err)
		_, err = s.Fields().Set(e.A, "contact", contact.ID, map[string]any{"size": "M"})
		require.NoError(t, err)
		_, err = s.Fields().Set(e.A, crm.KindCampaign, sh.campaign.ID, map[string]any{"platform": "tiktok"})
		require.NoError(t, err)
		cAtt, err := s.Attachments().Attach(e.A, crm.AttachmentInput{OwnerKind: "contact", OwnerID: contact.ID, FileName: "id.png", ContentType: "image/png"}, strings.NewReader("png"))
		require.NoError(t, err)
		note, err := s.Notes().Create(e.A, crm.NoteInput{Body: "measurements attached", ContactID: contact.ID})
		require.NoError(t, err)
		noteAtt, err := s.Attachments().Attach(e.A, crm.AttachmentInput{OwnerKind: "note", OwnerID: note.ID, FileName: "sizes.txt", ContentType: "text/plain"}, strings.NewReader("M"))
		require.NoError(t, err)
		campAtt, err := s.Attachments().Attach(e.A, crm.AttachmentInput{OwnerKind: crm.KindCampaign, OwnerID: sh.campaign.ID, FileName: "brief.pdf", ContentType: "application/pdf"}, strings.NewReader("pdf"))
		require.NoError(t, err)
		invAtt, err := s.Attachments().Attach(e.A, crm.AttachmentInput{OwnerKind: crm.KindInvoice, OwnerID: sh.invoice.ID, FileName: "inv.pdf", ContentType: "application/pdf"}, strings.NewReader("pdf"))
		require.NoError(t, err)

		// Export of the contact: her invoice (kept), its recipient, her
		// file and field.
		r := request(t, e.A, eng, retention.KindExport, map[string]string{"contact_id": contact.ID, "email": "ann@acme.example"})
		var buf bytes.Buffer
		m, err := eng.Export(e.A, r.ID, &buf)
		require.NoError(t, err)
		rows := map[string]int64{}
		for _, c := range m.Categories {
			rows[c.Name] = c.Rows
		}
		require.Equal(t, int64(1), rows[crm.CategoryInvoice])
		require.Equal(t, int64(1), rows[crm.CategoryInvoiceRecipient])
		require.Equal(t, int64(2), rows["crm.attachment"], "her file and her note's")
		require.Equal(t, int64(1), rows["crm.custom_field_value"])
		zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		require.NoError(t, err)
		var names []string
		for _, f := range zr.File {
			names = append(names, f.Name)
		}
		require.Contains(t, names, "billing.invoice.csv")

		// Erasure of the contact: the invoice stays whole for its legal
		// period, the recipient's e-mail, phone and contact link go; her
		// file (bytes too) and field values go.
		r = request(t, e.A, eng, retention.KindErasure, map[string]string{"contact_id": contact.ID, "email": "ann@acme.example"})
		rc, err := eng.Erase(e.A, r.ID)
		require.NoError(t, err)
		kept := map[string]int64{}
		for _, c := range rc.Categories {
			kept[c.Category] = c.Kept
		}
		require.Equal(t, int64(1), kept[crm.CategoryInvoice])
		got, err := s.Invoices().Get(e.A, inv2.ID)
		require.NoError(t, err)
		require.Nil(t, got.Recipient, "recipient erased")
		require.Equal(t, "Brand GmbH", got.BillTo.Name, "the name the law requires stays")
		require.Equal(t, inv2.Total, got.Total)
		for _, a := range []crm.Attachment{cAtt, noteAtt} {
			_, err = s.Attachments().Get(e.A, a.ID)
			require.ErrorIs(t, err, crm.ErrNotFound)
			require.NoFileExists(t, filepath.Join(dir, a.TenantID, a.ID))
		}
		_, err = s.Contacts().Get(e.A, contact.ID)
		require.ErrorIs(t, err, crm.ErrNotFound, "the contact is erased")
		require.Equal(t, 1, countRows(t, e, e.A, crm.TableFieldValues), "only the campaign's field value is left")
		other, err := s.Invoices().Get(e.A, sh.invoice.ID)
		require.NoError(t, err)
		require.NotNil(t, other.Recipient, "another recipient is untouched")

		// Erasure of the client: everything of it goes but its invoices,
		// which are kept; their recipients go.
		r = request(t, e.A, eng, retention.KindErasure, map[string]string{"client_id": sh.client.ID})
		rc, err = eng.Erase(e.A, r.ID)
		require.NoError(t, err)
		for _, table := range []string{crm.TableClients, crm.TableClientMembers, crm.TableCampaigns, crm.TableProposals,
			crm.TableProposalRevisions, crm.TableProposalEvents, crm.TableInvoiceRecipients, crm.TableFieldValues} {
			require.Zero(t, countRows(t, e, e.A, table), "%s after the client's erasure", table)
		}
		require.Equal(t, 2, countRows(t, e, e.A, crm.TableInvoices), "invoices kept for the legal period")
		_, err = s.Attachments().Get(e.A, campAtt.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		require.NoFileExists(t, filepath.Join(dir, campAtt.TenantID, campAtt.ID))
		_, err = s.Attachments().Get(e.A, invAtt.ID)
		require.NoError(t, err, "an invoice's file is kept with it")

		// Tenant B is untouched.
		for _, table := range []string{crm.TableClients, crm.TableCampaigns, crm.TableProposals, crm.TableProposalRevisions,
			crm.TableInvoices, crm.TableInvoiceRecipients} {
			require.Equal(t, 1, countRows(t, e, e.B, table), "tenant B's %s", table)
		}
		require.Equal(t, 2, countRows(t, e, e.B, crm.TableProposalEvents), "tenant B's proposal history")
		_, err = s.Invoices().Get(e.B, shB.invoice.ID)
		require.NoError(t, err)

		// After seven years the invoices may go too.
		e.clock.Advance(7*retention.Year + retention.Day)
		r = request(t, e.A, eng, retention.KindErasure, map[string]string{"client_id": sh.client.ID})
		_, err = eng.Erase(e.A, r.ID)
		require.NoError(t, err)
		require.Zero(t, countRows(t, e, e.A, crm.TableInvoices))
		_, err = s.Attachments().Get(e.A, invAtt.ID)
		require.ErrorIs(t, err, crm.ErrNotFound, "an invoice's file goes with it")
		require.NoFileExists(t, filepath.Join(dir, invAtt.TenantID, invAtt.ID))
	}, setup)
}

// TestAttachmentErasureNeedsStorage: the package's Categories, which know
// no storage, refuse to erase attachments rather than leave their bytes
// behind; nothing is erased.
func TestAttachmentErasureNeedsStorage(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		e, dir := storageEnv(t, db, 0)
		sh := newShop(t, e, e.A, "acme", "INV-1")
		att, err := e.store.Attachments().Attach(e.A, crm.AttachmentInput{OwnerKind: crm.KindCampaign, OwnerID: sh.campaign.ID,
			FileName: "brief.pdf", ContentType: "application/pdf"}, strings.NewReader("pdf"))
		require.NoError(t, err)
		eng, err := retention.New(e.db.DB, retention.WithClock(e.clock.Now))
		require.NoError(t, err)
		require.NoError(t, eng.Register(crm.Categories()...))
		r := request(t, e.A, eng, retention.KindErasure, map[string]string{"client_id": sh.client.ID})
		_, err = eng.Erase(e.A, r.ID)
		require.ErrorIs(t, err, crm.ErrConfig)
		_, err = e.store.Attachments().Get(e.A, att.ID)
		require.NoError(t, err, "the batch was rolled back")
		require.FileExists(t, filepath.Join(dir, att.TenantID, att.ID))
	}, setup)
}

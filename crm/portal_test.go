package crm_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

func requireForbidden(t *testing.T, err error, what string) {
	t.Helper()
	var fe *crm.ForbiddenError
	if !errors.As(err, &fe) {
		t.Fatalf("%s returned %v, want *crm.ForbiddenError", what, err)
	}
	require.ErrorIs(t, err, tenancy.ErrForbidden, what)
}

func requireNotFound(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, crm.ErrNotFound) {
		t.Fatalf("%s returned %v, want ErrNotFound", what, err)
	}
}

// TestClientPortal: a member with the client role, linked to one
// client, sees exactly that client's campaigns, proposals and invoices, can
// change nothing but its answer to a proposal sent to it, and can read
// nothing else in its tenant.
func TestClientPortal(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		s := e.store
		mine := newShop(t, e, e.A, "acme", "INV-1")
		other := newShop(t, e, e.A, "globex", "INV-2")
		elsewhere := newShop(t, e, e.B, "acme", "INV-1") // same names in tenant B
		_, cx := portalMember(t, e, e.A, mine.client.ID, "buyer@acme.example")

		// Lists show only its client's records.
		camps, err := s.Campaigns().List(cx, crm.CampaignFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Equal(t, []string{mine.campaign.ID}, campaignIDs(camps.Items))
		camps, err = s.Campaigns().List(cx, crm.CampaignFilter{ClientID: other.client.ID}, crm.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, camps.Items, "a filter naming another client shows nothing")
		props, err := s.Proposals().List(cx, crm.ProposalFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, props.Items, 1)
		require.Equal(t, mine.proposal.ID, props.Items[0].ID)
		invs, err := s.Invoices().List(cx, crm.InvoiceFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, invs.Items, 1)
		require.Equal(t, mine.invoice.ID, invs.Items[0].ID)
		clients, err := s.Clients().List(cx, crm.ClientFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, clients.Items, 1)
		require.Equal(t, mine.client.ID, clients.Items[0].ID)

		// Gets of its own records work; of others' are not found.
		_, err = s.Campaigns().Get(cx, mine.campaign.ID)
		require.NoError(t, err)
		got, err := s.Invoices().Get(cx, mine.invoice.ID)
		require.NoError(t, err)
		require.Equal(t, mine.invoice.Total, got.Total)
		_, err = s.Clients().Get(cx, mine.client.ID)
		require.NoError(t, err)
		hist, err := whole(s.Proposals().History(cx, mine.proposal.ID, crm.ListOptions{}))
		require.NoError(t, err)
		require.Len(t, hist, 1, "the send, not the creation as a draft")
		for _, sh := range []shop{other, elsewhere} {
			_, err = s.Campaigns().Get(cx, sh.campaign.ID)
			requireNotFound(t, err, "Campaigns.Get of another client's campaign")
			_, err = s.Proposals().Get(cx, sh.proposal.ID)
			requireNotFound(t, err, "Proposals.Get of another client's proposal")
			_, err = whole(s.Proposals().Revisions(cx, sh.proposal.ID, crm.ListOptions{}))
			requireNotFound(t, err, "Proposals.Revisions of another client's proposal")
			_, err = s.Invoices().Get(cx, sh.invoice.ID)
			requireNotFound(t, err, "Invoices.Get of another client's invoice")
			_, err = s.Clients().Get(cx, sh.client.ID)
			requireNotFound(t, err, "Clients.Get of another client")
			_, err = s.Fields().Values(cx, crm.KindInvoice, sh.invoice.ID)
			requireNotFound(t, err, "Fields.Values of another client's invoice")
		}

		// Drafts are the tenant's work in progress: not shown.
		draftP, err := s.Proposals().Create(e.A, crm.ProposalInput{ClientID: mine.client.ID,
			ProposalContent: crm.ProposalContent{Title: "Next", Amount: 1, Currency: "EUR"}})
		require.NoError(t, err)
		draftI, err := s.Invoices().Create(e.A, invoiceInput(mine.client.ID, "INV-D"))
		require.NoError(t, err)
		_, err = s.Proposals().Get(cx, draftP.ID)
		requireNotFound(t, err, "a draft proposal")
		_, err = s.Invoices().Get(cx, draftI.ID)
		requireNotFound(t, err, "a draft invoice")
		_, err = s.Fields().Values(cx, crm.KindInvoice, draftI.ID)
		requireNotFound(t, err, "a draft invoice's fields")
		_, err = s.Proposals().Transition(cx, draftP.ID, draftP.Version, crm.ProposalAccepted, "")
		requireForbidden(t, err, "accepting a draft")
		invs, err = s.Invoices().List(cx, crm.InvoiceFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, invs.Items, 1)
		props, err = s.Proposals().List(cx, crm.ProposalFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, props.Items, 1)

		// Writes fail with a typed forbidden error, on its own records and
		// on others', and change nothing.
		for _, sh := range []shop{mine, other} {
			_, err = s.Campaigns().Update(cx, sh.campaign.ID, sh.campaign.Version, sh.campaign.CampaignInput)
			requireForbidden(t, err, "Campaigns.Update")
			requireForbidden(t, s.Campaigns().Delete(cx, sh.campaign.ID), "Campaigns.Delete")
			_, err = s.Proposals().Revise(cx, sh.proposal.ID, sh.proposal.Version, sh.proposal.ProposalContent)
			requireForbidden(t, err, "Proposals.Revise")
			_, err = s.Proposals().Transition(cx, sh.proposal.ID, sh.proposal.Version, crm.ProposalWithdrawn, "")
			requireForbidden(t, err, "Proposals.Transition to withdrawn")
			requireForbidden(t, s.Proposals().Delete(cx, sh.proposal.ID), "Proposals.Delete")
			_, err = s.Invoices().RecordPayment(cx, sh.invoice.ID, sh.invoice.Version, 1)
			requireForbidden(t, err, "Invoices.RecordPayment")
			_, err = s.Invoices().Void(cx, sh.invoice.ID, sh.invoice.Version)
			requireForbidden(t, err, "Invoices.Void")
			requireForbidden(t, s.Invoices().Delete(cx, sh.invoice.ID), "Invoices.Delete")
			_, err = s.Clients().Update(cx, sh.client.ID, sh.client.Version, crm.ClientInput{Name: "x"})
			requireForbidden(t, err, "Clients.Update")
			_, err = s.Fields().Set(cx, crm.KindCampaign, sh.campaign.ID, map[string]any{"x": "y"})
			requireForbidden(t, err, "Fields.Set")
		}
		_, err = s.Proposals().Transition(cx, other.proposal.ID, other.proposal.Version, crm.ProposalAccepted, "")
		requireForbidden(t, err, "accepting another client's proposal")
		_, err = s.Campaigns().Create(cx, crm.CampaignInput{ClientID: mine.client.ID, Name: "x", Status: crm.CampaignPlanned, Currency: "EUR"})
		requireForbidden(t, err, "Campaigns.Create")
		_, err = s.Invoices().Create(cx, invoiceInput(mine.client.ID, "INV-9"))
		requireForbidden(t, err, "Invoices.Create")
		_, err = s.Clients().Create(cx, crm.ClientInput{Name: "x"})
		requireForbidden(t, err, "Clients.Create")
		_, err = s.Invoices().MarkOverdue(cx, e.clock.Now())
		requireForbidden(t, err, "Invoices.MarkOverdue")
		for _, sh := range []shop{mine, other} {
			c, err := s.Campaigns().Get(e.A, sh.campaign.ID)
			require.NoError(t, err)
			require.Equal(t, sh.campaign.Version, c.Version, "a refused write changed nothing")
			p, err := s.Proposals().Get(e.A, sh.proposal.ID)
			require.NoError(t, err)
			require.Equal(t, crm.ProposalSent, p.Status)
			i, err := s.Invoices().Get(e.A, sh.invoice.ID)
			require.NoError(t, err)
			require.Equal(t, crm.InvoiceIssued, i.Status)
		}

		// The one write it may make: answer a proposal sent to its client.
		p, err := s.Proposals().Transition(cx, mine.proposal.ID, mine.proposal.Version, crm.ProposalAccepted, "looks good")
		require.NoError(t, err)
		require.Equal(t, crm.ProposalAccepted, p.Status)
		hist, err = whole(s.Proposals().History(e.A, mine.proposal.ID, crm.ListOptions{}))
		require.NoError(t, err)
		last := hist[len(hist)-1]
		require.Equal(t, crm.ProposalAccepted, last.To)
		require.Equal(t, "member:"+principal(cx).MemberID, last.Actor)

		// Nothing else in its tenant: kinds not shared with clients.
		_, err = s.Fields().Define(cx, crm.FieldDefInput{RecordKind: crm.KindCampaign, Name: "x", Type: crm.FieldText})
		requireForbidden(t, err, "Fields.Define")
		_, err = s.Fields().List(cx, crm.FieldDefFilter{RecordKind: crm.KindCampaign}, crm.ListOptions{})
		requireForbidden(t, err, "Fields.List")
		_, err = s.Clients().Members(cx, mine.client.ID, crm.ListOptions{})
		require.ErrorIs(t, err, tenancy.ErrForbidden)
		_, err = s.Attachments().Attach(cx, crm.AttachmentInput{OwnerKind: crm.KindCampaign, OwnerID: mine.campaign.ID,
			FileName: "a.txt", ContentType: "text/plain"}, bytes.NewReader([]byte("x")))
		require.Error(t, err) // no storage configured here; forbidden once there is (TestAttachments)
		for what, err := range crm.AuthorizeForTest(s, cx) {
			requireForbidden(t, err, what)
		}
		for what, err := range crm.AuthorizeForTest(s, e.A) {
			require.NoError(t, err, what)
		}

		// The core repositories refuse it, for reads as for writes, and
		// the records stay as they were.
		contact, err := s.Contacts().Create(e.A, crm.ContactInput{FirstName: "Ann", Email: "ann@acme.example"})
		require.NoError(t, err)
		note, err := s.Notes().Create(e.A, crm.NoteInput{Body: "prefers calls", ContactID: contact.ID})
		require.NoError(t, err)
		_, err = s.Contacts().Get(cx, contact.ID)
		requireForbidden(t, err, "Contacts.Get")
		_, err = s.Contacts().List(cx, crm.ContactFilter{}, crm.ListOptions{})
		requireForbidden(t, err, "Contacts.List")
		_, err = s.Contacts().Create(cx, crm.ContactInput{FirstName: "Eve"})
		requireForbidden(t, err, "Contacts.Create")
		contact.FirstName = "Changed"
		_, err = s.Contacts().Update(cx, contact.ID, contact.Version, contact.ContactInput)
		requireForbidden(t, err, "Contacts.Update")
		requireForbidden(t, s.Contacts().Delete(cx, contact.ID), "Contacts.Delete")
		_, err = s.Notes().Get(cx, note.ID)
		requireForbidden(t, err, "Notes.Get")
		_, err = s.Notes().List(cx, crm.NoteFilter{}, crm.ListOptions{})
		requireForbidden(t, err, "Notes.List")
		_, err = s.Companies().List(cx, crm.CompanyFilter{}, crm.ListOptions{})
		requireForbidden(t, err, "Companies.List")
		_, err = s.Deals().List(cx, crm.DealFilter{}, crm.ListOptions{})
		requireForbidden(t, err, "Deals.List")
		_, err = s.Tasks().List(cx, crm.TaskFilter{}, crm.ListOptions{})
		requireForbidden(t, err, "Tasks.List")
		_, err = s.Activities().List(cx, crm.ActivityFilter{}, crm.ListOptions{})
		requireForbidden(t, err, "Activities.List")
		_, err = s.Consents().Current(cx, contact.ID)
		requireForbidden(t, err, "Consents.List")
		_, err = s.Conversations().List(cx, crm.ConversationFilter{}, crm.ListOptions{})
		requireForbidden(t, err, "Conversations.List")
		_, err = s.Fields().Values(cx, "contact", contact.ID)
		requireForbidden(t, err, "Fields.Values of a contact")
		_, err = s.Attachments().List(cx, "contact", contact.ID, crm.ListOptions{})
		requireForbidden(t, err, "Attachments.List of a contact")
		got2, err := s.Contacts().Get(e.A, contact.ID)
		require.NoError(t, err)
		require.Equal(t, "Ann", got2.FirstName)
	})
}

// TestClientPortalBinding: the link decides what a client member sees; an
// unlinked client member, a member whose principal names another client,
// and a creator see nothing.
func TestClientPortalBinding(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		s := e.store
		mine := newShop(t, e, e.A, "acme", "INV-1")
		other := newShop(t, e, e.A, "globex", "INV-2")
		m, cx := portalMember(t, e, e.A, mine.client.ID, "buyer@acme.example")

		// Only a client-role member bound to that client can be linked.
		ts, err := tenancy.NewStore(e.db.DB, tenancy.WithClock(e.clock.Now))
		require.NoError(t, err)
		staff, err := ts.AddMember(e.A, tenancy.NewMember{Email: "staff@t.example", Name: "Staff", Role: tenancy.RoleStaff})
		require.NoError(t, err)
		_, err = s.Clients().Link(e.A, mine.client.ID, staff.ID)
		require.ErrorIs(t, err, crm.ErrInvalid)
		_, err = s.Clients().Link(e.A, other.client.ID, m.ID)
		require.ErrorIs(t, err, crm.ErrInvalid, "member is bound to another client by tenancy")
		_, err = s.Clients().Link(cx, mine.client.ID, m.ID)
		require.ErrorIs(t, err, tenancy.ErrForbidden)
		_, err = s.Clients().Link(e.B, mine.client.ID, m.ID)
		requireNotFound(t, err, "linking to another tenant's client")
		links, err := s.Clients().Members(e.A, mine.client.ID, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, links.Items, 1)
		require.Equal(t, m.ID, links.Items[0].MemberID)
		require.Equal(t, mine.client.ID, links.Items[0].ClientID)

		// A principal claiming another client than its link sees nothing.
		p := principal(cx)
		p.ClientID = other.client.ID
		forged := tenancy.WithPrincipal(context.Background(), p)
		_, err = s.Campaigns().List(forged, crm.CampaignFilter{}, crm.ListOptions{})
		requireForbidden(t, err, "a principal whose client differs from its link")

		// Unlinked: nothing.
		require.NoError(t, s.Clients().Unlink(e.A, m.ID))
		_, err = s.Campaigns().List(cx, crm.CampaignFilter{}, crm.ListOptions{})
		requireForbidden(t, err, "an unlinked client member")
		_, err = s.Invoices().Get(cx, mine.invoice.ID)
		requireForbidden(t, err, "an unlinked client member")

		// Creators have no access to CRM records.
		creator := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: mine.client.TenantID, MemberID: tenancy.NewID(), Role: tenancy.RoleCreator})
		_, err = s.Proposals().List(creator, crm.ProposalFilter{}, crm.ListOptions{})
		requireForbidden(t, err, "a creator")
		for what, err := range crm.AuthorizeForTest(s, creator) {
			requireForbidden(t, err, what)
		}

		// No tenant: fails closed.
		_, err = s.Campaigns().List(context.Background(), crm.CampaignFilter{}, crm.ListOptions{})
		require.ErrorIs(t, err, tenancy.ErrNoTenant)
	})
}

func campaignIDs(cs []crm.Campaign) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func principal(ctx context.Context) tenancy.Principal {
	p, _ := tenancy.FromContext(ctx)
	return p
}

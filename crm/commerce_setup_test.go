package crm_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

// shop is one client with a campaign, a sent proposal and an issued
// invoice, made by an owner of a tenant.
type shop struct {
	client   crm.Client
	campaign crm.Campaign
	proposal crm.Proposal
	invoice  crm.Invoice
}

func newShop(t testing.TB, e *env, ctx context.Context, name, number string) shop {
	t.Helper()
	s := e.store
	var sh shop
	var err error
	sh.client, err = s.Clients().Create(ctx, crm.ClientInput{Name: name, Email: "billing@" + name + ".example"})
	require.NoError(t, err)
	sh.campaign, err = s.Campaigns().Create(ctx, crm.CampaignInput{ClientID: sh.client.ID, Name: name + " launch",
		Status: crm.CampaignActive, Budget: 500000, Currency: "EUR"})
	require.NoError(t, err)
	sh.proposal, err = s.Proposals().Create(ctx, crm.ProposalInput{ClientID: sh.client.ID, CampaignID: sh.campaign.ID,
		ProposalContent: crm.ProposalContent{Title: "Three posts", Body: "Three posts and a reel", Amount: 300000, Currency: "EUR"}})
	require.NoError(t, err)
	sh.proposal, err = s.Proposals().Transition(ctx, sh.proposal.ID, sh.proposal.Version, crm.ProposalSent, "")
	require.NoError(t, err)
	sh.invoice, err = s.Invoices().Create(ctx, invoiceInput(sh.client.ID, number))
	require.NoError(t, err)
	sh.invoice, err = s.Invoices().Issue(ctx, sh.invoice.ID, sh.invoice.Version)
	require.NoError(t, err)
	return sh
}

func invoiceInput(clientID, number string) crm.InvoiceInput {
	return crm.InvoiceInput{Number: number, ClientID: clientID, Currency: "EUR",
		Lines: []crm.LineItem{
			{Description: "Sponsored post", Quantity: 3, UnitPrice: 100000, TaxRate: 2000},
			{Description: "Usage rights", Quantity: 1, UnitPrice: 49999, TaxRate: 550},
		},
		BillTo:    crm.BillTo{Name: "Brand GmbH", Address: "1 Main St, Berlin", TaxID: "DE123456789"},
		Recipient: &crm.Recipient{Email: "ap@brand.example", Phone: "+4930123456"},
	}
}

// portalMember adds a member with the client role for client to the tenant
// of ctx, links it, and returns the member's context.
func portalMember(t testing.TB, e *env, ctx context.Context, clientID, email string) (tenancy.Member, context.Context) {
	t.Helper()
	ts, err := tenancy.NewStore(e.db.DB, tenancy.WithClock(e.clock.Now))
	require.NoError(t, err)
	m, err := ts.AddMember(ctx, tenancy.NewMember{Email: email, Name: "Portal user", Role: tenancy.RoleClient, ClientID: clientID})
	require.NoError(t, err)
	_, err = e.store.Clients().Link(ctx, clientID, m.ID)
	require.NoError(t, err)
	return m, tenancy.WithPrincipal(context.Background(), m.Principal())
}

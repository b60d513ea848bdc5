package crm_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// exampleStore opens a throw-away SQLite database with crm migrated, and a
// Store over it; owner acts as the owner of a new tenant.
func exampleStore() (store *crm.Store, tenants *tenancy.Store, owner context.Context, done func()) {
	dir, _ := os.MkdirTemp("", "crm-example")
	path := filepath.Join(dir, "example.db")
	if err := dbtest.SQLiteFile(path, exampleMigrate); err != nil {
		panic(err)
	}
	db, err := socialcrm.OpenDB(path)
	if err != nil {
		panic(err)
	}
	if err := exampleMigrate(context.Background(), db); err != nil {
		panic(err)
	}
	if _, err := socialcrm.Guard(db); err != nil {
		panic(err)
	}
	h, _ := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	kek, _ := aead.New(h)
	clock := func() time.Time { return time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC) }
	v, err := vault.New(db, kek, vault.WithClock(clock))
	if err != nil {
		panic(err)
	}
	store, err = crm.New(db, v, crm.WithClock(clock))
	if err != nil {
		panic(err)
	}
	tenants, err = tenancy.NewStore(db, tenancy.WithClock(clock))
	if err != nil {
		panic(err)
	}
	tn, m, err := tenants.CreateTenant(context.Background(), tenancy.SignUp{TenantName: "agency",
		Owner: tenancy.NewMember{Email: "owner@agency.example", Name: "Owner"}})
	if err != nil {
		panic(err)
	}
	owner = tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tn.ID, MemberID: m.ID, Role: tenancy.RoleOwner})
	return store, tenants, owner, func() { db.Close(); os.RemoveAll(dir) }
}

// An invoice's totals are computed by the Store from its lines: amounts in
// minor units, tax per line in basis points, rounded half away from zero.
func ExampleInvoices_Create() {
	store, _, ctx, done := exampleStore()
	defer done()
	client, err := store.Clients().Create(ctx, crm.ClientInput{Name: "Brand GmbH"})
	if err != nil {
		panic(err)
	}
	inv, err := store.Invoices().Create(ctx, crm.InvoiceInput{
		Number: "2026-0001", ClientID: client.ID, Currency: "EUR",
		Lines: []crm.LineItem{
			{Description: "Sponsored reel", Quantity: 2, UnitPrice: 150000, TaxRate: 1900},
			{Description: "Usage rights, 6 months", Quantity: 1, UnitPrice: 49999, TaxRate: 700},
		},
		BillTo:    crm.BillTo{Name: "Brand GmbH", Address: "Hauptstr. 1, Berlin", TaxID: "DE123456789"},
		Recipient: &crm.Recipient{Email: "ap@brand.example"},
	})
	if err != nil {
		panic(err)
	}
	for _, l := range inv.Lines {
		fmt.Printf("%-24s net %7d tax %6d\n", l.Description, l.Net, l.Tax)
	}
	fmt.Println("subtotal", inv.Subtotal, "tax", inv.Tax, "total", inv.Total, inv.Currency)

	inv, _ = store.Invoices().Issue(ctx, inv.ID, inv.Version)
	inv, _ = store.Invoices().RecordPayment(ctx, inv.ID, inv.Version, 100000)
	fmt.Println(inv.Status, inv.Paid, "of", inv.Total)

	_, err = store.Invoices().Create(ctx, crm.InvoiceInput{Number: "2026-0002", ClientID: client.ID, Currency: "EURO",
		Lines: []crm.LineItem{{Description: "x", Quantity: 1, UnitPrice: 1}}, BillTo: crm.BillTo{Name: "Brand GmbH"}})
	var ve *crm.ValidationError
	if errors.As(err, &ve) {
		fmt.Println(ve.Fields[0].Field, ve.Fields[0].Rule)
	}
	// Output:
	// Sponsored reel           net  300000 tax  57000
	// Usage rights, 6 months   net   49999 tax   3500
	// subtotal 349999 tax 60500 total 410499 EUR
	// partially_paid 100000 of 410499
	// currency iso4217
}

// A member with the client role, linked to one client, sees that client's
// campaigns, proposals and invoices and nothing else; it may accept or
// reject a proposal sent to it, and change nothing else.
func ExampleClients_Link() {
	store, tenants, ctx, done := exampleStore()
	defer done()
	brand, _ := store.Clients().Create(ctx, crm.ClientInput{Name: "Brand"})
	rival, _ := store.Clients().Create(ctx, crm.ClientInput{Name: "Rival"})
	for _, c := range []crm.Client{brand, rival} {
		_, _ = store.Campaigns().Create(ctx, crm.CampaignInput{ClientID: c.ID, Name: c.Name + " launch",
			Status: crm.CampaignActive, Budget: 500000, Currency: "EUR"})
	}
	p, _ := store.Proposals().Create(ctx, crm.ProposalInput{ClientID: brand.ID,
		ProposalContent: crm.ProposalContent{Title: "Three reels", Amount: 300000, Currency: "EUR"}})
	p, _ = store.Proposals().Transition(ctx, p.ID, p.Version, crm.ProposalSent, "")

	// The tenant adds the client's user and links it to its client.
	m, err := tenants.AddMember(ctx, tenancy.NewMember{Email: "buyer@brand.example", Name: "Buyer",
		Role: tenancy.RoleClient, ClientID: brand.ID})
	if err != nil {
		panic(err)
	}
	if _, err := store.Clients().Link(ctx, brand.ID, m.ID); err != nil {
		panic(err)
	}

	// The client's user, signed in.
	portal := tenancy.WithPrincipal(context.Background(), m.Principal())
	page, _ := store.Campaigns().List(portal, crm.CampaignFilter{}, crm.ListOptions{})
	for _, c := range page.Items {
		fmt.Println("sees", c.Name)
	}
	_, err = store.Contacts().List(portal, crm.ContactFilter{}, crm.ListOptions{})
	fmt.Println("contacts:", errors.Is(err, crm.ErrForbidden))
	_, err = store.Campaigns().Update(portal, page.Items[0].ID, page.Items[0].Version, page.Items[0].CampaignInput)
	fmt.Println("edit campaign:", errors.Is(err, crm.ErrForbidden))
	p, err = store.Proposals().Transition(portal, p.ID, p.Version, crm.ProposalAccepted, "approved")
	fmt.Println("proposal:", p.Status, err)
	// Output:
	// sees Brand launch
	// contacts: true
	// edit campaign: true
	// proposal: accepted <nil>
}

package socialcrm_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// TestS17PurgeKeepsInvoicesReadable: DefaultPolicy keeps invoices 7 years
// (a legal obligation) and readable. A closed tenant's purge erases its
// contacts but keeps its key while an invoice is kept: the invoice, with
// the bill-to name the law requires, still opens, the receipt counts it
// Kept, and the tenant is not marked purged. Once the sweep has erased the
// invoice by age, the next purge destroys the key and marks the tenant
// purged. A rule that keeps rows readable without keeping them is refused.
func TestS17PurgeKeepsInvoicesReadable(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx, clk := context.Background(), fakeclock.New()
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t), Now: clk.Now})
		require.NoError(t, err)
		tn, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Billing",
			Owner: tenancy.NewMember{Email: "owner@billing.example", Name: "O"}})
		require.NoError(t, err)
		a := tenancy.WithPrincipal(ctx, owner.Principal())
		c, err := sdk.CRM.Contacts().Create(a, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com"})
		require.NoError(t, err)
		client, err := sdk.CRM.Clients().Create(a, crm.ClientInput{Name: "Pia's Studio"})
		require.NoError(t, err)
		inv, err := sdk.CRM.Invoices().Create(a, crm.InvoiceInput{Number: "INV-1", ClientID: client.ID, Currency: "EUR",
			Lines: []crm.LineItem{{Description: "post", Quantity: 1, UnitPrice: 1000}}, BillTo: crm.BillTo{Name: "Pia Billing"}})
		require.NoError(t, err)

		_, err = sdk.Tenants.CloseTenant(a, time.Hour)
		require.NoError(t, err)
		clk.Advance(2 * time.Hour)
		sys := tenancy.System(ctx, "test")
		res, err := sdk.Retention.PurgeTenants(sys, clk.Now())
		require.NoError(t, err)
		require.Len(t, res, 1)
		require.False(t, res[0].Purged, "an invoice kept readable keeps the tenant's key")
		var kept int64
		for _, rc := range res[0].Receipts {
			if rc.Category == crm.CategoryInvoice {
				kept += rc.Kept
			}
		}
		require.EqualValues(t, 1, kept, "the receipt counts the invoice kept: %+v", res[0].Receipts)

		sa, err := tenancy.AsTenant(sys, tn.ID)
		require.NoError(t, err)
		_, err = sdk.CRM.Contacts().Get(sa, c.ID)
		require.ErrorIs(t, err, crm.ErrNotFound, "the contact is erased")
		got, err := sdk.CRM.Invoices().Get(sa, inv.ID)
		require.NoError(t, err, "the kept invoice opens after the purge")
		require.Equal(t, "Pia Billing", got.BillTo.Name)
		tt, err := sdk.Tenants.Tenant(sa)
		require.NoError(t, err)
		require.Equal(t, tenancy.StatusClosed, tt.Status)

		// Seven years on, the sweep erases the invoice; the next purge
		// shreds the key and marks the tenant purged.
		clk.Advance(7*retention.Year + 48*time.Hour)
		_, err = sdk.Retention.Sweep(sys, clk.Now())
		require.NoError(t, err)
		_, err = sdk.CRM.Invoices().Get(sa, inv.ID)
		require.ErrorIs(t, err, crm.ErrNotFound, "the sweep erased the invoice at the end of its period")
		res, err = sdk.Retention.PurgeTenants(sys, clk.Now())
		require.NoError(t, err)
		require.Len(t, res, 1)
		require.True(t, res[0].Purged, "%+v", res)
		_, err = sdk.Vault.Seal(sa, []byte("x"), vault.Binding{Record: "r", Field: "f"})
		require.True(t, errors.Is(err, vault.ErrKeyDestroyed), "the key is destroyed: %v", err)

		p := socialcrm.DefaultPolicy(socialcrm.Categories(nil))
		p.Rules = append(p.Rules, retention.Rule{Category: "crm.contact", Period: retention.Year, Readable: true})
		e, err := retention.New(db.DB, retention.WithPolicy(p))
		require.NoError(t, err)
		require.NoError(t, e.Register(socialcrm.Categories(nil)...))
		_, err = e.Sweep(sys, clk.Now())
		var pe *retention.PolicyError
		require.True(t, errors.As(err, &pe), "Readable without Keep is refused: %v", err)
	}, migrated)
}

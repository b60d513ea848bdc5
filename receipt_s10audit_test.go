package socialcrm_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS10AuditReceiptCountsPerCategory: an erasure's receipt counts, for
// each category, exactly the rows that left its table (categories that
// delete) or the rows changed in place (categories that anonymize), as a
// count of every table of the tenant before and after shows — not only in
// total. The person is seeded in every category a contact reaches, and is
// also a client's billing contact and an invoice's recipient.
func TestS10AuditReceiptCountsPerCategory(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		sdk := dsarSDK(t, db)
		a := dsarTenant(t, sdk, "receipt")
		p := seedPerson(t, sdk, a, "rita", "+14155550155")
		seedPerson(t, sdk, a, "ctrl", "+14155550156")
		s := sdk.CRM
		cl, err := s.Clients().Create(a, crm.ClientInput{Name: "Rita's shop", Email: p.email, Phone: p.phone})
		require.NoError(t, err)
		_, err = s.Invoices().Create(a, crm.InvoiceInput{Number: "R-1", ClientID: cl.ID, Currency: "EUR", BillTo: crm.BillTo{Name: "Rita"},
			Lines: []crm.LineItem{{Description: "ring", Quantity: 1, UnitPrice: 100}}, Recipient: &crm.Recipient{ContactID: p.contact.ID, Email: p.email}})
		require.NoError(t, err)

		tid, err := tenancy.TenantID(a)
		require.NoError(t, err)
		sys, err := tenancy.AsTenant(tenancy.System(context.Background(), "s10-receipt"), tid)
		require.NoError(t, err)
		counts := func() map[string]int {
			out := map[string]int{}
			require.NoError(t, tenancy.RunInTx(sys, sdk.DB, nil, func(ctx context.Context, tx bun.Tx) error {
				for _, table := range dsarTables(t, sdk) {
					var n int
					if err := tx.NewRaw("SELECT count(*) FROM "+table+" WHERE tenant_id = ?", tid).Scan(ctx, &n); err != nil {
						return err
					}
					out[table] = n
				}
				return nil
			}))
			return out
		}
		before := counts()
		er := submitVerified(t, sdk, a, retention.KindErasure, map[string]string{crm.SubjectEmail: p.email})
		rc, err := sdk.Retention.Erase(a, er.ID)
		require.NoError(t, err)
		after := counts()

		dm := map[string]retention.DataMapEntry{}
		for _, e := range sdk.Retention.DataMap().Categories {
			dm[e.Name] = e
		}
		deleted := map[string]int64{}
		for _, c := range rc.Categories {
			e := dm[c.Category]
			if strings.HasPrefix(e.Erase, "anonymize") {
				continue // its rows stay: counted below by name
			}
			deleted[e.Table] += c.Erased
		}
		for table, n := range before {
			require.Equal(t, int64(n-after[table]), deleted[table], "%s: rows gone vs the receipt's count (%+v)", table, rc.Categories)
		}
		byName := map[string]int64{}
		for _, c := range rc.Categories {
			byName[c.Category] += c.Erased
		}
		require.Equal(t, int64(1), byName["crm.deal"], "her deal, anonymized")
		require.Equal(t, int64(1), byName[crm.CategoryClientContact], "her billing details on the client, cleared")
	}, migrated)
}

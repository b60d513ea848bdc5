package socialcrm_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/leakscan"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS10AuditLegalKeepsByClock ages the records the default policy keeps
// for a legal period with the clock, through the SDK's scheduled Sweep:
// the audit log goes after 12 months (its chain still verifies), the
// record of an answered data-subject request after 3 years, an invoice
// after 7 years — with its recipient, its custom field value and its
// attached file's row and bytes, in the same sweep — and none before.
func TestS10AuditLegalKeepsByClock(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		clk := fakeclock.New()
		dir := t.TempDir()
		st, err := crm.NewDirStorage(dir)
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		sdk, err := socialcrm.Open(context.Background(), socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t), Now: clk.Now, Attachments: st})
		require.NoError(t, err)
		a := dsarTenant(t, sdk, "clock")
		s := sdk.CRM
		_, err = s.Fields().Define(a, crm.FieldDefInput{RecordKind: "invoice", Name: "po", Type: crm.FieldText})
		require.NoError(t, err)
		client, err := s.Clients().Create(a, crm.ClientInput{Name: "Client"})
		require.NoError(t, err)
		inv, err := s.Invoices().Create(a, crm.InvoiceInput{Number: "INV-1", ClientID: client.ID, Currency: "EUR",
			Lines: []crm.LineItem{{Description: "ring", Quantity: 1, UnitPrice: 1000}}, BillTo: crm.BillTo{Name: "ZqBillNameQz"},
			Recipient: &crm.Recipient{Email: "zqpayer@example.com"}})
		require.NoError(t, err)
		_, err = s.Fields().Set(a, "invoice", inv.ID, map[string]any{"po": "ZqPurchaseOrderQz"})
		require.NoError(t, err)
		att, err := s.Attachments().Attach(a, crm.AttachmentInput{OwnerKind: "invoice", OwnerID: inv.ID, FileName: "invoice.pdf",
			ContentType: "application/pdf"}, strings.NewReader("ZqInvoiceBytesQz"))
		require.NoError(t, err)
		req := submitVerified(t, sdk, a, retention.KindErasure, map[string]string{crm.SubjectEmail: "nobody@example.com"})
		rc, err := sdk.Retention.Erase(a, req.ID)
		require.NoError(t, err)
		require.Equal(t, retention.OutcomeNoDataFound, rc.Outcome)
		sys := tenancy.System(context.Background(), "s10-sweep")
		sweep := func() {
			t.Helper()
			_, err := sdk.Retention.Sweep(sys, clk.Now())
			require.NoError(t, err)
		}
		invoiceThere := func() bool {
			_, err := s.Invoices().Get(a, inv.ID)
			if err != nil {
				require.ErrorIs(t, err, crm.ErrNotFound)
			}
			return err == nil
		}
		requestThere := func() bool {
			_, err := sdk.Retention.Get(a, req.ID)
			return err == nil
		}
		bytesLeft := func() int {
			_, n := fileCount(t, dir)
			return n
		}
		files := bytesLeft()
		require.Positive(t, files)

		clk.Advance(11 * retention.Month)
		sweep()
		require.NotEmpty(t, auditOf(t, sdk, a, "tenant.created"), "the audit log is kept 12 months")
		clk.Advance(2 * retention.Month)
		sweep()
		require.Empty(t, auditOf(t, sdk, a, "tenant.created"), "the audit log goes after 12 months (the chain verifies)")
		require.True(t, requestThere(), "an answered request's record is kept")
		require.True(t, invoiceThere())

		clk.Set(fakeclock.Start.Add(3*retention.Year - retention.Day))
		sweep()
		require.True(t, requestThere(), "an answered request's record is kept 3 years")
		clk.Set(fakeclock.Start.Add(3*retention.Year + 2*retention.Day))
		sweep()
		require.False(t, requestThere(), "and goes after")
		require.True(t, invoiceThere())

		clk.Set(fakeclock.Start.Add(7*retention.Year - retention.Day))
		sweep()
		require.True(t, invoiceThere(), "an invoice is kept 7 years")
		_, err = s.Attachments().Get(a, att.ID)
		require.NoError(t, err)
		require.Equal(t, files, bytesLeft())
		clk.Set(fakeclock.Start.Add(7*retention.Year + 2*retention.Day))
		sweep()
		require.False(t, invoiceThere(), "and goes after")
		_, err = s.Attachments().Get(a, att.ID)
		require.ErrorIs(t, err, crm.ErrNotFound, "with its file")
		require.Less(t, bytesLeft(), files, "and the file's bytes, in the same sweep")
		hits, err := leakscan.Tables(context.Background(), db.Admin(t), []string{inv.ID, att.ID})
		require.NoError(t, err)
		for _, h := range hits {
			if !strings.HasPrefix(h.Where, tenancy.TableAuditLog+".") {
				t.Errorf("a trace of the invoice: %s", h)
			}
		}
	}, migrated)
}

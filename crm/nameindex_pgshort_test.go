package crm_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
)

// TestNameSearchOneCharacter searches every one-character query of a set
// of names built around the PostgreSQL name index's rule for one-character
// prefixes (nameindex_pgcreate2.go: a row only for a word of one
// character or a word whose second character is not a-z or 0-9, the
// others found through their two-character prefixes): words of one
// character, apostrophes, accented and non-Latin letters in first and
// second place, digits, a word repeated. Each query must find exactly the
// contacts with a word beginning with it, in the tenant and not another's,
// on both databases; on PostgreSQL the name index holds exactly the
// contacts' keyed tokens and "Ada Lovelace 1" has 5 rows.
func TestNameSearchOneCharacter(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		in := []crm.ContactInput{
			{FirstName: "Ada", LastName: "Lovelace 1"},
			{FirstName: "A", LastName: "O'Brien"},
			{FirstName: "Aé", LastName: "Zz"},
			{FirstName: "Ämma", LastName: "Ölund"},
			{FirstName: "Łukasz", LastName: "Żak"},
			{FirstName: "Ωmega", LastName: "7even"},
			{FirstName: "Ba", LastName: "B"},
			{FirstName: "Lo", LastName: "L-lo"},
		}
		names := map[string]string{}
		for _, c := range in {
			got, err := e.store.Contacts().Create(e.A, c)
			require.NoError(t, err)
			names[got.ID] = c.FirstName + " " + c.LastName
			// The same names in B: a search in A finds none of them.
			_, err = e.store.Contacts().Create(e.B, c)
			require.NoError(t, err)
		}
		requireNameIndexExact(t, e)
		queries := []string{"a", "o", "z", "ä", "ö", "ł", "ż", "ω", "7", "1", "b", "l", "x", "é", "'", "-",
			"A L", "l o", "b b", "ä ö", "7 ω", "lo l-"}
		checkNameSearch(t, e, e.A, names, queries)
		if e.db.Name == "postgres" {
			var rows int
			ada := ""
			for id, n := range names {
				if n == "Ada Lovelace 1" {
					ada = id
				}
			}
			require.NoError(t, e.db.Admin(t).NewRaw("SELECT count(*) FROM "+crm.TableContactNames+" WHERE contact_id = ?", ada).
				Scan(context.Background(), &rows))
			require.Equal(t, 5, rows, "ad, lo, love, lovelac, 1")
			require.Equal(t, 5, crm.NameRows("ada", "lovelace", "1"))
		}
	})
}

package crm_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/retention"
)

// nameQueries are the name searches requireSearchExact runs.
var nameQueries = []string{"a", "ad", "ada", "ada love", "lovelace", "augusta", "aug king", "king", "grace", "hop", "grace murray",
	"murray", "alan", "turing", "alan tur", "charles", "babbage", "zz", "l", "g h", "lovelace ada"}

// requireSearchExact checks every name query of nameQueries in ctx's
// tenant against the names stored: a contact is found exactly when each
// query word begins a word of its first or last name (ASCII names, as
// these tests give). It returns the tenant's contacts.
func requireSearchExact(t *testing.T, e *env, ctx context.Context) []crm.Contact {
	t.Helper()
	p, err := e.store.Contacts().List(ctx, crm.ContactFilter{}, crm.ListOptions{Limit: crm.MaxLimit})
	require.NoError(t, err)
	require.Empty(t, p.NextCursor, "one page")
	for _, q := range nameQueries {
		want := []string{}
		for _, c := range p.Items {
			words := strings.Fields(strings.ToLower(c.FirstName + " " + c.LastName))
			all := true
			for _, qw := range strings.Fields(q) {
				all = all && slices.ContainsFunc(words, func(w string) bool { return strings.HasPrefix(w, qw) })
			}
			if all {
				want = append(want, c.ID)
			}
		}
		got := searchIDs(t, e, ctx, q)
		require.ElementsMatch(t, want, got, "name search %q", q)
	}
	return p.Items
}

// TestNameFTSExactThroughEveryWrite: the name index stays exact — the
// index holds exactly the words of every contact's name_index
// (requireNameIndexExact: FTS5 on SQLite, the b-tree table on PostgreSQL)
// and each tenant's name searches find exactly its contacts whose names
// match — through create, rename (Update), merge, CSV import (create and
// upsert renaming a contact), erasure through the retention engine, and
// the other tenant's writes of the same names.
func TestNameFTSExactThroughEveryWrite(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		c := e.store.Contacts()
		check := func(step string) {
			t.Helper()
			t.Log(step)
			requireNameIndexExact(t, e)
			requireSearchExact(t, e, e.A)
			requireSearchExact(t, e, e.B)
		}
		mk := func(ctx context.Context, first, last, email string) crm.Contact {
			t.Helper()
			ct, err := c.Create(ctx, crm.ContactInput{FirstName: first, LastName: last, Email: email})
			require.NoError(t, err)
			return ct
		}
		ada := mk(e.A, "Ada", "Lovelace", "ada@example.com")
		grace := mk(e.A, "Grace", "Hopper", "grace@example.com")
		alan := mk(e.A, "Alan", "", "alan@example.com")
		turing := mk(e.A, "Alan", "Turing", "")
		mk(e.B, "Ada", "Lovelace", "ada@example.com")
		mk(e.B, "Grace", "Hopper", "")
		check("create")

		renamed, err := c.Update(e.A, ada.ID, ada.Version, crm.ContactInput{FirstName: "Augusta Ada", LastName: "King", Email: "ada@example.com"})
		require.NoError(t, err)
		require.Equal(t, "King", renamed.LastName)
		check("rename")
		_, err = c.Update(e.A, renamed.ID, renamed.Version, crm.ContactInput{Email: "ada@example.com"})
		require.NoError(t, err)
		check("name removed")
		_, err = c.Update(e.A, renamed.ID, renamed.Version+1, crm.ContactInput{FirstName: "Ada", LastName: "King", Email: "ada@example.com"})
		require.NoError(t, err)
		check("name given again")

		_, err = c.Merge(e.A, alan.ID, turing.ID)
		require.NoError(t, err)
		check("merge")

		rep, err := c.ImportCSV(e.A, strings.NewReader("First Name,Surname,Email Address\n"+
			"Charles,Babbage,charles@example.com\n"+
			"Grace,Murray,grace@example.com\n"), crm.ImportOptions{})
		require.NoError(t, err)
		require.Equal(t, 1, rep.Created)
		g, err := c.Get(e.A, grace.ID)
		require.NoError(t, err)
		require.Equal(t, "Murray", g.LastName, "the import renamed Grace")
		check("import")

		eng := commerceEngine(t, e)
		charles := searchIDs(t, e, e.A, "charles babbage")
		require.Len(t, charles, 1)
		r := request(t, e.A, eng, retention.KindErasure, map[string]string{crm.SubjectContact: charles[0]})
		_, err = eng.Erase(e.A, r.ID)
		require.NoError(t, err)
		check("erasure")
	})
}

package crm_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
)

// nameRows is the size of the name index of contacts whose names have
// the words words (folded, distinct, sharing no prefix) on e's database:
// on SQLite one word of the FTS5 index per prefix of every word, on
// PostgreSQL one row of TableContactNames per keyed prefix.
func nameRows(e *env, words ...string) int {
	if e.db.Name == "postgres" {
		return crm.NameRows(words...)
	}
	n := 0
	for _, w := range words {
		n += len([]rune(w))
	}
	return n
}

// nameMatches reports whether a contact named name matches the NamePrefix
// query q: every word of q, cut to crm.MaxNamePrefix characters, starts a
// word of the name (both lower-cased).
func nameMatches(name, q string) bool {
	words := strings.Fields(strings.ToLower(name))
	for _, w := range strings.Fields(strings.ToLower(q)) {
		if r := []rune(w); len(r) > crm.MaxNamePrefix {
			w = string(r[:crm.MaxNamePrefix])
		}
		if !slices.ContainsFunc(words, func(n string) bool { return strings.HasPrefix(n, w) }) {
			return false
		}
	}
	return true
}

// checkNameSearch runs each of queries as a NamePrefix search of tenant
// ctx's contacts (named by names, by id) and checks that it finds exactly
// the contacts nameMatches says.
func checkNameSearch(t *testing.T, e *env, ctx context.Context, names map[string]string, queries []string) {
	t.Helper()
	for _, q := range queries {
		var want []string
		for id, name := range names {
			if nameMatches(name, q) {
				want = append(want, id)
			}
		}
		p, err := e.store.Contacts().List(ctx, crm.ContactFilter{NamePrefix: q}, crm.ListOptions{Limit: 100})
		require.NoError(t, err, q)
		var got []string
		for _, c := range p.Items {
			got = append(got, c.ID)
		}
		require.ElementsMatch(t, want, got, "search %q", q)
	}
}

// prefixQueries returns every prefix of each of words and each word with
// one more letter.
func prefixQueries(words ...string) []string {
	var qs []string
	for _, w := range words {
		r := []rune(w)
		for i := 1; i <= len(r); i++ {
			qs = append(qs, string(r[:i]))
		}
		qs = append(qs, w+"x")
	}
	return qs
}

// TestNameSearchEveryPrefixLength searches for every prefix of every name
// word, of keyed lengths (looked up in the name index) and of the others
// (their longest keyed prefix looked up, the candidates kept by their
// name_index), words longer than crm.MaxNamePrefix, accented and
// upper-case letters and names that share prefixes included, in two
// tenants with the same names: each search finds exactly the tenant's
// contacts whose words the query's words start.
func TestNameSearchEveryPrefixLength(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		in := []crm.ContactInput{
			{FirstName: "Ada", LastName: "Lovelace"},
			{FirstName: "Adalbert", LastName: "Lovell"},
			{FirstName: "ÁDÁM", LastName: "Löwenherz"},
			{FirstName: "Bartholomew", LastName: "Featherstonehaughsmythington"},
			{FirstName: "Lo", LastName: "Ng"},
			{FirstName: "Lovelace", LastName: "Ada Byron"},
		}
		// Every length of a word longer than crm.MaxNamePrefix, of words
		// that share prefixes with others, an accented one; pairs.
		queries := append(prefixQueries("featherstonehaughsmythington", "lovelace", "ádám"), "lovel ad", "lo ng", "ada byr")
		for _, tctx := range []context.Context{e.A, e.B} {
			names := map[string]string{}
			for _, c := range in {
				got, err := e.store.Contacts().Create(tctx, c)
				require.NoError(t, err)
				names[got.ID] = c.FirstName + " " + c.LastName
			}
			requireNameIndexExact(t, e)
			checkNameSearch(t, e, tctx, names, queries)
			queries = []string{"lov", "ada", "featherstonehaughs"} // in B, a few
		}
	})
}

// TestNamesKeyedMigration brings a database of the release before
// migration 20261209010000 — its contacts' name_index arrays without the
// empty element, a row of TableContactNames for every prefix, the
// triggers writing every token — to the keyed name index: the old rows
// stay and every search finds the old contacts as before, a new contact
// gets rows for its keyed prefixes only, a rename of an old contact
// rewrites its rows to the keyed ones and a delete removes them; run
// again, the migration changes nothing. On SQLite it does nothing.
func TestNamesKeyedMigration(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		contacts := e.store.Contacts()
		names := map[string]string{}
		create := func(tctx context.Context, first, last string) string {
			t.Helper()
			c, err := contacts.Create(tctx, crm.ContactInput{FirstName: first, LastName: last})
			require.NoError(t, err)
			if tctx == e.A {
				names[c.ID] = first + " " + last
			}
			return c.ID
		}
		ada := create(e.A, "Ada", "Lovelace")
		create(e.A, "Adalbert", "Lovell")
		create(e.B, "Ada", "Byron")
		queries := append(prefixQueries("adalbert", "lovelace"), "lovel ad", "ada lovell", "byr")
		pg := e.db.Name == "postgres"
		raw := e.db.Admin(t)
		rows := func(id string) int {
			t.Helper()
			var n int
			require.NoError(t, raw.NewRaw("SELECT count(*) FROM socialcrm_crm_contact_names WHERE contact_id = ?", id).Scan(ctx, &n))
			return n
		}
		if pg {
			// The previous release's functions and data (as the superuser:
			// no row-level security), every prefix's token in the rows.
			for _, q := range []string{
				`CREATE OR REPLACE FUNCTION socialcrm_crm_contact_name_index_new() RETURNS trigger LANGUAGE plpgsql AS $$
					BEGIN
						INSERT INTO socialcrm_crm_contact_names (tenant_id, token, contact_id)
							SELECT NEW.tenant_id, t, NEW.id FROM unnest(NEW.name_index) AS t;
						RETURN NEW;
					END $$`,
				`CREATE OR REPLACE FUNCTION socialcrm_crm_contact_name_index() RETURNS trigger LANGUAGE plpgsql AS $$
					BEGIN
						IF TG_OP <> 'INSERT' THEN
							DELETE FROM socialcrm_crm_contact_names WHERE tenant_id = OLD.tenant_id AND contact_id = OLD.id;
						END IF;
						IF TG_OP <> 'DELETE' AND NEW.name_index IS NOT NULL THEN
							INSERT INTO socialcrm_crm_contact_names (tenant_id, token, contact_id)
								SELECT NEW.tenant_id, t, NEW.id FROM unnest(NEW.name_index) AS t;
						END IF;
						RETURN NULL;
					END $$`,
				`UPDATE socialcrm_crm_contacts SET name_index = array_remove(name_index, '')`,
			} {
				_, err := raw.ExecContext(ctx, q)
				require.NoError(t, err, q)
			}
			require.Equal(t, len("ada")+len("lovelace"), rows(ada), "the previous release's rows")
		}
		requireNameIndexExact(t, e)
		checkNameSearch(t, e, e.A, names, queries)
		for range 2 {
			require.NoError(t, crm.RunMigration(ctx, e.db.ReopenOwner(t), "20261209010000"))
			requireNameIndexExact(t, e)
			checkNameSearch(t, e, e.A, names, queries)
		}
		if pg {
			require.Equal(t, len("ada")+len("lovelace"), rows(ada), "the old rows stay")
		}
		adam := create(e.A, "Adam", "Lovejoy")
		if pg {
			require.Equal(t, crm.NameRows("adam", "lovejoy"), rows(adam), "a new contact's rows are its keyed prefixes'")
		}
		old, err := contacts.Get(e.A, ada)
		require.NoError(t, err)
		_, err = contacts.Update(e.A, ada, old.Version, crm.ContactInput{FirstName: "Ada", LastName: "King"})
		require.NoError(t, err)
		names[ada] = "Ada King"
		if pg {
			require.Equal(t, crm.NameRows("ada", "king"), rows(ada), "a renamed old contact's rows are its keyed prefixes'")
		}
		requireNameIndexExact(t, e)
		checkNameSearch(t, e, e.A, names, append(queries, prefixQueries("king", "lovejoy")...))
		require.NoError(t, contacts.Delete(e.A, ada))
		delete(names, ada)
		require.Zero(t, rows(ada))
		requireNameIndexExact(t, e)
		checkNameSearch(t, e, e.A, names, []string{"ad", "ada", "kin", "lov"})
	})
}

package crm_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// createCounts counts, as the tables' owner, the contacts and the rows of
// their name index, after checking that those rows are exactly the tokens
// of the contacts' name_index columns.
func createCounts(t *testing.T, e *env) (contacts, names int) {
	t.Helper()
	ctx := context.Background()
	raw := e.db.Admin(t)
	require.NoError(t, raw.NewRaw("SELECT count(*) FROM socialcrm_crm_contacts").Scan(ctx, &contacts))
	requireNameIndexExact(t, e)
	if e.db.Name == "sqlite" {
		return contacts, crm.RequireFTSExact(t, raw) // nameindex_sqlite_export_test.go
	}
	require.NoError(t, raw.NewRaw("SELECT count(*) FROM socialcrm_crm_contact_names").Scan(ctx, &names))
	return contacts, names
}

// requireNameIndexExact checks that TableContactNames has one row per
// token of each contact's name_index (which the triggers keep) and no
// other.
func requireNameIndexExact(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	raw := e.db.Admin(t)
	if e.db.Name == "sqlite" {
		// On SQLite the name index is the FTS5 table (nameindex_sqlite.go);
		// the b-tree table stays empty.
		crm.RequireFTSExact(t, raw)
		var rows int
		require.NoError(t, raw.NewRaw("SELECT count(*) FROM socialcrm_crm_contact_names").Scan(ctx, &rows))
		require.Zero(t, rows, "the b-tree name index is empty on SQLite")
		return
	}
	tokens := "SELECT c.tenant_id, j.value, c.id FROM socialcrm_crm_contacts c, json_each(c.name_index) j"
	if e.db.Name == "postgres" {
		// The keyed tokens: those before the array's empty element, or all
		// of them in an array without one (nameindex_pgcreate2.go).
		tokens = "SELECT c.tenant_id, j, c.id FROM socialcrm_crm_contacts c," +
			" unnest(c.name_index[1:coalesce(array_position(c.name_index, '') - 1, cardinality(c.name_index))]) j"
	}
	rows := "SELECT tenant_id, token, contact_id FROM socialcrm_crm_contact_names"
	var missing, stray int
	require.NoError(t, raw.NewRaw("SELECT count(*) FROM ("+tokens+" EXCEPT "+rows+") x").Scan(ctx, &missing))
	require.Zero(t, missing, "tokens of contacts missing from the name index")
	require.NoError(t, raw.NewRaw("SELECT count(*) FROM ("+rows+" EXCEPT "+tokens+") x").Scan(ctx, &stray))
	require.Zero(t, stray, "name index rows of no contact's tokens")
}

// TestContactCreateOneStatement checks the single statement Create writes
// a contact with: its name index appears with it (one token per prefix of
// each name word) and name search finds it, and a duplicate or a missing
// company stores nothing at all — neither the contact nor index entries.
func TestContactCreateOneStatement(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		ada, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com", Phone: "+14155550100"})
		require.NoError(t, err)
		n, names := createCounts(t, e)
		require.Equal(t, 1, n)
		require.Equal(t, nameRows(e, "ada", "lovelace"), names, "one token per (keyed) prefix of each name word")
		for _, q := range []string{"lov", "ADA", "lovelace ad"} {
			p, err := contacts.List(e.A, crm.ContactFilter{NamePrefix: q}, crm.ListOptions{})
			require.NoError(t, err)
			require.Len(t, p.Items, 1, q)
			require.Equal(t, ada.ID, p.Items[0].ID)
		}
		p, err := contacts.List(e.B, crm.ContactFilter{NamePrefix: "ada"}, crm.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, p.Items, "another tenant finds nothing")

		// The same address or number again: a typed duplicate, nothing stored.
		for _, in := range []crm.ContactInput{
			{FirstName: "Augusta", Email: " ADA@example.com "},
			{FirstName: "Augusta", Phone: "+14155550100"},
		} {
			_, err = contacts.Create(e.A, in)
			var dup *crm.DuplicateError
			require.True(t, errors.As(err, &dup), "%v", err)
			require.Equal(t, ada.ID, dup.ContactID)
			n2, names2 := createCounts(t, e)
			require.Equal(t, [2]int{n, names}, [2]int{n2, names2}, "a duplicate stores nothing")
		}
		// A company of no record of the tenant: a validation error, nothing stored.
		_, err = contacts.Create(e.A, crm.ContactInput{FirstName: "Byron", CompanyID: tenancy.NewID()})
		var verr *crm.ValidationError
		require.True(t, errors.As(err, &verr), "%v", err)
		require.Equal(t, "company_id", verr.Fields[0].Field)
		n2, names2 := createCounts(t, e)
		require.Equal(t, [2]int{n, names}, [2]int{n2, names2}, "a failed create stores nothing")

		// Another tenant's contact with the same address is no duplicate;
		// AllowDuplicate stores one on purpose; a real company is kept.
		_, err = contacts.Create(e.B, crm.ContactInput{FirstName: "Ada", Email: "ada@example.com"})
		require.NoError(t, err)
		co, err := e.store.Companies().Create(e.A, crm.CompanyInput{Name: "Engines"})
		require.NoError(t, err)
		twin, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Ada", Email: "ada@example.com", CompanyID: co.ID}, crm.AllowDuplicate())
		require.NoError(t, err)
		got, err := contacts.Get(e.A, twin.ID)
		require.NoError(t, err)
		require.Equal(t, co.ID, got.CompanyID)
		n2, names2 = createCounts(t, e)
		require.Equal(t, [2]int{n + 2, names + 2*nameRows(e, "ada")}, [2]int{n2, names2})

		// In the caller's transaction (Store.Using) the same holds, and the
		// caller's rollback takes the contact and its rows away.
		errRollback := errors.New("roll back")
		err = tenancy.RunInTx(e.A, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			in, err := e.store.Using(tx).Contacts().Create(ctx, crm.ContactInput{FirstName: "Mary", LastName: "Somerville", Email: "mary@example.com"})
			require.NoError(t, err)
			p, err := e.store.Using(tx).Contacts().List(ctx, crm.ContactFilter{NamePrefix: "somer"}, crm.ListOptions{})
			require.NoError(t, err)
			require.Len(t, p.Items, 1)
			require.Equal(t, in.ID, p.Items[0].ID)
			_, err = e.store.Using(tx).Contacts().Create(ctx, crm.ContactInput{FirstName: "Mary", Email: "mary@example.com"})
			var dup *crm.DuplicateError
			require.True(t, errors.As(err, &dup), "%v", err)
			require.Equal(t, in.ID, dup.ContactID)
			return errRollback
		})
		require.ErrorIs(t, err, errRollback)
		n3, names3 := createCounts(t, e)
		require.Equal(t, [2]int{n2, names2}, [2]int{n3, names3}, "rolled back with the caller's transaction")
	})
}

// TestContactCreateConcurrentDuplicates creates one address from several
// goroutines at once: exactly one contact is stored, every other call gets
// the duplicate error naming it (on PostgreSQL the identifiers' advisory
// locks travel with the one statement; SQLite runs one write at a time).
func TestContactCreateConcurrentDuplicates(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		const n = 6
		var wg sync.WaitGroup
		ids := make([]string, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				c, err := e.store.Contacts().Create(e.A, crm.ContactInput{FirstName: "Grace", Email: "grace@example.com"})
				ids[i], errs[i] = c.ID, err
			})
		}
		wg.Wait()
		var created string
		for i := range n {
			if errs[i] == nil {
				require.Empty(t, created, "two contacts created for one address")
				created = ids[i]
			}
		}
		require.NotEmpty(t, created)
		for i := range n {
			if errs[i] != nil {
				var dup *crm.DuplicateError
				require.True(t, errors.As(errs[i], &dup), "%v", errs[i])
				require.Equal(t, created, dup.ContactID)
			}
		}
		count, names := createCounts(t, e)
		require.Equal(t, [2]int{1, nameRows(e, "grace")}, [2]int{count, names})
	})
}

// TestContactCreateRoundTrips counts, on PostgreSQL, the round trips of
// creates at the connection: one each — the tenant setting, the
// identifiers' locks and the statement travel together (a create in a
// transaction of its own took five), also when a value written into the
// statement holds what would begin a comment, a dollar quote or a second
// statement outside a literal ("--", "$", ";": a blind index holds "--"
// now and then, and such a statement was sent whole, parsed anew in a
// round trip of its own each time). The counter counts a request written
// in pieces while pgx reads as more than one, so a few extra are allowed.
func TestContactCreateRoundTrips(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		if e.db.Name != "postgres" {
			return // SQLite has no round trips
		}
		h := e.db.Reopen(t)
		h.SetMaxOpenConns(1)
		models := append(tenancy.Models(), vault.Models()...)
		_, err := tenancy.InstallGuard(h, append(models, crm.Models()...)...)
		require.NoError(t, err)
		s, err := crm.New(h, e.vault)
		require.NoError(t, err)
		in := func(i int) crm.ContactInput {
			return crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: fmt.Sprintf("ada%d@example.com", i), Phone: fmt.Sprintf("+1415555010%d", i),
				Source: "web--spring $5 /* sale"}
		}
		_, err = s.Contacts().Create(e.A, in(0)) // prepares the statements on the connection
		require.NoError(t, err)
		before, ok := sqldb.RoundTrips(h.DB)
		require.True(t, ok)
		const n = 8
		for i := 1; i <= n; i++ {
			_, err = s.Contacts().Create(e.A, in(i))
			require.NoError(t, err)
		}
		after, _ := sqldb.RoundTrips(h.DB)
		require.LessOrEqual(t, after-before, int64(n+2), "round trips of %d creates", n)
	})
}

// TestContactNameIndexFollowsTheContact: name-prefix search stays exact
// through a contact's life, on both databases — after create (with and
// without tags), rename (Update), merge, CSV import over an existing
// contact, erasure through retention and delete — and the index holds
// exactly the tokens of the stored names (requireNameIndexExact) after
// each step: a renamed contact is found by its new name and not its old
// one, an erased or deleted one by neither. Another tenant's contact of
// the same name is never found and never touched.
func TestContactNameIndexFollowsTheContact(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		find := func(ctx context.Context, q string) []string {
			t.Helper()
			p, err := contacts.List(ctx, crm.ContactFilter{NamePrefix: q}, crm.ListOptions{})
			require.NoError(t, err)
			ids := []string{}
			for _, c := range p.Items {
				ids = append(ids, c.ID)
			}
			requireNameIndexExact(t, e)
			return ids
		}
		ada, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com"})
		require.NoError(t, err)
		tagged, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Grace", LastName: "Hopper", Tags: []string{"navy"}})
		require.NoError(t, err)
		other, err := contacts.Create(e.B, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace"})
		require.NoError(t, err)
		require.Equal(t, []string{ada.ID}, find(e.A, "lov"))
		require.Equal(t, []string{tagged.ID}, find(e.A, "hop gr"), "a contact created with tags (in a transaction)")
		require.Equal(t, []string{other.ID}, find(e.B, "ada"))

		// Rename: found by the new name only.
		ada, err = contacts.Update(e.A, ada.ID, ada.Version, crm.ContactInput{FirstName: "Augusta", LastName: "King", Email: "ada@example.com"})
		require.NoError(t, err)
		require.Empty(t, find(e.A, "lovelace"), "the old name is gone from the index")
		require.Empty(t, find(e.A, "ada"))
		require.Equal(t, []string{ada.ID}, find(e.A, "aug ki"))
		require.Equal(t, []string{other.ID}, find(e.B, "lovelace"), "another tenant's contact is untouched")
		// A name removed altogether (the contact keeps its e-mail).
		ada, err = contacts.Update(e.A, ada.ID, ada.Version, crm.ContactInput{Email: "ada@example.com"})
		require.NoError(t, err)
		require.Empty(t, find(e.A, "aug"))
		ada, err = contacts.Update(e.A, ada.ID, ada.Version, crm.ContactInput{FirstName: "Ada", LastName: "King", Email: "ada@example.com"})
		require.NoError(t, err)
		require.Equal(t, []string{ada.ID}, find(e.A, "ada k"))

		// Merge: the duplicate goes, with its index; the kept name stays.
		dup, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: "Byron", Email: "byron@example.com"})
		require.NoError(t, err)
		require.ElementsMatch(t, []string{ada.ID, dup.ID}, find(e.A, "ada"))
		_, err = contacts.Merge(e.A, ada.ID, dup.ID)
		require.NoError(t, err)
		require.Equal(t, []string{ada.ID}, find(e.A, "ada"))
		require.Empty(t, find(e.A, "byron"))

		// A CSV import that updates the existing contact (matched by
		// e-mail) renames it; a new row is found by its name.
		rep, err := contacts.ImportCSV(e.A, strings.NewReader("first_name,last_name,email\nAda,Countess,ada@example.com\nMary,Somerville,mary@example.com\n"), crm.ImportOptions{})
		require.NoError(t, err)
		require.Equal(t, [2]int{1, 1}, [2]int{rep.Created, rep.Updated}, "%+v", rep)
		require.Equal(t, []string{ada.ID}, find(e.A, "countess"))
		require.Empty(t, find(e.A, "king"))
		mary := find(e.A, "somer")
		require.Len(t, mary, 1)

		// Erasure through retention: found by no name.
		eng := commerceEngine(t, e)
		r := request(t, e.A, eng, retention.KindErasure, map[string]string{crm.SubjectContact: ada.ID})
		_, err = eng.Erase(e.A, r.ID)
		require.NoError(t, err)
		require.Empty(t, find(e.A, "ada"))
		require.Empty(t, find(e.A, "countess"))
		require.Equal(t, []string{other.ID}, find(e.B, "ada"), "another tenant's namesake is untouched")

		// Delete.
		require.NoError(t, contacts.Delete(e.A, mary[0]))
		require.Empty(t, find(e.A, "mary"))
		require.Equal(t, []string{tagged.ID}, find(e.A, "grace"))
	})
}

// TestContactNameIndexIsolation tries, as tenant A through bun (the Guard
// installed, as an application runs), to reach tenant B's name index in
// its new shape: an unscoped read of the index table or of the contacts'
// name_index, a read scoped to B, a match of B's own tokens (read by the
// tables' owner) within A's scope, an update of B's contact, and copying
// B's tokens into A's own contact. Every unscoped or foreign statement is
// refused, a scoped one finds nothing of B's, and B's search is
// unchanged. On PostgreSQL a raw handle without the Guard, in A's
// transaction, still sees none of B's rows (row-level security).
func TestContactNameIndexIsolation(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a, err := e.store.Contacts().Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace"})
		require.NoError(t, err)
		b, err := e.store.Contacts().Create(e.B, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace"})
		require.NoError(t, err)
		ta, tb := mustTenant(t, e.A), mustTenant(t, e.B)
		pg := e.db.Name == "postgres"
		tokens := func(id string) []string {
			t.Helper()
			var toks []string
			if pg {
				require.NoError(t, e.db.Admin(t).NewRaw("SELECT token FROM socialcrm_crm_contact_names WHERE contact_id = ? ORDER BY token", id).Scan(ctx, &toks))
			} else { // the FTS5 index's words, kept from name_index (RequireFTSExact checks they agree)
				crm.RequireFTSExact(t, e.db.Admin(t))
				var index string
				require.NoError(t, e.db.Admin(t).NewRaw("SELECT name_index FROM socialcrm_crm_contacts WHERE id = ?", id).Scan(ctx, &index))
				toks = strings.Fields(index)
				slices.Sort(toks)
			}
			require.Len(t, toks, nameRows(e, "ada", "lovelace"))
			return toks
		}
		tokA, tokB := tokens(a.ID), tokens(b.ID)
		for _, tok := range tokB {
			require.NotContains(t, tokA, tok, "the same name has other tokens in another tenant (its own key)")
		}
		found := func(ctx context.Context, q string) []string {
			t.Helper()
			p, err := e.store.Contacts().List(ctx, crm.ContactFilter{NamePrefix: q}, crm.ListOptions{})
			require.NoError(t, err)
			var ids []string
			for _, c := range p.Items {
				ids = append(ids, c.ID)
			}
			return ids
		}

		// Each statement runs in A's transaction (the tenant setting made),
		// as the Store runs its own.
		exec := func(q string, args ...any) (int64, error) {
			var n int64
			err := tenancy.RunInTx(e.A, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
				res, err := tx.NewRaw(q, args...).Exec(ctx)
				if err == nil {
					n, err = res.RowsAffected()
				}
				return err
			})
			return n, err
		}
		match := "id IN (SELECT n.contact_id FROM socialcrm_crm_contact_names n WHERE n.tenant_id = ? AND n.token = ?)"
		matchArgs := []any{ta, tokB[0]}
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{"SELECT contact_id FROM socialcrm_crm_contact_names", nil},
			{"SELECT contact_id FROM socialcrm_crm_contact_names WHERE token = ?", []any{tokB[0]}},
			{"SELECT token FROM socialcrm_crm_contact_names WHERE tenant_id = ?", []any{tb}},
			{"SELECT id FROM socialcrm_crm_contacts WHERE name_index IS NOT NULL", nil},
			{"SELECT id FROM socialcrm_crm_contacts WHERE tenant_id = ? AND name_index IS NOT NULL", []any{tb}},
			{"SELECT id FROM socialcrm_crm_contacts WHERE " + match, matchArgs},
			{"UPDATE socialcrm_crm_contacts SET name_index = NULL WHERE tenant_id = ?", []any{tb}},
			{"DELETE FROM socialcrm_crm_contact_names WHERE tenant_id = ?", []any{tb}},
			{"INSERT INTO socialcrm_crm_contact_names (tenant_id, token, contact_id) VALUES (?, ?, ?)", []any{tb, tokA[0], b.ID}},
		} {
			_, err := exec(q.sql, q.args...)
			require.ErrorIs(t, err, tenancy.ErrUnscoped, q.sql)
		}
		// Scoped to A: B's tokens match nothing, B's contact cannot be changed.
		var ids []string
		require.NoError(t, tenancy.RunInTx(e.A, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewRaw("SELECT id FROM socialcrm_crm_contacts WHERE tenant_id = ? AND "+match, append([]any{ta}, matchArgs...)...).Scan(ctx, &ids)
		}))
		require.Empty(t, ids)
		require.NoError(t, tenancy.RunInTx(e.A, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewRaw("SELECT id FROM socialcrm_crm_contacts WHERE tenant_id = ? AND id = ?", ta, a.ID).Scan(ctx, &ids)
		}))
		require.Equal(t, []string{a.ID}, ids, "the scoped statements reach A's rows")
		n, err := exec("UPDATE socialcrm_crm_contacts SET name_index = NULL WHERE tenant_id = ? AND id = ?", ta, b.ID)
		require.NoError(t, err)
		require.Zero(t, n)
		// B's tokens copied into A's own contact stay A's: the index rows the
		// trigger writes carry A's tenant, and B's search is unchanged.
		stolen := strings.Join(tokB, " ")
		if pg {
			stolen = "{" + strings.Join(tokB, ",") + "}"
		}
		n, err = exec("UPDATE socialcrm_crm_contacts SET name_index = ? WHERE tenant_id = ? AND id = ?", stolen, ta, a.ID)
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		require.Equal(t, tokB, tokens(a.ID), "the trigger rewrote A's rows")
		require.Equal(t, []string{b.ID}, found(e.B, "ada lov"))
		require.Empty(t, found(e.A, "ada"), "A's own search computes A's tokens")
		if !pg {
			return // the FTS5 index has no tenant column: the searches above are what counts
		}
		var owners []string
		require.NoError(t, e.db.Admin(t).NewRaw("SELECT DISTINCT tenant_id FROM socialcrm_crm_contact_names WHERE contact_id = ?", a.ID).Scan(ctx, &owners))
		require.Equal(t, []string{ta}, owners)
		// Row-level security: raw SQL without the Guard, in A's transaction.
		raw := e.db.Reopen(t)
		var count int
		require.NoError(t, tenancy.RunInTx(e.A, raw, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewRaw("SELECT count(*) FROM socialcrm_crm_contact_names WHERE token IN (?) AND contact_id <> ?",
				bun.In(tokB), a.ID).Scan(ctx, &count)
		}))
		require.Zero(t, count, "no row of B's is visible in A's transaction")
	})
}

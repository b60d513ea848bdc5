package crm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/retention"
)

// Attacks on the name index rows (TableContactNames) on PostgreSQL, which
// lost their b-tree on contact_id (migration 20261211010000): the
// triggers, the data-subject requests and the retention engine find a
// contact's rows through the tokens of its current name_index only. Each
// test tries to leave a row behind, or to reach another contact's or
// tenant's, through a public path, and scans the table as its owner
// afterwards. SQLite keeps no rows there (its name index is the FTS5
// table, which requireNameIndexExact compares with every contact): the
// tests run there too and check the same outcomes through it.

// s14Rows returns the name index rows of each of ids (as the database's
// owner, every tenant's).
func s14Rows(t *testing.T, e *env, ids ...string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, id := range ids {
		out[id] = contactNameRows(t, e, id)
	}
	return out
}

// s14NoDuplicates checks that no (tenant, token, contact) row of the name
// index is there twice (the table has no key since migration
// 20261207010000).
func s14NoDuplicates(t *testing.T, e *env) {
	t.Helper()
	var dups int
	require.NoError(t, e.db.Admin(t).NewRaw("SELECT count(*) FROM (SELECT tenant_id, token, contact_id FROM "+crm.TableContactNames+
		" GROUP BY tenant_id, token, contact_id HAVING count(*) > 1) d").Scan(context.Background(), &dups))
	require.Zero(t, dups, "name index rows written twice")
}

// s14TenantRows counts the name index rows of tenant ctx (as the owner).
func s14TenantRows(t *testing.T, e *env, ctx context.Context) int {
	t.Helper()
	var n int
	require.NoError(t, e.db.Admin(t).NewRaw("SELECT count(*) FROM "+crm.TableContactNames+" WHERE tenant_id = ?", principal(ctx).TenantID).
		Scan(context.Background(), &n))
	return n
}

// s14ExportedNames returns, per contact id, how many name index rows the
// access export of subject holds.
func s14ExportedNames(t *testing.T, ctx context.Context, eng *retention.Engine, subject map[string]string) map[string]int {
	t.Helper()
	r := request(t, ctx, eng, retention.KindAccess, subject)
	files := exportFiles(t, ctx, eng, r.ID)
	out := map[string]int{}
	raw, ok := files["crm.contact_name.json"]
	if !ok {
		return out
	}
	var rows []map[string]any
	require.NoError(t, json.Unmarshal([]byte(raw), &rows))
	for _, row := range rows {
		id, _ := row["contact_id"].(string)
		require.NotEmpty(t, id, "an exported name row names its contact: %v", row)
		_, hasToken := row["token"]
		require.False(t, hasToken, "the blind index stays out of the export")
		out[id]++
	}
	return out
}

// nonZero drops the zero counts of m.
func nonZero(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// TestS14AttackNamesSubjectRequests: five people of one name ("Ada
// Lovelace": every token shared), asked for by e-mail address, phone
// number and contact id, two duplicates sharing an e-mail address with
// other names, a person without a name, and another tenant's Ada with
// the first one's e-mail address. The access export of each subject
// holds exactly her contacts' name index rows, as many as the table has;
// her erasure deletes exactly those (the receipt counts them) and no
// other contact's, in her tenant or the other; the index stays exact.
func TestS14AttackNamesSubjectRequests(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		mk := func(ctx context.Context, in crm.ContactInput, opts ...crm.CreateOption) crm.Contact {
			t.Helper()
			c, err := contacts.Create(ctx, in, opts...)
			require.NoError(t, err)
			return c
		}
		ada1 := mk(e.A, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: "ada1@example.com", Phone: "+14155550101"})
		ada2 := mk(e.A, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: "ada2@example.com", Phone: "+14155550102"})
		ada3 := mk(e.A, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace"})
		twin := mk(e.A, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: "twin@example.com"})
		dupA := mk(e.A, crm.ContactInput{FirstName: "Ada", LastName: "King", Email: "dup@example.com"})
		dupB := mk(e.A, crm.ContactInput{FirstName: "Augusta", LastName: "Byron", Email: "dup@example.com"}, crm.AllowDuplicate())
		nameless := mk(e.A, crm.ContactInput{Email: "nameless@example.com"})
		other := mk(e.B, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: "ada1@example.com"})
		requireNameIndexExact(t, e)
		s14NoDuplicates(t, e)
		all := []string{ada1.ID, ada2.ID, ada3.ID, twin.ID, dupA.ID, dupB.ID, nameless.ID, other.ID}
		before := s14Rows(t, e, all...)
		if e.db.Name == "postgres" {
			for _, c := range []crm.Contact{ada1, ada2, ada3, twin, other} {
				require.Equal(t, nameRows(e, "ada", "lovelace"), before[c.ID], "rows of %s", c.ID)
			}
			require.Zero(t, before[nameless.ID])
		}

		eng := nameEngine(t, e)
		for _, tc := range []struct {
			subject map[string]string
			ids     []string
		}{
			{map[string]string{crm.SubjectEmail: "ADA1@example.com"}, []string{ada1.ID}},
			{map[string]string{crm.SubjectPhone: "+1 415 555 0102"}, []string{ada2.ID}},
			{map[string]string{crm.SubjectContact: ada3.ID}, []string{ada3.ID}},
			{map[string]string{crm.SubjectEmail: "dup@example.com"}, []string{dupA.ID, dupB.ID}},
			{map[string]string{crm.SubjectContact: nameless.ID}, []string{nameless.ID}},
		} {
			want := map[string]int{}
			var total int64
			for _, id := range tc.ids {
				want[id] = before[id]
				total += int64(before[id])
			}
			require.Equal(t, nonZero(want), s14ExportedNames(t, e.A, eng, tc.subject), "export of %v: exactly her rows", tc.subject)

			r := request(t, e.A, eng, retention.KindErasure, tc.subject)
			rc, err := eng.Erase(e.A, r.ID)
			require.NoError(t, err)
			require.Equal(t, total, erasedOf(rc)["crm.contact_name"], "erasure of %v counts her rows", tc.subject)
			require.Equal(t, int64(len(tc.ids)), erasedOf(rc)["crm.contact"])
			for _, id := range tc.ids {
				require.Zero(t, contactNameRows(t, e, id), "a name row of %s is left", id)
			}
			requireNameIndexExact(t, e)
		}
		require.Equal(t, before[twin.ID], contactNameRows(t, e, twin.ID), "the namesake keeps her rows")
		require.Equal(t, before[other.ID], contactNameRows(t, e, other.ID), "the other tenant's Ada keeps her rows")
		require.Equal(t, before[twin.ID], s14TenantRows(t, e, e.A), "only the namesake's rows are left in the tenant")
		for ctx, id := range map[context.Context]string{e.A: twin.ID, e.B: other.ID} {
			p, err := contacts.List(ctx, crm.ContactFilter{NamePrefix: "ada lovel"}, crm.ListOptions{Limit: 10})
			require.NoError(t, err)
			require.Len(t, p.Items, 1)
			require.Equal(t, id, p.Items[0].ID)
		}
		// The other tenant's export of the same e-mail address: her rows
		// only (none of the erased Ada's were hers to begin with).
		require.Equal(t, nonZero(map[string]int{other.ID: before[other.ID]}),
			s14ExportedNames(t, e.B, eng, map[string]string{crm.SubjectEmail: "ada1@example.com"}))
	})
}

// TestS14AttackNamesLifecycle walks contacts through every public path
// that writes a name — rename, a name removed (name_index NULL) and
// given back, a merge that fills the kept contact's empty name from the
// duplicate, a CSV import that creates contacts and then renames them by
// e-mail address (and one that leaves them unchanged), Delete — checking
// after each step that the index is exact (no row outside a contact's
// keyed tokens, none missing, none twice); then erases every contact left
// by contact id and finds no row of any of them, while the other tenant's
// namesakes keep theirs.
func TestS14AttackNamesLifecycle(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		step := func(what string) {
			t.Helper()
			t.Log(what)
			requireNameIndexExact(t, e)
			s14NoDuplicates(t, e)
		}
		other, err := contacts.Create(e.B, crm.ContactInput{FirstName: "Grace", LastName: "Hopper"})
		require.NoError(t, err)
		otherRows := contactNameRows(t, e, other.ID)

		grace, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Grace", LastName: "Hopper", Email: "grace@example.com"})
		require.NoError(t, err)
		grace, err = contacts.Update(e.A, grace.ID, grace.Version, crm.ContactInput{FirstName: "Grace", LastName: "Murray", Email: "grace@example.com"})
		require.NoError(t, err)
		step("renamed")
		grace, err = contacts.Update(e.A, grace.ID, grace.Version, crm.ContactInput{Email: "grace@example.com"})
		require.NoError(t, err)
		require.Zero(t, contactNameRows(t, e, grace.ID), "a contact whose name is removed has no name row")
		step("name removed")
		grace, err = contacts.Update(e.A, grace.ID, grace.Version, crm.ContactInput{FirstName: "Grace", LastName: "Hopper", Email: "grace@example.com"})
		require.NoError(t, err)
		step("name given back")
		grace, err = contacts.Update(e.A, grace.ID, grace.Version, crm.ContactInput{FirstName: "Grace", LastName: "Hopper", Email: "grace@example.com", Stage: crm.StageCustomer})
		require.NoError(t, err)
		step("updated, same name")

		// Merge: the kept contact has no last name; the duplicate's fills it.
		keep, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Alan", Email: "alan@example.com"})
		require.NoError(t, err)
		dup, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Alan", LastName: "Turing", Phone: "+14155550177"})
		require.NoError(t, err)
		keep, err = contacts.Merge(e.A, keep.ID, dup.ID)
		require.NoError(t, err)
		require.Equal(t, "Turing", keep.LastName)
		require.Zero(t, contactNameRows(t, e, dup.ID), "the merged duplicate's rows go with it")
		step("merged")

		// CSV: create two, rename both by e-mail, import the same again.
		rep, err := contacts.ImportCSV(e.A, strings.NewReader("First Name,Last Name,Email\nKatherine,Johnson,kj@example.com\nDorothy,Vaughan,dv@example.com\n"), crm.ImportOptions{})
		require.NoError(t, err)
		require.Equal(t, 2, rep.Created)
		step("imported")
		renamed := "First Name,Last Name,Email\nKatherine,Goble,kj@example.com\nDorothea,Vaughan,dv@example.com\n"
		rep, err = contacts.ImportCSV(e.A, strings.NewReader(renamed), crm.ImportOptions{})
		require.NoError(t, err)
		require.Equal(t, 2, rep.Updated)
		step("renamed by import")
		rep, err = contacts.ImportCSV(e.A, strings.NewReader(renamed), crm.ImportOptions{})
		require.NoError(t, err)
		require.Equal(t, 2, rep.Unchanged)
		step("imported again")
		var imported []string
		for _, r := range rep.Results {
			imported = append(imported, r.ContactID)
		}
		require.Len(t, imported, 2)

		gone, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Mary", LastName: "Jackson"})
		require.NoError(t, err)
		require.NoError(t, contacts.Delete(e.A, gone.ID))
		require.Zero(t, contactNameRows(t, e, gone.ID))
		step("deleted")

		eng := nameEngine(t, e)
		ids := append([]string{grace.ID, keep.ID}, imported...)
		for _, id := range ids {
			r := request(t, e.A, eng, retention.KindErasure, map[string]string{crm.SubjectContact: id})
			_, err := eng.Erase(e.A, r.ID)
			require.NoError(t, err)
		}
		require.Zero(t, s14TenantRows(t, e, e.A), "a name row is left in the tenant")
		require.Equal(t, otherRows, contactNameRows(t, e, other.ID), "the other tenant's Grace keeps her rows")
		step("erased")
	})
}

// TestS14AttackNamesHolds: a subject hold on a contact keeps her name
// index rows through her erasure, exactly (the hold finds them through
// her name_index, as the erasure does), and once released her erasure
// leaves none; her namesake's erasure meanwhile takes only the
// namesake's rows.
func TestS14AttackNamesHolds(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		held, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Hedy", LastName: "Lamarr"})
		require.NoError(t, err)
		namesake, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Hedy", LastName: "Lamarr"})
		require.NoError(t, err)
		rows := contactNameRows(t, e, held.ID)
		eng := nameEngine(t, e)
		h, err := eng.PlaceHold(e.A, retention.Hold{Scope: retention.HoldSubject, SubjectKind: crm.SubjectContact, SubjectValue: held.ID, Reason: "litigation"})
		require.NoError(t, err)
		for _, id := range []string{held.ID, namesake.ID} {
			r := request(t, e.A, eng, retention.KindErasure, map[string]string{crm.SubjectContact: id})
			_, err := eng.Erase(e.A, r.ID)
			require.NoError(t, err)
		}
		_, err = contacts.Get(e.A, held.ID)
		require.NoError(t, err, "the held contact stays")
		require.Equal(t, rows, contactNameRows(t, e, held.ID), "her rows stay with her")
		require.Zero(t, contactNameRows(t, e, namesake.ID), "the namesake's rows go")
		requireNameIndexExact(t, e)

		_, err = eng.ReleaseHold(e.A, h.ID)
		require.NoError(t, err)
		r := request(t, e.A, eng, retention.KindErasure, map[string]string{crm.SubjectContact: held.ID})
		_, err = eng.Erase(e.A, r.ID)
		require.NoError(t, err)
		require.Zero(t, contactNameRows(t, e, held.ID))
		require.Zero(t, s14TenantRows(t, e, e.A))
		requireNameIndexExact(t, e)
	})
}

// TestS14AttackNamesConcurrentErasures: three contacts of one name are
// erased at once, by three erasures that share every token, while a
// fourth of that name is renamed over and over and a fifth is renamed
// while her own erasure runs (her renames fail once she is gone). No row
// of the erased is left; the renamed fourth's rows are exactly her last
// name's.
func TestS14AttackNamesConcurrentErasures(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		var cs []crm.Contact
		for range 5 {
			c, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Rosalind", LastName: "Franklin"})
			require.NoError(t, err)
			cs = append(cs, c)
		}
		eng := nameEngine(t, e)
		var reqs []retention.Request
		for _, c := range []crm.Contact{cs[0], cs[1], cs[2], cs[4]} {
			reqs = append(reqs, request(t, e.A, eng, retention.KindErasure, map[string]string{crm.SubjectContact: c.ID}))
		}
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for _, r := range reqs {
			wg.Go(func() {
				if _, err := eng.Erase(e.A, r.ID); err != nil {
					errs <- fmt.Errorf("erase %s: %w", r.ID, err)
				}
			})
		}
		rename := func(c crm.Contact, n int, gone bool) {
			for i := range n {
				in := crm.ContactInput{FirstName: "Rosalind", LastName: fmt.Sprintf("Franklin%c", 'a'+i%26)}
				next, err := contacts.Update(e.A, c.ID, c.Version, in)
				switch {
				case err == nil:
					c = next
				case gone && (errors.Is(err, crm.ErrNotFound) || errors.Is(err, crm.ErrConflict)):
					return
				default:
					errs <- fmt.Errorf("rename %s: %w", c.ID, err)
					return
				}
			}
		}
		wg.Go(func() { rename(cs[3], 12, false) })
		wg.Go(func() { rename(cs[4], 12, true) })
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for _, c := range []crm.Contact{cs[0], cs[1], cs[2], cs[4]} {
			require.Zero(t, contactNameRows(t, e, c.ID), "a name row of erased %s is left", c.ID)
			_, err := contacts.Get(e.A, c.ID)
			require.ErrorIs(t, err, crm.ErrNotFound)
		}
		last, err := contacts.Get(e.A, cs[3].ID)
		require.NoError(t, err)
		require.Equal(t, "Franklinl", last.LastName)
		require.Equal(t, nameRows(e, "rosalind", "franklinl"), s14PGRows(t, e, cs[3].ID), "the renamed one's rows are her last name's")
		requireNameIndexExact(t, e)
		s14NoDuplicates(t, e)
		p, err := contacts.List(e.A, crm.ContactFilter{NamePrefix: "rosa"}, crm.ListOptions{Limit: 10})
		require.NoError(t, err)
		require.Equal(t, []string{cs[3].ID}, slices.Collect(func(yield func(string) bool) {
			for _, c := range p.Items {
				if !yield(c.ID) {
					return
				}
			}
		}))
	})
}

// s14PGRows is contactNameRows on PostgreSQL and nameRows' count on
// SQLite (whose b-tree table is empty; requireNameIndexExact checks its
// FTS5 index).
func s14PGRows(t *testing.T, e *env, id string) int {
	t.Helper()
	if e.db.Name != "postgres" {
		c, err := e.store.Contacts().Get(e.A, id)
		require.NoError(t, err)
		return nameRows(e, strings.ToLower(c.FirstName), strings.ToLower(c.LastName))
	}
	return contactNameRows(t, e, id)
}

// TestS14AttackNamesRenameDuringOwnErasure: a contact (with tags) renamed
// over and over while her own erasure runs, in several rounds. Neither
// fails but as it must — the rename with ErrNotFound or ErrConflict once
// she is gone — and no name index row of hers is left. On PostgreSQL the
// rename appended its audit entry before it rewrote her name index rows
// and tags, while each erasure batch deletes such rows before it appends
// its receipt to the same audit chain: the two waited on each other and
// the server broke the deadlock by failing one (the erasure, in most
// runs, leaving her rows until the request was run again).
func TestS14AttackNamesRenameDuringOwnErasure(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		eng := nameEngine(t, e)
		for round := range 4 {
			c, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Rosalind", LastName: "Franklin", Tags: []string{"dna", "x-ray"}})
			require.NoError(t, err)
			r := request(t, e.A, eng, retention.KindErasure, map[string]string{crm.SubjectContact: c.ID})
			var wg sync.WaitGroup
			var eraseErr, renameErr error
			wg.Go(func() { _, eraseErr = eng.Erase(e.A, r.ID) })
			wg.Go(func() {
				for i := range 20 {
					in := crm.ContactInput{FirstName: "Rosalind", LastName: fmt.Sprintf("Franklin%c", 'a'+i), Tags: []string{"dna", fmt.Sprint(i)}}
					next, err := contacts.Update(e.A, c.ID, c.Version, in)
					if errors.Is(err, crm.ErrNotFound) || errors.Is(err, crm.ErrConflict) {
						return
					}
					if err != nil {
						renameErr = err
						return
					}
					c = next
				}
			})
			wg.Wait()
			require.NoError(t, eraseErr, "round %d: the erasure", round)
			require.NoError(t, renameErr, "round %d: the rename", round)
			require.Zero(t, contactNameRows(t, e, c.ID), "round %d: a name row of hers is left", round)
			_, err = contacts.Get(e.A, c.ID)
			require.ErrorIs(t, err, crm.ErrNotFound)
		}
		require.Zero(t, s14TenantRows(t, e, e.A))
		requireNameIndexExact(t, e)
		s14NoDuplicates(t, e)
	})
}

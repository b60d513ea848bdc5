package crm_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/retention"
)

// movePendingNames writes, as the tables' owner, the name index rows of
// every contact whose rows are pending (PostgreSQL), as
// Contacts.IndexPendingNames does for a tenant.
func movePendingNames(t *testing.T, e *env) {
	t.Helper()
	if e.db.Name != "postgres" {
		return
	}
	_, err := e.db.Admin(t).NewRaw(`WITH m AS (UPDATE ` + crm.TableContacts + ` SET names_pending = NULL WHERE names_pending
		RETURNING tenant_id, id, name_index)
		INSERT INTO ` + crm.TableContactNames + ` (tenant_id, token, contact_id)
		SELECT m.tenant_id, t, m.id FROM m, unnest(m.name_index[1:coalesce(array_position(m.name_index, '') - 1, cardinality(m.name_index))]) AS t`).
		Exec(context.Background())
	require.NoError(t, err)
}

// pendingNames counts, as the owner, the contacts whose name index rows
// are pending (0 on SQLite, which has no such column).
func pendingNames(t *testing.T, e *env, ctx context.Context) int {
	t.Helper()
	if e.db.Name != "postgres" {
		return 0
	}
	var n int
	require.NoError(t, e.db.Admin(t).NewRaw("SELECT count(*) FROM "+crm.TableContacts+" WHERE names_pending AND tenant_id = ?",
		principal(ctx).TenantID).Scan(context.Background(), &n))
	return n
}

// rawNameRows counts a contact's name index rows as the owner, without
// moving anything first (contactNameRows moves).
func rawNameRows(t *testing.T, e *env, id string) int {
	t.Helper()
	var n int
	require.NoError(t, e.db.Admin(t).NewRaw("SELECT count(*) FROM "+crm.TableContactNames+" WHERE contact_id = ?", id).
		Scan(context.Background(), &n))
	return n
}

// pendingSearch returns the ids a name search of q finds in ctx's tenant.
func pendingSearch(t *testing.T, e *env, ctx context.Context, q string) []string {
	t.Helper()
	p, err := e.store.Contacts().List(ctx, crm.ContactFilter{NamePrefix: q}, crm.ListOptions{Limit: 500})
	require.NoError(t, err)
	ids := []string{}
	for _, c := range p.Items {
		ids = append(ids, c.ID)
	}
	return ids
}

// TestPendingNamesSearch: on PostgreSQL a contact Create stores has no
// name index rows until IndexPendingNames moves it, and a name search
// finds it all the same — by every word and prefix, and only in its
// tenant; after the move the same searches find the same contacts and
// the rows are exact. On SQLite IndexPendingNames does nothing and the
// searches agree as well.
func TestPendingNamesSearch(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		ada, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com"})
		require.NoError(t, err)
		grace, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Grace", LastName: "Hopper"})
		require.NoError(t, err)
		other, err := contacts.Create(e.B, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace"})
		require.NoError(t, err)
		pg := e.db.Name == "postgres"
		if pg {
			require.Equal(t, 2, pendingNames(t, e, e.A))
			require.Zero(t, rawNameRows(t, e, ada.ID), "a created contact's rows are pending")
		}
		want := map[string][]string{
			"ada": {ada.ID}, "lov": {ada.ID}, "lovelace": {ada.ID}, "lovelace ad": {ada.ID}, "lovelaces": {},
			"hopp": {grace.ID}, "g": {grace.ID}, "ADA LOVELACE": {ada.ID}, "grace ada": {},
		}
		check := func(when string) {
			t.Helper()
			for q, ids := range want {
				require.ElementsMatch(t, ids, pendingSearch(t, e, e.A, q), "%s: %q", when, q)
			}
			require.Equal(t, []string{other.ID}, pendingSearch(t, e, e.B, "ada"), "%s: the other tenant's", when)
		}
		check("pending")
		n, err := contacts.IndexPendingNames(e.A)
		require.NoError(t, err)
		if pg {
			require.Equal(t, 2, n)
			require.Zero(t, pendingNames(t, e, e.A))
			require.Equal(t, 1, pendingNames(t, e, e.B), "a tenant's move leaves the other's")
			require.Equal(t, nameRows(e, "ada", "lovelace"), rawNameRows(t, e, ada.ID))
		} else {
			require.Zero(t, n)
		}
		check("moved")
		n, err = contacts.IndexPendingNames(e.A)
		require.NoError(t, err)
		require.Zero(t, n, "nothing left to move")
		requireNameIndexExact(t, e)
		s14NoDuplicates(t, e)
	})
}

// TestPendingNamesLifecycle: a contact renamed, deleted, merged or erased
// while its name index rows are pending: the searches find what they
// found before the change of this release (the new name, not the old; no
// deleted, merged-away or erased contact), then the same after the move,
// with the rows exact and none written twice.
func TestPendingNamesLifecycle(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		create := func(in crm.ContactInput) crm.Contact {
			t.Helper()
			c, err := contacts.Create(e.A, in)
			require.NoError(t, err)
			return c
		}
		renamed := create(crm.ContactInput{FirstName: "Mary", LastName: "Somerville"})
		renamed, err := contacts.Update(e.A, renamed.ID, renamed.Version, crm.ContactInput{FirstName: "Mary", LastName: "Fairfax"})
		require.NoError(t, err)
		unnamed := create(crm.ContactInput{FirstName: "Emmy", LastName: "Noether", Email: "emmy@example.com"})
		_, err = contacts.Update(e.A, unnamed.ID, unnamed.Version, crm.ContactInput{Email: "emmy@example.com"})
		require.NoError(t, err)
		deleted := create(crm.ContactInput{FirstName: "Sophie", LastName: "Germain"})
		require.NoError(t, contacts.Delete(e.A, deleted.ID))
		keep := create(crm.ContactInput{FirstName: "Alan", Email: "alan@example.com"})
		dup := create(crm.ContactInput{FirstName: "Alan", LastName: "Turing", Phone: "+14155550177"})
		keep, err = contacts.Merge(e.A, keep.ID, dup.ID)
		require.NoError(t, err)
		erased := create(crm.ContactInput{FirstName: "Hypatia", LastName: "Alexandria"})
		eng := nameEngine(t, e)
		r := request(t, e.A, eng, retention.KindErasure, map[string]string{crm.SubjectContact: erased.ID})
		_, err = eng.Erase(e.A, r.ID)
		require.NoError(t, err)
		if e.db.Name == "postgres" {
			require.Equal(t, 3, pendingNames(t, e, e.A), "the renamed, the unnamed and the kept are still pending")
			for _, id := range []string{renamed.ID, unnamed.ID, deleted.ID, keep.ID, dup.ID, erased.ID} {
				require.Zero(t, rawNameRows(t, e, id), "no rows while pending")
			}
		}
		want := map[string][]string{
			"mary": {renamed.ID}, "fairfax": {renamed.ID}, "somerville": {}, "noether": {}, "emmy": {},
			"sophie": {}, "germain": {}, "alan": {keep.ID}, "turing": {keep.ID}, "alan turing": {keep.ID},
			"hypatia": {}, "alex": {},
		}
		check := func(when string) {
			t.Helper()
			for q, ids := range want {
				require.ElementsMatch(t, ids, pendingSearch(t, e, e.A, q), "%s: %q", when, q)
			}
		}
		check("pending")
		_, err = contacts.IndexPendingNames(e.A)
		require.NoError(t, err)
		check("moved")
		require.Zero(t, pendingNames(t, e, e.A))
		if e.db.Name == "postgres" { // SQLite's rows are FTS5's (requireNameIndexExact)
			require.Equal(t, nameRows(e, "mary", "fairfax"), rawNameRows(t, e, renamed.ID))
			require.Zero(t, rawNameRows(t, e, unnamed.ID))
			require.Equal(t, nameRows(e, "alan", "turing"), rawNameRows(t, e, keep.ID))
		}
		requireNameIndexExact(t, e)
		s14NoDuplicates(t, e)
		// Renamed after the move: the rows follow the name as before.
		_, err = contacts.Update(e.A, renamed.ID, renamed.Version, crm.ContactInput{FirstName: "Mary", LastName: "Greig"})
		require.NoError(t, err)
		require.Equal(t, []string{renamed.ID}, pendingSearch(t, e, e.A, "greig"))
		require.Empty(t, pendingSearch(t, e, e.A, "fairfax"))
		requireNameIndexExact(t, e)
	})
}

// TestPendingNamesConcurrentMoves: two moves running over and over while
// contacts are created, renamed and deleted leave every contact's rows
// written once, none missing, none of a deleted contact (PostgreSQL; on
// SQLite the moves do nothing and the same checks hold).
func TestPendingNamesConcurrentMoves(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		done := make(chan struct{})
		for range 2 {
			wg.Go(func() {
				for {
					if _, err := contacts.IndexPendingNames(e.A); err != nil {
						errs <- fmt.Errorf("move: %w", err)
						return
					}
					select {
					case <-done:
						return
					default:
					}
				}
			})
		}
		var writers sync.WaitGroup
		for w := range 2 {
			writers.Go(func() {
				for i := range 15 {
					c, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Rosalind", LastName: fmt.Sprintf("Franklin%d", w*100+i)})
					if err != nil {
						errs <- fmt.Errorf("create: %w", err)
						return
					}
					switch i % 3 {
					case 1:
						if _, err := contacts.Update(e.A, c.ID, c.Version, crm.ContactInput{FirstName: "Rosalind", LastName: fmt.Sprintf("Elsie%d", w*100+i)}); err != nil {
							errs <- fmt.Errorf("rename: %w", err)
						}
					case 2:
						if err := contacts.Delete(e.A, c.ID); err != nil && !errors.Is(err, crm.ErrNotFound) {
							errs <- fmt.Errorf("delete: %w", err)
						}
					}
				}
			})
		}
		writers.Wait()
		close(done)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		require.Len(t, pendingSearch(t, e, e.A, "rosalind"), 20, "30 created, 10 deleted")
		require.Len(t, pendingSearch(t, e, e.A, "elsie"), 10)
		_, err := contacts.IndexPendingNames(e.A)
		require.NoError(t, err)
		require.Zero(t, pendingNames(t, e, e.A))
		s14NoDuplicates(t, e)
		requireNameIndexExact(t, e)
		require.Len(t, pendingSearch(t, e, e.A, "rosalind"), 20)
	})
}

// TestPendingNamesBound: creates alone, with no move run between them,
// leave at most PendingNamesBound + PendingNamesCheckEvery contacts of a
// tenant pending — the part of a name search that reads them stays short
// — and every contact is found by name all along (PostgreSQL; on SQLite
// nothing is pending).
func TestPendingNamesBound(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		total := crm.PendingNamesBound + 3*crm.PendingNamesCheckEvery
		most := 0
		for i := range total {
			_, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: fmt.Sprintf("L%d", i)})
			require.NoError(t, err)
			if i%crm.PendingNamesCheckEvery == 0 {
				most = max(most, pendingNames(t, e, e.A))
			}
		}
		most = max(most, pendingNames(t, e, e.A))
		require.LessOrEqual(t, most, crm.PendingNamesBound+crm.PendingNamesCheckEvery)
		if e.db.Name == "postgres" {
			require.Greater(t, most, crm.PendingNamesBound-crm.PendingNamesCheckEvery, "creates alone leave contacts pending")
		}
		require.Len(t, pendingSearch(t, e, e.A, "ada"), total)
		ones := 0
		for i := range total {
			if fmt.Sprint(i)[0] == '1' {
				ones++
			}
		}
		require.Len(t, pendingSearch(t, e, e.A, "l1"), ones, "L1, L10…L19, L100…L199")
		requireNameIndexExact(t, e)
		s14NoDuplicates(t, e)
	})
}

package crm_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

// pendingOf returns the number of pending contacts (nameindex_pending.go)
// of tenant ctx, as the superuser.
func namesPendingOf(t *testing.T, e *env, ctx context.Context) int {
	t.Helper()
	var n int
	require.NoError(t, e.db.Admin(t).NewRaw("SELECT count(*) FROM socialcrm_crm_contact_names_pending WHERE tenant_id = ?", mustTenant(t, ctx)).
		Scan(context.Background(), &n))
	return n
}

// TestNamePendingSearchRenameDeleteFlush: on PostgreSQL new contacts are
// pending (one row each, no name index rows) and a name search finds
// them as it finds indexed ones; a rename indexes the contact at once, a
// delete takes its pending row; another tenant's flush moves nothing of
// this one's and its search finds none of them; FlushNameIndex moves the
// rest, once, and the search finds the same contacts after.
func TestNamePendingSearchRenameDeleteFlush(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		pg := e.db.Name == "postgres"
		names := map[string]string{}
		var ids []string
		for _, n := range [][2]string{{"Ada", "Lovelace"}, {"Adalbert", "Lovell"}, {"Grace", "Hopper"}, {"Alan", "Turing"}} {
			c, err := contacts.Create(e.A, crm.ContactInput{FirstName: n[0], LastName: n[1]})
			require.NoError(t, err)
			names[c.ID] = n[0] + " " + n[1]
			ids = append(ids, c.ID)
		}
		queries := append(prefixQueries("adalbert", "lovelace", "hopper"), "lovel ad", "gr ho", "tur")
		if pg {
			require.Equal(t, len(ids), namesPendingOf(t, e, e.A), "every new contact pending")
		}
		checkNameSearch(t, e, e.A, names, queries)
		checkNameSearch(t, e, e.B, map[string]string{}, queries)

		// Another tenant's flush: nothing of A's moves.
		n, err := e.store.Contacts().FlushNameIndex(e.B)
		require.NoError(t, err)
		require.Zero(t, n)
		if pg {
			require.Equal(t, len(ids), namesPendingOf(t, e, e.A))
		}

		// A rename of a pending contact indexes it; a delete takes its row.
		c, err := contacts.Get(e.A, ids[0])
		require.NoError(t, err)
		in := c.ContactInput
		in.LastName = "Byron"
		_, err = contacts.Update(e.A, c.ID, c.Version, in)
		require.NoError(t, err)
		names[c.ID] = "Ada Byron"
		require.NoError(t, contacts.Delete(e.A, ids[2]))
		delete(names, ids[2])
		if pg {
			require.Equal(t, len(ids)-2, namesPendingOf(t, e, e.A), "renamed and deleted contacts are no longer pending")
		}
		queries = append(queries, prefixQueries("byron")...)
		checkNameSearch(t, e, e.A, names, queries)

		n, err = contacts.FlushNameIndex(e.A)
		require.NoError(t, err)
		if pg {
			require.Equal(t, crm.NameRows("adalbert", "lovell")+crm.NameRows("alan", "turing"), n, "the rows of the two contacts still pending")
			require.Zero(t, namesPendingOf(t, e, e.A))
		} else {
			require.Zero(t, n)
		}
		requireNameIndexExact(t, e)
		checkNameSearch(t, e, e.A, names, queries)
		n, err = contacts.FlushNameIndex(e.A)
		require.NoError(t, err)
		require.Zero(t, n, "nothing left to move")
	})
}

// TestNamePendingFlushedByCreates: every crm.PgNamesFlushEvery-th create
// of a tenant in a process flushes its pending contacts, so that no more
// than crm.PgNamesFlushEvery-1 of them are pending after any create.
func TestNamePendingFlushedByCreates(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		if e.db.Name != "postgres" {
			return
		}
		flushed := false
		for i := range crm.PgNamesFlushEvery + 2 {
			_, err := e.store.Contacts().Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: fmt.Sprint("Lovelace", i)})
			require.NoError(t, err)
			p := namesPendingOf(t, e, e.A)
			require.Less(t, p, crm.PgNamesFlushEvery, "after create %d", i)
			flushed = flushed || p < i+1
		}
		require.True(t, flushed, "a create flushed")
		requireNameIndexExact(t, e)
	})
}

// TestNamePendingSearchFlushesMany: contacts created in a transaction
// stay pending; a name search that finds more than crm.PgNamesSearchMax
// of its tenant's pending contacts still finds exactly the right ones and
// flushes them, so that the next search reads none.
func TestNamePendingSearchFlushesMany(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		names := map[string]string{}
		n := crm.PgNamesSearchMax + 3
		require.NoError(t, tenancy.RunInTx(e.A, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			for i := range n {
				name := fmt.Sprintf("Ada L%03d", i)
				c, err := e.store.Using(tx).Contacts().Create(ctx, crm.ContactInput{FirstName: "Ada", LastName: fmt.Sprintf("L%03d", i)})
				if err != nil {
					return err
				}
				names[c.ID] = name
			}
			return nil
		}))
		pg := e.db.Name == "postgres"
		if pg {
			require.Equal(t, n, namesPendingOf(t, e, e.A))
		}
		// In a read-only transaction (a caller's, or any on a hot standby)
		// the search finds them all and flushes nothing.
		require.NoError(t, tenancy.RunInTx(e.A, e.db.DB, &sql.TxOptions{ReadOnly: true}, func(ctx context.Context, tx bun.Tx) error {
			p, err := e.store.Using(tx).Contacts().List(ctx, crm.ContactFilter{NamePrefix: "ada"}, crm.ListOptions{Limit: 100})
			if err != nil {
				return err
			}
			if len(p.Items) != n {
				return fmt.Errorf("read-only search found %d contacts, want %d", len(p.Items), n)
			}
			return nil
		}))
		if pg {
			require.Equal(t, n, namesPendingOf(t, e, e.A), "a read-only search flushes nothing")
		}
		checkNameSearch(t, e, e.A, names, []string{"l012"})
		if pg {
			require.Zero(t, namesPendingOf(t, e, e.A), "the search flushed them")
		}
		checkNameSearch(t, e, e.A, names, []string{"l012", "ada", "l06", "x"})
		requireNameIndexExact(t, e)
	})
}

// TestNamePendingConcurrentFlushesAndRenames: flushes of one tenant from
// several connections at once, with renames and deletes of the pending
// contacts among them, move each contact once and leave the index exact
// (no row twice, none missing, none of a deleted contact or an old name).
func TestNamePendingConcurrentFlushesAndRenames(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		if e.db.Name != "postgres" {
			return
		}
		contacts := e.store.Contacts()
		for round := range 3 {
			var cs []crm.Contact
			for i := range 12 {
				c, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Grace", LastName: fmt.Sprintf("Hopper%d x%d", round, i)})
				require.NoError(t, err)
				cs = append(cs, c)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 32)
			for range 4 {
				wg.Go(func() {
					_, err := contacts.FlushNameIndex(e.A)
					errs <- err
				})
			}
			for i, c := range cs[:6] {
				wg.Go(func() {
					if i%2 == 0 {
						errs <- contacts.Delete(e.A, c.ID)
						return
					}
					in := c.ContactInput
					in.LastName = "Renamed" + in.LastName
					_, err := contacts.Update(e.A, c.ID, c.Version, in)
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			requireNameIndexExact(t, e) // checks, then flushes what is left
		}
	})
}

package crm_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
)

// TestNameIndexFollowsRows: name search stays exact through a delete, a
// rename, a VACUUM of the database and, on SQLite, an UPDATE of a
// contact's rowid by the tables' owner (the FTS5 index is keyed by
// rowid): each contact is found by its current name in its own tenant
// only, and on SQLite the FTS5 index holds exactly the contacts' words
// (none of the deleted contact's, none of the old name's).
func TestNameIndexFollowsRows(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		contacts := e.store.Contacts()
		create := func(ctx context.Context, first, last string) crm.Contact {
			c, err := contacts.Create(ctx, crm.ContactInput{FirstName: first, LastName: last})
			require.NoError(t, err)
			return c
		}
		ada := create(e.A, "Ada", "Lovelace")
		grace := create(e.A, "Grace", "Hopper")
		alan := create(e.A, "Alan", "Turing")
		otherAda := create(e.B, "Ada", "Lovelace")
		find := func(ctx context.Context, q string) []string {
			t.Helper()
			p, err := contacts.List(ctx, crm.ContactFilter{NamePrefix: q}, crm.ListOptions{})
			require.NoError(t, err)
			ids := []string{}
			for _, c := range p.Items {
				ids = append(ids, c.ID)
			}
			return ids
		}
		check := func() {
			t.Helper()
			require.Equal(t, []string{ada.ID}, find(e.A, "ada lov"))
			require.Equal(t, []string{otherAda.ID}, find(e.B, "ada lov"))
			require.Empty(t, find(e.A, "grace"), "deleted")
			require.Empty(t, find(e.A, "turing"), "renamed")
			require.Equal(t, []string{alan.ID}, find(e.A, "ala bab"))
			if e.db.Name == "sqlite" {
				crm.RequireFTSExact(t, e.db.Admin(t))
			}
		}

		require.NoError(t, contacts.Delete(e.A, grace.ID))
		c, err := contacts.Get(e.A, alan.ID)
		require.NoError(t, err)
		_, err = contacts.Update(e.A, alan.ID, c.Version, crm.ContactInput{FirstName: "Alan", LastName: "Babbage"})
		require.NoError(t, err)
		check()

		_, err = e.db.Admin(t).ExecContext(ctx, "VACUUM")
		require.NoError(t, err)
		check()

		if e.db.Name == "sqlite" {
			_, err = e.db.Admin(t).ExecContext(ctx, "UPDATE socialcrm_crm_contacts SET rowid = rowid + 1000 WHERE id = ?", ada.ID)
			require.NoError(t, err)
			check()
		}
	})
}

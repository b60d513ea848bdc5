package crm_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestContactCreateLooksAfterLock: on PostgreSQL a create whose address
// another transaction holds the lock of (that transaction inserting a
// contact of the same address, not yet committed) waits for the lock, and
// once the other commits, its look-up sees the contact committed while it
// waited — a snapshot taken after the locks (socialcrm_crm_contact_unclaimed,
// whose locks are one query over the keys since migration 20261212010000):
// it fails with a *DuplicateError naming that contact, and the tenant has
// the one contact with its name index rows. SQLite runs one write at a
// time and has no such wait.
func TestContactCreateLooksAfterLock(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		if e.db.Name != "postgres" {
			return
		}
		ctx := context.Background()
		contacts := e.store.Contacts()
		in := crm.ContactInput{FirstName: "Grace", LastName: "Hopper", Email: "grace@example.com", Phone: "+14155550100"}
		// Create's statement for the address, as the Store writes it, for a
		// contact then deleted.
		h := &captureHook{}
		e.db.AddQueryHook(h)
		first, err := contacts.Create(e.A, in)
		require.NoError(t, err)
		q := h.last("INSERT INTO", crm.TableContacts, "socialcrm_crm_contact_unclaimed")
		require.NotEmpty(t, q)
		require.NoError(t, contacts.Delete(e.A, first.ID))

		admin := e.db.Admin(t)
		waiting := func() int {
			t.Helper()
			var n int
			require.NoError(t, admin.NewRaw(`SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'`).Scan(ctx, &n))
			return n
		}
		require.Zero(t, waiting())
		other := e.db.Reopen(t)
		done := make(chan error, 1)
		err = tenancy.RunInTx(e.A, other, nil, func(ctx context.Context, tx bun.Tx) error {
			res, err := tx.ExecContext(ctx, q) // the first contact again, its locks held
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				return errors.Join(err, errors.New("the other transaction inserted no contact"))
			}
			go func() {
				_, err := contacts.Create(e.A, in)
				done <- err
			}()
			deadline := time.Now().Add(20 * time.Second)
			for waiting() == 0 {
				select {
				case err := <-done:
					return errors.Join(errors.New("the create did not wait for the lock"), err)
				default:
				}
				if time.Now().After(deadline) {
					return errors.New("no create waits for the lock")
				}
			}
			return nil // commits, releasing the locks
		})
		require.NoError(t, err)
		err = <-done
		var dup *crm.DuplicateError
		require.True(t, errors.As(err, &dup), "%v", err)
		require.Equal(t, first.ID, dup.ContactID)
		count, names := createCounts(t, e)
		require.Equal(t, [2]int{1, nameRows(e, "grace", "hopper")}, [2]int{count, names})
	})
}

// TestNamesTokenCollationMigration: on PostgreSQL, after migration
// 20261212010100 TableContactNames' token column compares bytes (collation
// "C") and keeps its b-tree; the migration converts a table of the
// database's collation with its rows in place, and changes nothing when
// run again; the name search finds exactly the contacts it should, names
// of letters beyond ASCII and of both cases included, before and after,
// and in the tenant's own contacts only. On SQLite it does nothing.
func TestNamesTokenCollationMigration(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		contacts := e.store.Contacts()
		names := map[string]string{}
		for _, n := range [][2]string{{"Zoë", "Ångström"}, {"Ada", "Lovelace"}, {"adam", "LOVELL"}, {"Émile", "Zola"}} {
			c, err := contacts.Create(e.A, crm.ContactInput{FirstName: n[0], LastName: n[1]})
			require.NoError(t, err)
			names[c.ID] = n[0] + " " + n[1]
		}
		_, err := contacts.Create(e.B, crm.ContactInput{FirstName: "Zoë", LastName: "Lovelace"})
		require.NoError(t, err)
		queries := append(prefixQueries("zoë", "ångström", "lovelace", "émile"), "ada lov", "zo zol", "ÅNG", "lovell ad")
		pg := e.db.Name == "postgres"
		raw := e.db.Admin(t)
		shape := func() (collation string, indexes []string, rows int) {
			t.Helper()
			require.NoError(t, raw.NewRaw(`SELECT coalesce(c.collname, '') FROM pg_attribute AS a LEFT JOIN pg_collation AS c ON c.oid = a.attcollation
				WHERE a.attrelid = 'socialcrm_crm_contact_names'::regclass AND a.attname = 'token'`).Scan(ctx, &collation))
			require.NoError(t, raw.NewRaw(`SELECT indexname || ' ' || regexp_replace(indexdef, '^.* USING ', '') FROM pg_indexes
				WHERE schemaname = current_schema() AND tablename = 'socialcrm_crm_contact_names' ORDER BY indexname`).Scan(ctx, &indexes))
			require.NoError(t, raw.NewRaw("SELECT count(*) FROM socialcrm_crm_contact_names").Scan(ctx, &rows))
			return collation, indexes, rows
		}
		check := func() {
			t.Helper()
			requireNameIndexExact(t, e)
			checkNameSearch(t, e, e.A, names, queries)
			checkNameSearch(t, e, e.B, nil, []string{"ada", "ång", "émi"})
		}
		wantIndexes := []string{"socialcrm_crm_contact_names_token btree (token)"}
		var rows int
		if pg {
			collation, indexes, n := shape()
			require.Equal(t, "C", collation)
			require.Equal(t, wantIndexes, indexes)
			rows = n
			// The release before's column, of the database's collation.
			_, err := raw.ExecContext(ctx, `ALTER TABLE socialcrm_crm_contact_names ALTER COLUMN token TYPE text COLLATE "default"`)
			require.NoError(t, err)
			collation, _, _ = shape()
			require.Equal(t, "default", collation)
		}
		check()
		for range 2 {
			require.NoError(t, crm.RunMigration(ctx, e.db.ReopenOwner(t), "20261212010100"))
			if pg {
				collation, indexes, n := shape()
				require.Equal(t, []any{"C", wantIndexes, rows}, []any{collation, indexes, n})
			}
			check()
		}
	})
}

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
// another transaction holds (that transaction inserting a contact of the
// same address, marked as its holder, not yet committed) waits for it on
// the holders' unique index (create_pgclaim.go), and once the other
// commits, fails with a *DuplicateError naming that contact, and the
// tenant has the one contact with its name index rows. SQLite runs one
// write at a time and has no such wait.
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
		q := h.last("INSERT INTO", crm.TableContacts, "email_claim")
		require.NotEmpty(t, q)
		require.NoError(t, contacts.Delete(e.A, first.ID))

		admin := e.db.Admin(t)
		waiting := func() int {
			t.Helper()
			var n int
			require.NoError(t, admin.NewRaw(`SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event IN ('advisory', 'transactionid')`).Scan(ctx, &n))
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

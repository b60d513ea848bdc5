package crm_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestContactUpdateRacesCreateOfNewAddress: on PostgreSQL an update that
// gives a contact an e-mail address a create in another transaction
// marked and has not committed waits on the holders' index; once the
// create commits, the update failed with the database's unique violation.
// It now runs again (its trigger then sees the holder): it succeeds, the
// create's contact holds the address, and the address has one holder.
func TestContactUpdateRacesCreateOfNewAddress(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		if e.db.Name != "postgres" {
			return // one writer at a time: no such race
		}
		x, err := e.store.Contacts().Create(e.A, crm.ContactInput{FirstName: "Xavier", Email: "old@example.com"})
		require.NoError(t, err)

		created, done, release := make(chan int64, 1), make(chan error, 1), make(chan struct{})
		var made crm.Contact
		go func() {
			done <- tenancy.RunInTx(e.A, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
				var pid int64
				if err := tx.NewRaw("SELECT pg_backend_pid()").Scan(ctx, &pid); err != nil {
					close(created)
					return err
				}
				var err error
				made, err = e.store.Using(tx).Contacts().Create(ctx, crm.ContactInput{FirstName: "Nora", Email: "new@example.com"})
				if err != nil {
					close(created)
					return err
				}
				created <- pid
				<-release
				return nil
			})
		}()
		pid, ok := <-created
		if !ok {
			t.Fatalf("the create failed: %v", <-done)
		}

		updated := make(chan error, 1)
		go func() {
			_, err := e.store.Contacts().Update(e.A, x.ID, x.Version, crm.ContactInput{FirstName: "Xavier", Email: "new@example.com"})
			updated <- err
		}()
		// Wait until the update waits for the create's transaction.
		admin := e.db.Admin(t)
		for deadline := time.Now().Add(10 * time.Second); ; {
			var n int
			require.NoError(t, admin.NewRaw("SELECT count(*) FROM pg_stat_activity WHERE ?::int = ANY(pg_blocking_pids(pid))", pid).
				Scan(context.Background(), &n))
			if n > 0 {
				break
			}
			select {
			case err := <-updated:
				close(release)
				require.NoError(t, <-done)
				t.Fatalf("the update ended before the create committed: %v", err)
			case <-time.After(10 * time.Millisecond):
			}
			require.True(t, time.Now().Before(deadline), "the update never waited for the create")
		}
		close(release)
		require.NoError(t, <-done)
		require.NoError(t, <-updated, "the update runs again once the create commits")

		got, err := e.store.Contacts().Get(e.A, x.ID)
		require.NoError(t, err)
		require.Equal(t, "new@example.com", got.Email)
		require.Equal(t, x.Version+1, got.Version)
		requireOneHolder(t, e)
		var holder string
		require.NoError(t, admin.NewRaw("SELECT id FROM "+crm.TableContacts+" WHERE email_claim AND id IN (?, ?)", x.ID, made.ID).
			Scan(context.Background(), &holder))
		require.Equal(t, made.ID, holder, "the create's contact holds the address")
	})
}

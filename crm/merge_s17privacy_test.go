package crm_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS17MergeRecordsGoWithTheKeptContact: the records of contacts merged
// into another (ids only, but they tie a person's former ids together)
// do not outlive the contact kept. Once cyd was merged into amy and amy
// into bea, bea holds both records; Contacts.Delete of bea removes them,
// and a sweep that erases a kept contact by age (the contact category's
// own erase, which a request does not run first) removes the records of
// the contacts merged into it. The other
// tenant's record, and a record of a contact still kept, stay.
func TestS17MergeRecordsGoWithTheKeptContact(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		e, _ := storageEnv(t, db, 0)
		s := e.store
		create := func(ctx context.Context, first, email string) crm.Contact {
			t.Helper()
			c, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: first, Email: email})
			require.NoError(t, err)
			return c
		}
		merge := func(ctx context.Context, keep, dup crm.Contact) {
			t.Helper()
			_, err := s.Contacts().Merge(ctx, keep.ID, dup.ID)
			require.NoError(t, err)
		}
		amy, bea, cyd := create(e.A, "Amy", "amy@example.com"), create(e.A, "Bea", "bea@example.com"), create(e.A, "Cyd", "cyd@example.com")
		merge(e.A, amy, cyd)
		merge(e.A, bea, amy)
		o1, o2 := create(e.B, "Amy", "amy@example.com"), create(e.B, "Bea", "bea@example.com")
		merge(e.B, o2, o1)
		require.Equal(t, 2, countRows(t, e, e.A, crm.TableContactMerges), "cyd's record was pointed at bea")

		require.NoError(t, s.Contacts().Delete(e.A, bea.ID))
		require.Zero(t, countRows(t, e, e.A, crm.TableContactMerges), "the records of the ids merged into a deleted contact go with it")
		require.Equal(t, 1, countRows(t, e, e.B, crm.TableContactMerges), "the other tenant's record stays")

		// A sweep erases contacts by age through the contact category.
		eve, fay := create(e.A, "Eve", "eve@example.com"), create(e.A, "Fay", "fay@example.com")
		merge(e.A, eve, fay)
		require.Equal(t, 1, countRows(t, e, e.A, crm.TableContactMerges))
		p := retention.Policy{Name: "contacts a day", Rules: []retention.Rule{{Category: "crm.contact", Period: retention.Day}}}
		eng, err := retention.New(e.db.DB, retention.WithClock(e.clock.Now), retention.WithPolicy(p))
		require.NoError(t, err)
		require.NoError(t, eng.Register(e.store.Categories()...))
		// The sweep visits the tenants of the tenancy store.
		_, err = db.Admin(t).NewRaw("INSERT INTO socialcrm_tenants (id, name, status, created_at) VALUES (?, 'A', 'active', ?)",
			principal(e.A).TenantID, e.clock.Now()).Exec(context.Background())
		require.NoError(t, err)
		e.clock.Advance(2 * retention.Day)
		gus := create(e.A, "Gus", "gus@example.com") // not due
		hal := create(e.A, "Hal", "hal@example.com")
		merge(e.A, gus, hal)
		rep, err := eng.Sweep(tenancy.System(context.Background(), "s17"), e.clock.Now())
		require.NoError(t, err)
		swept := false
		for _, rc := range rep.Receipts {
			if rc.Category == "crm.contact" && rc.Tenant == principal(e.A).TenantID {
				require.Equal(t, int64(1), rc.Erased, "eve, swept")
				swept = true
			}
		}
		require.True(t, swept, "the sweep erased eve: %+v", rep.Receipts)
		require.Equal(t, 1, countRows(t, e, e.A, crm.TableContactMerges), "only the record of hal, merged into gus (not due), is left")
		_, err = s.Contacts().Get(e.A, gus.ID)
		require.NoError(t, err)
	}, setup)
}

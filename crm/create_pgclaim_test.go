package crm_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

// requireDuplicateOf creates a contact with email and phone in ctx's
// tenant and requires the duplicate error naming want on field.
func requireDuplicateOf(t *testing.T, e *env, ctx context.Context, email, phone, want, field string) {
	t.Helper()
	_, err := e.store.Contacts().Create(ctx, crm.ContactInput{FirstName: "Probe", Email: email, Phone: phone})
	var dup *crm.DuplicateError
	require.True(t, errors.As(err, &dup), "create of %s %s: %v", email, phone, err)
	require.Equal(t, want, dup.ContactID, "create of %s %s", email, phone)
	require.Equal(t, field, dup.Field)
}

// requireOneHolder checks, on PostgreSQL, that each e-mail address and
// phone number some contact holds has exactly one contact marked as its
// holder (create_pgclaim.go), in every tenant.
func requireOneHolder(t *testing.T, e *env) {
	t.Helper()
	if e.db.Name != "postgres" {
		return
	}
	for _, col := range []string{"email", "phone"} {
		var bad int
		require.NoError(t, e.db.Admin(t).NewRaw(`SELECT count(*) FROM (SELECT tenant_id, `+col+`_index
			FROM `+crm.TableContacts+` WHERE `+col+`_index IS NOT NULL
			GROUP BY tenant_id, `+col+`_index HAVING count(*) FILTER (WHERE `+col+`_claim) <> 1) x`).Scan(context.Background(), &bad))
		require.Zero(t, bad, "%s addresses without exactly one holder", col)
	}
}

// TestContactDuplicateCheckFollowsHolders: the duplicate check keeps its
// rule — a create of an address (number) some contact of the tenant has
// fails naming the oldest such contact — through every way the contacts
// holding it change: a duplicate stored with AllowDuplicate while
// another holds the address, or alone; the holder deleted, its address
// changed, its number removed; on both databases. On PostgreSQL, where
// the check is the holders' unique index, each address and number has
// exactly one holder after every step, and a duplicate created through a
// Store bound to the caller's transaction fails with the same error and
// leaves that transaction usable.
func TestContactDuplicateCheckFollowsHolders(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		create := func(in crm.ContactInput, opts ...crm.CreateOption) crm.Contact {
			t.Helper()
			c, err := contacts.Create(e.A, in, opts...)
			require.NoError(t, err)
			requireOneHolder(t, e)
			return c
		}
		// A holder and a duplicate of it: the holder goes, the duplicate
		// holds the address.
		ada := create(crm.ContactInput{FirstName: "Ada", Email: "ada@example.com", Phone: "+14155550100"})
		twin := create(crm.ContactInput{FirstName: "Ada", LastName: "Twin", Email: "ada@example.com"}, crm.AllowDuplicate())
		requireDuplicateOf(t, e, e.A, "ada@example.com", "", ada.ID, "email")
		requireDuplicateOf(t, e, e.A, "", "+14155550100", ada.ID, "phone")
		require.NoError(t, contacts.Delete(e.A, ada.ID))
		requireOneHolder(t, e)
		requireDuplicateOf(t, e, e.A, "ada@example.com", "", twin.ID, "email")
		_, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Free", Phone: "+14155550100"}) // its holder is gone
		require.NoError(t, err)
		requireOneHolder(t, e)

		// A duplicate created alone holds the address.
		solo := create(crm.ContactInput{FirstName: "Solo", Email: "solo@example.com"}, crm.AllowDuplicate())
		requireDuplicateOf(t, e, e.A, "solo@example.com", "", solo.ID, "email")

		// The holder's address changes: the older duplicate of the old
		// address holds it; the new address is held by the holder if no
		// one had it.
		grace := create(crm.ContactInput{FirstName: "Grace", Email: "grace@example.com", Phone: "+14155550111"})
		older := create(crm.ContactInput{FirstName: "Grace", LastName: "Older", Email: "grace@example.com"}, crm.AllowDuplicate())
		younger := create(crm.ContactInput{FirstName: "Grace", LastName: "Younger", Email: "grace@example.com"}, crm.AllowDuplicate())
		grace, err = contacts.Update(e.A, grace.ID, grace.Version, crm.ContactInput{FirstName: "Grace", Email: "hopper@example.com"})
		require.NoError(t, err)
		requireOneHolder(t, e)
		requireDuplicateOf(t, e, e.A, "grace@example.com", "", older.ID, "email")
		requireDuplicateOf(t, e, e.A, "hopper@example.com", "", grace.ID, "email")
		_, err = contacts.Create(e.A, crm.ContactInput{FirstName: "Free", Phone: "+14155550111"}) // the number was removed
		require.NoError(t, err)
		require.NoError(t, contacts.Delete(e.A, older.ID))
		requireOneHolder(t, e)
		requireDuplicateOf(t, e, e.A, "grace@example.com", "", younger.ID, "email")
		// An update to an address another contact holds keeps that one
		// the holder.
		younger, err = contacts.Update(e.A, younger.ID, younger.Version, crm.ContactInput{FirstName: "Grace", Email: "solo@example.com"})
		require.NoError(t, err)
		requireOneHolder(t, e)
		requireDuplicateOf(t, e, e.A, "solo@example.com", "", solo.ID, "email")
		_, err = contacts.Create(e.A, crm.ContactInput{FirstName: "Free", Email: "grace@example.com"}) // no one has it now
		require.NoError(t, err)

		// Another tenant's address is not this tenant's.
		_, err = contacts.Create(e.B, crm.ContactInput{FirstName: "Solo", Email: "solo@example.com"})
		require.NoError(t, err)
		requireOneHolder(t, e)

		// In the caller's transaction: the duplicate error, and the
		// transaction goes on.
		var after crm.Contact
		t0 := time.Now()
		defer func() { t.Log("tx part", time.Since(t0)) }()
		err = tenancy.RunInTx(e.A, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := e.store.Using(tx).Contacts().Create(ctx, crm.ContactInput{FirstName: "Again", Email: "solo@example.com"})
			var dup *crm.DuplicateError
			if !errors.As(err, &dup) || dup.ContactID != solo.ID {
				return errors.Join(errors.New("no duplicate error naming the holder"), err)
			}
			after, err = e.store.Using(tx).Contacts().Create(ctx, crm.ContactInput{FirstName: "After", Email: "after@example.com"})
			return err
		})
		require.NoError(t, err)
		requireOneHolder(t, e)
		requireDuplicateOf(t, e, e.A, "after@example.com", "", after.ID, "email")
	})
}

// TestContactCreateConcurrentWithAllowDuplicate: creates of one address
// at once, half of them with AllowDuplicate: every AllowDuplicate create
// stores its contact (on PostgreSQL one that met a holder not yet
// committed runs again), at most one of the others does and the rest get
// the duplicate error, and the address has exactly one holder.
func TestContactCreateConcurrentWithAllowDuplicate(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		const n = 4
		var wg sync.WaitGroup
		plain, dup := make([]error, n), make([]error, n)
		for i := range n {
			in := crm.ContactInput{FirstName: "Grace", Email: "grace@example.com", Phone: "+14155550100"}
			wg.Go(func() { _, plain[i] = e.store.Contacts().Create(e.A, in) })
			wg.Go(func() { _, dup[i] = e.store.Contacts().Create(e.A, in, crm.AllowDuplicate()) })
		}
		wg.Wait()
		require.NoError(t, errors.Join(dup...))
		stored := 0
		for _, err := range plain {
			if err == nil {
				stored++
				continue
			}
			require.ErrorIs(t, err, crm.ErrDuplicate)
		}
		require.LessOrEqual(t, stored, 1)
		requireOneHolder(t, e)
		count, _ := createCounts(t, e)
		require.Equal(t, n+stored, count)
	})
}

// TestContactClaimsMigration: migration 20261214010000 marks, for
// contacts stored before it (their marks cleared here, as before it), the
// oldest contact of each address and number as its holder, in every
// tenant; run again it changes nothing; the duplicate check then names
// the oldest. On SQLite it does nothing.
func TestContactClaimsMigration(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		var first []crm.Contact
		for _, tctx := range []context.Context{e.A, e.B} {
			c, err := contacts.Create(tctx, crm.ContactInput{FirstName: "Ada", Email: "ada@example.com", Phone: "+14155550100"})
			require.NoError(t, err)
			first = append(first, c)
			for range 2 {
				_, err := contacts.Create(tctx, crm.ContactInput{FirstName: "Ada", Email: "ada@example.com", Phone: "+14155550100"}, crm.AllowDuplicate())
				require.NoError(t, err)
			}
		}
		if e.db.Name == "postgres" {
			ctx := context.Background()
			_, err := e.db.Admin(t).ExecContext(ctx, "UPDATE "+crm.TableContacts+" SET email_claim = NULL, phone_claim = NULL")
			require.NoError(t, err)
			for range 2 {
				require.NoError(t, crm.RunMigration(ctx, e.db.ReopenOwner(t), "20261214010000"))
				requireOneHolder(t, e)
			}
		}
		for i, tctx := range []context.Context{e.A, e.B} {
			requireDuplicateOf(t, e, tctx, "ada@example.com", "", first[i].ID, "email")
			requireDuplicateOf(t, e, tctx, "", "+14155550100", first[i].ID, "phone")
		}
	})
}

package crm_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// createCounts counts, as the tables' owner, the contacts, the name index
// rows and the contacts whose name_tokens column is not NULL.
func createCounts(t *testing.T, e *env) (contacts, names, tokens int) {
	t.Helper()
	ctx := context.Background()
	raw := e.db.Admin(t)
	for _, q := range []struct {
		n   *int
		sql string
	}{
		{&contacts, "SELECT count(*) FROM socialcrm_crm_contacts"},
		{&names, "SELECT count(*) FROM socialcrm_crm_contact_names"},
		{&tokens, "SELECT count(*) FROM socialcrm_crm_contacts WHERE name_tokens IS NOT NULL"},
	} {
		require.NoError(t, raw.NewRaw(q.sql).Scan(ctx, q.n))
	}
	return contacts, names, tokens
}

// TestContactCreateOneStatement checks the single statement Create writes
// a contact with: the name index rows appear with it and name search finds
// it, the tokens it carries are gone at rest, and a duplicate or a missing
// company stores nothing at all — neither the contact nor index rows.
func TestContactCreateOneStatement(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		ada, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com", Phone: "+14155550100"})
		require.NoError(t, err)
		n, names, tokens := createCounts(t, e)
		require.Equal(t, 1, n)
		require.Equal(t, len("ada")+len("lovelace"), names, "one row per prefix of each name word")
		require.Zero(t, tokens, "name_tokens is NULL at rest")
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
			n2, names2, _ := createCounts(t, e)
			require.Equal(t, [2]int{n, names}, [2]int{n2, names2}, "a duplicate stores nothing")
		}
		// A company of no record of the tenant: a validation error, nothing stored.
		_, err = contacts.Create(e.A, crm.ContactInput{FirstName: "Byron", CompanyID: tenancy.NewID()})
		var verr *crm.ValidationError
		require.True(t, errors.As(err, &verr), "%v", err)
		require.Equal(t, "company_id", verr.Fields[0].Field)
		n2, names2, _ := createCounts(t, e)
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
		require.Empty(t, got.NameTokens)
		n2, names2, tokens = createCounts(t, e)
		require.Equal(t, [3]int{n + 2, names + 2*len("ada"), 0}, [3]int{n2, names2, tokens})

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
		n3, names3, _ := createCounts(t, e)
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
		count, names, _ := createCounts(t, e)
		require.Equal(t, [2]int{1, len("grace")}, [2]int{count, names})
	})
}

// TestContactCreateRoundTrips counts, on PostgreSQL, the round trips of
// creates at the connection: one each — the tenant setting, the
// identifiers' locks and the statement travel together (a create in a
// transaction of its own took five). The counter counts a request written
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
			return crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: fmt.Sprintf("ada%d@example.com", i), Phone: fmt.Sprintf("+1415555010%d", i)}
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

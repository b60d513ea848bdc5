package crm_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
)

// TestCreateRefusesDuplicates: a second contact with the e-mail address
// (in any case and spacing) or the phone number (in any format) of another
// contact of the tenant is a *DuplicateError naming that contact and no
// value, and stores nothing; AllowDuplicate stores it; another tenant may
// have the same address.
func TestCreateRefusesDuplicates(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db, crm.WithDefaultRegion("US"))
		c := e.store.Contacts()
		ada, err := c.Create(e.A, crm.ContactInput{FirstName: "Ada", Email: "ada@example.com", Phone: "+14155550100"})
		require.NoError(t, err)

		for _, in := range []struct {
			contact crm.ContactInput
			field   string
		}{
			{crm.ContactInput{FirstName: "Ada L", Email: "  ADA@Example.com "}, "email"},
			{crm.ContactInput{FirstName: "Ada L", Email: "other@example.com", Phone: "(415) 555-0100"}, "phone"},
			{crm.ContactInput{FirstName: "Ada L", Phone: "+1 415-555-0100", Tags: []string{"t"}}, "phone"},
		} {
			_, err := c.Create(e.A, in.contact)
			var dup *crm.DuplicateError
			require.ErrorAs(t, err, &dup)
			require.True(t, errors.Is(err, crm.ErrDuplicate))
			require.Equal(t, ada.ID, dup.ContactID)
			require.Equal(t, in.field, dup.Field)
			b, _ := json.Marshal(dup)
			for _, s := range []string{err.Error(), string(b)} {
				require.NotContains(t, s, "ada@example.com")
				// The number's digits, not "555" alone: a contact id in the
				// message may hold that by chance.
				require.NotContains(t, s, "5550100")
				require.NotContains(t, s, "555-0100")
			}
		}
		require.Equal(t, 1, count(t, e.A, c.List, crm.ContactFilter{}), "a refused duplicate stores nothing")

		twin, err := c.Create(e.A, crm.ContactInput{FirstName: "Ada", Email: "ada@example.com"}, crm.AllowDuplicate())
		require.NoError(t, err)
		require.NotEqual(t, ada.ID, twin.ID)
		_, err = c.Create(e.B, crm.ContactInput{FirstName: "Ada", Email: "ada@example.com", Phone: "+14155550100"})
		require.NoError(t, err, "another tenant's contacts are not duplicates")
		p, err := c.List(e.A, crm.ContactFilter{Email: "ada@example.com"}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 2)
	}, setup)
}

// TestPhoneNumbersInAnyFormat: with a default region, national numbers are
// stored in E.164 and any format finds them — numbers stored before the
// region was set included; without one, a national number is refused.
func TestPhoneNumbersInAnyFormat(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		plain := newEnv(t, db)
		_, err := plain.store.Contacts().Create(plain.A, crm.ContactInput{FirstName: "Nat", Phone: "(555) 123-4567"})
		var verr *crm.ValidationError
		require.ErrorAs(t, err, &verr)
		require.True(t, verr.Has("phone", "e164"))
		old, err := plain.store.Contacts().Create(plain.A, crm.ContactInput{FirstName: "Old", Phone: "+1 212 555 0199"})
		require.NoError(t, err)
		require.Equal(t, "+12125550199", old.Phone)

		us, err := crm.New(db.DB, plain.vault, crm.WithDefaultRegion("us"))
		require.NoError(t, err)
		c := us.Contacts()
		nat, err := c.Create(plain.A, crm.ContactInput{FirstName: "Nat", Phone: "(555) 123-4567"})
		require.NoError(t, err)
		require.Equal(t, "+15551234567", nat.Phone)
		for _, q := range []string{"+15551234567", "555.123.4567", "+1 (555) 123-4567", " 5551234567 "} {
			p, err := c.List(plain.A, crm.ContactFilter{Phone: q}, crm.ListOptions{})
			require.NoError(t, err)
			require.Len(t, p.Items, 1, q)
			require.Equal(t, nat.ID, p.Items[0].ID, q)
		}
		p, err := c.List(plain.A, crm.ContactFilter{Phone: "(212) 555-0199"}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 1, "a number stored before the region was set")
		require.Equal(t, old.ID, p.Items[0].ID)
		gb, err := crm.New(db.DB, plain.vault, crm.WithDefaultRegion("GB"))
		require.NoError(t, err)
		p, err = gb.Contacts().List(plain.A, crm.ContactFilter{Phone: "001 212 555 0199"}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 1, "an international prefix of the region")

		for _, bad := range []string{"", "XX", "USA"} {
			_, err := crm.New(db.DB, plain.vault, crm.WithDefaultRegion(bad))
			require.ErrorIs(t, err, crm.ErrConfig, bad)
		}
	}, setup)
}

// TestConcurrentCreatesOfOneAddress: of several creates of one e-mail
// address at once, one stores a contact and the others are duplicates of it.
func TestConcurrentCreatesOfOneAddress(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		const n = 6
		errs := make(chan error, n)
		for i := range n {
			go func() {
				_, err := e.store.Contacts().Create(e.A, crm.ContactInput{FirstName: fmt.Sprint("P", i), Email: "same@example.com"})
				errs <- err
			}()
		}
		created := 0
		for range n {
			err := <-errs
			if err == nil {
				created++
				continue
			}
			require.ErrorIs(t, err, crm.ErrDuplicate)
		}
		require.Equal(t, 1, created)
		require.Equal(t, 1, count(t, e.A, e.store.Contacts().List, crm.ContactFilter{}))
	})
}

package crm_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

func newContact(first, last, email string) crm.ContactInput {
	return crm.ContactInput{FirstName: first, LastName: last, Email: email}
}

func TestContactCreateSealsIdentifiers(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		in := crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: "  Ada@Example.COM ", Phone: "+14155550100",
			Source: "instagram", UTM: crm.UTM{Source: "ig", Medium: "social", Campaign: "spring"},
			Birthday: crm.Birthday{Month: 12, Day: 10}, Preferences: map[string]string{"language": "en"}, Tags: []string{"vip", " vip", "rings"}}
		c, err := contacts.Create(e.A, in)
		require.NoError(t, err)
		require.Equal(t, crm.StageLead, c.Stage)
		require.Equal(t, "ada@example.com", c.Email)
		require.Equal(t, []string{"vip", "rings"}, c.Tags)
		require.EqualValues(t, 1, c.Version)

		got, err := contacts.Get(e.A, c.ID)
		require.NoError(t, err)
		require.Equal(t, "ada@example.com", got.Email)
		require.Equal(t, "+14155550100", got.Phone)
		require.Equal(t, in.UTM, got.UTM)
		require.Equal(t, in.Birthday, got.Birthday)
		require.Equal(t, in.Preferences, got.Preferences)

		// Neither the address nor the number is stored in clear.
		var raw []map[string]any
		require.NoError(t, tenancy.RunInTx(e.A, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewRaw("SELECT * FROM ? WHERE tenant_id = ?", bun.Ident(crm.TableContacts), mustTenant(t, ctx)).Scan(ctx, &raw)
		}))
		require.Len(t, raw, 1)
		dump := fmt.Sprint(raw)
		for _, secret := range []string{"ada@example.com", "example.com", "4155550100"} {
			require.NotContains(t, strings.ToLower(dump), secret)
		}

		// Found by exact e-mail (normalized) and phone, not by a prefix.
		for _, f := range []crm.ContactFilter{{Email: "ADA@example.com"}, {Phone: "+14155550100"}} {
			p, err := contacts.List(e.A, f, crm.ListOptions{})
			require.NoError(t, err)
			require.Len(t, p.Items, 1, "filter %+v", f)
			require.Equal(t, c.ID, p.Items[0].ID)
		}
		p, err := contacts.List(e.A, crm.ContactFilter{Email: "ada@example"}, crm.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, p.Items)
	})
}

func mustTenant(t *testing.T, ctx context.Context) string {
	tid, err := tenancy.TenantID(ctx)
	require.NoError(t, err)
	return tid
}

func TestContactFiltersAndPages(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		owner := tenancy.NewID()
		names := [][2]string{{"John", "Smith"}, {"Jane", "Smithers"}, {"Johan", "Bach"}, {"Mary", "Jones"}, {"Bob", "Smi_th"}}
		ids := map[string]string{}
		for i, n := range names {
			c := newContact(n[0], n[1], "")
			if i%2 == 0 {
				c.OwnerID = owner
				c.Tags = []string{"vip"}
			}
			if i == 3 {
				c.Stage = crm.StageCustomer
			}
			created, err := contacts.Create(e.A, c)
			require.NoError(t, err)
			ids[n[0]] = created.ID
		}
		e.clock.Advance(time.Hour)
		mary, err := contacts.Get(e.A, ids["Mary"])
		require.NoError(t, err)
		mary.Tags = []string{"vip", "new"}
		_, err = contacts.Update(e.A, mary.ID, mary.Version, mary.ContactInput)
		require.NoError(t, err)

		list := func(f crm.ContactFilter) []string {
			t.Helper()
			var out []string
			for c, err := range crm.All(e.A, crm.ListOptions{Limit: 2}, func(ctx context.Context, o crm.ListOptions) (crm.Page[crm.Contact], error) {
				return contacts.List(ctx, f, o)
			}) {
				require.NoError(t, err)
				out = append(out, c.FirstName)
			}
			return out
		}
		require.Equal(t, []string{"John", "Jane", "Johan", "Mary", "Bob"}, list(crm.ContactFilter{}))
		require.Equal(t, []string{"John", "Jane", "Bob"}, list(crm.ContactFilter{NamePrefix: "smi"}))
		require.Equal(t, []string{"Bob"}, list(crm.ContactFilter{NamePrefix: "Smi_"}), "LIKE wildcards in the prefix are literal")
		require.Equal(t, []string{"John", "Johan"}, list(crm.ContactFilter{NamePrefix: "jOh"}))
		require.Equal(t, []string{"John"}, list(crm.ContactFilter{NamePrefix: "john  sm"}))
		require.Equal(t, []string{"Mary"}, list(crm.ContactFilter{Stage: crm.StageCustomer}))
		require.Equal(t, []string{"John", "Johan", "Bob"}, list(crm.ContactFilter{OwnerID: owner}))
		require.Equal(t, []string{"John", "Johan", "Mary", "Bob"}, list(crm.ContactFilter{Tag: "vip"}))
		require.Equal(t, []string{"Mary"}, list(crm.ContactFilter{Tag: "new"}))
		require.Equal(t, []string{"Mary"}, list(crm.ContactFilter{UpdatedSince: e.clock.Now()}))
		require.Equal(t, []string{"Johan", "Bob"}, list(crm.ContactFilter{OwnerID: owner, Tag: "vip", NamePrefix: "b"}))
	})
}

func TestContactOptimisticConcurrency(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		c, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Ada", Source: "website", UTM: crm.UTM{Campaign: "launch"}})
		require.NoError(t, err)

		first, second := c, c
		first.Stage = crm.StageCustomer
		first.Source, first.UTM = "changed", crm.UTM{Campaign: "changed"}
		updated, err := contacts.Update(e.A, first.ID, first.Version, first.ContactInput)
		require.NoError(t, err)
		require.EqualValues(t, 2, updated.Version)
		require.Equal(t, "website", updated.Source, "Source is captured on creation")
		require.Equal(t, "launch", updated.UTM.Campaign)

		second.LastName = "Lovelace"
		_, err = contacts.Update(e.A, second.ID, second.Version, second.ContactInput)
		var cerr *crm.ConflictError
		require.ErrorAs(t, err, &cerr)
		require.ErrorIs(t, err, crm.ErrConflict)
		require.EqualValues(t, 1, cerr.Version)
		require.EqualValues(t, 2, cerr.Current)

		got, err := contacts.Get(e.A, c.ID)
		require.NoError(t, err)
		require.Equal(t, crm.StageCustomer, got.Stage)
		require.Empty(t, got.LastName, "the stale update wrote nothing")
		require.EqualValues(t, 2, got.Version)
	})
}

func TestContactValidationChangesNothing(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		_, err := contacts.Create(e.A, crm.ContactInput{Email: "not-an-email", Phone: "555-1234", Stage: "vip", OwnerID: "x",
			Birthday: crm.Birthday{Month: 2, Day: 30}, Tags: []string{strings.Repeat("t", 51)}})
		var verr *crm.ValidationError
		require.ErrorAs(t, err, &verr)
		for _, f := range [][2]string{{"email", "email"}, {"phone", "e164"}, {"stage", "oneof"}, {"owner_id", "uuid"}, {"birthday", "date"}, {"tags[0]", "max"}} {
			if !verr.Has(f[0], f[1]) {
				t.Errorf("Create returned %v, want %s to fail %s", err, f[0], f[1])
			}
		}
		require.True(t, strings.HasPrefix(err.Error(), "crm: invalid contact: "), err.Error())
		_, err = contacts.Create(e.A, crm.ContactInput{})
		require.ErrorAs(t, err, &verr)
		require.True(t, verr.Has("first_name", "required_without_all"))
		p, err := contacts.List(e.A, crm.ContactFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, p.Items, "failed creates stored nothing")

		c, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Ada", Email: "ada@example.com", Tags: []string{"a"}})
		require.NoError(t, err)
		bad := c
		bad.FirstName, bad.Email, bad.Tags = "Changed", "broken", []string{"b"}
		_, err = contacts.Update(e.A, bad.ID, bad.Version, bad.ContactInput)
		require.ErrorIs(t, err, crm.ErrInvalid)
		got, err := contacts.Get(e.A, c.ID)
		require.NoError(t, err)
		require.Equal(t, c.FirstName, got.FirstName)
		require.Equal(t, c.Email, got.Email)
		require.EqualValues(t, 1, got.Version)
		p, err = contacts.List(e.A, crm.ContactFilter{Tag: "b"}, crm.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, p.Items)

		_, err = contacts.List(e.A, crm.ContactFilter{}, crm.ListOptions{Limit: crm.MaxLimit + 1})
		require.ErrorIs(t, err, crm.ErrInvalid)
	})
}

func TestContactTenantIsolation(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		c, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Ada", Email: "ada@example.com", Tags: []string{"vip"}})
		require.NoError(t, err)

		_, err = contacts.Get(e.B, c.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		// Ids that need quoting, or hold what bun reads as placeholders,
		// name no contact.
		for _, id := range []string{c.ID + "?", "?", "?TableAlias", "' OR '1'='1", `x'); --`} {
			_, err = contacts.Get(e.A, id)
			require.ErrorIs(t, err, crm.ErrNotFound, "%q", id)
		}
		_, err = contacts.Update(e.B, c.ID, c.Version, c.ContactInput)
		require.ErrorIs(t, err, crm.ErrNotFound)
		require.ErrorIs(t, contacts.Delete(e.B, c.ID), crm.ErrNotFound)
		for _, f := range []crm.ContactFilter{{}, {Email: "ada@example.com"}, {Tag: "vip"}, {NamePrefix: "ada"}} {
			p, err := contacts.List(e.B, f, crm.ListOptions{})
			require.NoError(t, err)
			require.Empty(t, p.Items, "B listed A's contacts with %+v", f)
		}
		// B cannot link A's contact to its conversation.
		conv, err := e.store.Conversations().Open(e.B, pageKey)
		require.NoError(t, err)
		_, err = e.store.Conversations().LinkContact(e.B, conv.ID, c.ID, conv.Version)
		require.ErrorIs(t, err, crm.ErrInvalid)

		got, err := contacts.Get(e.A, c.ID)
		require.NoError(t, err)
		require.Equal(t, "ada@example.com", got.Email)

		convA, err := e.store.Conversations().Open(e.A, pageKey)
		require.NoError(t, err)
		linked, err := e.store.Conversations().LinkContact(e.A, convA.ID, c.ID, convA.Version)
		require.NoError(t, err)
		require.Equal(t, c.ID, linked.ContactID)

		require.NoError(t, contacts.Delete(e.A, c.ID))
		_, err = contacts.Get(e.A, c.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
	})
}

// TestContactSealedColumnsReseal: SealedColumns declares the contact's
// sealed profile with the binding it was sealed with, so a key rotation
// reseals it (one value per contact, every personal field inside) and the
// contact still opens whole.
func TestContactSealedColumnsReseal(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		c, err := e.store.Contacts().Create(e.A, crm.ContactInput{FirstName: "Ada", Email: "ada@example.com", Phone: "+14155550100",
			Tags: []string{"vip"}, Birthday: crm.Birthday{Month: 12, Day: 10}})
		require.NoError(t, err)
		_, err = e.vault.RotateKey(e.A)
		require.NoError(t, err)
		st, err := e.vault.Reseal(e.A, vault.ResealOptions{})
		require.NoError(t, err)
		require.EqualValues(t, 1, st.Total)
		require.EqualValues(t, 1, st.Resealed)
		require.Zero(t, st.Failed)
		got, err := e.store.Contacts().Get(e.A, c.ID)
		require.NoError(t, err)
		require.Equal(t, "ada@example.com", got.Email)
		require.Equal(t, "+14155550100", got.Phone)
		require.Equal(t, "Ada", got.FirstName)
		require.Equal(t, []string{"vip"}, got.Tags)
		require.Equal(t, crm.Birthday{Month: 12, Day: 10}, got.Birthday)
		require.NotEqual(t, c.ProfileSealed.KeyID(), got.ProfileSealed.KeyID())
		// The blind index is not rotated: the lookup still finds it.
		p, err := e.store.Contacts().List(e.A, crm.ContactFilter{Email: "ada@example.com"}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 1)
	})
}

// TestContactUpdateResealsProfile: Update seals the whole profile again —
// every changed field reads back, the UTM values captured on creation stay
// whatever the input says, and the stored ciphertext changes — and an
// update that fails (a stale version, an unknown company, invalid input)
// leaves the stored profile as it was, byte for byte.
func TestContactUpdateResealsProfile(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		c, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Ada", LastName: "Byron", Email: "ada@example.com",
			UTM: crm.UTM{Source: "ig", Campaign: "spring"}, Birthday: crm.Birthday{Month: 12, Day: 10},
			Preferences: map[string]string{"lang": "en"}, Tags: []string{"vip"}})
		require.NoError(t, err)
		in := c.ContactInput
		in.LastName, in.Phone, in.UTM = "Lovelace", "+14155550100", crm.UTM{Source: "changed"}
		in.Preferences, in.Tags, in.Birthday = map[string]string{"lang": "fr"}, []string{"math"}, crm.Birthday{Year: 1815, Month: 12, Day: 10}
		up, err := contacts.Update(e.A, c.ID, c.Version, in)
		require.NoError(t, err)
		require.Equal(t, crm.UTM{Source: "ig", Campaign: "spring"}, up.UTM, "UTM is kept")
		got, err := contacts.Get(e.A, c.ID)
		require.NoError(t, err)
		require.Equal(t, "Lovelace", got.LastName)
		require.Equal(t, "+14155550100", got.Phone)
		require.Equal(t, crm.UTM{Source: "ig", Campaign: "spring"}, got.UTM)
		require.Equal(t, map[string]string{"lang": "fr"}, got.Preferences)
		require.Equal(t, []string{"math"}, got.Tags)
		require.Equal(t, crm.Birthday{Year: 1815, Month: 12, Day: 10}, got.Birthday)
		require.NotEqual(t, c.ProfileSealed.Bytes(), got.ProfileSealed.Bytes())
		require.NotEmpty(t, up.EmailIndex, "Update computes the blind indexes")
		require.NotEmpty(t, up.BirthIndex)
		require.Empty(t, got.EmailIndex, "reads leave them out")
		require.Empty(t, got.BirthIndex)

		stored := got.ProfileSealed.Bytes()
		bad := got.ContactInput
		bad.FirstName = "Changed"
		_, err = contacts.Update(e.A, c.ID, c.Version, bad) // stale version
		var cerr *crm.ConflictError
		require.ErrorAs(t, err, &cerr)
		bad.CompanyID = tenancy.NewID()
		_, err = contacts.Update(e.A, c.ID, got.Version, bad) // no such company
		require.Error(t, err)
		bad.CompanyID, bad.Birthday = "", crm.Birthday{Month: 2, Day: 30}
		_, err = contacts.Update(e.A, c.ID, got.Version, bad)
		var verr *crm.ValidationError
		require.ErrorAs(t, err, &verr)
		after, err := contacts.Get(e.A, c.ID)
		require.NoError(t, err)
		require.Equal(t, stored, after.ProfileSealed.Bytes(), "failed updates wrote nothing")
		require.Equal(t, "Ada", after.FirstName)
		require.Equal(t, got.Version, after.Version)
	})
}

// TestContactGetReadsWhatListReads: Get (on PostgreSQL its row read
// straight from pgx) returns each contact as List (through database/sql)
// and Create return it — every column, a company and an owner or none,
// every personal field opened.
func TestContactGetReadsWhatListReads(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		co, err := e.store.Companies().Create(e.A, crm.CompanyInput{Name: "Analytical Engines"})
		require.NoError(t, err)
		made := []crm.ContactInput{
			{FirstName: "Ada", LastName: "Lovelace", Email: "ada@example.com", Phone: "+442071234567", Source: "instagram",
				UTM: crm.UTM{Campaign: "spring"}, Birthday: crm.Birthday{Year: 1815, Month: 12, Day: 10},
				CompanyID: co.ID, OwnerID: tenancy.NewID(), Stage: crm.StageCustomer},
			{FirstName: "Émilie"},
		}
		for _, in := range made {
			c, err := contacts.Create(e.A, in)
			require.NoError(t, err)
			got, err := contacts.Get(e.A, c.ID)
			require.NoError(t, err)
			page, err := contacts.List(e.A, crm.ContactFilter{Email: in.Email, NamePrefix: in.FirstName}, crm.ListOptions{})
			require.NoError(t, err)
			require.Len(t, page.Items, 1)
			require.Equal(t, page.Items[0], got)
			require.Equal(t, c.ID, got.ID)
			require.Equal(t, in.FirstName, got.FirstName)
			require.Equal(t, in.CompanyID, got.CompanyID)
			require.Equal(t, in.OwnerID, got.OwnerID)
			require.True(t, c.UpdatedAt.Equal(got.UpdatedAt))
			require.Equal(t, c.Version, got.Version)
		}
	})
}

package crm_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// manifestRows returns the rows per category of a contact's data-subject
// export: what every category declared to retention finds of her.
func manifestRows(t *testing.T, e *env, ctx context.Context, id string) map[string]int64 {
	t.Helper()
	files := contactExport(t, e, ctx, e.store.Categories(), id)
	var m retention.Manifest
	require.NoError(t, json.Unmarshal([]byte(files["manifest.json"]), &m))
	out := map[string]int64{}
	for _, c := range m.Categories {
		if c.Rows > 0 {
			out[c.Name] = c.Rows
		}
	}
	return out
}

// TestMergeMovesEveryRecord: merging bob into ada — each with a record of
// every kind, core and commerce — leaves nothing that any retention
// category finds by bob's id, and ada with both sets; consent conflicts go
// to the most recent word, empty fields are filled, the duplicate is gone,
// an audit entry names both ids and no value, and the other tenant is
// untouched.
func TestMergeMovesEveryRecord(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		e, _ := storageEnv(t, db, 0)
		s := e.store
		ada := fillPerson(t, e, e.A, "ada", true)
		bob := fillPerson(t, e, e.A, "bob", true)
		other := fillPerson(t, e, e.B, "ada", false)
		otherRows := manifestRows(t, e, e.B, other.contact.ID)

		// bob: a last name, a company, another tag and a preference; ada
		// keeps her own preference for a key both have.
		b, err := s.Contacts().Get(e.A, bob.contact.ID)
		require.NoError(t, err)
		co, err := s.Companies().Create(e.A, crm.CompanyInput{Name: "Analytical Engines"})
		require.NoError(t, err)
		b.LastName, b.CompanyID, b.Tags, b.Preferences = "Byron", co.ID, []string{"vip", "poet"}, map[string]string{"lang": "en", "size": "M"}
		_, err = s.Contacts().Update(e.A, b.ID, b.Version, b.ContactInput)
		require.NoError(t, err)
		a, err := s.Contacts().Get(e.A, ada.contact.ID)
		require.NoError(t, err)
		a.Preferences = map[string]string{"lang": "fr"}
		_, err = s.Contacts().Update(e.A, a.ID, a.Version, a.ContactInput)
		require.NoError(t, err)

		// Consent: both granted e-mail/birthday (fillPerson); then bob
		// withdraws it and ada grants sms/marketing, later than bob's
		// withdrawal of sms/marketing.
		change := func(id string, ch crm.Channel, p crm.Purpose, grant bool) {
			t.Helper()
			cc := crm.ConsentChange{ContactID: id, Channel: ch, Purpose: p, Source: "test"}
			if grant {
				_, err = s.Consents().Grant(e.A, cc)
			} else {
				_, err = s.Consents().Withdraw(e.A, cc)
			}
			require.NoError(t, err)
		}
		change(bob.contact.ID, crm.ChannelSMS, crm.PurposeMarketing, false)
		e.clock.Advance(time.Hour)
		change(bob.contact.ID, crm.ChannelEmail, crm.PurposeBirthday, false)
		change(ada.contact.ID, crm.ChannelSMS, crm.PurposeMarketing, true)

		before := map[string]int64{}
		for _, id := range []string{ada.contact.ID, bob.contact.ID} {
			for k, n := range manifestRows(t, e, e.A, id) {
				before[k] += n
			}
		}

		kept, err := s.Contacts().Merge(e.A, ada.contact.ID, bob.contact.ID)
		require.NoError(t, err)
		require.Equal(t, "Byron", kept.LastName, "an empty field is filled from the duplicate")
		require.Equal(t, "ada@example.com", kept.Email, "a field set on the kept contact stays")
		require.Equal(t, co.ID, kept.CompanyID)
		require.Equal(t, []string{"vip", "poet"}, kept.Tags)
		require.Equal(t, map[string]string{"lang": "fr", "size": "M"}, kept.Preferences)
		got, err := s.Contacts().Get(e.A, ada.contact.ID)
		require.NoError(t, err)
		require.Equal(t, kept.Version, got.Version)
		require.Equal(t, "Byron", got.LastName)
		require.Equal(t, kept.Tags, got.Tags)
		_, err = s.Contacts().Get(e.A, bob.contact.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)

		require.Equal(t, map[string]int64{"crm.contact_merge": 1}, manifestRows(t, e, e.A, bob.contact.ID),
			"nothing but the merge record is found by the duplicate's id without the resolvers (which lead on to the kept contact)")
		after := manifestRows(t, e, e.A, ada.contact.ID)
		for _, name := range []string{"crm.message", "crm.conversation", "crm.consent_event", "crm.activity", "crm.task", "crm.note",
			"crm.deal_stage_change", "crm.deal", "crm.custom_field_value", "crm.attachment", crm.CategoryInvoice, crm.CategoryInvoiceRecipient} {
			require.Equal(t, before[name], after[name], "%s: every row of both", name)
			require.NotZero(t, after[name], name)
		}
		require.EqualValues(t, 1, after["crm.contact"])
		require.EqualValues(t, 2, after["crm.consent"], "one per channel and purpose")
		require.EqualValues(t, 2, after["crm.contact_tag"])
		require.NotZero(t, after["crm.notification"])

		ok, err := s.Consents().Allowed(e.A, ada.contact.ID, crm.ChannelEmail, crm.PurposeBirthday)
		require.NoError(t, err)
		require.False(t, ok, "bob's later withdrawal wins over ada's grant")
		ok, err = s.Consents().Allowed(e.A, ada.contact.ID, crm.ChannelSMS, crm.PurposeMarketing)
		require.NoError(t, err)
		require.True(t, ok, "ada's later grant wins over bob's withdrawal")
		hist, err := whole(s.Consents().History(e.A, ada.contact.ID, crm.ListOptions{}))
		require.NoError(t, err)
		require.Len(t, hist, int(before["crm.consent_event"]), "both histories are kept")

		log, err := tenancy.NewAuditLog(db.DB)
		require.NoError(t, err)
		entries, err := log.List(e.A, tenancy.AuditListOptions{Limit: 1000})
		require.NoError(t, err)
		var merged []tenancy.AuditEntry
		for _, en := range entries {
			if en.Action == "contact.merged" {
				merged = append(merged, en)
			}
		}
		require.Len(t, merged, 1)
		require.Equal(t, "contact:"+ada.contact.ID, merged[0].Target)
		require.Equal(t, map[string]string{"duplicate": "contact:" + bob.contact.ID}, merged[0].Metadata)

		require.Equal(t, otherRows, manifestRows(t, e, e.B, other.contact.ID), "the other tenant is untouched")
	}, setup)
}

// TestMergeRefusals: a contact merged into itself, an unknown or another
// tenant's id, and a duplicate changed meanwhile write nothing.
func TestMergeRefusals(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		c := e.store.Contacts()
		ada, err := c.Create(e.A, crm.ContactInput{FirstName: "Ada"})
		require.NoError(t, err)
		bob, err := c.Create(e.A, crm.ContactInput{FirstName: "Bob"})
		require.NoError(t, err)
		theirs, err := c.Create(e.B, crm.ContactInput{FirstName: "Eve"})
		require.NoError(t, err)
		_, err = e.store.Notes().Create(e.A, crm.NoteInput{Body: "x", ContactID: bob.ID})
		require.NoError(t, err)

		var verr *crm.ValidationError
		_, err = c.Merge(e.A, ada.ID, ada.ID)
		require.ErrorAs(t, err, &verr)
		_, err = c.Merge(e.A, ada.ID, "")
		require.ErrorAs(t, err, &verr)
		_, err = c.Merge(e.A, ada.ID, theirs.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, err = c.Merge(e.A, tenancy.NewID(), bob.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)
		_, err = c.Merge(e.B, theirs.ID, bob.ID)
		require.ErrorIs(t, err, crm.ErrNotFound)

		got, err := c.Get(e.A, bob.ID)
		require.NoError(t, err)
		require.Equal(t, bob.Version, got.Version)
		notes, err := e.store.Notes().List(e.A, crm.NoteFilter{ContactID: bob.ID}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, notes.Items, 1, "a refused merge moves nothing")
		require.False(t, errors.Is(err, crm.ErrConflict))
	})
}

package socialcrm_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestRecordHoldOnContactKeepsNameRows: a record hold on a crm.contact
// keeps the contact and its name index rows (crm.contact_name, declared
// HeldWith crm.contact) through an erasure by her e-mail address and a
// tenant purge, whose receipts count them held, while her namesakes'
// rows go; name search still finds her, and the purge the hold stopped
// kept the tenant's keys (the contact and the hold's reason still open). Once the hold is released, the
// next purge erases everything. A record hold on crm.contact_name itself
// is refused with a *retention.ValidationError. SQLite keeps no rows in
// that table (its name index is the FTS5 table): there the test checks
// the contacts, the search and the refusal.
func TestRecordHoldOnContactKeepsNameRows(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		clk := fakeclock.New()
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t), Now: clk.Now})
		require.NoError(t, err)
		tn, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Held",
			Owner: tenancy.NewMember{Email: "owner@example.com", Name: "O"}})
		require.NoError(t, err)
		a := tenancy.WithPrincipal(ctx, owner.Principal())
		contacts := sdk.CRM.Contacts()
		var cs []crm.Contact
		for i := range 3 {
			c, err := contacts.Create(a, crm.ContactInput{FirstName: "Ada", LastName: "Lovelace", Email: fmt.Sprintf("ada%d@example.com", i)})
			require.NoError(t, err)
			cs = append(cs, c)
		}
		raw := db.Admin(t)
		rows := func(where string, arg any) int {
			t.Helper()
			var n int
			require.NoError(t, raw.NewRaw("SELECT count(*) FROM "+crm.TableContactNames+" WHERE "+where+" = ?", arg).Scan(ctx, &n))
			return n
		}
		contactIDs := func() []string {
			t.Helper()
			var ids []string
			require.NoError(t, raw.NewRaw("SELECT id FROM "+crm.TableContacts+" WHERE tenant_id = ? ORDER BY id", tn.ID).Scan(ctx, &ids))
			return ids
		}
		heldRows := rows("contact_id", cs[0].ID)
		if db.Name == "postgres" {
			require.Greater(t, heldRows, 3, "one row per keyed prefix of her name")
		}
		heldOf := func(rcs []retention.CategoryReceipt) map[string]int64 {
			out := map[string]int64{}
			for _, rc := range rcs {
				out[rc.Category] += rc.Held
			}
			return out
		}

		_, err = sdk.Retention.PlaceHold(a, retention.Hold{Scope: retention.HoldRecord, Category: "crm.contact_name",
			RecordID: cs[0].ID, Reason: "litigation"})
		var ve *retention.ValidationError
		require.True(t, errors.As(err, &ve), "a record hold on the name index rows: %v", err)
		require.Contains(t, ve.Reason, "crm.contact")
		require.NotContains(t, ve.Error(), cs[0].ID, "the error names no record")

		h, err := sdk.Retention.PlaceHold(a, retention.Hold{Scope: retention.HoldRecord, Category: "crm.contact",
			RecordID: cs[0].ID, Reason: "litigation"})
		require.NoError(t, err)

		// An erasure by her e-mail address: held, she and her rows stay.
		req, err := sdk.Retention.Submit(a, retention.Request{Kind: retention.KindErasure,
			Subject: map[string]string{crm.SubjectEmail: "ada0@example.com"}})
		require.NoError(t, err)
		_, err = sdk.Retention.SetVerification(a, req.ID, retention.VerificationVerified)
		require.NoError(t, err)
		rc, err := sdk.Retention.Erase(a, req.ID)
		require.NoError(t, err)
		held := heldOf(rc.Categories)
		require.EqualValues(t, 1, held["crm.contact"])
		require.EqualValues(t, heldRows, held["crm.contact_name"], "the receipt counts her name rows held")
		require.Equal(t, heldRows, rows("contact_id", cs[0].ID), "the held contact's name rows stay")
		p, err := contacts.List(a, crm.ContactFilter{NamePrefix: "ada lov"}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 3, "name search finds the held contact")

		// A tenant purge under the hold: she and exactly her rows stay.
		_, err = sdk.Tenants.CloseTenant(a, time.Hour)
		require.NoError(t, err)
		clk.Advance(2 * time.Hour)
		sys := tenancy.System(ctx, "retention")
		res, err := sdk.Retention.PurgeTenants(sys, clk.Now())
		require.NoError(t, err)
		require.Len(t, res, 1)
		require.False(t, res[0].Purged)
		held = heldOf(res[0].Receipts)
		require.EqualValues(t, 1, held["crm.contact"])
		require.EqualValues(t, heldRows, held["crm.contact_name"])
		require.Equal(t, []string{cs[0].ID}, contactIDs(), "only the held contact stays")
		require.Equal(t, heldRows, rows("contact_id", cs[0].ID))
		require.Equal(t, heldRows, rows("tenant_id", tn.ID), "no namesake's row is left")

		// The purge that the hold stopped kept the tenant's keys: the held
		// contact and the hold's reason still open.
		sa, err := tenancy.AsTenant(sys, tn.ID)
		require.NoError(t, err)
		got, err := contacts.Get(sa, cs[0].ID)
		require.NoError(t, err, "the held contact opens after the purge it stopped")
		require.Equal(t, "Lovelace", got.LastName)
		hs, err := sdk.Retention.Holds(sa)
		require.NoError(t, err)
		require.Len(t, hs, 1)
		require.Equal(t, "litigation", hs[0].Reason)

		// Released: the next purge erases her and her rows.
		_, err = sdk.Retention.ReleaseHold(sa, h.ID)
		require.NoError(t, err)
		res, err = sdk.Retention.PurgeTenants(sys, clk.Now())
		require.NoError(t, err)
		require.Len(t, res, 1)
		require.True(t, res[0].Purged, "%+v", res)
		require.Empty(t, contactIDs())
		require.Zero(t, rows("tenant_id", tn.ID))
	}, migrated)
}

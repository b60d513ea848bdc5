package retention_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// heldTokenEnv is tokenEnv with test_tokens declared HeldWith the test
// contacts' category ("crm.contact", test_contacts): an owner's tokens go
// with the contact whose id is their owner_id.
func heldTokenEnv(t *testing.T, db *dbtest.DB) *env {
	t.Helper()
	c := tokenCategory()
	c.HeldWith = "crm.contact"
	return tokenEnvOf(t, db, c)
}

// TestHeldWithKeepsRowsOfAHeldOwner: with Category.HeldWith, a record
// hold on the owner category's row holds the rows whose ID column equals
// its id, through a sweep, an erasure request and a tenant purge, each
// counting them held, while the rows of owners not held are erased; once
// the hold is released the next runs erase them. A record hold on the
// dependent category itself is refused with a *ValidationError naming the
// owner, and a bad HeldWith fails registration.
func TestHeldWithKeepsRowsOfAHeldOwner(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := heldTokenEnv(t, db)
		aid, a := v.tenant(t, "alpha")
		old := epoch.Add(-100 * retention.Day)
		for _, o := range []string{"ann", "bob"} {
			insert(t, a, db, &contact{ID: o, Name: o, UpdatedAt: epoch})
			addTokens(t, a, db, o, 0, 9, old)
		}
		addTokens(t, a, db, "cat", 0, 4, old) // no contact: no hold reaches them

		_, err := v.e.PlaceHold(a, retention.Hold{Scope: retention.HoldRecord, Category: catToken, RecordID: "ann", Reason: "litigation"})
		var ve *retention.ValidationError
		require.True(t, errors.As(err, &ve), "a record hold on a HeldWith category: %v", err)
		require.Equal(t, "Category", ve.Field)
		require.Contains(t, ve.Reason, "crm.contact")
		hs, err := v.e.Holds(a)
		require.NoError(t, err)
		require.Empty(t, hs, "a refused hold is not placed")

		hold, err := v.e.PlaceHold(a, retention.Hold{Scope: retention.HoldRecord, Category: "crm.contact", RecordID: "ann", Reason: "litigation"})
		require.NoError(t, err)
		// A hold on another category's row of the same id holds nothing here.
		_, err = v.e.PlaceHold(a, retention.Hold{Scope: retention.HoldRecord, Category: "crm.note", RecordID: "bob", Reason: "unrelated"})
		require.NoError(t, err)

		// A sweep: bob's and cat's rows are due and erased, ann's held.
		rep, err := v.e.Sweep(system(), epoch)
		require.NoError(t, err)
		byCat := func(rcs []retention.CategoryReceipt) (erased, held int64) {
			for _, rc := range rcs {
				if rc.Category == catToken {
					erased, held = erased+rc.Erased, held+rc.Held
				}
			}
			return
		}
		erased, held := byCat(rep.Receipts)
		require.EqualValues(t, 13, erased)
		require.EqualValues(t, 9, held)
		require.Equal(t, 9, tokensOf(t, a, db, "ann"))
		require.Zero(t, tokensOf(t, a, db, "bob"))
		require.Zero(t, tokensOf(t, a, db, "cat"))

		// An erasure request for ann: the contact and her tokens are held.
		req, err := v.e.Submit(a, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"contact_id": "ann"}})
		require.NoError(t, err)
		_, err = v.e.SetVerification(a, req.ID, retention.VerificationVerified)
		require.NoError(t, err)
		rc, err := v.e.Erase(a, req.ID)
		require.NoError(t, err)
		erased, held = byCat(rc.Categories)
		require.Zero(t, erased)
		require.EqualValues(t, 9, held)
		require.Equal(t, 9, tokensOf(t, a, db, "ann"))
		require.Equal(t, []string{"ann", "bob"}, ids(t, a, db, "test_contacts"))

		// A tenant purge under the hold keeps them, and the tenant.
		_, err = v.store.CloseTenant(a, 0)
		require.NoError(t, err)
		res, err := v.e.PurgeTenants(system(), v.clock.Now())
		require.NoError(t, err)
		require.Len(t, res, 1)
		require.False(t, res[0].Purged)
		erased, held = byCat(res[0].Receipts)
		require.Zero(t, erased)
		require.EqualValues(t, 9, held)
		require.Equal(t, 9, tokensOf(t, tenancyAs(t, aid), db, "ann"))

		// Released: the next purge erases them.
		sys, err := tenancy.AsTenant(system(), aid)
		require.NoError(t, err)
		_, err = v.e.ReleaseHold(sys, hold.ID)
		require.NoError(t, err)
		for _, h := range mustHolds(t, v.e, sys) {
			_, err = v.e.ReleaseHold(sys, h.ID)
			require.NoError(t, err)
		}
		res, err = v.e.PurgeTenants(system(), v.clock.Now())
		require.NoError(t, err)
		require.Len(t, res, 1)
		require.True(t, res[0].Purged, "%+v", res)
		erased, held = byCat(res[0].Receipts)
		require.EqualValues(t, 9, erased)
		require.Zero(t, held)
		require.Zero(t, tokensOf(t, tenancyAs(t, aid), db, ""))

		for _, c := range []retention.Category{
			{Name: "y1", Table: "test_tokens", ID: "owner_id", HeldWith: "y1"},
			{Name: "y2", Table: "test_tokens", ID: "owner_id", HeldWith: "no.such"},
			{Name: "y3", Table: "test_tokens", ID: "owner_id", HeldWith: catToken}, // itself held with crm.contact
		} {
			var ce *retention.CategoryError
			require.True(t, errors.As(v.e.Register(c), &ce), "Register(%s) must fail with a *CategoryError", c.Name)
			require.Equal(t, "HeldWith", ce.Field)
		}
	})
}

func mustHolds(t *testing.T, e *retention.Engine, ctx context.Context) []retention.Hold {
	t.Helper()
	hs, err := e.Holds(ctx)
	require.NoError(t, err)
	return hs
}

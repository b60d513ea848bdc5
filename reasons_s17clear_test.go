package socialcrm_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/leakscan"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS17ClearStaffReasonsSealed: the free text staff type — a legal
// hold's reason, a request's extension reason — is stored only sealed:
// no column of any socialcrm table (the audit log's included) holds it,
// nor its unkeyed hash, while PlaceHold, Holds, ReleaseHold, Extend, Get
// and Requests return it in clear, and a second extension is still
// refused. Reasons an older version wrote in clear are sealed by
// ProtectIdentifiers. On both databases.
func TestS17ClearStaffReasonsSealed(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t), Now: fakeclock.New().Now})
		require.NoError(t, err)
		tn, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Reasons",
			Owner: tenancy.NewMember{Email: "owner@example.com", Name: "O"}})
		require.NoError(t, err)
		a := tenancy.WithPrincipal(ctx, owner.Principal())
		const (
			holdReason = "zqholdreason: Jane Roe v. Acme, case 4471"
			extReason  = "zqextreason: waiting for Jane Roe's passport copy"
		)

		h, err := sdk.Retention.PlaceHold(a, retention.Hold{Scope: retention.HoldTenant, Reason: holdReason})
		require.NoError(t, err)
		require.Equal(t, holdReason, h.Reason)
		holds, err := sdk.Retention.Holds(a)
		require.NoError(t, err)
		require.Len(t, holds, 1)
		require.Equal(t, holdReason, holds[0].Reason)

		r := submitVerified(t, sdk, a, retention.KindAccess, map[string]string{"email": "jane@example.com"})
		ext, err := sdk.Retention.Extend(a, r.ID, 60*24*time.Hour, extReason)
		require.NoError(t, err)
		require.Equal(t, extReason, ext.ExtensionReason)
		got, err := sdk.Retention.Get(a, r.ID)
		require.NoError(t, err)
		require.Equal(t, extReason, got.ExtensionReason)
		page, err := sdk.Retention.Requests(a, retention.RequestFilter{}, retention.ListOptions{})
		require.NoError(t, err)
		require.Len(t, page.Items, 1)
		require.Equal(t, extReason, page.Items[0].ExtensionReason)
		_, err = sdk.Retention.Extend(a, r.ID, time.Hour, "again")
		require.ErrorIs(t, err, retention.ErrAlreadyExtended, "the sealed reason still marks the request extended")

		rel, err := sdk.Retention.ReleaseHold(a, h.ID)
		require.NoError(t, err)
		require.Equal(t, holdReason, rel.Reason)

		admin := db.Admin(t)
		hits, err := leakscan.Tables(ctx, admin, unkeyedForms(holdReason, extReason), "socialcrm_")
		require.NoError(t, err)
		require.Empty(t, hits, "staff's free text readable")

		// As an older version stored them: in clear.
		const legacyHold, legacyExt = "zqlegacyhold: Jane Roe", "zqlegacyext: Jane Roe"
		h2, err := sdk.Retention.PlaceHold(a, retention.Hold{Scope: retention.HoldTenant, Reason: "placeholder"})
		require.NoError(t, err)
		_, err = admin.NewRaw("UPDATE "+retention.TableHolds+" SET reason = ?, reason_sealed = NULL WHERE tenant_id = ? AND id = ?",
			legacyHold, tn.ID, h2.ID).Exec(ctx)
		require.NoError(t, err)
		_, err = admin.NewRaw("UPDATE "+retention.TableRequests+" SET extension_reason = ?, extension_reason_sealed = NULL WHERE tenant_id = ? AND id = ?",
			legacyExt, tn.ID, r.ID).Exec(ctx)
		require.NoError(t, err)
		n, err := sdk.Retention.ProtectIdentifiers(tenancy.System(ctx, "s17clear"))
		require.NoError(t, err)
		require.Equal(t, 2, n)
		hits, err = leakscan.Tables(ctx, admin, []string{legacyHold, legacyExt}, "socialcrm_retention")
		require.NoError(t, err)
		require.Empty(t, hits, "ProtectIdentifiers sealed them")
		holds, err = sdk.Retention.Holds(a)
		require.NoError(t, err)
		require.Len(t, holds, 1)
		require.Equal(t, legacyHold, holds[0].Reason)
		got, err = sdk.Retention.Get(a, r.ID)
		require.NoError(t, err)
		require.Equal(t, legacyExt, got.ExtensionReason)
	})
}

package retention_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestRequestRolesAttack: only Requests and Erase checked the principal's
// role, so a client (an agency's client on the portal) or a creator —
// the members with the narrowest view of the tenant — read any request
// with its subject's identifiers, and submitted an erasure of any
// customer and marked it verified: the scheduled ResumeErasures then
// erased every record of that customer, an erasure only owners and
// admins may start. Staff could verify it too. Now recording, reading,
// extending and closing a request take an owner, admin or staff
// member, and the identity verification, which lets an erasure run, an
// owner or admin, as Erase does.
func TestRequestRolesAttack(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		tid, owner := v.tenant(t, "roles")
		cs := []contact{{ID: "k1", Email: ptr("ann@example.com"), Name: "Ann", UpdatedAt: epoch}}
		insert(t, owner, db, &cs)
		req, err := v.e.Submit(owner, retention.Request{Kind: retention.KindAccess, Subject: map[string]string{"email": "ann@example.com"}})
		require.NoError(t, err)
		as := func(r tenancy.Role) context.Context {
			return tenancy.WithPrincipal(t.Context(), tenancy.Principal{TenantID: tid, MemberID: tenancy.NewID(), Role: r})
		}
		erasure := retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"email": "ann@example.com"}}
		for _, r := range []tenancy.Role{tenancy.RoleClient, tenancy.RoleCreator} {
			ctx := as(r)
			_, err := v.e.Submit(ctx, erasure)
			require.ErrorIs(t, err, tenancy.ErrForbidden, r)
			_, err = v.e.Get(ctx, req.ID)
			require.ErrorIs(t, err, tenancy.ErrForbidden, r)
			_, err = v.e.SetVerification(ctx, req.ID, retention.VerificationVerified)
			require.ErrorIs(t, err, tenancy.ErrForbidden, r)
			_, err = v.e.Extend(ctx, req.ID, retention.Day, "busy")
			require.ErrorIs(t, err, tenancy.ErrForbidden, r)
			_, err = v.e.Close(ctx, req.ID, retention.StatusRejected)
			require.ErrorIs(t, err, tenancy.ErrForbidden, r)
		}
		// Staff record and read requests, but do not verify them.
		staff := as(tenancy.RoleStaff)
		er, err := v.e.Submit(staff, erasure)
		require.NoError(t, err)
		_, err = v.e.Get(staff, er.ID)
		require.NoError(t, err)
		_, err = v.e.SetVerification(staff, er.ID, retention.VerificationVerified)
		require.ErrorIs(t, err, tenancy.ErrForbidden)

		// Nothing was verified, so the scheduled run erases nothing.
		_, err = v.e.ResumeErasures(system())
		require.NoError(t, err)
		var n int64
		require.NoError(t, in(owner, db, func(tx bun.Tx) error {
			var err error
			n, err = tx.NewSelect().Model((*contact)(nil)).Apply(tenancy.Scope(owner)).Count(owner)
			return err
		}))
		require.EqualValues(t, 1, n, "Ann's record")
		er, err = v.e.Get(owner, er.ID)
		require.NoError(t, err)
		require.Equal(t, retention.VerificationPending, er.Verification)
		_, err = v.e.SetVerification(owner, er.ID, retention.VerificationVerified)
		require.NoError(t, err)
	})
}

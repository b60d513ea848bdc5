package retention_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestListRequests: Requests pages through the tenant's requests, the
// open ones first, each group by deadline, every request once however the
// pages are cut; it filters by status and kind, lists nothing of another
// tenant, refuses bad options and roles that may not see requests.
func TestListRequests(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		tid, a := v.tenant(t, "alpha")
		_, b := v.tenant(t, "beta")
		kinds := []retention.RequestKind{retention.KindAccess, retention.KindErasure, retention.KindExport, retention.KindErasure, retention.KindAccess}
		var ids []string
		for _, k := range kinds {
			r, err := v.e.Submit(a, retention.Request{Kind: k, Subject: map[string]string{"email": "x@example.com"}})
			require.NoError(t, err)
			ids = append(ids, r.ID)
			v.clock.Advance(retention.Day)
		}
		_, err := v.e.Submit(b, retention.Request{Kind: retention.KindAccess, Subject: map[string]string{"email": "y@example.com"}})
		require.NoError(t, err)
		_, err = v.e.Close(a, ids[0], retention.StatusCompleted)
		require.NoError(t, err)
		_, err = v.e.Close(a, ids[2], retention.StatusRejected)
		require.NoError(t, err)
		// The earliest-submitted open request gets the latest deadline.
		_, err = v.e.Extend(a, ids[1], 60*retention.Day, "several systems to search")
		require.NoError(t, err)
		want := []string{ids[3], ids[4], ids[1], ids[0], ids[2]} // open by deadline, then closed by deadline

		for _, limit := range []int{0, 1, 2, 5} {
			var got []string
			o := retention.ListOptions{Limit: limit}
			for pages := 0; ; pages++ {
				require.Less(t, pages, 10, "the pages end")
				p, err := v.e.Requests(a, retention.RequestFilter{}, o)
				require.NoError(t, err)
				if limit > 0 {
					require.LessOrEqual(t, len(p.Items), limit)
				}
				for _, r := range p.Items {
					require.Equal(t, tid, r.TenantID)
					require.Equal(t, []string{"email"}, r.IdentifierKinds)
					got = append(got, r.ID)
				}
				if p.NextCursor == "" {
					break
				}
				o.Cursor = p.NextCursor
			}
			require.Equal(t, want, got, "limit %d", limit)
		}

		open, err := v.e.Requests(a, retention.RequestFilter{Status: retention.StatusOpen}, retention.ListOptions{})
		require.NoError(t, err)
		require.Len(t, open.Items, 3)
		require.Empty(t, open.NextCursor)
		erasures, err := v.e.Requests(a, retention.RequestFilter{Kind: retention.KindErasure}, retention.ListOptions{})
		require.NoError(t, err)
		require.Equal(t, []string{ids[3], ids[1]}, []string{erasures.Items[0].ID, erasures.Items[1].ID})
		closedAccess, err := v.e.Requests(a, retention.RequestFilter{Status: retention.StatusCompleted, Kind: retention.KindAccess}, retention.ListOptions{})
		require.NoError(t, err)
		require.Len(t, closedAccess.Items, 1)
		require.Equal(t, ids[0], closedAccess.Items[0].ID)
		other, err := v.e.Requests(b, retention.RequestFilter{}, retention.ListOptions{})
		require.NoError(t, err)
		require.Len(t, other.Items, 1, "the other tenant's own request only")

		var ve *retention.ValidationError
		for _, bad := range []struct {
			f retention.RequestFilter
			o retention.ListOptions
		}{
			{o: retention.ListOptions{Limit: -1}},
			{o: retention.ListOptions{Limit: retention.MaxLimit + 1}},
			{o: retention.ListOptions{Cursor: "not-a-cursor"}},
			{o: retention.ListOptions{Cursor: "e30"}}, // {}
			{f: retention.RequestFilter{Status: "pending"}},
			{f: retention.RequestFilter{Kind: "gossip"}},
		} {
			_, err := v.e.Requests(a, bad.f, bad.o)
			require.ErrorAs(t, err, &ve, "%+v", bad)
		}
		staff := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tid, MemberID: tenancy.NewID(), Role: tenancy.RoleStaff})
		p, err := v.e.Requests(staff, retention.RequestFilter{}, retention.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 5)
		client := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tid, MemberID: tenancy.NewID(), Role: tenancy.RoleClient})
		_, err = v.e.Requests(client, retention.RequestFilter{}, retention.ListOptions{})
		require.ErrorIs(t, err, tenancy.ErrForbidden)
	})
}

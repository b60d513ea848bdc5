package meta_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestDeauthorizeReachesDerivedConnections: the Deauthorize Callback
// names only the user, yet the Page and Instagram connections made from
// the user's connection are revoked with it, their tokens deleted, their
// purge scheduled, and a sweep 30 days later erases them and what was
// fetched through them.
func TestDeauthorizeReachesDerivedConnections(t *testing.T) {
	eachWorld(t, func(t *testing.T, w *world) {
		// A tenant the retention sweep knows of.
		_, own, err := w.sdk.Tenants.CreateTenant(t.Context(), tenancy.SignUp{TenantName: "Ada's Bakery",
			Owner: tenancy.NewMember{Email: "ada@bakery.example", Name: "Ada", Password: "long enough secret"}})
		require.NoError(t, err)
		w.ctx = tenancy.WithPrincipal(t.Context(), own.Principal())
		user := w.connect(userID, allFeatures)
		conns := w.connectPages(user)
		page, ig := conns[pageID], conns[igID]
		require.Equal(t, user.ID, page.ParentID, "ConnectPages links the Page to the user's connection")
		require.Equal(t, user.ID, ig.ParentID)
		derived, err := w.store.Derived(w.ctx, user.ID)
		require.NoError(t, err)
		require.Len(t, derived, len(conns))

		_, _, err = w.client(page).Pages.Snapshot(w.ctx, pageID)
		require.NoError(t, err)
		_, _, err = w.client(ig).Instagram.Snapshot(w.ctx, igID)
		require.NoError(t, err)
		for _, c := range []social.Connection{page, ig} {
			sns, err := w.store.Snapshots(w.ctx, c.ID)
			require.NoError(t, err)
			require.Len(t, sns, 1)
		}

		_, urls := newCallbacks(t, w)
		calls := w.graphCalls()
		require.NoError(t, w.srv.Deauthorize(t.Context(), appID, userID, urls.deauth))
		for _, c := range append([]social.Connection{user}, derived...) {
			got, err := w.store.Get(w.ctx, c.ID)
			require.NoError(t, err)
			require.Equal(t, social.StatusRevoked, got.Status, c.AccountID)
			require.True(t, got.AccessToken.IsZero(), "tokens of %s deleted", c.AccountID)
		}
		require.Equal(t, 1+len(derived), w.deauthorizedEvents(w.ctx), "each connection's purge scheduled")
		require.Equal(t, calls, w.graphCalls(), "Meta is not asked which Pages the user had")

		// After the 30-day rule, a sweep erases the connections and their
		// snapshots.
		w.clk.Advance(29 * 24 * time.Hour)
		sys := tenancy.System(t.Context(), "retention")
		_, err = w.sdk.Retention.Sweep(sys, w.clk.Now())
		require.NoError(t, err)
		_, err = w.store.Get(w.ctx, page.ID)
		require.NoError(t, err, "kept during the 30 days")
		w.clk.Advance(2 * 24 * time.Hour)
		rep, err := w.sdk.Retention.Sweep(sys, w.clk.Now())
		require.NoError(t, err)
		require.Positive(t, rep.Erased())
		for _, c := range append([]social.Connection{user}, derived...) {
			_, err := w.store.Get(w.ctx, c.ID)
			require.ErrorIs(t, err, social.ErrNotFound, c.AccountID)
			sns, err := w.store.Snapshots(w.ctx, c.ID)
			require.NoError(t, err)
			require.Empty(t, sns, "snapshots of %s erased", c.AccountID)
		}
	})
}

// TestProviderDisconnectUsesTheLink: Store.Disconnect finds the Pages
// through the parent link, so it disconnects them even when Meta no
// longer answers for the user token.
func TestProviderDisconnectUsesTheLink(t *testing.T) {
	eachWorld(t, func(t *testing.T, w *world) {
		user := w.connect(userID, allFeatures)
		conns := w.connectPages(user)
		require.NoError(t, w.srv.InjectFault(metatest.Fault{Path: "/me/accounts", Code: 190, Subcode: meta.SubcodeExpired, Count: 100}))
		done, err := w.store.Disconnect(w.ctx, user.ID, w.prov)
		require.NoError(t, err)
		require.Equal(t, user.ID, done.ID)
		require.Equal(t, social.StatusRevoked, done.Status)
		for _, c := range conns {
			got, err := w.store.Get(w.ctx, c.ID)
			require.NoError(t, err)
			require.Equal(t, social.StatusRevoked, got.Status, c.AccountID)
		}
		require.Equal(t, len(conns)+1, w.deauthorizedEvents(w.ctx))
	})
}

package meta_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
)

// TestEndToEnd: connect a Facebook user through social.Flow and the
// emulator's consent, connect their Page and its Instagram account,
// publish to both, read insights, then disconnect: the app is revoked at
// Meta and every token is deleted.
func TestEndToEnd(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db, metatest.WithContainerProcessing(5*time.Second, time.Minute))

		// Connect.
		user := e.connect(userID, allFeatures)
		pcs, err := e.prov.ConnectPages(e.ctx, e.session(user))
		require.NoError(t, err)
		var page, ig social.Connection
		for _, pc := range pcs {
			require.NoError(t, pc.Err)
			if pc.PageID == pageID {
				page, ig = pc.Connection, *pc.Instagram
			}
		}
		require.Equal(t, pageID, page.AccountID)
		require.Equal(t, igID, ig.AccountID)
		pageClient, igClient := e.client(page), e.client(ig)

		// Publish to both.
		post, _, err := pageClient.Pages.Publish(e.ctx, pageID, meta.PostRequest{Message: "Opening hours", Link: "https://bakery.example/hours"})
		require.NoError(t, err)
		media, _, err := igClient.Instagram.Publish(e.ctx, igID, meta.MediaRequest{ImageURL: "https://cdn.example/bread.jpg", Caption: "Bread", PollInterval: 5 * time.Second})
		require.NoError(t, err)
		require.Len(t, e.srv.Posts(pageID), 1)

		// Read insights.
		require.NoError(t, e.srv.SetMetric(post.ID, "post_media_view", 10))
		require.NoError(t, e.srv.SetMetric(media.ID, "views", 20))
		pin, _, err := pageClient.Pages.PostInsights(e.ctx, post.ID, meta.InsightsOptions{})
		require.NoError(t, err)
		v, _ := pin.Latest("post_media_view")
		require.Equal(t, 10.0, v)
		mi, _, err := igClient.Instagram.MediaInsights(e.ctx, media.ID, meta.InsightsOptions{})
		require.NoError(t, err)
		v, _ = mi.Latest("views")
		require.Equal(t, 20.0, v)
		_, _, err = pageClient.Pages.Snapshot(e.ctx, pageID)
		require.NoError(t, err)

		// Disconnect.
		userTok, err := e.store.Token(e.ctx, user.ID, e.prov)
		require.NoError(t, err)
		derived, err := e.store.Derived(e.ctx, user.ID)
		require.NoError(t, err)
		require.Len(t, derived, 3, "both Pages and the Instagram account")
		_, err = e.store.Disconnect(e.ctx, user.ID, e.prov)
		require.NoError(t, err)
		for _, c := range []social.Connection{user, page, ig} {
			got, err := e.store.Get(e.ctx, c.ID)
			require.NoError(t, err)
			require.Equal(t, social.StatusRevoked, got.Status)
			require.True(t, got.AccessToken.IsZero(), "tokens of %s kept", c.AccountID)
			_, err = e.store.Session(e.ctx, c.ID, e.prov)
			require.ErrorIs(t, err, social.ErrRevoked)
		}
		n, err := e.store.PendingRevocations(e.ctx)
		require.NoError(t, err)
		require.Zero(t, n, "a revoke failed and was queued")
		info, err := e.prov.DebugToken(e.ctx, secretOf(userTok.AccessToken))
		require.NoError(t, err)
		require.False(t, info.Valid, "the user token still works at Meta after Disconnect")
		require.Equal(t, meta.SubcodeAppNotInstalled, info.ErrorSubcode)

		actions := e.auditActions()
		require.Contains(t, actions, "meta.page.publish")
		require.Contains(t, actions, "meta.instagram.publish")
		require.Contains(t, actions, "connection.disconnected")
	})
}

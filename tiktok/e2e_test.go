package tiktok_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// TestConnectSyncPublishDisconnect drives the whole life of a connection
// through the public API: connect with PKCE, sync, publish at the user's
// instruction, token refresh on the way, a deauthorization webhook for a
// second account, and disconnect.
func TestConnectSyncPublishDisconnect(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		rec := &hookRecorder{}
		hookURL := newWebhook(t, e, rec)
		require.NoError(t, e.srv.AddVideo(openID, tiktoktest.Video{ID: "7000000000000000001", CreateTime: e.clk.Now().Add(-time.Hour), ViewCount: 10, LikeCount: 1}))

		conn := e.connect([]string{"profile", "stats", "video.read", "publish"})
		c := e.client(conn)
		_, st, err := c.Sync(e.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, st.Videos)

		e.clk.Advance(3 * time.Hour) // the access token expired: refreshed on the next call
		ci, _, err := c.Posting.CreatorInfo(e.ctx)
		require.NoError(t, err)
		init, _, err := c.Posting.InitVideo(e.ctx, tiktok.VideoInitRequest{
			PostInfo:   tiktok.PostInfo{PrivacyLevel: ci.PrivacyLevelOptions[len(ci.PrivacyLevelOptions)-1]},
			SourceInfo: mustPlan(t, 1<<20),
		})
		require.NoError(t, err)
		_, err = c.Posting.Upload(e.ctx, init.UploadURL, bytes.NewReader(make([]byte, 1<<20)), mustPlan(t, 1<<20), "video/mp4")
		require.NoError(t, err)
		e.clk.Advance(time.Minute)
		status, _, err := c.Posting.Status(e.ctx, init.PublishID)
		require.NoError(t, err)
		require.Equal(t, tiktok.StatusPublishComplete, status.Status)

		// Another creator removes the app in TikTok: only that account goes.
		require.NoError(t, e.srv.AddUser(tiktoktest.User{OpenID: "open-bo", DisplayName: "Bo"}))
		flow, err := e.store.NewFlow(e.prov, social.FlowConfig{Features: []string{"profile"}})
		require.NoError(t, err)
		authURL, err := flow.Begin(e.ctx)
		require.NoError(t, err)
		cb, err := e.srv.Consent(authURL, "open-bo", tiktoktest.ConsentOptions{})
		require.NoError(t, err)
		bo, err := flow.Complete(e.ctx, callbackQuery(t, cb))
		require.NoError(t, err)
		e.srv.Revoke(clientKey, "open-bo")
		content, _ := json.Marshal(map[string]int{"reason": 2})
		_, err = e.srv.SendWebhook(t.Context(), hookURL, tiktoktest.Event{ClientKey: clientKey, Event: "authorization.removed", UserOpenID: "open-bo", Content: string(content)})
		require.NoError(t, err)
		got, err := e.store.Get(e.ctx, bo.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusRevoked, got.Status)
		got, err = e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusActive, got.Status)

		_, err = e.store.Disconnect(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)
		active, err := e.store.List(e.ctx, social.ConnectionFilter{Status: social.StatusActive}, social.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, active.Items)
		require.Len(t, rec.conns, 2)
		require.Equal(t, []string{
			"vault.key_created", "connection.connected", "tiktok.publish_sending", "tiktok.publish_started",
			"connection.connected", "connection.deauthorized", "connection.disconnected", "connection.revoked",
		}, e.auditActions())
	})
}

func mustPlan(t *testing.T, size int64) tiktok.SourceInfo {
	t.Helper()
	si, err := tiktok.PlanChunks(size, 0)
	require.NoError(t, err)
	return si
}

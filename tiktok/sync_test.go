package tiktok_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

func TestSync(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range 45 {
			require.NoError(t, e.srv.AddVideo(openID, tiktoktest.Video{
				ID: fmt.Sprintf("7%018d", i), CreateTime: base.Add(time.Duration(i) * time.Hour),
				CoverImageURL: "https://cdn.example/c.jpg", ViewCount: 100, LikeCount: 8, CommentCount: 1, ShareCount: 1,
			}))
		}
		conn := e.connect([]string{"stats", "video.read"})
		c := e.client(conn)
		e.srv.ClearRequests()
		res, st, err := c.Sync(e.ctx)
		require.NoError(t, err)
		require.Equal(t, 4, st.Requests, "one user info and the minimum three pages")
		require.Len(t, e.srv.Requests(), 4)
		require.Equal(t, 45, st.Videos)
		require.InDelta(t, 0.1, res.Snapshot.EngagementRate, 1e-9)

		require.NoError(t, e.srv.UpdateUser(openID, func(u *tiktoktest.User) { u.FollowerCount = 1500 }))
		e.clk.Advance(24 * time.Hour)
		_, _, err = c.Sync(e.ctx)
		require.NoError(t, err)

		trend, err := e.store.Snapshots(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Len(t, trend, 2)
		require.Equal(t, social.KnownCount(1200), trend[0].Followers)
		require.Equal(t, social.KnownCount(1500), trend[1].Followers)
		require.Equal(t, social.KnownCount(4500), trend[1].Views)
		require.Equal(t, social.Purposes{"analytics"}, trend[1].Purposes, "data tagged with the connection's purposes")
		media, err := e.store.Media(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Len(t, media, 45, "upserted, not duplicated")
		require.Equal(t, fmt.Sprintf("7%018d", 44), media[0].ExternalID)
		n, err := e.store.RawResponses(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Zero(t, n, "raw responses only when asked")
		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, e.clk.Now(), got.LastSyncAt)
		require.Equal(t, "Ana", got.DisplayName)

		// Opting in keeps the raw answers.
		sess, err := e.store.Session(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)
		raw, err := tiktok.New(e.cfg, append(e.clientOpts(), tiktok.WithSession(sess), tiktok.WithRawResponses())...)
		require.NoError(t, err)
		_, _, err = raw.Sync(e.ctx)
		require.NoError(t, err)
		n, err = e.store.RawResponses(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, 4, n)
	})
}

// TestSyncWithoutStatsStoresUnknown: with user.info.stats declined TikTok
// gives no counts; the snapshot stores them as unknown (NULL), not 0, and
// readers see "unknown".
func TestSyncWithoutStatsStoresUnknown(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"stats", "video.read"}, tiktok.ScopeUserInfoStats)
		require.False(t, conn.Scopes.Has(tiktok.ScopeUserInfoStats))
		res, _, err := e.client(conn).Sync(e.ctx)
		require.NoError(t, err)
		require.False(t, res.Snapshot.Followers.Known)

		trend, err := e.store.Snapshots(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Len(t, trend, 1)
		sn := trend[0]
		for name, c := range map[string]social.Count{"followers": sn.Followers, "following": sn.Following, "likes": sn.Likes, "videos": sn.MediaCount} {
			require.False(t, c.Known, name)
			require.Equal(t, "unknown", c.String(), name)
		}
		require.Equal(t, social.KnownCount(0), sn.Views, "video.list was granted: no videos is a known 0")
		require.Nil(t, sn.Breakdowns, "a snapshot without breakdowns reads back nil")
		b, err := json.Marshal(sn)
		require.NoError(t, err)
		require.Contains(t, string(b), `"followers":null`)

		var null []bool
		require.NoError(t, tenancy.RunInTx(e.ctx, db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewRaw("SELECT followers IS NULL FROM ? WHERE tenant_id = ?", bun.Ident(social.TableSnapshots), mustTenant(ctx)).Scan(ctx, &null)
		}))
		require.Equal(t, []bool{true}, null, "stored as NULL")
	})
}

// TestSyncMediaMetricOmittedStoresUnknown: a video whose answer lacks a
// metric (view_count here) stores it unknown (NULL, JSON null), not 0; the
// metrics it carries stay exact, a video with every metric is untouched,
// and the account's views are unknown rather than an undercount.
func TestSyncMediaMetricOmittedStoresUnknown(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		require.NoError(t, e.srv.AddVideo(openID, tiktoktest.Video{ID: "7000000000000000001", CreateTime: base,
			ViewCount: 500, LikeCount: 40, CommentCount: 3, ShareCount: 2, Omit: []string{"view_count", "share_count"}}))
		require.NoError(t, e.srv.AddVideo(openID, tiktoktest.Video{ID: "7000000000000000002", CreateTime: base.Add(time.Hour),
			ViewCount: 0, LikeCount: 0, CommentCount: 0, ShareCount: 0}))
		conn := e.connect([]string{"stats", "video.read"})
		res, _, err := e.client(conn).Sync(e.ctx)
		require.NoError(t, err)
		require.False(t, res.Snapshot.Views.Known, "one video's views are unknown: so is their sum")
		require.InDelta(t, 0, res.Snapshot.EngagementRate, 1e-12, "the only video with known views has none")

		media, err := e.store.Media(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Len(t, media, 2)
		byID := map[string]social.Media{}
		for _, m := range media {
			byID[m.ExternalID] = m
		}
		omitted, zero := byID["7000000000000000001"], byID["7000000000000000002"]
		require.Equal(t, social.Count{}, omitted.Views, "left out: unknown, not 0")
		require.Equal(t, social.Count{}, omitted.Shares)
		require.Equal(t, social.KnownCount(40), omitted.Likes, "a metric present stays exact")
		require.Equal(t, social.KnownCount(3), omitted.Comments)
		for name, c := range map[string]social.Count{"views": zero.Views, "likes": zero.Likes, "comments": zero.Comments, "shares": zero.Shares} {
			require.Equal(t, social.KnownCount(0), c, "a reported 0 is a known 0: %s", name)
		}
		b, err := json.Marshal(omitted)
		require.NoError(t, err)
		require.Contains(t, string(b), `"views":null`)
		require.Contains(t, string(b), `"shares":null`)
		require.Contains(t, string(b), `"likes":40`)

		var null []bool
		require.NoError(t, tenancy.RunInTx(e.ctx, db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewRaw("SELECT views IS NULL FROM ? WHERE tenant_id = ? ORDER BY external_id", bun.Ident(social.TableMedia), mustTenant(ctx)).Scan(ctx, &null)
		}))
		require.Equal(t, []bool{true, false}, null, "stored as NULL; a reported 0 is stored as 0")
	})
}

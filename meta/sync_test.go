package meta_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
)

// TestSyncEveryConnectionKind: Client.Sync works for the three kinds of
// Meta connection. The Facebook user connection stores the profile only
// (no snapshot, no 400); after publishing, the Page sync stores the post
// with its insights; the Instagram sync stores the account's media.
func TestSyncEveryConnectionKind(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		user := e.connect(userID, allFeatures)
		conns := e.connectPages(user)

		res, _, err := e.client(user).Sync(e.ctx)
		require.NoError(t, err, "syncing the user connection is not a 400")
		require.Equal(t, "Ada Admin", res.DisplayName)
		require.Nil(t, res.Snapshot, "a user connection has no metrics")
		snaps, err := e.store.Snapshots(e.ctx, user.ID)
		require.NoError(t, err)
		require.Empty(t, snaps)
		got, err := e.store.Get(e.ctx, user.ID)
		require.NoError(t, err)
		require.Equal(t, "Ada Admin", got.DisplayName)
		require.Equal(t, e.clk.Now().UTC(), got.LastSyncAt)

		page := conns[pageID]
		pc := e.client(page)
		post, _, err := pc.Pages.Publish(e.ctx, pageID, meta.PostRequest{Message: "fresh bread"})
		require.NoError(t, err)
		require.NoError(t, e.srv.SetMetric(post.ID, "post_media_view", 40))
		require.NoError(t, e.srv.SetMetric(post.ID, "post_reactions_by_type_total", map[string]int{"like": 3, "love": 2}))
		res, _, err = pc.Sync(e.ctx)
		require.NoError(t, err)
		require.NotNil(t, res.Snapshot)
		require.Equal(t, social.KnownCount(900), res.Snapshot.Followers)
		media, err := e.store.Media(e.ctx, page.ID)
		require.NoError(t, err)
		require.NotEmpty(t, media)
		require.Equal(t, post.ID, media[0].ExternalID, "after publishing, the sync shows the post")
		require.Equal(t, "fresh bread", media[0].Title)
		require.Equal(t, social.KnownCount(40), media[0].Views)
		require.Equal(t, social.KnownCount(5), media[0].Likes, "reactions of every type")

		ig := conns[igID]
		res, _, err = e.client(ig).Sync(e.ctx)
		require.NoError(t, err)
		require.Equal(t, social.KnownCount(1234), res.Snapshot.Followers)
		require.False(t, res.Snapshot.Likes.Known, "Instagram reports no account likes: unknown")
	})
}

// TestPagesAllPosts pages through a Page's published posts, newest first.
func TestPagesAllPosts(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		user := e.connect(userID, allFeatures)
		pc := e.client(e.connectPages(user)[pageID])
		var want []string
		for _, m := range []string{"one", "two", "three"} {
			p, _, err := pc.Pages.Publish(e.ctx, pageID, meta.PostRequest{Message: m})
			require.NoError(t, err)
			e.clk.Advance(time.Minute)
			want = append([]string{p.ID}, want...)
		}
		var got []string
		for p, err := range pc.Pages.AllPosts(e.ctx, pageID, meta.ListOptions{Limit: 2}) {
			require.NoError(t, err)
			got = append(got, p.ID)
		}
		require.Equal(t, want, got[:3])
	})
}

// TestSyncMetricsLeftOutStayUnknown: the metrics a Page sync does not
// read (comments, shares), an Instagram media's likes its owner hides and
// its views Meta left out of the insights are stored unknown (JSON null),
// not 0; the metrics the answers carried stay exact, a reported 0 too.
func TestSyncMetricsLeftOutStayUnknown(t *testing.T) {
	const hidden, shown = "17950000000000201", "17950000000000202"
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db,
			metatest.WithMedia(metatest.Media{ID: hidden, OwnerID: igID, Caption: "hidden likes", LikeCount: 70, CommentsCount: 4, LikesHidden: true}),
			metatest.WithMedia(metatest.Media{ID: shown, OwnerID: igID, Caption: "shown", LikeCount: 9, CommentsCount: 0}))
		user := e.connect(userID, allFeatures)
		conns := e.connectPages(user)

		page := conns[pageID]
		pc := e.client(page)
		post, _, err := pc.Pages.Publish(e.ctx, pageID, meta.PostRequest{Message: "no insights yet"})
		require.NoError(t, err)
		_, _, err = pc.Sync(e.ctx)
		require.NoError(t, err)
		media, err := e.store.Media(e.ctx, page.ID)
		require.NoError(t, err)
		require.Len(t, media, 1)
		require.Equal(t, post.ID, media[0].ExternalID)
		require.Equal(t, social.KnownCount(0), media[0].Views, "Meta reports 0 for a new post: a known 0")
		require.Equal(t, social.KnownCount(0), media[0].Likes)
		require.False(t, media[0].Comments.Known, "the Page sync does not read comments: unknown")
		require.False(t, media[0].Shares.Known, "nor shares")
		b, err := json.Marshal(media[0])
		require.NoError(t, err)
		require.Contains(t, string(b), `"views":0,"likes":0,"comments":null,"shares":null`)

		require.NoError(t, e.srv.SetMetric(shown, "views", 300))
		ig := conns[igID]
		res, _, err := e.client(ig).Sync(e.ctx)
		require.NoError(t, err)
		require.False(t, res.Snapshot.Views.Known, "one media's views are unknown: so is their sum")
		media, err = e.store.Media(e.ctx, ig.ID)
		require.NoError(t, err)
		byID := map[string]social.Media{}
		for _, m := range media {
			byID[m.ExternalID] = m
		}
		require.Equal(t, social.Count{}, byID[hidden].Likes, "likes hidden by the owner: unknown, not 0")
		require.Equal(t, social.KnownCount(4), byID[hidden].Comments)
		require.Equal(t, social.KnownCount(9), byID[shown].Likes)
		require.Equal(t, social.KnownCount(0), byID[shown].Comments, "a reported 0 stays a known 0")
		require.Equal(t, social.KnownCount(300), byID[shown].Views)
		require.False(t, byID[hidden].Views.Known, "Meta left its views out of the insights: unknown")
		require.Equal(t, "unknown", byID[hidden].Likes.String())
	})
}

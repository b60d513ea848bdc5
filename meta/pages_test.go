package meta_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/social"
)

func TestPagesListAndGet(t *testing.T) {
	db := dbtest.SQLite(t, setupDB)
	e := newEnv(t, db)
	user := e.connect(userID, allFeatures)
	c := e.client(user)
	l, resp, err := c.Pages.List(e.ctx, meta.ListOptions{Limit: 1})
	require.NoError(t, err)
	require.Len(t, l.Pages, 1)
	require.NotEmpty(t, l.Next, "List returned no cursor for the second Page")
	require.NotNil(t, resp.Usage.App, "X-App-Usage not parsed")
	require.Equal(t, e.srv.Version(), resp.Version)
	var ids []string
	for p, err := range c.Pages.All(e.ctx, meta.ListOptions{}) {
		require.NoError(t, err)
		ids = append(ids, p.ID)
	}
	require.Equal(t, []string{pageID, page2ID}, ids)

	p, _, err := c.Pages.Get(e.ctx, pageID)
	require.NoError(t, err)
	require.Equal(t, int64(900), p.FollowersCount)
	require.NotNil(t, p.Instagram)
	require.Equal(t, igID, p.Instagram.ID)
	_, _, err = c.Pages.Get(e.ctx, "../me")
	require.ErrorIs(t, err, meta.ErrConfig)
}

func TestPagesPublish(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		_, page, c := e.pageClient(allFeatures)
		reqs := []meta.PostRequest{
			{Message: "Fresh bread today"},
			{Message: "Our menu", Link: "https://bakery.example/menu"},
			{Message: "Croissants", PhotoURL: "https://cdn.example/c.jpg"},
			{Message: "Baking", VideoURL: "https://cdn.example/b.mp4", Title: "How we bake"},
		}
		kinds := []meta.PostKind{meta.PostText, meta.PostLink, meta.PostPhoto, meta.PostVideo}
		var ids []string
		for i, r := range reqs {
			p, _, err := c.Pages.Publish(e.ctx, pageID, r)
			require.NoError(t, err, "Publish(%+v)", r)
			require.Equal(t, kinds[i], p.Kind)
			require.NotEmpty(t, p.ID)
			ids = append(ids, p.ID)
		}
		posts := e.srv.Posts(pageID)
		require.Len(t, posts, 4)
		require.Equal(t, "video", posts[0].Type)
		require.Equal(t, "https://cdn.example/b.mp4", posts[0].MediaURL)
		require.Equal(t, "link", posts[2].Type)

		got, _, err := c.Pages.GetPost(e.ctx, ids[1])
		require.NoError(t, err)
		require.Equal(t, "https://bakery.example/menu", got.Link)
		require.Equal(t, pageID, got.PageID)
		require.False(t, got.CreatedTime.IsZero())

		// One audit entry per publish.
		n := 0
		for _, a := range e.auditActions() {
			if a == "meta.page.publish" {
				n++
			}
		}
		require.Equal(t, 4, n)

		// A user connection cannot publish: the Page's own connection must.
		uc := e.client(e.connect(userID, allFeatures))
		e.srv.ClearRequests()
		_, _, err = uc.Pages.Publish(e.ctx, pageID, meta.PostRequest{Message: "x"})
		require.ErrorIs(t, err, meta.ErrNotPageConnection)
		_, _, err = c.Pages.Publish(e.ctx, pageID, meta.PostRequest{})
		require.ErrorIs(t, err, meta.ErrConfig)
		_, _, err = c.Pages.Publish(e.ctx, pageID, meta.PostRequest{Link: "ftp://x"})
		require.ErrorIs(t, err, meta.ErrConfig)
		require.Zero(t, e.graphCalls(), "refused publishes reached Meta")
		_ = page
	})
}

func TestPagesInsights(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		_, page, c := e.pageClient(allFeatures)
		require.NoError(t, e.srv.SetMetric(pageID, "page_media_view", 321))
		in, _, err := c.Pages.Insights(e.ctx, pageID, meta.InsightsOptions{})
		require.NoError(t, err)
		require.Equal(t, e.srv.Version(), in.Version)
		require.Equal(t, []string{"page_media_view", "page_total_media_view_unique", "page_post_engagements", "page_daily_follows_unique"}, in.Metrics)
		v, ok := in.Latest("page_media_view")
		require.True(t, ok)
		require.Equal(t, 321.0, v)
		require.False(t, in.Data[0].Values[0].EndTime.IsZero(), "end_time with +0000 not decoded")

		p, _, err := c.Pages.Publish(e.ctx, pageID, meta.PostRequest{Message: "hello"})
		require.NoError(t, err)
		require.NoError(t, e.srv.SetMetric(p.ID, "post_media_view", 77))
		pin, _, err := c.Pages.PostInsights(e.ctx, p.ID, meta.InsightsOptions{})
		require.NoError(t, err)
		v, _ = pin.Latest("post_media_view")
		require.Equal(t, 77.0, v)

		// A range Meta refuses is refused locally.
		now := e.clk.Now()
		_, _, err = c.Pages.Insights(e.ctx, pageID, meta.InsightsOptions{Since: now.Add(-100 * 24 * time.Hour), Until: now})
		require.ErrorIs(t, err, meta.ErrConfig)
		_, _, err = c.Pages.Insights(e.ctx, pageID, meta.InsightsOptions{Since: now, Until: now.Add(-time.Hour)})
		require.ErrorIs(t, err, meta.ErrConfig)
		ranged, _, err := c.Pages.Insights(e.ctx, pageID, meta.InsightsOptions{Since: now.Add(-7 * 24 * time.Hour), Until: now})
		require.NoError(t, err)
		require.Len(t, ranged.Data[0].Values, 7)

		sn, _, err := c.Pages.Snapshot(e.ctx, pageID)
		require.NoError(t, err)
		require.Equal(t, social.KnownCount(900), sn.Followers)
		require.Equal(t, social.KnownCount(321), sn.Views)
		require.False(t, sn.Following.Known, "a Page reports no following count: unknown, not 0")
		posts, err := e.store.Media(e.ctx, page.ID)
		require.NoError(t, err)
		i := slices.IndexFunc(posts, func(m social.Media) bool { return m.ExternalID == p.ID })
		require.GreaterOrEqual(t, i, 0, "the sync stores the published post")
		require.Equal(t, "hello", posts[i].Title)
		require.Equal(t, social.KnownCount(77), posts[i].Views, "with its insights")
		require.NotEmpty(t, posts[i].ShareURL)
		stored, err := e.store.Snapshots(e.ctx, page.ID)
		require.NoError(t, err)
		require.Len(t, stored, 1)
		require.Equal(t, "graph "+e.srv.Version()+"; page_media_view,page_total_media_view_unique,page_post_engagements,page_daily_follows_unique", stored[0].Source)
		n, err := e.store.RawResponses(e.ctx, page.ID)
		require.NoError(t, err)
		require.Zero(t, n, "raw answers kept without WithRawResponses")

		rc, err := meta.New(e.cfg, append(e.clientOpts(), meta.WithSession(e.session(page)), meta.WithRawResponses())...)
		require.NoError(t, err)
		_, _, err = rc.Pages.Snapshot(e.ctx, pageID)
		require.NoError(t, err)
		n, err = e.store.RawResponses(e.ctx, page.ID)
		require.NoError(t, err)
		require.Equal(t, 1+len(posts), n, "the Page's insights and each post's")
	})
}

func TestDeprecatedMetrics(t *testing.T) {
	db := dbtest.SQLite(t, setupDB)
	e := newEnv(t, db)
	_, _, c := e.pageClient(allFeatures)

	// A retired metric without a current fallback fails before any request.
	e.srv.ClearRequests()
	_, _, err := c.Pages.Insights(e.ctx, pageID, meta.InsightsOptions{Metrics: []meta.Metric{{Name: "page_impressions"}}})
	var de *meta.DeprecatedMetricError
	require.True(t, errors.As(err, &de), "got %v", err)
	require.ErrorIs(t, err, meta.ErrDeprecatedMetric)
	require.Equal(t, "page_media_view", de.Replacement)
	require.Zero(t, e.graphCalls())

	// With a fallback, the retired name is skipped without a request.
	in, _, err := c.Pages.Insights(e.ctx, pageID, meta.InsightsOptions{Metrics: []meta.Metric{{Name: "page_impressions", Fallbacks: []string{"page_media_view"}}}})
	require.NoError(t, err)
	require.Equal(t, []string{"page_media_view"}, in.Metrics)
	require.Equal(t, 1, e.graphCalls())
	require.Equal(t, "page_media_view", e.srv.Requests()[0].Query.Get("metric"))

	// A metric Meta retires later than this client knows: the batch fails
	// with code 100 and the fallback is found metric by metric.
	e.srv.RetireMetric("page_post_engagements")
	in, _, err = c.Pages.Insights(e.ctx, pageID, meta.InsightsOptions{Metrics: []meta.Metric{
		{Name: "page_media_view"}, {Name: "page_post_engagements", Fallbacks: []string{"page_views_total"}}}})
	require.NoError(t, err)
	require.Equal(t, []string{"page_media_view", "page_views_total"}, in.Metrics)
	_, _, err = c.Pages.Insights(e.ctx, pageID, meta.InsightsOptions{Metrics: []meta.Metric{{Name: "page_post_engagements"}}})
	var me *meta.MetricError
	require.True(t, errors.As(err, &me), "got %v", err)
	require.ErrorIs(t, err, meta.ErrInvalidParameter)

	if _, ok := meta.Deprecated("views", e.clk.Now()); ok {
		t.Error("views reported deprecated")
	}
	if d, ok := meta.Deprecated("impressions", e.clk.Now()); !ok || d.Replacement != "views" {
		t.Errorf("Deprecated(impressions) = %v, %v", d, ok)
	}
}

// TestPagesScopes: each Pages method refuses, with zero requests, on a
// connection that lacks its permissions, and a declined permission is
// not granted.
func TestPagesScopes(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		_, _, c := e.pageClient(allFeatures, meta.PermPagesManagePosts, meta.PermReadInsights)
		e.srv.ClearRequests()
		calls := map[string]func() error{
			"Publish": func() error {
				_, _, err := c.Pages.Publish(e.ctx, pageID, meta.PostRequest{Message: "x"})
				return err
			},
			"Insights": func() error {
				_, _, err := c.Pages.Insights(e.ctx, pageID, meta.InsightsOptions{})
				return err
			},
			"PostInsights": func() error {
				_, _, err := c.Pages.PostInsights(e.ctx, pageID+"_1", meta.InsightsOptions{})
				return err
			},
			"Snapshot": func() error {
				_, _, err := c.Pages.Snapshot(e.ctx, pageID)
				return err
			},
		}
		for name, call := range calls {
			err := call()
			var se *social.ScopeError
			require.True(t, errors.As(err, &se), "%s returned %v, want a *social.ScopeError", name, err)
			require.True(t, slices.Contains(se.Missing, meta.PermPagesManagePosts) || slices.Contains(se.Missing, meta.PermReadInsights), "%s: Missing %v", name, se.Missing)
		}
		require.Zero(t, e.graphCalls(), "a refused call reached Meta")

		profileOnly := e.client(e.connect(user2ID, []string{meta.FeatureProfile}))
		e.srv.ClearRequests()
		_, _, err := profileOnly.Pages.List(e.ctx, meta.ListOptions{})
		require.ErrorIs(t, err, social.ErrScope)
		_, _, err = profileOnly.Pages.Get(e.ctx, pageID)
		require.ErrorIs(t, err, social.ErrScope)
		_, _, err = profileOnly.Pages.GetPost(e.ctx, pageID+"_1")
		require.ErrorIs(t, err, social.ErrScope)
		for _, err := range profileOnly.Pages.All(e.ctx, meta.ListOptions{}) {
			require.ErrorIs(t, err, social.ErrScope)
		}
		require.Zero(t, e.graphCalls(), "a refused call reached Meta")
	})
}

// TestClientConcurrentUse runs calls from several goroutines on one
// client (run with -race).
func TestClientConcurrentUse(t *testing.T) {
	db := dbtest.SQLite(t, setupDB)
	e := newEnv(t, db)
	_, _, c := e.pageClient(allFeatures)
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			var err error
			if i%2 == 0 {
				_, _, err = c.Pages.Get(e.ctx, pageID)
			} else {
				_, _, err = c.Pages.Insights(e.ctx, pageID, meta.InsightsOptions{})
			}
			_ = c.Usage()
			errs <- err
		}()
	}
	for range 16 {
		require.NoError(t, <-errs)
	}
}

package meta_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
)

// igClient connects the user, their Pages and the Instagram account, and
// returns a client for the Instagram account's connection.
func (e *env) igClient(features []string, decline ...string) (social.Connection, *meta.Client) {
	e.t.Helper()
	user := e.connect(userID, features, decline...)
	conns := e.connectPages(user)
	ig, ok := conns[igID]
	require.True(e.t, ok, "no Instagram connection")
	return ig, e.client(ig)
}

func TestInstagramProfileAndMedia(t *testing.T) {
	db := dbtest.SQLite(t, setupDB)
	e := newEnv(t, db,
		metatest.WithMedia(metatest.Media{ID: "17950000000000101", OwnerID: igID, Caption: "old", LikeCount: 5}),
		metatest.WithMedia(metatest.Media{ID: "17950000000000102", OwnerID: igID, Caption: "older", MediaType: "VIDEO", MediaProductType: "REELS"}))
	_, page, pc := e.pageClient(allFeatures)
	_ = page
	ref, _, err := pc.Instagram.Account(e.ctx, pageID)
	require.NoError(t, err)
	require.Equal(t, igID, ref.ID)
	_, _, err = pc.Instagram.Account(e.ctx, page2ID)
	require.ErrorIs(t, err, meta.ErrNoInstagramAccount)

	_, c := e.igClient(allFeatures)
	p, _, err := c.Instagram.Profile(e.ctx, igID)
	require.NoError(t, err)
	require.Equal(t, "adasbakery", p.Username)
	require.Equal(t, int64(1234), p.FollowersCount)
	require.Equal(t, int64(12), p.MediaCount)

	var ids []string
	for m, err := range c.Instagram.AllMedia(e.ctx, igID, meta.ListOptions{Limit: 1}) {
		require.NoError(t, err)
		ids = append(ids, m.ID)
	}
	require.Len(t, ids, 2)

	require.NoError(t, e.srv.SetMetric("17950000000000101", "views", 4000))
	require.NoError(t, e.srv.SetMetric("17950000000000101", "reach", 900))
	in, _, err := c.Instagram.MediaInsights(e.ctx, "17950000000000101", meta.InsightsOptions{})
	require.NoError(t, err)
	v, ok := in.Latest("views")
	require.True(t, ok)
	require.Equal(t, 4000.0, v)
	_, ok = in.Latest("likes")
	require.False(t, ok, "Meta leaves out metrics without data")

	// impressions is retired for Instagram: refused locally.
	e.srv.ClearRequests()
	_, _, err = c.Instagram.MediaInsights(e.ctx, "17950000000000101", meta.InsightsOptions{Metrics: []meta.Metric{{Name: "impressions"}}})
	require.ErrorIs(t, err, meta.ErrDeprecatedMetric)
	require.Zero(t, e.graphCalls())
}

func TestInstagramPublish(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db, metatest.WithContainerProcessing(5*time.Second, 3*time.Minute))
		ig, c := e.igClient(allFeatures)
		m, _, err := c.Instagram.Publish(e.ctx, igID, meta.MediaRequest{ImageURL: "https://cdn.example/a.jpg", Caption: "Bread", PollInterval: 10 * time.Second})
		require.NoError(t, err)
		require.NotEmpty(t, m.ID)

		// A reel is IN_PROGRESS for 3 minutes: polled on the clock.
		waits := len(e.waits)
		start := e.clk.Now()
		reel, _, err := c.Instagram.Publish(e.ctx, igID, meta.MediaRequest{VideoURL: "https://cdn.example/r.mp4", Caption: "Reel"})
		require.NoError(t, err)
		require.GreaterOrEqual(t, e.clk.Now().Sub(start), 3*time.Minute)
		require.Equal(t, 3, len(e.waits)-waits, "one-minute polls")

		car, _, err := c.Instagram.Publish(e.ctx, igID, meta.MediaRequest{Caption: "Album", Items: []meta.MediaItem{
			{ImageURL: "https://cdn.example/1.jpg"}, {VideoURL: "https://cdn.example/2.mp4"}}})
		require.NoError(t, err)

		l, _, err := c.Instagram.ListMedia(e.ctx, igID, meta.ListOptions{})
		require.NoError(t, err)
		require.Len(t, l.Media, 3)
		require.Equal(t, car.ID, l.Media[0].ID)
		require.Equal(t, "CAROUSEL_ALBUM", l.Media[0].MediaType)
		require.Equal(t, reel.ID, l.Media[1].ID)
		require.Equal(t, "REELS", l.Media[1].MediaProductType)

		n := 0
		for _, a := range e.auditActions() {
			if a == "meta.instagram.publish" {
				n++
			}
		}
		require.Equal(t, 3, n)

		sn, _, err := c.Instagram.Snapshot(e.ctx, igID)
		require.NoError(t, err)
		require.Equal(t, social.KnownCount(1234), sn.Followers)
		media, err := e.store.Media(e.ctx, ig.ID)
		require.NoError(t, err)
		require.Len(t, media, 3, "the sync stores the published media")
		stored, err := e.store.Snapshots(e.ctx, ig.ID)
		require.NoError(t, err)
		require.Len(t, stored, 1)
		require.Contains(t, stored[0].Source, e.srv.Version())
	})
}

func TestInstagramContainerFailures(t *testing.T) {
	db := dbtest.SQLite(t, setupDB)
	e := newEnv(t, db, metatest.WithContainerProcessing(time.Second, 30*time.Minute))
	_, c := e.igClient(allFeatures)

	// Still IN_PROGRESS when the timeout passes: nothing published.
	_, _, err := c.Instagram.Publish(e.ctx, igID, meta.MediaRequest{VideoURL: "https://cdn.example/long.mp4", Timeout: 5 * time.Minute})
	var ce *meta.ContainerError
	require.True(t, errors.As(err, &ce), "got %v", err)
	require.Equal(t, meta.StatusInProgress, ce.Code)

	// Meta cannot download the media: 9004/2207052 at creation.
	e.srv.FailMediaURL("https://cdn.example/blocked.jpg")
	_, _, err = c.Instagram.Publish(e.ctx, igID, meta.MediaRequest{ImageURL: "https://cdn.example/blocked.jpg"})
	var apiErr *meta.APIError
	require.True(t, errors.As(err, &apiErr), "got %v", err)
	require.Equal(t, 9004, apiErr.Code)
	require.Equal(t, 2207052, apiErr.Subcode)

	// The container expires after 24 hours: EXPIRED.
	st, _, err := c.Instagram.Container(e.ctx, ce.ID)
	require.NoError(t, err)
	require.Equal(t, meta.StatusInProgress, st.Code)
	e.clk.Advance(25 * time.Hour)
	st, _, err = c.Instagram.Container(e.ctx, ce.ID)
	require.NoError(t, err)
	require.Equal(t, meta.StatusExpired, st.Code)

	// Invalid requests fail locally.
	for _, r := range []meta.MediaRequest{{}, {ImageURL: "x"}, {Items: []meta.MediaItem{{ImageURL: "https://a/b.jpg"}}},
		{ImageURL: "https://a/b.jpg", VideoURL: "https://a/c.mp4"}, {Kind: meta.MediaReel, ImageURL: "https://a/b.jpg"}} {
		_, _, err := c.Instagram.Publish(e.ctx, igID, r)
		require.ErrorIs(t, err, meta.ErrConfig, "%+v", r)
	}
}

func TestInstagramPublishingLimit(t *testing.T) {
	db := dbtest.SQLite(t, setupDB)
	e := newEnv(t, db, metatest.WithPublishingLimit(1), metatest.WithContainerProcessing(0, 0))
	_, c := e.igClient(allFeatures)
	_, _, err := c.Instagram.Publish(e.ctx, igID, meta.MediaRequest{ImageURL: "https://cdn.example/a.jpg"})
	require.NoError(t, err)
	lim, _, err := c.Instagram.PublishingLimit(e.ctx, igID)
	require.NoError(t, err)
	require.Equal(t, meta.PublishingLimit{Usage: 1, Total: 1, Window: 24 * time.Hour}, *lim)
	e.srv.ClearRequests()
	_, _, err = c.Instagram.Publish(e.ctx, igID, meta.MediaRequest{ImageURL: "https://cdn.example/b.jpg"})
	require.ErrorIs(t, err, meta.ErrPublishLimit)
	for _, r := range e.srv.Requests() {
		require.NotEqual(t, "POST", r.Method, "a container was created past the limit: %s", r.Path)
	}
}

// TestInstagramScopes: every Instagram method refuses, with zero
// requests, when a permission is missing or declined.
func TestInstagramScopes(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		_, c := e.igClient(allFeatures, meta.PermInstagramContentPublish, meta.PermInstagramManageInsights)
		e.srv.ClearRequests()
		_, _, err := c.Instagram.Publish(e.ctx, igID, meta.MediaRequest{ImageURL: "https://cdn.example/a.jpg"})
		require.ErrorIs(t, err, social.ErrScope)
		_, _, err = c.Instagram.PublishingLimit(e.ctx, igID)
		require.ErrorIs(t, err, social.ErrScope)
		_, _, err = c.Instagram.MediaInsights(e.ctx, "17950000000000101", meta.InsightsOptions{})
		require.ErrorIs(t, err, social.ErrScope)
		require.Zero(t, e.graphCalls())

		pagesOnly := e.client(e.connect(user2ID, []string{meta.FeaturePages}))
		e.srv.ClearRequests()
		for name, call := range map[string]func() error{
			"Account":   func() error { _, _, err := pagesOnly.Instagram.Account(e.ctx, pageID); return err },
			"Profile":   func() error { _, _, err := pagesOnly.Instagram.Profile(e.ctx, igID); return err },
			"ListMedia": func() error { _, _, err := pagesOnly.Instagram.ListMedia(e.ctx, igID, meta.ListOptions{}); return err },
			"Container": func() error { _, _, err := pagesOnly.Instagram.Container(e.ctx, "1"); return err },
			"Snapshot":  func() error { _, _, err := pagesOnly.Instagram.Snapshot(e.ctx, igID); return err },
		} {
			var se *social.ScopeError
			require.True(t, errors.As(call(), &se), "%s did not refuse with a *social.ScopeError", name)
			require.True(t, se.Missing.Has(meta.PermInstagramBasic), "%s: Missing %v", name, se.Missing)
		}
		for _, err := range pagesOnly.Instagram.AllMedia(e.ctx, igID, meta.ListOptions{}) {
			require.ErrorIs(t, err, social.ErrScope)
		}
		require.Zero(t, e.graphCalls())
	})
}

package tiktok_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

func TestScopeEnforcementSendsNothing(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"profile", "stats", "video.read"}, "user.info.stats", "video.list")
		c := e.client(conn)
		e.srv.ClearRequests()

		_, _, err := c.User.Info(e.ctx, tiktok.UserInfoOptions{Fields: []string{"display_name", "follower_count"}})
		var se *social.ScopeError
		require.ErrorAs(t, err, &se)
		require.Equal(t, social.NewScopes("user.info.stats"), se.Missing)
		require.ErrorIs(t, err, social.ErrScope)

		_, _, err = c.Videos.List(e.ctx, tiktok.VideoListOptions{})
		require.ErrorAs(t, err, &se)
		require.Equal(t, social.NewScopes("video.list"), se.Missing)
		_, _, err = c.Videos.Query(e.ctx, []string{"1"}, tiktok.VideoQueryOptions{})
		require.ErrorAs(t, err, &se)
		for _, err := range c.Videos.All(e.ctx, tiktok.VideoListOptions{}) {
			require.ErrorAs(t, err, &se)
		}
		require.Empty(t, e.srv.Requests(), "no request reached TikTok")
	})
}

func TestUserInfoFieldsFollowScopes(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"profile", "stats"}, "user.info.stats")
		c := e.client(conn)
		u, resp, err := c.User.Info(e.ctx, tiktok.UserInfoOptions{})
		require.NoError(t, err)
		require.NotEmpty(t, resp.LogID)
		require.Equal(t, openID, u.OpenID)
		require.Equal(t, "Ana", u.DisplayName)
		require.Equal(t, "ana", u.Username)
		require.Zero(t, u.FollowerCount, "stats were declined, so not requested")
		reqs := e.srv.RequestsTo(tiktoktest.UserInfoPath)
		require.Len(t, reqs, 1)
		fields := strings.Split(reqs[0].Query.Get("fields"), ",")
		require.Contains(t, fields, "username")
		require.NotContains(t, fields, "follower_count")
		require.Equal(t, "GET", reqs[0].Method)

		full := e.client(e.connect([]string{"profile", "stats"}))
		u, _, err = full.User.Info(e.ctx, tiktok.UserInfoOptions{Fields: []string{"follower_count", "likes_count"}})
		require.NoError(t, err)
		require.EqualValues(t, 1200, u.FollowerCount)
		require.EqualValues(t, 50, u.LikesCount)
	})
}

func TestVideos(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range 45 {
			require.NoError(t, e.srv.AddVideo(openID, tiktoktest.Video{
				ID: fmt.Sprintf("7%018d", i), CreateTime: base.Add(time.Duration(i) * time.Hour), Title: fmt.Sprint("v", i), ViewCount: int64(i),
			}))
		}
		c := e.client(e.connect([]string{"video.read"}))
		e.srv.ClearRequests()
		var ids []string
		for v, err := range c.Videos.All(e.ctx, tiktok.VideoListOptions{}) {
			require.NoError(t, err)
			ids = append(ids, v.ID)
		}
		require.Len(t, ids, 45)
		require.Equal(t, fmt.Sprintf("7%018d", 44), ids[0], "newest first")
		reqs := e.srv.RequestsTo(tiktoktest.VideoListPath)
		require.Len(t, reqs, 3, "the minimum number of pages")
		require.Equal(t, "POST", reqs[0].Method)
		require.Contains(t, reqs[0].Query.Get("fields"), "id")

		page, _, err := c.Videos.List(e.ctx, tiktok.VideoListOptions{MaxCount: 5})
		require.NoError(t, err)
		require.Len(t, page.Videos, 5)
		require.True(t, page.HasMore)
		require.Equal(t, base.Add(40*time.Hour), page.Videos[4].Created())
		require.Equal(t, base.Add(40*time.Hour).UnixMilli(), page.Cursor, "cursor in ms")

		vs, _, err := c.Videos.Query(e.ctx, []string{ids[0], ids[1], "404"}, tiktok.VideoQueryOptions{Fields: []string{"id", "title"}})
		require.NoError(t, err)
		require.Len(t, vs, 2)
		require.Equal(t, "v44", vs[0].Title)
		_, _, err = c.Videos.Query(e.ctx, make([]string, 21), tiktok.VideoQueryOptions{})
		require.Error(t, err)
		_, _, err = c.Videos.List(e.ctx, tiktok.VideoListOptions{MaxCount: 21})
		require.Error(t, err)
	})
}

func TestInvalidTokenMarksNeedsReauth(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"video.read"})
		c := e.client(conn)
		e.srv.Revoke(clientKey, openID)
		_, resp, err := c.Videos.List(e.ctx, tiktok.VideoListOptions{})
		require.ErrorIs(t, err, social.ErrNeedsReauth)
		require.ErrorIs(t, err, social.ErrInvalidToken)
		var ae *tiktok.APIError
		require.ErrorAs(t, err, &ae)
		require.Equal(t, tiktok.CodeAccessTokenInvalid, ae.Code)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		require.NotEmpty(t, ae.LogID)
		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusNeedsReauth, got.Status)
		_, err = e.store.Session(e.ctx, conn.ID, e.prov)
		require.ErrorIs(t, err, social.ErrNeedsReauth)
	})
}

func TestRetries(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		c := e.client(e.connect([]string{"video.read"}))
		e.srv.ClearRequests()
		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.VideoListPath, Status: http.StatusTooManyRequests})
		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.VideoListPath, Status: http.StatusBadGateway})
		_, _, err := c.Videos.List(e.ctx, tiktok.VideoListOptions{})
		require.NoError(t, err)
		require.Len(t, e.srv.RequestsTo(tiktoktest.VideoListPath), 3)
		require.Len(t, e.waits, 2)

		// Bounded: four attempts, then the typed error.
		e.srv.ClearRequests()
		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.VideoListPath, Status: http.StatusTooManyRequests, Count: 10})
		_, _, err = c.Videos.List(e.ctx, tiktok.VideoListOptions{})
		var ae *tiktok.APIError
		require.ErrorAs(t, err, &ae)
		require.ErrorIs(t, err, tiktok.ErrRateLimited)
		require.Len(t, e.srv.RequestsTo(tiktoktest.VideoListPath), 4)
		e.srv.ClearFaults()

		// Refresh (not idempotent under rotation) is not retried on 5xx.
		e.srv.ClearRequests()
		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.TokenPath, Status: http.StatusInternalServerError})
		e.clk.Advance(tiktoktest.DefaultAccessTokenLifetime)
		_, _, err = c.Videos.List(e.ctx, tiktok.VideoListOptions{})
		var oe *tiktok.OAuthError
		require.ErrorAs(t, err, &oe)
		require.False(t, errors.Is(err, social.ErrNeedsReauth), "a server error does not need reauthorization")
		require.Len(t, e.srv.RequestsTo(tiktoktest.TokenPath), 1)
		_, _, err = c.Videos.List(e.ctx, tiktok.VideoListOptions{})
		require.NoError(t, err, "the next call refreshes")
	})
}

package tiktok_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// TestLookupLostPublish: a Direct Post whose answer was lost is sent once;
// Lookup then finds the post among the creator's videos (or the task, when
// the lost answer named it) without publishing again, and finds nothing
// when TikTok did nothing.
func TestLookupLostPublish(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db, tiktoktest.WithApp(tiktoktest.App{
			ClientKey: "ck-media", ClientSecret: "cs-media", RedirectURIs: []string{redirectURI},
			Scopes:              []string{"user.info.basic", "video.list", "video.publish"},
			VerifiedURLPrefixes: []string{"media.example"},
		}))
		e.cfg.ClientKey, e.cfg.ClientSecret = "ck-media", "cs-media"
		var err error
		e.prov, err = tiktok.NewProvider(e.cfg, e.clientOpts()...)
		require.NoError(t, err)
		c := e.client(e.connect([]string{"video.read", "publish"}))
		post := func(title string) *tiktok.OutcomeUnknownError {
			t.Helper()
			_, _, err := c.Posting.InitVideo(e.ctx, tiktok.VideoInitRequest{
				PostInfo:   tiktok.PostInfo{Title: title, PrivacyLevel: tiktok.PrivacyPublic},
				SourceInfo: tiktok.SourceInfo{Source: tiktok.SourcePullFromURL, VideoURL: "https://cdn.media.example/v.mp4"}})
			require.ErrorIs(t, err, social.ErrOutcomeUnknown)
			var ou *tiktok.OutcomeUnknownError
			require.True(t, errors.As(err, &ou))
			return ou
		}

		// Carried out, answer dropped: one request, then the post is found.
		e.srv.ClearRequests()
		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.VideoInitPath, Processed: true, Drop: true})
		ou := post("spring drop")
		require.Empty(t, ou.PublishID, "no answer, no publish id")
		require.Len(t, e.srv.RequestsTo(tiktoktest.VideoInitPath), 1, "exactly one publish request")
		e.clk.Advance(5 * time.Minute) // download, processing, moderation
		found, err := c.Posting.Lookup(e.ctx, ou, "spring drop")
		require.NoError(t, err)
		require.True(t, found.Found())
		require.NotNil(t, found.Video)
		require.Equal(t, "spring drop", found.Video.Title)
		require.Len(t, e.srv.Publishes(), 1)
		require.Len(t, e.srv.RequestsTo(tiktoktest.VideoInitPath), 1, "Lookup publishes nothing")

		// Not carried out: nothing is found (the older post does not count).
		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.VideoInitPath, Drop: true})
		ou = post("spring drop")
		e.clk.Advance(5 * time.Minute)
		found, err = c.Posting.Lookup(e.ctx, ou, "spring drop")
		require.NoError(t, err)
		require.False(t, found.Found(), "%+v", found)
		require.Len(t, e.srv.Publishes(), 1)

		// An answer that named the task: its status is fetched.
		init, _, err := c.Posting.InitVideo(e.ctx, tiktok.VideoInitRequest{
			PostInfo:   tiktok.PostInfo{Title: "named", PrivacyLevel: tiktok.PrivacyPublic},
			SourceInfo: tiktok.SourceInfo{Source: tiktok.SourcePullFromURL, VideoURL: "https://cdn.media.example/w.mp4"}})
		require.NoError(t, err)
		e.clk.Advance(5 * time.Minute)
		found, err = c.Posting.Lookup(e.ctx, &tiktok.OutcomeUnknownError{Path: tiktoktest.VideoInitPath, SentAt: e.clk.Now(),
			StatusCode: http.StatusBadGateway, PublishID: init.PublishID}, "")
		require.NoError(t, err)
		require.True(t, found.Found())
		require.Equal(t, tiktok.StatusPublishComplete, found.Status.Status)
	})
}

package tiktok_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

func TestPlanChunks(t *testing.T) {
	const mb = 1 << 20
	for _, tc := range []struct {
		size, chunk, wantChunk, wantCount int64
	}{
		{size: 3 * mb, wantChunk: 3 * mb, wantCount: 1},
		{size: 50_000_123, chunk: 10_000_000, wantChunk: 10_000_000, wantCount: 5},
		{size: 12 * mb, chunk: 5 * mb, wantChunk: 5 * mb, wantCount: 2},
		{size: 6 * mb, wantChunk: 6 * mb, wantCount: 1},
		{size: 20_000 * mb, chunk: 5 * mb, wantChunk: 20 * mb, wantCount: 1000},
	} {
		si, err := tiktok.PlanChunks(tc.size, tc.chunk)
		require.NoError(t, err)
		if si.ChunkSize != tc.wantChunk || si.TotalChunkCount != tc.wantCount {
			t.Errorf("PlanChunks(%d, %d) returned %d×%d, want %d×%d", tc.size, tc.chunk, si.TotalChunkCount, si.ChunkSize, tc.wantCount, tc.wantChunk)
		}
		last := tc.size - (si.TotalChunkCount-1)*si.ChunkSize
		require.LessOrEqual(t, last, int64(tiktok.MaxFinalChunk))
	}
	_, err := tiktok.PlanChunks(0, 0)
	require.Error(t, err)
	_, err = tiktok.PlanChunks(100*mb, 65*mb)
	require.Error(t, err)
}

func TestDirectPostFileUpload(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		c := e.client(e.connect([]string{"profile", "publish"}))
		ci, _, err := c.Posting.CreatorInfo(e.ctx)
		require.NoError(t, err)
		require.Equal(t, "Ana", ci.CreatorNickname)
		require.Contains(t, ci.PrivacyLevelOptions, tiktok.PrivacyPublic)

		video := bytes.Repeat([]byte{0x42}, 12<<20)
		src, err := tiktok.PlanChunks(int64(len(video)), 5<<20)
		require.NoError(t, err)
		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.UploadPath, Status: http.StatusBadGateway})
		init, _, err := c.Posting.InitVideo(e.ctx, tiktok.VideoInitRequest{
			PostInfo:   tiktok.PostInfo{PrivacyLevel: tiktok.PrivacySelfOnly, Title: "hello #crm"},
			SourceInfo: src,
		})
		require.NoError(t, err)
		require.NotEmpty(t, init.PublishID)
		require.NotEmpty(t, init.UploadURL)
		_, err = c.Posting.Upload(e.ctx, init.UploadURL, bytes.NewReader(video), src, "video/mp4")
		require.NoError(t, err)
		ups := e.srv.RequestsTo(tiktoktest.UploadPath)
		require.Len(t, ups, 3, "two chunks, the first sent again after a 502")
		for _, r := range ups {
			require.Empty(t, r.Header.Get("Authorization"), "no bearer token to the upload host")
		}
		require.Equal(t, "bytes 5242880-12582911/12582912", ups[2].Header.Get("Content-Range"))

		st, _, err := c.Posting.Status(e.ctx, init.PublishID)
		require.NoError(t, err)
		require.Equal(t, tiktok.StatusProcessingUpload, st.Status)
		require.False(t, st.Done())
		e.clk.Advance(time.Minute)
		st, _, err = c.Posting.Status(e.ctx, init.PublishID)
		require.NoError(t, err)
		require.Equal(t, tiktok.StatusPublishComplete, st.Status)
		require.True(t, st.Done())
		p, err := e.srv.Publish(init.PublishID)
		require.NoError(t, err)
		require.Equal(t, video, p.Data)
		require.Contains(t, e.auditActions(), "tiktok.publish_started", "publishing is audited")
	})
}

func TestPostingErrors(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		require.NoError(t, e.srv.AddUser(tiktoktest.User{OpenID: "capped", DisplayName: "Cap", PostingError: tiktoktest.PostingTooManyPosts}))

		// Read-only connection: publishing is a scope error, nothing sent.
		ro := e.client(e.connect([]string{"profile"}))
		e.srv.ClearRequests()
		_, _, err := ro.Posting.CreatorInfo(e.ctx)
		var se *social.ScopeError
		require.ErrorAs(t, err, &se)
		require.Equal(t, social.NewScopes(tiktok.ScopeVideoPublish), se.Missing)
		_, _, err = ro.Posting.InitInboxVideo(e.ctx, tiktok.SourceInfo{Source: tiktok.SourcePullFromURL, VideoURL: "https://x.example/v.mp4"})
		require.ErrorAs(t, err, &se)
		_, _, err = ro.Posting.Status(e.ctx, "p")
		require.ErrorAs(t, err, &se)
		require.Empty(t, e.srv.Requests())

		// A privacy level the creator was not offered.
		c := e.client(e.connect([]string{"publish"}))
		_, _, err = c.Posting.InitVideo(e.ctx, tiktok.VideoInitRequest{
			PostInfo:   tiktok.PostInfo{PrivacyLevel: tiktok.PrivacyFollowers},
			SourceInfo: tiktok.SourceInfo{Source: tiktok.SourcePullFromURL, VideoURL: "https://x.example/v.mp4"},
		})
		var ae *tiktok.APIError
		require.ErrorAs(t, err, &ae)
		require.Equal(t, tiktok.CodePrivacyLevelMismatch, ae.Code)
		require.Equal(t, http.StatusForbidden, ae.StatusCode)
		_, _, err = c.Posting.InitVideo(e.ctx, tiktok.VideoInitRequest{
			PostInfo:   tiktok.PostInfo{PrivacyLevel: tiktok.PrivacySelfOnly},
			SourceInfo: tiktok.SourceInfo{Source: tiktok.SourceFileUpload, VideoSize: 10, ChunkSize: 3, TotalChunkCount: 3},
		})
		require.ErrorIs(t, err, tiktok.ErrInvalidParams)
		_, _, err = c.Posting.Status(e.ctx, "v_pub_unknown")
		require.ErrorAs(t, err, &ae)
		require.Equal(t, "invalid_publish_id", ae.Code)

		// A capped creator: refused with HTTP 200 on creator info.
		flow, err := e.store.NewFlow(e.prov, social.FlowConfig{Features: []string{"publish"}})
		require.NoError(t, err)
		authURL, err := flow.Begin(e.ctx)
		require.NoError(t, err)
		cb, err := e.srv.Consent(authURL, "capped", tiktoktest.ConsentOptions{})
		require.NoError(t, err)
		conn, err := flow.Complete(e.ctx, callbackQuery(t, cb))
		require.NoError(t, err)
		capped := e.client(conn)
		_, resp, err := capped.Posting.CreatorInfo(e.ctx)
		require.ErrorAs(t, err, &ae)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, tiktok.CodeSpamRiskTooManyPosts, ae.Code)
		require.True(t, tiktok.IsPostingLimit(err))
	})
}

func TestInboxPullFromURL(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db, tiktoktest.WithApp(tiktoktest.App{
			ClientKey: "ck-media", ClientSecret: "cs-media", RedirectURIs: []string{redirectURI},
			Scopes: []string{"user.info.basic", "video.upload"}, VerifiedURLPrefixes: []string{"media.example"},
		}))
		e.cfg.ClientKey, e.cfg.ClientSecret = "ck-media", "cs-media"
		var err error
		e.prov, err = tiktok.NewProvider(e.cfg, e.clientOpts()...)
		require.NoError(t, err)
		c := e.client(e.connect([]string{"upload"}))
		init, _, err := c.Posting.InitInboxVideo(e.ctx, tiktok.SourceInfo{Source: tiktok.SourcePullFromURL, VideoURL: "https://cdn.media.example/v.mp4"})
		require.NoError(t, err)
		require.Empty(t, init.UploadURL)
		e.clk.Advance(time.Minute)
		st, _, err := c.Posting.Status(e.ctx, init.PublishID)
		require.NoError(t, err)
		require.Equal(t, tiktok.StatusSentToInbox, st.Status)
		require.True(t, st.Done())
		_, err = c.Posting.Cancel(e.ctx, init.PublishID)
		require.Error(t, err, "a finished download cannot be cancelled")

		init, _, err = c.Posting.InitInboxVideo(e.ctx, tiktok.SourceInfo{Source: tiktok.SourcePullFromURL, VideoURL: "https://cdn.media.example/w.mp4"})
		require.NoError(t, err)
		_, err = c.Posting.Cancel(e.ctx, init.PublishID)
		require.NoError(t, err)
		st, _, err = c.Posting.Status(e.ctx, init.PublishID)
		require.NoError(t, err)
		require.Equal(t, tiktok.StatusFailed, st.Status)
		require.Equal(t, "publish_cancelled", st.FailReason)
	})
}

package tiktok_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok"
)

// TestInitPhoto checks the photo init request against a mux: the emulator
// does not serve /v2/post/publish/content/init/.
func TestInitPhoto(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"publish"})
		var got map[string]any
		var auth, query string
		mux := http.NewServeMux()
		mux.HandleFunc("POST /v2/post/publish/content/init/", func(w http.ResponseWriter, r *http.Request) {
			auth, query = r.Header.Get("Authorization"), r.URL.RawQuery
			b, _ := io.ReadAll(r.Body)
			_ = json.Unmarshal(b, &got)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"data":{"publish_id":"p_pub_url~v2.123"},"error":{"code":"ok","message":"","log_id":"L1"}}`)
		})
		api := httptest.NewServer(mux)
		t.Cleanup(api.Close)
		sess, err := e.store.Session(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)
		cfg := e.cfg
		cfg.BaseURL = api.URL
		c, err := tiktok.New(cfg, append(e.clientOpts(), tiktok.WithSession(sess))...)
		require.NoError(t, err)

		init, resp, err := c.Posting.InitPhoto(e.ctx, tiktok.PhotoInitRequest{
			PostMode:    tiktok.PostModeDirect,
			PostInfo:    tiktok.PhotoPostInfo{Title: "ring", PrivacyLevel: tiktok.PrivacySelfOnly},
			PhotoImages: []string{"https://media.example/a.jpg", "https://media.example/b.jpg"}, PhotoCoverIndex: 1,
		})
		require.NoError(t, err)
		require.Equal(t, "p_pub_url~v2.123", init.PublishID)
		require.Equal(t, "L1", resp.LogID)
		require.True(t, strings.HasPrefix(auth, "Bearer act."))
		require.Empty(t, query)
		require.Equal(t, "PHOTO", got["media_type"])
		require.Equal(t, "DIRECT_POST", got["post_mode"])
		si := got["source_info"].(map[string]any)
		require.Equal(t, "PULL_FROM_URL", si["source"])
		require.Len(t, si["photo_images"], 2)
		require.EqualValues(t, 1, si["photo_cover_index"])
		require.Equal(t, "SELF_ONLY", got["post_info"].(map[string]any)["privacy_level"])

		_, _, err = c.Posting.InitPhoto(e.ctx, tiktok.PhotoInitRequest{PostMode: tiktok.PostModeMediaUpload, PhotoImages: []string{"https://media.example/a.jpg"}})
		var se *social.ScopeError
		require.ErrorAs(t, err, &se, "MEDIA_UPLOAD needs video.upload")
		_, _, err = c.Posting.InitPhoto(e.ctx, tiktok.PhotoInitRequest{PostMode: "DIRECT POST", PhotoImages: []string{"x"}})
		require.Error(t, err)
		_, _, err = c.Posting.InitPhoto(e.ctx, tiktok.PhotoInitRequest{PostMode: tiktok.PostModeDirect, PhotoImages: make([]string, 36)})
		require.Error(t, err)
	})
}

func TestUnauditedClientPublicAccount(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		require.NoError(t, e.srv.AddApp(appUnaudited()))
		cfg := e.cfg
		cfg.ClientKey, cfg.ClientSecret = "ck-unaudited", "cs-unaudited"
		p, err := tiktok.NewProvider(cfg, e.clientOpts()...)
		require.NoError(t, err)
		e.prov, e.cfg = p, cfg
		c := e.client(e.connect([]string{"publish"}))
		_, _, err = c.Posting.InitVideo(e.ctx, tiktok.VideoInitRequest{
			PostInfo:   tiktok.PostInfo{PrivacyLevel: tiktok.PrivacySelfOnly},
			SourceInfo: tiktok.SourceInfo{Source: tiktok.SourceFileUpload, VideoSize: 100, ChunkSize: 100, TotalChunkCount: 1},
		})
		var ae *tiktok.APIError
		require.ErrorAs(t, err, &ae)
		require.Equal(t, tiktok.CodeUnauditedPrivateOnly, ae.Code, "SELF_ONLY does not help: the account must be private")
	})
}

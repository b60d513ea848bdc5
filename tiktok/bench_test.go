package tiktok_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// BenchmarkSync syncs 2,000 videos from the emulator and, in the same run,
// fetches the same pages with a hand-written net/http + encoding/json loop.
// It reports the requests per sync (the minimum is 1 user info + 100
// pages) and ratio:tiktok_sync_vs_raw_http. scripts/bench can run it with
// -bench Sync -benchtime 5x.
func BenchmarkSync(b *testing.B) {
	db := dbtest.SQLite(b, setupDB)
	e := newEnv(b, db)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 2000 {
		if err := e.srv.AddVideo(openID, tiktoktest.Video{ID: fmt.Sprintf("7%018d", i), CreateTime: base.Add(time.Duration(i) * time.Minute),
			Title: "t", ViewCount: 100, LikeCount: 5}); err != nil {
			b.Fatal(err)
		}
	}
	tok, err := e.srv.IssueToken(clientKey, openID, "user.info.basic", "video.list")
	if err != nil {
		b.Fatal(err)
	}
	c := e.client(e.connect([]string{"video.read"}))

	var syncTime, rawTime time.Duration
	for b.Loop() {
		e.srv.ClearRequests()
		start := time.Now()
		_, st, err := c.Sync(e.ctx)
		if err != nil {
			b.Fatal(err)
		}
		syncTime += time.Since(start)
		if st.Requests != 101 || len(e.srv.Requests()) != 101 {
			b.Fatalf("sync made %d requests (%d logged), want the minimum 101", st.Requests, len(e.srv.Requests()))
		}
		start = time.Now()
		if n := rawFetch(b, e.srv, tok.AccessToken); n != 2000 {
			b.Fatalf("raw loop fetched %d videos", n)
		}
		rawTime += time.Since(start)
	}
	b.ReportMetric(101, "requests/sync")
	b.ReportMetric(float64(syncTime)/float64(rawTime), "ratio:tiktok_sync_vs_raw_http")
}

// rawFetch is the hand-written baseline: user info, then every page.
func rawFetch(b *testing.B, srv *tiktoktest.Server, token string) int {
	get := func(method, path string, body []byte, out any) {
		req, _ := http.NewRequest(method, srv.BaseURL()+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			b.Fatal(err)
		}
	}
	var info map[string]any
	get("GET", "/v2/user/info/?fields=open_id,display_name", nil, &info)
	n := 0
	var cursor int64
	for {
		var page struct {
			Data struct {
				Videos  []tiktok.Video `json:"videos"`
				Cursor  int64          `json:"cursor"`
				HasMore bool           `json:"has_more"`
			} `json:"data"`
		}
		body, _ := json.Marshal(map[string]any{"max_count": 20, "cursor": cursor})
		if cursor == 0 {
			body = []byte(`{"max_count":20}`)
		}
		get("POST", "/v2/video/list/?fields=id,create_time,cover_image_url,share_url,video_description,duration,height,width,title,embed_html,embed_link,like_count,comment_count,share_count,view_count", body, &page)
		n += len(page.Data.Videos)
		if !page.Data.HasMore {
			return n
		}
		cursor = page.Data.Cursor
	}
}

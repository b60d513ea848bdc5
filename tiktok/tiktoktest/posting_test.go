package tiktoktest_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

const mb = 1 << 20

func fileSource(size, chunk, count int64) map[string]any {
	return map[string]any{"source": "FILE_UPLOAD", "video_size": size, "chunk_size": chunk, "total_chunk_count": count}
}

func directBody(privacy string, source map[string]any) map[string]any {
	return map[string]any{
		"post_info":   map[string]any{"title": "funny #cat", "privacy_level": privacy, "disable_comment": true},
		"source_info": source,
	}
}

// initPost calls an init endpoint and returns publish_id and upload_url.
func initPost(t *testing.T, srv *tiktoktest.Server, path, token string, body map[string]any) (string, string) {
	t.Helper()
	status, env := call(t, srv, http.MethodPost, path, token, body)
	wantAPI(t, status, env, http.StatusOK, "ok")
	d := data(env)
	id, _ := d["publish_id"].(string)
	u, _ := d["upload_url"].(string)
	if id == "" {
		t.Fatalf("init returned no publish_id: %v", env)
	}
	return id, u
}

// put sends one chunk.
func put(t *testing.T, uploadURL, contentType, contentRange string, chunk []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, uploadURL, bytes.NewReader(chunk))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if contentRange != "" {
		req.Header.Set("Content-Range", contentRange)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// statusOf fetches the publish status data.
func statusOf(t *testing.T, srv *tiktoktest.Server, token, publishID string) map[string]any {
	t.Helper()
	status, env := call(t, srv, http.MethodPost, tiktoktest.StatusFetchPath, token, map[string]any{"publish_id": publishID})
	wantAPI(t, status, env, http.StatusOK, "ok")
	return data(env)
}

func TestCreatorInfo(t *testing.T) {
	srv := setup(t)
	pub := issue(t, srv, anaID, "video.publish")
	status, env := call(t, srv, http.MethodPost, tiktoktest.CreatorInfoPath, pub.AccessToken, nil)
	wantAPI(t, status, env, http.StatusOK, "ok")
	d := data(env)
	if d["creator_username"] != "ana.tt" || d["creator_nickname"] != "Ana" || fmt.Sprint(d["max_video_post_duration_sec"]) != "600" ||
		fmt.Sprint(d["privacy_level_options"]) != "[PUBLIC_TO_EVERYONE MUTUAL_FOLLOW_FRIENDS SELF_ONLY]" || d["duet_disabled"] != false {
		t.Errorf("creator info for a public account = %v", d)
	}
	if !strings.Contains(fmt.Sprint(d["creator_avatar_url"]), "x-expires=") {
		t.Errorf("creator_avatar_url %v carries no expiry", d["creator_avatar_url"])
	}

	priv, err := srv.IssueToken(webKey, privID, "video.publish")
	if err != nil {
		t.Fatal(err)
	}
	_, env = call(t, srv, http.MethodPost, tiktoktest.CreatorInfoPath, priv.AccessToken, nil)
	if d := data(env); fmt.Sprint(d["privacy_level_options"]) != "[FOLLOWER_OF_CREATOR MUTUAL_FOLLOW_FRIENDS SELF_ONLY]" || d["duet_disabled"] != true || d["stitch_disabled"] != true {
		t.Errorf("creator info for a private account = %v", d)
	}

	// Posting caps come back with HTTP 200, as documented.
	if err := srv.UpdateUser(anaID, func(u *tiktoktest.User) { u.PostingError = tiktoktest.PostingTooManyPosts }); err != nil {
		t.Fatal(err)
	}
	status, env = call(t, srv, http.MethodPost, tiktoktest.CreatorInfoPath, pub.AccessToken, nil)
	wantAPI(t, status, env, http.StatusOK, "spam_risk_too_many_posts")

	upload := issue(t, srv, anaID, "video.upload")
	status, env = call(t, srv, http.MethodPost, tiktoktest.CreatorInfoPath, upload.AccessToken, nil)
	wantAPI(t, status, env, http.StatusUnauthorized, "scope_not_authorized")
}

func TestInitChunkRules(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "video.publish")
	for _, tc := range []struct {
		name               string
		size, chunk, count int64
		ok                 bool
	}{
		{"documented example", 50_000_123, 10_000_000, 5, true},
		{"documented whole upload", 4_194_304, 4_194_304, 1, true},
		{"whole between 5 and 64 MB", 20 * mb, 20 * mb, 1, true},
		{"64 MB chunks with a big tail", 64*mb*3 + 60*mb, 64 * mb, 3, true},
		{"small video split", 4 * mb, 2 * mb, 2, false},
		{"small video wrong count", 4 * mb, 4 * mb, 2, false},
		{"chunk under 5 MB", 20 * mb, 4 * mb, 5, false},
		{"chunk over 64 MB", 200 * mb, 65 * mb, 3, false},
		{"100 MB in one chunk", 100 * mb, 100 * mb, 1, false},
		{"count rounded up", 50_000_123, 10_000_000, 6, false},
		{"chunk larger than video", 6 * mb, 7 * mb, 1, false},
		{"zero size", 0, 0, 0, false},
		{"over 4 GB", 4<<30 + 1, 64 * mb, 64, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, env := call(t, srv, http.MethodPost, tiktoktest.VideoInitPath, tok.AccessToken, directBody("SELF_ONLY", fileSource(tc.size, tc.chunk, tc.count)))
			if tc.ok {
				wantAPI(t, status, env, http.StatusOK, "ok")
				if u, _ := data(env)["upload_url"].(string); !strings.HasPrefix(u, srv.UploadURL()+tiktoktest.UploadPath+"?") {
					t.Errorf("upload_url = %q, want one under %s", u, srv.UploadURL())
				}
				return
			}
			wantAPI(t, status, env, http.StatusBadRequest, "invalid_params")
		})
	}

	// The chunk count limit, reachable with smaller limits.
	small := setup(t, tiktoktest.WithUploadLimits(tiktoktest.UploadLimits{MinChunk: 10, MaxChunk: 20, MaxFinalChunk: 40, MaxChunks: 3, MaxVideo: 1000}))
	tok2, err := small.IssueToken(webKey, anaID, "video.publish")
	if err != nil {
		t.Fatal(err)
	}
	status, env := call(t, small, http.MethodPost, tiktoktest.VideoInitPath, tok2.AccessToken, directBody("SELF_ONLY", fileSource(40, 10, 4)))
	wantAPI(t, status, env, http.StatusBadRequest, "invalid_params")
	if _, err := tiktoktest.New(tiktoktest.WithUploadLimits(tiktoktest.UploadLimits{MinChunk: 10, MaxChunk: 5})); err == nil {
		t.Error("inconsistent upload limits were accepted")
	}
}

func TestChunkedUpload(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "video.publish")
	const size = 2*5*mb + 123
	video := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
	id, uploadURL := initPost(t, srv, tiktoktest.VideoInitPath, tok.AccessToken, directBody("SELF_ONLY", fileSource(size, 5*mb, 2)))
	if d := statusOf(t, srv, tok.AccessToken, id); d["status"] != "PROCESSING_UPLOAD" || fmt.Sprint(d["uploaded_bytes"]) != "0" {
		t.Errorf("status before upload = %v", d)
	}
	rng := func(first, last int) string { return fmt.Sprintf("bytes %d-%d/%d", first, last, size) }

	for _, tc := range []struct {
		name, ctype, crange string
		chunk               []byte
		want                int
	}{
		{"wrong content type", "application/octet-stream", rng(0, 5*mb-1), video[:5*mb], http.StatusBadRequest},
		{"no Content-Range", "video/mp4", "", video[:5*mb], http.StatusBadRequest},
		{"range beyond total", "video/mp4", fmt.Sprintf("bytes 0-%d/%d", 5*mb-1, size+1), video[:5*mb], http.StatusBadRequest},
		{"length differs from range", "video/mp4", rng(0, 5*mb), video[:5*mb], http.StatusBadRequest},
		{"chunk smaller than declared", "video/mp4", rng(0, 3*mb-1), video[:3*mb], http.StatusBadRequest},
		{"skips ahead", "video/mp4", rng(5*mb, 10*mb-1), video[5*mb : 10*mb], http.StatusRequestedRangeNotSatisfiable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := put(t, uploadURL, tc.ctype, tc.crange, tc.chunk)
			if resp.StatusCode != tc.want {
				t.Errorf("PUT returned %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == http.StatusRequestedRangeNotSatisfiable && resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 0-0/%d", size) {
				t.Errorf("416 progress header = %q", resp.Header.Get("Content-Range"))
			}
		})
	}

	resp := put(t, uploadURL, "video/mp4", rng(0, 5*mb-1), video[:5*mb])
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 0-%d/%d", 5*mb, size) {
		t.Fatalf("first chunk returned %d %q, want 206 with progress", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	if resp := put(t, uploadURL, "video/mp4", rng(0, 5*mb-1), video[:5*mb]); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("resending the first chunk returned %d, want 416", resp.StatusCode)
	}
	// The last chunk absorbs the 123 trailing bytes.
	resp = put(t, uploadURL, "video/quicktime", rng(5*mb, size-1), video[5*mb:])
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("last chunk returned %d, want 201", resp.StatusCode)
	}
	d := statusOf(t, srv, tok.AccessToken, id)
	if d["status"] != "PROCESSING_UPLOAD" || fmt.Sprint(d["uploaded_bytes"]) != fmt.Sprint(size) {
		t.Errorf("status after upload = %v", d)
	}
	p, err := srv.Publish(id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Data, video) || p.ChunkCount != 2 || p.Source != "FILE_UPLOAD" || p.Inbox {
		t.Errorf("the emulator holds %d bytes (equal=%v), publish %+v", len(p.Data), bytes.Equal(p.Data, video), p.ID)
	}
	if resp := put(t, uploadURL, "video/mp4", rng(5*mb, size-1), video[5*mb:]); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("a chunk after completion returned %d, want 416", resp.StatusCode)
	}
}

func TestUploadURLChecks(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "video.publish")
	_, uploadURL := initPost(t, srv, tiktoktest.VideoInitPath, tok.AccessToken, directBody("SELF_ONLY", fileSource(1000, 1000, 1)))
	chunk := make([]byte, 1000)
	whole := "bytes 0-999/1000"
	if resp := put(t, strings.Replace(uploadURL, "upload_token=", "upload_token=x", 1), "video/mp4", whole, chunk); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a wrong upload_token returned %d, want 404", resp.StatusCode)
	}
	if resp := put(t, srv.UploadURL()+tiktoktest.UploadPath+"?upload_id=1&upload_token=x", "video/mp4", whole, chunk); resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown upload returned %d, want 404", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, uploadURL, bytes.NewReader(chunk))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST to the upload URL returned %v, %v; want 405", resp, err)
	}
	srv.Advance(tiktoktest.UploadURLLifetime)
	if resp := put(t, uploadURL, "video/mp4", whole, chunk); resp.StatusCode != http.StatusForbidden {
		t.Errorf("an expired upload_url returned %d, want 403", resp.StatusCode)
	}
}

func TestDirectPostProgressesOnTheClock(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "video.publish", "video.list")
	id, uploadURL := initPost(t, srv, tiktoktest.VideoInitPath, tok.AccessToken, directBody("PUBLIC_TO_EVERYONE", fileSource(1000, 1000, 1)))
	if resp := put(t, uploadURL, "video/webm", "bytes 0-999/1000", make([]byte, 1000)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("whole upload returned %d", resp.StatusCode)
	}
	timings := tiktoktest.DefaultPublishTimings()
	srv.Advance(timings.Processing - time.Second)
	if d := statusOf(t, srv, tok.AccessToken, id); d["status"] != "PROCESSING_UPLOAD" {
		t.Errorf("status during processing = %v", d)
	}
	srv.Advance(time.Second)
	d := statusOf(t, srv, tok.AccessToken, id)
	if d["status"] != "PUBLISH_COMPLETE" || fmt.Sprint(d["publicaly_available_post_id"]) != "[]" {
		t.Errorf("status after processing = %v, want PUBLISH_COMPLETE with no public id yet", d)
	}
	srv.Advance(timings.Moderation)
	d = statusOf(t, srv, tok.AccessToken, id)
	ids, _ := d["publicaly_available_post_id"].([]any)
	if d["status"] != "PUBLISH_COMPLETE" || len(ids) != 1 {
		t.Fatalf("status after moderation = %v, want one public post id", d)
	}
	// The post id is an int64 beyond 2^53 and the new video is listed.
	postID := fmt.Sprint(ids[0])
	if len(postID) != 19 {
		t.Errorf("post id %s does not look like a TikTok id", postID)
	}
	list, _, _, _ := listPage(t, srv, tok.AccessToken, map[string]any{"max_count": 1})
	if !slices.Equal(list, []string{postID}) {
		t.Errorf("newest listed video = %v, want the post %s", list, postID)
	}

	// With zero timings a SELF_ONLY post completes at once and stays off
	// the public list.
	fast := setup(t, tiktoktest.WithPublishTimings(tiktoktest.PublishTimings{}))
	ftok, _ := fast.IssueToken(webKey, anaID, "video.publish")
	fid, fup := initPost(t, fast, tiktoktest.VideoInitPath, ftok.AccessToken, directBody("SELF_ONLY", fileSource(10, 10, 1)))
	put(t, fup, "video/mp4", "bytes 0-9/10", make([]byte, 10))
	if d := statusOf(t, fast, ftok.AccessToken, fid); d["status"] != "PUBLISH_COMPLETE" || fmt.Sprint(d["publicaly_available_post_id"]) != "[]" {
		t.Errorf("SELF_ONLY post status = %v", d)
	}
	if _, err := tiktoktest.New(tiktoktest.WithPublishTimings(tiktoktest.PublishTimings{Download: -1})); err == nil {
		t.Error("negative timings were accepted")
	}
}

func TestPullFromURL(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "video.publish")
	pull := func(u string) map[string]any { return map[string]any{"source": "PULL_FROM_URL", "video_url": u} }
	for _, tc := range []struct {
		url    string
		status int
		code   string
	}{
		{"https://media.example/a.mp4", 200, "ok"},
		{"https://eu.media.example/a.mp4", 200, "ok"},
		{"https://cdn.example/videos/2026/a.mp4", 200, "ok"},
		{"https://cdn.example/other/a.mp4", 403, "url_ownership_unverified"},
		{"https://notmedia.example/a.mp4", 403, "url_ownership_unverified"},
		{"http://media.example/a.mp4", 400, "invalid_params"},
		{"", 400, "invalid_params"},
	} {
		status, env := call(t, srv, http.MethodPost, tiktoktest.VideoInitPath, tok.AccessToken, directBody("SELF_ONLY", pull(tc.url)))
		if status != tc.status || errCode(env) != tc.code {
			t.Errorf("init with %q returned %d %v, want %d %s", tc.url, status, env, tc.status, tc.code)
		}
		if tc.status == 200 && data(env)["upload_url"] != nil {
			t.Errorf("PULL_FROM_URL init returned an upload_url")
		}
	}

	id, _ := initPost(t, srv, tiktoktest.VideoInitPath, tok.AccessToken, directBody("SELF_ONLY", pull("https://media.example/b.mp4")))
	if d := statusOf(t, srv, tok.AccessToken, id); d["status"] != "PROCESSING_DOWNLOAD" {
		t.Errorf("pull status = %v", d)
	}
	status, env := call(t, srv, http.MethodPost, tiktoktest.CancelPath, tok.AccessToken, map[string]any{"publish_id": id})
	wantAPI(t, status, env, http.StatusOK, "ok")
	if _, has := env["data"]; has {
		t.Errorf("cancel returned data %v, want only error", env)
	}
	if d := statusOf(t, srv, tok.AccessToken, id); d["status"] != "FAILED" || d["fail_reason"] != "publish_cancelled" {
		t.Errorf("status after cancel = %v", d)
	}
	status, env = call(t, srv, http.MethodPost, tiktoktest.CancelPath, tok.AccessToken, map[string]any{"publish_id": id})
	wantAPI(t, status, env, http.StatusBadRequest, "publish_not_cancellable")

	id, _ = initPost(t, srv, tiktoktest.VideoInitPath, tok.AccessToken, directBody("SELF_ONLY", pull("https://media.example/c.mp4")))
	timings := tiktoktest.DefaultPublishTimings()
	srv.Advance(timings.Download)
	if d := statusOf(t, srv, tok.AccessToken, id); d["status"] != "PROCESSING_DOWNLOAD" {
		t.Errorf("status while processing = %v", d)
	}
	status, env = call(t, srv, http.MethodPost, tiktoktest.CancelPath, tok.AccessToken, map[string]any{"publish_id": id})
	wantAPI(t, status, env, http.StatusBadRequest, "publish_not_cancellable")
	srv.Advance(timings.Processing)
	if d := statusOf(t, srv, tok.AccessToken, id); d["status"] != "PUBLISH_COMPLETE" {
		t.Errorf("status after download and processing = %v", d)
	}
}

func TestDirectPostPolicies(t *testing.T) {
	srv := setup(t)
	pub := issue(t, srv, anaID, "video.publish")
	small := fileSource(10, 10, 1)
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		code   string
	}{
		{"no privacy level", directBody("", small), 403, "privacy_level_option_mismatch"},
		{"private option on a public account", directBody("FOLLOWER_OF_CREATOR", small), 403, "privacy_level_option_mismatch"},
		{"no source_info", map[string]any{"post_info": map[string]any{"privacy_level": "SELF_ONLY"}}, 400, "invalid_params"},
		{"unknown source", directBody("SELF_ONLY", map[string]any{"source": "FTP"}), 400, "invalid_params"},
		{"title too long", map[string]any{"post_info": map[string]any{"privacy_level": "SELF_ONLY", "title": strings.Repeat("😀", 1101)}, "source_info": small}, 400, "invalid_params"},
		{"title at the limit", map[string]any{"post_info": map[string]any{"privacy_level": "SELF_ONLY", "title": strings.Repeat("😀", 1100)}, "source_info": small}, 200, "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, env := call(t, srv, http.MethodPost, tiktoktest.VideoInitPath, pub.AccessToken, tc.body)
			wantAPI(t, status, env, tc.status, tc.code)
		})
	}

	upload := issue(t, srv, anaID, "video.upload")
	status, env := call(t, srv, http.MethodPost, tiktoktest.VideoInitPath, upload.AccessToken, directBody("SELF_ONLY", small))
	wantAPI(t, status, env, http.StatusUnauthorized, "scope_not_authorized")

	if err := srv.UpdateUser(anaID, func(u *tiktoktest.User) { u.PostingError = tiktoktest.PostingUserBanned }); err != nil {
		t.Fatal(err)
	}
	status, env = call(t, srv, http.MethodPost, tiktoktest.VideoInitPath, pub.AccessToken, directBody("SELF_ONLY", small))
	wantAPI(t, status, env, http.StatusForbidden, "spam_risk_user_banned_from_posting")

	// An unaudited app can post only to private accounts.
	if err := srv.AddApp(tiktoktest.App{ClientKey: "ck-sandbox", ClientSecret: "s", RedirectURIs: []string{webRedirect}, Scopes: []string{"video.publish"}, Unaudited: true}); err != nil {
		t.Fatal(err)
	}
	if err := srv.UpdateUser(anaID, func(u *tiktoktest.User) { u.PostingError = "" }); err != nil {
		t.Fatal(err)
	}
	for openID, want := range map[string]string{anaID: "unaudited_client_can_only_post_to_private_accounts", privID: "ok"} {
		tok, err := srv.IssueToken("ck-sandbox", openID, "video.publish")
		if err != nil {
			t.Fatal(err)
		}
		_, env := call(t, srv, http.MethodPost, tiktoktest.VideoInitPath, tok.AccessToken, directBody("SELF_ONLY", small))
		if errCode(env) != want {
			t.Errorf("unaudited post for %s returned %v, want %s", openID, env, want)
		}
	}
}

func TestInboxUpload(t *testing.T) {
	srv := setup(t, tiktoktest.WithPublishTimings(tiktoktest.PublishTimings{Processing: time.Minute}))
	up := issue(t, srv, anaID, "video.upload")
	body := map[string]any{"source_info": fileSource(10, 10, 1)}
	id, uploadURL := initPost(t, srv, tiktoktest.InboxInitPath, up.AccessToken, body)
	if !strings.HasPrefix(id, "v_inbox_file~") {
		t.Errorf("publish_id %s is not an inbox file id", id)
	}
	put(t, uploadURL, "video/mp4", "bytes 0-9/10", make([]byte, 10))
	if err := srv.PostFromInbox(id); err == nil {
		t.Error("PostFromInbox before the draft reached the inbox succeeded")
	}
	srv.Advance(time.Minute)
	if d := statusOf(t, srv, up.AccessToken, id); d["status"] != "SEND_TO_USER_INBOX" || fmt.Sprint(d["publicaly_available_post_id"]) != "[]" {
		t.Errorf("inbox status = %v, want SEND_TO_USER_INBOX", d)
	}
	if err := srv.PostFromInbox(id); err != nil {
		t.Fatal(err)
	}
	d := statusOf(t, srv, up.AccessToken, id)
	if ids, _ := d["publicaly_available_post_id"].([]any); d["status"] != "PUBLISH_COMPLETE" || len(ids) != 1 {
		t.Errorf("status after the creator posted = %v", d)
	}

	pub := issue(t, srv, anaID, "video.publish")
	status, env := call(t, srv, http.MethodPost, tiktoktest.InboxInitPath, pub.AccessToken, body)
	wantAPI(t, status, env, http.StatusUnauthorized, "scope_not_authorized")
	// A video.publish token may read the status of an inbox task.
	if d := statusOf(t, srv, pub.AccessToken, id); d["status"] != "PUBLISH_COMPLETE" {
		t.Errorf("status via a video.publish token = %v", d)
	}

	// At most five pending shares per 24 hours.
	for range 5 {
		initPost(t, srv, tiktoktest.InboxInitPath, up.AccessToken, map[string]any{"source_info": map[string]any{"source": "PULL_FROM_URL", "video_url": "https://media.example/x.mp4"}})
	}
	status, env = call(t, srv, http.MethodPost, tiktoktest.InboxInitPath, up.AccessToken, body)
	wantAPI(t, status, env, http.StatusForbidden, "spam_risk_too_many_pending_share")
	srv.Advance(24 * time.Hour)
	up = issue(t, srv, anaID, "video.upload") // the old access token expired meanwhile
	initPost(t, srv, tiktoktest.InboxInitPath, up.AccessToken, body)
}

func TestStatusFetchChecks(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "video.publish")
	id, _ := initPost(t, srv, tiktoktest.VideoInitPath, tok.AccessToken, directBody("SELF_ONLY", fileSource(10, 10, 1)))

	other, err := srv.IssueToken(webKey, privID, "video.publish")
	if err != nil {
		t.Fatal(err)
	}
	status, env := call(t, srv, http.MethodPost, tiktoktest.StatusFetchPath, other.AccessToken, map[string]any{"publish_id": id})
	wantAPI(t, status, env, http.StatusBadRequest, "token_not_authorized_for_specified_publish_id")
	status, env = call(t, srv, http.MethodPost, tiktoktest.StatusFetchPath, tok.AccessToken, map[string]any{"publish_id": "v_pub_file~v2-1.1"})
	wantAPI(t, status, env, http.StatusBadRequest, "invalid_publish_id")
	status, env = call(t, srv, http.MethodPost, tiktoktest.StatusFetchPath, tok.AccessToken, map[string]any{})
	wantAPI(t, status, env, http.StatusBadRequest, "invalid_params")
	basic := issue(t, srv, anaID, "user.info.basic")
	status, env = call(t, srv, http.MethodPost, tiktoktest.StatusFetchPath, basic.AccessToken, map[string]any{"publish_id": id})
	wantAPI(t, status, env, http.StatusUnauthorized, "scope_not_authorized")

	// A refreshed token of the same user still owns the task.
	_, body := postForm(t, srv, tiktoktest.TokenPath, refreshForm(tok.RefreshToken))
	if d := statusOf(t, srv, body["access_token"].(string), id); d["status"] != "PROCESSING_UPLOAD" {
		t.Errorf("status via the refreshed token = %v", d)
	}

	if err := srv.FailPublish(id, "file_format_check_failed"); err != nil {
		t.Fatal(err)
	}
	if d := statusOf(t, srv, tok.AccessToken, id); d["status"] != "FAILED" || d["fail_reason"] != "file_format_check_failed" {
		t.Errorf("status after FailPublish = %v", d)
	}
	if err := srv.FailPublish(id, "internal"); err == nil {
		t.Error("failing a failed publish succeeded")
	}
	if _, err := srv.Publish("nope"); err == nil {
		t.Error("Publish(nope) succeeded")
	}
	if n := len(srv.Publishes()); n != 1 {
		t.Errorf("Publishes() has %d tasks, want 1", n)
	}
}

func TestRevokeFailsPublishInFlight(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "video.publish")
	id, uploadURL := initPost(t, srv, tiktoktest.VideoInitPath, tok.AccessToken, directBody("SELF_ONLY", fileSource(10, 10, 1)))
	if err := srv.Deauthorize(context.Background(), webKey, anaID, 1); err != nil {
		t.Fatal(err)
	}
	p, err := srv.Publish(id)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != tiktoktest.StatusFailed || p.FailReason != "auth_removed" {
		t.Errorf("publish after deauthorization is %s/%s, want FAILED/auth_removed", p.Status, p.FailReason)
	}
	if resp := put(t, uploadURL, "video/mp4", "bytes 0-9/10", make([]byte, 10)); resp.StatusCode != http.StatusNotFound {
		t.Errorf("uploading to a dead task returned %d, want 404", resp.StatusCode)
	}
}

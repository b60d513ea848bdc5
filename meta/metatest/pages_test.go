package metatest_test

import (
	"context"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/meta/metatest"
)

// accounts returns /me/accounts keyed by Page id.
func accounts(t *testing.T, srv *metatest.Server, token string, kv ...string) map[string]map[string]any {
	t.Helper()
	r := get(t, srv, "/me/accounts", token, kv...)
	wantOK(t, r)
	out := map[string]map[string]any{}
	for _, d := range r.data() {
		m := d.(map[string]any)
		out[m["id"].(string)] = m
	}
	return out
}

func TestPageTokensFromAccounts(t *testing.T) {
	srv := fixture(t)
	conf := oauthConfig(srv, "pages_show_list", "pages_read_engagement")
	tok, err := conf.Exchange(context.Background(), login(t, srv, conf, metatest.Consent{UserID: userID}))
	if err != nil {
		t.Fatal(err)
	}
	short := accounts(t, srv, tok.AccessToken)
	if len(short) != 2 {
		t.Fatalf("/me/accounts returned %d pages, want 2", len(short))
	}
	p := short[pageID]
	if p["name"] != "Ada's Bakery" || p["category"] != "Bakery" || p["access_token"] == "" {
		t.Fatalf("page entry = %v", p)
	}
	if tasks := toStrings(p["tasks"]); len(tasks) != 6 {
		t.Errorf("tasks = %v, want all six", tasks)
	}
	if cl := p["category_list"].([]any); len(cl) != 1 || cl[0].(map[string]any)["name"] != "Bakery" {
		t.Errorf("category_list = %v", p["category_list"])
	}

	// A Page token fetched with a short-lived user token lasts as long as it.
	shortPage := p["access_token"].(string)
	appToken := appID + "|" + appSecret
	d := get(t, srv, "/debug_token", appToken, "input_token", shortPage).body["data"].(map[string]any)
	if d["expires_at"].(float64) == 0 {
		t.Fatalf("page token from a short-lived user token never expires: %v", d)
	}

	// From a long-lived user token, it never expires.
	long := get(t, srv, "/oauth/access_token", "", "grant_type", "fb_exchange_token", "client_id", appID,
		"client_secret", appSecret, "fb_exchange_token", tok.AccessToken).str("access_token")
	longPage := accounts(t, srv, long)[pageID]["access_token"].(string)
	d = get(t, srv, "/debug_token", appToken, "input_token", longPage).body["data"].(map[string]any)
	if d["expires_at"].(float64) != 0 || d["type"] != "PAGE" {
		t.Fatalf("long-lived page token debug = %v", d)
	}

	srv.Advance(2 * time.Hour)
	wantError(t, get(t, srv, "/me", shortPage), 190, 463)
	srv.Advance(365 * 24 * time.Hour)
	r := get(t, srv, "/me", longPage, "fields", "id,name")
	wantOK(t, r)
	if r.str("id") != pageID {
		t.Errorf("/me with a page token = %s", r.raw)
	}
}

func TestAccountsNeedPagesShowList(t *testing.T) {
	srv := fixture(t, metatest.WithUser(metatest.User{ID: "2009", Granted: []string{"email"}}))
	if err := srv.AddPage(metatest.Page{ID: "3009", Tasks: map[string][]string{"2009": metatest.AllTasks()}}); err != nil {
		t.Fatal(err)
	}
	if got := accounts(t, srv, userToken(t, srv, "2009", metatest.LongLived)); len(got) != 0 {
		t.Fatalf("/me/accounts without pages_show_list = %v, want empty", got)
	}
}

func TestAccountsPagination(t *testing.T) {
	srv := fixture(t)
	tok := userToken(t, srv, userID, metatest.LongLived)
	r := get(t, srv, "/me/accounts", tok, "limit", "1", "fields", "id,name")
	wantOK(t, r)
	if len(r.data()) != 1 {
		t.Fatalf("first page = %s", r.raw)
	}
	paging := r.body["paging"].(map[string]any)
	next, _ := paging["next"].(string)
	if next == "" {
		t.Fatalf("no next link: %s", r.raw)
	}
	req, _ := http.NewRequest(http.MethodGet, next, nil)
	r2 := send(t, req)
	wantOK(t, r2)
	if len(r2.data()) != 1 || r2.data()[0].(map[string]any)["id"] == r.data()[0].(map[string]any)["id"] {
		t.Fatalf("second page = %s", r2.raw)
	}
	if _, more := r2.body["paging"].(map[string]any)["next"]; more {
		t.Errorf("last page has a next link: %s", r2.raw)
	}
	if _, hasToken := r.data()[0].(map[string]any)["access_token"]; hasToken {
		t.Errorf("fields=id,name returned access_token")
	}
}

func TestRemovePageRole(t *testing.T) {
	srv := fixture(t)
	page := pageToken(t, srv, userID, page2ID)
	if err := srv.RemovePageRole(page2ID, userID); err != nil {
		t.Fatal(err)
	}
	wantError(t, get(t, srv, "/me", page), 190, 492)
	if _, listed := accounts(t, srv, userToken(t, srv, userID, metatest.ShortLived))[page2ID]; listed {
		t.Error("the Page is still listed after the role was removed")
	}
}

func TestPublishFeedAndRead(t *testing.T) {
	srv := fixture(t)
	page := pageToken(t, srv, userID, pageID)

	r := post(t, srv, "/"+pageID+"/feed", page, "message", "Fresh bread at 7")
	wantOK(t, r)
	postID := r.str("id")
	if !strings.HasPrefix(postID, pageID+"_") {
		t.Fatalf("post id = %q, want %s_…", postID, pageID)
	}
	link := post(t, srv, "/"+pageID+"/feed", page, "message", "Our menu", "link", "https://bakery.example/menu")
	wantOK(t, link)
	wantError(t, post(t, srv, "/"+pageID+"/feed", page, "link", "not a url"), 1609005, 0)
	wantError(t, post(t, srv, "/"+pageID+"/feed", page), 100, 0)
	// Posting the same status twice in a row is a duplicate.
	wantOK(t, post(t, srv, "/"+pageID+"/feed", page, "message", "Closed Monday"))
	wantError(t, post(t, srv, "/"+pageID+"/feed", page, "message", "Closed Monday"), 506, 0)

	feed := get(t, srv, "/"+pageID+"/feed", page, "fields", "id,message,link,created_time")
	wantOK(t, feed)
	if n := len(feed.data()); n != 3 {
		t.Fatalf("feed has %d posts, want 3: %s", n, feed.raw)
	}
	newest := feed.data()[0].(map[string]any)
	if newest["message"] != "Closed Monday" || newest["created_time"] != "2026-09-01T12:00:00+0000" {
		t.Errorf("newest post = %v", newest)
	}
	one := get(t, srv, "/"+postID, page, "fields", "message,from")
	wantOK(t, one)
	if one.str("message") != "Fresh bread at 7" {
		t.Errorf("GET post = %s", one.raw)
	}

	posts := srv.Posts(pageID)
	if len(posts) != 3 || posts[1].Type != "link" || posts[1].Link != "https://bakery.example/menu" {
		t.Fatalf("Posts = %+v", posts)
	}

	wantOK(t, do(t, srv, http.MethodDelete, "/"+postID, vals(page)))
	wantError(t, get(t, srv, "/"+postID, page), 100, 33)
}

func TestPublishPermissionErrors(t *testing.T) {
	srv := fixture(t, metatest.WithUser(metatest.User{ID: "2010", Granted: []string{"pages_show_list", "pages_read_engagement"}}))
	if err := srv.AddPage(metatest.Page{ID: "3010", Tasks: map[string][]string{"2010": metatest.AllTasks(), userID: {metatest.TaskAnalyze}}}); err != nil {
		t.Fatal(err)
	}
	noPerm := pageToken(t, srv, "2010", "3010")
	r := post(t, srv, "/3010/feed", noPerm, "message", "hi")
	wantError(t, r, 200, 0)
	if r.status != http.StatusForbidden || !strings.Contains(r.errMessage(), "pages_manage_posts") {
		t.Errorf("missing pages_manage_posts: %d %s", r.status, r.raw)
	}
	// A user token is not enough either.
	wantError(t, post(t, srv, "/"+pageID+"/feed", userToken(t, srv, userID, metatest.LongLived), "message", "hi"), 200, 0)
	// A person who can only ANALYZE cannot publish.
	wantError(t, post(t, srv, "/3010/feed", pageToken(t, srv, userID, "3010"), "message", "hi"), 200, 0)
	// Reading the feed needs pages_read_engagement.
	r = get(t, srv, "/"+pageID+"/feed", pageToken(t, srv, user2ID, pageID))
	wantError(t, r, 10, 0)
}

func TestPublishPhotosAndVideos(t *testing.T) {
	srv := fixture(t)
	page := pageToken(t, srv, userID, pageID)
	r := post(t, srv, "/"+pageID+"/photos", page, "url", "https://cdn.example/bread.jpg", "message", "Rye")
	wantOK(t, r)
	if r.str("id") == "" || !strings.HasPrefix(r.str("post_id"), pageID+"_") {
		t.Fatalf("photo = %s", r.raw)
	}
	wantError(t, post(t, srv, "/"+pageID+"/photos", page, "message", "no file"), 324, 0)

	// Multipart upload with a source file.
	var body strings.Builder
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("access_token", page)
	_ = mw.WriteField("description", "Kneading")
	fw, _ := mw.CreateFormFile("source", "knead.mp4")
	_, _ = fw.Write([]byte("not really a video"))
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.GraphURL()+"/"+srv.Version()+"/"+pageID+"/videos", strings.NewReader(body.String()))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	v := send(t, req)
	wantOK(t, v)
	if v.str("id") == "" {
		t.Fatalf("video = %s", v.raw)
	}
	posts := srv.Posts(pageID)
	if len(posts) != 2 || posts[0].Type != "video" || posts[0].Message != "Kneading" || posts[1].MediaURL != "https://cdn.example/bread.jpg" {
		t.Fatalf("Posts = %+v", posts)
	}
	last := srv.Requests()[len(srv.Requests())-1]
	if len(last.Files) != 1 || last.Files[0] != "source" || last.Form.Get("access_token") != metatest.Redacted {
		t.Errorf("logged multipart request = %+v", last)
	}

	// Video needs publish_video.
	if err := srv.AddUser(metatest.User{ID: "2011", Granted: []string{"pages_manage_posts", "pages_read_engagement"}}); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddPage(metatest.Page{ID: "3011", Tasks: map[string][]string{"2011": {metatest.TaskCreateContent}}}); err != nil {
		t.Fatal(err)
	}
	wantError(t, post(t, srv, "/3011/videos", pageToken(t, srv, "2011", "3011"), "file_url", "https://cdn.example/v.mp4"), 200, 0)
}

func TestPageAndPostInsights(t *testing.T) {
	srv := fixture(t)
	page := pageToken(t, srv, userID, pageID)
	if err := srv.SetMetric(pageID, "page_media_view", 420); err != nil {
		t.Fatal(err)
	}
	r := get(t, srv, "/"+pageID+"/insights", page, "metric", "page_media_view,page_follows", "period", "day",
		"since", "2026-08-01", "until", "2026-08-04")
	wantOK(t, r)
	if len(r.data()) != 2 {
		t.Fatalf("insights = %s", r.raw)
	}
	first := r.data()[0].(map[string]any)
	values := first["values"].([]any)
	if first["name"] != "page_media_view" || first["period"] != "day" || len(values) != 3 {
		t.Fatalf("page_media_view = %v", first)
	}
	v0 := values[0].(map[string]any)
	if v0["value"] != float64(420) || v0["end_time"] != "2026-08-02T00:00:00+0000" {
		t.Errorf("first value = %v", v0)
	}
	if first["id"] != pageID+"/insights/page_media_view/day" {
		t.Errorf("id = %v", first["id"])
	}

	// Path form and post insights.
	wantOK(t, get(t, srv, "/"+pageID+"/insights/page_post_engagements", page))
	postID := post(t, srv, "/"+pageID+"/feed", page, "message", "hello").str("id")
	if err := srv.SetMetric(postID, "post_reactions_by_type_total", map[string]int{"like": 3, "love": 1}); err != nil {
		t.Fatal(err)
	}
	pr := get(t, srv, "/"+postID+"/insights", page, "metric", "post_media_view,post_reactions_by_type_total")
	wantOK(t, pr)
	second := pr.data()[1].(map[string]any)
	val := second["values"].([]any)[0].(map[string]any)
	if second["period"] != "lifetime" || val["value"].(map[string]any)["like"] != float64(3) || val["end_time"] != nil {
		t.Errorf("post insights = %s", pr.raw)
	}
	// Page metrics do not apply to posts.
	wantError(t, get(t, srv, "/"+postID+"/insights", page, "metric", "page_media_view"), 100, 0)
}

func TestInsightsErrors(t *testing.T) {
	srv := fixture(t)
	page := pageToken(t, srv, userID, pageID)
	// One deprecated metric fails the whole request.
	for _, m := range []string{"page_impressions", "page_fans", "page_engaged_users", "page_impressions_unique"} {
		r := get(t, srv, "/"+pageID+"/insights", page, "metric", "page_media_view,"+m)
		wantError(t, r, 100, 0)
		if r.errMessage() != "(#100) The value must be a valid insights metric" {
			t.Errorf("%s: message %q", m, r.errMessage())
		}
	}
	wantError(t, get(t, srv, "/"+pageID+"/insights", page), 3001, 1504028)
	wantError(t, get(t, srv, "/"+pageID+"/insights", page, "metric", "page_media_view", "period", "fortnight"), 100, 0)
	wantError(t, get(t, srv, "/"+pageID+"/insights", page, "metric", "page_media_view", "since", "2026-01-01", "until", "2026-06-01"), 100, 0)
	wantError(t, get(t, srv, "/"+pageID+"/insights", userToken(t, srv, userID, metatest.LongLived), "metric", "page_media_view"), 190, 0)
	// The analyst may read insights only with read_insights granted.
	wantError(t, get(t, srv, "/"+pageID+"/insights", pageToken(t, srv, user2ID, pageID), "metric", "page_media_view"), 10, 0)

	srv.RetireMetric("page_media_view")
	wantError(t, get(t, srv, "/"+pageID+"/insights", page, "metric", "page_media_view"), 100, 0)
}

func TestMetricRetirementFollowsClock(t *testing.T) {
	before := time.Date(2025, time.November, 14, 12, 0, 0, 0, time.UTC)
	srv := fixture(t, metatest.WithClock(func() time.Time { return before }))
	page := pageToken(t, srv, userID, pageID)
	wantOK(t, get(t, srv, "/"+pageID+"/insights", page, "metric", "page_impressions"))
	srv.Advance(24 * time.Hour)
	wantError(t, get(t, srv, "/"+pageID+"/insights", page, "metric", "page_impressions"), 100, 0)
	// The *_unique wave retires on June 15, 2026.
	wantOK(t, get(t, srv, "/"+pageID+"/insights", page, "metric", "page_impressions_unique"))
}

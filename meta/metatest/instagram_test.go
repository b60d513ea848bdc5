package metatest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/meta/metatest"
)

func status(t *testing.T, srv *metatest.Server, container, token string) string {
	t.Helper()
	r := get(t, srv, "/"+container, token, "fields", "status_code,status")
	wantOK(t, r)
	return r.str("status_code")
}

func TestInstagramAccountBehindPage(t *testing.T) {
	srv := fixture(t)
	user := userToken(t, srv, userID, metatest.LongLived)
	r := get(t, srv, "/"+pageID, user, "fields", "instagram_business_account")
	wantOK(t, r)
	ig := r.body["instagram_business_account"].(map[string]any)
	if ig["id"] != igID || len(ig) != 1 {
		t.Fatalf("instagram_business_account = %v", ig)
	}
	r = get(t, srv, "/"+pageID, user, "fields", "instagram_business_account{id,username,followers_count}")
	if ig := r.body["instagram_business_account"].(map[string]any); ig["username"] != "adasbakery" || ig["followers_count"] != float64(1234) {
		t.Fatalf("nested fields = %s", r.raw)
	}
	// The second Page has no linked account: the field is absent.
	r = get(t, srv, "/"+page2ID, user, "fields", "instagram_business_account,name")
	if _, linked := r.body["instagram_business_account"]; linked || r.str("name") != "Ada's Cafe" {
		t.Fatalf("page without IG account = %s", r.raw)
	}

	prof := get(t, srv, "/"+igID, user, "fields", "username,name,followers_count,follows_count,media_count")
	wantOK(t, prof)
	if prof.str("username") != "adasbakery" || prof.body["follows_count"] != float64(56) || prof.body["media_count"] != float64(10) {
		t.Fatalf("profile = %s", prof.raw)
	}
	wantError(t, get(t, srv, "/"+igID, user, "fields", "shoe_size"), 100, 0)
	// Bob has no instagram_basic; a stranger's token cannot see the account.
	wantError(t, get(t, srv, "/"+igID, userToken(t, srv, user2ID, metatest.LongLived)), 10, 0)
	if err := srv.AddUser(metatest.User{ID: "2020", Granted: []string{"instagram_basic"}}); err != nil {
		t.Fatal(err)
	}
	wantError(t, get(t, srv, "/"+igID, userToken(t, srv, "2020", metatest.LongLived)), 100, 33)
}

func TestContainerStatusProgression(t *testing.T) {
	srv := fixture(t, metatest.WithContainerProcessing(10*time.Second, time.Minute))
	user := userToken(t, srv, userID, metatest.LongLived)
	img := post(t, srv, "/"+igID+"/media", user, "image_url", "https://cdn.example/a.jpg", "caption", "Croissants")
	wantOK(t, img)
	id := img.str("id")
	if got := status(t, srv, id, user); got != metatest.StatusInProgress {
		t.Fatalf("new container status = %s", got)
	}
	// Publishing too early is Meta's "Media ID is not available".
	r := post(t, srv, "/"+igID+"/media_publish", user, "creation_id", id)
	wantError(t, r, 9007, 2207027)
	srv.Advance(10 * time.Second)
	if got := status(t, srv, id, user); got != metatest.StatusFinished {
		t.Fatalf("status after processing = %s", got)
	}
	pub := post(t, srv, "/"+igID+"/media_publish", user, "creation_id", id)
	wantOK(t, pub)
	mediaID := pub.str("id")
	if got := status(t, srv, id, user); got != metatest.StatusPublished {
		t.Fatalf("status after publish = %s", got)
	}
	wantError(t, post(t, srv, "/"+igID+"/media_publish", user, "creation_id", id), 100, 0)

	m := get(t, srv, "/"+mediaID, user, "fields", "caption,media_type,media_product_type,permalink,timestamp")
	wantOK(t, m)
	if m.str("caption") != "Croissants" || m.str("media_type") != "IMAGE" || m.str("timestamp") != "2026-09-01T12:00:10+0000" {
		t.Fatalf("media = %s", m.raw)
	}

	// A reel takes the video processing time and reads back as VIDEO/REELS.
	reel := post(t, srv, "/"+igID+"/media", user, "media_type", "REELS", "video_url", "https://cdn.example/r.mp4")
	wantOK(t, reel)
	srv.Advance(59 * time.Second)
	if got := status(t, srv, reel.str("id"), user); got != metatest.StatusInProgress {
		t.Fatalf("reel status at 59s = %s", got)
	}
	srv.Advance(time.Second)
	rp := post(t, srv, "/"+igID+"/media_publish", user, "creation_id", reel.str("id"))
	wantOK(t, rp)
	rm := get(t, srv, "/"+rp.str("id"), user, "fields", "media_type,media_product_type")
	if rm.str("media_type") != "VIDEO" || rm.str("media_product_type") != "REELS" {
		t.Fatalf("reel = %s", rm.raw)
	}

	list := get(t, srv, "/"+igID+"/media", user, "fields", "id,media_type")
	wantOK(t, list)
	if len(list.data()) != 2 || list.data()[0].(map[string]any)["id"] != rp.str("id") {
		t.Fatalf("media list = %s", list.raw)
	}
	if prof := get(t, srv, "/"+igID, user, "fields", "media_count"); prof.body["media_count"] != float64(12) {
		t.Errorf("media_count = %v, want 12", prof.body["media_count"])
	}
}

func TestContainerErrorAndExpiry(t *testing.T) {
	srv := fixture(t)
	user := userToken(t, srv, userID, metatest.LongLived)

	srv.FailMediaURL("https://cdn.example/blocked.jpg")
	wantError(t, post(t, srv, "/"+igID+"/media", user, "image_url", "https://cdn.example/blocked.jpg"), 9004, 2207052)

	bad := post(t, srv, "/"+igID+"/media", user, "media_type", "REELS", "video_url", "https://cdn.example/x.avi").str("id")
	if err := srv.FailContainer(bad, 2207026); err != nil {
		t.Fatal(err)
	}
	r := get(t, srv, "/"+bad, user, "fields", "status_code,status")
	if r.str("status_code") != metatest.StatusError || !strings.Contains(r.str("status"), "2207026") {
		t.Fatalf("failed container = %s", r.raw)
	}
	wantError(t, post(t, srv, "/"+igID+"/media_publish", user, "creation_id", bad), -1, 2207032)

	old := post(t, srv, "/"+igID+"/media", user, "image_url", "https://cdn.example/old.jpg").str("id")
	srv.Advance(24 * time.Hour)
	if got := status(t, srv, old, user); got != metatest.StatusExpired {
		t.Fatalf("status after 24h = %s", got)
	}
	wantError(t, post(t, srv, "/"+igID+"/media_publish", user, "creation_id", old), -2, 2207020)
	wantError(t, post(t, srv, "/"+igID+"/media_publish", user, "creation_id", "123"), 24, 2207008)
	wantError(t, post(t, srv, "/"+igID+"/media_publish", user), 100, 0)
}

func TestContainerValidation(t *testing.T) {
	srv := fixture(t)
	user := userToken(t, srv, userID, metatest.LongLived)
	for _, kv := range [][]string{
		{},
		{"video_url", "https://cdn.example/v.mp4"},
		{"media_type", "VIDEO", "video_url", "https://cdn.example/v.mp4"},
		{"media_type", "REELS"},
		{"media_type", "GIF", "image_url", "https://cdn.example/a.jpg"},
		{"media_type", "CAROUSEL", "children", "1"},
	} {
		if r := post(t, srv, "/"+igID+"/media", user, kv...); r.status == 200 {
			t.Errorf("container %v accepted: %s", kv, r.raw)
		} else {
			wantError(t, r, 100, 0)
		}
	}
	// Publishing needs instagram_content_publish.
	if err := srv.AddUser(metatest.User{ID: "2021", Granted: []string{"instagram_basic", "pages_read_engagement"}}); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddPage(metatest.Page{ID: "3021", Tasks: map[string][]string{"2021": metatest.AllTasks()}}); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddInstagramAccount(metatest.InstagramAccount{ID: "178414000021", PageID: "3021"}); err != nil {
		t.Fatal(err)
	}
	wantError(t, post(t, srv, "/178414000021/media", userToken(t, srv, "2021", metatest.LongLived), "image_url", "https://cdn.example/a.jpg"), 10, 0)
}

func TestCarouselPublishing(t *testing.T) {
	srv := fixture(t, metatest.WithContainerProcessing(5*time.Second, 30*time.Second))
	page := pageToken(t, srv, userID, pageID) // a Page token works too
	a := post(t, srv, "/"+igID+"/media", page, "image_url", "https://cdn.example/1.jpg", "is_carousel_item", "true").str("id")
	b := post(t, srv, "/"+igID+"/media", page, "media_type", "VIDEO", "video_url", "https://cdn.example/2.mp4", "is_carousel_item", "true").str("id")
	parent := post(t, srv, "/"+igID+"/media", page, "media_type", "CAROUSEL", "children", a+","+b, "caption", "Two")
	wantOK(t, parent)
	pid := parent.str("id")
	wantError(t, post(t, srv, "/"+igID+"/media_publish", page, "creation_id", a), 100, 0)

	srv.Advance(5 * time.Second)
	if got := status(t, srv, pid, page); got != metatest.StatusInProgress {
		t.Fatalf("parent while the video child processes = %s", got)
	}
	if err := srv.FinishContainer(pid); err != nil {
		t.Fatal(err)
	}
	if got := status(t, srv, pid, page); got != metatest.StatusFinished {
		t.Fatalf("parent after FinishContainer = %s", got)
	}
	pub := post(t, srv, "/"+igID+"/media_publish", page, "creation_id", pid)
	wantOK(t, pub)
	m := get(t, srv, "/"+pub.str("id"), page, "fields", "media_type")
	if m.str("media_type") != "CAROUSEL_ALBUM" {
		t.Fatalf("carousel media = %s", m.raw)
	}
	kids := get(t, srv, "/"+pub.str("id")+"/children", page, "fields", "id,media_type")
	wantOK(t, kids)
	if len(kids.data()) != 2 || kids.data()[1].(map[string]any)["media_type"] != "VIDEO" {
		t.Fatalf("children = %s", kids.raw)
	}
	// Album children have no insights.
	childID := kids.data()[0].(map[string]any)["id"].(string)
	wantError(t, get(t, srv, "/"+childID+"/insights", page, "metric", "reach"), 100, 0)
	// A carousel counts as one post against the limit.
	lim := get(t, srv, "/"+igID+"/content_publishing_limit", page, "fields", "quota_usage,config")
	if lim.data()[0].(map[string]any)["quota_usage"] != float64(1) {
		t.Fatalf("limit = %s", lim.raw)
	}
}

func TestPublishingLimit(t *testing.T) {
	srv := fixture(t, metatest.WithPublishingLimit(2), metatest.WithContainerProcessing(0, 0))
	user := userToken(t, srv, userID, metatest.LongLived)
	publish := func() response {
		id := post(t, srv, "/"+igID+"/media", user, "image_url", "https://cdn.example/p.jpg").str("id")
		return post(t, srv, "/"+igID+"/media_publish", user, "creation_id", id)
	}
	wantOK(t, publish())
	srv.Advance(time.Hour)
	wantOK(t, publish())
	r := publish()
	wantError(t, r, 9, 2207042)

	lim := get(t, srv, "/"+igID+"/content_publishing_limit", user, "fields", "quota_usage,config")
	wantOK(t, lim)
	entry := lim.data()[0].(map[string]any)
	cfg := entry["config"].(map[string]any)
	if entry["quota_usage"] != float64(2) || cfg["quota_total"] != float64(2) || cfg["quota_duration"] != float64(86400) {
		t.Fatalf("content_publishing_limit = %s", lim.raw)
	}
	if def := get(t, srv, "/"+igID+"/content_publishing_limit", user); len(def.data()[0].(map[string]any)) != 1 {
		t.Errorf("default fields = %s, want quota_usage only", def.raw)
	}
	// The window is a moving 24 hours.
	srv.Advance(23 * time.Hour)
	wantOK(t, publish())
}

func TestMediaInsights(t *testing.T) {
	srv := fixture(t)
	if err := srv.AddMedia(metatest.Media{ID: "1790001", OwnerID: igID, Caption: "old post", LikeCount: 7}); err != nil {
		t.Fatal(err)
	}
	user := userToken(t, srv, userID, metatest.LongLived)
	if err := srv.SetMetric("1790001", "reach", 321); err != nil {
		t.Fatal(err)
	}
	r := get(t, srv, "/1790001/insights", user, "metric", "reach,views")
	wantOK(t, r)
	if len(r.data()) != 1 {
		t.Fatalf("insights = %s (views was never set: no data, not 0)", r.raw)
	}
	d := r.data()[0].(map[string]any)
	if d["name"] != "reach" || d["values"].([]any)[0].(map[string]any)["value"] != float64(321) {
		t.Fatalf("reach = %v", d)
	}
	imp := get(t, srv, "/1790001/insights", user, "metric", "reach,impressions")
	wantError(t, imp, 100, 0)
	if !strings.Contains(imp.errMessage(), "impressions metric is no longer supported") {
		t.Errorf("impressions message = %q", imp.errMessage())
	}
	plays := get(t, srv, "/1790001/insights", user, "metric", "reach,plays")
	wantError(t, plays, 100, 0)
	if !strings.Contains(plays.errMessage(), "metric[1] must be one of the following values") {
		t.Errorf("plays message = %q", plays.errMessage())
	}
	// Bob lacks instagram_manage_insights.
	wantError(t, get(t, srv, "/1790001/insights", userToken(t, srv, user2ID, metatest.LongLived), "metric", "reach"), 10, 0)
	m := get(t, srv, "/1790001", user, "fields", "like_count,username")
	if m.body["like_count"] != float64(7) || m.str("username") != "adasbakery" {
		t.Errorf("media = %s", m.raw)
	}
}

package metatest_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/meta/metatest"
)

const creatorID = "17841400000000077"

func igFixture(t *testing.T, opts ...metatest.Option) *metatest.Server {
	t.Helper()
	return fixture(t, append([]metatest.Option{
		metatest.WithInstagramAccount(metatest.InstagramAccount{ID: creatorID, Username: "ada.creates", FollowersCount: 5400}),
		metatest.WithInstagramAccount(metatest.InstagramAccount{ID: "17841400000000078", Username: "tiny", FollowersCount: 99}),
	}, opts...)...)
}

// igDo calls graph.instagram.com (or, with an absolute URL, any host).
func igDo(t *testing.T, srv *metatest.Server, method, path string, params url.Values) response {
	t.Helper()
	target := path
	if !strings.HasPrefix(path, "http") {
		target = srv.InstagramGraphURL() + "/" + srv.Version() + path
	}
	var body *strings.Reader
	if method == http.MethodGet || method == http.MethodDelete {
		if len(params) > 0 {
			target += "?" + params.Encode()
		}
		body = strings.NewReader("")
	} else {
		body = strings.NewReader(params.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if method != http.MethodGet && method != http.MethodDelete {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return send(t, req)
}

func TestInstagramLoginTokens(t *testing.T) {
	srv := igFixture(t)
	authURL := srv.InstagramLoginURL() + "/oauth/authorize?" + url.Values{"client_id": {appID}, "redirect_uri": {redirect},
		"response_type": {"code"}, "scope": {"instagram_business_basic,instagram_business_manage_insights"}, "state": {"st"}}.Encode()
	back, err := srv.InstagramConsent(authURL, metatest.InstagramConsent{AccountID: creatorID, Decline: []string{"instagram_business_manage_insights"}})
	if err != nil {
		t.Fatal(err)
	}
	if back.Query().Get("state") != "st" || back.Fragment != "_" {
		t.Fatalf("redirect = %s, want state and #_", back)
	}
	code := back.Query().Get("code")
	exchange := func(secret string) response {
		return igDo(t, srv, http.MethodPost, srv.InstagramLoginURL()+"/oauth/access_token", url.Values{"client_id": {appID},
			"client_secret": {secret}, "grant_type": {"authorization_code"}, "redirect_uri": {redirect}, "code": {code}})
	}
	if r := exchange("wrong"); r.status != 400 || r.str("error_type") != "OAuthException" || r.str("error_message") == "" {
		t.Fatalf("wrong secret answered %d %s, want api.instagram.com's 400 envelope", r.status, r.raw)
	}
	r := exchange(appSecret)
	wantOK(t, r)
	entry := r.data()[0].(map[string]any)
	if entry["user_id"] != creatorID || entry["permissions"] != "instagram_business_basic" {
		t.Fatalf("code exchange answered %s", r.raw)
	}
	if r := exchange(appSecret); r.status != 400 || !strings.Contains(r.str("error_message"), "used") {
		t.Fatalf("a used code answered %d %s", r.status, r.raw)
	}
	short := entry["access_token"].(string)

	tokenCall := func(path string, kv ...string) response {
		return igDo(t, srv, http.MethodGet, srv.InstagramGraphURL()+path, vals(short, kv...))
	}
	wantError(t, tokenCall("/access_token", "grant_type", "ig_exchange_token", "client_secret", "wrong"), 1, 0)
	r = tokenCall("/access_token", "grant_type", "ig_exchange_token", "client_secret", appSecret)
	wantOK(t, r)
	if r.str("token_type") != "bearer" || r.body["expires_in"].(float64) != float64(60*24*3600) {
		t.Fatalf("ig_exchange_token answered %s", r.raw)
	}
	long := r.str("access_token")
	short = long
	wantError(t, tokenCall("/refresh_access_token", "grant_type", "ig_refresh_token"), 100, 0) // under 24 hours old
	srv.Advance(25 * time.Hour)
	wantOK(t, tokenCall("/refresh_access_token", "grant_type", "ig_refresh_token"))

	// /me on graph.instagram.com; an Instagram token is no Facebook token
	// and the other way round.
	me := igDo(t, srv, http.MethodGet, "/me", vals(long, "fields", "user_id,username"))
	wantOK(t, me)
	if me.str("user_id") != creatorID || me.str("username") != "ada.creates" {
		t.Fatalf("/me answered %s", me.raw)
	}
	wantError(t, get(t, srv, "/me", long), 190, 0)
	wantError(t, igDo(t, srv, http.MethodGet, "/me", vals(userToken(t, srv, userID, metatest.LongLived))), 190, 0)
	// Insights were declined: code 10.
	wantError(t, igDo(t, srv, http.MethodGet, "/"+creatorID+"/insights", vals(long, "metric", "follower_demographics",
		"period", "lifetime", "metric_type", "total_value", "breakdown", "country", "timeframe", "this_month")), 10, 0)

	if err := srv.DeauthorizeInstagram(t.Context(), appID, creatorID, ""); err != nil {
		t.Fatal(err)
	}
	wantError(t, igDo(t, srv, http.MethodGet, "/me", vals(long)), 190, 458)
}

func TestDemographicsEndpoint(t *testing.T) {
	srv := igFixture(t)
	countries := map[string]int{}
	for i := range 60 {
		countries[string(rune('A'+i%26))+string(rune('A'+i/26))] = i + 1
	}
	for _, id := range []string{creatorID, "17841400000000078"} {
		if err := srv.SetDemographics(id, metatest.MetricFollowerDemographics, "country", countries); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := srv.InstagramToken(appID, creatorID, metatest.LongLived, "instagram_business_basic", "instagram_business_manage_insights")
	if err != nil {
		t.Fatal(err)
	}
	q := func(id string, kv ...string) response {
		base := []string{"metric", "follower_demographics", "period", "lifetime", "metric_type", "total_value",
			"breakdown", "country", "timeframe", "this_month"}
		for i := 0; i+1 < len(kv); i += 2 {
			for j := 0; j+1 < len(base); j += 2 {
				if base[j] == kv[i] {
					base[j+1] = kv[i+1]
				}
			}
		}
		return igDo(t, srv, http.MethodGet, "/"+id+"/insights", vals(tok, base...))
	}
	r := q(creatorID)
	wantOK(t, r)
	m := r.data()[0].(map[string]any)
	br := m["total_value"].(map[string]any)["breakdowns"].([]any)[0].(map[string]any)
	results := br["results"].([]any)
	if m["name"] != "follower_demographics" || len(results) != 45 || br["dimension_keys"].([]any)[0] != "country" {
		t.Fatalf("demographics answered %s", r.raw)
	}
	if first := results[0].(map[string]any); first["value"].(float64) != 60 {
		t.Fatalf("first result %v, want the largest", first)
	}
	wantError(t, q(creatorID, "metric_type", ""), 100, 0)
	wantError(t, q(creatorID, "timeframe", "last_30_days"), 100, 0)
	wantError(t, q(creatorID, "breakdown", "locale"), 100, 0)
	wantError(t, q(creatorID, "period", "day"), 100, 0)
	// Another account is out of this token's reach.
	wantError(t, q("17841400000000078"), 100, 33)
	small, err := srv.InstagramToken(appID, "17841400000000078", metatest.LongLived, "instagram_business_basic", "instagram_business_manage_insights")
	if err != nil {
		t.Fatal(err)
	}
	tok = small
	if r := q("17841400000000078"); r.status != 200 || len(r.data()) != 0 {
		t.Fatalf("under 100 followers answered %s, want an empty data set", r.raw)
	}
}

func TestResumableUploadEndpoint(t *testing.T) {
	srv := igFixture(t, metatest.WithContainerProcessing(0, 10*time.Second))
	tok := pageToken(t, srv, userID, pageID)
	r := post(t, srv, "/"+igID+"/media", tok, "media_type", "REELS", "upload_type", "resumable")
	wantOK(t, r)
	id, uri := r.str("id"), r.str("uri")
	if uri != srv.UploadURL()+"/ig-api-upload/"+srv.Version()+"/"+id {
		t.Fatalf("uri = %q", uri)
	}
	wantError(t, post(t, srv, "/"+igID+"/media", tok, "media_type", "IMAGE", "upload_type", "resumable"), 100, 0)
	upload := func(offset string, body []byte, auth string) response {
		req, err := http.NewRequest(http.MethodPost, uri, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", auth)
		req.Header.Set("offset", offset)
		req.Header.Set("file_size", "10")
		return send(t, req)
	}
	if r := upload("0", []byte("01234"), "OAuth bad"); r.status != 401 {
		t.Fatalf("a bad token answered %d %s", r.status, r.raw)
	}
	wantOK(t, upload("0", []byte("01234"), "OAuth "+tok))
	if r := upload("0", []byte("01234"), "OAuth "+tok); r.status != 400 || r.body["debug_info"] == nil {
		t.Fatalf("a stale offset answered %d %s", r.status, r.raw)
	}
	req, _ := http.NewRequest(http.MethodGet, uri, nil)
	req.Header.Set("Authorization", "OAuth "+tok)
	if r := send(t, req); r.body["offset"].(float64) != 5 {
		t.Fatalf("GET uri answered %s", r.raw)
	}
	st := get(t, srv, "/"+id, tok, "fields", "status_code")
	if st.str("status_code") != metatest.StatusInProgress {
		t.Fatalf("a partial upload's container is %s", st.raw)
	}
	wantOK(t, upload("5", []byte("56789"), "OAuth "+tok))
	srv.Advance(10 * time.Second)
	if st := get(t, srv, "/"+id, tok, "fields", "status_code"); st.str("status_code") != metatest.StatusFinished {
		t.Fatalf("a complete upload's container is %s", st.raw)
	}
	// Instagram Login has no resumable upload.
	ig, err := srv.InstagramToken(appID, creatorID, metatest.LongLived, "instagram_business_basic", "instagram_business_content_publish")
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, igDo(t, srv, http.MethodPost, "/"+creatorID+"/media", vals(ig, "media_type", "REELS", "upload_type", "resumable")), 100, 0)

	// A lost answer: the publish happens, the caller hears nothing.
	if err := srv.DropAnswer("POST", "/*/media_publish", 1); err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest(http.MethodPost, srv.GraphURL()+"/"+srv.Version()+"/"+igID+"/media_publish",
		strings.NewReader(vals(tok, "creation_id", id).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the dropped answer arrived")
	}
	if st := get(t, srv, "/"+id, tok, "fields", "status_code"); st.str("status_code") != metatest.StatusPublished {
		t.Fatalf("after the lost answer the container is %s", st.raw)
	}
}

func TestCommentsEndpoint(t *testing.T) {
	srv := igFixture(t, metatest.WithUser(metatest.User{ID: "2009", Name: "Mo", Granted: []string{
		"pages_show_list", "pages_read_engagement", "pages_manage_posts", "pages_read_user_engagement", "pages_manage_engagement",
		"instagram_basic", "instagram_manage_comments"}}),
		metatest.WithPage(metatest.Page{ID: "3009", Name: "Mo's", Tasks: map[string][]string{"2009": metatest.AllTasks()}}),
		metatest.WithMedia(metatest.Media{ID: "m1", OwnerID: igID}))
	for _, c := range []metatest.Comment{
		{ID: "c1", ObjectID: "m1", Text: "hi", FromID: "f1", Username: "fan", Hidden: true},
	} {
		if err := srv.AddComment(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.AddComment(metatest.Comment{ID: "x", ObjectID: "nope"}); err == nil {
		t.Fatal("a comment on nothing was accepted")
	}
	tok := pageToken(t, srv, userID, pageID)
	// The fixture user lacks instagram_manage_comments: code 10.
	wantError(t, get(t, srv, "/m1/comments", tok), 10, 0)
	pt := pageToken(t, srv, "2009", "3009")
	post1 := post(t, srv, "/3009/feed", pt, "message", "hello")
	wantOK(t, post1)
	postID := post1.str("id")
	if err := srv.AddComment(metatest.Comment{ID: "fc", ObjectID: postID, Text: "nice", FromID: "p9", Username: "Zed"}); err != nil {
		t.Fatal(err)
	}
	r := get(t, srv, "/"+postID+"/comments", pt, "fields", "id,message,from{id,name},is_hidden")
	wantOK(t, r)
	c := r.data()[0].(map[string]any)
	if c["message"] != "nice" || c["from"].(map[string]any)["name"] != "Zed" || c["is_hidden"] != false {
		t.Fatalf("Page comments answered %s", r.raw)
	}
	wantError(t, get(t, srv, "/"+postID+"/comments", userToken(t, srv, "2009", metatest.LongLived)), 210, 0)
	wantOK(t, post(t, srv, "/fc", pt, "is_hidden", "true"))
	wantError(t, post(t, srv, "/fc", pt, "is_hidden", "maybe"), 100, 0)
	wantError(t, post(t, srv, "/fc/comments", pt, "message", "thanks"), 100, 0) // hidden: no reply
	wantOK(t, do(t, srv, http.MethodDelete, "/fc", vals(pt)))
	if got := srv.Comments(postID); len(got) != 0 {
		t.Fatalf("after DELETE: %v", got)
	}
}

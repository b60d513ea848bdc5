package tiktoktest_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

func TestUserInfoFieldScopes(t *testing.T) {
	srv := setup(t)
	basic := issue(t, srv, anaID, "user.info.basic")
	all := issue(t, srv, anaID, "user.info.basic", "user.info.profile", "user.info.stats")
	listOnly := issue(t, srv, anaID, "video.list")
	for _, tc := range []struct {
		name, token, fields string
		status              int
		code                string
		want                map[string]string
	}{
		{"basic fields", basic.AccessToken, "open_id,union_id,avatar_url,display_name", 200, "ok",
			map[string]string{"open_id": anaID, "union_id": "union-ana", "display_name": "Ana", "avatar_url": "https://cdn.example/avatar/ana.jpeg"}},
		{"profile without its scope", basic.AccessToken, "open_id,username", 401, "scope_not_authorized", nil},
		{"stats without its scope", basic.AccessToken, "follower_count", 401, "scope_not_authorized", nil},
		{"basic without its scope", listOnly.AccessToken, "open_id", 401, "scope_not_authorized", nil},
		{"profile and stats", all.AccessToken, "username,is_verified,bio_description,follower_count,following_count,likes_count,video_count", 200, "ok",
			map[string]string{"username": "ana.tt", "is_verified": "true", "bio_description": "hello", "follower_count": "1200",
				"following_count": "80", "likes_count": "99000", "video_count": "25"}},
		{"unknown field", all.AccessToken, "open_id,avatar_url_200", 400, "invalid_params", nil},
		{"no fields", all.AccessToken, "", 400, "invalid_params", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, env := userInfo(t, srv, tc.token, tc.fields)
			wantAPI(t, status, env, tc.status, tc.code)
			if tc.want == nil {
				return
			}
			u := data(env)["user"].(map[string]any)
			if len(u) != len(tc.want) {
				t.Errorf("user has %d fields %v, want only the %d requested", len(u), u, len(tc.want))
			}
			for k, v := range tc.want {
				if got := fmt.Sprint(u[k]); got != v {
					t.Errorf("user.%s = %s, want %s", k, got, v)
				}
			}
		})
	}
	status, env := call(t, srv, http.MethodPost, tiktoktest.UserInfoPath+"?fields=open_id", all.AccessToken, "")
	wantAPI(t, status, env, http.StatusMethodNotAllowed, "invalid_params")
}

func TestBearerTokenChecks(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "user.info.basic")
	for name, header := range map[string]string{
		"missing":     "",
		"wrong kind":  "Basic " + tok.AccessToken,
		"no scheme":   tok.AccessToken,
		"unknown":     "Bearer act.unknown",
		"refresh tok": "Bearer " + tok.RefreshToken,
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, srv.BaseURL()+tiktoktest.UserInfoPath+"?fields=open_id", nil)
			if header != "" {
				req.Header.Set("Authorization", header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			status, env := decode(t, resp)
			wantAPI(t, status, env, http.StatusUnauthorized, "access_token_invalid")
		})
	}
}

// listPage calls video list and returns ids, cursor and has_more.
func listPage(t *testing.T, srv *tiktoktest.Server, token string, body map[string]any) ([]string, int64, bool, []map[string]any) {
	t.Helper()
	status, env := call(t, srv, http.MethodPost, tiktoktest.VideoListPath+"?fields=id,create_time,title,cover_image_url", token, body)
	wantAPI(t, status, env, http.StatusOK, "ok")
	d := data(env)
	var ids []string
	var objs []map[string]any
	for _, v := range d["videos"].([]any) {
		m := v.(map[string]any)
		ids = append(ids, m["id"].(string))
		objs = append(objs, m)
	}
	cursor, err := strconv.ParseInt(fmt.Sprint(d["cursor"]), 10, 64)
	if err != nil {
		t.Fatalf("cursor %v is not an int64", d["cursor"])
	}
	return ids, cursor, d["has_more"] == true, objs
}

func TestVideoListPaging(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "video.list")
	var seen []string
	var pages []int
	var cursor int64
	var lastCreate int64 = 1 << 62
	for more := true; more; {
		body := map[string]any{"max_count": 10}
		if cursor != 0 {
			body["cursor"] = cursor
		}
		ids, next, hasMore, objs := listPage(t, srv, tok.AccessToken, body)
		pages = append(pages, len(ids))
		for _, o := range objs {
			ct, _ := strconv.ParseInt(fmt.Sprint(o["create_time"]), 10, 64)
			if ct > lastCreate {
				t.Errorf("video %v is newer than the one before it", o["id"])
			}
			lastCreate = ct
			if len(o) != 4 {
				t.Errorf("video %v has fields beyond the requested four", o)
			}
		}
		if len(objs) > 0 {
			lastCT, _ := strconv.ParseInt(fmt.Sprint(objs[len(objs)-1]["create_time"]), 10, 64)
			if next != lastCT*1000 {
				t.Errorf("cursor = %d, want the last create_time in ms %d", next, lastCT*1000)
			}
		}
		seen = append(seen, ids...)
		cursor, more = next, hasMore
	}
	if !slices.Equal(pages, []int{10, 10, 5}) {
		t.Errorf("page sizes %v, want [10 10 5]", pages)
	}
	slices.Sort(seen)
	if len(slices.Compact(seen)) != 25 {
		t.Errorf("paging returned %d distinct videos, want the 25 public ones", len(seen))
	}
	for _, id := range seen {
		if strings.HasPrefix(id, "74") {
			t.Errorf("a private video %s was listed", id)
		}
	}

	// The default page is 10; a caller's own ms timestamp pages from there.
	ids, _, more, _ := listPage(t, srv, tok.AccessToken, nil)
	if len(ids) != 10 || !more || ids[0] != "7300000000000000025" {
		t.Errorf("default page = %v more=%v, want the 10 newest", ids, more)
	}
	ids, _, more, _ = listPage(t, srv, tok.AccessToken, map[string]any{"cursor": baseTime.Add(3 * time.Hour).UnixMilli()})
	if !slices.Equal(ids, []string{"7300000000000000003", "7300000000000000002", "7300000000000000001"}) || more {
		t.Errorf("page before 3h = %v more=%v", ids, more)
	}

	for _, tc := range []struct {
		name string
		body any
	}{
		{"max_count 21", map[string]any{"max_count": 21}},
		{"max_count 0", map[string]any{"max_count": 0}},
		{"negative cursor", map[string]any{"cursor": -1}},
		{"not JSON", "{"},
	} {
		status, env := call(t, srv, http.MethodPost, tiktoktest.VideoListPath+"?fields=id", tok.AccessToken, tc.body)
		if status != http.StatusBadRequest || errCode(env) != "invalid_params" {
			t.Errorf("%s: list returned %d %v, want 400 invalid_params", tc.name, status, env)
		}
	}
	status, env := call(t, srv, http.MethodPost, tiktoktest.VideoListPath, tok.AccessToken, map[string]any{})
	wantAPI(t, status, env, http.StatusBadRequest, "invalid_params")

	// Content-Type is required.
	req, _ := http.NewRequest(http.MethodPost, srv.BaseURL()+tiktoktest.VideoListPath+"?fields=id", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	status, env = decode(t, resp)
	wantAPI(t, status, env, http.StatusBadRequest, "invalid_params")
}

func TestVideoQuery(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "video.list")
	body := map[string]any{"filters": map[string]any{"video_ids": []string{"7300000000000000007", "7400000000000000001", "123", "7300000000000000002"}}}
	status, env := call(t, srv, http.MethodPost, tiktoktest.VideoQueryPath+"?fields=id,title,cover_image_url,view_count", tok.AccessToken, body)
	wantAPI(t, status, env, http.StatusOK, "ok")
	videos := data(env)["videos"].([]any)
	var ids []string
	for _, v := range videos {
		ids = append(ids, v.(map[string]any)["id"].(string))
	}
	if !slices.Equal(ids, []string{"7300000000000000007", "7300000000000000002"}) {
		t.Errorf("query returned %v, want only the user's public videos", ids)
	}
	v := videos[0].(map[string]any)
	if v["title"] != "video 7" || fmt.Sprint(v["view_count"]) != "7000" {
		t.Errorf("video = %v", v)
	}
	cover, err := url.Parse(v["cover_image_url"].(string))
	if err != nil || cover.Query().Get("x-expires") != strconv.FormatInt(srv.Now().Add(6*time.Hour).Unix(), 10) {
		t.Errorf("cover_image_url %v lacks x-expires six hours ahead", v["cover_image_url"])
	}

	many := make([]string, 21)
	for i := range many {
		many[i] = fmt.Sprintf("73%017d", i+1)
	}
	for name, b := range map[string]any{
		"21 ids":     map[string]any{"filters": map[string]any{"video_ids": many}},
		"no ids":     map[string]any{"filters": map[string]any{"video_ids": []string{}}},
		"no filters": map[string]any{},
	} {
		status, env := call(t, srv, http.MethodPost, tiktoktest.VideoQueryPath+"?fields=id", tok.AccessToken, b)
		if status != http.StatusBadRequest || errCode(env) != "invalid_params" {
			t.Errorf("%s: query returned %d %v, want 400 invalid_params", name, status, env)
		}
	}
	basic := issue(t, srv, anaID, "user.info.basic")
	status, env = call(t, srv, http.MethodPost, tiktoktest.VideoQueryPath+"?fields=id", basic.AccessToken, body)
	wantAPI(t, status, env, http.StatusUnauthorized, "scope_not_authorized")
}

func TestRegistryChangesShowUp(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "video.list", "user.info.stats")
	if err := srv.AddVideo(anaID, tiktoktest.Video{ID: "7500000000000000001", CreateTime: baseTime.Add(100 * time.Hour), Title: "new"}); err != nil {
		t.Fatal(err)
	}
	if err := srv.UpdateUser(anaID, func(u *tiktoktest.User) { u.FollowerCount = 5 }); err != nil {
		t.Fatal(err)
	}
	ids, _, _, _ := listPage(t, srv, tok.AccessToken, map[string]any{"max_count": 1})
	if !slices.Equal(ids, []string{"7500000000000000001"}) {
		t.Errorf("newest video = %v, want the added one", ids)
	}
	_, env := userInfo(t, srv, tok.AccessToken, "follower_count,video_count")
	if u := data(env)["user"].(map[string]any); fmt.Sprintf("%v %v", u["follower_count"], u["video_count"]) != "5 26" {
		t.Errorf("user = %v, want follower_count 5 and video_count 26", u)
	}
	if err := srv.AddVideo("nobody", tiktoktest.Video{ID: "1", CreateTime: baseTime}); err == nil {
		t.Error("AddVideo to an unknown user succeeded")
	}
	if err := srv.UpdateUser(anaID, func(u *tiktoktest.User) { u.PostingError = "bogus" }); err == nil {
		t.Error("UpdateUser accepted an unknown posting error")
	}
}

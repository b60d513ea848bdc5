package metatest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/meta/metatest"
)

const (
	appID     = "1001"
	appSecret = "app-secret-1001"
	otherApp  = "1002"
	redirect  = "https://crm.example/meta/callback"
	userID    = "2001"
	user2ID   = "2002"
	pageID    = "3001"
	page2ID   = "3002"
	igID      = "17841400000000001"
	psid      = "7001"
)

// t0 is the fixed start of the emulator's clock in tests.
var t0 = time.Date(2026, time.September, 1, 12, 0, 0, 0, time.UTC)

func fixedClock() func() time.Time { return func() time.Time { return t0 } }

// fixture starts an emulator with one app, two users, two Pages, an
// Instagram account on the first Page and a conversation.
func fixture(t *testing.T, opts ...metatest.Option) *metatest.Server {
	t.Helper()
	base := []metatest.Option{
		metatest.WithClock(fixedClock()),
		metatest.WithApp(metatest.App{ID: appID, Secret: appSecret, Name: "CRM", RedirectURIs: []string{redirect}, VerifyToken: "verify-me"}),
		metatest.WithApp(metatest.App{ID: otherApp, Secret: "other-secret", RedirectURIs: []string{redirect}}),
		metatest.WithUser(metatest.User{ID: userID, Name: "Ada Admin", Granted: []string{
			"pages_show_list", "pages_read_engagement", "pages_manage_posts", "read_insights",
			"publish_video", "pages_messaging", "instagram_basic", "instagram_content_publish",
			"instagram_manage_insights",
		}}),
		metatest.WithUser(metatest.User{ID: user2ID, Name: "Bob Analyst", Granted: []string{"pages_show_list"}}),
		metatest.WithPage(metatest.Page{ID: pageID, Name: "Ada's Bakery", Category: "Bakery",
			Tasks: map[string][]string{userID: metatest.AllTasks(), user2ID: {metatest.TaskAnalyze}}}),
		metatest.WithPage(metatest.Page{ID: page2ID, Name: "Ada's Cafe", Category: "Cafe",
			Tasks: map[string][]string{userID: {metatest.TaskCreateContent}}}),
		metatest.WithInstagramAccount(metatest.InstagramAccount{ID: igID, PageID: pageID, Username: "adasbakery",
			Name: "Ada's Bakery", FollowersCount: 1234, FollowsCount: 56, MediaCount: 10}),
		metatest.WithConversation(metatest.Conversation{PageID: pageID, PSID: psid, Name: "Carol", LastUserMessage: t0.Add(-time.Hour)}),
	}
	return metatest.Start(t, append(base, opts...)...)
}

// response is a Graph answer decoded loosely.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r response) errCode() (code, subcode int) {
	e, _ := r.body["error"].(map[string]any)
	if e == nil {
		return 0, 0
	}
	c, _ := e["code"].(float64)
	s, _ := e["error_subcode"].(float64)
	return int(c), int(s)
}

func (r response) errMessage() string {
	e, _ := r.body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

func (r response) data() []any {
	d, _ := r.body["data"].([]any)
	return d
}

func (r response) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

// do sends a request to the emulator. path starts with "/"; the version
// prefix is added unless path already has one or starts with "//".
func do(t *testing.T, srv *metatest.Server, method, path string, params url.Values) response {
	t.Helper()
	if !strings.HasPrefix(path, "/v") && !strings.HasPrefix(path, "//") {
		path = "/" + srv.Version() + path
	}
	path = "/" + strings.TrimLeft(path, "/")
	var body io.Reader
	target := srv.GraphURL() + path
	if method == http.MethodGet || method == http.MethodDelete {
		if len(params) > 0 {
			target += "?" + params.Encode()
		}
	} else {
		body = strings.NewReader(params.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return send(t, req)
}

func send(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// get is do(GET) with an access token.
func get(t *testing.T, srv *metatest.Server, path, token string, kv ...string) response {
	t.Helper()
	return do(t, srv, http.MethodGet, path, vals(token, kv...))
}

// post is do(POST) with an access token.
func post(t *testing.T, srv *metatest.Server, path, token string, kv ...string) response {
	t.Helper()
	return do(t, srv, http.MethodPost, path, vals(token, kv...))
}

func vals(token string, kv ...string) url.Values {
	v := url.Values{}
	if token != "" {
		v.Set("access_token", token)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func wantError(t *testing.T, r response, code, subcode int) {
	t.Helper()
	gotCode, gotSub := r.errCode()
	if gotCode != code || gotSub != subcode {
		t.Fatalf("error = (%d, %d) %q (HTTP %d), want (%d, %d); body %s", gotCode, gotSub, r.errMessage(), r.status, code, subcode, r.raw)
	}
}

func wantOK(t *testing.T, r response) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", r.status, r.raw)
	}
}

func userToken(t *testing.T, srv *metatest.Server, uid string, lt metatest.Lifetime) string {
	t.Helper()
	tok, err := srv.UserToken(appID, uid, lt)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func pageToken(t *testing.T, srv *metatest.Server, uid, pid string) string {
	t.Helper()
	tok, err := srv.PageToken(appID, uid, pid, metatest.LongLived)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

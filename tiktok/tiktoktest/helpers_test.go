package tiktoktest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
	"golang.org/x/oauth2"
)

const (
	webKey      = "ck-web"
	webSecret   = "cs-web-secret-0123456789"
	webRedirect = "https://crm.example/callback/"
	rfcKey      = "ck-rfc"
	rfcSecret   = "cs-rfc-secret-9876543210"
	rfcRedirect = "http://127.0.0.1:*/callback/"
	anaID       = "open-ana"
	privID      = "open-priv"
)

var allScopes = []string{"user.info.basic", "user.info.profile", "user.info.stats", "video.list", "video.publish", "video.upload"}

// baseTime is when the registered videos were posted around.
var baseTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func anaVideos() []tiktoktest.Video {
	var vs []tiktoktest.Video
	for i := range 25 {
		vs = append(vs, tiktoktest.Video{
			ID:            fmt.Sprintf("73%017d", i+1),
			CreateTime:    baseTime.Add(time.Duration(i) * time.Hour),
			Title:         fmt.Sprintf("video %d", i+1),
			CoverImageURL: fmt.Sprintf("https://cdn.example/cover/%d.jpeg", i+1),
			Duration:      int32(10 + i),
			ViewCount:     int64(1000 * (i + 1)),
		})
	}
	vs = append(vs,
		tiktoktest.Video{ID: "7400000000000000001", CreateTime: baseTime.Add(30 * time.Hour), Title: "private 1", Private: true},
		tiktoktest.Video{ID: "7400000000000000002", CreateTime: baseTime.Add(-30 * time.Hour), Title: "private 2", Private: true},
	)
	return vs
}

// setup starts an emulator with two apps and two users:
//   - ck-web: a web app on https://crm.example/callback/, hex PKCE, every
//     scope, verified domain media.example and prefix https://cdn.example/videos/;
//   - ck-rfc: a desktop-style app on http://127.0.0.1:*/callback/ taking
//     RFC 7636 base64url challenges;
//   - open-ana: a public account with 25 public and 2 private videos;
//   - open-priv: a private account with no videos.
func setup(t *testing.T, opts ...tiktoktest.Option) *tiktoktest.Server {
	t.Helper()
	base := []tiktoktest.Option{
		tiktoktest.WithApp(tiktoktest.App{
			ClientKey:           webKey,
			ClientSecret:        webSecret,
			RedirectURIs:        []string{webRedirect},
			Scopes:              allScopes,
			VerifiedURLPrefixes: []string{"media.example", "https://cdn.example/videos/"},
		}),
		tiktoktest.WithApp(tiktoktest.App{
			ClientKey:    rfcKey,
			ClientSecret: rfcSecret,
			RedirectURIs: []string{rfcRedirect},
			Scopes:       []string{"user.info.basic", "video.list"},
			Challenge:    tiktoktest.ChallengeBase64URL,
		}),
		tiktoktest.WithUser(tiktoktest.User{
			OpenID:          anaID,
			UnionID:         "union-ana",
			DisplayName:     "Ana",
			Username:        "ana.tt",
			AvatarURL:       "https://cdn.example/avatar/ana.jpeg",
			BioDescription:  "hello",
			ProfileDeepLink: "https://vm.tiktok.com/ana",
			IsVerified:      true,
			FollowerCount:   1200,
			FollowingCount:  80,
			LikesCount:      99000,
			Videos:          anaVideos(),
		}),
		tiktoktest.WithUser(tiktoktest.User{OpenID: privID, DisplayName: "Priv", Username: "priv", Private: true}),
	}
	return tiktoktest.Start(t, append(base, opts...)...)
}

// authorizeURL builds a Login Kit authorization URL.
func authorizeURL(srv *tiktoktest.Server, clientKey, redirect, scope, state, challenge string) string {
	q := url.Values{
		"client_key":    {clientKey},
		"response_type": {"code"},
		"scope":         {scope},
		"redirect_uri":  {redirect},
		"state":         {state},
	}
	if challenge != "" {
		q.Set("code_challenge", challenge)
		q.Set("code_challenge_method", "S256")
	}
	return srv.AuthorizeURL() + "?" + q.Encode()
}

// callback parses the redirect a consent produced.
func callback(t *testing.T, redirect string) url.Values {
	t.Helper()
	u, err := url.Parse(redirect)
	if err != nil {
		t.Fatalf("redirect %q does not parse: %v", redirect, err)
	}
	return u.Query()
}

// consentCode runs the consent for ana on ck-web and returns the code and
// the verifier.
func consentCode(t *testing.T, srv *tiktoktest.Server, scope string, opts tiktoktest.ConsentOptions) (code, verifier string) {
	t.Helper()
	verifier = oauth2.GenerateVerifier()
	redirect, err := srv.Consent(authorizeURL(srv, webKey, webRedirect, scope, "st-1", tiktoktest.HexChallenge(verifier)), anaID, opts)
	if err != nil {
		t.Fatalf("Consent returned %v", err)
	}
	q := callback(t, redirect)
	if q.Get("code") == "" {
		t.Fatalf("Consent redirected to %s without a code", redirect)
	}
	return q.Get("code"), verifier
}

// postForm sends a form to an OAuth endpoint and decodes the JSON answer.
func postForm(t *testing.T, srv *tiktoktest.Server, path string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(srv.BaseURL()+path, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, resp)
}

func decode(t *testing.T, resp *http.Response) (int, map[string]any) {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	if len(b) > 0 {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if err := d.Decode(&out); err != nil {
			t.Fatalf("body %q is not JSON: %v", b, err)
		}
	}
	return resp.StatusCode, out
}

func exchangeForm(code, verifier string) url.Values {
	return url.Values{
		"client_key":    {webKey},
		"client_secret": {webSecret},
		"code":          {code},
		"grant_type":    {"authorization_code"},
		"redirect_uri":  {webRedirect},
		"code_verifier": {verifier},
	}
}

func refreshForm(refresh string) url.Values {
	return url.Values{
		"client_key":    {webKey},
		"client_secret": {webSecret},
		"grant_type":    {"refresh_token"},
		"refresh_token": {refresh},
	}
}

// wantOAuthError checks a flat OAuth error answer.
func wantOAuthError(t *testing.T, status int, body map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus || body["error"] != wantCode {
		t.Fatalf("OAuth call returned %d %v, want %d error=%s", status, body, wantStatus, wantCode)
	}
	if body["log_id"] == "" || body["log_id"] == nil {
		t.Errorf("OAuth error %v has no log_id", body)
	}
}

// call sends a data API request with a bearer token and decodes the
// envelope. A nil body sends none; a string body is sent as is.
func call(t *testing.T, srv *tiktoktest.Server, method, pathAndQuery, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, srv.BaseURL()+pathAndQuery, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, resp)
}

// errCode returns error.code of an envelope.
func errCode(env map[string]any) string {
	e, _ := env["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func data(env map[string]any) map[string]any {
	d, _ := env["data"].(map[string]any)
	return d
}

// wantAPI checks the status and error code of an envelope, and that a
// log_id is present.
func wantAPI(t *testing.T, status int, env map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus || errCode(env) != wantCode {
		t.Fatalf("API call returned %d %v, want %d %s", status, env, wantStatus, wantCode)
	}
	e, _ := env["error"].(map[string]any)
	if id, _ := e["log_id"].(string); id == "" {
		t.Errorf("envelope %v has no log_id", env)
	}
}

func issue(t *testing.T, srv *tiktoktest.Server, openID string, scopes ...string) tiktoktest.Token {
	t.Helper()
	tok, err := srv.IssueToken(webKey, openID, scopes...)
	if err != nil {
		t.Fatalf("IssueToken returned %v", err)
	}
	return tok
}

func userInfo(t *testing.T, srv *tiktoktest.Server, token, fields string) (int, map[string]any) {
	t.Helper()
	return call(t, srv, http.MethodGet, tiktoktest.UserInfoPath+"?fields="+fields, token, nil)
}

package tiktoktest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
	"golang.org/x/oauth2"
)

// exampleServer starts an emulator with one app and one user. Tests use
// tiktoktest.Start(t, ...) instead, which also closes it.
func exampleServer(opts ...tiktoktest.Option) *tiktoktest.Server {
	srv, err := tiktoktest.New(append([]tiktoktest.Option{
		tiktoktest.WithApp(tiktoktest.App{
			ClientKey:    "ck",
			ClientSecret: "cs",
			RedirectURIs: []string{"https://crm.example/callback/"},
			Scopes:       []string{"user.info.basic", "user.info.stats", "video.list"},
		}),
		tiktoktest.WithUser(tiktoktest.User{OpenID: "u1", DisplayName: "Ana", FollowerCount: 1200}),
	}, opts...)...)
	if err != nil {
		panic(err)
	}
	return srv
}

// The whole Login Kit flow: authorize with PKCE, the user declines one
// scope, the code is exchanged for tokens.
func ExampleServer_Consent() {
	srv := exampleServer()
	defer srv.Close()

	verifier := oauth2.GenerateVerifier()
	authURL := srv.AuthorizeURL() + "?" + url.Values{
		"client_key":            {"ck"},
		"response_type":         {"code"},
		"scope":                 {"user.info.basic,user.info.stats,video.list"},
		"redirect_uri":          {"https://crm.example/callback/"},
		"state":                 {"csrf-token"},
		"code_challenge":        {tiktoktest.HexChallenge(verifier)},
		"code_challenge_method": {"S256"},
	}.Encode()

	redirect, err := srv.Consent(authURL, "u1", tiktoktest.ConsentOptions{Decline: []string{"video.list"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	cb, _ := url.Parse(redirect)
	fmt.Println("state:", cb.Query().Get("state"))
	fmt.Println("granted:", cb.Query().Get("scopes"))

	resp, err := http.PostForm(srv.BaseURL()+tiktoktest.TokenPath, url.Values{
		"client_key":    {"ck"},
		"client_secret": {"cs"},
		"code":          {cb.Query().Get("code")},
		"grant_type":    {"authorization_code"},
		"redirect_uri":  {"https://crm.example/callback/"},
		"code_verifier": {verifier},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var tok tiktoktest.Token
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	fmt.Println(resp.StatusCode, tok.OpenID, tok.Scope, tok.ExpiresIn, tok.TokenType)
	// Output:
	// state: csrf-token
	// granted: user.info.basic,user.info.stats
	// 200 u1 user.info.basic,user.info.stats 7200 Bearer
}

// A connected account without the browser flow, and its access token
// expiring on the server clock.
func ExampleServer_IssueToken() {
	srv := exampleServer()
	defer srv.Close()

	tok, err := srv.IssueToken("ck", "u1", "user.info.basic", "user.info.stats")
	if err != nil {
		fmt.Println(err)
		return
	}
	get := func() {
		req, _ := http.NewRequest(http.MethodGet, srv.BaseURL()+tiktoktest.UserInfoPath+"?fields=display_name,follower_count", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		var env struct {
			Data  map[string]map[string]any `json:"data"`
			Error struct{ Code string }     `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&env)
		fmt.Println(resp.StatusCode, env.Error.Code, env.Data["user"])
	}
	get()
	srv.Advance(2 * time.Hour)
	get()
	// Output:
	// 200 ok map[display_name:Ana follower_count:1200]
	// 401 access_token_invalid map[]
}

// Making the next two requests to a path fail, then checking what the
// client sent.
func ExampleServer_InjectFault() {
	srv := exampleServer()
	defer srv.Close()
	tok, _ := srv.IssueToken("ck", "u1", "video.list")

	srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.VideoListPath, Count: 2, Status: http.StatusServiceUnavailable})
	for range 3 {
		req, _ := http.NewRequest(http.MethodPost, srv.BaseURL()+tiktoktest.VideoListPath+"?fields=id", strings.NewReader(`{"max_count":20}`))
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		req.Header.Set("Content-Type", "application/json; charset=UTF-8")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	last := srv.Requests()[2]
	fmt.Println(last.Header.Get("Authorization") == "Bearer "+tiktoktest.Redact(tok.AccessToken))
	// Output:
	// 503
	// 503
	// 200
	// true
}

// Signing a webhook body the way TikTok does, to test a verifier.
func ExampleSign() {
	body := []byte(`{"client_key":"ck","event":"authorization.removed","create_time":1615338610,"user_openid":"u1","content":"{\"reason\":1}"}`)
	header := tiktoktest.Sign("client-secret", 1615338610, body)
	fmt.Println(header[:len("t=1615338610,s=")], len(header))
	// Output: t=1615338610,s= 79
}

// Delivering a signed event to the app's webhook receiver.
func ExampleServer_SendWebhook() {
	srv := exampleServer()
	defer srv.Close()
	receiver := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println(strings.HasPrefix(r.Header.Get(tiktoktest.SignatureHeader), "t="))
	})
	rs := httptest.NewServer(receiver)
	defer rs.Close()

	_, err := srv.SendWebhook(context.Background(), rs.URL, tiktoktest.Event{
		ClientKey:  "ck",
		Event:      "authorization.removed",
		UserOpenID: "u1",
		Content:    `{"reason":1}`,
	})
	fmt.Println(err)
	// Output:
	// true
	// <nil>
}

package tiktoktest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
	"golang.org/x/oauth2"
)

func TestCodeFlowWithHexPKCE(t *testing.T) {
	srv := setup(t)
	verifier := oauth2.GenerateVerifier()
	authURL := authorizeURL(srv, webKey, webRedirect, "user.info.basic,user.info.stats,video.list", "csrf-42", tiktoktest.HexChallenge(verifier))

	redirect, err := srv.Consent(authURL, anaID, tiktoktest.ConsentOptions{})
	if err != nil {
		t.Fatalf("Consent returned %v", err)
	}
	if !strings.HasPrefix(redirect, webRedirect+"?") {
		t.Fatalf("Consent redirected to %s, want the registered redirect_uri", redirect)
	}
	// The code carries characters a client must URL-decode.
	if !strings.Contains(redirect, "%2A") || !strings.Contains(redirect, "%21") {
		t.Errorf("redirect %s: code has no percent-encoded characters", redirect)
	}
	q := callback(t, redirect)
	if q.Get("state") != "csrf-42" || q.Get("scopes") != "user.info.basic,user.info.stats,video.list" {
		t.Fatalf("callback query %v, want state csrf-42 and all scopes", q)
	}

	status, body := postForm(t, srv, tiktoktest.TokenPath, exchangeForm(q.Get("code"), verifier))
	if status != http.StatusOK {
		t.Fatalf("token exchange returned %d %v", status, body)
	}
	for k, want := range map[string]string{
		"open_id":            anaID,
		"scope":              "user.info.basic,user.info.stats,video.list",
		"token_type":         "Bearer",
		"expires_in":         "7200",
		"refresh_expires_in": fmt.Sprint(int64(180 * 24 * time.Hour / time.Second)),
	} {
		if got := fmt.Sprint(body[k]); got != want {
			t.Errorf("token response %s = %s, want %s", k, got, want)
		}
	}
	at, _ := body["access_token"].(string)
	rt, _ := body["refresh_token"].(string)
	if !strings.HasPrefix(at, "act.") || !strings.HasPrefix(rt, "rft.") {
		t.Errorf("tokens %q/%q lack the act./rft. prefixes", at, rt)
	}
	status, env := userInfo(t, srv, at, "open_id,display_name,follower_count")
	wantAPI(t, status, env, http.StatusOK, "ok")
	if u := data(env)["user"].(map[string]any); u["display_name"] != "Ana" || fmt.Sprint(u["follower_count"]) != "1200" {
		t.Errorf("user info returned %v", u)
	}
}

// TestXOAuth2Interop drives the base64url flavour with golang.org/x/oauth2,
// adding TikTok's client_key and comma-separated scopes by hand.
func TestXOAuth2Interop(t *testing.T) {
	srv := setup(t)
	cfg := oauth2.Config{
		ClientID:     rfcKey,
		ClientSecret: rfcSecret,
		Endpoint: oauth2.Endpoint{
			AuthURL:   srv.AuthorizeURL(),
			TokenURL:  srv.BaseURL() + tiktoktest.TokenPath,
			AuthStyle: oauth2.AuthStyleInParams,
		},
		RedirectURL: "http://127.0.0.1:53682/callback/",
	}
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("client_key", rfcKey),
		oauth2.SetAuthURLParam("scope", "user.info.basic,video.list"))

	redirect, err := srv.Consent(authURL, anaID, tiktoktest.ConsentOptions{})
	if err != nil {
		t.Fatalf("Consent returned %v", err)
	}
	if !strings.HasPrefix(redirect, "http://127.0.0.1:53682/callback/?") {
		t.Fatalf("wildcard-port redirect went to %s", redirect)
	}
	code := callback(t, redirect).Get("code")
	tok, err := cfg.Exchange(context.Background(), code, oauth2.VerifierOption(verifier),
		oauth2.SetAuthURLParam("client_key", rfcKey))
	if err != nil {
		t.Fatalf("Exchange returned %v", err)
	}
	if tok.Extra("open_id") != anaID || tok.Extra("scope") != "user.info.basic,video.list" || tok.RefreshToken == "" {
		t.Errorf("Exchange returned open_id=%v scope=%v refresh set=%v", tok.Extra("open_id"), tok.Extra("scope"), tok.RefreshToken != "")
	}
	if d := time.Until(tok.Expiry); d < time.Hour || d > 2*time.Hour {
		t.Errorf("token expires in %v, want about 2h", d)
	}

	// Without client_key TikTok does not know the client, whatever
	// client_id says.
	_, err = cfg.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_request" {
		t.Errorf("Exchange without client_key returned %v, want invalid_request", err)
	}
}

func TestWrongVerifierRejected(t *testing.T) {
	srv := setup(t)
	code, verifier := consentCode(t, srv, "user.info.basic", tiktoktest.ConsentOptions{})

	status, body := postForm(t, srv, tiktoktest.TokenPath, exchangeForm(code, oauth2.GenerateVerifier()))
	wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")

	// The code is spent: the right verifier cannot rescue it.
	status, body = postForm(t, srv, tiktoktest.TokenPath, exchangeForm(code, verifier))
	wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
}

func TestVerifierShapeAndPresence(t *testing.T) {
	srv := setup(t)
	for _, tc := range []struct {
		name     string
		verifier string
		omit     bool
		want     string
	}{
		{"missing", "", true, "invalid_request"},
		{"too short", "abc", false, "invalid_request"},
		{"bad characters", strings.Repeat("a", 42) + "+", false, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _ := consentCode(t, srv, "user.info.basic", tiktoktest.ConsentOptions{})
			f := exchangeForm(code, tc.verifier)
			if tc.omit {
				f.Del("code_verifier")
			}
			status, body := postForm(t, srv, tiktoktest.TokenPath, f)
			wantOAuthError(t, status, body, http.StatusBadRequest, tc.want)
		})
	}
}

func TestCodeReplayRejected(t *testing.T) {
	srv := setup(t)
	code, verifier := consentCode(t, srv, "user.info.basic", tiktoktest.ConsentOptions{})
	status, body := postForm(t, srv, tiktoktest.TokenPath, exchangeForm(code, verifier))
	if status != http.StatusOK {
		t.Fatalf("first exchange returned %d %v", status, body)
	}
	status, body = postForm(t, srv, tiktoktest.TokenPath, exchangeForm(code, verifier))
	wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
}

func TestCodeExpires(t *testing.T) {
	srv := setup(t)
	code, verifier := consentCode(t, srv, "user.info.basic", tiktoktest.ConsentOptions{})
	srv.Advance(tiktoktest.DefaultCodeLifetime)
	status, body := postForm(t, srv, tiktoktest.TokenPath, exchangeForm(code, verifier))
	wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")

	srv2 := setup(t, tiktoktest.WithCodeLifetime(time.Hour))
	code, verifier = consentCode(t, srv2, "user.info.basic", tiktoktest.ConsentOptions{})
	srv2.Advance(59 * time.Minute)
	if status, body := postForm(t, srv2, tiktoktest.TokenPath, exchangeForm(code, verifier)); status != http.StatusOK {
		t.Errorf("exchange within WithCodeLifetime returned %d %v", status, body)
	}
}

func TestRedirectURIMismatch(t *testing.T) {
	srv := setup(t)
	code, verifier := consentCode(t, srv, "user.info.basic", tiktoktest.ConsentOptions{})
	f := exchangeForm(code, verifier)
	f.Set("redirect_uri", "https://crm.example/callback") // no trailing slash
	status, body := postForm(t, srv, tiktoktest.TokenPath, f)
	wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_request")
	if body["error_description"] != "Redirect_uri is not matched with the uri when requesting code." {
		t.Errorf("error_description = %v, want the documented text", body["error_description"])
	}

	// An unregistered redirect_uri never gets a redirect.
	_, err := srv.Consent(authorizeURL(srv, webKey, "https://evil.example/cb/", "user.info.basic", "s", tiktoktest.HexChallenge(oauth2.GenerateVerifier())), anaID, tiktoktest.ConsentOptions{})
	var ae *tiktoktest.AuthorizeError
	if !errors.As(err, &ae) || ae.Code != "invalid_request" {
		t.Errorf("Consent with an unregistered redirect_uri returned %v, want *AuthorizeError invalid_request", err)
	}
}

func TestDeclinedScopeIsReflected(t *testing.T) {
	srv := setup(t)
	code, verifier := consentCode(t, srv, "user.info.basic,user.info.profile,video.list", tiktoktest.ConsentOptions{Decline: []string{"video.list"}})
	status, body := postForm(t, srv, tiktoktest.TokenPath, exchangeForm(code, verifier))
	if status != http.StatusOK || body["scope"] != "user.info.basic,user.info.profile" {
		t.Fatalf("exchange returned %d scope=%v, want 200 without video.list", status, body["scope"])
	}
	status, env := call(t, srv, http.MethodPost, tiktoktest.VideoListPath+"?fields=id", body["access_token"].(string), map[string]any{})
	wantAPI(t, status, env, http.StatusUnauthorized, "scope_not_authorized")

	// The callback itself lists only the granted scopes.
	verifier = oauth2.GenerateVerifier()
	redirect, err := srv.Consent(authorizeURL(srv, webKey, webRedirect, "user.info.basic,video.list", "s", tiktoktest.HexChallenge(verifier)), anaID,
		tiktoktest.ConsentOptions{Decline: []string{"video.list"}})
	if err != nil || callback(t, redirect).Get("scopes") != "user.info.basic" {
		t.Errorf("Consent returned %s, %v; want scopes=user.info.basic", redirect, err)
	}
	if _, err := srv.Consent(authorizeURL(srv, webKey, webRedirect, "user.info.basic", "s", tiktoktest.HexChallenge(verifier)), anaID,
		tiktoktest.ConsentOptions{Decline: []string{"user.info.basic"}}); err == nil {
		t.Error("declining user.info.basic succeeded, want an error")
	}
}

func TestConsentDenied(t *testing.T) {
	srv := setup(t)
	redirect, err := srv.Consent(authorizeURL(srv, webKey, webRedirect, "user.info.basic", "st-9", tiktoktest.HexChallenge(oauth2.GenerateVerifier())), anaID,
		tiktoktest.ConsentOptions{Deny: true})
	if err != nil {
		t.Fatal(err)
	}
	q := callback(t, redirect)
	if q.Get("error") != "access_denied" || q.Get("error_description") == "" || q.Get("state") != "st-9" || q.Has("code") {
		t.Errorf("denied consent redirected with %v", q)
	}
}

func TestAuthorizeRequestErrors(t *testing.T) {
	srv := setup(t)
	hex := tiktoktest.HexChallenge(oauth2.GenerateVerifier())
	good := func() url.Values {
		return url.Values{
			"client_key": {webKey}, "response_type": {"code"}, "scope": {"user.info.basic"},
			"redirect_uri": {webRedirect}, "state": {"s"}, "code_challenge": {hex}, "code_challenge_method": {"S256"},
		}
	}
	for _, tc := range []struct {
		name      string
		edit      func(url.Values)
		page      string // error shown as a page
		redirectE string // error sent to the redirect_uri
	}{
		{"unknown client", func(q url.Values) { q.Set("client_key", "nope") }, "invalid_client", ""},
		{"no redirect_uri", func(q url.Values) { q.Del("redirect_uri") }, "invalid_request", ""},
		{"no challenge", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, "invalid_request", ""},
		{"plain method", func(q url.Values) { q.Set("code_challenge_method", "plain") }, "invalid_request", ""},
		{"base64url on a hex app", func(q url.Values) {
			q.Set("code_challenge", oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()))
		}, "invalid_request", ""},
		{"response_type token", func(q url.Values) { q.Set("response_type", "token") }, "", "unsupported_response_type"},
		{"unapproved scope", func(q url.Values) { q.Set("scope", "user.info.basic,research.data.basic") }, "", "invalid_scope"},
		{"space-separated scopes", func(q url.Values) { q.Set("scope", "user.info.basic video.list") }, "", "invalid_scope"},
		{"no scope", func(q url.Values) { q.Del("scope") }, "", "invalid_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := good()
			tc.edit(q)
			redirect, err := srv.Consent(srv.AuthorizeURL()+"?"+q.Encode(), anaID, tiktoktest.ConsentOptions{})
			if tc.page != "" {
				var ae *tiktoktest.AuthorizeError
				if !errors.As(err, &ae) || ae.Code != tc.page {
					t.Fatalf("Consent returned %q, %v; want error page %s", redirect, err, tc.page)
				}
				// The HTTP endpoint shows the same as a 400 page.
				resp, err := http.Get(srv.AuthorizeURL() + "?" + q.Encode())
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), tc.page) {
					t.Errorf("GET authorize returned %d %s", resp.StatusCode, b)
				}
				return
			}
			if err != nil {
				t.Fatalf("Consent returned %v, want a redirect", err)
			}
			cq := callback(t, redirect)
			if cq.Get("error") != tc.redirectE || cq.Get("state") != "s" || cq.Has("code") {
				t.Errorf("Consent redirected with %v, want error=%s", cq, tc.redirectE)
			}
		})
	}
	if _, err := srv.Consent("https://www.tiktok.com/v2/auth/authorize/?client_key=ck-web", anaID, tiktoktest.ConsentOptions{}); err == nil {
		t.Error("Consent on the real host succeeded, want an error")
	}
	if _, err := srv.Consent(srv.AuthorizeURL()+"?"+good().Encode(), "nobody", tiktoktest.ConsentOptions{}); !errors.Is(err, tiktoktest.ErrUnknownUser) {
		t.Errorf("Consent as an unknown user returned %v, want ErrUnknownUser", err)
	}
}

func TestBrowserConsentPage(t *testing.T) {
	srv := setup(t)
	verifier := oauth2.GenerateVerifier()
	authURL := authorizeURL(srv, webKey, webRedirect, "user.info.basic,user.info.stats,video.list", "st-b", tiktoktest.HexChallenge(verifier))
	resp, err := http.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET authorize returned %d", resp.StatusCode)
	}
	for _, want := range []string{`name="state" value="st-b"`, `value="video.list"`, `value="` + anaID + `"`, `value="approve"`, `value="deny"`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("consent page lacks %s", want)
		}
	}

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	submit := func(decision string, granted ...string) url.Values {
		t.Helper()
		u, _ := url.Parse(authURL)
		form := u.Query()
		form.Set("open_id", anaID)
		form.Set("decision", decision)
		form["grant_scope"] = granted
		resp, err := noFollow.PostForm(srv.AuthorizeURL(), form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("consent form returned %d, want 302", resp.StatusCode)
		}
		loc := resp.Header.Get("Location")
		if !strings.HasPrefix(loc, webRedirect) {
			t.Fatalf("consent form redirected to %s", loc)
		}
		return callback(t, loc)
	}
	q := submit("approve", "user.info.stats")
	if q.Get("scopes") != "user.info.basic,user.info.stats" || q.Get("state") != "st-b" {
		t.Errorf("approve redirected with %v", q)
	}
	if status, body := postForm(t, srv, tiktoktest.TokenPath, exchangeForm(q.Get("code"), verifier)); status != http.StatusOK {
		t.Errorf("exchanging the browser code returned %d %v", status, body)
	}
	if q := submit("deny"); q.Get("error") != "access_denied" {
		t.Errorf("deny redirected with %v", q)
	}
}

func TestAccessTokenExpiresOnTheClock(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "user.info.basic")
	srv.Advance(tiktoktest.DefaultAccessTokenLifetime - time.Second)
	status, env := userInfo(t, srv, tok.AccessToken, "open_id")
	wantAPI(t, status, env, http.StatusOK, "ok")
	srv.Advance(time.Second)
	status, env = userInfo(t, srv, tok.AccessToken, "open_id")
	wantAPI(t, status, env, http.StatusUnauthorized, "access_token_invalid")

	// The refresh token outlives it.
	status, body := postForm(t, srv, tiktoktest.TokenPath, refreshForm(tok.RefreshToken))
	if status != http.StatusOK {
		t.Fatalf("refresh returned %d %v", status, body)
	}
	status, env = userInfo(t, srv, body["access_token"].(string), "open_id")
	wantAPI(t, status, env, http.StatusOK, "ok")
}

func TestInjectedClock(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv := setup(t, tiktoktest.WithClock(clock), tiktoktest.WithAccessTokenLifetime(24*time.Hour))
	if !srv.Now().Equal(now) {
		t.Fatalf("Now() = %v, want the injected %v", srv.Now(), now)
	}
	tok := issue(t, srv, anaID, "user.info.basic")
	if tok.ExpiresIn != 86400 {
		t.Errorf("expires_in = %d, want 86400", tok.ExpiresIn)
	}
	mu.Lock()
	now = now.Add(24 * time.Hour)
	mu.Unlock()
	status, env := userInfo(t, srv, tok.AccessToken, "open_id")
	wantAPI(t, status, env, http.StatusUnauthorized, "access_token_invalid")
}

func TestRefreshRotationSingleUse(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "user.info.basic", "video.list")
	status, body := postForm(t, srv, tiktoktest.TokenPath, refreshForm(tok.RefreshToken))
	if status != http.StatusOK {
		t.Fatalf("refresh returned %d %v", status, body)
	}
	newRT, newAT := body["refresh_token"].(string), body["access_token"].(string)
	if newRT == tok.RefreshToken || newAT == tok.AccessToken {
		t.Fatalf("refresh did not rotate: same tokens returned")
	}
	if body["scope"] != "user.info.basic,video.list" || body["open_id"] != anaID || fmt.Sprint(body["refresh_expires_in"]) != "15552000" {
		t.Errorf("refresh response %v", body)
	}
	// The old refresh token is dead, the new one lives.
	status, body = postForm(t, srv, tiktoktest.TokenPath, refreshForm(tok.RefreshToken))
	wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
	if status, body := postForm(t, srv, tiktoktest.TokenPath, refreshForm(newRT)); status != http.StatusOK {
		t.Errorf("refresh with the rotated token returned %d %v", status, body)
	}
	// Access tokens issued before keep working until they expire.
	for _, at := range []string{tok.AccessToken, newAT} {
		status, env := userInfo(t, srv, at, "open_id")
		wantAPI(t, status, env, http.StatusOK, "ok")
	}
}

func TestConcurrentRefreshOneWins(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "user.info.basic")
	const n = 8
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			resp, err := http.Post(srv.BaseURL()+tiktoktest.TokenPath, "application/x-www-form-urlencoded", strings.NewReader(refreshForm(tok.RefreshToken).Encode()))
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		switch s {
		case http.StatusOK:
			ok++
		case http.StatusBadRequest:
		default:
			t.Errorf("a racing refresh returned %d", s)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d racing refreshes succeeded, want exactly 1 (statuses %v)", ok, n, statuses)
	}
}

func TestRotationModes(t *testing.T) {
	t.Run("reusable", func(t *testing.T) {
		srv := setup(t, tiktoktest.WithRotation(tiktoktest.RotateReusable))
		tok := issue(t, srv, anaID, "user.info.basic")
		_, first := postForm(t, srv, tiktoktest.TokenPath, refreshForm(tok.RefreshToken))
		if first["refresh_token"] == tok.RefreshToken {
			t.Error("reusable mode returned the same refresh token")
		}
		if status, body := postForm(t, srv, tiktoktest.TokenPath, refreshForm(tok.RefreshToken)); status != http.StatusOK {
			t.Errorf("reusing a refresh token in reusable mode returned %d %v", status, body)
		}
	})
	t.Run("never", func(t *testing.T) {
		srv := setup(t, tiktoktest.WithRotation(tiktoktest.RotateNever))
		tok := issue(t, srv, anaID, "user.info.basic")
		srv.Advance(24 * time.Hour)
		_, body := postForm(t, srv, tiktoktest.TokenPath, refreshForm(tok.RefreshToken))
		if body["refresh_token"] != tok.RefreshToken {
			t.Error("never mode rotated the refresh token")
		}
		if got, want := fmt.Sprint(body["refresh_expires_in"]), fmt.Sprint(tok.RefreshExpiresIn-86400); got != want {
			t.Errorf("refresh_expires_in = %s, want the remaining %s", got, want)
		}
	})
	if _, err := tiktoktest.New(tiktoktest.WithRotation(tiktoktest.Rotation(9))); err == nil {
		t.Error("WithRotation(9) was accepted")
	}
}

func TestRefreshTokenExpires(t *testing.T) {
	srv := setup(t, tiktoktest.WithRefreshTokenLifetime(48*time.Hour))
	tok := issue(t, srv, anaID, "user.info.basic")
	if tok.RefreshExpiresIn != 172800 {
		t.Errorf("refresh_expires_in = %d, want 172800", tok.RefreshExpiresIn)
	}
	srv.Advance(48 * time.Hour)
	status, body := postForm(t, srv, tiktoktest.TokenPath, refreshForm(tok.RefreshToken))
	wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")
}

func TestTokenEndpointChecks(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "user.info.basic")

	resp, err := http.Get(srv.BaseURL() + tiktoktest.TokenPath)
	if err != nil {
		t.Fatal(err)
	}
	status, body := decode(t, resp)
	if status != http.StatusMethodNotAllowed || body["error"] != "invalid_request" {
		t.Errorf("GET token returned %d %v", status, body)
	}

	resp, err = http.Post(srv.BaseURL()+tiktoktest.TokenPath, "application/json", strings.NewReader(`{"grant_type":"refresh_token"}`))
	if err != nil {
		t.Fatal(err)
	}
	status, body = decode(t, resp)
	wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_request")

	f := refreshForm(tok.RefreshToken)
	f.Set("client_secret", "wrong-secret-value")
	status, body = postForm(t, srv, tiktoktest.TokenPath, f)
	wantOAuthError(t, status, body, http.StatusUnauthorized, "invalid_client")
	if strings.Contains(fmt.Sprint(body), "wrong-secret-value") || strings.Contains(fmt.Sprint(body), tok.RefreshToken) {
		t.Errorf("error %v echoes a secret", body)
	}

	f = refreshForm(tok.RefreshToken)
	f.Set("client_id", f.Get("client_key"))
	f.Del("client_key")
	status, body = postForm(t, srv, tiktoktest.TokenPath, f)
	wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_request")

	f = refreshForm(tok.RefreshToken)
	f.Set("grant_type", "password")
	status, body = postForm(t, srv, tiktoktest.TokenPath, f)
	wantOAuthError(t, status, body, http.StatusBadRequest, "unsupported_grant_type")

	status, body = postForm(t, srv, tiktoktest.TokenPath, url.Values{"client_key": {webKey}, "client_secret": {webSecret}, "grant_type": {"client_credentials"}})
	if status != http.StatusOK || !strings.HasPrefix(fmt.Sprint(body["access_token"]), "clt.") || fmt.Sprint(body["expires_in"]) != "7200" {
		t.Errorf("client_credentials returned %d %v", status, body)
	}
	status, env := userInfo(t, srv, body["access_token"].(string), "open_id")
	wantAPI(t, status, env, http.StatusUnauthorized, "access_token_invalid")
}

func TestOAuthErrorStatusOption(t *testing.T) {
	srv := setup(t, tiktoktest.WithOAuthErrorStatus(http.StatusOK))
	status, body := postForm(t, srv, tiktoktest.TokenPath, refreshForm("rft.unknown"))
	wantOAuthError(t, status, body, http.StatusOK, "invalid_grant")
	if _, err := tiktoktest.New(tiktoktest.WithOAuthErrorStatus(42)); err == nil {
		t.Error("WithOAuthErrorStatus(42) was accepted")
	}
}

func TestRevoke(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "user.info.basic")
	other := issue(t, srv, anaID, "video.list") // a second grant of the same user
	revoke := url.Values{"client_key": {webKey}, "client_secret": {webSecret}, "token": {tok.AccessToken}}

	status, body := postForm(t, srv, tiktoktest.RevokePath, revoke)
	if status != http.StatusOK || len(body) != 0 {
		t.Fatalf("revoke returned %d %v, want 200 {}", status, body)
	}
	for _, at := range []string{tok.AccessToken, other.AccessToken} {
		status, env := userInfo(t, srv, at, "open_id")
		wantAPI(t, status, env, http.StatusUnauthorized, "access_token_invalid")
	}
	status, body = postForm(t, srv, tiktoktest.TokenPath, refreshForm(tok.RefreshToken))
	wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_grant")

	// Revoking again, or an unknown token, is harmless.
	if status, body := postForm(t, srv, tiktoktest.RevokePath, revoke); status != http.StatusOK {
		t.Errorf("second revoke returned %d %v", status, body)
	}
	revoke.Set("client_secret", "bad")
	status, body = postForm(t, srv, tiktoktest.RevokePath, revoke)
	wantOAuthError(t, status, body, http.StatusUnauthorized, "invalid_client")
	revoke.Set("client_secret", webSecret)
	revoke.Del("token")
	status, body = postForm(t, srv, tiktoktest.RevokePath, revoke)
	wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_request")

	// A new authorization after the revoke works.
	fresh := issue(t, srv, anaID, "user.info.basic")
	status, env := userInfo(t, srv, fresh.AccessToken, "open_id")
	wantAPI(t, status, env, http.StatusOK, "ok")

	// Another app cannot revoke ck-web's token.
	rfcTok, err := srv.IssueToken(rfcKey, anaID, "user.info.basic")
	if err != nil {
		t.Fatal(err)
	}
	status, body = postForm(t, srv, tiktoktest.RevokePath, url.Values{"client_key": {webKey}, "client_secret": {webSecret}, "token": {rfcTok.AccessToken}})
	wantOAuthError(t, status, body, http.StatusBadRequest, "invalid_request")
}

func TestRegistrationRules(t *testing.T) {
	app := func(edit func(*tiktoktest.App)) tiktoktest.App {
		a := tiktoktest.App{ClientKey: "k", ClientSecret: "s", RedirectURIs: []string{"https://a.example/cb/"}, Scopes: []string{"user.info.basic"}}
		edit(&a)
		return a
	}
	for _, tc := range []struct {
		name string
		app  tiktoktest.App
		ok   bool
	}{
		{"web https", app(func(*tiktoktest.App) {}), true},
		{"desktop wildcard port", app(func(a *tiktoktest.App) { a.RedirectURIs = []string{"http://127.0.0.1:*/callback/"} }), true},
		{"desktop fixed port", app(func(a *tiktoktest.App) { a.RedirectURIs = []string{"http://localhost:3455/callback/"} }), true},
		{"http on a public host", app(func(a *tiktoktest.App) { a.RedirectURIs = []string{"http://a.example/cb/"} }), false},
		{"loopback without port", app(func(a *tiktoktest.App) { a.RedirectURIs = []string{"http://127.0.0.1/cb/"} }), false},
		{"query string", app(func(a *tiktoktest.App) { a.RedirectURIs = []string{"https://a.example/cb/?id=1"} }), false},
		{"fragment", app(func(a *tiktoktest.App) { a.RedirectURIs = []string{"https://a.example/cb/#100"} }), false},
		{"relative", app(func(a *tiktoktest.App) { a.RedirectURIs = []string{"a.example/cb/"} }), false},
		{"too long", app(func(a *tiktoktest.App) { a.RedirectURIs = []string{"https://a.example/" + strings.Repeat("x", 500)} }), false},
		{"eleven URIs", app(func(a *tiktoktest.App) {
			for i := range 10 {
				a.RedirectURIs = append(a.RedirectURIs, fmt.Sprintf("https://a.example/cb%d/", i))
			}
		}), false},
		{"unknown scope", app(func(a *tiktoktest.App) { a.Scopes = []string{"user.info.username"} }), false},
		{"no secret", app(func(a *tiktoktest.App) { a.ClientSecret = "" }), false},
		{"bad prefix", app(func(a *tiktoktest.App) { a.VerifiedURLPrefixes = []string{"http://a.example/v/"} }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tiktoktest.New(tiktoktest.WithApp(tc.app))
			if (err == nil) != tc.ok {
				t.Errorf("New(WithApp) returned %v, want ok=%v", err, tc.ok)
			}
		})
	}
	srv := setup(t)
	if err := srv.AddApp(tiktoktest.App{ClientKey: webKey, ClientSecret: "x", RedirectURIs: []string{webRedirect}, Scopes: []string{"video.list"}}); err == nil {
		t.Error("a duplicate client key was accepted")
	}
	for _, bad := range []tiktoktest.Option{
		tiktoktest.WithClock(nil), tiktoktest.WithAccessTokenLifetime(0), tiktoktest.WithRefreshTokenLifetime(-time.Hour),
		tiktoktest.WithCodeLifetime(0), tiktoktest.WithRateLimit("", 1, time.Minute), tiktoktest.WithWebhookClient(nil),
		tiktoktest.WithUser(tiktoktest.User{}), tiktoktest.WithUser(tiktoktest.User{OpenID: "x", PostingError: "nope"}),
		tiktoktest.WithUser(tiktoktest.User{OpenID: "x", Videos: []tiktoktest.Video{{ID: "1"}}}),
	} {
		if s, err := tiktoktest.New(bad); err == nil {
			s.Close()
			t.Error("an invalid option was accepted")
		}
	}
}

func TestTokenStringRedacts(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "user.info.basic")
	for _, s := range []string{tok.String(), fmt.Sprintf("%v %+v %#v", tok, tok, tok)} {
		if strings.Contains(s, tok.AccessToken) || strings.Contains(s, tok.RefreshToken) {
			t.Errorf("printed token %q shows a secret", s)
		}
	}
	if !strings.Contains(tok.String(), tiktoktest.Redact(tok.AccessToken)) {
		t.Errorf("Token.String() = %q, want the redacted access token", tok.String())
	}
}

func TestIssueTokenChecks(t *testing.T) {
	srv := setup(t)
	if _, err := srv.IssueToken("nope", anaID, "user.info.basic"); !errors.Is(err, tiktoktest.ErrUnknownApp) {
		t.Errorf("IssueToken for an unknown app returned %v", err)
	}
	if _, err := srv.IssueToken(webKey, "nobody", "user.info.basic"); !errors.Is(err, tiktoktest.ErrUnknownUser) {
		t.Errorf("IssueToken for an unknown user returned %v", err)
	}
	if _, err := srv.IssueToken(rfcKey, anaID, "video.publish"); err == nil {
		t.Error("IssueToken with a scope the app is not approved for succeeded")
	}
	if _, err := srv.IssueToken(webKey, anaID); err == nil {
		t.Error("IssueToken without scopes succeeded")
	}
	tok := issue(t, srv, anaID, "video.list", "user.info.basic", "video.list")
	if tok.Scope != "video.list,user.info.basic" {
		t.Errorf("scope = %q, want duplicates dropped", tok.Scope)
	}
}

package tiktoktest_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

func TestInjectFault(t *testing.T) {
	srv := setup(t)
	tok := issue(t, srv, anaID, "user.info.basic", "video.publish")

	srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.UserInfoPath, Count: 2, Status: http.StatusServiceUnavailable})
	for range 2 {
		status, env := userInfo(t, srv, tok.AccessToken, "open_id")
		wantAPI(t, status, env, http.StatusServiceUnavailable, "internal_error")
	}
	status, env := userInfo(t, srv, tok.AccessToken, "open_id")
	wantAPI(t, status, env, http.StatusOK, "ok")

	// A fault comes before any other check, even authentication.
	srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.UserInfoPath, Status: http.StatusTooManyRequests})
	status, env = userInfo(t, srv, "", "open_id")
	wantAPI(t, status, env, http.StatusTooManyRequests, "rate_limit_exceeded")

	srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.CreatorInfoPath, Status: http.StatusForbidden, Code: "reached_active_user_cap", Message: "cap"})
	status, env = call(t, srv, http.MethodPost, tiktoktest.CreatorInfoPath, tok.AccessToken, nil)
	wantAPI(t, status, env, http.StatusForbidden, "reached_active_user_cap")

	// OAuth endpoints fail in the flat OAuth shape.
	srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.TokenPath, Status: http.StatusServiceUnavailable})
	s, body := postForm(t, srv, tiktoktest.TokenPath, refreshForm(tok.RefreshToken))
	wantOAuthError(t, s, body, http.StatusServiceUnavailable, "temporarily_unavailable")
	srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.TokenPath})
	s, body = postForm(t, srv, tiktoktest.TokenPath, refreshForm(tok.RefreshToken))
	wantOAuthError(t, s, body, http.StatusInternalServerError, "server_error")
	// The faulted requests did not consume the refresh token.
	if s, body := postForm(t, srv, tiktoktest.TokenPath, refreshForm(tok.RefreshToken)); s != http.StatusOK {
		t.Errorf("refresh after the faults returned %d %v", s, body)
	}

	// The upload host answers with a bare status; the chunk is not taken.
	_, uploadURL := initPost(t, srv, tiktoktest.VideoInitPath, tok.AccessToken, directBody("SELF_ONLY", fileSource(10, 10, 1)))
	srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.UploadPath, Status: http.StatusBadGateway})
	if resp := put(t, uploadURL, "video/mp4", "bytes 0-9/10", make([]byte, 10)); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("faulted PUT returned %d, want 502", resp.StatusCode)
	}
	if resp := put(t, uploadURL, "video/mp4", "bytes 0-9/10", make([]byte, 10)); resp.StatusCode != http.StatusCreated {
		t.Errorf("retried PUT returned %d, want 201", resp.StatusCode)
	}

	srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.UserInfoPath, Count: 5})
	srv.ClearFaults()
	status, env = userInfo(t, srv, tok.AccessToken, "open_id")
	wantAPI(t, status, env, http.StatusOK, "ok")

	var faulted int
	for _, r := range srv.RequestsTo(tiktoktest.UserInfoPath) {
		if r.Status != http.StatusOK {
			faulted++
		}
	}
	if faulted != 3 {
		t.Errorf("the log shows %d faulted user info requests, want 3", faulted)
	}
}

func TestRateLimits(t *testing.T) {
	srv := setup(t, tiktoktest.WithRateLimit(tiktoktest.UserInfoPath, 2, time.Minute))
	a := issue(t, srv, anaID, "user.info.basic")
	b := issue(t, srv, anaID, "user.info.basic")
	for range 2 {
		status, env := userInfo(t, srv, a.AccessToken, "open_id")
		wantAPI(t, status, env, http.StatusOK, "ok")
	}
	status, env := userInfo(t, srv, a.AccessToken, "open_id")
	wantAPI(t, status, env, http.StatusTooManyRequests, "rate_limit_exceeded")
	// The limit is per access token.
	status, env = userInfo(t, srv, b.AccessToken, "open_id")
	wantAPI(t, status, env, http.StatusOK, "ok")
	// The window slides on the server clock.
	srv.Advance(time.Minute)
	status, env = userInfo(t, srv, a.AccessToken, "open_id")
	wantAPI(t, status, env, http.StatusOK, "ok")

	doc := setup(t, tiktoktest.WithDocumentedRateLimits())
	tok, _ := doc.IssueToken(webKey, anaID, "video.publish")
	for range 6 {
		initPost(t, doc, tiktoktest.VideoInitPath, tok.AccessToken, directBody("SELF_ONLY", fileSource(10, 10, 1)))
	}
	status, env = call(t, doc, http.MethodPost, tiktoktest.VideoInitPath, tok.AccessToken, directBody("SELF_ONLY", fileSource(10, 10, 1)))
	wantAPI(t, status, env, http.StatusTooManyRequests, "rate_limit_exceeded")
}

func TestRequestLogRedactsSecrets(t *testing.T) {
	var logBuf bytes.Buffer
	srv := setup(t, tiktoktest.WithLogger(slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if n := len(srv.Requests()); n != 0 {
		t.Fatalf("a fresh server logged %d requests", n)
	}
	code, verifier := consentCode(t, srv, "user.info.basic,video.publish", tiktoktest.ConsentOptions{})
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("a programmatic consent logged %d requests, want none", n)
	}
	_, body := postForm(t, srv, tiktoktest.TokenPath, exchangeForm(code, verifier))
	at, rt := body["access_token"].(string), body["refresh_token"].(string)
	userInfo(t, srv, at, "open_id")
	_, uploadURL := initPost(t, srv, tiktoktest.VideoInitPath, at, directBody("SELF_ONLY", fileSource(10, 10, 1)))
	put(t, uploadURL, "video/mp4", "bytes 0-9/10", []byte("0123456789"))
	postForm(t, srv, tiktoktest.TokenPath, refreshForm(rt))
	postForm(t, srv, tiktoktest.RevokePath, map[string][]string{"client_key": {webKey}, "client_secret": {webSecret}, "token": {at}})

	reqs := srv.Requests()
	if len(reqs) != 6 {
		t.Fatalf("logged %d requests, want 6", len(reqs))
	}
	uploadToken := uploadURL[strings.Index(uploadURL, "upload_token=")+len("upload_token="):]
	dump := fmt.Sprintf("%+v", reqs) + logBuf.String()
	for name, secret := range map[string]string{"client secret": webSecret, "code": code, "verifier": verifier, "access token": at, "refresh token": rt, "upload token": uploadToken} {
		if strings.Contains(dump, secret) {
			t.Errorf("the request log or slog output contains the %s", name)
		}
	}

	ex := reqs[0]
	if ex.Method != http.MethodPost || ex.Path != tiktoktest.TokenPath || ex.Status != http.StatusOK {
		t.Errorf("first entry = %s %s %d", ex.Method, ex.Path, ex.Status)
	}
	if ex.Form.Get("client_key") != webKey || ex.Form.Get("grant_type") != "authorization_code" || ex.Form.Get("redirect_uri") != webRedirect {
		t.Errorf("exchange form = %v, want the non-secret fields in clear", ex.Form)
	}
	for field, secret := range map[string]string{"client_secret": webSecret, "code": code, "code_verifier": verifier} {
		if ex.Form.Get(field) != tiktoktest.Redact(secret) {
			t.Errorf("form %s = %q, want Redact(secret)", field, ex.Form.Get(field))
		}
	}
	if got := reqs[1].Header.Get("Authorization"); got != "Bearer "+tiktoktest.Redact(at) {
		t.Errorf("Authorization logged as %q", got)
	}
	if reqs[1].Query.Get("fields") != "open_id" {
		t.Errorf("user info query logged as %v", reqs[1].Query)
	}
	if !strings.Contains(string(reqs[2].Body), `"privacy_level":"SELF_ONLY"`) {
		t.Errorf("init body logged as %s", reqs[2].Body)
	}
	if up := reqs[3]; up.Path != tiktoktest.UploadPath || up.Body != nil || up.BodySize != 10 || up.Query.Get("upload_token") != tiktoktest.Redact(uploadToken) {
		t.Errorf("upload logged as %+v", up)
	}
	if !strings.Contains(logBuf.String(), tiktoktest.UserInfoPath) {
		t.Errorf("slog output lacks the requests: %s", logBuf.String())
	}

	srv.ClearRequests()
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("after ClearRequests %d requests remain", n)
	}
}

func TestUnknownPath(t *testing.T) {
	srv := setup(t)
	status, env := call(t, srv, http.MethodGet, "/v2/research/video/query/", "", nil)
	wantAPI(t, status, env, http.StatusNotFound, "invalid_params")
}

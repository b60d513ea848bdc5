package metatest

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Path prefixes under which the emulator serves Meta's other hosts.
const (
	igGraphPrefix = "/graph.instagram.com"
	igLoginPrefix = "/api.instagram.com"
	uploadPrefix  = "/rupload.facebook.com"
)

// host is which of Meta's hosts a request reached.
type host int

const (
	hostFacebook host = iota // graph.facebook.com (and the Login dialog)
	hostIGGraph              // graph.instagram.com
	hostIGLogin              // api.instagram.com
	hostUpload               // rupload.facebook.com
)

// hostOf splits the host prefix off an emulator path.
func hostOf(p string) (host, string) {
	for _, h := range []struct {
		prefix string
		h      host
	}{{igGraphPrefix, hostIGGraph}, {igLoginPrefix, hostIGLogin}, {uploadPrefix, hostUpload}} {
		if rest, ok := strings.CutPrefix(p, h.prefix); ok && (rest == "" || rest[0] == '/') {
			return h.h, rest
		}
	}
	return hostFacebook, p
}

// hostName names the Meta host an emulator path stands for.
func hostName(p string) string {
	h, _ := hostOf(p)
	return [...]string{"graph.facebook.com", "graph.instagram.com", "api.instagram.com", "rupload.facebook.com"}[h]
}

// InstagramGraphURL replaces https://graph.instagram.com, the host of the
// Instagram API with Instagram Login, without a trailing slash or version.
func (s *Server) InstagramGraphURL() string { return s.ts.URL + igGraphPrefix }

// InstagramLoginURL replaces https://api.instagram.com, the host of Business
// Login for Instagram's authorization window and code exchange.
func (s *Server) InstagramLoginURL() string { return s.ts.URL + igLoginPrefix }

// UploadURL replaces https://rupload.facebook.com, the host of resumable
// video uploads.
func (s *Server) UploadURL() string { return s.ts.URL + uploadPrefix }

// kindInstagram marks an Instagram User access token of Instagram Login.
const kindInstagram tokenKind = 10

// instagramScopes are the scopes Business Login for Instagram knows, and
// the Facebook Login permission each stands for in the emulator's checks.
var instagramScopes = map[string]string{
	"instagram_business_basic":           "instagram_basic",
	"instagram_business_content_publish": "instagram_content_publish",
	"instagram_business_manage_insights": "instagram_manage_insights",
	"instagram_business_manage_comments": "instagram_manage_comments",
	"instagram_business_manage_messages": "instagram_manage_messages",
}

// igState is what Instagram Login, demographics, uploads and comments
// add to the emulator; guarded by Server.mu.
type igState struct {
	codes     map[string]*igCode
	tokens    map[string]*igToken
	installed map[[2]string]int // (app, account) -> grant generation; absent: not installed
	// demographics: account -> metric -> breakdown -> value by key
	demographics map[string]map[string]map[string]map[string]int
	uploads      map[string]*upload
	uploadDrops  []int64
	drops        []*answerDrop
	comments     map[string]*comment
	commentOrder []string
}

func newIGState() *igState {
	return &igState{
		codes: map[string]*igCode{}, tokens: map[string]*igToken{}, installed: map[[2]string]int{},
		demographics: map[string]map[string]map[string]map[string]int{}, uploads: map[string]*upload{},
		comments: map[string]*comment{},
	}
}

type igCode struct {
	appID, igID, redirectURI string
	scopes                   []string
	expires                  time.Time
	used                     bool
}

type igToken struct {
	value, appID, igID string
	scopes             []string
	issued, expires    time.Time
	longLived          bool
	gen                int
}

// InstagramConsent is what the creator does in Instagram's authorization
// window.
type InstagramConsent struct {
	// AccountID is the Instagram professional account that logs in
	// (registered with AddInstagramAccount; it needs no Page).
	AccountID string
	// Decline lists requested scopes the creator unticks.
	Decline []string
	// Deny cancels the login: the redirect carries error=access_denied.
	Deny bool
}

// InstagramConsent simulates the creator in the authorization window that
// authURL (InstagramLoginURL()/oauth/authorize?…) opens, and returns the
// redirect to the app: ?code=…&state=… with "#_" appended as Instagram
// does, or the error parameters. A malformed request (unknown app, a
// redirect_uri not registered exactly, response_type other than code, no
// instagram_business_basic in scope, an unknown scope) is an error: the
// window would show an error page and redirect nowhere.
func (s *Server) InstagramConsent(authURL string, c InstagramConsent) (*url.URL, error) {
	u, err := url.Parse(authURL)
	if err != nil {
		return nil, invalid("InstagramConsent: %v", err)
	}
	h, p := hostOf(u.Path)
	if h != hostIGLogin || p != "/oauth/authorize" {
		return nil, invalid("InstagramConsent: %s is not the emulator's authorization window", u.Path)
	}
	q := u.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[q.Get("client_id")]
	if a == nil {
		return nil, invalid("InstagramConsent: invalid client_id %q", q.Get("client_id"))
	}
	redirect := q.Get("redirect_uri")
	if !slices.Contains(a.RedirectURIs, redirect) {
		return nil, invalid("InstagramConsent: redirect_uri %q is not a valid OAuth redirect URI of the app", redirect)
	}
	if q.Get("response_type") != "code" {
		return nil, invalid("InstagramConsent: response_type must be code")
	}
	var scopes []string
	for _, sc := range strings.FieldsFunc(q.Get("scope"), func(r rune) bool { return r == ',' || r == ' ' }) {
		if _, ok := instagramScopes[sc]; !ok {
			return nil, invalid("InstagramConsent: invalid scope %q", sc)
		}
		scopes = append(scopes, sc)
	}
	if !slices.Contains(scopes, "instagram_business_basic") {
		return nil, invalid("InstagramConsent: scope must include instagram_business_basic")
	}
	if s.igAccounts[c.AccountID] == nil {
		return nil, fmt.Errorf("metatest: InstagramConsent: account %q: %w", c.AccountID, ErrNotFound)
	}
	back, err := url.Parse(redirect)
	if err != nil {
		return nil, invalid("InstagramConsent: redirect_uri: %v", err)
	}
	rq := back.Query()
	if st := q.Get("state"); st != "" {
		rq.Set("state", st)
	}
	if c.Deny {
		rq.Set("error", "access_denied")
		rq.Set("error_reason", "user_denied")
		rq.Set("error_description", "The user denied your request.")
		back.RawQuery = rq.Encode()
		return back, nil
	}
	var granted []string
	for _, sc := range scopes {
		if !slices.Contains(c.Decline, sc) || sc == "instagram_business_basic" {
			granted = append(granted, sc)
		}
	}
	code := randomString("AQ")
	s.ig.codes[code] = &igCode{appID: a.ID, igID: c.AccountID, redirectURI: redirect, scopes: granted,
		expires: s.nowLocked().Add(s.cfg.codeTTL)}
	key := [2]string{a.ID, c.AccountID}
	if _, ok := s.ig.installed[key]; !ok {
		s.ig.installed[key] = 1
	}
	rq.Set("code", code)
	back.RawQuery = rq.Encode()
	back.Fragment = "_"
	return back, nil
}

// igOAuthError is api.instagram.com's error answer.
func igOAuthError(msg string) result {
	return result{status: http.StatusBadRequest, body: map[string]any{
		"error_type": "OAuthException", "code": http.StatusBadRequest, "error_message": msg}}
}

// handleIGCode serves POST api.instagram.com/oauth/access_token.
func (s *Server) handleIGCode(c *call) result {
	if c.method != http.MethodPost {
		return igOAuthError("Invalid request: request method must be POST")
	}
	a := s.apps[c.param("client_id")]
	if a == nil {
		return igOAuthError("Invalid platform app")
	}
	if c.param("client_secret") != a.Secret {
		return igOAuthError("Invalid Client Secret")
	}
	if c.param("grant_type") != "authorization_code" {
		return igOAuthError("Invalid grant_type")
	}
	code := s.ig.codes[c.param("code")]
	now := s.nowLocked()
	switch {
	case code == nil || code.appID != a.ID:
		return igOAuthError("Invalid authorization code")
	case code.used:
		return igOAuthError("This authorization code has been used")
	case !now.Before(code.expires):
		return igOAuthError("This authorization code has expired")
	case code.redirectURI != c.param("redirect_uri"):
		return igOAuthError("Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request")
	}
	code.used = true
	t := s.issueIGToken(a.ID, code.igID, code.scopes, false)
	return ok(map[string]any{"data": []map[string]any{{
		"access_token": t.value, "user_id": code.igID, "permissions": strings.Join(code.scopes, ","),
	}}})
}

func (s *Server) issueIGToken(appID, igID string, scopes []string, long bool) *igToken {
	now := s.nowLocked()
	t := &igToken{value: randomString("IGAA"), appID: appID, igID: igID, scopes: slices.Clone(scopes), issued: now,
		longLived: long, gen: s.ig.installed[[2]string{appID, igID}]}
	if long {
		t.expires = now.Add(s.cfg.longTTL)
	} else {
		t.expires = now.Add(s.cfg.shortTTL)
	}
	s.ig.tokens[t.value] = t
	return t
}

// igTokenProblem reports why an Instagram Login token does not work.
func (s *Server) igTokenProblem(t *igToken) *graphError {
	if gen, ok := s.ig.installed[[2]string{t.appID, t.igID}]; !ok || gen != t.gen {
		return errNotAuthorized(t.appID)
	}
	if now := s.nowLocked(); !now.Before(t.expires) {
		return errExpired(t.expires, now)
	}
	return nil
}

// handleIGToken serves graph.instagram.com's /access_token
// (ig_exchange_token) and /refresh_access_token (ig_refresh_token).
func (s *Server) handleIGToken(c *call, rest string) result {
	if c.method != http.MethodGet {
		return fail(errNoObject(strings.ToLower(c.method), strings.TrimPrefix(rest, "/")))
	}
	t := s.ig.tokens[c.param("access_token")]
	if t == nil {
		return fail(errBadToken())
	}
	if gerr := s.igTokenProblem(t); gerr != nil {
		return fail(gerr)
	}
	now := s.nowLocked()
	var nt *igToken
	switch rest {
	case "/access_token":
		if c.param("grant_type") != "ig_exchange_token" {
			return fail(errParam("(#100) grant_type must be ig_exchange_token"))
		}
		if c.param("client_secret") != s.apps[t.appID].Secret {
			return fail(newErr(typeOAuth, 1, 0, "Error validating client secret."))
		}
		if t.longLived {
			return fail(errParam("(#100) The access token is already long-lived; refresh it with /refresh_access_token"))
		}
		nt = s.issueIGToken(t.appID, t.igID, t.scopes, true)
	default:
		if c.param("grant_type") != "ig_refresh_token" {
			return fail(errParam("(#100) grant_type must be ig_refresh_token"))
		}
		if !t.longLived {
			return fail(errParam("(#100) Only long-lived access tokens can be refreshed"))
		}
		if now.Sub(t.issued) < 24*time.Hour {
			return fail(errParam("(#100) The access token must be at least 24 hours old to be refreshed"))
		}
		nt = s.issueIGToken(t.appID, t.igID, t.scopes, true)
	}
	return ok(map[string]any{"access_token": nt.value, "token_type": "bearer",
		"expires_in": int64(nt.expires.Sub(now) / time.Second)})
}

// InstagramToken issues an Instagram Login token for the account, as if
// the creator had logged in granting scopes (and, for LongLived,
// exchanged it).
func (s *Server) InstagramToken(appID, igID string, lt Lifetime, scopes ...string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.apps[appID] == nil {
		return "", fmt.Errorf("metatest: InstagramToken: app %q: %w", appID, ErrNotFound)
	}
	if s.igAccounts[igID] == nil {
		return "", fmt.Errorf("metatest: InstagramToken: account %q: %w", igID, ErrNotFound)
	}
	for _, sc := range scopes {
		if _, ok := instagramScopes[sc]; !ok {
			return "", invalid("InstagramToken: scope %q", sc)
		}
	}
	key := [2]string{appID, igID}
	if _, ok := s.ig.installed[key]; !ok {
		s.ig.installed[key] = 1
	}
	return s.issueIGToken(appID, igID, scopes, lt == LongLived).value, nil
}

// DeauthorizeInstagram simulates the creator removing the app in
// Instagram's settings: the app's Instagram Login tokens for the account
// fail with code 190, subcode 458, and, when callbackURL is not empty, the
// app's Instagram deauthorize callback is POSTed a signed_request naming
// the account. A non-2xx answer is a *CallbackError.
func (s *Server) DeauthorizeInstagram(ctx context.Context, appID, igID, callbackURL string) error {
	s.mu.Lock()
	if s.apps[appID] == nil {
		s.mu.Unlock()
		return fmt.Errorf("metatest: DeauthorizeInstagram: app %q: %w", appID, ErrNotFound)
	}
	key := [2]string{appID, igID}
	if gen, ok := s.ig.installed[key]; ok {
		s.ig.installed[key] = gen + 1
	}
	s.mu.Unlock()
	if callbackURL == "" {
		return nil
	}
	resp, _, err := s.postSignedRequest(ctx, "deauthorize", appID, igID, callbackURL)
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &CallbackError{Kind: "deauthorize", URL: callbackURL, StatusCode: resp.StatusCode, Reason: "not acknowledged"}
	}
	return nil
}

// authenticateInstagram authenticates a graph.instagram.com call: only
// Instagram Login tokens are valid there (and only there). The token is
// presented to the shared routes as one acting for the account with the
// Facebook Login names of its scopes.
func (s *Server) authenticateInstagram(c *call, raw string) *graphError {
	t := s.ig.tokens[raw]
	if t == nil {
		return errBadToken()
	}
	if gerr := s.igTokenProblem(t); gerr != nil {
		return gerr
	}
	perms := map[string]string{"pages_read_engagement": "granted"}
	for _, sc := range t.scopes {
		perms[instagramScopes[sc]] = "granted"
	}
	c.tok = &token{value: t.value, kind: kindInstagram, appID: t.appID, userID: t.igID, issued: t.issued, expires: t.expires, longLived: t.longLived}
	c.app = s.apps[t.appID]
	c.grant = &grant{perms: perms, installed: true}
	return s.checkProof(c)
}

// igUserNode is the account as graph.instagram.com's /me shows it.
func (s *Server) igUserNode(a *InstagramAccount) map[string]any {
	node := s.igNode(a)
	node["user_id"] = a.ID
	node["account_type"] = "BUSINESS"
	return node
}

var igLoginUserFields = append(slices.Clone(igUserFields), "user_id", "account_type")

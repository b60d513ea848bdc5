package tiktoktest

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Token is the flat JSON body of a successful token response. Its String
// and GoString methods redact the secrets, so printing one is safe.
type Token struct {
	AccessToken      string `json:"access_token"`
	ExpiresIn        int64  `json:"expires_in"`
	OpenID           string `json:"open_id"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
	RefreshToken     string `json:"refresh_token"`
	Scope            string `json:"scope,omitempty"`
	TokenType        string `json:"token_type"`
}

func (t Token) String() string {
	return fmt.Sprintf("tiktoktest.Token{open_id: %s, scope: %s, access_token: %s, expires_in: %d, refresh_token: %s, refresh_expires_in: %d}",
		t.OpenID, t.Scope, Redact(t.AccessToken), t.ExpiresIn, Redact(t.RefreshToken), t.RefreshExpiresIn)
}

func (t Token) GoString() string { return t.String() }

type authCode struct {
	clientKey   string
	openID      string
	redirectURI string
	scopes      []string
	challenge   string
	encoding    ChallengeEncoding
	expires     time.Time
	used        bool
	// allRequested: the user granted every requested scope.
	allRequested bool
}

// grant is one authorization of an app by a user: the tokens issued from
// one code exchange and its refreshes.
type grant struct {
	clientKey string
	openID    string
	scopes    []string
	revoked   bool
}

type accessToken struct {
	g       *grant
	expires time.Time
}

type refreshToken struct {
	g       *grant
	expires time.Time
	spent   bool
}

// randomString returns n random characters from crypto/rand.Text's
// base32 alphabet (upper-case letters and digits 2-7).
func randomString(n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(rand.Text())
	}
	return b.String()[:n]
}

// newCode returns an authorization code. Like TikTok's, it contains
// characters ("*", "!") that must be URL-decoded before the exchange.
func newCode() string {
	return randomString(24) + "*0!" + randomString(24)
}

// mintLocked issues an access token and a refresh token for g.
func (s *Server) mintLocked(g *grant, now time.Time) Token {
	at := "act." + randomString(48)
	rt := "rft." + randomString(48)
	s.access[at] = &accessToken{g: g, expires: now.Add(s.cfg.accessTTL)}
	s.refresh[rt] = &refreshToken{g: g, expires: now.Add(s.cfg.refreshTTL)}
	return Token{
		AccessToken:      at,
		ExpiresIn:        int64(s.cfg.accessTTL / time.Second),
		OpenID:           g.openID,
		RefreshExpiresIn: int64(s.cfg.refreshTTL / time.Second),
		RefreshToken:     rt,
		Scope:            strings.Join(g.scopes, ","),
		TokenType:        "Bearer",
	}
}

// IssueToken grants scopes to clientKey on behalf of openID and returns a
// fresh token pair, skipping the browser flow. Use it in tests that start
// from a connected account.
func (s *Server) IssueToken(clientKey, openID string, scopes ...string) (Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	app, ok := s.apps[clientKey]
	if !ok {
		return Token{}, fmt.Errorf("%w: %s", ErrUnknownApp, clientKey)
	}
	if _, ok := s.users[openID]; !ok {
		return Token{}, fmt.Errorf("%w: %s", ErrUnknownUser, openID)
	}
	if len(scopes) == 0 {
		return Token{}, fmt.Errorf("tiktoktest: IssueToken: no scope")
	}
	for _, sc := range scopes {
		if !slices.Contains(app.Scopes, sc) {
			return Token{}, fmt.Errorf("tiktoktest: IssueToken: app %s is not approved for %q", clientKey, sc)
		}
	}
	g := &grant{clientKey: clientKey, openID: openID, scopes: parseScopes(strings.Join(scopes, ","))}
	s.grants = append(s.grants, g)
	return s.mintLocked(g, s.Now()), nil
}

// Revoke revokes every token clientKey holds for openID, as the revoke
// endpoint does, without sending a request.
func (s *Server) Revoke(clientKey, openID string) {
	s.mu.Lock()
	s.revokeLocked(clientKey, openID)
	s.mu.Unlock()
}

// revokeLocked ends every grant of openID to clientKey and fails the
// publishes still in flight with auth_removed.
func (s *Server) revokeLocked(clientKey, openID string) {
	for _, g := range s.grants {
		if g.clientKey == clientKey && g.openID == openID {
			g.revoked = true
		}
	}
	now := s.Now()
	for _, p := range s.publishes {
		if p.clientKey == clientKey && p.openID == openID {
			if st := s.statusLocked(p, now); st != StatusPublishComplete && st != StatusFailed && st != StatusSendToUserInbox {
				p.failReason = "auth_removed"
			}
		}
	}
}

func isForm(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// clientLocked authenticates client_key and client_secret.
func (s *Server) clientLocked(key, secret string) (*App, bool) {
	app, ok := s.apps[key]
	if !ok || subtle.ConstantTimeCompare([]byte(app.ClientSecret), []byte(secret)) != 1 {
		return nil, false
	}
	return app, true
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.methodNotAllowed(w, http.MethodPost, true)
		return
	}
	if !isForm(r) {
		s.writeOAuthError(w, oauthInvalidRequest, "Content-Type must be application/x-www-form-urlencoded.")
		return
	}
	if err := r.ParseForm(); err != nil {
		s.writeOAuthError(w, oauthInvalidRequest, "The request parameters are malformed.")
		return
	}
	f := r.PostForm
	if f.Get("client_key") == "" {
		s.writeOAuthError(w, oauthInvalidRequest, "client_key is missing.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	app, ok := s.clientLocked(f.Get("client_key"), f.Get("client_secret"))
	if !ok {
		s.writeOAuthError(w, oauthInvalidClient, "Client key or secret is invalid.")
		return
	}
	now := s.Now()
	switch gt := f.Get("grant_type"); gt {
	case "authorization_code":
		s.exchangeCodeLocked(w, app, f.Get("code"), f.Get("redirect_uri"), f.Get("code_verifier"), f.Has("code_verifier"), now)
	case "refresh_token":
		s.refreshLocked(w, app, f.Get("refresh_token"), now)
	case "client_credentials":
		writeJSON(w, http.StatusOK, map[string]any{
			"access_token": "clt." + randomString(48),
			"expires_in":   7200,
			"token_type":   "Bearer",
		})
	case "":
		s.writeOAuthError(w, oauthInvalidRequest, "grant_type is missing.")
	default:
		s.writeOAuthError(w, oauthUnsupportedGrantType, "The grant type is not supported.")
	}
}

func (s *Server) exchangeCodeLocked(w http.ResponseWriter, app *App, code, redirectURI, verifier string, hasVerifier bool, now time.Time) {
	if code == "" {
		s.writeOAuthError(w, oauthInvalidRequest, "code is missing.")
		return
	}
	c, ok := s.codes[code]
	if !ok || c.clientKey != app.ClientKey {
		s.writeOAuthError(w, oauthInvalidGrant, "Authorization code is invalid.")
		return
	}
	// A code presented by its client is spent whatever the outcome, so a
	// wrong verifier cannot be retried.
	if c.used {
		s.writeOAuthError(w, oauthInvalidGrant, "Authorization code has been used.")
		return
	}
	c.used = true
	if !now.Before(c.expires) {
		s.writeOAuthError(w, oauthInvalidGrant, "Authorization code is expired.")
		return
	}
	if redirectURI != c.redirectURI {
		s.writeOAuthError(w, oauthInvalidRequest, "Redirect_uri is not matched with the uri when requesting code.")
		return
	}
	if c.challenge != "" {
		if !hasVerifier || verifier == "" {
			s.writeOAuthError(w, oauthInvalidRequest, "code_verifier is missing.")
			return
		}
		if !validVerifier(verifier) {
			s.writeOAuthError(w, oauthInvalidRequest, "code_verifier is malformed.")
			return
		}
		want := challengeFor(verifier, c.encoding)
		if subtle.ConstantTimeCompare([]byte(want), []byte(c.challenge)) != 1 {
			s.writeOAuthError(w, oauthInvalidGrant, "code_verifier does not match code_challenge.")
			return
		}
	}
	if _, ok := s.users[c.openID]; !ok {
		s.writeOAuthError(w, oauthInvalidGrant, "The user of this code no longer exists.")
		return
	}
	g := &grant{clientKey: app.ClientKey, openID: c.openID, scopes: slices.Clone(c.scopes)}
	s.grants = append(s.grants, g)
	tok := s.mintLocked(g, now)
	if app.OmitScope && c.allRequested {
		tok.Scope = ""
	}
	writeJSON(w, http.StatusOK, tok)
}

func (s *Server) refreshLocked(w http.ResponseWriter, app *App, token string, now time.Time) {
	if token == "" {
		s.writeOAuthError(w, oauthInvalidRequest, "refresh_token is missing.")
		return
	}
	rt, ok := s.refresh[token]
	if !ok || rt.g.clientKey != app.ClientKey || rt.g.revoked || rt.spent || !now.Before(rt.expires) {
		s.writeOAuthError(w, oauthInvalidGrant, "Refresh token is invalid or expired.")
		return
	}
	g := rt.g
	at := "act." + randomString(48)
	s.access[at] = &accessToken{g: g, expires: now.Add(s.cfg.accessTTL)}
	out := Token{
		AccessToken: at,
		ExpiresIn:   int64(s.cfg.accessTTL / time.Second),
		OpenID:      g.openID,
		Scope:       strings.Join(g.scopes, ","),
		TokenType:   "Bearer",
	}
	switch s.cfg.rotation {
	case RotateNever:
		out.RefreshToken = token
		out.RefreshExpiresIn = int64(rt.expires.Sub(now).Round(time.Second) / time.Second)
	default:
		if s.cfg.rotation == RotateSingleUse {
			rt.spent = true
		}
		next := "rft." + randomString(48)
		s.refresh[next] = &refreshToken{g: g, expires: now.Add(s.cfg.refreshTTL)}
		out.RefreshToken = next
		out.RefreshExpiresIn = int64(s.cfg.refreshTTL / time.Second)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.methodNotAllowed(w, http.MethodPost, true)
		return
	}
	if !isForm(r) {
		s.writeOAuthError(w, oauthInvalidRequest, "Content-Type must be application/x-www-form-urlencoded.")
		return
	}
	if err := r.ParseForm(); err != nil {
		s.writeOAuthError(w, oauthInvalidRequest, "The request parameters are malformed.")
		return
	}
	f := r.PostForm
	s.mu.Lock()
	defer s.mu.Unlock()
	app, ok := s.clientLocked(f.Get("client_key"), f.Get("client_secret"))
	if !ok {
		s.writeOAuthError(w, oauthInvalidClient, "Client key or secret is invalid.")
		return
	}
	token := f.Get("token")
	if token == "" {
		s.writeOAuthError(w, oauthInvalidRequest, "token is missing.")
		return
	}
	// An unknown token is answered with success (RFC 7009 §2.2): revoking
	// is idempotent. So is an expired access token, which no longer
	// stands for the grant: the answer is the same success, and the grant
	// (its refresh tokens) stays. A token of another app is refused.
	if at, ok := s.access[token]; ok {
		if at.g.clientKey != app.ClientKey {
			s.writeOAuthError(w, oauthInvalidRequest, "The token was not issued to this client.")
			return
		}
		if s.Now().Before(at.expires) {
			s.revokeLocked(app.ClientKey, at.g.openID)
		}
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// validVerifier checks RFC 7636's code_verifier syntax: 43 to 128
// characters from [A-Za-z0-9-._~].
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for _, c := range v {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// challengeFor computes the S256 code_challenge of verifier.
func challengeFor(verifier string, enc ChallengeEncoding) string {
	sum := sha256.Sum256([]byte(verifier))
	if enc == ChallengeBase64URL {
		return base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return hex.EncodeToString(sum[:])
}

// HexChallenge returns TikTok's documented desktop/mobile code_challenge
// for verifier: the lower-case hex SHA-256. (x/oauth2's
// S256ChallengeFromVerifier gives the RFC 7636 base64url form.)
func HexChallenge(verifier string) string { return challengeFor(verifier, ChallengeHex) }

// validChallenge checks the shape of a code_challenge for enc.
func validChallenge(c string, enc ChallengeEncoding) bool {
	if enc == ChallengeBase64URL {
		b, err := base64.RawURLEncoding.DecodeString(c)
		return err == nil && len(b) == sha256.Size
	}
	if len(c) != 2*sha256.Size || strings.ToLower(c) != c {
		return false
	}
	_, err := hex.DecodeString(c)
	return err == nil
}

// Authorized reports whether clientKey holds a grant of openID that is not
// revoked and still has a token that works: an access token not expired,
// or a refresh token neither spent nor expired. A test checks with it
// that a revoke reached the grant, whichever of its tokens it went
// through, and that no live token of it was lost.
func (s *Server) Authorized(clientKey, openID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.Now()
	live := func(g *grant) bool {
		return g.clientKey == clientKey && g.openID == openID && !g.revoked
	}
	for _, at := range s.access {
		if live(at.g) && now.Before(at.expires) {
			return true
		}
	}
	for _, rt := range s.refresh {
		if live(rt.g) && !rt.spent && now.Before(rt.expires) {
			return true
		}
	}
	return false
}

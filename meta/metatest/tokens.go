package metatest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

type tokenKind int

const (
	kindUser tokenKind = iota + 1
	kindPage
	kindApp
)

func (k tokenKind) String() string {
	switch k {
	case kindUser:
		return "USER"
	case kindPage:
		return "PAGE"
	case kindApp:
		return "APP"
	}
	return "UNKNOWN"
}

type token struct {
	value     string
	kind      tokenKind
	appID     string
	userID    string
	pageID    string
	issued    time.Time
	expires   time.Time // zero: never
	longLived bool
	grantGen  int
	session   int
}

// Lifetime selects a short-lived or a long-lived token.
type Lifetime int

const (
	// ShortLived is what the code exchange returns: about an hour.
	ShortLived Lifetime = iota + 1
	// LongLived is what fb_exchange_token returns: about 60 days for user
	// tokens; Page tokens fetched with a long-lived user token never expire.
	LongLived
)

type authCode struct {
	appID, userID, redirectURI string
	expires                    time.Time
	used                       bool
}

// issueUserToken creates a user token; the caller holds s.mu.
func (s *Server) issueUserToken(appID, userID string, lt Lifetime) *token {
	now := s.nowLocked()
	g := s.grantFor(appID, userID)
	t := &token{
		value: randomString("EAA"), kind: kindUser, appID: appID, userID: userID,
		issued: now, grantGen: g.gen, session: s.users[userID].sessionGen,
	}
	if lt == LongLived {
		t.longLived = true
		t.expires = now.Add(s.cfg.longTTL)
	} else {
		t.expires = now.Add(s.cfg.shortTTL)
	}
	s.tokens[t.value] = t
	return t
}

// issuePageToken derives a Page token from a user token, the way
// /me/accounts does: long-lived user tokens yield Page tokens without
// expiry, short-lived ones yield tokens that end with the user token.
func (s *Server) issuePageToken(ut *token, pageID string) *token {
	for _, t := range s.tokens {
		if t.kind == kindPage && t.appID == ut.appID && t.userID == ut.userID && t.pageID == pageID &&
			t.longLived == ut.longLived && t.grantGen == ut.grantGen && t.session == ut.session &&
			(t.longLived || t.expires.Equal(ut.expires)) {
			return t
		}
	}
	t := &token{
		value: randomString("EAA"), kind: kindPage, appID: ut.appID, userID: ut.userID, pageID: pageID,
		issued: s.nowLocked(), grantGen: ut.grantGen, session: ut.session, longLived: ut.longLived,
	}
	if !ut.longLived {
		t.expires = ut.expires
	}
	s.tokens[t.value] = t
	return t
}

// UserToken issues a user token as if the user had logged in to the app
// and, for LongLived, exchanged it. The token carries the permissions the
// user has granted to the app so far (User.Granted plus any consent).
func (s *Server) UserToken(appID, userID string, lt Lifetime) (string, error) {
	if lt != ShortLived && lt != LongLived {
		return "", invalid("UserToken: Lifetime %d", lt)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.apps[appID] == nil {
		return "", fmt.Errorf("metatest: UserToken: app %q: %w", appID, ErrNotFound)
	}
	if s.users[userID] == nil {
		return "", fmt.Errorf("metatest: UserToken: user %q: %w", userID, ErrNotFound)
	}
	g := s.grantFor(appID, userID)
	if !g.installed {
		g.installed = true
		g.perms["public_profile"] = "granted"
	}
	return s.issueUserToken(appID, userID, lt).value, nil
}

// PageToken issues the Page token /me/accounts would return to the user:
// with LongLived it never expires, with ShortLived it ends with the user's
// short-lived token. The user needs a role on the Page.
func (s *Server) PageToken(appID, userID, pageID string, lt Lifetime) (string, error) {
	ut, err := s.UserToken(appID, userID, lt)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pages[pageID]
	if p == nil {
		return "", fmt.Errorf("metatest: PageToken: page %q: %w", pageID, ErrNotFound)
	}
	if len(p.Tasks[userID]) == 0 {
		return "", invalid("PageToken: user %s has no role on page %s", userID, pageID)
	}
	t := s.issuePageToken(s.tokens[ut], pageID)
	delete(s.tokens, ut) // the user token was only a means
	return t.value, nil
}

// appToken resolves "{app-id}|{app-secret}" and client_credentials tokens.
func (s *Server) appToken(v string) *token {
	if t := s.tokens[v]; t != nil && t.kind == kindApp {
		return t
	}
	id, secret, found := strings.Cut(v, "|")
	if !found {
		return nil
	}
	a := s.apps[id]
	if a == nil || !hmac.Equal([]byte(secret), []byte(a.Secret)) {
		return nil
	}
	return &token{value: v, kind: kindApp, appID: id}
}

// lookupToken finds a token by value; the caller holds s.mu.
func (s *Server) lookupToken(v string) *token {
	if v == "" {
		return nil
	}
	if t := s.appToken(v); t != nil {
		return t
	}
	return s.tokens[v]
}

// tokenProblem reports why a known token no longer works, or nil.
func (s *Server) tokenProblem(t *token) *graphError {
	if t.kind == kindApp {
		return nil
	}
	g := s.grantFor(t.appID, t.userID)
	if !g.installed || g.gen != t.grantGen {
		return errNotAuthorized(t.appID)
	}
	if u := s.users[t.userID]; u == nil || u.sessionGen != t.session {
		return errPasswordChanged()
	}
	now := s.nowLocked()
	if !t.expires.IsZero() && !now.Before(t.expires) {
		return errExpired(t.expires, now)
	}
	if t.kind == kindPage {
		p := s.pages[t.pageID]
		if p == nil || len(p.Tasks[t.userID]) == 0 {
			return errInvalidSession()
		}
	}
	return nil
}

// accessToken finds the token in the parameters or the Authorization header.
func accessToken(c *call) string {
	if v := c.param("access_token"); v != "" {
		return v
	}
	h := c.r.Header.Get("Authorization")
	scheme, v, found := strings.Cut(h, " ")
	if found && (strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "OAuth")) {
		return strings.TrimSpace(v)
	}
	return ""
}

// AppSecretProof computes appsecret_proof, the hex HMAC-SHA256 of the token
// keyed with the app secret. With a non-zero unix time it computes the
// time-stamped form over "token|time", sent along with appsecret_time.
func AppSecretProof(appSecret, accessToken string, unixTime int64) string {
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write([]byte(accessToken))
	if unixTime != 0 {
		m.Write([]byte("|" + strconv.FormatInt(unixTime, 10)))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// proofWindow is how long a time-stamped proof stays valid.
const proofWindow = 5 * time.Minute

// checkProof enforces appsecret_proof for user and Page tokens.
func (s *Server) checkProof(c *call) *graphError {
	t := c.tok
	if t.kind == kindApp {
		return nil
	}
	proof := c.param("appsecret_proof")
	if proof == "" {
		if c.app.RequireAppSecretProof {
			return errProofMissing()
		}
		return nil
	}
	var ts int64
	if raw := c.param("appsecret_time"); raw != "" {
		v, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || v <= 0 {
			return errProofTime()
		}
		at := time.Unix(v, 0)
		now := s.nowLocked()
		if now.Sub(at) > proofWindow || at.Sub(now) > proofWindow {
			return errProofTime()
		}
		ts = v
	}
	got, err := hex.DecodeString(proof)
	want, _ := hex.DecodeString(AppSecretProof(c.app.Secret, t.value, ts))
	if err != nil || !hmac.Equal(got, want) {
		return errProofInvalid()
	}
	return nil
}

package tiktoktest

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Scopes the emulator knows (https://developers.tiktok.com/doc/tiktok-api-scopes).
var knownScopes = []string{
	"user.info.basic",
	"user.info.profile",
	"user.info.stats",
	"video.list",
	"video.publish",
	"video.upload",
}

// ChallengeEncoding is how an app's code_challenge encodes SHA-256(verifier).
type ChallengeEncoding int

const (
	// ChallengeHex is lower-case hex, what the Login Kit for Desktop page
	// and TikTok's mobile SDKs document. It is the default.
	ChallengeHex ChallengeEncoding = iota
	// ChallengeBase64URL is RFC 7636 base64url without padding, what
	// generic OAuth libraries (x/oauth2's S256ChallengeOption) send. Field
	// reports suggest TikTok's web flow takes it; that is undocumented.
	ChallengeBase64URL
)

// App is a registered developer app. The zero value of each optional field
// is documented on it.
type App struct {
	ClientKey    string
	ClientSecret string
	// RedirectURIs are matched byte for byte, except that a loopback URI
	// registered with port "*" matches any port. At most 10, each under 512
	// characters, absolute, without query or fragment; https, or http on
	// localhost/127.0.0.1 with a port.
	RedirectURIs []string
	// Scopes the app is approved for; a user can grant only these.
	Scopes []string
	// Challenge is the PKCE challenge encoding the app's platform uses
	// (zero: ChallengeHex).
	Challenge ChallengeEncoding
	// PKCEOptional lets authorization requests omit code_challenge (zero:
	// PKCE is required).
	PKCEOptional bool
	// Unaudited apps can Direct Post only to private accounts (zero:
	// audited).
	Unaudited bool
	// VerifiedURLPrefixes are the domains ("example.com", covering
	// subdomains) and URL prefixes ("https://example.com/videos/") whose
	// ownership is verified for PULL_FROM_URL.
	VerifiedURLPrefixes []string
	// WebhookURL, if set, receives the authorization.removed event sent by
	// Server.Deauthorize.
	WebhookURL string
	// OmitScope makes token answers of codes whose user granted every
	// requested scope name no scope, as RFC 6749 §5.1 allows.
	OmitScope bool
}

// User is a TikTok account. Empty fields are returned empty.
type User struct {
	OpenID          string
	UnionID         string
	DisplayName     string
	Username        string
	AvatarURL       string
	AvatarURL100    string
	AvatarLargeURL  string
	BioDescription  string
	ProfileDeepLink string
	IsVerified      bool
	FollowerCount   int64
	FollowingCount  int64
	LikesCount      int64
	// VideoCount is reported as is; zero reports the number of public
	// videos registered.
	VideoCount int64
	// Private accounts get the FOLLOWER_OF_CREATOR privacy options.
	Private         bool
	CommentDisabled bool
	DuetDisabled    bool
	StitchDisabled  bool
	// MaxVideoPostDurationSec is reported by creator info (zero: 600).
	MaxVideoPostDurationSec int32
	// PostingError, if set to PostingTooManyPosts, PostingUserBanned or
	// PostingActiveUserCapHit, is returned by creator info (HTTP 200) and by
	// the init endpoints (HTTP 403).
	PostingError string
	Videos       []Video
}

// Video is a post on a user's profile.
type Video struct {
	// ID is a decimal string; TikTok ids exceed 2^53.
	ID string
	// CreateTime orders the list; it is returned in seconds and paged by
	// milliseconds. Required.
	CreateTime time.Time
	// CoverImageURL is returned with an x-expires parameter six hours
	// after the request, as TikTok's signed CDN URLs are.
	CoverImageURL    string
	ShareURL         string
	VideoDescription string
	Title            string
	EmbedHTML        string
	EmbedLink        string
	Duration         int32
	Height           int32
	Width            int32
	LikeCount        int32
	CommentCount     int32
	ShareCount       int32
	ViewCount        int64
	// Private videos are not returned by the Display API.
	Private bool
	// Omit lists fields left out of the video's answer even when they
	// are requested ("view_count"), as when TikTok does not report a
	// metric.
	Omit []string
}

type userState struct {
	User
}

func validateRedirectURI(raw string) error {
	if len(raw) >= 512 {
		return fmt.Errorf("redirect URI is %d characters, want fewer than 512", len(raw))
	}
	u, wildcard, err := parseRedirect(raw)
	if err != nil {
		return err
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("redirect URI %q has a query or fragment", raw)
	}
	host := u.Hostname()
	loopback := host == "localhost" || host == "127.0.0.1"
	switch {
	case loopback:
		if u.Scheme != "http" && u.Scheme != "https" {
			return fmt.Errorf("redirect URI %q: scheme must be http or https", raw)
		}
		if u.Port() == "" {
			return fmt.Errorf("redirect URI %q: a loopback URI needs a port", raw)
		}
	case u.Scheme != "https":
		return fmt.Errorf("redirect URI %q: scheme must be https", raw)
	case wildcard:
		return fmt.Errorf("redirect URI %q: a wildcard port is only allowed on loopback", raw)
	}
	return nil
}

// parseRedirect parses an absolute URI; wildcard reports the port "*",
// which the returned URL carries as port 0.
func parseRedirect(raw string) (u *url.URL, wildcard bool, err error) {
	wildcard = strings.Contains(raw, ":*/")
	u, err = url.Parse(strings.Replace(raw, ":*/", ":0/", 1))
	if err != nil || !u.IsAbs() || u.Host == "" {
		return nil, false, fmt.Errorf("redirect URI %q is not an absolute URL", raw)
	}
	return u, wildcard, nil
}

// redirectMatches reports whether the requested redirect URI matches a
// registered one.
func redirectMatches(registered, requested string) bool {
	if registered == requested {
		return true
	}
	if !strings.Contains(registered, ":*/") {
		return false
	}
	reg, _, err := parseRedirect(registered)
	if err != nil {
		return false
	}
	req, err := url.Parse(requested)
	if err != nil || req.Port() == "" || req.RawQuery != "" || req.Fragment != "" {
		return false
	}
	return reg.Scheme == req.Scheme && reg.Hostname() == req.Hostname() && reg.EscapedPath() == req.EscapedPath()
}

func validateApp(a App) error {
	if a.ClientKey == "" || a.ClientSecret == "" {
		return fmt.Errorf("tiktoktest: app needs a client key and secret")
	}
	if n := len(a.RedirectURIs); n == 0 || n > 10 {
		return fmt.Errorf("tiktoktest: app %s has %d redirect URIs, want 1 to 10", a.ClientKey, n)
	}
	for _, r := range a.RedirectURIs {
		if err := validateRedirectURI(r); err != nil {
			return fmt.Errorf("tiktoktest: app %s: %w", a.ClientKey, err)
		}
	}
	if len(a.Scopes) == 0 {
		return fmt.Errorf("tiktoktest: app %s is approved for no scope", a.ClientKey)
	}
	for _, sc := range a.Scopes {
		if !slices.Contains(knownScopes, sc) {
			return fmt.Errorf("tiktoktest: app %s: unknown scope %q", a.ClientKey, sc)
		}
	}
	switch a.Challenge {
	case ChallengeHex, ChallengeBase64URL:
	default:
		return fmt.Errorf("tiktoktest: app %s: unknown challenge encoding %d", a.ClientKey, int(a.Challenge))
	}
	for _, p := range a.VerifiedURLPrefixes {
		if strings.Contains(p, "://") {
			u, err := url.Parse(p)
			if err != nil || u.Scheme != "https" || u.Host == "" || !strings.HasSuffix(p, "/") {
				return fmt.Errorf("tiktoktest: app %s: URL prefix %q must be https://host/path/", a.ClientKey, p)
			}
		} else if p == "" || strings.ContainsAny(p, "/:?#") {
			return fmt.Errorf("tiktoktest: app %s: bad verified domain %q", a.ClientKey, p)
		}
	}
	if a.WebhookURL != "" {
		if u, err := url.Parse(a.WebhookURL); err != nil || !u.IsAbs() {
			return fmt.Errorf("tiktoktest: app %s: webhook URL is not absolute", a.ClientKey)
		}
	}
	return nil
}

func validateVideo(v Video) error {
	if v.ID == "" {
		return fmt.Errorf("tiktoktest: video needs an ID")
	}
	if v.CreateTime.IsZero() {
		return fmt.Errorf("tiktoktest: video %s needs a CreateTime", v.ID)
	}
	return nil
}

// AddApp registers an app. It fails if the app breaks TikTok's
// registration rules or its client key is taken.
func (s *Server) AddApp(a App) error {
	if err := validateApp(a); err != nil {
		return err
	}
	a.RedirectURIs = slices.Clone(a.RedirectURIs)
	a.Scopes = slices.Clone(a.Scopes)
	a.VerifiedURLPrefixes = slices.Clone(a.VerifiedURLPrefixes)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.apps[a.ClientKey]; dup {
		return fmt.Errorf("tiktoktest: client key %s is already registered", a.ClientKey)
	}
	s.apps[a.ClientKey] = &a
	return nil
}

// AddUser registers a user and their videos.
func (s *Server) AddUser(u User) error {
	if u.OpenID == "" {
		return fmt.Errorf("tiktoktest: user needs an open_id")
	}
	switch u.PostingError {
	case "", PostingTooManyPosts, PostingUserBanned, PostingActiveUserCapHit:
	default:
		return fmt.Errorf("tiktoktest: user %s: unknown posting error %q", u.OpenID, u.PostingError)
	}
	ids := map[string]bool{}
	for _, v := range u.Videos {
		if err := validateVideo(v); err != nil {
			return err
		}
		if ids[v.ID] {
			return fmt.Errorf("tiktoktest: user %s: duplicate video %s", u.OpenID, v.ID)
		}
		ids[v.ID] = true
	}
	u.Videos = slices.Clone(u.Videos)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.users[u.OpenID]; dup {
		return fmt.Errorf("tiktoktest: open_id %s is already registered", u.OpenID)
	}
	s.users[u.OpenID] = &userState{User: u}
	return nil
}

// AddVideo adds a video to a registered user's profile.
func (s *Server) AddVideo(openID string, v Video) error {
	if err := validateVideo(v); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[openID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownUser, openID)
	}
	for _, have := range u.Videos {
		if have.ID == v.ID {
			return fmt.Errorf("tiktoktest: user %s: duplicate video %s", openID, v.ID)
		}
	}
	u.Videos = append(u.Videos, v)
	return nil
}

// UpdateUser applies fn to a registered user's record, for tests that
// change a profile, counts or posting state mid-test. The open_id cannot
// change. fn runs under the server's lock and must not call the Server.
func (s *Server) UpdateUser(openID string, fn func(*User)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[openID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownUser, openID)
	}
	cp := u.User
	cp.Videos = slices.Clone(u.Videos)
	fn(&cp)
	cp.OpenID = openID
	switch cp.PostingError {
	case "", PostingTooManyPosts, PostingUserBanned, PostingActiveUserCapHit:
	default:
		return fmt.Errorf("tiktoktest: user %s: unknown posting error %q", openID, cp.PostingError)
	}
	for _, v := range cp.Videos {
		if err := validateVideo(v); err != nil {
			return err
		}
	}
	u.User = cp
	return nil
}

// parseScopes splits a comma-separated scope list, dropping duplicates.
func parseScopes(s string) []string {
	var out []string
	for _, sc := range strings.Split(s, ",") {
		if sc != "" && !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

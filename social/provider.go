package social

import (
	"context"
	"time"

	"github.com/socialcrm/socialcrm/vault"
)

// Provider adapts one platform's OAuth to the Flow, the token source and
// Disconnect. tiktok.Provider, meta.Provider and OAuth2Provider implement
// it.
type Provider interface {
	// Platform names the platform ("tiktok"); it is stored on connections.
	Platform() string
	// Features is the catalogue of features and the scopes each needs.
	Features() []Feature
	// RedirectURL is the callback the provider was configured with, used
	// by a Flow whose FlowConfig names none.
	RedirectURL() string
	// AuthCodeURL returns the consent URL of req: its state, scopes and
	// redirect URI, with the PKCE challenge of its verifier (S256, encoded
	// as the platform wants).
	AuthCodeURL(req AuthRequest) string
	// Exchange trades an authorization code for tokens, sending the
	// redirect URI the flow's state was begun with. A code the platform
	// refuses for good is wrapped with ErrInvalidGrant. A token answer
	// that names no scope granted req.Scopes (RFC 6749 §5.1).
	Exchange(ctx context.Context, req ExchangeRequest) (*Grant, error)
	// Refresh trades a refresh token for new tokens. A refresh token the
	// platform refuses for good is wrapped with ErrInvalidGrant.
	Refresh(ctx context.Context, refreshToken vault.Secret) (*Grant, error)
	// Revoke revokes the authorization behind t at the platform: both
	// tokens where the platform revokes them apart (either may be zero).
	Revoke(ctx context.Context, t Tokens) error
}

// AuthRequest is what a consent URL asks for.
type AuthRequest struct {
	// State is the flow's single-use state.
	State string
	// Verifier is the PKCE code verifier; the URL carries its challenge.
	Verifier string
	// Scopes are the scopes requested.
	Scopes Scopes
	// RedirectURL is the callback the platform redirects to.
	RedirectURL string
}

// ExchangeRequest is what a code exchange needs: the code and what the
// flow's state was begun with.
type ExchangeRequest struct {
	Code     string
	Verifier string
	// RedirectURL is the redirect URI sent at authorization, sent again
	// byte for byte.
	RedirectURL string
	// Scopes are the scopes requested at authorization.
	Scopes Scopes
}

// Tokens are a connection's tokens, opened in memory to be revoked.
type Tokens struct {
	AccessToken, RefreshToken vault.Secret
	// AccessExpiry is when the access token expires, as stored with it
	// (zero: unknown). A provider whose platform cannot revoke through an
	// expired access token refreshes first (tiktok.Provider.Revoke).
	AccessExpiry time.Time
	// Rotated, if set, stores the tokens a provider's Revoke obtained on
	// the way (a refresh, to revoke through a live access token) before
	// the provider uses them, so that a process that dies between the
	// platform's refresh and its revoke leaves the live tokens where a
	// retry finds them, not the spent ones. A provider calls it once the
	// platform answered, with tokens the provider still owns (Rotated
	// must not keep or wipe them), and revokes whatever it returns; its
	// error is joined to the revoke's failure. The Store sets it.
	Rotated func(ctx context.Context, rotated Tokens) error
}

// Wipe zeroes both tokens.
func (t *Tokens) Wipe() {
	t.AccessToken.Wipe()
	t.RefreshToken.Wipe()
}

// RotatedError is a Provider's Revoke failure after the platform rotated
// the tokens on the way (a provider that refreshes to revoke through a
// live access token): Tokens are the live tokens now, which a retry must
// use, the ones it was given being spent. It wraps the revoke's failure;
// its message holds no token. The Store seals Tokens in place of the
// queued ones and wipes them.
type RotatedError struct {
	Tokens Tokens
	Err    error
}

func (e *RotatedError) Error() string {
	return "social: revoke failed after the platform rotated the tokens: " + e.Err.Error()
}

// Unwrap returns the revoke's failure.
func (e *RotatedError) Unwrap() error { return e.Err }

// Grant is what the platform's token endpoint answered. Its tokens are
// Secrets: they print and marshal as [REDACTED].
type Grant struct {
	// AccountID identifies the platform account (TikTok's open_id). It is
	// optional: a standard token answer names no user. A Flow that
	// completes without one makes a new connection whose AccountID is its
	// own ID.
	AccountID string
	// DisplayName, when the platform's answer names the account, is stored
	// on the connection (empty: left as it is).
	DisplayName string
	// Scopes are the scopes granted; a user may grant fewer than requested.
	Scopes Scopes
	// AccessToken and RefreshToken are the tokens; RefreshToken may be
	// empty when the platform issues none.
	AccessToken, RefreshToken vault.Secret
	// ExpiresIn and RefreshExpiresIn are the lifetimes the platform
	// announced (zero: unknown).
	ExpiresIn, RefreshExpiresIn time.Duration
}

// Wipe zeroes both tokens.
func (g *Grant) Wipe() {
	g.AccessToken.Wipe()
	g.RefreshToken.Wipe()
}

package social

import (
	"context"
	"time"

	"github.com/socialcrm/socialcrm/vault"
)

// Provider adapts one platform's OAuth to the Flow, the token source and
// Disconnect. tiktok.Provider and meta.Provider implement it.
type Provider interface {
	// Platform names the platform ("tiktok"); it is stored on connections.
	Platform() string
	// Features is the catalogue of features and the scopes each needs.
	Features() []Feature
	// AuthCodeURL returns the consent URL for state, requesting scopes, with
	// the PKCE challenge of verifier (S256, encoded as the platform wants).
	AuthCodeURL(state, verifier string, scopes Scopes) string
	// Exchange trades an authorization code for tokens. A code the platform
	// refuses for good is wrapped with ErrInvalidGrant.
	Exchange(ctx context.Context, code, verifier string) (*Grant, error)
	// Refresh trades a refresh token for new tokens. A refresh token the
	// platform refuses for good is wrapped with ErrInvalidGrant.
	Refresh(ctx context.Context, refreshToken vault.Secret) (*Grant, error)
	// Revoke revokes the authorization behind accessToken at the platform.
	Revoke(ctx context.Context, accessToken vault.Secret) error
}

// Grant is what the platform's token endpoint answered. Its tokens are
// Secrets: they print and marshal as [REDACTED].
type Grant struct {
	// AccountID identifies the platform account (TikTok's open_id).
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

package social

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/oauth2"

	"github.com/socialcrm/socialcrm/internal/httpx"
	"github.com/socialcrm/socialcrm/internal/telemetry"
	"github.com/socialcrm/socialcrm/vault"
)

// OAuth2Config declares a platform that speaks standard OAuth 2.0: the
// authorization code grant with PKCE S256 (RFC 6749, RFC 7636), refresh
// tokens that may rotate, and RFC 7009 revocation. It is a plain
// declaration; NewOAuth2Provider checks it.
type OAuth2Config struct {
	// Platform names the platform on connections ("acme"). Required.
	Platform string
	// ClientID and ClientSecret identify the application. ClientID is
	// required; ClientSecret is empty for a public client.
	ClientID     string
	ClientSecret vault.Secret
	// AuthURL and TokenURL are the authorization and token endpoints.
	// Required.
	AuthURL, TokenURL string
	// RevocationURL is the RFC 7009 revocation endpoint; empty when the
	// platform has none (disconnecting then only deletes the tokens).
	RevocationURL string
	// UserInfoURL, if set, is read with the access token after the code
	// exchange (a JSON object) to name the account: AccountIDField
	// (default "sub") and DisplayNameField (default "name"). Without it
	// the token answer names no account, and each connect makes a new
	// connection.
	UserInfoURL                      string
	AccountIDField, DisplayNameField string
	// RedirectURL is the default callback (FlowConfig.RedirectURL may
	// name another one per flow).
	RedirectURL string
	// Features is the platform's catalogue: the scopes each feature
	// needs. Required.
	Features []Feature
	// AuthStyle is how the client authenticates at the token and
	// revocation endpoints (zero: oauth2.AuthStyleAutoDetect at the token
	// endpoint, HTTP Basic at the revocation endpoint).
	AuthStyle oauth2.AuthStyle
	// HTTPClient sends the requests (nil: http.DefaultClient).
	HTTPClient *http.Client
	// TracerProvider and MeterProvider, when set, trace and measure the
	// token, revocation and user-info requests with otelhttp (nil: nothing
	// of that kind is recorded, whatever the global providers). Spans show
	// the method, host and path with each id replaced by ":id", never the
	// query nor a body (codes, tokens, the client secret); no trace
	// context is sent to the platform.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
}

// OAuth2Provider is the Provider of an OAuth2Config platform. Token
// requests are sent once (a code is single use, a refresh token may
// rotate); Revoke revokes the refresh token and then the access token. It
// is safe for concurrent use.
type OAuth2Provider struct {
	cfg OAuth2Config
	hc  *http.Client
}

var _ Provider = (*OAuth2Provider)(nil)

// NewOAuth2Provider returns the provider of cfg, or an ErrConfig naming
// what is missing.
func NewOAuth2Provider(cfg OAuth2Config) (*OAuth2Provider, error) {
	switch {
	case cfg.Platform == "":
		return nil, fmt.Errorf("%w: OAuth2Config: Platform is required", ErrConfig)
	case cfg.ClientID == "":
		return nil, fmt.Errorf("%w: OAuth2Config: ClientID is required", ErrConfig)
	case len(cfg.Features) == 0:
		return nil, fmt.Errorf("%w: OAuth2Config: Features are required", ErrConfig)
	}
	for name, u := range map[string]string{"AuthURL": cfg.AuthURL, "TokenURL": cfg.TokenURL, "RevocationURL": cfg.RevocationURL,
		"UserInfoURL": cfg.UserInfoURL, "RedirectURL": cfg.RedirectURL} {
		if u == "" && name != "AuthURL" && name != "TokenURL" {
			continue
		}
		if p, err := url.Parse(u); err != nil || !p.IsAbs() {
			return nil, fmt.Errorf("%w: OAuth2Config: %s must be an absolute URL", ErrConfig, name)
		}
	}
	if cfg.AccountIDField == "" {
		cfg.AccountIDField = "sub"
	}
	if cfg.DisplayNameField == "" {
		cfg.DisplayNameField = "name"
	}
	cfg.Features = append([]Feature(nil), cfg.Features...)
	hc := telemetry.HTTPClient(cfg.HTTPClient, telemetry.Providers{Tracer: cfg.TracerProvider, Meter: cfg.MeterProvider})
	return &OAuth2Provider{cfg: cfg, hc: hc}, nil
}

// Platform returns the configured platform name.
func (p *OAuth2Provider) Platform() string { return p.cfg.Platform }

// Features returns the configured catalogue.
func (p *OAuth2Provider) Features() []Feature { return append([]Feature(nil), p.cfg.Features...) }

// RedirectURL returns the configured callback.
func (p *OAuth2Provider) RedirectURL() string { return p.cfg.RedirectURL }

func (p *OAuth2Provider) config(redirect string, scopes Scopes) *oauth2.Config {
	if redirect == "" {
		redirect = p.cfg.RedirectURL
	}
	return &oauth2.Config{
		ClientID: p.cfg.ClientID, ClientSecret: string(p.cfg.ClientSecret.Reveal()),
		Endpoint:    oauth2.Endpoint{AuthURL: p.cfg.AuthURL, TokenURL: p.cfg.TokenURL, AuthStyle: p.cfg.AuthStyle},
		RedirectURL: redirect, Scopes: scopes,
	}
}

func (p *OAuth2Provider) client() *http.Client {
	if p.hc != nil {
		return p.hc
	}
	return http.DefaultClient
}

func (p *OAuth2Provider) ctx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, p.client())
}

// AuthCodeURL returns the authorization URL: response_type=code,
// client_id, redirect_uri, the space-separated scopes, state and the S256
// challenge of the verifier.
func (p *OAuth2Provider) AuthCodeURL(r AuthRequest) string {
	return p.config(r.RedirectURL, r.Scopes).AuthCodeURL(r.State, oauth2.S256ChallengeOption(r.Verifier))
}

// Exchange trades the code for tokens with the verifier and the redirect
// URI of the authorization, then reads the account from UserInfoURL when
// one is configured. An answer without scope granted r.Scopes.
func (p *OAuth2Provider) Exchange(ctx context.Context, r ExchangeRequest) (*Grant, error) {
	tok, err := p.config(r.RedirectURL, r.Scopes).Exchange(p.ctx(ctx), r.Code, oauth2.VerifierOption(r.Verifier))
	if err != nil {
		return nil, p.tokenError("exchange", err)
	}
	g := p.grant(tok, r.Scopes)
	if p.cfg.UserInfoURL != "" {
		if g.AccountID, g.DisplayName, err = p.userInfo(ctx, tok.AccessToken); err != nil {
			g.Wipe()
			return nil, err
		}
	}
	return g, nil
}

// Refresh trades the refresh token for new tokens. A platform that does
// not rotate answers without a refresh token, and the stored one is kept.
func (p *OAuth2Provider) Refresh(ctx context.Context, refreshToken vault.Secret) (*Grant, error) {
	src := p.config("", nil).TokenSource(p.ctx(ctx), &oauth2.Token{RefreshToken: string(refreshToken.Reveal())})
	tok, err := src.Token()
	if err != nil {
		return nil, p.tokenError("refresh", err)
	}
	if tok.RefreshToken == string(refreshToken.Reveal()) {
		tok.RefreshToken = "" // not rotated: x/oauth2 copied the old one
	}
	return p.grant(tok, nil), nil
}

// grant converts a token answer; a missing scope gives requested (nil on
// a refresh: the scopes are unchanged).
func (p *OAuth2Provider) grant(tok *oauth2.Token, requested Scopes) *Grant {
	g := &Grant{AccessToken: vault.NewSecret([]byte(tok.AccessToken)), Scopes: requested}
	if tok.RefreshToken != "" {
		g.RefreshToken = vault.NewSecret([]byte(tok.RefreshToken))
	}
	if s, ok := tok.Extra("scope").(string); ok && strings.TrimSpace(s) != "" {
		g.Scopes = ParseScopes(s, " ")
	}
	if tok.ExpiresIn > 0 {
		g.ExpiresIn = time.Duration(tok.ExpiresIn) * time.Second
	}
	switch v := tok.Extra("refresh_expires_in").(type) {
	case float64:
		g.RefreshExpiresIn = time.Duration(v) * time.Second
	case string:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			g.RefreshExpiresIn = time.Duration(n) * time.Second
		}
	}
	return g
}

// OAuth2Error is a refusal of an OAuth 2.0 endpoint: the HTTP status and
// the answer's error and error_description. An invalid_grant matches
// ErrInvalidGrant. It never holds the request or the tokens.
type OAuth2Error struct {
	Platform, Endpoint string
	StatusCode         int
	Code, Description  string
}

func (e *OAuth2Error) Error() string {
	return fmt.Sprintf("social: %s %s: %s (HTTP %d): %s", e.Platform, e.Endpoint, e.Code, e.StatusCode, e.Description)
}

// Is makes errors.Is(err, ErrInvalidGrant) hold for invalid_grant.
func (e *OAuth2Error) Is(target error) bool {
	return target == ErrInvalidGrant && e.Code == "invalid_grant"
}

func (p *OAuth2Provider) tokenError(endpoint string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		oe := &OAuth2Error{Platform: p.cfg.Platform, Endpoint: endpoint, Code: re.ErrorCode, Description: re.ErrorDescription}
		if re.Response != nil {
			oe.StatusCode = re.Response.StatusCode
		}
		if oe.Code == "" {
			oe.Code = "http_error"
		}
		return oe
	}
	return fmt.Errorf("social: %s %s: %w", p.cfg.Platform, endpoint, httpx.Sanitize(err))
}

// userInfo reads the account id and name from UserInfoURL.
func (p *OAuth2Provider) userInfo(ctx context.Context, accessToken string) (id, name string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.UserInfoURL, nil)
	if err != nil {
		return "", "", fmt.Errorf("social: %s userinfo: %w", p.cfg.Platform, err)
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Accept", "application/json")
	resp, err := p.client().Do(req)
	if err != nil {
		return "", "", fmt.Errorf("social: %s userinfo: %w", p.cfg.Platform, httpx.Sanitize(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", "", &OAuth2Error{Platform: p.cfg.Platform, Endpoint: "userinfo", StatusCode: resp.StatusCode, Code: "http_error", Description: http.StatusText(resp.StatusCode)}
	}
	var info map[string]any
	dec := json.NewDecoder(io.LimitReader(resp.Body, 1<<20))
	dec.UseNumber()
	if err := dec.Decode(&info); err != nil {
		return "", "", fmt.Errorf("social: %s userinfo: malformed answer", p.cfg.Platform)
	}
	id = scalar(info[p.cfg.AccountIDField])
	if id == "" {
		return "", "", fmt.Errorf("social: %s userinfo: no %q in the answer", p.cfg.Platform, p.cfg.AccountIDField)
	}
	return id, scalar(info[p.cfg.DisplayNameField]), nil
}

func scalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	return ""
}

// Revoke revokes the refresh token and then the access token at the RFC
// 7009 endpoint (each with its token_type_hint); without a revocation
// endpoint it does nothing. An answer other than 200 is an *OAuth2Error.
func (p *OAuth2Provider) Revoke(ctx context.Context, t Tokens) error {
	if p.cfg.RevocationURL == "" {
		return nil
	}
	if !t.RefreshToken.IsZero() {
		if err := p.revoke(ctx, t.RefreshToken, "refresh_token"); err != nil {
			return err
		}
	}
	if !t.AccessToken.IsZero() {
		return p.revoke(ctx, t.AccessToken, "access_token")
	}
	return nil
}

func (p *OAuth2Provider) revoke(ctx context.Context, tok vault.Secret, hint string) error {
	f := url.Values{"token": {string(tok.Reveal())}, "token_type_hint": {hint}}
	inParams := p.cfg.AuthStyle == oauth2.AuthStyleInParams
	if inParams || p.cfg.ClientSecret.IsZero() {
		f.Set("client_id", p.cfg.ClientID)
		if inParams && !p.cfg.ClientSecret.IsZero() {
			f.Set("client_secret", string(p.cfg.ClientSecret.Reveal()))
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.RevocationURL, strings.NewReader(f.Encode()))
	if err != nil {
		return fmt.Errorf("social: %s revoke: %w", p.cfg.Platform, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if !inParams && !p.cfg.ClientSecret.IsZero() {
		req.SetBasicAuth(url.QueryEscape(p.cfg.ClientID), url.QueryEscape(string(p.cfg.ClientSecret.Reveal())))
	}
	resp, err := p.client().Do(req)
	if err != nil {
		return fmt.Errorf("social: %s revoke: %w", p.cfg.Platform, httpx.Sanitize(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body)
	if body.Error == "" {
		body.Error = "http_error"
	}
	return &OAuth2Error{Platform: p.cfg.Platform, Endpoint: "revoke", StatusCode: resp.StatusCode, Code: body.Error, Description: body.Description}
}

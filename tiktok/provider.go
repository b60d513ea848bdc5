package tiktok

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/socialcrm/socialcrm/internal/httpx"
	"github.com/socialcrm/socialcrm/internal/telemetry"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/vault"
)

// Hosts of the real TikTok APIs.
const (
	DefaultBaseURL      = "https://open.tiktokapis.com"
	DefaultAuthorizeURL = "https://www.tiktok.com/v2/auth/authorize/"
)

// Platform is the name stored on TikTok connections.
const Platform = "tiktok"

// Scopes (https://developers.tiktok.com/doc/tiktok-api-scopes).
const (
	ScopeUserInfoBasic   = "user.info.basic"
	ScopeUserInfoProfile = "user.info.profile"
	ScopeUserInfoStats   = "user.info.stats"
	ScopeVideoList       = "video.list"
	ScopeVideoPublish    = "video.publish"
	ScopeVideoUpload     = "video.upload"
)

// Feature names of the catalogue (Features).
const (
	FeatureProfile   = "profile"
	FeatureStats     = "stats"
	FeatureVideoRead = "video.read"
	FeaturePublish   = "publish"
	FeatureUpload    = "upload"
)

// Features is TikTok's feature catalogue for social.FlowConfig.
func Features() []social.Feature {
	return []social.Feature{
		{Name: FeatureProfile, Scopes: social.NewScopes(ScopeUserInfoBasic, ScopeUserInfoProfile)},
		{Name: FeatureStats, Scopes: social.NewScopes(ScopeUserInfoBasic, ScopeUserInfoStats)},
		{Name: FeatureVideoRead, Scopes: social.NewScopes(ScopeUserInfoBasic, ScopeVideoList)},
		{Name: FeaturePublish, Scopes: social.NewScopes(ScopeUserInfoBasic, ScopeVideoPublish), Write: true},
		{Name: FeatureUpload, Scopes: social.NewScopes(ScopeUserInfoBasic, ScopeVideoUpload), Write: true},
	}
}

// Challenge is how the PKCE code_challenge encodes SHA-256(verifier).
type Challenge int

const (
	// ChallengeHex is lower-case hex, what TikTok documents for desktop and
	// mobile (the default).
	ChallengeHex Challenge = iota
	// ChallengeBase64URL is RFC 7636's base64url, what generic libraries
	// send and what web flows reportedly accept (undocumented).
	ChallengeBase64URL
)

// Config is a TikTok app's registration.
type Config struct {
	// ClientKey and ClientSecret identify the app. Required.
	ClientKey, ClientSecret string
	// RedirectURL is the registered callback, sent byte-identical at
	// authorize and token exchange. Required for the OAuth flow.
	RedirectURL string
	// Challenge is the PKCE encoding of the app's platform (zero: hex).
	Challenge Challenge
	// BaseURL replaces DefaultBaseURL, AuthorizeURL DefaultAuthorizeURL
	// (tiktoktest.Server's URL and AuthorizeURL in tests).
	BaseURL, AuthorizeURL string
}

func (c Config) validate() error {
	if c.ClientKey == "" || c.ClientSecret == "" {
		return fmt.Errorf("tiktok: Config: ClientKey and ClientSecret are required")
	}
	return nil
}

func (c Config) base() string {
	if c.BaseURL != "" {
		return strings.TrimRight(c.BaseURL, "/")
	}
	return DefaultBaseURL
}

// Option configures a Provider, a Client or a Webhook: one option type for
// every constructor of the package, each reading the options that concern
// it (WithTolerance only the Webhook). Options validate their arguments:
// the constructors report the first invalid one. A nil Option means the
// default.
type Option func(*options) error

type options struct {
	hc        *http.Client
	tel       telemetry.Providers
	now       func() time.Time
	log       *slog.Logger
	wait      func(context.Context, time.Duration) error
	session   *social.Session
	tries     int
	keepRaw   bool
	tolerance time.Duration
}

// WithLogger sets the logger (nil, the default, discards). The Webhook
// logs what it rejects and handles; never a secret or signature.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		o.log = l
		return nil
	}
}

// WithRawResponses makes Sync keep the raw API answers it fetched, as
// social.RawResponse rows (a retention category of their own, 90 days by
// default). Off by default.
func WithRawResponses() Option {
	return func(o *options) error {
		o.keepRaw = true
		return nil
	}
}

// WithHTTPClient sets the HTTP client (default http.DefaultClient).
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) error {
		if hc == nil {
			return fmt.Errorf("tiktok: WithHTTPClient: nil client")
		}
		o.hc = hc
		return nil
	}
}

// WithTelemetry traces and measures the requests through tp and mp with
// otelhttp (either may be nil: nothing of that kind is recorded; without
// this option nothing is, whatever the global providers). Spans show the
// method, host and path with each id replaced by ":id", never the query
// nor a body (tokens, codes, upload URLs' tokens); no trace context is
// sent to TikTok. It wraps the WithHTTPClient client, whatever the
// options' order.
func WithTelemetry(tp trace.TracerProvider, mp metric.MeterProvider) Option {
	return func(o *options) error {
		o.tel = telemetry.Providers{Tracer: tp, Meter: mp}
		return nil
	}
}

// WithClock sets the clock (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return fmt.Errorf("tiktok: WithClock: nil clock")
		}
		o.now = now
		return nil
	}
}

// WithRetry bounds the attempts per request (default 4, first included)
// and sets how the client waits between them (nil: a timer honouring the
// context); tests pass a wait that records instead of sleeping.
func WithRetry(attempts int, wait func(ctx context.Context, d time.Duration) error) Option {
	return func(o *options) error {
		if attempts < 1 {
			return fmt.Errorf("tiktok: WithRetry: attempts must be at least 1")
		}
		o.tries, o.wait = attempts, wait
		return nil
	}
}

func buildOptions(opts []Option) (options, error) {
	var o options
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	if o.tel.Enabled() {
		o.hc = telemetry.HTTPClient(o.hc, o.tel)
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

func (o options) retrier() *httpx.Retrier {
	return &httpx.Retrier{Client: o.hc, Attempts: o.tries, Now: o.now, Wait: o.wait}
}

// Provider is TikTok's Login Kit v2 for social.Flow, the token source and
// Disconnect. It is safe for concurrent use.
type Provider struct {
	cfg Config
	rt  *httpx.Retrier
	// grants sends token requests once: the token source calls Refresh
	// while holding the connection's row, so it must not wait on retries,
	// and a rotated refresh token cannot be presented twice.
	grants *httpx.Retrier
	now    func() time.Time
}

var _ social.Provider = (*Provider)(nil)

// NewProvider returns the Login Kit provider of cfg's app.
func NewProvider(cfg Config, opts ...Option) (*Provider, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.RedirectURL == "" {
		return nil, fmt.Errorf("tiktok: Config: RedirectURL is required for the provider")
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	grants := o.retrier()
	grants.Attempts = 1
	return &Provider{cfg: cfg, rt: o.retrier(), grants: grants, now: o.now}, nil
}

// Platform returns "tiktok".
func (*Provider) Platform() string { return Platform }

// Features returns Features().
func (*Provider) Features() []social.Feature { return Features() }

// CodeChallenge returns the S256 code_challenge of verifier in enc.
func CodeChallenge(verifier string, enc Challenge) string {
	sum := sha256.Sum256([]byte(verifier))
	if enc == ChallengeBase64URL {
		return base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return hex.EncodeToString(sum[:])
}

// RedirectURL returns the configured callback.
func (p *Provider) RedirectURL() string { return p.cfg.RedirectURL }

// AuthCodeURL returns the consent URL: client_key, comma-separated scopes,
// redirect_uri, state and the S256 challenge of the verifier.
func (p *Provider) AuthCodeURL(r social.AuthRequest) string {
	authURL := p.cfg.AuthorizeURL
	if authURL == "" {
		authURL = DefaultAuthorizeURL
	}
	q := url.Values{
		"client_key":            {p.cfg.ClientKey},
		"response_type":         {"code"},
		"scope":                 {r.Scopes.Join(",")},
		"redirect_uri":          {p.redirect(r.RedirectURL)},
		"state":                 {r.State},
		"code_challenge":        {CodeChallenge(r.Verifier, p.cfg.Challenge)},
		"code_challenge_method": {"S256"},
	}
	return authURL + "?" + q.Encode()
}

type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	ExpiresIn        int64  `json:"expires_in"`
	OpenID           string `json:"open_id"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
	RefreshToken     string `json:"refresh_token"`
	Scope            string `json:"scope"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	LogID            string `json:"log_id"`
}

func (p *Provider) redirect(u string) string {
	if u != "" {
		return u
	}
	return p.cfg.RedirectURL
}

// Exchange trades the code (the callback's, already URL-decoded) for
// tokens, with the redirect URI of the authorization. An answer without
// scope granted the requested scopes.
func (p *Provider) Exchange(ctx context.Context, r social.ExchangeRequest) (*social.Grant, error) {
	f := url.Values{"code": {r.Code}, "grant_type": {"authorization_code"}, "redirect_uri": {p.redirect(r.RedirectURL)}}
	if r.Verifier != "" {
		f.Set("code_verifier", r.Verifier)
	}
	g, err := p.token(ctx, f, true)
	if err == nil && g.Scopes == nil {
		g.Scopes = r.Scopes
	}
	return g, err
}

// Refresh trades a refresh token for new tokens; TikTok rotates refresh
// tokens, so the grant's RefreshToken must replace the old one. An answer
// without open_id is taken all the same: it holds the only copy of the
// rotated refresh token, and the connection already names its account.
func (p *Provider) Refresh(ctx context.Context, refreshToken vault.Secret) (*social.Grant, error) {
	return p.token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {string(refreshToken.Reveal())}}, false)
}

// token asks for tokens with the form f; needOpenID refuses an answer
// that does not name the account.
func (p *Provider) token(ctx context.Context, f url.Values, needOpenID bool) (*social.Grant, error) {
	var tr tokenResponse
	if err := p.oauth(ctx, p.grants, "/v2/oauth/token/", f, &tr); err != nil {
		return nil, err
	}
	if tr.AccessToken == "" || needOpenID && tr.OpenID == "" {
		return nil, fmt.Errorf("tiktok: token answer without access_token or open_id [log_id %s]", tr.LogID)
	}
	var scopes social.Scopes // nil: the answer named none
	if strings.TrimSpace(tr.Scope) != "" {
		scopes = social.ParseScopes(tr.Scope, ",")
	}
	return &social.Grant{
		AccountID:        tr.OpenID,
		Scopes:           scopes,
		AccessToken:      vault.NewSecret([]byte(tr.AccessToken)),
		RefreshToken:     vault.NewSecret([]byte(tr.RefreshToken)),
		ExpiresIn:        time.Duration(tr.ExpiresIn) * time.Second,
		RefreshExpiresIn: time.Duration(tr.RefreshExpiresIn) * time.Second,
	}, nil
}

// Revoke revokes the user's authorization of the app with the access
// token; TikTok ends the refresh token with it. An access token that has
// expired (t.AccessExpiry passed: TikTok's live a day) or that TikTok
// refuses cannot take the authorization away, which the refresh token
// keeps alive for a year, and an answer of success to it proves nothing
// (a revoke endpoint answers tokens it does not know with success): with a
// refresh token, Revoke first refreshes and revokes the new access token.
// A refusal of the tokens themselves (invalid_grant, invalid_token, of the
// access token and then of the refresh token) wraps
// social.ErrInvalidToken: the grant can no longer be used through them,
// and retrying cannot help. A revoke that fails after the refresh returns
// a *social.RotatedError carrying the new tokens, which the caller keeps
// for the retry; t.Rotated, when set, stores them before the revoke is
// sent, so that a process killed between the refresh and the revoke does
// not lose them (the refresh token given is spent: single-use rotation).
func (p *Provider) Revoke(ctx context.Context, t social.Tokens) error {
	if t.AccessToken.IsZero() {
		return nil
	}
	canRefresh := !t.RefreshToken.IsZero()
	if canRefresh && !t.AccessExpiry.IsZero() && !p.now().Before(t.AccessExpiry) {
		return p.revokeRefreshed(ctx, t, nil)
	}
	err := p.revoke(ctx, t.AccessToken)
	if canRefresh && errors.Is(err, social.ErrInvalidToken) {
		return p.revokeRefreshed(ctx, t, err)
	}
	return err
}

// revoke revokes the authorization through access token tok.
func (p *Provider) revoke(ctx context.Context, tok vault.Secret) error {
	err := p.oauth(ctx, p.rt, "/v2/oauth/revoke/", url.Values{"token": {string(tok.Reveal())}}, nil)
	var oe *OAuthError
	if errors.As(err, &oe) && (oe.Code == "invalid_grant" || oe.Code == "invalid_token") {
		return fmt.Errorf("%w: %w", social.ErrInvalidToken, err)
	}
	return err
}

// revokeRefreshed refreshes with t's refresh token and revokes the new
// access token, handing the new tokens to t.Rotated (if set) first, since
// the ones given are spent once TikTok rotated them. A refresh token
// TikTok refuses means the grant is gone already: the error wraps
// social.ErrInvalidToken (and refused, the access token's refusal, if
// any).
//
// The refresh runs detached from ctx's cancellation, under
// social.RefreshTimeout, as Store.Token's does: once TikTok has rotated
// the refresh token, a caller that went away must not lose the answer,
// or the grant outlives the revoke with tokens that nobody holds.
func (p *Provider) revokeRefreshed(ctx context.Context, t social.Tokens, refused error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), social.RefreshTimeout)
	g, err := p.Refresh(rctx, t.RefreshToken)
	cancel()
	if errors.Is(err, social.ErrInvalidGrant) {
		return errors.Join(fmt.Errorf("%w: %w", social.ErrInvalidToken, err), refused)
	}
	if err != nil {
		return err
	}
	rot := social.Tokens{AccessToken: g.AccessToken, RefreshToken: g.RefreshToken}
	if g.ExpiresIn > 0 {
		rot.AccessExpiry = p.now().Add(g.ExpiresIn)
	}
	var serr error
	if t.Rotated != nil {
		serr = t.Rotated(ctx, rot)
	}
	if err = p.revoke(ctx, g.AccessToken); err == nil || errors.Is(err, social.ErrInvalidToken) {
		g.Wipe()
		return err
	}
	// The tokens given are spent (a single-use refresh token): the retry
	// needs these.
	return &social.RotatedError{Tokens: rot, Err: errors.Join(err, serr)}
}

// oauth posts a form to an OAuth endpoint and decodes its flat answer. Any
// body with a non-empty error is a failure, whatever the status. Only a
// 429 is retried (by rt): token grants are not idempotent (refresh tokens
// rotate).
func (p *Provider) oauth(ctx context.Context, rt *httpx.Retrier, path string, f url.Values, out *tokenResponse) error {
	f.Set("client_key", p.cfg.ClientKey)
	f.Set("client_secret", p.cfg.ClientSecret)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.base()+path, strings.NewReader(f.Encode()))
	if err != nil {
		return fmt.Errorf("tiktok: %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := rt.Do(req, false)
	if err != nil {
		return transportError(path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("tiktok: %s: read answer: %w", path, err)
	}
	var tr tokenResponse
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &tr); err != nil {
			return &OAuthError{StatusCode: resp.StatusCode, Code: "malformed_response", Description: fmt.Sprintf("unexpected answer of %d bytes", len(body))}
		}
	}
	if tr.Error != "" {
		return &OAuthError{StatusCode: resp.StatusCode, Code: tr.Error, Description: tr.ErrorDescription, LogID: tr.LogID}
	}
	if resp.StatusCode >= 300 {
		return &OAuthError{StatusCode: resp.StatusCode, Code: "http_error", Description: http.StatusText(resp.StatusCode), LogID: tr.LogID}
	}
	if out != nil {
		*out = tr
	}
	return nil
}

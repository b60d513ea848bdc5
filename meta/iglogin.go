package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/vault"
)

// PlatformInstagram is the platform name stored on connections made with
// Instagram Login (InstagramProvider): a creator's Instagram professional
// account reached without a Facebook Page. Connections made with Facebook
// Login carry Platform.
const PlatformInstagram = "instagram"

// Hosts of the Instagram API with Instagram Login and of uploads.
const (
	// DefaultInstagramGraphURL is the Graph host of Instagram Login
	// connections.
	DefaultInstagramGraphURL = "https://graph.instagram.com"
	// DefaultInstagramLoginURL is the host of the authorization window
	// (/oauth/authorize) and of the code exchange (/oauth/access_token).
	DefaultInstagramLoginURL = "https://api.instagram.com"
	// DefaultUploadURL is the host of resumable video uploads.
	DefaultUploadURL = "https://rupload.facebook.com"
)

func (c Config) instagramGraphURL() string {
	if c.InstagramGraphURL != "" {
		return strings.TrimRight(c.InstagramGraphURL, "/")
	}
	return DefaultInstagramGraphURL
}

func (c Config) instagramLoginURL() string {
	if c.InstagramLoginURL != "" {
		return strings.TrimRight(c.InstagramLoginURL, "/")
	}
	return DefaultInstagramLoginURL
}

func (c Config) uploadURL() string {
	if c.UploadURL != "" {
		return strings.TrimRight(c.UploadURL, "/")
	}
	return DefaultUploadURL
}

// Permissions of the Instagram API with Instagram Login (the
// instagram_business_* scopes of Business Login for Instagram).
const (
	PermInstagramBusinessBasic          = "instagram_business_basic"
	PermInstagramBusinessContentPublish = "instagram_business_content_publish"
	PermInstagramBusinessManageInsights = "instagram_business_manage_insights"
	PermInstagramBusinessManageComments = "instagram_business_manage_comments"
)

// Flavour is the login a Meta connection was made with. It decides the
// host, the permission names and which calls exist.
type Flavour string

// Flavours.
const (
	// FacebookLogin connections (Platform "meta") reach Pages and the
	// Instagram accounts linked to them on graph.facebook.com.
	FacebookLogin Flavour = "facebook_login"
	// InstagramLogin connections (PlatformInstagram) reach one Instagram
	// professional account on graph.instagram.com, without a Page.
	InstagramLogin Flavour = "instagram_login"
)

// FlavourOf returns the flavour of a connection, from its platform.
func FlavourOf(c social.Connection) Flavour {
	if c.Platform == PlatformInstagram {
		return InstagramLogin
	}
	return FacebookLogin
}

// Flavour returns the flavour of the client's connection.
func (c *Client) Flavour() Flavour { return FlavourOf(c.session.Connection()) }

// ErrFlavour matches *FlavourError.
var ErrFlavour = errors.New("meta: the call does not exist for the connection's login flavour")

// FlavourError is returned, before any request, by a call that Meta does
// not offer to the connection's flavour: Pages and Messenger calls on an
// Instagram Login connection, resumable uploads on one.
type FlavourError struct {
	Flavour Flavour
	// Lacks names what the flavour lacks: a permission of the call, or the
	// operation.
	Lacks string
}

func (e *FlavourError) Error() string {
	return fmt.Sprintf("meta: %s connections cannot make this call (it needs %s)", e.Flavour, e.Lacks)
}

// Is makes errors.Is(err, ErrFlavour) hold.
func (e *FlavourError) Is(target error) bool { return target == ErrFlavour }

// instagramLoginPerms maps the Facebook Login permission names the calls
// declare to their Instagram Login names; "" marks a permission without a
// counterpart that the Instagram Login call does not need (there is no
// Page). A permission missing from the map is one whose calls Instagram
// Login does not offer.
var instagramLoginPerms = map[string]string{
	PermInstagramBasic:          PermInstagramBusinessBasic,
	PermInstagramContentPublish: PermInstagramBusinessContentPublish,
	PermInstagramManageInsights: PermInstagramBusinessManageInsights,
	PermInstagramManageComments: PermInstagramBusinessManageComments,
	PermPagesReadEngagement:     "",
}

// require checks that the connection holds the permissions need, named as
// Facebook Login names them; on an Instagram Login connection they are
// translated, and a call the flavour lacks fails with a *FlavourError.
func (c *Client) require(need ...string) error {
	if c.Flavour() != InstagramLogin {
		return c.session.Require(need...)
	}
	var mapped []string
	for _, n := range need {
		m, ok := instagramLoginPerms[n]
		if !ok {
			return &FlavourError{Flavour: InstagramLogin, Lacks: n}
		}
		if m != "" {
			mapped = append(mapped, m)
		}
	}
	return c.session.Require(mapped...)
}

// requireFlavour fails with a *FlavourError unless the connection has
// flavour f.
func (c *Client) requireFlavour(f Flavour, operation string) error {
	if got := c.Flavour(); got != f {
		return &FlavourError{Flavour: got, Lacks: operation}
	}
	return nil
}

// InstagramFeatures is the feature catalogue of Instagram Login for
// social.FlowConfig. The names are those of the Instagram features of
// Features, so one FlowConfig reads the same for both flavours.
func InstagramFeatures() []social.Feature {
	f := func(name string, write bool, perms ...string) social.Feature {
		return social.Feature{Name: name, Scopes: social.NewScopes(append(perms, PermInstagramBusinessBasic)...), Write: write}
	}
	return []social.Feature{
		f(FeatureInstagram, false),
		f(FeatureInstagramPublish, true, PermInstagramBusinessContentPublish),
		f(FeatureInstagramInsights, false, PermInstagramBusinessManageInsights),
		f(FeatureInstagramComments, true, PermInstagramBusinessManageComments),
	}
}

// InstagramProvider is Business Login for Instagram (the Instagram API
// with Instagram Login) for social.Flow, the token source and Disconnect:
// a creator connects their Instagram professional account without a
// Facebook Page. Its connections have PlatformInstagram; clients built on
// them (New) call graph.instagram.com. It is safe for concurrent use.
type InstagramProvider struct {
	*graph
}

var _ social.Provider = (*InstagramProvider)(nil)

// NewInstagramProvider returns the Instagram Login provider of cfg's app
// (the Instagram app id and secret of the App Dashboard's Instagram
// product). cfg.RedirectURL is required.
func NewInstagramProvider(cfg Config, opts ...Option) (*InstagramProvider, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.RedirectURL == "" {
		return nil, fmt.Errorf("%w: Config: RedirectURL is required for the provider", ErrConfig)
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	cfg.GraphURL = cfg.instagramGraphURL()
	return &InstagramProvider{graph: newGraph(cfg, o)}, nil
}

// Platform returns PlatformInstagram.
func (*InstagramProvider) Platform() string { return PlatformInstagram }

// Features returns InstagramFeatures().
func (*InstagramProvider) Features() []social.Feature { return InstagramFeatures() }

// RedirectURL returns the configured callback.
func (p *InstagramProvider) RedirectURL() string { return p.cfg.RedirectURL }

// AuthCodeURL returns the authorization window's URL,
// {InstagramLoginURL}/oauth/authorize with client_id, redirect_uri,
// response_type=code, the comma-separated scope and state. The code
// exchange is authenticated with the app secret; the PKCE verifier is not
// sent.
func (p *InstagramProvider) AuthCodeURL(r social.AuthRequest) string {
	q := url.Values{
		"client_id":     {p.cfg.AppID},
		"redirect_uri":  {p.redirect(r.RedirectURL)},
		"response_type": {"code"},
		"scope":         {r.Scopes.Join(",")},
		"state":         {r.State},
	}
	return p.cfg.instagramLoginURL() + "/oauth/authorize?" + q.Encode()
}

// igCodeAnswer is the code exchange's answer: Business Login documents
// {"data":[{access_token, user_id, permissions}]}, older answers are flat;
// permissions come as a comma-separated string or an array.
type igCodeAnswer struct {
	Data []igCodeEntry `json:"data"`
	igCodeEntry
}

type igCodeEntry struct {
	AccessToken string          `json:"access_token"`
	UserID      ID              `json:"user_id"`
	Permissions json.RawMessage `json:"permissions"`
}

func (a igCodeAnswer) entry() igCodeEntry {
	if len(a.Data) > 0 {
		return a.Data[0]
	}
	return a.igCodeEntry
}

func (e igCodeEntry) scopes() social.Scopes {
	var list []string
	if json.Unmarshal(e.Permissions, &list) == nil {
		return social.NewScopes(list...)
	}
	var s string
	if json.Unmarshal(e.Permissions, &s) == nil {
		return social.ParseScopes(s, ",")
	}
	return social.Scopes{}
}

// Exchange trades the callback's code (Meta appends "#_" to the redirect,
// which is dropped) for a short-lived token at {InstagramLoginURL}/oauth/
// access_token, trades that at once for a long-lived one (about 60 days,
// grant_type=ig_exchange_token), which is the only one stored, and reads
// the account's id and username (/me). The granted permissions are those
// the code exchange lists. The long-lived token is also the refresh token:
// Refresh extends it. A code Meta refuses wraps social.ErrInvalidGrant.
func (p *InstagramProvider) Exchange(ctx context.Context, xr social.ExchangeRequest) (*social.Grant, error) {
	code := strings.TrimSuffix(xr.Code, "#_")
	f := url.Values{"client_id": {p.cfg.AppID}, "client_secret": {string(p.cfg.AppSecret.Reveal())},
		"grant_type": {"authorization_code"}, "redirect_uri": {p.redirect(xr.RedirectURL)}, "code": {code}}
	var short igCodeAnswer
	_, err := p.call(ctx, request{method: http.MethodPost, base: p.cfg.instagramLoginURL(), path: "/oauth/access_token", form: f}, "", &short)
	if err != nil {
		return nil, tokenError("instagram exchange", err)
	}
	e := short.entry()
	if e.AccessToken == "" {
		return nil, fmt.Errorf("meta: instagram token exchange: answer without access_token")
	}
	var long tokenAnswer
	err = p.igToken(ctx, "/access_token", url.Values{"grant_type": {"ig_exchange_token"},
		"client_secret": {string(p.cfg.AppSecret.Reveal())}, "access_token": {e.AccessToken}}, &long)
	e.AccessToken = ""
	if err != nil {
		return nil, err
	}
	var me struct {
		ID       ID     `json:"id"`
		UserID   ID     `json:"user_id"`
		Username string `json:"username"`
	}
	r := request{method: http.MethodGet, path: "/me", query: url.Values{"fields": {"user_id,username"}}, idempotent: true}
	if _, err := p.call(ctx, r, long.AccessToken, &me); err != nil {
		return nil, fmt.Errorf("meta: instagram exchange: %w", err)
	}
	acct := string(me.UserID)
	if acct == "" {
		acct = string(e.UserID)
	}
	if acct == "" {
		return nil, fmt.Errorf("meta: instagram exchange: /me answered without user_id")
	}
	name := ""
	if me.Username != "" {
		name = "@" + me.Username
	}
	ttl := time.Duration(long.ExpiresIn) * time.Second
	return &social.Grant{
		AccountID: acct, DisplayName: name, Scopes: e.scopes(),
		AccessToken:  vault.NewSecret([]byte(long.AccessToken)),
		RefreshToken: vault.NewSecret([]byte(long.AccessToken)),
		ExpiresIn:    ttl, RefreshExpiresIn: ttl,
	}, nil
}

// igToken calls an unversioned token endpoint of graph.instagram.com
// (GET, as documented; the secret and token go in the query, which errors
// and logs never show).
func (p *InstagramProvider) igToken(ctx context.Context, path string, q url.Values, out *tokenAnswer) error {
	return p.tokenCall(ctx, "instagram "+strings.TrimPrefix(path, "/"),
		request{method: http.MethodGet, base: p.cfg.instagramGraphURL(), path: path, query: q}, out)
}

// Refresh extends a long-lived Instagram Login token by another 60 days
// (GET /refresh_access_token, grant_type=ig_refresh_token): the token is
// its own refresh token, and Meta refreshes only tokens at least 24 hours
// old and not yet expired. A refused token wraps social.ErrInvalidGrant
// (the connection needs a new login).
func (p *InstagramProvider) Refresh(ctx context.Context, refreshToken vault.Secret) (*social.Grant, error) {
	var a tokenAnswer
	if err := p.igToken(ctx, "/refresh_access_token", url.Values{"grant_type": {"ig_refresh_token"},
		"access_token": {string(refreshToken.Reveal())}}, &a); err != nil {
		return nil, err
	}
	ttl := time.Duration(a.ExpiresIn) * time.Second
	return &social.Grant{AccessToken: vault.NewSecret([]byte(a.AccessToken)), RefreshToken: vault.NewSecret([]byte(a.AccessToken)),
		ExpiresIn: ttl, RefreshExpiresIn: ttl}, nil
}

// Revoke does nothing at Meta: Instagram Login documents no revocation
// endpoint (the creator removes the app in Instagram's settings, which
// the deauthorize callback reports). The caller deletes the tokens.
func (p *InstagramProvider) Revoke(context.Context, social.Tokens) error { return nil }

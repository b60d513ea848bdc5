package meta

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/vault"
)

// Permissions the features request
// (https://developers.facebook.com/docs/permissions).
const (
	PermPublicProfile           = "public_profile"
	PermPagesShowList           = "pages_show_list"
	PermPagesReadEngagement     = "pages_read_engagement"
	PermPagesManagePosts        = "pages_manage_posts"
	PermPagesManageMetadata     = "pages_manage_metadata"
	PermPagesMessaging          = "pages_messaging"
	PermReadInsights            = "read_insights"
	PermPublishVideo            = "publish_video"
	PermInstagramBasic          = "instagram_basic"
	PermInstagramContentPublish = "instagram_content_publish"
	PermInstagramManageInsights = "instagram_manage_insights"
	PermInstagramManageMessages = "instagram_manage_messages"
	PermInstagramManageComments = "instagram_manage_comments"
	PermPagesReadUserEngagement = "pages_read_user_engagement"
	PermPagesManageEngagement   = "pages_manage_engagement"
	PermBusinessManagement      = "business_management"
)

// Feature names of the catalogue (Features).
const (
	FeatureProfile           = "profile"
	FeaturePages             = "pages"
	FeaturePagesPublish      = "pages.publish"
	FeaturePagesInsights     = "pages.insights"
	FeatureInstagram         = "instagram"
	FeatureInstagramPublish  = "instagram.publish"
	FeatureInstagramInsights = "instagram.insights"
	FeatureMessaging         = "messaging"
	// FeaturePagesComments reads, answers, hides and deletes the comments
	// on a Page's posts; FeatureInstagramComments those on Instagram media.
	FeaturePagesComments     = "pages.comments"
	FeatureInstagramComments = "instagram.comments"
)

// Features is Meta's feature catalogue for social.FlowConfig: which
// permissions each feature needs. Publishing features are write features,
// refused by a read-only flow.
func Features() []social.Feature {
	page := []string{PermPublicProfile, PermPagesShowList}
	f := func(name string, write bool, perms ...string) social.Feature {
		return social.Feature{Name: name, Scopes: social.NewScopes(append(perms, page...)...), Write: write}
	}
	return []social.Feature{
		{Name: FeatureProfile, Scopes: social.NewScopes(PermPublicProfile)},
		f(FeaturePages, false),
		f(FeaturePagesPublish, true, PermPagesManagePosts, PermPagesReadEngagement, PermPublishVideo),
		f(FeaturePagesInsights, false, PermPagesReadEngagement, PermReadInsights),
		f(FeatureInstagram, false, PermPagesReadEngagement, PermInstagramBasic),
		f(FeatureInstagramPublish, true, PermPagesReadEngagement, PermInstagramBasic, PermInstagramContentPublish),
		f(FeatureInstagramInsights, false, PermPagesReadEngagement, PermInstagramBasic, PermInstagramManageInsights),
		f(FeatureMessaging, false, PermPagesMessaging, PermPagesManageMetadata),
		f(FeaturePagesComments, true, PermPagesReadEngagement, PermPagesReadUserEngagement, PermPagesManageEngagement),
		f(FeatureInstagramComments, true, PermPagesReadEngagement, PermInstagramBasic, PermInstagramManageComments),
	}
}

// Provider is Facebook Login (the manual flow) for social.Flow, the token
// source and Disconnect, plus the Page connections behind a user and
// debug_token. It is safe for concurrent use.
type Provider struct {
	*graph
}

var _ social.Provider = (*Provider)(nil)

// NewProvider returns the Facebook Login provider of cfg's app.
// cfg.RedirectURL is required.
func NewProvider(cfg Config, opts ...Option) (*Provider, error) {
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
	g := newGraph(cfg, o)
	return &Provider{graph: g}, nil
}

// Platform returns "meta".
func (*Provider) Platform() string { return Platform }

// Features returns Features().
func (*Provider) Features() []social.Feature { return Features() }

// RedirectURL returns the configured callback.
func (p *Provider) RedirectURL() string { return p.cfg.RedirectURL }

// redirect is the flow's redirect URI u, or the configured one.
func (g *graph) redirect(u string) string {
	if u != "" {
		return u
	}
	return g.cfg.RedirectURL
}

// AuthCodeURL returns the Login dialog URL: client_id, redirect_uri,
// state, response_type=code and the comma-separated permissions. Meta's
// manual flow authenticates the code exchange with the app secret, so the
// PKCE verifier is not sent. auth_type=rerequest is always set: without
// it the dialog does not ask again for a permission declined earlier.
func (p *Provider) AuthCodeURL(r social.AuthRequest) string {
	q := url.Values{
		"client_id":     {p.cfg.AppID},
		"redirect_uri":  {p.redirect(r.RedirectURL)},
		"state":         {r.State},
		"response_type": {"code"},
		"scope":         {r.Scopes.Join(",")},
		"auth_type":     {"rerequest"},
	}
	return p.cfg.dialogURL() + "?" + q.Encode()
}

type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   Int    `json:"expires_in"`
}

// Exchange trades the callback's code for a short-lived user token, then
// that for a long-lived one (about 60 days), and reads the user's id, name
// and granted permissions (/me/permissions: declined and expired ones are
// not granted). Only the long-lived token is returned. A code Meta refuses
// wraps social.ErrInvalidGrant.
func (p *Provider) Exchange(ctx context.Context, r social.ExchangeRequest) (*social.Grant, error) {
	var short tokenAnswer
	if err := p.token(ctx, url.Values{"code": {r.Code}, "redirect_uri": {p.redirect(r.RedirectURL)}}, &short); err != nil {
		return nil, err
	}
	var long tokenAnswer
	err := p.token(ctx, url.Values{"grant_type": {"fb_exchange_token"}, "fb_exchange_token": {short.AccessToken}}, &long)
	short.AccessToken = ""
	if err != nil {
		return nil, err
	}
	var me struct {
		ID   ID     `json:"id"`
		Name string `json:"name"`
	}
	if _, err := p.call(ctx, request{method: http.MethodGet, path: "/me", query: url.Values{"fields": {"id,name"}}, idempotent: true}, long.AccessToken, &me); err != nil {
		return nil, fmt.Errorf("meta: exchange: %w", err)
	}
	perms, err := p.permissions(ctx, long.AccessToken)
	if err != nil {
		return nil, fmt.Errorf("meta: exchange: %w", err)
	}
	if me.ID == "" {
		return nil, fmt.Errorf("meta: exchange: /me answered without an id")
	}
	return &social.Grant{
		AccountID:   string(me.ID),
		DisplayName: me.Name,
		Scopes:      perms.Granted,
		AccessToken: vault.NewSecret([]byte(long.AccessToken)),
		ExpiresIn:   time.Duration(long.ExpiresIn) * time.Second,
	}, nil
}

// token posts to /oauth/access_token with the app's id and secret in the
// body (never in a URL). It is not retried but after a 429: a code is
// single use.
func (p *Provider) token(ctx context.Context, f url.Values, out *tokenAnswer) error {
	f.Set("client_id", p.cfg.AppID)
	f.Set("client_secret", string(p.cfg.AppSecret.Reveal()))
	return p.tokenCall(ctx, "token exchange", request{method: http.MethodPost, path: "/oauth/access_token", form: f}, out)
}

// tokenCall sends r to a token endpoint of either login (the secret and
// tokens it carries never reach errors or logs) and checks that the
// answer holds an access token; a refusal wraps social.ErrInvalidGrant.
func (g *graph) tokenCall(ctx context.Context, step string, r request, out *tokenAnswer) error {
	if _, err := g.call(ctx, r, "", out); err != nil {
		return tokenError(step, err)
	}
	if out.AccessToken == "" {
		return fmt.Errorf("meta: %s: answer without access_token", step)
	}
	return nil
}

// tokenError wraps social.ErrInvalidGrant around refusals of a token
// endpoint (a 4xx answer other than 429, or Meta's codes for an invalid
// parameter or token: a bad, used or expired code or token).
func tokenError(step string, err error) error {
	var apiErr *APIError
	if errors.As(err, &apiErr) && (apiErr.StatusCode >= 400 && apiErr.StatusCode < 500 && apiErr.StatusCode != http.StatusTooManyRequests ||
		apiErr.Code == CodeInvalidParameter || apiErr.Code == CodeInvalidToken) {
		return fmt.Errorf("meta: %s: %w: %w", step, social.ErrInvalidGrant, err)
	}
	return fmt.Errorf("meta: %s: %w", step, err)
}

// Refresh fails with social.ErrInvalidGrant: Meta has no refresh grant.
// A user token that expired (about 60 days after the login) needs a new
// login; Page tokens taken with a long-lived user token do not expire.
func (p *Provider) Refresh(context.Context, vault.Secret) (*social.Grant, error) {
	return nil, fmt.Errorf("meta: refresh: %w: Meta issues no refresh tokens; the user must log in again", social.ErrInvalidGrant)
}

// Revoke de-authorizes the app for the user behind a user token (DELETE
// /me/permissions; with the app token on /{user-id}/permissions when the
// user token expired). A Page token has no revocation of its own: Revoke
// checks it with debug_token and does nothing else, the caller deleting
// it. A token of a user who removed the app counts as revoked.
func (p *Provider) Revoke(ctx context.Context, t social.Tokens) error {
	if t.AccessToken.IsZero() {
		return nil // Meta issues no refresh tokens
	}
	tok := string(t.AccessToken.Reveal())
	info, err := p.debugToken(ctx, tok)
	if err != nil {
		return fmt.Errorf("meta: revoke: %w", err)
	}
	if info.Type == "PAGE" || info.Type == "APP" {
		return nil
	}
	var ok struct {
		Success Bool `json:"success"`
	}
	r := request{method: http.MethodDelete, path: "/me/permissions", idempotent: true}
	if !info.Valid {
		if info.UserID == "" || info.ErrorSubcode == SubcodeAppNotInstalled {
			return nil // unknown token, or the user removed the app already
		}
		// An expired user token cannot revoke; the app token can
		// (DELETE /{user-id}/permissions).
		r.path, r.appToken, tok = "/"+info.UserID+"/permissions", true, p.appToken()
	}
	_, err = p.call(ctx, r, tok, &ok)
	if errors.Is(err, social.ErrInvalidToken) && !r.appToken {
		return nil
	}
	if err != nil {
		return fmt.Errorf("meta: revoke: %w", err)
	}
	return nil
}

// Permissions are what /me/permissions reports, by status.
type Permissions struct {
	Granted, Declined, Expired social.Scopes
}

// permissions reads /me/permissions with token.
func (p *Provider) permissions(ctx context.Context, token string) (Permissions, error) {
	var l list[struct {
		Permission string `json:"permission"`
		Status     string `json:"status"`
	}]
	if _, err := p.call(ctx, request{method: http.MethodGet, path: "/me/permissions", idempotent: true}, token, &l); err != nil {
		return Permissions{}, err
	}
	var g, d, e []string
	for _, x := range l.Data {
		switch x.Status {
		case "granted":
			g = append(g, x.Permission)
		case "declined":
			d = append(d, x.Permission)
		case "expired":
			e = append(e, x.Permission)
		}
	}
	return Permissions{Granted: social.NewScopes(g...), Declined: social.NewScopes(d...), Expired: social.NewScopes(e...)}, nil
}

// Permissions reads the session's user's permissions from
// /me/permissions.
func (p *Provider) Permissions(ctx context.Context, sess *social.Session) (Permissions, error) {
	tok, err := sess.Token(ctx)
	if err != nil {
		return Permissions{}, fmt.Errorf("meta: permissions: %w", err)
	}
	perms, err := p.permissions(ctx, tok.AccessToken)
	if errors.Is(err, social.ErrInvalidToken) {
		return Permissions{}, refused(ctx, sess, err)
	}
	return perms, err
}

// TokenInfo is what debug_token says of a token.
type TokenInfo struct {
	AppID  string
	UserID string
	// Type is USER, PAGE, APP…
	Type string
	// ProfileID is the Page of a Page token.
	ProfileID string
	Valid     bool
	// ExpiresAt is zero for a token that does not expire.
	ExpiresAt time.Time
	IssuedAt  time.Time
	Scopes    social.Scopes
	// ErrorCode and ErrorSubcode say why an invalid token is invalid.
	ErrorCode, ErrorSubcode int
}

type debugAnswer struct {
	Data struct {
		AppID     ID        `json:"app_id"`
		UserID    ID        `json:"user_id"`
		Type      string    `json:"type"`
		ProfileID ID        `json:"profile_id"`
		IsValid   Bool      `json:"is_valid"`
		ExpiresAt Timestamp `json:"expires_at"`
		IssuedAt  Timestamp `json:"issued_at"`
		Scopes    []string  `json:"scopes"`
		Error     *struct {
			Code    Int `json:"code"`
			Subcode Int `json:"subcode"`
		} `json:"error"`
	} `json:"data"`
}

// DebugToken inspects a token with debug_token, authenticated with the
// app token. It fails when the token was issued to another app.
func (p *Provider) DebugToken(ctx context.Context, token vault.Secret) (TokenInfo, error) {
	info, err := p.debugToken(ctx, string(token.Reveal()))
	if err != nil {
		return TokenInfo{}, fmt.Errorf("meta: debug_token: %w", err)
	}
	return info, nil
}

func (p *Provider) debugToken(ctx context.Context, token string) (TokenInfo, error) {
	var a debugAnswer
	appToken := p.appToken()
	r := request{method: http.MethodGet, path: "/debug_token", idempotent: true, appToken: true,
		query: url.Values{"input_token": {token}}}
	if _, err := p.call(ctx, r, appToken, &a); err != nil {
		return TokenInfo{}, err
	}
	d := a.Data
	info := TokenInfo{AppID: string(d.AppID), UserID: string(d.UserID), Type: d.Type, ProfileID: string(d.ProfileID),
		Valid: bool(d.IsValid), ExpiresAt: d.ExpiresAt.Time, IssuedAt: d.IssuedAt.Time, Scopes: social.NewScopes(d.Scopes...)}
	if d.Error != nil {
		info.ErrorCode, info.ErrorSubcode = int(d.Error.Code), int(d.Error.Subcode)
	}
	if info.Valid && info.AppID != p.cfg.AppID {
		return TokenInfo{}, fmt.Errorf("%w: the token belongs to another app", social.ErrInvalidToken)
	}
	return info, nil
}

// ErrShortLivedPageToken is returned for a Page token that expires: it
// was taken with a short-lived user token and would stop working within
// the hour, so it is not stored.
var ErrShortLivedPageToken = errors.New("meta: the Page token is short-lived")

// PageConnection is a Page connected by ConnectPages, or why it was not.
type PageConnection struct {
	PageID, Name string
	// Connection is the Page's connection (zero when Err is set).
	Connection social.Connection
	// Instagram is the connection of the Instagram professional account
	// linked to the Page, holding the Page's token (which reaches the
	// account); nil when none is linked or instagram_basic is not granted.
	Instagram *social.Connection
	// Err says why the Page was not connected (ErrShortLivedPageToken…).
	Err error
}

// ConnectPages stores a connection per Page the session's user manages,
// each holding that Page's token (sealed, like every token) from
// /me/accounts. Only Page tokens that do not expire are stored — those a
// long-lived user token yields; debug_token checks each. The Page
// connections share the user connection's permissions and purposes; Page
// clients (New with a Page connection's session) publish and read
// insights. It needs pages_show_list.
func (p *Provider) ConnectPages(ctx context.Context, sess *social.Session) ([]PageConnection, error) {
	if err := sess.Require(PermPagesShowList); err != nil {
		return nil, err
	}
	tok, err := sess.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("meta: connect pages: %w", err)
	}
	var out []PageConnection
	q := url.Values{"fields": {"id,name,access_token,tasks"}, "limit": {"100"}}
	for {
		var l list[struct {
			ID          ID     `json:"id"`
			Name        string `json:"name"`
			AccessToken string `json:"access_token"`
		}]
		_, err := p.call(ctx, request{method: http.MethodGet, path: "/me/accounts", query: q, idempotent: true, need: []string{PermPagesShowList}}, tok.AccessToken, &l)
		if errors.Is(err, social.ErrInvalidToken) {
			return out, refused(ctx, sess, err)
		}
		if err != nil {
			return out, fmt.Errorf("meta: connect pages: %w", err)
		}
		for _, pg := range l.Data {
			pc := PageConnection{PageID: string(pg.ID), Name: pg.Name}
			pc.Connection, pc.Err = p.connectPage(ctx, sess, pg.ID, pg.Name, pg.AccessToken)
			if pc.Err == nil && sess.Scopes().Has(PermInstagramBasic) {
				pc.Instagram, pc.Err = p.connectInstagram(ctx, sess, pg.ID, pg.AccessToken, pc.Connection.Scopes)
			}
			out = append(out, pc)
		}
		if l.Paging.Next == "" || l.Paging.Cursors.After == "" {
			return out, nil
		}
		q.Set("after", l.Paging.Cursors.After)
	}
}

func (p *Provider) connectPage(ctx context.Context, sess *social.Session, id ID, name, token string) (social.Connection, error) {
	if token == "" {
		return social.Connection{}, fmt.Errorf("meta: page %s: no Page token (role or pages_show_list missing)", id)
	}
	info, err := p.debugToken(ctx, token)
	if err != nil {
		return social.Connection{}, fmt.Errorf("meta: page %s: %w", id, err)
	}
	if !info.Valid || info.Type != "PAGE" {
		return social.Connection{}, fmt.Errorf("meta: page %s: %w: debug_token says invalid or not a Page token", id, social.ErrInvalidToken)
	}
	if !info.ExpiresAt.IsZero() {
		return social.Connection{}, fmt.Errorf("meta: page %s: %w", id, ErrShortLivedPageToken)
	}
	g := &social.Grant{AccountID: string(id), DisplayName: name, Scopes: info.Scopes.Intersect(sess.Scopes()),
		AccessToken: vault.NewSecret([]byte(token))}
	defer g.Wipe()
	return sess.ConnectDerived(ctx, g)
}

// connectInstagram stores the Instagram account linked to pageID, if any,
// as a connection holding the Page token.
func (p *Provider) connectInstagram(ctx context.Context, sess *social.Session, pageID ID, token string, scopes social.Scopes) (*social.Connection, error) {
	var w wirePage
	r := request{method: http.MethodGet, path: "/" + string(pageID), idempotent: true,
		query: url.Values{"fields": {"id,instagram_business_account{id,username}"}}}
	if _, err := p.call(ctx, r, token, &w); err != nil {
		return nil, fmt.Errorf("meta: page %s: instagram account: %w", pageID, err)
	}
	pg := w.page()
	if pg.Instagram == nil {
		return nil, nil
	}
	name := pg.Instagram.Username
	if name != "" {
		name = "@" + name
	}
	g := &social.Grant{AccountID: pg.Instagram.ID, DisplayName: name, Scopes: scopes,
		AccessToken: vault.NewSecret([]byte(token))}
	defer g.Wipe()
	c, err := sess.ConnectDerived(ctx, g)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// refused reports a token Meta refused on the session: 190/458 (the user
// removed the app) revokes the connections, anything else makes the
// connection needs_reauth.
func refused(ctx context.Context, sess *social.Session, err error) error {
	if errors.Is(err, ErrAppRemoved) {
		return sess.Removed(ctx, err)
	}
	return sess.Refused(ctx, err)
}

// ErrTokenMismatch is returned by Verify when debug_token describes a
// token of another account than the connection's.
var ErrTokenMismatch = errors.New("meta: the token belongs to another account")

// Verify re-checks the session's token with debug_token, as Meta asks
// apps that do not use its SDKs to do at least daily. A token Meta says is
// invalid moves the connection to needs_reauth (the error wraps
// social.ErrNeedsReauth); a token of another app or account fails with
// social.ErrInvalidToken or ErrTokenMismatch.
func (p *Provider) Verify(ctx context.Context, sess *social.Session) (TokenInfo, error) {
	tok, err := sess.Token(ctx)
	if err != nil {
		return TokenInfo{}, fmt.Errorf("meta: verify: %w", err)
	}
	info, err := p.debugToken(ctx, tok.AccessToken)
	if err != nil {
		return TokenInfo{}, fmt.Errorf("meta: verify: %w", err)
	}
	if !info.Valid {
		cause := &APIError{Code: info.ErrorCode, Subcode: info.ErrorSubcode, Message: "debug_token: the token is invalid"}
		if cause.Code == 0 {
			cause.Code = CodeInvalidToken
		}
		return info, refused(ctx, sess, cause)
	}
	acct := sess.Connection().AccountID
	if acct != info.UserID && acct != info.ProfileID {
		// An Instagram connection holds its Page's token.
		if info.Type != "PAGE" || info.ProfileID == "" {
			return info, fmt.Errorf("%w: connection %s", ErrTokenMismatch, sess.Connection().ID)
		}
	}
	return info, nil
}

// appToken is the app access token "{app-id}|{app-secret}".
func (p *Provider) appToken() string { return p.cfg.AppID + "|" + string(p.cfg.AppSecret.Reveal()) }

package tiktok_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

func TestConnect(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"profile", "stats", "video.read"}, "user.info.stats")

		require.Equal(t, tiktok.Platform, conn.Platform)
		require.Equal(t, openID, conn.AccountID)
		require.Equal(t, social.StatusActive, conn.Status)
		require.Equal(t, social.NewScopes("user.info.basic", "user.info.profile", "user.info.stats", "video.list"), conn.Requested)
		require.Equal(t, social.NewScopes("user.info.basic", "user.info.profile", "video.list"), conn.Scopes)
		require.Equal(t, social.NewScopes("user.info.stats"), conn.Declined(), "declined scope recorded as not granted")
		require.Equal(t, social.Purposes{"analytics"}, conn.Purposes)
		require.Equal(t, e.clk.Now().Add(tiktoktest.DefaultAccessTokenLifetime), conn.TokenExpiry)

		// What went over the wire: client_key, comma scopes, hex S256, verifier.
		auth := e.srv.RequestsTo(tiktoktest.TokenPath)
		require.Len(t, auth, 1)
		f := auth[0].Form
		require.Equal(t, clientKey, f.Get("client_key"))
		require.False(t, f.Has("client_id"))
		require.Equal(t, "authorization_code", f.Get("grant_type"))
		require.Equal(t, redirectURI, f.Get("redirect_uri"))
		require.NotEmpty(t, f.Get("code_verifier"))

		// Stored sealed, never plaintext; round trip through the store.
		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.False(t, got.AccessToken.IsZero())
		require.False(t, got.RefreshToken.IsZero())
		tok, err := e.store.Token(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(tok.AccessToken, "act."))
		require.NotContains(t, string(got.AccessToken.Bytes()), tok.AccessToken)
		var raw []byte
		require.NoError(t, tenancy.RunInTx(e.ctx, db.DB, nil, func(ctx contextT, tx bunTx) error {
			return tx.NewRaw("SELECT access_token FROM socialcrm_social_connections WHERE tenant_id = ?", mustTenant(e.ctx)).Scan(ctx, &raw)
		}))
		require.NotContains(t, string(raw), tok.AccessToken)

		// A second consent for the same account updates the connection.
		again := e.connect([]string{"profile", "stats", "video.read"})
		require.Equal(t, conn.ID, again.ID)
		require.Empty(t, again.Declined())
		require.Equal(t, []string{"vault.key_created", "connection.connected", "connection.connected"}, e.auditActions())
	})
}

func TestConsentURL(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		flow, err := e.store.NewFlow(e.prov, social.FlowConfig{Features: []string{"stats", "video.read"}})
		require.NoError(t, err)
		authURL, err := flow.Begin(e.ctx)
		require.NoError(t, err)
		u, err := url.Parse(authURL)
		require.NoError(t, err)
		q := u.Query()
		require.Equal(t, clientKey, q.Get("client_key"))
		require.False(t, q.Has("client_id"))
		require.Equal(t, "user.info.basic,user.info.stats,video.list", q.Get("scope"), "exactly the union of the features' scopes")
		require.Equal(t, "S256", q.Get("code_challenge_method"))
		require.Regexp(t, `^[0-9a-f]{64}$`, q.Get("code_challenge"))
		require.Equal(t, "code", q.Get("response_type"))
		require.NotEmpty(t, q.Get("state"))
	})
}

func TestChallengeBase64URL(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db, tiktoktest.WithApp(tiktoktest.App{
			ClientKey: "ck-web", ClientSecret: "cs-web", RedirectURIs: []string{redirectURI},
			Scopes: []string{"user.info.basic"}, Challenge: tiktoktest.ChallengeBase64URL,
		}))
		cfg := e.cfg
		cfg.ClientKey, cfg.ClientSecret, cfg.Challenge = "ck-web", "cs-web", tiktok.ChallengeBase64URL
		p, err := tiktok.NewProvider(cfg, e.clientOpts()...)
		require.NoError(t, err)
		flow, err := e.store.NewFlow(noProfile{p}, social.FlowConfig{Features: []string{"basic"}})
		require.NoError(t, err)
		authURL, err := flow.Begin(e.ctx)
		require.NoError(t, err)
		cb, err := e.srv.Consent(authURL, openID, tiktoktest.ConsentOptions{})
		require.NoError(t, err)
		conn, err := flow.Complete(e.ctx, callbackQuery(t, cb))
		require.NoError(t, err)
		require.Equal(t, social.NewScopes("user.info.basic"), conn.Scopes)
	})
}

// noProfile offers a feature needing only user.info.basic, for an app
// approved for nothing else.
type noProfile struct{ *tiktok.Provider }

func (noProfile) Features() []social.Feature {
	return []social.Feature{{Name: "basic", Scopes: social.NewScopes("user.info.basic")}}
}

func TestReadOnly(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		_, err := e.store.NewFlow(e.prov, social.FlowConfig{Features: []string{"profile", "publish"}, ReadOnly: true})
		require.ErrorIs(t, err, social.ErrWriteScope)
		_, err = e.store.NewFlow(e.prov, social.FlowConfig{Features: []string{"upload"}, ReadOnly: true})
		require.ErrorIs(t, err, social.ErrWriteScope)
		_, err = e.store.NewFlow(e.prov, social.FlowConfig{Features: []string{"nope"}})
		require.ErrorIs(t, err, social.ErrConfig)

		flow, err := e.store.NewFlow(e.prov, social.FlowConfig{Features: []string{"profile", "stats", "video.read"}, ReadOnly: true})
		require.NoError(t, err)
		for _, sc := range flow.Scopes() {
			require.NotContains(t, []string{tiktok.ScopeVideoPublish, tiktok.ScopeVideoUpload}, sc)
		}
		authURL, err := flow.Begin(e.ctx)
		require.NoError(t, err)
		require.NotContains(t, authURL, "video.publish")
		require.NotContains(t, authURL, "video.upload")
	})
}

func TestFlowStateErrors(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		flow, err := e.store.NewFlow(e.prov, social.FlowConfig{Features: []string{"video.read"}})
		require.NoError(t, err)
		begin := func() url.Values {
			authURL, err := flow.Begin(e.ctx)
			require.NoError(t, err)
			cb, err := e.srv.Consent(authURL, openID, tiktoktest.ConsentOptions{})
			require.NoError(t, err)
			return callbackQuery(t, cb)
		}
		var se *social.StateError

		// Replayed callback: state and code are single use.
		q := begin()
		_, err = flow.Complete(e.ctx, q)
		require.NoError(t, err)
		e.srv.ClearRequests()
		_, err = flow.Complete(e.ctx, q)
		require.ErrorAs(t, err, &se)
		require.ErrorIs(t, err, social.ErrStateUsed)
		require.Empty(t, e.srv.RequestsTo(tiktoktest.TokenPath), "a replay never reaches the token endpoint")

		// Expired state.
		q = begin()
		e.clk.Advance(social.StateLifetime + time.Second)
		_, err = flow.Complete(e.ctx, q)
		require.ErrorIs(t, err, social.ErrStateExpired)
		_, err = flow.Complete(e.ctx, q)
		require.ErrorIs(t, err, social.ErrStateUsed, "an expired state is spent too")

		// Another tenant's state.
		q = begin()
		_, err = flow.Complete(owner(tenancy.NewID()), q)
		require.ErrorAs(t, err, &se)
		require.ErrorIs(t, err, social.ErrStateTenant)
		// It is still usable by its own tenant.
		_, err = flow.Complete(e.ctx, q)
		require.NoError(t, err)

		// Unknown and missing states.
		q = begin()
		q.Set("state", q.Get("state")+"x")
		_, err = flow.Complete(e.ctx, q)
		require.ErrorIs(t, err, social.ErrStateUnknown)
		_, err = flow.Complete(e.ctx, url.Values{"code": {"c"}})
		require.ErrorIs(t, err, social.ErrStateUnknown)

		// The user denies: a typed consent error.
		authURL, err := flow.Begin(e.ctx)
		require.NoError(t, err)
		cb, err := e.srv.Consent(authURL, openID, tiktoktest.ConsentOptions{Deny: true})
		require.NoError(t, err)
		_, err = flow.Complete(e.ctx, callbackQuery(t, cb))
		var ce *social.ConsentError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, "access_denied", ce.Code)

		// A replayed code with a fresh state fails at the platform.
		q = begin()
		code := q.Get("code")
		_, err = flow.Complete(e.ctx, q)
		require.NoError(t, err)
		q = begin()
		q.Set("code", code)
		_, err = flow.Complete(e.ctx, q)
		require.ErrorIs(t, err, social.ErrInvalidGrant)
		var oe *tiktok.OAuthError
		require.ErrorAs(t, err, &oe)

		// No tenant: fails closed.
		_, err = flow.Begin(t.Context())
		require.True(t, errors.Is(err, tenancy.ErrNoTenant))
	})
}

package oauth2conformance_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/storage"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// authServer is a standards-conforming OAuth 2.0 authorization server
// (ory/fosite) running in-process: PKCE S256 enforced (plain refused),
// redirect URIs matched exactly, single-use codes, refresh tokens rotated
// on every use whose reuse revokes the whole grant, RFC 7009 revocation,
// and a user-info endpoint naming the subject. Its consent grants every
// requested scope but those in decline.
type authServer struct {
	*httptest.Server
	provider fosite.OAuth2Provider
	store    *storage.MemoryStore
	subject  string
	decline  []string
}

const (
	asClientID = "crm-app"
	asSecret   = "as-secret-canary-0451"
	asRedirect = "https://crm.example/oauth/callback"
)

func startAuthServer(t *testing.T) *authServer {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(asSecret), bcrypt.MinCost)
	require.NoError(t, err)
	store := storage.NewMemoryStore()
	store.Clients[asClientID] = &fosite.DefaultClient{
		ID: asClientID, Secret: hash, RedirectURIs: []string{asRedirect},
		ResponseTypes: []string{"code"}, GrantTypes: []string{"authorization_code", "refresh_token"},
		Scopes: []string{"offline", "read", "write"},
	}
	cfg := &fosite.Config{
		AccessTokenLifespan: time.Hour,
		GlobalSecret:        []byte("a 32-byte global secret for hmac"),
		EnforcePKCE:         true,
		ScopeStrategy:       fosite.ExactScopeStrategy,
	}
	as := &authServer{store: store, subject: "user-7"}
	as.provider = compose.Compose(cfg, store, &compose.CommonStrategy{CoreStrategy: compose.NewOAuth2HMACStrategy(cfg)},
		compose.OAuth2AuthorizeExplicitFactory, compose.OAuth2RefreshTokenGrantFactory, compose.OAuth2PKCEFactory,
		compose.OAuth2TokenRevocationFactory, compose.OAuth2TokenIntrospectionFactory)
	mux := http.NewServeMux()
	mux.HandleFunc("/authorize", as.authorize)
	mux.HandleFunc("/token", as.token)
	mux.HandleFunc("/revoke", func(w http.ResponseWriter, r *http.Request) {
		as.provider.WriteRevocationResponse(r.Context(), w, as.provider.NewRevocationRequest(r.Context(), r))
	})
	mux.HandleFunc("/userinfo", func(w http.ResponseWriter, r *http.Request) {
		_, ar, err := as.provider.IntrospectToken(r.Context(), fosite.AccessTokenFromRequest(r), fosite.AccessToken, &fosite.DefaultSession{})
		if err != nil {
			http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"sub": ar.GetSession().GetSubject(), "name": "Ada"})
	})
	as.Server = httptest.NewServer(mux)
	t.Cleanup(as.Close)
	return as
}

func (as *authServer) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, err := as.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		as.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	for _, s := range ar.GetRequestedScopes() {
		if !strings.Contains(" "+strings.Join(as.decline, " ")+" ", " "+s+" ") {
			ar.GrantScope(s)
		}
	}
	resp, err := as.provider.NewAuthorizeResponse(ctx, ar, &fosite.DefaultSession{Subject: as.subject})
	if err != nil {
		as.provider.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	as.provider.WriteAuthorizeResponse(ctx, w, ar, resp)
}

func (as *authServer) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	req, err := as.provider.NewAccessRequest(ctx, r, &fosite.DefaultSession{})
	if err != nil {
		as.provider.WriteAccessError(ctx, w, req, err)
		return
	}
	resp, err := as.provider.NewAccessResponse(ctx, req)
	if err != nil {
		as.provider.WriteAccessError(ctx, w, req, err)
		return
	}
	as.provider.WriteAccessResponse(ctx, w, req, resp)
}

// consent follows the authorization URL as the user's browser would and
// returns the query of the redirect to the callback.
func (as *authServer) consent(t *testing.T, authURL string) url.Values {
	t.Helper()
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(authURL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	return loc.Query()
}

// active reports whether the server still honours tok.
func (as *authServer) active(t *testing.T, tok string, kind fosite.TokenType) bool {
	t.Helper()
	_, _, err := as.provider.IntrospectToken(context.Background(), tok, kind, &fosite.DefaultSession{})
	return err == nil
}

func (as *authServer) config() social.OAuth2Config {
	return social.OAuth2Config{
		Platform: "acme", ClientID: asClientID, ClientSecret: vault.NewSecret([]byte(asSecret)),
		AuthURL: as.URL + "/authorize", TokenURL: as.URL + "/token", RevocationURL: as.URL + "/revoke",
		UserInfoURL: as.URL + "/userinfo", RedirectURL: asRedirect, AuthStyle: oauth2.AuthStyleInHeader,
		Features: []social.Feature{
			{Name: "read", Scopes: social.NewScopes("offline", "read")},
			{Name: "write", Scopes: social.NewScopes("offline", "write"), Write: true},
		},
		HTTPClient: as.Client(),
	}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func setupDB(ctx context.Context, db *bun.DB) error {
	if err := migrations.Run(ctx, db, tenancy.Migrations(), vault.Migrations(), social.Migrations()); err != nil {
		return err
	}
	_, err := tenancy.InstallGuard(db, append(append(vault.Models(), (*tenancy.AuditEntry)(nil)), social.Models()...)...)
	return err
}

func newStore(t *testing.T, db bun.IDB, clk *fakeclock.Clock, p social.Provider) *social.Store {
	t.Helper()
	kek := testkit.NewKEK(t)
	v, err := vault.New(db, kek, vault.WithClock(clk.Now))
	require.NoError(t, err)
	opts := []social.Option{social.WithClock(clk.Now)}
	if p != nil {
		opts = append(opts, social.WithProviders(p))
	}
	s, err := social.New(db, v, opts...)
	require.NoError(t, err)
	return s
}

// TestOAuth2Provider connects, refreshes and disconnects an account of a
// platform declared by configuration alone, against a standards-conforming
// authorization server.
func TestOAuth2Provider(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		as := startAuthServer(t)
		p, err := social.NewOAuth2Provider(as.config())
		require.NoError(t, err)
		clk := fakeclock.New()
		clk.Set(time.Now().UTC())
		store := newStore(t, db.DB, clk, p)
		ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), MemberID: tenancy.NewID(), Role: tenancy.RoleOwner})

		flow, err := store.NewFlow(p, social.FlowConfig{Features: []string{"read"}, Purposes: []string{"analytics"}})
		require.NoError(t, err)
		authURL, err := flow.Begin(ctx)
		require.NoError(t, err)
		q, err := url.Parse(authURL)
		require.NoError(t, err)
		require.Equal(t, "S256", q.Query().Get("code_challenge_method"))
		cb := as.consent(t, authURL)
		require.Empty(t, cb.Get("error"), cb.Get("error_description"))
		conn, err := flow.Complete(ctx, cb)
		require.NoError(t, err)
		require.Equal(t, "user-7", conn.AccountID, "named by the user-info endpoint")
		require.Equal(t, "Ada", conn.DisplayName)
		require.Equal(t, social.NewScopes("offline", "read"), conn.Scopes)

		// The code is single use: a replayed callback never reaches the server.
		_, err = flow.Complete(ctx, cb)
		require.ErrorIs(t, err, social.ErrStateUsed)

		first, err := store.Token(ctx, conn.ID, p)
		require.NoError(t, err)
		require.True(t, as.active(t, first.AccessToken, fosite.AccessToken))

		// Refresh: the refresh token rotates; the retired one is dead.
		clk.Advance(time.Hour)
		second, err := store.Token(ctx, conn.ID, p)
		require.NoError(t, err)
		require.NotEqual(t, first.AccessToken, second.AccessToken)
		require.True(t, as.active(t, second.AccessToken, fosite.AccessToken))
		clk.Advance(time.Hour)
		third, err := store.Token(ctx, conn.ID, p)
		require.NoError(t, err, "the rotated refresh token was stored")
		got, err := store.Get(ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusActive, got.Status)
		require.Equal(t, conn.TokenVersion+2, got.TokenVersion)

		// A caller that goes away once the server rotated the refresh
		// token loses nothing: presenting the retired one would revoke the
		// whole grant (reuse detection).
		cctx, cancel := context.WithCancel(ctx)
		cfg := as.config()
		cfg.HTTPClient = &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
			resp, err := as.Client().Transport.RoundTrip(r)
			cancel()
			return resp, err
		})}
		cancelling, err := social.NewOAuth2Provider(cfg)
		require.NoError(t, err)
		clk.Advance(time.Hour)
		_, _ = store.Token(cctx, conn.ID, cancelling)
		clk.Advance(time.Hour)
		third, err = store.Token(ctx, conn.ID, p)
		require.NoError(t, err, "the refresh token rotated under a cancelled caller was stored")
		require.True(t, as.active(t, third.AccessToken, fosite.AccessToken))

		// Disconnect revokes at the server: both tokens stop working.
		_, err = store.Disconnect(ctx, conn.ID, nil)
		require.NoError(t, err)
		require.False(t, as.active(t, third.AccessToken, fosite.AccessToken))
		n, err := store.PendingRevocations(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
	}, setupDB)
}

// TestOAuth2ProviderRefusals: a declined scope is recorded as declined, a
// refresh token the server revoked makes the connection needs_reauth, and
// the configuration is checked.
func TestOAuth2ProviderRefusals(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		as := startAuthServer(t)
		as.decline = []string{"write"}
		p, err := social.NewOAuth2Provider(as.config())
		require.NoError(t, err)
		clk := fakeclock.New()
		clk.Set(time.Now().UTC())
		store := newStore(t, db.DB, clk, p)
		ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), MemberID: tenancy.NewID(), Role: tenancy.RoleOwner})
		flow, err := store.NewFlow(p, social.FlowConfig{Features: []string{"read", "write"}})
		require.NoError(t, err)
		authURL, err := flow.Begin(ctx)
		require.NoError(t, err)
		conn, err := flow.Complete(ctx, as.consent(t, authURL))
		require.NoError(t, err)
		require.Equal(t, social.NewScopes("write"), conn.Declined())

		// The grant is revoked at the server (the user removed the app).
		tok, err := store.Token(ctx, conn.ID, p)
		require.NoError(t, err)
		resp, err := as.Client().PostForm(as.URL+"/revoke", url.Values{"token": {tok.AccessToken}, "client_id": {asClientID}, "client_secret": {asSecret}})
		require.NoError(t, err)
		resp.Body.Close()
		sess, err := store.Session(ctx, conn.ID, p)
		require.NoError(t, err)
		_, err = sess.Token(ctx)
		require.NoError(t, err)
		err = sess.Refused(ctx, social.ErrInvalidToken)
		// fosite revokes the refresh token with the access token's grant:
		// the refresh fails, and only then is the connection given up.
		require.ErrorIs(t, err, social.ErrNeedsReauth)
		var oe *social.OAuth2Error
		require.True(t, errors.As(err, &oe), "%v", err)
		require.Equal(t, "invalid_grant", oe.Code)
		require.NotContains(t, err.Error(), asSecret)

		for _, bad := range []func(*social.OAuth2Config){
			func(c *social.OAuth2Config) { c.Platform = "" },
			func(c *social.OAuth2Config) { c.ClientID = "" },
			func(c *social.OAuth2Config) { c.TokenURL = "/relative" },
			func(c *social.OAuth2Config) { c.Features = nil },
		} {
			c := as.config()
			bad(&c)
			_, err := social.NewOAuth2Provider(c)
			require.ErrorIs(t, err, social.ErrConfig)
		}
	}, setupDB)
}

// TestOAuth2ProviderWithoutUserInfo: a standard token answer names no
// account; each connect then makes a connection of its own, named by its
// id.
func TestOAuth2ProviderWithoutUserInfo(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		as := startAuthServer(t)
		cfg := as.config()
		cfg.UserInfoURL = ""
		p, err := social.NewOAuth2Provider(cfg)
		require.NoError(t, err)
		clk := fakeclock.New()
		clk.Set(time.Now().UTC())
		store := newStore(t, db.DB, clk, p)
		ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), MemberID: tenancy.NewID(), Role: tenancy.RoleOwner})
		flow, err := store.NewFlow(p, social.FlowConfig{Features: []string{"read"}})
		require.NoError(t, err)
		var ids []string
		for range 2 {
			authURL, err := flow.Begin(ctx)
			require.NoError(t, err)
			conn, err := flow.Complete(ctx, as.consent(t, authURL))
			require.NoError(t, err)
			require.Equal(t, conn.ID, conn.AccountID)
			ids = append(ids, conn.ID)
		}
		require.NotEqual(t, ids[0], ids[1])
	}, setupDB)
}

// TestRetryRevocationsEveryPlatform: revokes that failed at disconnect, on
// two platforms, are retried by one call through the registered providers,
// both tokens each time.
func TestRetryRevocationsEveryPlatform(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		clk := fakeclock.New()
		clk.Set(time.Now().UTC())
		var servers []*authServer
		var good []social.Provider
		var broken []*social.OAuth2Provider
		for _, name := range []string{"acme", "bolt"} {
			as := startAuthServer(t)
			cfg := as.config()
			cfg.Platform = name
			p, err := social.NewOAuth2Provider(cfg)
			require.NoError(t, err)
			cfg.RevocationURL = as.URL + "/revoke-unavailable" // 404: the revoke fails
			b, err := social.NewOAuth2Provider(cfg)
			require.NoError(t, err)
			servers, good, broken = append(servers, as), append(good, p), append(broken, b)
		}
		kek := testkit.NewKEK(t)
		v, err := vault.New(db.DB, kek, vault.WithClock(clk.Now))
		require.NoError(t, err)
		store, err := social.New(db.DB, v, social.WithClock(clk.Now), social.WithProviders(good...))
		require.NoError(t, err)
		ctx := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tenancy.NewID(), MemberID: tenancy.NewID(), Role: tenancy.RoleOwner})
		var access []string
		for i, p := range good {
			flow, err := store.NewFlow(p, social.FlowConfig{Features: []string{"read"}})
			require.NoError(t, err)
			authURL, err := flow.Begin(ctx)
			require.NoError(t, err)
			conn, err := flow.Complete(ctx, servers[i].consent(t, authURL))
			require.NoError(t, err)
			tok, err := store.Token(ctx, conn.ID, p)
			require.NoError(t, err)
			access = append(access, tok.AccessToken)
			_, err = store.Disconnect(ctx, conn.ID, broken[i])
			require.NoError(t, err)
			require.True(t, servers[i].active(t, tok.AccessToken, fosite.AccessToken), "not revoked yet")
		}
		n, err := store.PendingRevocations(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		clk.Advance(2 * time.Minute)
		done, err := store.RetryRevocations(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, done)
		for i, as := range servers {
			require.False(t, as.active(t, access[i], fosite.AccessToken))
		}
		n, err = store.PendingRevocations(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
	}, setupDB)
}

package meta_test

import (
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
)

func TestAuthCodeURL(t *testing.T) {
	db := dbtest.SQLite(t, setupDB)
	e := newEnv(t, db)
	flow, err := e.store.NewFlow(e.prov, social.FlowConfig{Features: []string{meta.FeaturePagesPublish, meta.FeatureInstagramInsights}})
	require.NoError(t, err)
	raw, err := flow.Begin(e.ctx)
	require.NoError(t, err)
	u, err := url.Parse(raw)
	require.NoError(t, err)
	q := u.Query()
	if got := u.Scheme + "://" + u.Host + u.Path; got != e.srv.DialogURL() {
		t.Errorf("dialog URL = %q, want %q", got, e.srv.DialogURL())
	}
	want := "instagram_basic,instagram_manage_insights,pages_manage_posts,pages_read_engagement,pages_show_list,public_profile,publish_video"
	if q.Get("scope") != want || q.Get("client_id") != appID || q.Get("redirect_uri") != redirect || q.Get("state") == "" || q.Get("response_type") != "code" {
		t.Errorf("AuthCodeURL query = %v, want scope %s", q, want)
	}
	_, err = e.store.NewFlow(e.prov, social.FlowConfig{Features: []string{meta.FeaturePagesPublish}, ReadOnly: true})
	require.ErrorIs(t, err, social.ErrWriteScope)
}

func TestDefaultsAndConfig(t *testing.T) {
	_, err := meta.NewProvider(meta.Config{AppID: "1"})
	require.ErrorIs(t, err, meta.ErrConfig)
	_, err = meta.NewProvider(meta.Config{AppID: "1", AppSecret: secretOf("x"), RedirectURL: redirect, Version: "26"})
	require.ErrorIs(t, err, meta.ErrConfig)
	_, err = meta.NewProvider(meta.Config{AppID: "1", AppSecret: secretOf("x"), RedirectURL: redirect, GraphURL: "graph"})
	require.ErrorIs(t, err, meta.ErrConfig)
	_, err = meta.NewProvider(meta.Config{AppID: "1", AppSecret: secretOf("x"), RedirectURL: redirect}, meta.WithClock(nil))
	require.ErrorIs(t, err, meta.ErrConfig)
	_, err = meta.NewProvider(meta.Config{AppID: "1", AppSecret: secretOf("x"), RedirectURL: redirect}, meta.WithRetry(0, nil))
	require.ErrorIs(t, err, meta.ErrConfig)
	_, err = meta.New(meta.Config{AppID: "1", AppSecret: secretOf("x")})
	require.ErrorIs(t, err, meta.ErrConfig, "New without a session")
	p, err := meta.NewProvider(meta.Config{AppID: "1", AppSecret: secretOf("x"), RedirectURL: redirect})
	require.NoError(t, err)
	u, _ := url.Parse(p.AuthCodeURL(social.AuthRequest{State: "s", Scopes: social.NewScopes("public_profile")}))
	if got := u.Host + u.Path; got != "www.facebook.com/"+meta.DefaultVersion+"/dialog/oauth" {
		t.Errorf("default dialog = %q", got)
	}
}

// TestLoginFlow: code → short-lived → long-lived user token, the
// permissions read from /me/permissions with declined ones left out, and
// Page connections holding never-expiring Page tokens.
func TestLoginFlow(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect(userID, allFeatures, meta.PermInstagramManageInsights)
		require.Equal(t, userID, conn.AccountID)
		require.Equal(t, "Ada Admin", conn.DisplayName)
		require.Equal(t, social.StatusActive, conn.Status)
		require.False(t, conn.Scopes.Has(meta.PermInstagramManageInsights), "declined permission granted: %v", conn.Scopes)
		require.True(t, conn.Scopes.Has(meta.PermPagesManagePosts))
		require.Equal(t, social.NewScopes(meta.PermInstagramManageInsights), conn.Declined())
		// The stored token is the long-lived one (about 60 days).
		require.WithinDuration(t, e.clk.Now().Add(60*24*time.Hour), conn.TokenExpiry, time.Minute)
		// Every Graph call carried a fresh time-stamped proof; the token
		// exchanges none (they carry the secret itself).
		for _, r := range e.srv.Requests() {
			if r.Path == "/oauth/access_token" {
				require.Empty(t, r.Query.Get("client_secret"), "client_secret in a URL")
				continue
			}
			if r.Path == "/debug_token" {
				continue
			}
			proof := r.Query.Get("appsecret_proof") + r.Form.Get("appsecret_proof")
			at := r.Query.Get("appsecret_time") + r.Form.Get("appsecret_time")
			require.NotEmpty(t, proof, "%s %s without appsecret_proof", r.Method, r.Path)
			require.NotEmpty(t, at, "%s %s without appsecret_time", r.Method, r.Path)
			require.Empty(t, r.Query.Get("access_token"), "token in a URL")
		}

		perms, err := e.prov.Permissions(e.ctx, e.session(conn))
		require.NoError(t, err)
		require.Equal(t, social.NewScopes(meta.PermInstagramManageInsights), perms.Declined)

		pages := e.connectPages(conn)
		require.Len(t, pages, 3, "two Pages and the Instagram account")
		require.Equal(t, "@adasbakery", pages[igID].DisplayName)
		pc := pages[pageID]
		require.Equal(t, "Ada's Bakery", pc.DisplayName)
		require.True(t, pc.TokenExpiry.IsZero(), "Page token from a long-lived user token must not expire")
		require.Equal(t, conn.Purposes, pc.Purposes)
		require.False(t, pc.Scopes.Has(meta.PermInstagramManageInsights))

		sess := e.session(pc)
		tok, err := sess.Token(e.ctx)
		require.NoError(t, err)
		info, err := e.prov.DebugToken(e.ctx, secretOf(tok.AccessToken))
		require.NoError(t, err)
		require.Equal(t, "PAGE", info.Type)
		require.Equal(t, pageID, info.ProfileID)
		require.True(t, info.ExpiresAt.IsZero())
	})
}

// TestShortLivedPageTokensAreNotStored: a Page token taken with a
// short-lived user token ends within the hour; debug_token shows its
// expiry and it is not stored.
func TestShortLivedPageTokensAreNotStored(t *testing.T) {
	db := dbtest.SQLite(t, setupDB)
	e := newEnv(t, db)
	user := e.connect(userID, allFeatures)
	short, err := e.srv.PageToken(appID, userID, pageID, metatest.ShortLived)
	require.NoError(t, err)
	info, err := e.prov.DebugToken(e.ctx, secretOf(short))
	require.NoError(t, err)
	require.False(t, info.ExpiresAt.IsZero())
	_, err = meta.ConnectPage(e.prov, e.ctx, e.session(user), meta.ID(pageID), "Ada's Bakery", short)
	require.ErrorIs(t, err, meta.ErrShortLivedPageToken)
	_, err = e.store.Find(e.ctx, meta.Platform, pageID)
	require.ErrorIs(t, err, social.ErrNotFound)
}

func TestVerifyAndExpiry(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		user := e.connect(userID, allFeatures)
		pages := e.connectPages(user)
		for _, c := range []social.Connection{user, pages[pageID], pages[igID]} {
			info, err := e.prov.Verify(e.ctx, e.session(c))
			require.NoError(t, err, c.AccountID)
			require.True(t, info.Valid)
		}
		// A password change ends every session: Verify marks needs_reauth.
		require.NoError(t, e.srv.ChangePassword(userID))
		_, err := e.prov.Verify(e.ctx, e.session(pages[pageID]))
		require.ErrorIs(t, err, social.ErrNeedsReauth)
		got, err := e.store.Get(e.ctx, pages[pageID].ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusNeedsReauth, got.Status)

		// The long-lived user token expires after about 60 days: no refresh
		// grant, so the connection needs a new login and nothing is sent.
		// Disconnecting it still revokes the app at Meta, with the app token.
		user2 := e.connect(user2ID, []string{meta.FeaturePages})
		c := e.client(user2)
		e.clk.Advance(61 * 24 * time.Hour)
		e.srv.ClearRequests()
		_, _, err = c.Pages.List(e.ctx, meta.ListOptions{})
		require.ErrorIs(t, err, social.ErrNeedsReauth)
		require.Zero(t, e.graphCalls())
		_, err = e.store.Disconnect(e.ctx, user2.ID, e.prov)
		require.NoError(t, err)
		n, err := e.store.PendingRevocations(e.ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		revoked := false
		for _, r := range e.srv.Requests() {
			revoked = revoked || r.Method == "DELETE" && r.Path == "/"+user2ID+"/permissions"
		}
		require.True(t, revoked, "the app was not revoked at Meta for the expired user")
	})
}

func TestConnectPagesScopes(t *testing.T) {
	db := dbtest.SQLite(t, setupDB)
	e := newEnv(t, db)
	user := e.connect(userID, []string{meta.FeaturePages}, meta.PermPagesShowList)
	e.srv.ClearRequests()
	_, err := e.prov.ConnectPages(e.ctx, e.session(user))
	require.ErrorIs(t, err, social.ErrScope)
	require.Zero(t, e.graphCalls())
	// Without instagram_basic, no Instagram connection is made.
	pages := e.connectPages(e.connect(user2ID, []string{meta.FeaturePages}))
	require.Len(t, pages, 1)
}

func TestExchangeRefusedCode(t *testing.T) {
	db := dbtest.SQLite(t, setupDB)
	e := newEnv(t, db)
	flow, err := e.store.NewFlow(e.prov, social.FlowConfig{Features: []string{meta.FeatureProfile}})
	require.NoError(t, err)
	authURL, err := flow.Begin(e.ctx)
	require.NoError(t, err)
	cb, err := e.srv.Consent(authURL, metatest.Consent{UserID: userID})
	require.NoError(t, err)
	q := cb.Query()
	q.Set("code", "not-a-code")
	_, err = flow.Complete(e.ctx, q)
	require.ErrorIs(t, err, social.ErrInvalidGrant)
	var apiErr *meta.APIError
	require.True(t, errors.As(err, &apiErr), "want a *meta.APIError in %v", err)
	require.Equal(t, meta.CodeInvalidParameter, apiErr.Code)

	cb, err = e.srv.Consent(mustBegin(t, e), metatest.Consent{UserID: userID, Deny: true})
	require.NoError(t, err)
	_, err = flow.Complete(e.ctx, cb.Query())
	require.ErrorIs(t, err, social.ErrConsent)
}

func mustBegin(t *testing.T, e *env) string {
	flow, err := e.store.NewFlow(e.prov, social.FlowConfig{Features: []string{meta.FeatureProfile}})
	require.NoError(t, err)
	u, err := flow.Begin(e.ctx)
	require.NoError(t, err)
	return u
}

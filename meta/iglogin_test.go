package meta_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/vault"
)

const (
	creatorID    = "17841400000000077" // a creator without a Facebook Page
	smallID      = "17841400000000078" // a creator with fewer than 100 followers
	creatorMedia = "17950000000000077"
)

// igFeatures are the Instagram features, named alike in both catalogues.
var igFeatures = []string{meta.FeatureInstagram, meta.FeatureInstagramPublish, meta.FeatureInstagramInsights, meta.FeatureInstagramComments}

// igEnv is env with the creators registered, the Instagram hosts in the
// Config and an Instagram Login provider.
type igEnv struct {
	*env
	igProv *meta.InstagramProvider
}

func newIGEnv(t testing.TB, db *dbtest.DB, srvOpts ...metatest.Option) *igEnv {
	t.Helper()
	e := newEnv(t, db, append([]metatest.Option{
		metatest.WithInstagramAccount(metatest.InstagramAccount{ID: creatorID, Username: "ada.creates", Name: "Ada Creates",
			FollowersCount: 5400, FollowsCount: 210, MediaCount: 3}),
		metatest.WithInstagramAccount(metatest.InstagramAccount{ID: smallID, Username: "tiny.start", FollowersCount: 42}),
		metatest.WithMedia(metatest.Media{ID: creatorMedia, OwnerID: creatorID, Caption: "Studio day", LikeCount: 80, CommentsCount: 0}),
	}, srvOpts...)...)
	e.cfg.InstagramGraphURL = e.srv.InstagramGraphURL()
	e.cfg.InstagramLoginURL = e.srv.InstagramLoginURL()
	e.cfg.UploadURL = e.srv.UploadURL()
	p, err := meta.NewInstagramProvider(e.cfg, e.clientOpts()...)
	require.NoError(t, err)
	return &igEnv{env: e, igProv: p}
}

// connectInstagram runs Instagram Login through social.Flow for
// features, the creator declining decline.
func (e *igEnv) connectInstagram(account string, features []string, decline ...string) social.Connection {
	e.t.Helper()
	flow, err := e.store.NewFlow(e.igProv, social.FlowConfig{Features: features, Purposes: []string{"analytics", "publishing"}})
	require.NoError(e.t, err)
	authURL, err := flow.Begin(e.ctx)
	require.NoError(e.t, err)
	require.True(e.t, strings.HasPrefix(authURL, e.srv.InstagramLoginURL()+"/oauth/authorize?"), authURL)
	cb, err := e.srv.InstagramConsent(authURL, metatest.InstagramConsent{AccountID: account, Decline: decline})
	require.NoError(e.t, err)
	require.Equal(e.t, "_", cb.Fragment, "Instagram appends #_ to the redirect")
	conn, err := flow.Complete(e.ctx, cb.Query())
	require.NoError(e.t, err)
	return conn
}

func (e *igEnv) igClient(conn social.Connection) *meta.Client {
	e.t.Helper()
	sess, err := e.store.Session(e.ctx, conn.ID, e.igProv)
	require.NoError(e.t, err)
	c, err := meta.New(e.cfg, append(e.clientOpts(), meta.WithSession(sess))...)
	require.NoError(e.t, err)
	return c
}

func TestInstagramLogin(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newIGEnv(t, db)
		conn := e.connectInstagram(creatorID, igFeatures, "instagram_business_manage_comments")
		require.Equal(t, meta.PlatformInstagram, conn.Platform)
		require.Equal(t, creatorID, conn.AccountID)
		require.Equal(t, "@ada.creates", conn.DisplayName)
		require.Equal(t, meta.InstagramLogin, meta.FlavourOf(conn))
		require.True(t, conn.Scopes.Has(meta.PermInstagramBusinessBasic))
		require.True(t, conn.Scopes.Has(meta.PermInstagramBusinessContentPublish))
		require.False(t, conn.Scopes.Has(meta.PermInstagramBusinessManageComments), "declined")
		// The long-lived token is stored (60 days), not the short-lived one.
		require.WithinDuration(t, e.clk.Now().Add(60*24*time.Hour), conn.TokenExpiry, time.Minute)

		c := e.igClient(conn)
		require.Equal(t, meta.InstagramLogin, c.Flavour())
		p, _, err := c.Instagram.Profile(e.ctx, creatorID)
		require.NoError(t, err)
		require.Equal(t, "ada.creates", p.Username)
		require.EqualValues(t, 5400, p.FollowersCount)
		l, _, err := c.Instagram.ListMedia(e.ctx, creatorID, meta.ListOptions{})
		require.NoError(t, err)
		require.Len(t, l.Media, 1)
		require.Equal(t, creatorMedia, l.Media[0].ID)

		// Calls go to graph.instagram.com, the token in the Authorization
		// header; the code exchange to api.instagram.com.
		hosts := map[string]bool{}
		for _, r := range e.srv.Requests() {
			hosts[r.Host] = true
			if r.Path == "/"+creatorID+"/media" {
				require.Equal(t, "graph.instagram.com", r.Host)
				require.Empty(t, r.Query.Get("access_token"))
			}
			if r.Path == "/oauth/access_token" {
				require.Equal(t, "api.instagram.com", r.Host)
			}
		}
		require.Equal(t, map[string]bool{"graph.instagram.com": true, "api.instagram.com": true}, hosts)

		// Publishing by URL works as with Facebook Login.
		m, _, err := c.Instagram.Publish(e.ctx, creatorID, meta.MediaRequest{ImageURL: "https://cdn.example/a.jpg", Caption: "New print",
			PollInterval: time.Second, Timeout: time.Minute})
		require.NoError(t, err)
		require.NotEmpty(t, m.ID)

		// A call the flavour lacks fails before any request.
		e.srv.ClearRequests()
		_, _, err = c.Pages.List(e.ctx, meta.ListOptions{})
		var fe *meta.FlavourError
		require.ErrorAs(t, err, &fe)
		require.ErrorIs(t, err, meta.ErrFlavour)
		require.Equal(t, meta.InstagramLogin, fe.Flavour)
		_, _, err = c.Instagram.Account(e.ctx, pageID)
		require.ErrorIs(t, err, meta.ErrFlavour)
		// A declined permission is a scope error, also before any request.
		_, _, err = c.InstagramComments.List(e.ctx, creatorMedia, meta.ListOptions{})
		var se *social.ScopeError
		require.ErrorAs(t, err, &se)
		require.Equal(t, social.Scopes{meta.PermInstagramBusinessManageComments}, se.Missing)
		require.Zero(t, e.graphCalls())

		testkit.RequireNoSecret(t, e.logText(), appSecret)
	})
}

func TestInstagramLoginRefreshAndFailures(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newIGEnv(t, db)
		conn := e.connectInstagram(creatorID, []string{meta.FeatureInstagram})
		first, err := e.store.Token(e.ctx, conn.ID, e.igProv)
		require.NoError(t, err)

		// Near the end of its 60 days the token is extended with
		// ig_refresh_token: a new token, another 60 days.
		e.clk.Advance(60*24*time.Hour - 2*time.Minute) // within the store's refresh skew
		c := e.igClient(conn)
		_, _, err = c.Instagram.Profile(e.ctx, creatorID)
		require.NoError(t, err)
		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.WithinDuration(t, e.clk.Now().Add(60*24*time.Hour), got.TokenExpiry, time.Minute)
		second, err := e.store.Token(e.ctx, conn.ID, e.igProv)
		require.NoError(t, err)
		require.NotEqual(t, first.AccessToken, second.AccessToken)
		refreshed := false
		for _, r := range e.srv.Requests() {
			if r.Path == "/refresh_access_token" {
				refreshed = true
				require.Equal(t, "ig_refresh_token", r.Query.Get("grant_type"))
			}
		}
		require.True(t, refreshed)

		// A refused refresh (the creator removed the app) needs a new login.
		require.NoError(t, e.srv.DeauthorizeInstagram(e.ctx, appID, creatorID, ""))
		e.clk.Advance(60*24*time.Hour - 2*time.Minute)
		_, _, err = c.Instagram.Profile(e.ctx, creatorID)
		require.ErrorIs(t, err, social.ErrNeedsReauth)

		// A used code is refused as an invalid grant.
		flow, err := e.store.NewFlow(e.igProv, social.FlowConfig{Features: []string{meta.FeatureInstagram}})
		require.NoError(t, err)
		authURL, err := flow.Begin(e.ctx)
		require.NoError(t, err)
		cb, err := e.srv.InstagramConsent(authURL, metatest.InstagramConsent{AccountID: smallID})
		require.NoError(t, err)
		_, err = e.igProv.Exchange(e.ctx, social.ExchangeRequest{Code: cb.Query().Get("code")})
		require.NoError(t, err)
		_, err = e.igProv.Exchange(e.ctx, social.ExchangeRequest{Code: cb.Query().Get("code")})
		require.ErrorIs(t, err, social.ErrInvalidGrant)
		testkit.RequireNoSecret(t, err.Error(), appSecret)

		// The window refuses an app without instagram_business_basic.
		bad := strings.Replace(authURL, "instagram_business_basic", "instagram_business_content_publish", 1)
		_, err = e.srv.InstagramConsent(bad, metatest.InstagramConsent{AccountID: smallID})
		require.Error(t, err)
		testkit.RequireNoSecret(t, e.logText(), appSecret, first.AccessToken, second.AccessToken)
	})
}

func TestInstagramLoginFacebookTokensRefused(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newIGEnv(t, db)
		user := e.connect(userID, allFeatures)
		tok, err := e.store.Token(e.ctx, user.ID, e.prov)
		require.NoError(t, err)
		// graph.instagram.com does not take a Facebook token.
		req, err := http.NewRequest(http.MethodGet, e.srv.InstagramGraphURL()+"/"+e.srv.Version()+"/me?fields=user_id", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := e.srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		apiErr := meta.DecodeError(resp.StatusCode, readAll(t, resp))
		require.NotNil(t, apiErr)
		require.Equal(t, meta.CodeInvalidToken, apiErr.Code)
	})
}

func TestInstagramLoginCallbacks(t *testing.T) {
	eachWorld(t, func(t *testing.T, w *world) {
		e := &igEnv{env: w.env}
		e.cfg.InstagramGraphURL = e.srv.InstagramGraphURL()
		e.cfg.InstagramLoginURL = e.srv.InstagramLoginURL()
		require.NoError(t, e.srv.AddInstagramAccount(metatest.InstagramAccount{ID: creatorID, Username: "ada.creates", FollowersCount: 5400}))
		p, err := meta.NewInstagramProvider(e.cfg, e.clientOpts()...)
		require.NoError(t, err)
		e.igProv = p
		conn := e.connectInstagram(creatorID, []string{meta.FeatureInstagram})
		fbUser := e.connect(userID, allFeatures)

		_, urls := newCallbacksFor(t, w, meta.PlatformInstagram)
		require.NoError(t, e.srv.DeauthorizeInstagram(e.ctx, appID, creatorID, urls.deauth))
		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusRevoked, got.Status)
		// The Facebook Login connections are another platform's.
		fb, err := e.store.Get(e.ctx, fbUser.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusActive, fb.Status)

		conf, err := e.srv.RequestDataDeletion(e.ctx, appID, creatorID, urls.deletion)
		require.NoError(t, err)
		require.NotEmpty(t, conf.ConfirmationCode)
		_, err = meta.NewCallbacks(w.cfg, meta.CallbackConfig{DB: w.db.DB, Social: w.sdk.Social, Retention: w.sdk.Retention,
			StatusURL: "https://crm.example/status", Platform: "tiktok"})
		require.ErrorIs(t, err, meta.ErrConfig)
	})
}

func readAll(t testing.TB, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b
}

// newCallbacksFor serves the callbacks of platform's connections.
func newCallbacksFor(t testing.TB, w *world, platform string) (*meta.Callbacks, callbackURLs) {
	t.Helper()
	mux := http.NewServeMux()
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	cb, err := meta.NewCallbacks(w.cfg, meta.CallbackConfig{DB: w.db.DB, Social: w.sdk.Social, Retention: w.sdk.Retention,
		StatusURL: hs.URL + "/status", Platform: platform}, meta.WithClock(w.clk.Now), meta.WithLogger(w.logger()))
	require.NoError(t, err)
	mux.Handle("/deauthorize", cb.DeauthorizeHandler())
	mux.Handle("/data-deletion", cb.DataDeletionHandler())
	mux.Handle("/status", cb.DeletionStatusHandler())
	return cb, callbackURLs{hs.URL + "/deauthorize", hs.URL + "/data-deletion", hs.URL + "/status"}
}

func TestInstagramLoginInsights(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newIGEnv(t, db)
		require.NoError(t, e.srv.SetMetric(creatorMedia, "views", 900))
		require.NoError(t, e.srv.SetMetric(creatorMedia, "reach", 700))
		require.NoError(t, e.srv.SetMetric(creatorID, "views", 12000))
		require.NoError(t, e.srv.SetMetric(creatorID, "reach", 8000))
		c := e.igClient(e.connectInstagram(creatorID, []string{meta.FeatureInstagramInsights}))

		in, _, err := c.Instagram.MediaInsights(e.ctx, creatorMedia, meta.InsightsOptions{Metrics: []meta.Metric{{Name: "views"}, {Name: "reach"}}})
		require.NoError(t, err)
		v, ok := in.Latest("views")
		require.True(t, ok)
		require.EqualValues(t, 900, v)

		a, _, err := c.Instagram.AccountInsights(e.ctx, creatorID, meta.AccountInsightsOptions{Metrics: []string{"views", "reach"}})
		require.NoError(t, err)
		require.Equal(t, map[string]int64{"views": 12000, "reach": 8000}, a.Totals)
		require.Equal(t, "graph "+e.srv.Version()+"; views,reach", a.Source())
		for _, r := range e.srv.Requests() {
			if r.Path == "/"+creatorID+"/insights" {
				require.Equal(t, "total_value", r.Query.Get("metric_type"))
				require.Equal(t, "day", r.Query.Get("period"))
			}
		}
		// A retired metric is refused before any request.
		e.srv.ClearRequests()
		_, _, err = c.Instagram.AccountInsights(e.ctx, creatorID, meta.AccountInsightsOptions{Metrics: []string{"impressions"}})
		require.ErrorIs(t, err, meta.ErrDeprecatedMetric)
		_, _, err = c.Instagram.AccountInsights(e.ctx, creatorID, meta.AccountInsightsOptions{Period: "lifetime"})
		require.ErrorIs(t, err, meta.ErrConfig)
		require.Zero(t, e.graphCalls())
		// An unknown metric is Meta's code 100.
		_, _, err = c.Instagram.AccountInsights(e.ctx, creatorID, meta.AccountInsightsOptions{Metrics: []string{"nonsense"}})
		require.ErrorIs(t, err, meta.ErrInvalidParameter)
	})
}

// TestInstagramTokenErrorsRedacted: the token endpoints carry the secret
// and the token in the query, as documented; a transport error names
// neither.
func TestInstagramTokenErrorsRedacted(t *testing.T) {
	cfg := meta.Config{AppID: appID, AppSecret: vault.NewSecret([]byte(appSecret)), RedirectURL: redirect,
		InstagramGraphURL: "http://127.0.0.1:1", InstagramLoginURL: "http://127.0.0.1:1"}
	p, err := meta.NewInstagramProvider(cfg, meta.WithRetry(1, nil))
	require.NoError(t, err)
	const canary = "IGAA-token-canary-77"
	_, err = p.Refresh(t.Context(), vault.NewSecret([]byte(canary)))
	require.Error(t, err)
	require.NotErrorIs(t, err, social.ErrInvalidGrant, "a transport error is not a refusal")
	testkit.RequireNoSecret(t, err.Error(), canary, appSecret)
	_, err = p.Exchange(t.Context(), social.ExchangeRequest{Code: "code-canary#_"})
	require.Error(t, err)
	testkit.RequireNoSecret(t, err.Error(), appSecret, "code-canary")
}

// TestInstagramLoginAppRemoved: after the creator removed the app, the
// next call's 190/458 revokes the connection, as for Facebook Login.
func TestInstagramLoginAppRemoved(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newIGEnv(t, db)
		conn := e.connectInstagram(creatorID, []string{meta.FeatureInstagram})
		c := e.igClient(conn)
		require.NoError(t, e.srv.DeauthorizeInstagram(e.ctx, appID, creatorID, ""))
		_, _, err := c.Instagram.Profile(e.ctx, creatorID)
		require.ErrorIs(t, err, social.ErrRevoked)
		require.ErrorIs(t, err, meta.ErrAppRemoved)
		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusRevoked, got.Status)
	})
}

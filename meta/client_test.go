package meta_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
)

// TestTokenRefusedMarksNeedsReauth: code 190 (expired, password
// changed) moves the connection to needs_reauth; 190/458 (app removed)
// revokes it and the connections derived from it; 190/492 (Page role
// lost) does neither, since no new token fixes it.
func TestTokenRefusedMarksNeedsReauth(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		for _, sub := range []int{meta.SubcodeExpired, meta.SubcodeAppNotInstalled, meta.SubcodePasswordChanged} {
			user := e.connect(userID, allFeatures)
			c := e.client(user)
			require.NoError(t, e.srv.InjectFault(metatest.Fault{Path: "/me/accounts", Code: 190, Subcode: sub, Count: 1}))
			_, _, err := c.Pages.List(e.ctx, meta.ListOptions{})
			require.ErrorIs(t, err, social.ErrInvalidToken)
			var apiErr *meta.APIError
			require.True(t, errors.As(err, &apiErr))
			require.Equal(t, sub, apiErr.Subcode)
			require.NotEmpty(t, apiErr.TraceID)
			require.Equal(t, sub == meta.SubcodeAppNotInstalled, errors.Is(err, meta.ErrAppRemoved))
			got, gerr := e.store.Get(e.ctx, user.ID)
			require.NoError(t, gerr)
			if sub == meta.SubcodeAppNotInstalled {
				require.ErrorIs(t, err, social.ErrRevoked, "190/%d", sub)
				require.Equal(t, social.StatusRevoked, got.Status)
				require.True(t, got.AccessToken.IsZero())
				continue
			}
			require.ErrorIs(t, err, social.ErrNeedsReauth, "190/%d", sub)
			require.Equal(t, social.StatusNeedsReauth, got.Status)
		}

		// 190/458 on a Page's client revokes the user's connection and
		// every Page and Instagram connection made from it.
		user := e.connect(userID, allFeatures)
		pages := e.connectPages(user)
		require.NoError(t, e.srv.InjectFault(metatest.Fault{Path: "/" + pageID, Code: 190, Subcode: meta.SubcodeAppNotInstalled, Count: 1}))
		_, _, err := e.client(pages[pageID]).Pages.Get(e.ctx, pageID)
		require.ErrorIs(t, err, social.ErrRevoked)
		for _, c := range append([]social.Connection{user}, pages[pageID], pages[page2ID], pages[igID]) {
			got, err := e.store.Get(e.ctx, c.ID)
			require.NoError(t, err)
			require.Equal(t, social.StatusRevoked, got.Status, c.AccountID)
		}
		require.Contains(t, e.auditActions(), "connection.deauthorized")

		// 190/492: the user lost their role on the Page.
		user = e.connect(userID, allFeatures)
		pages = e.connectPages(user)
		pc := e.client(pages[pageID])
		require.NoError(t, e.srv.RemovePageRole(pageID, userID))
		_, _, err = pc.Pages.Insights(e.ctx, pageID, meta.InsightsOptions{})
		require.ErrorIs(t, err, meta.ErrNoPageRole)
		require.NotErrorIs(t, err, social.ErrNeedsReauth)
		got, err := e.store.Get(e.ctx, pages[pageID].ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusActive, got.Status, "a lost Page role must not ask for a new login")
	})
}

func TestErrorFamiliesOverHTTP(t *testing.T) {
	db := dbtest.SQLite(t, setupDB)
	e := newEnv(t, db)
	_, _, c := e.pageClient(allFeatures)

	require.NoError(t, e.srv.InjectFault(metatest.Fault{Path: "/" + pageID + "/feed", Code: 100, Count: 1}))
	_, _, err := c.Pages.Publish(e.ctx, pageID, meta.PostRequest{Message: "a"})
	require.ErrorIs(t, err, meta.ErrInvalidParameter)

	// Permission codes: *social.ScopeError through errors.As, naming what
	// the call needed.
	require.NoError(t, e.srv.InjectFault(metatest.Fault{Path: "/" + pageID + "/feed", Code: 200, Count: 1}))
	_, _, err = c.Pages.Publish(e.ctx, pageID, meta.PostRequest{Message: "b"})
	require.ErrorIs(t, err, meta.ErrPermission)
	var se *social.ScopeError
	require.True(t, errors.As(err, &se), "errors.As(%v, *social.ScopeError) = false", err)
	require.Equal(t, social.NewScopes(meta.PermPagesManagePosts, meta.PermPagesReadEngagement), se.Missing)

	// Codes 1/2 with HTTP 500 are retried for reads (bounded, waits on the
	// injected clock).
	require.NoError(t, e.srv.InjectFault(metatest.Fault{Path: "/" + pageID, Code: 2, Count: 1}))
	_, _, err = c.Pages.Get(e.ctx, pageID)
	require.NoError(t, err)
	require.Len(t, e.waits, 1)
	// … but not for writes.
	require.NoError(t, e.srv.InjectFault(metatest.Fault{Path: "/" + pageID + "/feed", Code: 2, Count: 1}))
	_, _, err = c.Pages.Publish(e.ctx, pageID, meta.PostRequest{Message: "c"})
	require.ErrorIs(t, err, meta.ErrTransient)
	require.Len(t, e.waits, 1)
}

// TestRateLimitStopsCalling: a throttled answer becomes a
// *RateLimitError with the parsed usage headers, and the client makes no
// further call until Meta's estimated time to regain access has passed.
func TestRateLimitStopsCalling(t *testing.T) {
	db := dbtest.SQLite(t, setupDB)
	e := newEnv(t, db, metatest.WithRateLimit(metatest.RatePage, metatest.RateLimit{Calls: 3, Window: time.Hour}))
	_, _, c := e.pageClient(allFeatures)
	var err error
	var last *meta.Response
	for range 5 {
		var resp *meta.Response
		_, resp, err = c.Pages.Get(e.ctx, pageID)
		if resp != nil {
			last = resp
		}
		if err != nil {
			break
		}
	}
	var rl *meta.RateLimitError
	require.True(t, errors.As(err, &rl), "got %v", err)
	require.ErrorIs(t, err, meta.ErrRateLimited)
	require.Equal(t, meta.CodeBUCPages, rl.Code)
	require.Positive(t, rl.RetryAfter)
	require.NotEmpty(t, rl.Usage.Business[pageID])
	require.Equal(t, "pages", rl.Usage.Business[pageID][0].Type)
	require.GreaterOrEqual(t, last.Usage.Max(), 100)
	require.Equal(t, c.Usage().Max(), last.Usage.Max())

	e.srv.ClearRequests()
	_, _, err = c.Pages.Get(e.ctx, pageID)
	require.ErrorIs(t, err, meta.ErrRateLimited)
	require.Zero(t, e.graphCalls(), "the client called Meta during a rate-limit block")
	e.clk.Advance(rl.RetryAfter + time.Minute)
	_, _, err = c.Pages.Get(e.ctx, pageID)
	require.NoError(t, err)

	// Code 4 without an estimate: the clients sharing Limits wait
	// DefaultRateLimitWait, whatever their connection.
	limits := meta.NewLimits()
	newClient := func(conn social.Connection) *meta.Client {
		c, err := meta.New(e.cfg, append(e.clientOpts(), meta.WithSession(e.session(conn)), meta.WithLimits(limits))...)
		require.NoError(t, err)
		return c
	}
	uc := newClient(e.connect(userID, allFeatures))
	other := newClient(e.connect(user2ID, []string{meta.FeaturePages}))
	require.NoError(t, e.srv.InjectFault(metatest.Fault{Path: "/me/accounts", Code: 4, Count: 1}))
	_, _, err = uc.Pages.List(e.ctx, meta.ListOptions{})
	require.True(t, errors.As(err, &rl), "got %v", err)
	require.Equal(t, meta.DefaultRateLimitWait, rl.RetryAfter)
	e.srv.ClearRequests()
	_, _, err = uc.Pages.List(e.ctx, meta.ListOptions{})
	require.ErrorIs(t, err, meta.ErrRateLimited)
	_, _, err = other.Pages.List(e.ctx, meta.ListOptions{})
	require.ErrorIs(t, err, meta.ErrRateLimited, "an app-wide block must hold for every client sharing Limits")
	require.Zero(t, e.graphCalls())
	e.clk.Advance(meta.DefaultRateLimitWait)
	_, _, err = uc.Pages.List(e.ctx, meta.ListOptions{})
	require.NoError(t, err)
}

func TestLegacyProofAndVersion(t *testing.T) {
	db := dbtest.SQLite(t, setupDB)
	e := newEnv(t, db)
	user := e.connect(userID, allFeatures)
	cfg := e.cfg
	cfg.LegacyProof = true
	c, err := meta.New(cfg, append(e.clientOpts(), meta.WithSession(e.session(user)))...)
	require.NoError(t, err)
	e.srv.ClearRequests()
	_, _, err = c.Pages.List(e.ctx, meta.ListOptions{})
	require.NoError(t, err)
	r := e.srv.Requests()[0]
	require.Empty(t, r.Query.Get("appsecret_time"))
	require.Equal(t, e.srv.Version(), r.Version)
	require.Equal(t, e.srv.Version(), c.Version())
}

// TestSecretsNeverLeak plants canary secrets (the app secret, the user
// and Page tokens, the appsecret_proof) and checks that no error, log
// line, audit entry or printed form holds one.
func TestSecretsNeverLeak(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		user, page, c := e.pageClient(allFeatures)
		utok, err := e.store.Token(e.ctx, user.ID, e.prov)
		require.NoError(t, err)
		ptok, err := e.store.Token(e.ctx, page.ID, e.prov)
		require.NoError(t, err)
		secrets := []string{appSecret, utok.AccessToken, ptok.AccessToken}
		var texts []string
		add := func(err error) {
			if err != nil {
				texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
			}
		}
		// Meta's message quoting the token back must not carry it further.
		require.NoError(t, e.srv.InjectFault(metatest.Fault{Path: "/" + pageID + "/feed", Code: 100, Count: 1,
			Message: "(#100) bad token " + ptok.AccessToken}))
		_, _, err = c.Pages.Publish(e.ctx, pageID, meta.PostRequest{Message: "x"})
		require.Error(t, err)
		add(err)
		require.NoError(t, e.srv.InjectFault(metatest.Fault{Path: "/" + pageID, Code: 1, Count: 5}))
		_, _, err = c.Pages.Get(e.ctx, pageID)
		add(err)
		require.NoError(t, e.srv.InjectFault(metatest.Fault{Path: "/" + pageID + "/insights", Code: 4, Count: 1}))
		_, _, err = c.Pages.Insights(e.ctx, pageID, meta.InsightsOptions{})
		add(err)
		require.NoError(t, e.srv.InjectFault(metatest.Fault{Path: "/me/accounts", Code: 190, Subcode: 463, Count: 1}))
		_, _, err = e.client(user).Pages.List(e.ctx, meta.ListOptions{})
		add(err)
		_, err = e.prov.DebugToken(e.ctx, secretOf("bogus"))
		add(err)

		// A transport failure: the URL in the error is the one sent.
		dead := e.cfg
		dead.GraphURL = "http://127.0.0.1:1"
		dc, err := meta.New(dead, meta.WithSession(e.session(page)), meta.WithRetry(1, nil))
		require.NoError(t, err)
		_, _, err = dc.Pages.Insights(e.ctx, pageID, meta.InsightsOptions{})
		require.Error(t, err)
		add(err)
		dp, err := meta.NewProvider(dead, meta.WithRetry(1, nil))
		require.NoError(t, err)
		_, err = dp.DebugToken(e.ctx, secretOf(utok.AccessToken))
		require.Error(t, err)
		add(err)
		_, err = dp.Exchange(e.ctx, social.ExchangeRequest{Code: "code-canary"})
		require.Error(t, err)
		add(err)

		cfgJSON, err := json.Marshal(e.cfg)
		require.NoError(t, err)
		texts = append(texts, string(cfgJSON), fmt.Sprintf("%+v %#v", e.cfg, e.cfg), e.logText(), strings.Join(e.auditActions(), " "))
		for _, r := range e.srv.Requests() {
			for _, p := range []string{r.Query.Get("appsecret_proof"), r.Form.Get("appsecret_proof")} {
				if p != "" && p != metatest.Redacted {
					secrets = append(secrets, p)
				}
			}
		}
		require.Contains(t, e.logText(), "meta: call", "the debug log is empty: the test proves nothing")
		require.NotContains(t, e.logText(), "appsecret_proof")
		for _, text := range texts {
			testkit.RequireNoSecret(t, text, secrets...)
			require.NotContains(t, text, "code-canary")
		}
	})
}

package tiktok_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// roundTrip lets a test act on the client's side of the wire.
type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// providerWith returns a provider whose requests go through wrap.
func (e *env) providerWith(wrap func(next http.RoundTripper) http.RoundTripper) *tiktok.Provider {
	e.t.Helper()
	hc := &http.Client{Transport: wrap(e.srv.Client().Transport)}
	p, err := tiktok.NewProvider(e.cfg, append(e.clientOpts(), tiktok.WithHTTPClient(hc))...)
	require.NoError(e.t, err)
	return p
}

// withApp returns an env whose provider and store use app, registered
// beside the default one.
func withApp(t *testing.T, db *dbtest.DB, app tiktoktest.App) *env {
	e := newEnv(t, db, tiktoktest.WithApp(app))
	e.cfg.ClientKey, e.cfg.ClientSecret = app.ClientKey, app.ClientSecret
	var err error
	e.prov, err = tiktok.NewProvider(e.cfg, e.clientOpts()...)
	require.NoError(t, err)
	e.store = e.newStore(db.DB, e.vault)
	return e
}

func refreshes(srv *tiktoktest.Server) int {
	n := 0
	for _, r := range srv.RequestsTo(tiktoktest.TokenPath) {
		if r.Form.Get("grant_type") == "refresh_token" {
			n++
		}
	}
	return n
}

// TestRefreshSurvivesCancellation: the caller goes away right after TikTok
// rotated the single-use refresh token; the new tokens are stored anyway
// and the connection keeps working.
func TestRefreshSurvivesCancellation(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db, tiktoktest.WithRotation(tiktoktest.RotateSingleUse))
		conn := e.connect([]string{"video.read"})
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		p := e.providerWith(func(next http.RoundTripper) http.RoundTripper {
			return roundTrip(func(r *http.Request) (*http.Response, error) {
				resp, err := next.RoundTrip(r)
				if r.URL.Path == tiktoktest.TokenPath {
					cancel() // TikTok has rotated; the caller gives up now
				}
				return resp, err
			})
		})
		e.clk.Advance(tiktoktest.DefaultAccessTokenLifetime)
		_, _ = e.store.Token(ctx, conn.ID, p)
		require.Equal(t, 1, refreshes(e.srv))

		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusActive, got.Status)
		require.Equal(t, conn.TokenVersion+1, got.TokenVersion, "the rotated tokens were stored")
		_, _, err = e.client(conn).Videos.List(e.ctx, tiktok.VideoListOptions{})
		require.NoError(t, err)
		e.clk.Advance(tiktoktest.DefaultAccessTokenLifetime)
		_, err = e.store.Token(e.ctx, conn.ID, e.prov)
		require.NoError(t, err, "the next refresh presents the live refresh token")
	})
}

// TestRefusedAfterAnotherProcessRefreshed: a request refused with a token
// that another process has since replaced does not end the connection.
func TestRefusedAfterAnotherProcessRefreshed(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"video.read"})
		sess, err := e.store.Session(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)
		old, err := sess.Token(e.ctx)
		require.NoError(t, err)

		other := db.Reopen(t)
		storeB := e.newStore(other, e.newVault(other))
		e.clk.Advance(tiktoktest.DefaultAccessTokenLifetime - time.Minute)
		fresh, err := storeB.Token(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)
		require.NotEqual(t, old.AccessToken, fresh.AccessToken)

		err = sess.Refused(e.ctx, social.ErrInvalidToken)
		require.ErrorIs(t, err, social.ErrTokenRenewed)
		require.NotErrorIs(t, err, social.ErrNeedsReauth)
		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusActive, got.Status)
		again, err := sess.Token(e.ctx)
		require.NoError(t, err)
		require.Equal(t, fresh.AccessToken, again.AccessToken)
		require.Equal(t, 1, refreshes(e.srv), "the stored token was newer: no refresh")
		require.NotContains(t, e.auditActions(), "connection.needs_reauth")
	})
}

// TestAccessTokenInvalidRefreshesFirst: TikTok's access_token_invalid
// ("please refresh token and retry") is answered by a refresh and one
// retry, not by giving the connection up.
func TestAccessTokenInvalidRefreshesFirst(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"profile"})
		c := e.client(conn)
		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.UserInfoPath, Status: http.StatusUnauthorized, Code: tiktok.CodeAccessTokenInvalid})
		u, _, err := c.User.Info(e.ctx, tiktok.UserInfoOptions{Fields: []string{"display_name"}})
		require.NoError(t, err)
		require.Equal(t, "Ana", u.DisplayName)
		require.Equal(t, 1, refreshes(e.srv))
		require.Len(t, e.srv.RequestsTo(tiktoktest.UserInfoPath), 2, "refused once, sent again once")
		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusActive, got.Status)

		// Refused again after the refresh: the connection is given up.
		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.UserInfoPath, Count: 3, Status: http.StatusUnauthorized, Code: tiktok.CodeAccessTokenInvalid})
		_, _, err = c.User.Info(e.ctx, tiktok.UserInfoOptions{Fields: []string{"display_name"}})
		require.ErrorIs(t, err, social.ErrTokenRenewed, "one retry only")
		e.srv.ClearFaults()
		e.srv.Revoke(clientKey, openID)
		_, _, err = c.User.Info(e.ctx, tiktok.UserInfoOptions{Fields: []string{"display_name"}})
		require.ErrorIs(t, err, social.ErrNeedsReauth, "no refresh token works any more")
		got, err = e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusNeedsReauth, got.Status)
	})
}

// TestRefreshWithBoundedPool: 16 callers refresh at once through a pool
// of two database connections with a cold key cache; none waits on a
// connection another holds.
func TestRefreshWithBoundedPool(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"video.read"})
		pool := db.Reopen(t)
		pool.SetMaxOpenConns(2)
		store := e.newStore(pool, e.newVault(pool)) // cold key cache
		e.clk.Advance(tiktoktest.DefaultAccessTokenLifetime)
		ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		errs := make([]error, 16)
		toks := make([]string, 16)
		for i := range errs {
			wg.Go(func() {
				tok, err := store.Token(ctx, conn.ID, e.prov)
				errs[i] = err
				if err == nil {
					toks[i] = tok.AccessToken
				}
			})
		}
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "caller %d", i)
			require.Equal(t, toks[0], toks[i])
		}
		require.Equal(t, 1, refreshes(e.srv))
	})
}

// TestShortLivedTokensRefreshAtHalfLife: five-minute tokens are not
// refreshed at every call, but once half their life is gone.
func TestShortLivedTokensRefreshAtHalfLife(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db, tiktoktest.WithAccessTokenLifetime(5*time.Minute))
		conn := e.connect([]string{"video.read"})
		for range 3 {
			_, err := e.store.Token(e.ctx, conn.ID, e.prov)
			require.NoError(t, err)
			e.clk.Advance(time.Minute)
		}
		require.Zero(t, refreshes(e.srv), "2 minutes into a 5-minute token")
		e.clk.Advance(31 * time.Second)
		_, err := e.store.Token(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)
		require.Equal(t, 1, refreshes(e.srv), "past half its life")

		// A configured window shorter than half the lifetime wins.
		s, err := social.New(db.DB, e.vault, social.WithClock(e.clk.Now), social.WithRefreshWindow(30*time.Second))
		require.NoError(t, err)
		e.clk.Advance(4 * time.Minute)
		_, err = s.Token(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)
		require.Equal(t, 1, refreshes(e.srv))
		e.clk.Advance(31 * time.Second)
		_, err = s.Token(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)
		require.Equal(t, 2, refreshes(e.srv))
	})
}

// TestTokenAnswerWithoutScope: an answer naming no scope granted what was
// requested (RFC 6749 §5.1).
func TestTokenAnswerWithoutScope(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := withApp(t, db, tiktoktest.App{
			ClientKey: "ck-noscope", ClientSecret: "cs-noscope", RedirectURIs: []string{redirectURI},
			Scopes: []string{"user.info.basic", "user.info.profile", "video.list"}, OmitScope: true,
		})
		conn := e.connect([]string{"video.read", "profile"})
		require.Equal(t, social.NewScopes("user.info.basic", "user.info.profile", "video.list"), conn.Scopes)
		require.Empty(t, conn.Declined())
		_, _, err := e.client(conn).Videos.List(e.ctx, tiktok.VideoListOptions{})
		require.NoError(t, err)
	})
}

// TestRedirectBoundToState: the code is exchanged with the redirect URI
// its state was begun with, whichever flow completes it.
func TestRedirectBoundToState(t *testing.T) {
	const second = "https://crm.example/other-callback/"
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := withApp(t, db, tiktoktest.App{
			ClientKey: "ck-two", ClientSecret: "cs-two", RedirectURIs: []string{redirectURI, second},
			Scopes: []string{"user.info.basic", "video.list"},
		})
		begun, err := e.store.NewFlow(e.prov, social.FlowConfig{Features: []string{"video.read"}, RedirectURL: second})
		require.NoError(t, err)
		completing, err := e.store.NewFlow(e.prov, social.FlowConfig{Features: []string{"video.read"}})
		require.NoError(t, err)
		authURL, err := begun.Begin(e.ctx)
		require.NoError(t, err)
		cb, err := e.srv.Consent(authURL, openID, tiktoktest.ConsentOptions{})
		require.NoError(t, err)
		_, err = completing.Complete(e.ctx, callbackQuery(t, cb))
		require.NoError(t, err)
		reqs := e.srv.RequestsTo(tiktoktest.TokenPath)
		require.Equal(t, second, reqs[len(reqs)-1].Form.Get("redirect_uri"))
	})
}

// TestPublishNotSentTwice: a publish init that TikTok carried out but whose
// answer was a 5xx or never arrived is not sent again; the caller gets an
// outcome-unknown error, and the attempt is in the audit log.
func TestPublishNotSentTwice(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		c := e.client(e.connect([]string{"profile", "publish"}))
		src, err := tiktok.PlanChunks(1<<20, 0)
		require.NoError(t, err)
		req := tiktok.VideoInitRequest{PostInfo: tiktok.PostInfo{PrivacyLevel: tiktok.PrivacySelfOnly}, SourceInfo: src}
		for _, f := range []tiktoktest.Fault{
			{Path: tiktoktest.VideoInitPath, Processed: true, Status: http.StatusBadGateway},
			{Path: tiktoktest.VideoInitPath, Processed: true, Drop: true},
			{Path: tiktoktest.VideoInitPath, Status: http.StatusInternalServerError},
		} {
			e.srv.ClearRequests()
			before := len(e.srv.Publishes())
			e.srv.InjectFault(f)
			_, _, err := c.Posting.InitVideo(e.ctx, req)
			require.ErrorIs(t, err, social.ErrOutcomeUnknown, "%+v", f)
			var ou *tiktok.OutcomeUnknownError
			require.True(t, errors.As(err, &ou))
			require.Equal(t, tiktoktest.VideoInitPath, ou.Path)
			require.Equal(t, e.clk.Now(), ou.SentAt)
			require.Len(t, e.srv.RequestsTo(tiktoktest.VideoInitPath), 1, "exactly one request: %+v", f)
			want := before
			if f.Processed {
				want++
			}
			require.Len(t, e.srv.Publishes(), want)
		}
		n := 0
		for _, a := range e.auditActions() {
			if a == "tiktok.publish_outcome_unknown" {
				n++
			}
		}
		require.Equal(t, 3, n)

		// Reads are still retried after a 5xx.
		e.srv.ClearRequests()
		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.CreatorInfoPath, Status: http.StatusBadGateway})
		_, _, err = c.Posting.CreatorInfo(e.ctx)
		require.NoError(t, err)
		require.Len(t, e.srv.RequestsTo(tiktoktest.CreatorInfoPath), 2)
	})
}

// TestRevocationRetryClaimedOnce: two processes retrying the same queued
// revocation call TikTok once and audit it once.
func TestRevocationRetryClaimedOnce(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"video.read"})
		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath})
		_, err := e.store.Disconnect(e.ctx, conn.ID, nil) // the registered provider
		require.NoError(t, err)
		e.clk.Advance(2 * time.Minute)

		entered, release := make(chan struct{}), make(chan struct{})
		var calls atomic.Int32
		slow := e.providerWith(func(next http.RoundTripper) http.RoundTripper {
			return roundTrip(func(r *http.Request) (*http.Response, error) {
				if r.URL.Path == tiktoktest.RevokePath && calls.Add(1) == 1 {
					close(entered)
					<-release
				}
				return next.RoundTrip(r)
			})
		})
		other := db.Reopen(t)
		storeA, err := social.New(db.DB, e.vault, social.WithClock(e.clk.Now), social.WithProviders(slow))
		require.NoError(t, err)
		storeB, err := social.New(other, e.newVault(other), social.WithClock(e.clk.Now), social.WithProviders(e.prov))
		require.NoError(t, err)
		var doneA int
		var errA error
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			doneA, errA = storeA.RetryRevocations(e.ctx)
		}()
		<-entered
		doneB, err := storeB.RetryRevocations(e.ctx)
		require.NoError(t, err)
		require.Zero(t, doneB, "claimed by the other process")
		close(release)
		<-finished
		require.NoError(t, errA)
		require.Equal(t, 1, doneA)
		require.Len(t, e.srv.RequestsTo(tiktoktest.RevokePath), 2, "the failed revoke and one retry")
		n := 0
		for _, a := range e.auditActions() {
			if a == "connection.revoked" {
				n++
			}
		}
		require.Equal(t, 1, n)
	})
}

package tiktok_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

func TestTokenSourceRefreshes(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"video.read"})
		ts := e.store.TokenSource(e.ctx, conn.ID, e.prov)
		var _ oauth2.TokenSource = ts

		first, err := ts.Token()
		require.NoError(t, err)
		again, err := ts.Token()
		require.NoError(t, err)
		require.Equal(t, first.AccessToken, again.AccessToken)
		require.Len(t, e.srv.RequestsTo(tiktoktest.TokenPath), 1, "no refresh while fresh")

		// Inside the skew before expiry: refreshed, rotated refresh token persisted.
		e.clk.Advance(tiktoktest.DefaultAccessTokenLifetime - social.DefaultRefreshWindow + time.Second)
		next, err := ts.Token()
		require.NoError(t, err)
		require.NotEqual(t, first.AccessToken, next.AccessToken)
		reqs := e.srv.RequestsTo(tiktoktest.TokenPath)
		require.Len(t, reqs, 2)
		require.Equal(t, "refresh_token", reqs[1].Form.Get("grant_type"))
		require.Equal(t, clientKey, reqs[1].Form.Get("client_key"))
		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, conn.TokenVersion+1, got.TokenVersion)
		require.Equal(t, e.clk.Now().Add(tiktoktest.DefaultAccessTokenLifetime), got.TokenExpiry)

		// The token works against the API.
		c := e.client(conn)
		_, _, err = c.Videos.List(e.ctx, tiktok.VideoListOptions{})
		require.NoError(t, err)
	})
}

// TestConcurrentRefresh runs two token sources for one connection on two
// database handles (two processes) against single-use refresh rotation:
// every round both need a refresh at once, exactly one refresh reaches
// TikTok, and neither ever loses the live refresh token.
func TestConcurrentRefresh(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db, tiktoktest.WithRotation(tiktoktest.RotateSingleUse))
		conn := e.connect([]string{"video.read"})
		other := db.Reopen(t)
		storeB := e.newStore(other, e.newVault(other))
		sources := []oauth2.TokenSource{
			e.store.TokenSource(e.ctx, conn.ID, e.prov),
			storeB.TokenSource(e.ctx, conn.ID, e.prov),
		}
		const rounds = 6
		for round := range rounds {
			e.clk.Advance(tiktoktest.DefaultAccessTokenLifetime)
			var wg sync.WaitGroup
			toks := make([]*oauth2.Token, len(sources))
			errs := make([]error, len(sources))
			for i, ts := range sources {
				wg.Go(func() { toks[i], errs[i] = ts.Token() })
			}
			wg.Wait()
			for i := range sources {
				require.NoError(t, errs[i], "round %d source %d", round, i)
			}
			require.Equal(t, toks[0].AccessToken, toks[1].AccessToken, "round %d: both use the one refreshed token", round)
		}
		refreshes := 0
		for _, r := range e.srv.RequestsTo(tiktoktest.TokenPath) {
			require.Equal(t, 200, r.Status, "no refresh was refused")
			if r.Form.Get("grant_type") == "refresh_token" {
				refreshes++
			}
		}
		require.Equal(t, rounds, refreshes, "one refresh per expiry")
		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusActive, got.Status)
		require.Equal(t, conn.TokenVersion+rounds, got.TokenVersion)
	})
}

func TestRefreshRefusedNeedsReauth(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"video.read"})
		e.srv.Revoke(clientKey, openID) // the user removed the app at TikTok
		e.clk.Advance(tiktoktest.DefaultAccessTokenLifetime)
		_, err := e.store.Token(e.ctx, conn.ID, e.prov)
		require.ErrorIs(t, err, social.ErrNeedsReauth)
		require.ErrorIs(t, err, social.ErrInvalidGrant)
		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusNeedsReauth, got.Status)
		_, err = e.store.Token(e.ctx, conn.ID, e.prov)
		require.ErrorIs(t, err, social.ErrNeedsReauth)
		require.Contains(t, e.auditActions(), "connection.needs_reauth")
	})
}

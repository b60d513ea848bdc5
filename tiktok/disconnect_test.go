package tiktok_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

func TestDisconnect(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		var handed []social.Connection
		store, err := social.New(db.DB, e.vault, social.WithClock(e.clk.Now),
			social.WithDisconnectHook(func(_ context.Context, c social.Connection) error {
				handed = append(handed, c)
				return nil
			}))
		require.NoError(t, err)
		e.store = store
		conn := e.connect([]string{"video.read"})
		c := e.client(conn)
		tok, err := store.Token(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)

		got, err := store.Disconnect(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)
		require.Equal(t, social.StatusRevoked, got.Status)
		require.True(t, got.AccessToken.IsZero())
		require.True(t, got.RefreshToken.IsZero())
		rev := e.srv.RequestsTo(tiktoktest.RevokePath)
		require.Len(t, rev, 1)
		require.Equal(t, tiktoktest.Redact(tok.AccessToken), rev[0].Form.Get("token"))
		require.Equal(t, clientKey, rev[0].Form.Get("client_key"))

		stored, err := store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.True(t, stored.AccessToken.IsZero(), "sealed tokens deleted")
		require.True(t, stored.RefreshToken.IsZero())
		require.Equal(t, social.StatusRevoked, stored.Status)
		require.Len(t, handed, 1)
		require.Equal(t, conn.ID, handed[0].ID)

		// The platform token is dead, and the store refuses the connection.
		_, _, err = c.Videos.List(e.ctx, tiktok.VideoListOptions{})
		require.Error(t, err)
		_, err = store.Token(e.ctx, conn.ID, e.prov)
		require.ErrorIs(t, err, social.ErrRevoked)

		// Idempotent.
		_, err = store.Disconnect(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)
		require.Len(t, e.srv.RequestsTo(tiktoktest.RevokePath), 1)
		require.Len(t, handed, 1)
		require.Contains(t, e.auditActions(), "connection.disconnected")
	})
}

func TestDisconnectRevokeFailsRetriedLater(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"video.read"})
		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusInternalServerError})

		got, err := e.store.Disconnect(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)
		require.Equal(t, social.StatusRevoked, got.Status)
		stored, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.True(t, stored.AccessToken.IsZero(), "tokens deleted even though the revoke failed")
		require.True(t, stored.RefreshToken.IsZero())
		n, err := e.store.PendingRevocations(e.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)

		done, err := e.store.RetryRevocations(e.ctx)
		require.NoError(t, err)
		require.Zero(t, done, "not due yet")
		e.clk.Advance(2 * time.Minute)
		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusServiceUnavailable})
		done, err = e.store.RetryRevocations(e.ctx)
		require.NoError(t, err)
		require.Zero(t, done, "failed again, rescheduled")
		e.clk.Advance(5 * time.Minute)
		done, err = e.store.RetryRevocations(e.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, done)
		n, err = e.store.PendingRevocations(e.ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		require.Len(t, e.srv.RequestsTo(tiktoktest.RevokePath), 3)

		// The authorization is gone at TikTok: the old refresh token fails.
		e.clk.Advance(tiktoktest.DefaultAccessTokenLifetime)
		actions := e.auditActions()
		require.Contains(t, actions, "connection.disconnected")
		require.Contains(t, actions, "connection.revoked")
	})
}

func TestDisconnectHookError(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		boom := errors.New("retention unavailable")
		store, err := social.New(db.DB, e.vault, social.WithClock(e.clk.Now),
			social.WithDisconnectHook(func(context.Context, social.Connection) error { return boom }))
		require.NoError(t, err)
		e.store = store
		conn := e.connect([]string{"video.read"})
		_, err = store.Disconnect(e.ctx, conn.ID, e.prov)
		require.ErrorIs(t, err, boom)
		got, err := store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusRevoked, got.Status, "the disconnect itself is done")
	})
}

func TestReconnectAfterDisconnect(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"video.read"})
		_, err := e.store.Disconnect(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)
		again := e.connect([]string{"video.read", "profile"})
		require.Equal(t, conn.ID, again.ID)
		require.Equal(t, social.StatusActive, again.Status)
		require.True(t, again.RevokedAt.IsZero())
		c := e.client(again)
		_, _, err = c.User.Info(e.ctx, tiktok.UserInfoOptions{Fields: []string{"username"}})
		require.NoError(t, err)

		// Spent and expired states are pruned.
		e.clk.Advance(social.StateLifetime + time.Second)
		n, err := e.store.PruneStates(e.ctx)
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
	})
}

func TestDisconnectNeedsMatchingProvider(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"video.read"})
		bare, err := social.New(db.DB, e.vault, social.WithClock(e.clk.Now))
		require.NoError(t, err)
		_, err = bare.Disconnect(e.ctx, conn.ID, nil)
		require.ErrorIs(t, err, social.ErrConfig, "no provider given or registered")
		_, err = e.store.Disconnect(e.ctx, conn.ID, otherPlatform{e.prov})
		require.ErrorIs(t, err, social.ErrConfig)
		_, err = e.store.Session(e.ctx, conn.ID, otherPlatform{e.prov})
		require.ErrorIs(t, err, social.ErrConfig)
		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusActive, got.Status)
	})
}

type otherPlatform struct{ *tiktok.Provider }

func (otherPlatform) Platform() string { return "other" }

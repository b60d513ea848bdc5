package tiktok_test

import (
	"log/slog"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// TestS15UnretriedRevokeWarned: a revoke queued for TikTok, retried by a
// Store built without TikTok's provider, is not made, and the Store says
// so in its log (the platform and how many wait), without any token; a
// Store with the provider makes it.
func TestS15UnretriedRevokeWarned(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"video.read"})
		tok, err := e.store.Token(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)
		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusServiceUnavailable})
		_, err = e.store.Disconnect(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)

		bare, err := social.New(db.DB, e.vault, social.WithClock(e.clk.Now),
			social.WithLogger(slog.New(slog.NewTextHandler(lockedWriter{e}, nil))))
		require.NoError(t, err)
		e.clk.Advance(social.RevocationLease)
		done, err := bare.RetryRevocations(e.ctx)
		require.NoError(t, err)
		require.Zero(t, done)
		require.Contains(t, e.logs.String(), "no provider registered for their platform")
		require.Contains(t, e.logs.String(), "platform=tiktok queued=1")
		require.NotContains(t, e.logs.String(), tok.AccessToken)

		done, err = e.store.RetryRevocations(e.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, done)
		require.False(t, e.live(tok.AccessToken))
	})
}

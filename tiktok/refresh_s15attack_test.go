package tiktok_test

import (
	"context"
	"database/sql/driver"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// TestS15RefreshSaveFailsAfterRotation: TikTok rotated the single-use
// refresh token and answered, then the database connection of the
// refresh's transaction broke before its save (the driver reports a bad
// connection). The rotated tokens are saved all the same, in a new
// transaction, so the connection keeps working: the next refresh presents
// the new refresh token, not the retired one.
func TestS15RefreshSaveFailsAfterRotation(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db, tiktoktest.WithRotation(tiktoktest.RotateSingleUse))
		conn := e.connect([]string{"video.read"})

		// Another process's handle, whose statements pass a check that
		// breaks the first save of tokens once armed.
		other := db.Reopen(t)
		var armed, broken atomic.Bool
		require.True(t, sqldb.SetCheck(other.DB, func(_ context.Context, q string) error {
			if armed.Load() && strings.HasPrefix(strings.TrimSpace(q), "UPDATE") && strings.Contains(q, "socialcrm_social_connections") &&
				strings.Contains(q, "token_version") && broken.CompareAndSwap(false, true) {
				return driver.ErrBadConn
			}
			return nil
		}))
		store := e.newStore(other, e.newVault(other))
		p := e.providerWith(func(next http.RoundTripper) http.RoundTripper {
			return roundTrip(func(r *http.Request) (*http.Response, error) {
				resp, err := next.RoundTrip(r)
				if r.URL.Path == tiktoktest.TokenPath {
					armed.Store(true) // TikTok has rotated; the save will break
				}
				return resp, err
			})
		})

		e.clk.Advance(tiktoktest.DefaultAccessTokenLifetime)
		tok, err := store.Token(e.ctx, conn.ID, p)
		require.True(t, broken.Load(), "the fault hit the save")
		require.NoError(t, err, "the rotated tokens were saved again")
		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusActive, got.Status)
		require.Equal(t, conn.TokenVersion+1, got.TokenVersion)
		require.True(t, e.live(tok.AccessToken))

		e.clk.Advance(tiktoktest.DefaultAccessTokenLifetime)
		_, err = e.store.Token(e.ctx, conn.ID, e.prov)
		require.NoError(t, err, "the stored refresh token is the live one")
		require.Equal(t, 2, refreshes(e.srv))
		for _, r := range e.srv.RequestsTo(tiktoktest.TokenPath) {
			require.Equal(t, http.StatusOK, r.Status, "no refresh was refused")
		}
	})
}

package tiktok_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
	"github.com/socialcrm/socialcrm/vault"
	"github.com/socialcrm/socialcrm/vault/insecurekeyfile"
)

// live asks the emulator whether access token tok still opens user info.
func (e *env) live(tok string) bool {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.BaseURL()+tiktoktest.UserInfoPath+"?fields=open_id", nil)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := e.srv.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode == http.StatusOK && body.Error.Code == "ok"
}

// newKillEnv returns an env whose key-encryption key is a file, which a
// child process (killMidway) opens too, and that file's path.
func newKillEnv(t *testing.T, db *dbtest.DB, srvOpts ...tiktoktest.Option) (*env, string) {
	keyPath := filepath.Join(t.TempDir(), "kek.json")
	kek, err := insecurekeyfile.Open(keyPath)
	require.NoError(t, err)
	e := newEnv(t, db, srvOpts...)
	e.kek = kek
	e.vault = e.newVault(db.DB)
	e.store = e.newStore(db.DB, e.vault)
	return e, keyPath
}

// TestS15DisconnectKilled kills a process (SIGKILL) in the middle of
// Disconnect, before its revoke reached TikTok and after TikTok revoked
// (its answer lost), on both databases. Either way the user's disconnect
// holds: the connection keeps no token and is revoked, and the revoke is
// queued, so RetryRevocations makes it; a token left live at TikTok is
// revoked by that retry.
func TestS15DisconnectKilled(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e, keyPath := newKillEnv(t, db)

		for _, mode := range []string{"disconnect-unsent", "disconnect-revoked"} {
			conn := e.connect([]string{"video.read"})
			tok, err := e.store.Token(e.ctx, conn.ID, e.prov)
			require.NoError(t, err)
			revokes := len(e.srv.RequestsTo(tiktoktest.RevokePath))

			e.killMidway(mode, keyPath, conn)
			require.Equal(t, mode == "disconnect-unsent", e.live(tok.AccessToken), mode)
			got, err := e.store.Get(e.ctx, conn.ID)
			require.NoError(t, err)
			require.Equal(t, social.StatusRevoked, got.Status, "%s: the disconnect committed before TikTok was asked", mode)
			require.True(t, got.AccessToken.IsZero(), mode)
			require.True(t, got.RefreshToken.IsZero(), mode)
			_, err = e.store.Token(e.ctx, conn.ID, e.prov)
			require.ErrorIs(t, err, social.ErrRevoked)
			n, err := e.store.PendingRevocations(e.ctx)
			require.NoError(t, err)
			require.Equal(t, 1, n, "%s: the revoke is queued", mode)

			// The dead process's claim runs out; a retry makes the revoke.
			e.clk.Advance(social.RevocationLease)
			ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
			done, err := e.store.RetryRevocations(ctx)
			cancel()
			require.NoError(t, err)
			require.Equal(t, 1, done, mode)
			require.False(t, e.live(tok.AccessToken), mode)
			require.Len(t, e.srv.RequestsTo(tiktoktest.RevokePath), revokes+map[bool]int{true: 1, false: 2}[mode == "disconnect-unsent"], mode)
			n, err = e.store.PendingRevocations(e.ctx)
			require.NoError(t, err)
			require.Zero(t, n, mode)
			actions := e.auditActions()
			require.Equal(t, []string{"connection.disconnected", "connection.revoked"}, actions[len(actions)-2:], mode)
			require.NotContains(t, e.logs.String(), tok.AccessToken, "no token in the logs")
			require.NotContains(t, e.logs.String(), clientSecret)
		}
	})
}

// TestS15DisconnectTreeBeforePlatform: disconnecting a connection with a
// derived one asks TikTok nothing until every token of the tree has left
// its connection, so that a process killed while TikTok is asked (about
// any connection of the tree) leaves no live token on any of them.
func TestS15DisconnectTreeBeforePlatform(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"video.read"})
		sess, err := e.store.Session(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)
		child, err := sess.ConnectDerived(e.ctx, &social.Grant{AccountID: "open-derived", Scopes: conn.Scopes,
			AccessToken: vault.NewSecret([]byte("act.derived")), RefreshToken: vault.NewSecret([]byte("rft.derived")), ExpiresIn: time.Hour})
		require.NoError(t, err)

		asked := 0
		p := e.providerWith(func(next http.RoundTripper) http.RoundTripper {
			return roundTrip(func(r *http.Request) (*http.Response, error) {
				if r.URL.Path == tiktoktest.RevokePath {
					asked++
					for _, id := range []string{conn.ID, child.ID} {
						got, err := e.store.Get(e.ctx, id)
						if err != nil {
							return nil, err
						}
						if got.Status != social.StatusRevoked || !got.AccessToken.IsZero() || !got.RefreshToken.IsZero() {
							return nil, fmt.Errorf("revoke %d sent while connection %s is %s with its tokens", asked, id, got.Status)
						}
					}
				}
				return next.RoundTrip(r)
			})
		})
		_, err = e.store.Disconnect(e.ctx, conn.ID, p)
		require.NoError(t, err)
		require.Equal(t, 2, asked)
		n, err := e.store.PendingRevocations(e.ctx)
		require.NoError(t, err)
		require.Zero(t, n, "both revokes made: %s", e.logs.String())
	})
}

// TestS15DisconnectCancelled: the caller's context is cancelled while
// TikTok is asked to revoke. The disconnect holds (no token stays on the
// connection), the failed revoke is recorded in the queue despite the
// cancellation, and RetryRevocations makes it later.
func TestS15DisconnectCancelled(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"video.read"})
		tok, err := e.store.Token(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		p := e.providerWith(func(next http.RoundTripper) http.RoundTripper {
			return roundTrip(func(r *http.Request) (*http.Response, error) {
				if r.URL.Path == tiktoktest.RevokePath {
					cancel() // the caller gives up before TikTok answers
					return nil, ctx.Err()
				}
				return next.RoundTrip(r)
			})
		})
		_, _ = e.store.Disconnect(ctx, conn.ID, p)
		require.True(t, e.live(tok.AccessToken), "TikTok was not told")
		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusRevoked, got.Status)
		require.True(t, got.AccessToken.IsZero())
		require.True(t, got.RefreshToken.IsZero())
		page, err := e.store.Revocations(e.ctx, social.ListOptions{})
		require.NoError(t, err)
		require.Len(t, page.Items, 1)
		require.Equal(t, 1, page.Items[0].Attempts, "the failure is recorded")

		e.clk.Advance(time.Hour)
		done, err := e.store.RetryRevocations(e.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, done)
		require.False(t, e.live(tok.AccessToken))
	})
}

// TestS15DisconnectKilledBeforeHandOver: the process dies (SIGKILL) after
// the disconnect committed and before the disconnect hook handed the
// connection to retention. Calling Disconnect again does nothing (the
// connection is revoked), so RetryRevocations makes the revoke that was
// queued and, once RevocationLease has passed, hands the connection over,
// once.
func TestS15DisconnectKilledBeforeHandOver(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e, keyPath := newKillEnv(t, db)
		var handed []string
		var err error
		e.store, err = social.New(db.DB, e.vault, social.WithClock(e.clk.Now), social.WithProviders(e.prov),
			social.WithDisconnectHook(func(_ context.Context, c social.Connection) error {
				handed = append(handed, c.ID)
				return nil
			}))
		require.NoError(t, err)
		conn := e.connect([]string{"video.read"})
		tok, err := e.store.Token(e.ctx, conn.ID, e.prov)
		require.NoError(t, err)

		e.killMidway("disconnect-hook", keyPath, conn)
		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusRevoked, got.Status)
		require.True(t, got.AccessToken.IsZero())
		_, err = e.store.Disconnect(e.ctx, conn.ID, nil)
		require.NoError(t, err)
		require.Empty(t, handed, "a second Disconnect finds the connection revoked")

		done, err := e.store.RetryRevocations(e.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, done, "the queued revoke, never claimed, is made at once")
		require.False(t, e.live(tok.AccessToken))
		require.Empty(t, handed, "not while the dead process might still hand it over")
		e.clk.Advance(social.RevocationLease)
		_, err = e.store.RetryRevocations(e.ctx)
		require.NoError(t, err)
		require.Equal(t, []string{conn.ID}, handed, "handed over once the process is known dead")
		_, err = e.store.RetryRevocations(e.ctx)
		require.NoError(t, err)
		require.Equal(t, []string{conn.ID}, handed, "once")
	})
}

package tiktok_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// TestRevokeIdleConnectionS16: TikTok access tokens live hours, refresh
// tokens a year, and a revoke endpoint answers a token it no longer knows
// with success. A connection left idle past its access token's expiry is
// disconnected — at once, and after a failed first revoke, by
// RetryRevocations days later. Revoking with the stored, expired access
// token would be answered with success and leave the authorization alive
// through the refresh token (the app still connected on the user's
// account). The provider refreshes first and revokes the new access
// token: afterwards the latest refresh token TikTok issued is refused, the
// queue is empty, and the revoke is audited as made. When the revoke after
// the refresh fails, the queue keeps the new tokens (the old refresh
// token is spent under single-use rotation: retried with it, the revoke
// would have been taken for done while the authorization lived on). On
// both databases.
func TestRevokeIdleConnectionS16(t *testing.T) {
	for _, tc := range []struct {
		name     string
		queued   bool
		rotation tiktoktest.Rotation
	}{
		{"at_disconnect", false, tiktoktest.RotateNever},
		{"retried", true, tiktoktest.RotateNever},
		{"retried_single_use", true, tiktoktest.RotateSingleUse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			each(t, func(t *testing.T, db *dbtest.DB) { revokeIdle(t, db, tc.queued, tc.rotation) })
		})
	}
}

func revokeIdle(t *testing.T, db *dbtest.DB, queued bool, rotation tiktoktest.Rotation) {
	e := newEnv(t, db, tiktoktest.WithRotation(rotation))
	var mu sync.Mutex
	var refreshTokens []string
	e.prov = e.providerWith(func(next http.RoundTripper) http.RoundTripper {
		return roundTrip(func(r *http.Request) (*http.Response, error) {
			resp, err := next.RoundTrip(r)
			if err != nil || r.URL.Path != tiktoktest.TokenPath {
				return resp, err
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(body))
			var tok struct {
				RefreshToken string `json:"refresh_token"`
			}
			if json.Unmarshal(body, &tok) == nil && tok.RefreshToken != "" {
				mu.Lock()
				refreshTokens = append(refreshTokens, tok.RefreshToken)
				mu.Unlock()
			}
			return resp, nil
		})
	})
	conn := e.connect([]string{"video.read"})
	require.Len(t, refreshTokens, 1)
	// Whether the authorization lives: TikTok takes the latest refresh
	// token it issued.
	alive := func() bool {
		mu.Lock()
		last := refreshTokens[len(refreshTokens)-1]
		mu.Unlock()
		f := url.Values{"client_key": {clientKey}, "client_secret": {clientSecret}, "grant_type": {"refresh_token"},
			"refresh_token": {last}}
		resp, err := e.srv.Client().Post(e.srv.BaseURL()+tiktoktest.TokenPath, "application/x-www-form-urlencoded", strings.NewReader(f.Encode()))
		require.NoError(t, err)
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}

	// Idle for more than the access token's lifetime.
	e.clk.Advance(tiktoktest.DefaultAccessTokenLifetime + time.Minute)
	if queued {
		e.srv.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusServiceUnavailable})
	}
	_, err := e.store.Disconnect(e.ctx, conn.ID, e.prov)
	require.NoError(t, err)
	if queued {
		n, err := e.store.PendingRevocations(e.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n, "the failed revoke is queued")
		e.clk.Advance(48 * time.Hour)
		done, err := e.store.RetryRevocations(e.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, done)
	}
	n, err := e.store.PendingRevocations(e.ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.False(t, alive(), "the authorization is gone at TikTok: its refresh token is refused")
	require.Contains(t, e.auditActions(), "connection.revoked")
}

package socialcrm_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

type eraseRoundTrip func(*http.Request) (*http.Response, error)

func (f eraseRoundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestEraseRevokesAfterCommitS15: a data-subject erasure that reaches a
// TikTok connection asks TikTok to revoke only after the erasure has
// committed: when TikTok is asked, the connection is gone for every other
// reader and its tokens wait in the revoke queue, so no network call holds
// the erasure's transaction and a process killed there leaves no token on
// a connection. The audit says the revoke was queued, then made. When
// TikTok cannot be reached, the erasure still completes, the failure is
// recorded on the queued revoke, and RetryRevocations makes it later. No
// token reaches an error or an audit entry. On both databases.
func TestEraseRevokesAfterCommitS15(t *testing.T) {
	for _, reachable := range []bool{true, false} {
		t.Run(map[bool]string{true: "reachable", false: "unreachable"}[reachable], func(t *testing.T) {
			eraseRevokeAfterCommit(t, reachable)
		})
	}
}

func eraseRevokeAfterCommit(t *testing.T, reachable bool) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		{
			w := newPlatformWorld(t, db)
			conn := w.connectTikTok([]string{"profile"})
			tok, err := w.sdk.Social.Token(w.ctx, conn.ID, w.ttProv)
			require.NoError(t, err)

			// The provider's client: look at the database when TikTok is
			// asked to revoke.
			hc := w.tt.Client()
			inner := hc.Transport
			asked := 0
			var seen []string
			hc.Transport = eraseRoundTrip(func(r *http.Request) (*http.Response, error) {
				if r.URL.Path == tiktoktest.RevokePath {
					asked++
					ctx := context.WithoutCancel(r.Context())
					_, err := w.sdk.Social.Get(ctx, conn.ID)
					if !errors.Is(err, social.ErrNotFound) {
						seen = append(seen, "connection still readable: "+errString(err))
					}
					if n, err := w.sdk.Social.PendingRevocations(ctx); err != nil || n != 1 {
						seen = append(seen, "revoke not queued: "+errString(err))
					}
					if !reachable {
						return nil, errors.New("network unreachable")
					}
				}
				return inner.RoundTrip(r)
			})
			t.Cleanup(func() { hc.Transport = inner })

			er := submitVerified(t, w.sdk, w.ctx, "erasure", map[string]string{social.SubjectAccount: canaryOpenID})
			rc, err := w.sdk.Retention.Erase(w.ctx, er.ID)
			require.NoError(t, err, "reachable %v", reachable)
			require.Equal(t, int64(1), receiptOf(rc, social.CategoryConnection).Erased)
			require.Equal(t, 1, asked, "TikTok asked once")
			require.Empty(t, seen, "TikTok was asked only after the erasure committed")
			_, err = w.sdk.Social.Get(w.ctx, conn.ID)
			require.ErrorIs(t, err, social.ErrNotFound)

			n, err := w.sdk.Social.PendingRevocations(w.ctx)
			require.NoError(t, err)
			if reachable {
				require.Zero(t, n, "the revoke was made")
				require.False(t, tiktokLive(t, w, tok.AccessToken))
			} else {
				require.Equal(t, 1, n, "the failed revoke stays queued")
				page, err := w.sdk.Social.Revocations(w.ctx, social.ListOptions{Limit: 10})
				require.NoError(t, err)
				require.Len(t, page.Items, 1)
				require.Equal(t, 1, page.Items[0].Attempts, "the failure is recorded")
				require.True(t, tiktokLive(t, w, tok.AccessToken), "the grant is still live at TikTok")
				hc.Transport = inner
				w.clk.Advance(time.Hour)
				done, err := w.sdk.Social.RetryRevocations(w.ctx)
				require.NoError(t, err)
				require.Equal(t, 1, done)
				require.False(t, tiktokLive(t, w, tok.AccessToken), "the retry revoked the grant")
			}
			var revoked []string
			for _, e := range auditOf(t, w.sdk, w.ctx, "connection.revoked", tok.AccessToken) {
				if e.Target == "connection:"+conn.ID {
					revoked = append(revoked, e.Metadata["revoke"]+"|"+e.Metadata["reason"])
				}
			}
			require.Equal(t, []string{"queued|erased", "|"}, revoked, "the audit: queued in the erasure, made after it")
		}
	})
}

// errString is err's message, "<nil>" for none.
func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// tiktokLive asks the emulator whether access token tok still opens user
// info.
func tiktokLive(t *testing.T, w *platformWorld, tok string) bool {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, w.tt.BaseURL()+tiktoktest.UserInfoPath+"?fields=open_id", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := w.tt.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode == http.StatusOK && body.Error.Code == "ok"
}

package tiktok_test

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tiktok"
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

// docsTokenServer is a TikTok token endpoint written from the refresh
// documentation, not from the emulator: form-encoded POST with client_key
// and client_secret, single-use rotation (the previous refresh token stops
// working once a new one is issued; it answers invalid_grant), a flat JSON
// answer — here without open_id, which a refresh does not need.
type docsTokenServer struct {
	*httptest.Server
	mu        sync.Mutex
	current   string // the live refresh token; "" takes the first one presented
	presented []string
	n         int
}

func startDocsTokenServer(t *testing.T) *docsTokenServer {
	ds := &docsTokenServer{}
	ds.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != tiktoktest.TokenPath || r.ParseForm() != nil || r.PostForm.Get("client_key") != clientKey ||
			r.PostForm.Get("client_secret") != clientSecret || r.PostForm.Get("grant_type") != "refresh_token" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_request","error_description":"bad request","log_id":"l1"}`))
			return
		}
		ds.mu.Lock()
		defer ds.mu.Unlock()
		rt := r.PostForm.Get("refresh_token")
		ds.presented = append(ds.presented, rt)
		if ds.current != "" && rt != ds.current {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"Refresh token is invalid or expired.","log_id":"l2"}`))
			return
		}
		ds.n++
		ds.current = fmt.Sprintf("rft.docs-%d", ds.n)
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("act.docs-%d", ds.n), "expires_in": 7200,
			"refresh_token": ds.current, "refresh_expires_in": 15552000, "scope": "user.info.basic,video.list", "token_type": "Bearer"})
	}))
	t.Cleanup(ds.Close)
	return ds
}

// TestS15RefreshAnswerWithoutOpenID: a refresh answer that rotated the
// refresh token but does not name the account is stored, not thrown away
// with the only copy of the new refresh token: the next refresh presents
// it and succeeds.
func TestS15RefreshAnswerWithoutOpenID(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		e := newEnv(t, db)
		conn := e.connect([]string{"video.read"})
		ds := startDocsTokenServer(t)
		cfg := e.cfg
		cfg.BaseURL = ds.URL
		p, err := tiktok.NewProvider(cfg, tiktok.WithHTTPClient(ds.Client()), tiktok.WithClock(e.clk.Now))
		require.NoError(t, err)
		for i := 1; i <= 2; i++ {
			e.clk.Advance(tiktoktest.DefaultAccessTokenLifetime)
			tok, err := e.store.Token(e.ctx, conn.ID, p)
			require.NoError(t, err, "refresh %d", i)
			require.Equal(t, fmt.Sprintf("act.docs-%d", i), tok.AccessToken)
		}
		require.Equal(t, "rft.docs-1", ds.presented[1], "the rotated refresh token was stored and presented")
		got, err := e.store.Get(e.ctx, conn.ID)
		require.NoError(t, err)
		require.Equal(t, social.StatusActive, got.Status)
		require.Equal(t, conn.AccountID, got.AccountID)
	})
}

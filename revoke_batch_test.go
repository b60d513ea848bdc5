package socialcrm_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
)

// TestPurgeBatchRevokesOnce: a tenant purge makes a batch of queued
// revokes, one of which the platform fails. The revokes the platform made
// are committed with their erasure (and audited) although the batch
// stops with ErrRevokePending, so the next run calls the platform for the
// failed one only: each queued token is revoked at the platform exactly
// once, and the purge then completes. (They used to roll back with the
// batch and be sent again on every run.)
func TestPurgeBatchRevokesOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		w := newPlatformWorld(t, db)
		sys := tenancy.System(context.Background(), "retention")
		revokes := func() []tiktoktest.Request { return w.tt.RequestsTo(tiktoktest.RevokePath) }

		// Three disconnects whose revoke failed (the account connected
		// again in between): three queued revokes, each of its own tokens.
		for range 3 {
			c := w.connectTikTok([]string{"profile"}) // the account again: new tokens
			w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusInternalServerError})
			_, err := w.sdk.Social.Disconnect(w.ctx, c.ID, w.ttProv)
			require.NoError(t, err)
		}
		pending := func() int {
			n, err := w.sdk.Social.PendingRevocations(w.ctx)
			require.NoError(t, err)
			return n
		}
		require.Equal(t, 3, pending())
		queued := map[string]bool{}
		for _, r := range revokes() {
			queued[r.Form.Get("token")] = true
		}
		require.Len(t, queued, 3, "three distinct tokens queued")

		// A short grace: the queued access tokens are still live (an
		// expired one is refreshed first, TestRevokeIdleConnectionS16).
		_, err := w.sdk.Tenants.CloseTenant(w.ctx, time.Minute)
		require.NoError(t, err)
		w.clk.Advance(2 * time.Minute)
		before := len(revokes())

		// First run: the first revoke of the batch fails, the others are
		// made.
		w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusServiceUnavailable})
		res, err := w.sdk.Retention.PurgeTenants(sys, w.clk.Now())
		require.ErrorIs(t, err, social.ErrRevokePending)
		require.Len(t, res, 1)
		require.False(t, res[0].Purged)
		run1 := revokes()[before:]
		require.Len(t, run1, 3, "the whole batch is tried")
		require.Equal(t, 1, pending(), "the two revokes made are gone from the queue")
		var failed string
		for _, r := range run1 {
			if r.Status != http.StatusOK {
				failed = r.Form.Get("token")
			}
		}
		require.NotEmpty(t, failed)
		entries, err := w.sdk.Tenants.Audit().List(w.ctx, tenancy.AuditListOptions{Limit: 1000})
		require.NoError(t, err)
		revoked := 0
		for _, e := range entries {
			if e.Action == "connection.revoked" && e.Metadata["attempts"] != "" { // the queued ones
				revoked++
			}
		}
		require.Equal(t, 2, revoked, "the two revokes made are audited, durably")

		// Second run: only the failed one is sent again; the purge ends.
		res, err = w.sdk.Retention.PurgeTenants(sys, w.clk.Now())
		require.NoError(t, err)
		require.Len(t, res, 1)
		require.True(t, res[0].Purged)
		run2 := revokes()[before+len(run1):]
		require.Len(t, run2, 1, "the revokes the platform made are not sent again")
		require.Equal(t, failed, run2[0].Form.Get("token"))
		require.Equal(t, http.StatusOK, run2[0].Status)

		// Each queued token was revoked at the platform exactly once.
		made := map[string]int{}
		for _, r := range append(run1, run2...) {
			if r.Status == http.StatusOK {
				made[r.Form.Get("token")]++
			}
		}
		require.Len(t, made, 3)
		for tok, n := range made {
			require.True(t, queued[tok])
			require.Equal(t, 1, n)
		}
	}, migrated)
}

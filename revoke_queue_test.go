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

// TestQueuedRevokeFailuresRecorded: every failed attempt of a queued
// platform revoke is recorded and visible through Store.Revocations —
// attempts, last error and the next retry, pushed back by the growing
// delay — whether RetryRevocations or a tenant purge made it, and
// RetryRevocations honours the delay a failed purge set (it used to find
// the revoke due at once: a failed purge left it unchanged). The attempts
// audited when the revoke is finally made count them all.
func TestQueuedRevokeFailuresRecorded(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		l := newLiveness(t, db) // Disconnect's revoke failed: queued
		w := l.w
		queued := func() social.Revocation {
			t.Helper()
			p, err := w.sdk.Social.Revocations(w.ctx, social.ListOptions{})
			require.NoError(t, err)
			require.Len(t, p.Items, 1)
			require.Empty(t, p.NextCursor)
			return p.Items[0]
		}
		revokeCalls := func() int { return len(w.tt.RequestsTo(tiktoktest.RevokePath)) }

		r := queued()
		require.Equal(t, l.conn.ID, r.ConnectionID)
		require.Equal(t, "tiktok", r.Platform)
		require.Equal(t, 1, r.Attempts)
		require.NotEmpty(t, r.LastError)
		require.True(t, r.CreatedAt.Equal(w.clk.Now()), "%v", r.CreatedAt)
		require.True(t, r.NextAt.Equal(r.CreatedAt.Add(time.Minute)), "%v", r.NextAt)

		// Not due yet: RetryRevocations leaves it.
		calls := revokeCalls()
		done, err := w.sdk.Social.RetryRevocations(w.ctx)
		require.NoError(t, err)
		require.Zero(t, done)
		require.Equal(t, calls, revokeCalls())

		// Due, and failing again: recorded, the delay doubled.
		w.clk.Advance(time.Minute)
		w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusBadGateway})
		done, err = w.sdk.Social.RetryRevocations(w.ctx)
		require.NoError(t, err)
		require.Zero(t, done)
		require.Equal(t, calls+1, revokeCalls())
		r = queued()
		require.Equal(t, 2, r.Attempts)
		require.NotEmpty(t, r.LastError)
		require.True(t, r.NextAt.Equal(w.clk.Now().Add(2*time.Minute)), "%v", r.NextAt)

		// A tenant purge makes it whatever its schedule; failing, it keeps
		// it queued with the failure recorded, the delay doubled again.
		l.close(t)
		w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusServiceUnavailable})
		require.False(t, l.purge(t).Purged)
		require.Equal(t, calls+2, revokeCalls())
		r = queued()
		require.Equal(t, 3, r.Attempts)
		require.NotEmpty(t, r.LastError)
		require.True(t, r.NextAt.Equal(w.clk.Now().Add(4*time.Minute)), "%v", r.NextAt)
		require.False(t, l.keyDestroyed(t))

		// RetryRevocations honours the delay the purge set.
		done, err = w.sdk.Social.RetryRevocations(w.ctx)
		require.NoError(t, err)
		require.Zero(t, done)
		require.Equal(t, calls+2, revokeCalls())

		// Another tenant sees none of it.
		other, err := w.sdk.Social.Revocations(tenancy.WithPrincipal(w.ctx, tenancy.Principal{TenantID: tenancy.NewID(), Role: tenancy.RoleOwner}), social.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, other.Items)

		// The platform is back: the next purge makes it and completes; the
		// audit counts every attempt.
		w.clk.Advance(4 * time.Minute)
		require.True(t, l.purge(t).Purged)
		require.Equal(t, calls+3, revokeCalls())
		require.True(t, l.keyDestroyed(t))
		got := l.audited(t, "connection.revoked")
		require.Equal(t, "4", got[len(got)-1]["attempts"], "%v", got)
	}, migrated)
}

// TestRevocationsPages: Store.Revocations pages the queue oldest first by
// cursor, and refuses a bad limit or cursor with ErrListOptions.
func TestRevocationsPages(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		l := newLiveness(t, db)
		w := l.w
		w.clk.Advance(time.Second)
		second := w.connectTikTok([]string{"profile"})
		w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusInternalServerError})
		_, err := w.sdk.Social.Disconnect(w.ctx, second.ID, w.ttProv)
		require.NoError(t, err)

		p1, err := w.sdk.Social.Revocations(w.ctx, social.ListOptions{Limit: 1})
		require.NoError(t, err)
		require.Len(t, p1.Items, 1)
		require.Equal(t, l.conn.ID, p1.Items[0].ConnectionID)
		require.NotEmpty(t, p1.NextCursor)
		p2, err := w.sdk.Social.Revocations(w.ctx, social.ListOptions{Limit: 1, Cursor: p1.NextCursor})
		require.NoError(t, err)
		require.Len(t, p2.Items, 1)
		require.Equal(t, second.ID, p2.Items[0].ConnectionID)
		require.Empty(t, p2.NextCursor)

		_, err = w.sdk.Social.Revocations(w.ctx, social.ListOptions{Limit: social.MaxLimit + 1})
		require.ErrorIs(t, err, social.ErrListOptions)
		_, err = w.sdk.Social.Revocations(w.ctx, social.ListOptions{Cursor: "not-a-cursor"})
		require.ErrorIs(t, err, social.ErrListOptions)
	}, migrated)
}

// TestPurgeKeepsClaimedRevoke: a queued revoke that another process has
// claimed (RetryRevocations' lease, calling the platform now) is neither
// made nor erased by a tenant purge: erased under that process, a failure
// of its call would go unrecorded and the revoke be lost. The purge stops
// with ErrRevokePending, keeping the key, and completes once the lease has
// run out (the claimant gone) by making the revoke itself.
func TestPurgeKeepsClaimedRevoke(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		l := newLiveness(t, db)
		w := l.w
		l.close(t)
		// Another process's claim, as RetryRevocations takes it.
		_, err := db.Admin(t).NewUpdate().Table(social.TableRevocations).
			Set("claimed_until = ?", w.clk.Now().Add(social.RevocationLease)).Where("connection_id = ?", l.conn.ID).
			Exec(context.Background())
		require.NoError(t, err)
		calls := len(w.tt.RequestsTo(tiktoktest.RevokePath))

		_, err = w.sdk.Retention.PurgeTenants(l.sys, w.clk.Now())
		require.ErrorIs(t, err, social.ErrRevokePending)
		require.Len(t, w.tt.RequestsTo(tiktoktest.RevokePath), calls, "the claimant calls the platform, not the purge")
		n, err := w.sdk.Social.PendingRevocations(w.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n, "kept for the claimant to record its outcome")
		require.False(t, l.keyDestroyed(t))

		w.clk.Advance(social.RevocationLease)
		require.True(t, l.purge(t).Purged)
		require.Len(t, w.tt.RequestsTo(tiktoktest.RevokePath), calls+1)
		require.True(t, l.keyDestroyed(t))
	}, migrated)
}

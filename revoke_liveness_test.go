package socialcrm_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
	"github.com/socialcrm/socialcrm/vault"
)

// liveness is a tenant whose TikTok revoke failed at disconnect and waits
// in the queue, with a sealed probe to tell whether its key is destroyed.
type liveness struct {
	w      *platformWorld
	conn   social.Connection
	sealed vault.Sealed
	bind   vault.Binding
	sys    context.Context
}

func newLiveness(t *testing.T, db *dbtest.DB) *liveness {
	w := newPlatformWorld(t, db)
	l := &liveness{w: w, conn: w.connectTikTok([]string{"profile"}), bind: vault.Binding{Record: "probe", Field: "probe"},
		sys: tenancy.System(context.Background(), "retention")}
	w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusInternalServerError})
	_, err := w.sdk.Social.Disconnect(w.ctx, l.conn.ID, w.ttProv)
	require.NoError(t, err)
	n, err := w.sdk.Social.PendingRevocations(w.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	l.sealed, err = w.sdk.Vault.Seal(w.ctx, []byte("probe"), l.bind)
	require.NoError(t, err)
	return l
}

// close closes the tenant with a grace of an hour and moves past it.
func (l *liveness) close(t *testing.T) {
	_, err := l.w.sdk.Tenants.CloseTenant(l.w.ctx, time.Hour)
	require.NoError(t, err)
	l.w.clk.Advance(2 * time.Hour)
}

func (l *liveness) purge(t *testing.T) retention.PurgeResult {
	res, err := l.w.sdk.Retention.PurgeTenants(l.sys, l.w.clk.Now())
	if err != nil {
		require.ErrorIs(t, err, social.ErrRevokePending)
	}
	require.Len(t, res, 1)
	return res[0]
}

func (l *liveness) keyDestroyed(t *testing.T) bool {
	_, err := l.w.sdk.Vault.Open(l.w.ctx, l.sealed, l.bind)
	if err == nil {
		return false
	}
	require.ErrorIs(t, err, vault.ErrKeyDestroyed)
	return true
}

// audited returns the metadata of the tenant's audit entries of action on
// the connection.
func (l *liveness) audited(t *testing.T, action string) []map[string]string {
	entries, err := l.w.sdk.Tenants.Audit().List(l.w.ctx, tenancy.AuditListOptions{Limit: 1000})
	require.NoError(t, err)
	var out []map[string]string
	for _, e := range entries {
		if e.Action == action && e.Target == "connection:"+l.conn.ID {
			out = append(out, e.Metadata)
		}
	}
	return out
}

// TestPurgeExpiredQueuedToken: the queued token expired long before the
// purge (TikTok access tokens live a day) and the platform refuses it as
// an invalid grant: the purge counts the revoke as done, audited with the
// reason, and completes, destroying the tenant's key.
func TestPurgeExpiredQueuedToken(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		l := newLiveness(t, db)
		l.w.clk.Advance(10 * 24 * time.Hour)
		l.close(t)
		l.w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusBadRequest, Code: "invalid_grant", Message: "Access token is invalid or expired."})
		require.True(t, l.purge(t).Purged)
		require.True(t, l.keyDestroyed(t))
		got := l.audited(t, "connection.revoked")
		require.Equal(t, "token_invalid", got[len(got)-1]["revoke"], "%v", got)
		require.Empty(t, l.audited(t, "connection.revoke_abandoned"))
	}, migrated)
}

// TestPurgeAbandonsLiveConnectionRevoke: a connection still live when the
// tenant's purge comes, whose platform keeps failing, holds the purge
// within RevokeAbandonAfter of its due time (the purge queues its revoke
// and keeps it queued; the bound counts from the purge's due time) and
// not after it.
func TestPurgeAbandonsLiveConnectionRevoke(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		w := newPlatformWorld(t, db)
		l := &liveness{w: w, conn: w.connectTikTok([]string{"profile"}), bind: vault.Binding{Record: "probe", Field: "probe"},
			sys: tenancy.System(context.Background(), "retention")}
		var err error
		l.sealed, err = w.sdk.Vault.Seal(w.ctx, []byte("probe"), l.bind)
		require.NoError(t, err)
		l.close(t)
		w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusServiceUnavailable, Count: 100})
		require.False(t, l.purge(t).Purged)
		require.False(t, l.keyDestroyed(t))
		w.clk.Advance(social.RevokeAbandonAfter)
		require.True(t, l.purge(t).Purged)
		require.True(t, l.keyDestroyed(t))
		got := l.audited(t, "connection.revoke_abandoned")
		require.Len(t, got, 1, "%v", got)
		require.Contains(t, got[0]["reason"], "overdue")
	}, migrated)
}

// TestPurgeExpiredQueuedTokenAnsweredOK: TikTok answers the revoke of a
// token it no longer honours (expired a week ago) with success, as the
// emulator does: the purge completes and the key goes.
func TestPurgeExpiredQueuedTokenAnsweredOK(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		l := newLiveness(t, db)
		l.w.clk.Advance(8 * 24 * time.Hour)
		l.close(t)
		require.True(t, l.purge(t).Purged)
		require.True(t, l.keyDestroyed(t))
		require.Equal(t, http.StatusOK, l.w.tt.RequestsTo(tiktoktest.RevokePath)[1].Status)
	}, migrated)
}

// TestPurgeAbandonsRevokeAfterBound: a platform failing with 5xx keeps the
// purge pending (and the key) within RevokeAbandonAfter of the purge's due
// time; the first run past it tries once more, gives the revoke up,
// audits connection.revoke_abandoned with the reason and the attempts,
// and completes.
func TestPurgeAbandonsRevokeAfterBound(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		l := newLiveness(t, db)
		l.close(t) // an hour past the due time
		fail := tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusBadGateway, Count: 100}
		l.w.tt.InjectFault(fail)

		require.False(t, l.purge(t).Purged)
		l.w.clk.Advance(social.RevokeAbandonAfter - 2*time.Hour) // still 1h inside the bound
		require.False(t, l.purge(t).Purged)
		require.False(t, l.keyDestroyed(t), "the key outlives a purge within the bound")
		require.Empty(t, l.audited(t, "connection.revoke_abandoned"))
		n, err := l.w.sdk.Social.PendingRevocations(l.w.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)

		l.w.clk.Advance(time.Hour)
		calls := len(l.w.tt.RequestsTo(tiktoktest.RevokePath))
		res := l.purge(t)
		require.True(t, res.Purged)
		require.True(t, l.keyDestroyed(t))
		require.Len(t, l.w.tt.RequestsTo(tiktoktest.RevokePath), calls+1, "one last attempt")
		for _, r := range l.w.tt.RequestsTo(tiktoktest.RevokePath) {
			require.NotEqual(t, http.StatusOK, r.Status)
		}
		got := l.audited(t, "connection.revoke_abandoned")
		require.Len(t, got, 1)
		require.Contains(t, got[0]["reason"], "overdue")
		// Every attempt: the disconnect's, the two purge runs that failed
		// (each recorded with the revoke, which stays queued) and the last.
		require.Equal(t, "4", got[0]["attempts"], "%v", got)
	}, migrated)
}

// TestRetryDropsInvalidTokenRevoke: RetryRevocations drops a queued
// revoke whose token the platform refuses, audited as revoked with the
// reason, and does not call the platform for it again.
func TestRetryDropsInvalidTokenRevoke(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		l := newLiveness(t, db)
		l.w.clk.Advance(2 * 24 * time.Hour)
		l.w.tt.InjectFault(tiktoktest.Fault{Path: tiktoktest.RevokePath, Status: http.StatusBadRequest, Code: "invalid_grant", Message: "Access token is invalid or expired."})
		done, err := l.w.sdk.Social.RetryRevocations(l.w.ctx)
		require.NoError(t, err)
		require.Equal(t, 1, done)
		n, err := l.w.sdk.Social.PendingRevocations(l.w.ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		got := l.audited(t, "connection.revoked")
		require.Equal(t, "token_invalid", got[len(got)-1]["revoke"], "%v", got)

		l.w.clk.Advance(2 * 24 * time.Hour)
		calls := len(l.w.tt.RequestsTo(tiktoktest.RevokePath))
		_, err = l.w.sdk.Social.RetryRevocations(l.w.ctx)
		require.NoError(t, err)
		require.Len(t, l.w.tt.RequestsTo(tiktoktest.RevokePath), calls)
	}, migrated)
}

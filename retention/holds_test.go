package retention_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
)

func TestSweepByEvent(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		_, a := v.tenant(t, "alpha")
		cs := []conn{
			{ID: "c1", AccountID: "acct-1", Token: "t1", ConnectedAt: epoch.Add(-retention.Day)},
			{ID: "c2", AccountID: "acct-2", Token: "t2", ConnectedAt: epoch.Add(-retention.Day)},
		}
		insert(t, a, db, &cs)
		require.NoError(t, v.e.RecordEvent(a, retention.EventDeauthorized, "account_id", "acct-1"))

		// A reconnection after the event is not the deauthorized data.
		v.clock.Advance(retention.Day)
		insert(t, a, db, &conn{ID: "c3", AccountID: "acct-1", Token: "t3", ConnectedAt: v.clock.Now()})

		_, err := v.e.Sweep(system(), epoch.Add(29*retention.Day))
		require.NoError(t, err)
		require.Equal(t, []string{"c1", "c2", "c3"}, ids(t, a, db, "test_connections"))

		rep, err := v.e.Sweep(system(), epoch.Add(30*retention.Day))
		require.NoError(t, err)
		require.EqualValues(t, 1, rep.Erased())
		require.Equal(t, []string{"c2", "c3"}, ids(t, a, db, "test_connections"))
		require.Equal(t, []string{"c1"}, v.rev.list(), "the hook revoked the erased connection")
		rs := receipts(t, a, db, "retention.swept")
		require.Len(t, rs, 1)
		require.Equal(t, retention.EventDeauthorized, rs[0].Metadata["event"])

		// The event is spent: later sweeps erase nothing more.
		rep, err = v.e.Sweep(system(), epoch.Add(60*retention.Day))
		require.NoError(t, err)
		require.Zero(t, rep.Erased())
		require.Equal(t, []string{"c2", "c3"}, ids(t, a, db, "test_connections"))

		require.Error(t, v.e.RecordEvent(a, "", "account_id", "x"))
	})
}

func TestHolds(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		_, a := v.tenant(t, "alpha")
		_, b := v.tenant(t, "beta")
		old := epoch.Add(-100 * retention.Day)
		seed := []response{
			{ID: "r1", AccountID: "acct-1", Body: "{}", FetchedAt: old},
			{ID: "r2", AccountID: "acct-1", Body: "{}", FetchedAt: old},
			{ID: "r3", AccountID: "acct-2", Body: "{}", FetchedAt: old},
			{ID: "r4", AccountID: "acct-3", Body: "{}", FetchedAt: old},
		}
		insert(t, a, db, &seed)
		seedB := append([]response(nil), seed...)
		for i := range seedB {
			seedB[i].TenantID = ""
		}
		insert(t, b, db, &seedB)

		rec, err := v.e.PlaceHold(a, retention.Hold{Scope: retention.HoldRecord, Category: catRawResponse, RecordID: "r4", Reason: "litigation 42"})
		require.NoError(t, err)
		subj, err := v.e.PlaceHold(a, retention.Hold{Scope: retention.HoldSubject, SubjectKind: "account_id", SubjectValue: "acct-1", Reason: "regulator inquiry"})
		require.NoError(t, err)
		whole, err := v.e.PlaceHold(b, retention.Hold{Scope: retention.HoldTenant, Reason: "tenant-wide hold"})
		require.NoError(t, err)

		_, err = v.e.PlaceHold(a, retention.Hold{Scope: retention.HoldRecord, Category: "nope", RecordID: "x", Reason: "r"})
		require.ErrorIs(t, err, retention.ErrUnknownCategory)
		var ve *retention.ValidationError
		_, err = v.e.PlaceHold(a, retention.Hold{Scope: retention.HoldSubject, Reason: "r"})
		require.ErrorAs(t, err, &ve)
		_, err = v.e.PlaceHold(a, retention.Hold{Scope: retention.HoldTenant})
		require.ErrorAs(t, err, &ve)

		rep, err := v.e.Sweep(system(), epoch)
		require.NoError(t, err)
		require.Equal(t, []string{"r1", "r2", "r4"}, ids(t, a, db, "test_responses"))
		require.Equal(t, []string{"r1", "r2", "r3", "r4"}, ids(t, b, db, "test_responses"))
		require.EqualValues(t, 3+4, rep.Held())
		ra := receipts(t, a, db, "retention.swept")
		require.Len(t, ra, 1)
		require.Equal(t, "1", ra[0].Metadata["count"])
		require.Equal(t, "3", ra[0].Metadata["held"])
		rb := receipts(t, b, db, "retention.swept")
		require.Len(t, rb, 1)
		require.Equal(t, "0", rb[0].Metadata["count"])
		require.Equal(t, "4", rb[0].Metadata["held"])

		hs, err := v.e.Holds(a)
		require.NoError(t, err)
		require.Len(t, hs, 2)

		_, err = v.e.ReleaseHold(a, rec.ID)
		require.NoError(t, err)
		_, err = v.e.ReleaseHold(a, subj.ID)
		require.NoError(t, err)
		_, err = v.e.ReleaseHold(a, subj.ID) // twice is harmless
		require.NoError(t, err)
		_, err = v.e.ReleaseHold(b, whole.ID)
		require.NoError(t, err)
		_, err = v.e.ReleaseHold(b, rec.ID)
		require.ErrorIs(t, err, retention.ErrNotFound, "a hold of another tenant is not found")

		rep, err = v.e.Sweep(system(), epoch)
		require.NoError(t, err)
		require.EqualValues(t, 3+4, rep.Erased())
		require.Zero(t, rep.Held())
		require.Empty(t, ids(t, a, db, "test_responses"))
		require.Empty(t, ids(t, b, db, "test_responses"))
		require.Len(t, receipts(t, a, db, "retention.hold_placed"), 2)
		require.Len(t, receipts(t, a, db, "retention.hold_released"), 2)
	})
}

// TestBeforeEraseUnfinished: a BeforeErase hook that finishes part of a
// batch (a revoke the platform failed) returns an *UnfinishedError: the
// batch erases and commits the rest, with its receipt, and the sweep
// stops with the hook's error; the next sweep hands the hook only the
// rows it did not finish, so each row's outside work is done once.
func TestBeforeEraseUnfinished(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		_, a := v.tenant(t, "alpha")
		cs := []conn{
			{ID: "c1", AccountID: "acct-1", Token: "t1", ConnectedAt: epoch.Add(-retention.Day)},
			{ID: "c2", AccountID: "acct-1", Token: "t2", ConnectedAt: epoch.Add(-retention.Day)},
			{ID: "c3", AccountID: "acct-1", Token: "t3", ConnectedAt: epoch.Add(-retention.Day)},
		}
		insert(t, a, db, &cs)
		require.NoError(t, v.e.RecordEvent(a, retention.EventDeauthorized, "account_id", "acct-1"))

		v.rev.fail("c2")
		_, err := v.e.Sweep(system(), epoch.Add(30*retention.Day))
		require.ErrorIs(t, err, errRevokeFails)
		var ue *retention.UnfinishedError
		require.ErrorAs(t, err, &ue)
		require.Equal(t, []string{"c2"}, ue.IDs)
		require.Equal(t, []string{"c2"}, ids(t, a, db, "test_connections"), "the finished rows are erased, committed")
		require.ElementsMatch(t, []string{"c1", "c3"}, v.rev.list())
		rs := receipts(t, a, db, "retention.swept")
		require.Len(t, rs, 1)
		require.Equal(t, "2", rs[0].Metadata["count"])

		v.rev.fail()
		rep, err := v.e.Sweep(system(), epoch.Add(30*retention.Day))
		require.NoError(t, err)
		require.EqualValues(t, 1, rep.Erased())
		require.Empty(t, ids(t, a, db, "test_connections"))
		require.ElementsMatch(t, []string{"c1", "c3", "c2"}, v.rev.list(), "each row's hook work done once")
	})
}

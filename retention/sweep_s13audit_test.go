package retention_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS13AuditHoldPlacedMidSweep: a legal hold placed while a sweep is
// under way (after its first batch committed) protects the held
// subject's rows from every later batch of that sweep. The sweep read the
// tenant's holds once, before its first batch; with none then, its
// batches carried no exclusion at all, and went on deleting the rows of a
// subject held meanwhile.
func TestS13AuditHoldPlacedMidSweep(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db) // batches of 7
		_, a := v.tenant(t, "alpha")
		old := epoch.Add(-100 * retention.Day)
		var rs []response
		for i := range 30 {
			acct := "acct-free"
			if i%2 == 0 {
				acct = "acct-held"
			}
			rs = append(rs, response{ID: id("r", i), AccountID: acct, Body: "{}", FetchedAt: old})
		}
		insert(t, a, db, &rs)

		var placed atomic.Bool
		var heldLeft int
		retention.SetTrace(v.e, func(p string) {
			if p != "batch.committed" || placed.Swap(true) {
				return
			}
			_, err := v.e.PlaceHold(a, retention.Hold{Scope: retention.HoldSubject, SubjectKind: "account_id",
				SubjectValue: "acct-held", Reason: "placed mid-sweep"})
			if err != nil {
				t.Errorf("PlaceHold: %v", err)
			}
			heldLeft = countAccount(t, a, db, "acct-held")
		})
		_, err := v.e.Sweep(system(), epoch)
		require.NoError(t, err)
		require.True(t, placed.Load(), "the hold was placed during the sweep")
		require.Less(t, heldLeft, 15, "the first batch erased some held rows before the hold")
		require.Equal(t, heldLeft, countAccount(t, a, db, "acct-held"),
			"no row of the subject held mid-sweep is erased by a later batch")
		require.Zero(t, countAccount(t, a, db, "acct-free"), "the rows of other subjects are still erased")

		// The next sweep holds them too, and counts them held.
		retention.SetTrace(v.e, nil)
		rep, err := v.e.Sweep(system(), epoch)
		require.NoError(t, err)
		require.Equal(t, heldLeft, countAccount(t, a, db, "acct-held"))
		require.EqualValues(t, heldLeft, rep.Held())
	})
}

// TestS13AuditConcurrentSweepsNoError: two sweeps started at once erase
// each row once; on PostgreSQL (batches skip each other's locked rows)
// neither fails, and their reports and receipts add up to the rows.
func TestS13AuditConcurrentSweepsNoError(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		_, a := v.tenant(t, "alpha")
		insertDueResponses(t, a, db, 120)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		reps := make([]retention.Report, 2)
		start := make(chan struct{})
		for i := range errs {
			wg.Go(func() {
				<-start
				reps[i], errs[i] = v.e.Sweep(system(), epoch)
			})
		}
		close(start)
		wg.Wait()
		if db.Name == "postgres" {
			// SQLite's single writer may refuse a concurrent sweep as busy;
			// PostgreSQL's batches skip each other's rows and must not fail.
			require.NoError(t, errors.Join(errs...), "two sweeps at once on PostgreSQL")
		}
		var erased int64
		for i, r := range reps {
			if errs[i] == nil {
				erased += r.Erased()
			}
		}
		require.Empty(t, ids(t, a, db, "test_responses"))
		if db.Name == "postgres" {
			require.EqualValues(t, 120, erased, "reports count each row once")
		}
		require.EqualValues(t, 120, sumMeta(receipts(t, a, db, "retention.swept"), catRawResponse, "count"),
			"receipts count each row once")
	})
}

// TestS13AuditSweepCancelledMidBatch: a sweep whose context ends while a
// batch is in flight leaves each batch whole: every row is either still
// there or counted by exactly one receipt, and the next sweep finishes.
func TestS13AuditSweepCancelledMidBatch(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		_, a := v.tenant(t, "alpha")
		insertDueResponses(t, a, db, 40)
		ctx, cancel := context.WithCancel(system())
		defer cancel()
		var n atomic.Int32
		retention.SetTrace(v.e, func(p string) {
			// Cancel inside the third batch's transaction, after its rows
			// were deleted and before its receipt.
			if p == "batch.erased" && n.Add(1) == 3 {
				cancel()
			}
		})
		_, err := v.e.Sweep(ctx, epoch)
		require.Error(t, err, "the cancelled sweep reports its failure")
		left := len(ids(t, a, db, "test_responses"))
		counted := sumMeta(receipts(t, a, db, "retention.swept"), catRawResponse, "count")
		require.EqualValues(t, 40, int64(left)+counted, "every row still there or counted once (left %d, counted %d)", left, counted)
		require.EqualValues(t, 14, counted, "the two committed batches only")

		retention.SetTrace(v.e, nil)
		_, err = v.e.Sweep(system(), epoch)
		require.NoError(t, err)
		require.Empty(t, ids(t, a, db, "test_responses"))
		require.EqualValues(t, 40, sumMeta(receipts(t, a, db, "retention.swept"), catRawResponse, "count"))
	})
}

// countAccount counts the context tenant's responses of account.
func countAccount(t testing.TB, ctx context.Context, db *dbtest.DB, account string) int {
	t.Helper()
	n := 0
	for _, r := range rowsOf(t, ctx, db) {
		if r.AccountID == account {
			n++
		}
	}
	return n
}

func rowsOf(t testing.TB, ctx context.Context, db *dbtest.DB) []response {
	t.Helper()
	var out []response
	require.NoError(t, in(ctx, db, func(tx bun.Tx) error {
		return tx.NewSelect().Model(&out).Scan(ctx)
	}))
	return out
}

// TestS13AuditTenantHoldPlacedMidPurge: a tenant hold placed while a
// tenant purge is under way stops it: no later batch erases, the purge
// hook (key destruction) does not run and the tenant is not marked
// purged. Before, the purge read the holds once, went on erasing
// everything and destroyed the key under the hold.
func TestS13AuditTenantHoldPlacedMidPurge(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		var hooks atomic.Int32
		v := newEnv(t, db, retention.WithTenantPurgeHook(func(context.Context) error { hooks.Add(1); return nil }))
		aid, a := v.tenant(t, "alpha")
		var rs []response
		for i := range 30 {
			rs = append(rs, response{ID: id("r", i), AccountID: "acct", Body: "{}", FetchedAt: epoch})
		}
		insert(t, a, db, &rs)
		_, err := v.store.CloseTenant(a, 0)
		require.NoError(t, err)
		sys, err := tenancy.AsTenant(system(), aid)
		require.NoError(t, err)

		var placed atomic.Bool
		left := -1
		retention.SetTrace(v.e, func(p string) {
			if p != "batch.committed" || placed.Swap(true) {
				return
			}
			if _, err := v.e.PlaceHold(sys, retention.Hold{Scope: retention.HoldTenant, Reason: "placed mid-purge"}); err != nil {
				t.Errorf("PlaceHold: %v", err)
			}
			left = len(ids(t, a, db, "test_responses"))
		})
		res, err := v.e.PurgeTenants(system(), epoch)
		require.NoError(t, err)
		require.True(t, placed.Load())
		require.Len(t, res, 1)
		require.False(t, res[0].Purged, "a tenant held mid-purge is not purged")
		require.Zero(t, hooks.Load(), "the key survives the hold")
		require.Greater(t, left, 0)
		require.Equal(t, left, len(ids(t, a, db, "test_responses")), "no batch after the hold erased")
		var held int64
		for _, rc := range res[0].Receipts {
			held += rc.Held
		}
		require.Positive(t, held, "the purge counts what the hold keeps")
	})
}

// TestS13AuditSubjectHoldPlacedMidErasure: a data-subject erasure during
// which a hold on that subject is placed (after its first batch) erases
// nothing more of the subject, and its receipt counts the rows held.
func TestS13AuditSubjectHoldPlacedMidErasure(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db) // batches of 7
		_, a := v.tenant(t, "alpha")
		var rs []response
		for i := range 20 {
			rs = append(rs, response{ID: id("r", i), AccountID: "acct-asked", Body: "{}", FetchedAt: epoch})
		}
		insert(t, a, db, &rs)
		req, err := v.e.Submit(a, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"account_id": "acct-asked"}})
		require.NoError(t, err)
		_, err = v.e.SetVerification(a, req.ID, retention.VerificationVerified)
		require.NoError(t, err)

		var placed atomic.Bool
		left := -1
		retention.SetTrace(v.e, func(p string) {
			if p != "batch.committed" || placed.Swap(true) {
				return
			}
			if _, err := v.e.PlaceHold(a, retention.Hold{Scope: retention.HoldSubject, SubjectKind: "account_id",
				SubjectValue: "acct-asked", Reason: "placed mid-erasure"}); err != nil {
				t.Errorf("PlaceHold: %v", err)
			}
			left = countAccount(t, a, db, "acct-asked")
		})
		rc, err := v.e.Erase(a, req.ID)
		require.NoError(t, err)
		require.True(t, placed.Load())
		require.Equal(t, 13, left, "one batch of 7 erased before the hold")
		require.Equal(t, left, countAccount(t, a, db, "acct-asked"), "nothing erased after the hold")
		for _, c := range rc.Categories {
			if c.Category == catRawResponse {
				require.EqualValues(t, 7, c.Erased)
				require.EqualValues(t, 13, c.Held, "the receipt counts what the hold kept")
			}
		}
	})
}

// TestS13AuditTenantHoldPlacedMidSweepKeepsTheAuditLog: a tenant hold
// placed while a sweep is under way (before its first category) keeps
// the tenant's audit log whole: the truncation of due entries, which the
// sweep skips under a tenant hold, looks at the holds as they are when it
// runs, not as they were when the sweep began.
func TestS13AuditTenantHoldPlacedMidSweepKeepsTheAuditLog(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		v.clock.Set(epoch.Add(-13 * retention.Month))
		_, a := v.tenant(t, "alpha") // tenant.created, 13 months ago: due
		v.clock.Set(epoch)
		var placed atomic.Bool
		retention.SetTrace(v.e, func(p string) {
			if p != "category" || placed.Swap(true) {
				return
			}
			if _, err := v.e.PlaceHold(a, retention.Hold{Scope: retention.HoldTenant, Reason: "placed mid-sweep"}); err != nil {
				t.Errorf("PlaceHold: %v", err)
			}
		})
		rep, err := v.e.Sweep(system(), epoch)
		require.NoError(t, err)
		require.True(t, placed.Load())
		require.Zero(t, rep.Erased())
		require.Len(t, receipts(t, a, db, "tenant.created"), 1, "the audit log stays whole under the tenant hold")
	})
}

// TestS13AuditSweepAndErasureAtOnce: a sweep and a data-subject erasure
// that reach the same rows, run at once, erase each row once: the
// sweep's receipts and the erasure's add up to the rows, and on
// PostgreSQL neither fails.
func TestS13AuditSweepAndErasureAtOnce(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		_, a := v.tenant(t, "alpha")
		insertDueResponses(t, a, db, 90)
		req, err := v.e.Submit(a, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"account_id": "acct"}})
		require.NoError(t, err)
		_, err = v.e.SetVerification(a, req.ID, retention.VerificationVerified)
		require.NoError(t, err)
		var wg sync.WaitGroup
		var sweepErr, eraseErr error
		start := make(chan struct{})
		wg.Go(func() { <-start; _, sweepErr = v.e.Sweep(system(), epoch) })
		wg.Go(func() { <-start; _, eraseErr = v.e.Erase(a, req.ID) })
		close(start)
		wg.Wait()
		if db.Name == "postgres" {
			require.NoError(t, sweepErr)
			require.NoError(t, eraseErr)
		}
		if sweepErr != nil {
			_, err := v.e.Sweep(system(), epoch)
			require.NoError(t, err)
		}
		require.Empty(t, ids(t, a, db, "test_responses"))
		swept := sumMeta(receipts(t, a, db, "retention.swept"), catRawResponse, "count")
		erased := sumMeta(receipts(t, a, db, "retention.erased"), catRawResponse, "count")
		t.Logf("swept %d, erased %d", swept, erased)
		require.EqualValues(t, 90, swept+erased, "each row counted once (swept %d, erased %d)", swept, erased)
	})
}

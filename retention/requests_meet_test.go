package retention_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/uptrace/bun/dialect"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
)

// TestErasureRunsMeetCompleteOnce: one verified erasure run four times at
// once (as when it is asked of several replicas while a resumption job
// runs it too) erases the person's rows once, completes once and writes
// one completion entry; every other run ends with ErrClosed or finds the
// work done. Before, each run read the request open and completed it
// again: PostgreSQL's log held a completion per run.
func TestErasureRunsMeetCompleteOnce(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		_, a := v.tenant(t, "alpha")
		insert(t, a, db, &[]contact{{ID: "k1", Email: ptr("ann@example.com"), Name: "Ann", UpdatedAt: epoch}, {ID: "k2", Email: ptr("bob@example.com"), Name: "Bob", UpdatedAt: epoch}})
		var ns []note
		for i := range 40 {
			ns = append(ns, note{ID: id("n", i), ContactID: []string{"k1", "k2"}[i%2], Body: "hello", CreatedAt: epoch})
		}
		insert(t, a, db, &ns)
		req, err := v.e.Submit(a, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"contact_id": "k1"}})
		require.NoError(t, err)
		_, err = v.e.SetVerification(a, req.ID, retention.VerificationVerified)
		require.NoError(t, err)

		var wg sync.WaitGroup
		errs := make([]error, 4)
		start := make(chan struct{})
		for i := range errs {
			wg.Go(func() {
				<-start
				_, errs[i] = v.e.Erase(a, req.ID)
			})
		}
		close(start)
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
				continue
			}
			require.ErrorIs(t, err, retention.ErrClosed)
		}
		require.GreaterOrEqual(t, ok, 1, "%v", errs)
		require.Len(t, receipts(t, a, db, "retention.request_completed"), 1, "completed once: %v", errs)
		got, err := v.e.Get(a, req.ID)
		require.NoError(t, err)
		require.Equal(t, retention.StatusCompleted, got.Status)
		require.Len(t, ids(t, a, db, "test_notes"), 20, "Bob's notes stay")
	})
}

// TestErasureRunsDoNotOverlap: two replicas (two engines on one database)
// asked for one erasure: while the first run is held in the middle of a
// batch, the second runs no batch of its own; once the first completes,
// the second returns ErrClosed and Receipt answers what the request
// recorded, equal to the first run's counts. Before, the two ran side by
// side, deleting the same rows at once (on PostgreSQL the two batches
// could deadlock and one run failed — a scheduled job's ERROR in the
// example server's log).
func TestErasureRunsDoNotOverlap(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		// A second replica; on SQLite, where the database serializes
		// writers anyway, a second caller of the same engine.
		other := v
		if db.Dialect().Name() == dialect.PG {
			other = newEnv(t, db)
		}
		_, a := v.tenant(t, "alpha")
		insert(t, a, db, &[]contact{{ID: "k1", Email: ptr("ann@example.com"), Name: "Ann", UpdatedAt: epoch}})
		var ns []note
		for i := range 20 {
			ns = append(ns, note{ID: id("n", i), ContactID: "k1", Body: "hello", CreatedAt: epoch})
		}
		insert(t, a, db, &ns)
		req, err := v.e.Submit(a, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"contact_id": "k1"}})
		require.NoError(t, err)
		_, err = v.e.SetVerification(a, req.ID, retention.VerificationVerified)
		require.NoError(t, err)

		held, resume := make(chan struct{}), make(chan struct{})
		var once sync.Once
		retention.SetTrace(v.e, func(point string) {
			if point == "batch.committed" {
				once.Do(func() { close(held); <-resume })
			}
		})
		var secondPoints atomic.Int32
		waiting := make(chan struct{})
		second := func(point string) {
			if point == "claim.wait" {
				close(waiting)
				return
			}
			secondPoints.Add(1)
		}
		if other == v {
			// One engine: the first run's points go on to the hold above.
			first := func(point string) {
				if point == "batch.committed" {
					once.Do(func() { close(held); <-resume })
				}
			}
			retention.SetTrace(v.e, func(point string) {
				if point == "claim.wait" {
					second(point)
					return
				}
				first(point)
			})
		} else {
			retention.SetTrace(other.e, second)
		}

		var first retention.Receipt
		var firstErr, secondErr error
		var wg sync.WaitGroup
		firstDone := make(chan struct{})
		wg.Go(func() { first, firstErr = v.e.Erase(a, req.ID); close(firstDone) })
		select {
		case <-held:
		case <-firstDone:
			t.Fatalf("the first run ended before its first batch committed: %v", firstErr)
		}
		secondDone := make(chan struct{})
		go func() { _, secondErr = other.e.Erase(a, req.ID); close(secondDone) }()
		select {
		case <-secondDone:
			t.Fatalf("the second run ended while the first was held: %v", secondErr)
		case <-waiting: // the second run waits for the first
		}
		close(resume)
		wg.Wait()
		<-secondDone
		require.NoError(t, firstErr)
		require.ErrorIs(t, secondErr, retention.ErrClosed)
		require.Zero(t, secondPoints.Load(), "the second run erased nothing")
		require.Len(t, receipts(t, a, db, "retention.request_completed"), 1)

		got, err := other.e.Receipt(a, req.ID)
		require.NoError(t, err)
		require.Equal(t, first.Erased(), got.Erased())
		require.Equal(t, int64(21), got.Erased(), "the contact and 20 notes")
		require.Equal(t, retention.OutcomeDataFound, got.Outcome)

		open, err := v.e.Submit(a, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"contact_id": "k2"}})
		require.NoError(t, err)
		_, err = v.e.Receipt(a, open.ID)
		require.ErrorIs(t, err, retention.ErrNotCompleted, "an open request has no receipt yet")
	})
}

package retention_test

import (
	"sync"
	"testing"

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

package crm_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/retention"
)

// TestS16PendBoundEveryTenant: two tenants whose creates alternate each
// keep at most PendingNamesBound + PendingNamesCheckEvery contacts
// pending. The check was one create in PendingNamesCheckEvery of the
// Store's, whichever tenant's it was: with two tenants taking turns it
// fell on the same tenant's create every time, and the other's pending
// contacts grew without bound until Maintain ran (PostgreSQL; on SQLite
// nothing is pending).
func TestS16PendBoundEveryTenant(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		per := crm.PendingNamesBound + 3*crm.PendingNamesCheckEvery
		for i := range per {
			for _, ctx := range []context.Context{e.A, e.B} {
				_, err := contacts.Create(ctx, crm.ContactInput{FirstName: "Ada", LastName: fmt.Sprintf("L%d", i)})
				require.NoError(t, err)
			}
		}
		for name, ctx := range map[string]context.Context{"A": e.A, "B": e.B} {
			require.LessOrEqual(t, pendingNames(t, e, ctx), crm.PendingNamesBound+crm.PendingNamesCheckEvery, "tenant %s", name)
			require.Len(t, pendingSearch(t, e, ctx, "ada"), per, "tenant %s", name)
		}
		requireNameIndexExact(t, e)
		s14NoDuplicates(t, e)
	})
}

// TestS16PendConcurrentEverything: with more than PendingNamesBound
// contacts pending, creates (whose checks move contacts), two
// IndexPendingNames loops, renames, merges and erasures of pending
// contacts all run at once; none fails (no deadlock between a move and
// an erasure's or a merge's row locks), and afterwards a search finds
// exactly the contacts that are left, by their last names, with every
// row written once and none of an erased or merged-away contact.
func TestS16PendConcurrentEverything(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		contacts := e.store.Contacts()
		eng := nameEngine(t, e)
		seed := make([]crm.Contact, crm.PendingNamesBound+20)
		for i := range seed {
			c, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Marie", LastName: fmt.Sprintf("Curie%d", i)})
			require.NoError(t, err)
			seed[i] = c
		}
		var wg sync.WaitGroup
		errs := make(chan error, 1024)
		done := make(chan struct{})
		for range 2 {
			wg.Go(func() {
				for {
					if _, err := contacts.IndexPendingNames(e.A); err != nil {
						errs <- fmt.Errorf("move: %w", err)
						return
					}
					select {
					case <-done:
						return
					default:
					}
				}
			})
		}
		var writers sync.WaitGroup
		// Creates: enough for several checks of the bound each.
		for w := range 2 {
			writers.Go(func() {
				for i := range 2 * crm.PendingNamesCheckEvery {
					if _, err := contacts.Create(e.A, crm.ContactInput{FirstName: "Lise", LastName: fmt.Sprintf("Meitner%d", w*1000+i)}); err != nil {
						errs <- fmt.Errorf("create: %w", err)
						return
					}
				}
			})
		}
		// Renames of the seed's first 40, erasures of the next 30 (three
		// at a time, retention's batches of 3), merges of the next 20 into
		// pairs.
		writers.Go(func() {
			for _, c := range seed[:40] {
				if _, err := contacts.Update(e.A, c.ID, c.Version, crm.ContactInput{FirstName: "Marie", LastName: "Sklodowska"}); err != nil {
					errs <- fmt.Errorf("rename: %w", err)
				}
			}
		})
		erase := func() {
			for i := 40; i < 70; i++ {
				r, err := eng.Submit(e.A, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{crm.SubjectContact: seed[i].ID}})
				if err == nil {
					_, err = eng.SetVerification(e.A, r.ID, retention.VerificationVerified)
				}
				if err == nil {
					_, err = eng.Erase(e.A, r.ID)
				}
				if err != nil {
					errs <- fmt.Errorf("erase: %w", err)
				}
			}
		}
		// On SQLite, which has no moves, the erasures run after the other
		// writers: beside them under -race they outwaited SQLite's busy
		// timeout.
		if e.db.Name == "postgres" {
			writers.Go(erase)
		}
		writers.Go(func() {
			for i := 70; i < 90; i += 2 {
				if _, err := contacts.Merge(e.A, seed[i].ID, seed[i+1].ID); err != nil {
					errs <- fmt.Errorf("merge: %w", err)
				}
			}
		})
		writers.Wait()
		if e.db.Name != "postgres" {
			erase()
		}
		close(done)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			return
		}
		check := func(when string) {
			t.Helper()
			require.Len(t, pendingSearch(t, e, e.A, "sklodowska"), 40, when)
			require.Len(t, pendingSearch(t, e, e.A, "lise"), 4*crm.PendingNamesCheckEvery, when)
			require.Len(t, pendingSearch(t, e, e.A, "marie"), len(seed)-30-10, when)
			for i := 40; i < 70; i++ {
				require.Empty(t, pendingSearch(t, e, e.A, fmt.Sprintf("curie%d", i)), "%s: erased", when)
				require.Zero(t, rawNameRows(t, e, seed[i].ID), "%s: erased contact's rows", when)
			}
			for i := 71; i < 90; i += 2 {
				require.Zero(t, rawNameRows(t, e, seed[i].ID), "%s: merged-away contact's rows", when)
			}
			s14NoDuplicates(t, e)
		}
		check("after")
		_, err := contacts.IndexPendingNames(e.A)
		require.NoError(t, err)
		require.Zero(t, pendingNames(t, e, e.A))
		check("moved")
		requireNameIndexExact(t, e)
	})
}

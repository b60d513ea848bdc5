package retention_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestResolveFollowsKeys: resolvers chain (e-mail → contact ids → account
// ids), run in the request's tenant, and Erase and Export use the full key
// set; cycles end, and the bounds fail with a *ResolutionError.
func TestResolveFollowsKeys(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		_, a := v.tenant(t, "alpha")
		// e-mail → contacts holding it, read from the tenant's rows.
		require.NoError(t, v.e.RegisterResolver("email", func(ctx context.Context, db bun.IDB, email string) (map[string][]string, error) {
			var ids []string
			err := tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
				return tx.NewSelect().Model((*contact)(nil)).Column("id").Apply(tenancy.Scope(ctx)).Where("email = ?", email).Scan(ctx, &ids)
			})
			return map[string][]string{"contact_id": ids}, err
		}))
		// contact → its platform account, and back (a cycle).
		links := map[string]string{"k1": "acct-1"}
		require.NoError(t, v.e.RegisterResolver("contact_id", func(_ context.Context, _ bun.IDB, id string) (map[string][]string, error) {
			if acct, ok := links[id]; ok {
				return map[string][]string{"account_id": {acct}}, nil
			}
			return nil, nil
		}))
		require.NoError(t, v.e.RegisterResolver("account_id", func(_ context.Context, _ bun.IDB, acct string) (map[string][]string, error) {
			return map[string][]string{"contact_id": {"k1"}}, nil
		}))
		insert(t, a, db, &[]contact{{ID: "k1", Email: ptr("ann@example.com"), Name: "Ann", UpdatedAt: epoch},
			{ID: "k2", Email: ptr("bob@example.com"), Name: "Bob", UpdatedAt: epoch}})
		insert(t, a, db, &[]note{{ID: "n1", ContactID: "k1", Body: "b", CreatedAt: epoch}, {ID: "n2", ContactID: "k2", Body: "b", CreatedAt: epoch}})
		insert(t, a, db, &[]response{{ID: "r1", AccountID: "acct-1", Body: "b", FetchedAt: epoch}, {ID: "r2", AccountID: "acct-2", Body: "b", FetchedAt: epoch}})

		keys, err := v.e.Resolve(a, map[string]string{"email": "ann@example.com"})
		require.NoError(t, err)
		require.Equal(t, retention.Keys{"email": {"ann@example.com"}, "contact_id": {"k1"}, "account_id": {"acct-1"}}, keys)

		req, err := v.e.Submit(a, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"email": "ann@example.com"}})
		require.NoError(t, err)
		_, err = v.e.SetVerification(a, req.ID, retention.VerificationVerified)
		require.NoError(t, err)
		rc, err := v.e.Erase(a, req.ID)
		require.NoError(t, err)
		require.Equal(t, map[string]int{"email": 1, "contact_id": 1, "account_id": 1}, rc.Searched)
		require.Equal(t, []string{"r2"}, ids(t, a, db, "test_responses"), "reached through the contact's account")
		require.Equal(t, []string{"n2"}, ids(t, a, db, "test_notes"))
		done := receipts(t, a, db, "retention.request_completed")
		require.Len(t, done, 1)
		require.Equal(t, "account_id:1,contact_id:1,email:1", done[0].Metadata["searched"])
		require.NotContains(t, done[0].Metadata["searched"], "ann@", "kinds and counts, never values")

		small, err := retention.New(db, retention.WithClock(v.clock.Now), retention.WithResolutionLimits(1, 100))
		require.NoError(t, err)
		require.NoError(t, small.Register(testCategories(nil)...))
		require.NoError(t, small.RegisterResolver("email", func(context.Context, bun.IDB, string) (map[string][]string, error) {
			return map[string][]string{"contact_id": {"k1"}}, nil
		}))
		require.NoError(t, small.RegisterResolver("contact_id", func(context.Context, bun.IDB, string) (map[string][]string, error) {
			return map[string][]string{"contact_id": {"k9"}}, nil
		}))
		_, err = small.Resolve(a, map[string]string{"email": "ann@example.com"})
		var re *retention.ResolutionError
		require.True(t, errors.As(err, &re), "Resolve returned %v, want a *ResolutionError", err)
		require.Equal(t, "depth", re.Limit)

		_, err = v.e.Submit(a, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"shoe_size": "42"}})
		var uk *retention.UnknownKindError
		require.True(t, errors.As(err, &uk), "Submit returned %v", err)
		require.Contains(t, uk.Known, "email")
		require.Contains(t, uk.Known, "account_id")
		require.True(t, strings.Contains(err.Error(), "shoe_size"))
	})
}

// TestResumeErasures: an erasure interrupted after some batches stays
// open; ResumeErasures, run as the system, finishes it, and the final
// receipt and completion entry count the rows of every run.
func TestResumeErasures(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db) // batches of 7
		_, a := v.tenant(t, "alpha")
		var ns []note
		for i := range 30 {
			ns = append(ns, note{ID: id("n", i), ContactID: "k1", Body: "b", CreatedAt: epoch})
		}
		insert(t, a, db, &ns)
		insert(t, a, db, &[]contact{{ID: "k1", Email: ptr("ann@example.com"), Name: "Ann", UpdatedAt: epoch}})
		req, err := v.e.Submit(a, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"contact_id": "k1"}})
		require.NoError(t, err)
		_, err = v.e.SetVerification(a, req.ID, retention.VerificationVerified)
		require.NoError(t, err)

		// The process "dies" in the third batch (the contact's, then two of
		// notes): its transaction rolls back.
		boom := errors.New("killed")
		batches := 0
		retention.SetTrace(v.e, func(point string) {
			if point == "batch.erased" {
				if batches++; batches == 3 {
					panic(boom)
				}
			}
		})
		func() {
			defer func() { require.Equal(t, boom, recover()) }()
			_, _ = v.e.Erase(a, req.ID)
		}()
		retention.SetTrace(v.e, nil)
		require.Len(t, ids(t, a, db, "test_notes"), 23, "one batch of 7 notes committed")
		r, err := v.e.Get(a, req.ID)
		require.NoError(t, err)
		require.Equal(t, retention.StatusOpen, r.Status)
		require.Equal(t, map[string]int64{"crm.contact": 1, "crm.note": 7}, r.Erased)

		_, err = v.e.ResumeErasures(a)
		require.ErrorIs(t, err, tenancy.ErrNotSystem)
		rcs, err := v.e.ResumeErasures(system())
		require.NoError(t, err)
		require.Len(t, rcs, 1)
		got := map[string]int64{}
		for _, c := range rcs[0].Categories {
			got[c.Category] = c.Erased
		}
		require.EqualValues(t, 30, got["crm.note"], "the receipt counts both runs")
		require.EqualValues(t, 1, got["crm.contact"])
		require.Empty(t, ids(t, a, db, "test_notes"))
		done := receipts(t, a, db, "retention.request_completed")
		require.Len(t, done, 1)
		require.Equal(t, "31", done[0].Metadata["erased"])
		require.EqualValues(t, 30, sumMeta(receipts(t, a, db, "retention.erased"), "crm.note", "count"), "batch receipts agree")

		rcs, err = v.e.ResumeErasures(system())
		require.NoError(t, err)
		require.Empty(t, rcs, "nothing left open")
	})
}

// TestAfterEraseRunsAfterCommit: a category's AfterErase hook sees only
// rows whose batch committed; when the process dies between the commit and
// the hook, the ids stay recorded and the next run (ResumeErasures here)
// runs the hook for them before anything else, once.
func TestAfterEraseRunsAfterCommit(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		c := newClock()
		store, err := tenancy.NewStore(db, tenancy.WithClock(c.Now))
		require.NoError(t, err)
		e, err := retention.New(db, retention.WithClock(c.Now), retention.WithStore(store), retention.WithBatchSize(4))
		require.NoError(t, err)
		var deleted []string // the "bytes" deleted, by row id
		cats := testCategories(nil)
		for i := range cats {
			if cats[i].Name == "crm.note" {
				cats[i].AfterErase = func(ctx context.Context, ids []string) error {
					// The rows are gone when the hook runs.
					tid, _ := tenancy.TenantID(ctx)
					var left int
					require.NoError(t, tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
						return tx.NewRaw("SELECT count(*) FROM test_notes WHERE tenant_id = ? AND id IN (?)", tid, bun.In(ids)).Scan(ctx, &left)
					}))
					require.Zero(t, left)
					deleted = append(deleted, ids...)
					return nil
				}
			}
		}
		require.NoError(t, e.Register(cats...))
		require.NoError(t, e.Register(retention.TenancyCategories(store.Audit())...))
		require.NoError(t, e.Register(retention.OwnCategories()...))
		v := &env{db: db, clock: c, e: e, store: store}
		_, a := v.tenant(t, "alpha")
		var ns []note
		for i := range 10 {
			ns = append(ns, note{ID: id("n", i), ContactID: "k1", Body: "b", CreatedAt: epoch})
		}
		insert(t, a, db, &ns)
		req, err := e.Submit(a, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"contact_id": "k1"}})
		require.NoError(t, err)
		_, err = e.SetVerification(a, req.ID, retention.VerificationVerified)
		require.NoError(t, err)

		// Dies right after the second batch of notes commits.
		boom := errors.New("killed")
		commits := 0
		retention.SetTrace(e, func(point string) {
			if point == "batch.committed" {
				if commits++; commits == 2 {
					panic(boom)
				}
			}
		})
		func() {
			defer func() { require.Equal(t, boom, recover()) }()
			_, _ = e.Erase(a, req.ID)
		}()
		retention.SetTrace(e, nil)
		require.Len(t, deleted, 4, "the first batch's hook ran after its commit")
		require.Len(t, ids(t, a, db, "test_notes"), 2, "two batches committed")
		require.Len(t, ids(t, a, db, retention.TablePending), 4, "the second batch's ids are recorded")

		rcs, err := e.ResumeErasures(system())
		require.NoError(t, err)
		require.Len(t, rcs, 1)
		require.ElementsMatch(t, ids(t, a, db, "test_notes"), []string{})
		require.Len(t, deleted, 10, "every erased row's hook ran, each once")
		seen := map[string]bool{}
		for _, d := range deleted {
			require.False(t, seen[d], "hook ran twice for %s", d)
			seen[d] = true
		}
		require.Empty(t, ids(t, a, db, retention.TablePending))
	})
}

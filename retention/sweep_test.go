package retention_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

func TestRegisterRejectsBadCategories(t *testing.T) {
	db := dbtest.SQLite(t, setup)
	e, err := retention.New(db)
	require.NoError(t, err)
	bad := []retention.Category{
		{Table: "t"},
		{Name: "x", Table: "t; DROP TABLE x"},
		{Name: "x", Table: "t", ID: "id)"},
		{Name: "x", Table: "t", Time: "a b"},
		{Name: "x", Table: "t", Subject: map[string]string{"email": "r.email = ?"}},
		{Name: "x", Table: "t", Subject: map[string]string{"email": "r.email IS NOT NULL"}},
		{Name: "x", Table: "t", Erase: retention.Erase{Anonymize: map[string]any{"tenant_id": nil}}},
		{Name: "x", Table: "t", Erase: retention.Erase{Anonymize: map[string]any{"a-b": nil}}},
	}
	for _, c := range bad {
		err := e.Register(c)
		var ce *retention.CategoryError
		require.True(t, errors.As(err, &ce), "Register(%+v) returned %v, want *CategoryError", c, err)
	}
	require.NoError(t, e.Register(retention.Category{Name: "x", Table: "test_notes"}))
	var ce *retention.CategoryError
	require.ErrorAs(t, e.Register(retention.Category{Name: "x", Table: "test_notes"}), &ce, "duplicate name")

	_, err = retention.New(db, retention.WithBatchSize(0))
	require.Error(t, err)
	_, err = retention.New(db, retention.WithClock(nil))
	require.Error(t, err)
	_, err = retention.New(db, retention.WithRequestDeadline(-1))
	require.Error(t, err)
}

func TestCheckAndUncovered(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		ctx := t.Context()
		require.NoError(t, v.e.Check(ctx))
		left, err := v.e.Uncovered(ctx)
		require.NoError(t, err)
		require.Empty(t, left, "every tenant-owned table must have a category")

		// An engine missing categories reports their tables.
		e, err := retention.New(db)
		require.NoError(t, err)
		require.NoError(t, e.Register(testCategories(nil)[1:]...))
		left, err = e.Uncovered(ctx)
		require.NoError(t, err)
		require.Contains(t, left, "test_responses")
		require.Contains(t, left, tenancy.TableAuditLog)
		require.Contains(t, left, retention.TableHolds)
		require.NotContains(t, left, "test_metrics")

		// Check finds unknown columns and policy rules without categories.
		e, err = retention.New(db, retention.WithPolicy(testPolicy()))
		require.NoError(t, err)
		require.NoError(t, e.Register(retention.Category{Name: "bad", Table: "test_notes", Time: "nope", Subject: map[string]string{"e": "mail"}}))
		err = e.Check(ctx)
		var ce *retention.CategoryError
		var pe *retention.PolicyError
		require.ErrorAs(t, err, &ce)
		require.ErrorAs(t, err, &pe)
		require.Contains(t, err.Error(), "no column nope")
		require.Contains(t, err.Error(), "no column mail")

		// Sweep ignores rules for categories a program does not link.
		e, err = retention.New(db, retention.WithPolicy(testPolicy()))
		require.NoError(t, err)
		require.NoError(t, e.Register(testCategories(nil)[0]))
		_, err = e.Sweep(system(), epoch)
		require.NoError(t, err)
		require.ErrorAs(t, e.Check(ctx), &pe)
	})
}

func TestSweepByAge(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		_, a := v.tenant(t, "alpha")
		_, b := v.tenant(t, "beta")
		now := epoch
		for _, ctx := range []context.Context{a, b} {
			var rs []response
			for i := range 20 {
				rs = append(rs, response{ID: id("r", i), AccountID: "acct", Body: "{}", FetchedAt: now.AddDate(0, 0, -80-i)}) // 80..99 days old
			}
			insert(t, ctx, db, &rs)
			var ms []metric
			for i := range 5 {
				ms = append(ms, metric{ID: id("m", i), AccountID: "acct", Value: 1, Day: now.Add(-24*retention.Month + time.Duration(i-2)*retention.Day)})
			}
			insert(t, ctx, db, &ms)
			inv := []invoice{
				{ID: "inv-old", ContactID: "c1", Amount: 100, IssuedAt: now.Add(-7*retention.Year - retention.Day)},
				{ID: "inv-new", ContactID: "c1", Amount: 100, IssuedAt: now.Add(-6 * retention.Year)},
			}
			insert(t, ctx, db, &inv)
		}

		rep, err := v.e.Sweep(system(), now)
		require.NoError(t, err)
		// Raw responses: 90 days → the 9 rows 91..99 days old, plus the one exactly 90 days old (due at the cutoff).
		for _, ctx := range []context.Context{a, b} {
			require.Len(t, ids(t, ctx, db, "test_responses"), 10)
			require.Equal(t, []string{"m-0003", "m-0004"}, ids(t, ctx, db, "test_metrics"))
			require.Equal(t, []string{"inv-new"}, ids(t, ctx, db, "test_invoices"))
			rs := receipts(t, ctx, db, "retention.swept")
			require.EqualValues(t, 10, sumMeta(rs, catRawResponse, "count"))
			require.EqualValues(t, 3, sumMeta(rs, catMetrics, "count"))
			require.EqualValues(t, 1, sumMeta(rs, catInvoice, "count"))
			require.Equal(t, "example-2026", rs[0].Metadata["policy"])
			require.NotEmpty(t, rs[0].Metadata["window"])
		}
		require.EqualValues(t, 2*(10+3+1), rep.Erased())

		// Idempotent: nothing more is due.
		rep, err = v.e.Sweep(system(), now)
		require.NoError(t, err)
		require.Zero(t, rep.Erased())
		require.Len(t, receipts(t, a, db, "retention.swept"), 2+1+1) // 10 rows in batches of 7, 3, 1

		// Only the system may sweep.
		_, err = v.e.Sweep(a, now)
		require.ErrorIs(t, err, tenancy.ErrNotSystem)
	})
}

func TestSweepAnonymizes(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		p := testPolicy()
		p.Rules = append(p.Rules, retention.Rule{Category: "crm.contact", Period: 36 * retention.Month})
		v := newEnv(t, db, retention.WithPolicy(p))
		_, a := v.tenant(t, "alpha")
		var cs []contact
		for i := range 10 {
			cs = append(cs, contact{ID: id("k", i), Email: ptr("x@example.com"), Name: "X", UpdatedAt: epoch.Add(-time.Duration(35+i%2) * retention.Month)})
		}
		insert(t, a, db, &cs)
		rep, err := v.e.Sweep(system(), epoch)
		require.NoError(t, err)
		require.EqualValues(t, 5, rep.Erased())
		var got []contact
		require.NoError(t, in(a, db, func(tx bun.Tx) error { return tx.NewSelect().Model(&got).Order("id").Scan(a) }))
		require.Len(t, got, 10, "anonymized rows stay")
		for i, c := range got {
			if i%2 == 1 {
				require.Nil(t, c.Email)
				require.Equal(t, "erased", c.Name)
			} else {
				require.Equal(t, "X", c.Name)
			}
		}
		rep, err = v.e.Sweep(system(), epoch)
		require.NoError(t, err)
		require.Zero(t, rep.Erased(), "anonymized rows are not anonymized again")
	})
}

func TestConcurrentSweeps(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		_, a := v.tenant(t, "alpha")
		insertDueResponses(t, a, db, 200)
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = v.e.Sweep(system(), epoch)
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil && !(db.Name == "postgres" && isSerialization(err)) {
				require.NoError(t, err)
			}
		}
		_, err := v.e.Sweep(system(), epoch)
		require.NoError(t, err)
		require.Empty(t, ids(t, a, db, "test_responses"))
		require.EqualValues(t, 200, sumMeta(receipts(t, a, db, "retention.swept"), catRawResponse, "count"),
			"each row counted once across concurrent sweeps")
	})
}

func isSerialization(err error) bool {
	return strings.Contains(err.Error(), "40001") || strings.Contains(err.Error(), "40P01")
}

// TestSweepLeavesNoErasedRowInTheLog: rows a sweep erases leave SQLite's
// write-ahead log too, not only the database file (where secure_delete
// zeroes them): without the sweep's TRUNCATE checkpoint the log keeps the
// frames that wrote them until a later writer happens to overwrite them.
// SQLite only: PostgreSQL's WAL is the server's, outside what the SDK
// controls (its backups are covered by crypto-shredding).
func TestSweepLeavesNoErasedRowInTheLog(t *testing.T) {
	db := dbtest.SQLite(t, setup)
	v := newEnv(t, db)
	_, a := v.tenant(t, "alpha")
	const canary = "canary-swept-7f3a9c"
	rs := []response{
		{ID: "r-old", AccountID: "acct", Body: `{"bio":"` + canary + `"}`, FetchedAt: epoch.AddDate(0, 0, -120)},
		{ID: "r-new", AccountID: "acct", Body: "{}", FetchedAt: epoch.AddDate(0, 0, -1)},
	}
	insert(t, a, db, &rs)
	traces := func() bool {
		var all []byte
		for _, p := range []string{db.Path, db.Path + "-wal"} {
			b, err := os.ReadFile(p)
			if err != nil && !os.IsNotExist(err) {
				require.NoError(t, err)
			}
			all = append(all, b...)
		}
		return bytes.Contains(all, []byte(canary))
	}
	require.True(t, traces(), "the row is in the file or its log before the sweep")
	rep, err := v.e.Sweep(system(), epoch)
	require.NoError(t, err)
	require.EqualValues(t, 1, rep.Erased())
	require.Equal(t, []string{"r-new"}, ids(t, a, db, "test_responses"))
	_, err = db.DB.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)") // what SQLite's automatic checkpoint does
	require.NoError(t, err)
	require.False(t, traces(), "the swept row is left in the database file or its write-ahead log")
}

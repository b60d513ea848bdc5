package retention_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// catToken is the category of test_tokens: a blind index's rows, one per
// token of an owner, indexed by token alone (as crm's name index rows on
// PostgreSQL), found by owner and erased through Category.Lookup.
const catToken = "test.token"

// tokenCategory declares test_tokens. Its SubjectIndex finds an owner's
// rows by the tokens the owner's rows carry (every token of owner o is
// "o:<n>", n < 20), through the token index, on both databases.
func tokenCategory() retention.Category {
	return retention.Category{Name: catToken, Table: "test_tokens", ID: "owner_id", Lookup: "token", Time: "at",
		Subject: map[string]string{"contact_id": "owner_id"},
		SubjectIndex: func(dialect.Name) map[string]string {
			var ts []string
			for n := range 20 {
				ts = append(ts, fmt.Sprintf("?value || ':%d'", n))
			}
			return map[string]string{"contact_id": "r.token IN (" + strings.Join(ts, ", ") + ")"}
		},
		LegalBasis: "contract", Purpose: "a blind index"}
}

// tokenEnv creates test_tokens (no primary key; one index, on token) and
// an engine with its category, batches of 7, and a sweep rule of 90 days.
func tokenEnv(t *testing.T, db *dbtest.DB, opts ...retention.Option) *env {
	t.Helper()
	return tokenEnvOf(t, db, tokenCategory(), opts...)
}

// tokenEnvOf is tokenEnv with c registered as test_tokens' category.
func tokenEnvOf(t *testing.T, db *dbtest.DB, c retention.Category, opts ...retention.Option) *env {
	t.Helper()
	ctx := context.Background()
	stmt := `CREATE TABLE test_tokens (tenant_id TEXT NOT NULL, token TEXT NOT NULL, owner_id TEXT NOT NULL, at TIMESTAMP NOT NULL)`
	if db.Name == "postgres" {
		stmt = strings.ReplaceAll(stmt, " TIMESTAMP", " TIMESTAMPTZ")
	}
	owner := db.ReopenOwner(t)
	for _, q := range []string{stmt, `CREATE INDEX test_tokens_token ON test_tokens (token)`} {
		_, err := owner.ExecContext(ctx, q)
		require.NoError(t, err)
	}
	require.NoError(t, tenancy.EnableRowSecurity(ctx, owner, "test_tokens"))
	dbtest.GrantApp(t, db)
	p := testPolicy()
	p.Rules = append(p.Rules, retention.Rule{Category: catToken, Period: 90 * retention.Day})
	v := newEnv(t, db, append([]retention.Option{retention.WithPolicy(p)}, opts...)...)
	require.NoError(t, v.e.Register(c))
	return v
}

// addTokens writes tokens from..to-1 of owner o in ctx's tenant, dated at.
func addTokens(t *testing.T, ctx context.Context, db bun.IDB, o string, from, to int, at time.Time) {
	t.Helper()
	tid, err := tenancy.TenantID(ctx)
	require.NoError(t, err)
	require.NoError(t, in(ctx, db, func(tx bun.Tx) error {
		for n := from; n < to; n++ {
			if _, err := tx.ExecContext(ctx, "INSERT INTO test_tokens (tenant_id, token, owner_id, at) VALUES (?, ?, ?, ?)",
				tid, fmt.Sprintf("%s:%d", o, n), o, at); err != nil {
				return err
			}
		}
		return nil
	}))
}

// tokensOf counts owner o's rows in ctx's tenant (every owner's: "").
func tokensOf(t *testing.T, ctx context.Context, db bun.IDB, o string) int {
	t.Helper()
	tid, err := tenancy.TenantID(ctx)
	require.NoError(t, err)
	var n int
	require.NoError(t, in(ctx, db, func(tx bun.Tx) error {
		return tx.NewRaw("SELECT count(*) FROM test_tokens WHERE tenant_id = ? AND (? = '' OR owner_id = ?)", tid, o, o).Scan(ctx, &n)
	}))
	return n
}

// TestLookupErasesSelectedRows: a category with Lookup, whose table has no
// index on its ID column, is erased by request, swept by three concurrent
// sweeps and purged with its tenant: each erases exactly its rows — an
// owner's rows, not another owner's that share her tokens' index entries
// nor another tenant's — and counts each once. On PostgreSQL the batch's
// delete finds its rows through the token index (the plan, as the
// application's role), and a registration with a bad Lookup fails.
func TestLookupErasesSelectedRows(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		h := &captureQueries{}
		db.AddQueryHook(h)
		v := tokenEnv(t, db)
		aid, a := v.tenant(t, "alpha")
		_, b := v.tenant(t, "beta")
		old, recent := epoch.Add(-100*retention.Day), epoch.Add(-10*retention.Day)
		for _, ctx := range []context.Context{a, b} {
			addTokens(t, ctx, db, "ann", 0, 16, recent)
			addTokens(t, ctx, db, "bob", 0, 5, old)
			addTokens(t, ctx, db, "bob", 5, 10, recent)
			addTokens(t, ctx, db, "cat", 0, 20, old)
		}

		// An erasure of ann's rows: 16, in three batches of 7.
		req, err := v.e.Submit(a, retention.Request{Kind: retention.KindErasure, Subject: map[string]string{"contact_id": "ann"}})
		require.NoError(t, err)
		_, err = v.e.SetVerification(a, req.ID, retention.VerificationVerified)
		require.NoError(t, err)
		rc, err := v.e.Erase(a, req.ID)
		require.NoError(t, err)
		got := map[string]int64{}
		for _, c := range rc.Categories {
			got[c.Category] += c.Erased
		}
		require.EqualValues(t, 16, got[catToken])
		require.Zero(t, tokensOf(t, a, db, "ann"))
		require.Equal(t, 10, tokensOf(t, a, db, "bob"))
		require.Equal(t, 20, tokensOf(t, a, db, "cat"))
		require.Equal(t, 16, tokensOf(t, b, db, "ann"), "another tenant's rows stay")

		if db.Name == "postgres" {
			del := h.last("DELETE FROM test_tokens", "'ann'")
			require.Contains(t, del, "WITH s AS MATERIALIZED", del)
			var lines []string
			require.NoError(t, tenancy.RunInTx(a, db.Reopen(t), nil, func(ctx context.Context, tx bun.Tx) error {
				if _, err := tx.ExecContext(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
					return err
				}
				return tx.NewRaw("EXPLAIN (COSTS false) "+del).Scan(ctx, &lines)
			}))
			plan := strings.Join(lines, "\n")
			require.NotContains(t, plan, "Seq Scan", "the batch's delete:\n%s", plan)
			require.Contains(t, plan, "Index Scan using test_tokens_token on test_tokens\n", "the batch's delete:\n%s", plan)
		}

		// Three concurrent sweeps: bob's 5 old rows and cat's 20 in each
		// tenant, each counted once.
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Go(func() { _, errs[i] = v.e.Sweep(system(), epoch) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil && !(db.Name == "postgres" && isSerialization(err)) {
				require.NoError(t, err)
			}
		}
		_, err = v.e.Sweep(system(), epoch)
		require.NoError(t, err)
		for _, ctx := range []context.Context{a, b} {
			require.Equal(t, 5, tokensOf(t, ctx, db, "bob"))
			require.Zero(t, tokensOf(t, ctx, db, "cat"))
			require.EqualValues(t, 25, sumMeta(receipts(t, ctx, db, "retention.swept"), catToken, "count"),
				"each row counted once across concurrent sweeps")
		}

		// The tenant's purge: every row of alpha, none of beta.
		_, err = v.store.CloseTenant(a, 0)
		require.NoError(t, err)
		res, err := v.e.PurgeTenants(system(), v.clock.Now())
		require.NoError(t, err)
		require.Len(t, res, 1)
		require.True(t, res[0].Purged)
		purged := map[string]int64{}
		for _, c := range res[0].Receipts {
			purged[c.Category] += c.Erased
		}
		require.EqualValues(t, 5, purged[catToken], "%+v", res)
		require.Zero(t, tokensOf(t, tenancyAs(t, aid), db, ""))
		require.Equal(t, 16+5, tokensOf(t, b, db, ""))

		for _, c := range []retention.Category{
			{Name: "x1", Table: "test_tokens", ID: "owner_id", Lookup: "owner_id"},
			{Name: "x2", Table: "test_tokens", ID: "owner_id", Lookup: "token)"},
			{Name: "x3", Table: "test_tokens", ID: "owner_id", Subject: map[string]string{"contact_id": "owner_id"},
				SubjectIndex: func(dialect.Name) map[string]string { return map[string]string{"email": "r.token = ?value"} }},
			{Name: "x4", Table: "test_tokens", ID: "owner_id", Subject: map[string]string{"contact_id": "owner_id"},
				SubjectIndex: func(dialect.Name) map[string]string { return map[string]string{"contact_id": "r.token = ?"} }},
		} {
			var ce *retention.CategoryError
			require.True(t, errors.As(v.e.Register(c), &ce), "Register(%s) must fail with a *CategoryError", c.Name)
		}
	})
}

// captureQueries records the statements a database runs.
type captureQueries struct {
	mu      sync.Mutex
	queries []string
}

func (h *captureQueries) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

func (h *captureQueries) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.queries = append(h.queries, e.Query)
}

// last returns the last statement that holds every one of words.
func (h *captureQueries) last(words ...string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.queries) - 1; i >= 0; i-- {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(h.queries[i], w)
		}
		if ok {
			return h.queries[i]
		}
	}
	return ""
}

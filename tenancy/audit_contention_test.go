package tenancy_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestAuditAppendUnderContention: many appenders of one tenant at once,
// more than any fixed number of retries could absorb, some of them inside
// transactions of their own that stay open a while, all succeed, and the
// chain they form is unbroken and holds every entry once. Appends used to
// race for the next sequence number and retry on losing; with 24 of them
// released together, the last could lose more rounds than it had retries
// (TestAuditChain/postgres failed that way under load). Another tenant's
// appends, meanwhile, form their own chain.
//
// On PostgreSQL it runs twice: on the SDK's handle, where the lock rides
// with the head query, and on a plain pgx handle a host might bring, where
// it is a statement of its own.
func TestAuditAppendUnderContention(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		appendUnderContention(t, db.DB)
		if db.Name == "postgres" {
			plain := bun.NewDB(stdlib.OpenDB(*mustPGConfig(t, db.DSN())), pgdialect.New())
			t.Cleanup(func() { plain.Close() })
			require.False(t, sqldb.Folds(plain.DB))
			appendUnderContention(t, plain)
		}
	})
}

func mustPGConfig(t *testing.T, dsn string) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	return cfg
}

func appendUnderContention(t *testing.T, db *bun.DB) {
	log, err := tenancy.NewAuditLog(db)
	require.NoError(t, err)
	a, b := tenancy.NewID(), tenancy.NewID()
	ctxA, ctxB := ownerOf(a), ownerOf(b)

	const writers, each = 24, 3
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers*each)
	for w := range writers {
		wg.Go(func() {
			<-start
			for i := range each {
				ev := tenancy.AuditEvent{Action: "contact.updated", Target: fmt.Sprintf("contact:%d-%d", w, i)}
				if w%4 == 0 {
					// In a transaction of the caller that does more after
					// the append: the entry commits with it.
					errs <- tenancy.RunInTx(ctxA, db, nil, func(ctx context.Context, tx bun.Tx) error {
						if _, err := log.In(tx).Append(ctx, ev); err != nil {
							return err
						}
						_, err := log.In(tx).List(ctx, tenancy.AuditListOptions{Limit: 1})
						return err
					})
				} else {
					_, err := log.Append(ctxA, ev)
					errs <- err
				}
				if w%8 == 1 {
					_, err := log.Append(ctxB, tenancy.AuditEvent{Action: "b.only", Target: fmt.Sprintf("b:%d-%d", w, i)})
					errs <- err
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	head, err := log.Verify(ctxA)
	require.NoError(t, err)
	require.EqualValues(t, writers*each, head.Entries)
	require.EqualValues(t, writers*each, head.Seq)
	entries, err := log.List(ctxA, tenancy.AuditListOptions{Limit: 1000})
	require.NoError(t, err)
	targets := map[string]bool{}
	for _, e := range entries {
		require.False(t, targets[e.Target], "entry %s twice", e.Target)
		targets[e.Target] = true
	}
	require.Len(t, targets, writers*each)
	headB, err := log.Verify(ctxB)
	require.NoError(t, err)
	require.EqualValues(t, 3*each, headB.Entries, "B's chain is its own")
}

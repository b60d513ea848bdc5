package crm_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// scaleName is the last name of scale contact i: a word of letters that no
// other contact's name starts with, so that it names exactly one contact
// as a NamePrefix query.
func scaleName(i int) string {
	w := []byte("Q")
	for range 4 {
		w = append(w, byte('a'+i%26))
		i /= 26
	}
	for ; i > 0; i /= 26 {
		w = append(w, byte('a'+i%26))
	}
	return string(w)
}

func scaleContact(i int) crm.ContactInput {
	return crm.ContactInput{FirstName: "Ada", LastName: scaleName(i), Email: fmt.Sprintf("scale%d@example.com", i)}
}

// seedScale creates n contacts in the tenant of ctx through the SDK's
// Create (validation, sealing, blind indexes, the name index rows), 2,000
// to a transaction, on workers transactions at a time (SQLite writes one
// at a time: 1 there), and returns how long it took.
func seedScale(b *testing.B, e *env, ctx context.Context, n, workers int) time.Duration {
	b.Helper()
	start := time.Now()
	const batch = 2000
	var next atomic.Int64
	seedBatches := func() error {
		for {
			lo := int(next.Add(batch)) - batch
			if lo >= n {
				return nil
			}
			err := tenancy.RunInTx(ctx, e.db.DB, nil, func(ctx context.Context, tx bun.Tx) error {
				contacts := e.store.Using(tx).Contacts()
				for i := lo; i < min(lo+batch, n); i++ {
					// Every address is new: no duplicate to look for.
					if _, err := contacts.Create(ctx, scaleContact(i), crm.AllowDuplicate()); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() { errs[w] = seedBatches() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkScaleContactLookup times Contacts.List with an exact e-mail
// filter and with a name-prefix filter that names one contact, on a tenant
// of 1,000 and of 100,000 contacts (and 3,000 in a second tenant), on
// SQLite and, with SOCIALCRM_TEST_POSTGRES set, on PostgreSQL: both are
// index look-ups, so the time per lookup stays about the same on the large
// table as on the small one. Each lookup asks for a different contact.
// Seeding 100,000 contacts takes a while (metric seed-s, reported
// per benchmark): run it with -count 1.
func BenchmarkScaleContactLookup(b *testing.B) {
	dbs := []string{"sqlite"}
	if os.Getenv(dbtest.EnvPostgres) != "" {
		dbs = append(dbs, "postgres")
	}
	for _, name := range dbs {
		b.Run(name, func(b *testing.B) {
			for _, n := range []int{1000, 100_000} {
				b.Run(fmt.Sprintf("contacts=%d", n), func(b *testing.B) { benchScaleLookup(b, name, n) })
			}
		})
	}
}

func benchScaleLookup(b *testing.B, dbName string, n int) {
	var db *dbtest.DB
	if dbName == "sqlite" {
		db = dbtest.SQLite(b, setup)
	} else {
		db = dbtest.Postgres(b, setup)
	}
	e := newEnv(b, db)
	workers := 1
	if dbName == "postgres" {
		workers = 4
	}
	seed := seedScale(b, e, e.A, n, workers)
	seed += seedScale(b, e, e.B, 3000, workers)
	if dbName == "postgres" {
		// Fresh statistics, as after any bulk load (autovacuum would take
		// them in time).
		q := "ANALYZE " + crm.TableContacts + ", " + crm.TableContactNames
		if _, err := db.Admin(b).ExecContext(context.Background(), q); err != nil {
			b.Fatal(err)
		}
	}
	contacts := e.store.Contacts()
	// pick spreads the contacts looked up over the whole table.
	pick := func(k int) int { return k * 7919 % n }
	lookup := func(b *testing.B, f func(i int) crm.ContactFilter, want func(i int) string) {
		k := 0
		for b.Loop() {
			i := pick(k)
			k++
			p, err := contacts.List(e.A, f(i), crm.ListOptions{Limit: 10})
			if err != nil || len(p.Items) != 1 || p.Items[0].LastName != want(i) {
				b.Fatalf("lookup %d: %v, %d contacts", i, err, len(p.Items))
			}
		}
		b.ReportMetric(seed.Seconds(), "seed-s")
	}
	b.Run("email", func(b *testing.B) {
		lookup(b, func(i int) crm.ContactFilter { return crm.ContactFilter{Email: scaleContact(i).Email} }, scaleName)
	})
	b.Run("name_prefix", func(b *testing.B) {
		lookup(b, func(i int) crm.ContactFilter { return crm.ContactFilter{NamePrefix: scaleName(i)} }, scaleName)
	})
}

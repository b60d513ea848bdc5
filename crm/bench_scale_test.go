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
// of 1,000 contacts and on one of 100,000 (each database also holding
// 3,000 contacts of a second tenant), on SQLite and, with
// SOCIALCRM_TEST_POSTGRES set, on PostgreSQL. Each iteration looks a
// contact up in the small and in the large table, in alternating order
// (a different contact each time, spread over the table), and the
// benchmark reports the median time of one lookup on each
// (ns_per_lookup_1000, ns_per_lookup_100000) and the median of the
// per-iteration ratios large/small (large_vs_small): both are index
// look-ups, so the time hardly grows with the table. Seeding takes a
// while (metric seed_s, both tables): run it with -count 1.
func BenchmarkScaleContactLookup(b *testing.B) {
	dbs := []string{"sqlite"}
	if os.Getenv(dbtest.EnvPostgres) != "" {
		dbs = append(dbs, "postgres")
	}
	for _, name := range dbs {
		b.Run(name, func(b *testing.B) { benchScaleLookup(b, name) })
	}
}

// scaleWorld is a database holding n contacts in tenant A and 3,000 in B.
type scaleWorld struct {
	e *env
	n int
}

func newScaleWorld(b *testing.B, dbName string, n int) (scaleWorld, time.Duration) {
	var db *dbtest.DB
	workers := 1
	if dbName == "sqlite" {
		db = dbtest.SQLite(b, setup)
	} else {
		db, workers = dbtest.Postgres(b, setup), 4
	}
	e := newEnv(b, db)
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
	return scaleWorld{e: e, n: n}, seed
}

func benchScaleLookup(b *testing.B, dbName string) {
	small, s1 := newScaleWorld(b, dbName, 1000)
	large, s2 := newScaleWorld(b, dbName, 100_000)
	seed := s1 + s2
	lookup := func(b *testing.B, w scaleWorld, k int, f func(i int) crm.ContactFilter) time.Duration {
		i := k * 7919 % w.n
		start := time.Now()
		p, err := w.e.store.Contacts().List(w.e.A, f(i), crm.ListOptions{Limit: 10})
		d := time.Since(start)
		if err != nil || len(p.Items) != 1 || p.Items[0].LastName != scaleName(i) {
			b.Fatalf("lookup %d of %d: %v, %d contacts", i, w.n, err, len(p.Items))
		}
		return d
	}
	run := func(b *testing.B, f func(i int) crm.ContactFilter) {
		var ts, tl, ratios []float64
		k := 0
		for b.Loop() {
			var ds, dl time.Duration
			if k%2 == 0 {
				ds, dl = lookup(b, small, k, f), lookup(b, large, k, f)
			} else {
				dl, ds = lookup(b, large, k, f), lookup(b, small, k, f)
			}
			k++
			ts, tl = append(ts, float64(ds)), append(tl, float64(dl))
			ratios = append(ratios, float64(dl)/float64(ds))
		}
		b.ReportMetric(median(ts), "ns_per_lookup_1000")
		b.ReportMetric(median(tl), "ns_per_lookup_100000")
		b.ReportMetric(median(ratios), "large_vs_small")
		b.ReportMetric(seed.Seconds(), "seed_s")
	}
	b.Run("email", func(b *testing.B) {
		run(b, func(i int) crm.ContactFilter { return crm.ContactFilter{Email: scaleContact(i).Email} })
	})
	b.Run("name_prefix", func(b *testing.B) {
		run(b, func(i int) crm.ContactFilter { return crm.ContactFilter{NamePrefix: scaleName(i)} })
	})
}

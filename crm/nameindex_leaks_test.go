package crm_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
)

// pendingOf returns, on SQLite, the watermark and the highest contact
// rowid, read as the tables' owner.
func pendingOf(tb testing.TB, e *env) (mark, top int64) {
	tb.Helper()
	err := e.db.Admin(tb).QueryRowContext(context.Background(),
		`SELECT (SELECT w FROM `+crm.TableContactNameFTSMark+`), (SELECT coalesce(max(rowid), 0) FROM socialcrm_crm_contacts)`).Scan(&mark, &top)
	if err != nil {
		tb.Fatal(err)
	}
	return mark, top
}

// quantile returns the q-quantile of ds (sorted in place), in µs.
func quantile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return float64(ds[int(q*float64(len(ds)-1))].Nanoseconds()) / 1e3
}

// BenchmarkNameWatermarkSideChannel measures, on SQLite, what a tenant
// could learn of the global name-index watermark through the public API,
// as an attacker would: by the wall time of its own calls. Tenant A
// creates and searches while tenant B creates (the others). It reports
// the quartiles of A's creates that moved the pending contacts into the
// index against those that did not, and of A's name searches with few
// (0–7) pending contacts in the table against many (56–63), for a name
// that matches none of its contacts (the search's own work least).
func BenchmarkNameWatermarkSideChannel(b *testing.B) {
	e := newEnv(b, dbtest.SQLite(b, setup))
	contacts := freshStore(b, e).Contacts()
	n := 0
	create := func(ctx context.Context) time.Duration {
		n++
		in := benchContact(n)
		t0 := time.Now()
		if _, err := contacts.Create(ctx, in); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	for range 300 {
		create(e.A)
	}
	var moved, plain, few, many []time.Duration
	for b.Loop() {
		for range 64 * 6 {
			create(e.B)
			before, _ := pendingOf(b, e)
			d := create(e.A)
			if after, _ := pendingOf(b, e); after != before {
				moved = append(moved, d)
			} else {
				plain = append(plain, d)
			}
			mark, top := pendingOf(b, e)
			pending := top - mark
			for range 10 {
				t0 := time.Now()
				if _, err := contacts.List(e.A, crm.ContactFilter{NamePrefix: "quixo"}, crm.ListOptions{Limit: 50}); err != nil {
					b.Fatal(err)
				}
				d := time.Since(t0)
				switch {
				case pending < 8:
					few = append(few, d)
				case pending >= 56:
					many = append(many, d)
				}
			}
		}
	}
	for _, m := range []struct {
		name string
		ds   []time.Duration
	}{{"create-moved", moved}, {"create-plain", plain}, {"search-few", few}, {"search-many", many}} {
		b.ReportMetric(quantile(m.ds, 0.25), m.name+"-p25-µs")
		b.ReportMetric(quantile(m.ds, 0.5), m.name+"-p50-µs")
		b.ReportMetric(quantile(m.ds, 0.75), m.name+"-p75-µs")
		b.ReportMetric(float64(len(m.ds)), m.name+"-n")
	}
}

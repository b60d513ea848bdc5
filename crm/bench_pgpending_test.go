package crm_test

import (
	"context"
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/crm"
)

// BenchmarkPostgresNameSearchPending measures what the contacts whose name
// index rows are pending cost a name search (nameindex_pgpending.go): the
// same search ("lovelace 5") in tenant A, 1,000 contacts created and
// moved (none pending), and in tenant B, 1,000 contacts created with no
// move run but the creates' own (so up to about 320 pending), alternated.
// It reports each side's median (µs) and their ratio, the pending
// contacts, and A's median after a VACUUM of the contacts
// (moved_vacuumed_us-figure): until then the partial index of pending
// contacts still holds the moved contacts' old row versions, which the
// search's pending arm reads and skips.
func BenchmarkPostgresNameSearchPending(b *testing.B) {
	w := newPGBench(b)
	contacts := w.sdk.Contacts()
	for i := range 1000 {
		if _, err := contacts.Create(w.e.A, benchContact(i)); err != nil {
			b.Fatal(err)
		}
		if _, err := contacts.Create(w.e.B, benchContact(i)); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := contacts.IndexPendingNames(w.e.A); err != nil {
		b.Fatal(err)
	}
	var pending int
	if err := w.db.Admin(b).NewRaw("SELECT count(*) FROM "+crm.TableContacts+" WHERE names_pending").Scan(b.Context(), &pending); err != nil {
		b.Fatal(err)
	}
	search := func(ctx context.Context) time.Duration {
		t0 := time.Now()
		p, err := contacts.List(ctx, crm.ContactFilter{NamePrefix: "lovelace 5"}, crm.ListOptions{Limit: 200})
		d := time.Since(t0)
		if err != nil || len(p.Items) != 111 {
			b.Fatal(err, len(p.Items))
		}
		return d
	}
	var ta, tb, ratios []float64
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		var a, bb time.Duration
		if i%2 == 0 {
			a, bb = search(w.e.A), search(w.e.B)
		} else {
			bb, a = search(w.e.B), search(w.e.A)
		}
		ta, tb = append(ta, float64(a.Microseconds())), append(tb, float64(bb.Microseconds()))
		ratios = append(ratios, float64(bb)/float64(a))
	}
	// The moves left the moved contacts' old row versions in the
	// partial index of pending contacts until a VACUUM: the same search
	// in A after one.
	if _, err := w.db.Admin(b).ExecContext(b.Context(), "VACUUM "+crm.TableContacts); err != nil {
		b.Fatal(err)
	}
	var tv []float64
	for range 200 {
		tv = append(tv, float64(search(w.e.A).Microseconds()))
	}
	b.ReportMetric(median(tv), "moved_vacuumed_us-figure")
	b.ReportMetric(median(ta), "moved_us-figure")
	b.ReportMetric(median(tb), "pending_us-figure")
	b.ReportMetric(median(ratios), "pending_vs_moved")
	b.ReportMetric(float64(pending), "pending_contacts-figure")
}

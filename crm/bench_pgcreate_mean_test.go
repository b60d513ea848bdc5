package crm_test

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkPostgresContactCreateMean is BenchmarkPostgresContactCreate's
// loop (the SDK's create and one raw pgx INSERT of the same row,
// alternating) reporting means as well as the median ratio: the mean
// time of each side (µs), their ratio, and the slowest 1 % of creates, so
// that work a create does now and then (a flush of the name index) is
// not hidden by a median.
func BenchmarkPostgresContactCreateMean(b *testing.B) {
	w := newPGBench(b)
	ctx := context.Background()
	contacts := w.sdk.Contacts()
	n := 0
	sdk := func() {
		n++
		if _, err := contacts.Create(w.e.A, benchContact(n)); err != nil {
			b.Fatal(err)
		}
	}
	base := func() {
		if err := insertPlain(ctx, w.raw, plainOf(w.e.A, n)); err != nil {
			b.Fatal(err)
		}
	}
	sdk()
	base()
	var ts, tb []time.Duration
	var sumS, sumB time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		first, second := sdk, base
		if i%2 == 1 {
			first, second = base, sdk
		}
		t0 := time.Now()
		first()
		t1 := time.Now()
		second()
		d1, d2 := t1.Sub(t0), time.Since(t1)
		if i%2 == 1 {
			d1, d2 = d2, d1
		}
		ts, tb = append(ts, d1), append(tb, d2)
		sumS, sumB = sumS+d1, sumB+d2
	}
	b.StopTimer()
	k := float64(len(ts))
	b.ReportMetric(float64(sumS.Microseconds())/k, "create_mean_us-figure")
	b.ReportMetric(float64(sumB.Microseconds())/k, "insert_mean_us-figure")
	b.ReportMetric(float64(sumS)/float64(sumB), "ratio:pg_contact_create_mean_vs_pgx_insert")
	slices.Sort(ts)
	b.ReportMetric(float64(ts[len(ts)*99/100].Microseconds()), "create_p99_us-figure")
}

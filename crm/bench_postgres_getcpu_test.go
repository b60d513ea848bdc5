package crm_test

import (
	"syscall"
	"testing"
	"time"
)

// BenchmarkGetClientCPUPostgres reads one contact on PostgreSQL through
// the SDK and the same row unsealed with one raw pgx query (the pair of
// BenchmarkPostgresContactGet), in alternating blocks of 200 of each,
// and reports the process's CPU time (user and system, the garbage
// collector's included) per read on each side: client_cpu_us-figure and
// raw_cpu_us-figure, and their difference, what the SDK's client side
// adds to a get (added_cpu_us-figure). (Its name keeps it out of
// scripts/bench's run of BenchmarkPostgresContact….) Under load the
// figures still swing (at load average 7 to 18 on 2 cores, 21 runs of
// 20x: the SDK's 29 to 79 µs, the raw query's 23 to 64): compare builds
// by medians of alternated runs. Use -cpuprofile here too: the SDK's
// reads are half its samples.
func BenchmarkGetClientCPUPostgres(b *testing.B) {
	w := newPGBench(b)
	c, base := pgGetFixture(b, w)
	contacts := w.sdk.Contacts()
	sdk := func() {
		if got, err := contacts.Get(w.e.A, c.ID); err != nil || got.Email != c.Email {
			b.Fatal(err)
		}
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	sdk()
	base()
	const block = 200
	var spent [2]time.Duration
	n := 0
	for b.Loop() {
		for side, f := range []func(){sdk, base} {
			t0 := cpu()
			for range block {
				f()
			}
			spent[side] += cpu() - t0
		}
		n += block
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(n) }
	b.ReportMetric(per(spent[0]), "client_cpu_us-figure")
	b.ReportMetric(per(spent[1]), "raw_cpu_us-figure")
	b.ReportMetric(per(spent[0]-spent[1]), "added_cpu_us-figure")
}

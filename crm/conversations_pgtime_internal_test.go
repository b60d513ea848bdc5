package crm

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestPGTimeLayout: appendPGTime writes every time as time's layout
// pgTimeLayout does in UTC — microseconds and their trailing zeros, no
// fraction, nanoseconds below a microsecond, other zones, years at and
// beyond the bounds of the hand-written path.
func TestPGTimeLayout(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	times := []time.Time{
		time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 120_000, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(2026, 6, 1, 0, 0, 0, 999, berlin),
		time.Date(2026, 6, 1, 0, 30, 0, 1_000, berlin),
		time.Date(1000, 1, 1, 0, 0, 0, 100_000, time.UTC),
		time.Date(999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 10_000, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		{},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		times = append(times, time.Unix(r.Int64N(1<<36)-1<<35, r.Int64N(1e9)).In(berlin))
	}
	for _, at := range times {
		want := at.UTC().AppendFormat([]byte("x"), pgTimeLayout)
		if got := appendPGTime([]byte("x"), at); string(got) != string(want) {
			t.Fatalf("appendPGTime(%v) = %s, want %s", at, got, want)
		}
	}
}

package crm

import (
	"fmt"
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

// TestPGArrayLiteral: pgArray writes what PostgreSQL reads back as the
// values: quotes and backslashes escaped, NULL for a missing value, bytes
// in hex (long ones too), times in UTC.
func TestPGArrayLiteral(t *testing.T) {
	var a pgArray
	a.text(`plain`)
	a.text(`say "hi" \ back\\`)
	a.text(``)
	a.null()
	if got, want := a.String(), `{"plain","say \"hi\" \\ back\\\\","",NULL}`; got != want {
		t.Fatalf("text array %s, want %s", got, want)
	}
	var b pgArray
	long := make([]byte, 300)
	for i := range long {
		long[i] = byte(i)
	}
	b.bytes([]byte{0, 0xab})
	b.bytes(nil)
	b.bytes(long)
	want := "{00ab,NULL," + fmt.Sprintf("%x", long) + "}"
	if got := b.String(); got != want {
		t.Fatalf("bytes array %s, want %s", got, want)
	}
	var c pgArray
	c.time(time.Date(2026, 6, 1, 2, 0, 0, 1_000, time.FixedZone("CET", 3600)))
	c.time(time.Time{})
	c.int(-42)
	if got, want := c.String(), `{"2026-06-01 01:00:00.000001+00:00",NULL,-42}`; got != want {
		t.Fatalf("array %s, want %s", got, want)
	}
	var empty pgArray
	if got := empty.String(); got != "{}" {
		t.Fatalf("empty array %s", got)
	}
}

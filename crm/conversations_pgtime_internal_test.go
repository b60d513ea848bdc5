package crm

import (
	"fmt"
	"testing"
	"time"
)

// TestPGArrayLiteral: pgArray writes what PostgreSQL reads back as the
// values: quotes and backslashes escaped, NULL for a missing value, bytes
// in hex (long ones too), times as microseconds since 1970 UTC.
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
	c.micros(time.Date(2026, 6, 1, 2, 0, 0, 1_000, time.FixedZone("CET", 3600)))
	c.micros(time.Time{})
	c.micros(time.Date(1969, 12, 31, 23, 59, 59, 500_000_000, time.UTC))
	c.int(-42)
	if got, want := c.String(), `{1780275600000001,NULL,-500000,-42}`; got != want {
		t.Fatalf("array %s, want %s", got, want)
	}
	var empty pgArray
	if got := empty.String(); got != "{}" {
		t.Fatalf("empty array %s", got)
	}
}

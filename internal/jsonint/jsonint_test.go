package jsonint

import (
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
)

func TestCanonical(t *testing.T) {
	for _, c := range []struct {
		lit, want string
		err       error
	}{
		{"1000", "1000", nil},
		{"1e3", "1000", nil},
		{"1E3", "1000", nil},
		{"1e+3", "1000", nil},
		{"1000.0", "1000", nil},
		{"10000e-1", "1000", nil},
		{"0.1e4", "1000", nil},
		{"-0", "0", nil},
		{"0", "0", nil},
		{"-0.0e-7", "0", nil},
		{"0e999999999999999999999", "0", nil},
		{"-12", "-12", nil},
		{"1764000000000", "1764000000000", nil},
		{"18446744073709551615", "18446744073709551615", nil},
		{"9223372036854775807", "9223372036854775807", nil},
		{"1.5", "", ErrFraction},
		{"1e-3", "", ErrFraction},
		{"1.0000000000000000000001", "", ErrFraction},
		{"1e999999999999999999999", "", ErrRange},
		{"1e400", "", ErrRange},
		{"1e20", "", ErrRange},
		{"123456789012345678901", "", ErrRange},
		{"", "", ErrSyntax},
		{"-", "", ErrSyntax},
		{"01", "", ErrSyntax},
		{"1.", "", ErrSyntax},
		{".5", "", ErrSyntax},
		{"1e", "", ErrSyntax},
		{"+1", "", ErrSyntax},
		{"1 ", "", ErrSyntax},
		{`"1"`, "", ErrSyntax},
		{"NaN", "", ErrSyntax},
	} {
		got, err := Canonical([]byte(c.lit))
		if !errors.Is(err, c.err) || err == nil && got != c.want {
			t.Errorf("Canonical(%q) = %q, %v; want %q, %v", c.lit, got, err, c.want, c.err)
		}
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		lit  string
		want int64
		err  error
	}{
		{"1e3", 1000, nil},
		{"-9223372036854775808", -9223372036854775808, nil},
		{"9.223372036854775807e18", 9223372036854775807, nil},
		{"9223372036854775808", 0, ErrRange},
		{"18446744073709551615", 0, ErrRange},
		{"2.5", 0, ErrFraction},
	} {
		got, err := Parse([]byte(c.lit))
		if !errors.Is(err, c.err) || got != c.want {
			t.Errorf("Parse(%q) = %d, %v; want %d, %v", c.lit, got, err, c.want, c.err)
		}
	}
}

// FuzzCanonical compares Canonical with math/big's exact rationals on
// JSON numbers with a short exponent, and checks it refuses what is not a
// JSON number.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"1e3", "1000.0", "-0", "1.5", "1e400", "12345678901234567890", "0.00e5", "x", "1e-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, lit string) {
		got, err := Canonical([]byte(lit))
		isNumber := json.Valid([]byte(lit)) && strings.TrimSpace(lit) == lit &&
			(lit[0] == '-' || lit[0] >= '0' && lit[0] <= '9')
		if !isNumber {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Canonical(%q) = %q, %v; want ErrSyntax", lit, got, err)
			}
			return
		}
		if e := strings.IndexAny(lit, "eE"); e >= 0 && len(lit)-e > 5 {
			return // big.Rat would spell out the exponent
		}
		r, ok := new(big.Rat).SetString(lit)
		if !ok {
			t.Fatalf("big.Rat refused JSON number %q", lit)
		}
		switch {
		case !r.IsInt():
			if !errors.Is(err, ErrFraction) {
				t.Fatalf("Canonical(%q) = %q, %v; want ErrFraction", lit, got, err)
			}
		case len(strings.TrimPrefix(r.Num().String(), "-")) > MaxDigits:
			if !errors.Is(err, ErrRange) {
				t.Fatalf("Canonical(%q) = %q, %v; want ErrRange", lit, got, err)
			}
		case err != nil || got != r.Num().String():
			t.Fatalf("Canonical(%q) = %q, %v; want %s", lit, got, err, r.Num())
		}
	})
}

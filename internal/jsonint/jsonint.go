// Package jsonint reads a JSON number whose value is an integer, however
// it is spelled: 1000, 1e3, 1E+3, 1000.0, 10000e-1 and -0 are all
// integers, as JSON (RFC 8259) leaves a number's spelling to its writer.
// It works on the literal's decimal digits, exactly, without a float: a
// 19-digit id keeps every digit.
package jsonint

import (
	"errors"
	"strconv"
)

// Errors of Canonical and Parse. They name no value: the callers' errors
// reach logs, and a number in a webhook body may be a person's id.
var (
	// ErrSyntax: the text is not a JSON number.
	ErrSyntax = errors.New("not a JSON number")
	// ErrFraction: the number has a fractional part (1.5, 1e-3).
	ErrFraction = errors.New("not an integer")
	// ErrRange: the integer has more than MaxDigits digits, or (Parse)
	// does not fit in an int64.
	ErrRange = errors.New("integer out of range")
)

// MaxDigits bounds the digits of an integer Canonical writes: 20 holds
// every int64 and uint64, and bounds the work and memory an exponent
// (1e400000000) could ask for.
const MaxDigits = 20

// maxExp saturates the exponent as it is read: beyond it, a number with
// a non-zero digit is out of range (or fractional) whatever its other
// digits, as a body holds far fewer than maxExp of them.
const maxExp = 1 << 40

// Canonical returns the decimal text of the integer the JSON number lit
// spells (no sign for zero, no leading zero, no exponent), or ErrSyntax,
// ErrFraction or ErrRange (more than MaxDigits digits).
func Canonical(lit []byte) (string, error) {
	var buf [MaxDigits + 1]byte
	b, err := appendCanonical(buf[:0], lit)
	return string(b), err
}

// Parse returns the integer the JSON number lit spells, or ErrSyntax,
// ErrFraction or ErrRange (beyond int64).
func Parse(lit []byte) (int64, error) {
	var buf [MaxDigits + 1]byte
	b, err := appendCanonical(buf[:0], lit)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, ErrRange
	}
	return n, nil
}

// appendCanonical appends Canonical's text to dst.
func appendCanonical(dst, lit []byte) ([]byte, error) {
	// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
	i := 0
	neg := i < len(lit) && lit[i] == '-'
	if neg {
		i++
	}
	intStart := i
	switch {
	case i < len(lit) && lit[i] == '0':
		i++
	case i < len(lit) && lit[i] >= '1' && lit[i] <= '9':
		for i < len(lit) && lit[i] >= '0' && lit[i] <= '9' {
			i++
		}
	default:
		return dst, ErrSyntax
	}
	intEnd := i
	fracStart, fracEnd := i, i
	if i < len(lit) && lit[i] == '.' {
		i++
		fracStart = i
		for i < len(lit) && lit[i] >= '0' && lit[i] <= '9' {
			i++
		}
		if i == fracStart {
			return dst, ErrSyntax
		}
		fracEnd = i
	}
	exp := int64(0)
	if i < len(lit) && (lit[i] == 'e' || lit[i] == 'E') {
		i++
		expNeg := false
		if i < len(lit) && (lit[i] == '+' || lit[i] == '-') {
			expNeg = lit[i] == '-'
			i++
		}
		start := i
		for i < len(lit) && lit[i] >= '0' && lit[i] <= '9' {
			if exp < maxExp {
				exp = exp*10 + int64(lit[i]-'0')
			}
			i++
		}
		if i == start {
			return dst, ErrSyntax
		}
		if expNeg {
			exp = -exp
		}
	}
	if i != len(lit) {
		return dst, ErrSyntax
	}
	// The value is digits × 10^scale, digits being the integer part's
	// and the fraction's, in that order.
	digit := func(k int) byte { // the k-th of the digits
		if n := intEnd - intStart; k < n {
			return lit[intStart+k]
		} else {
			return lit[fracStart+k-n]
		}
	}
	first, last := 0, (intEnd-intStart)+(fracEnd-fracStart) // digits[first:last]
	scale := exp - int64(fracEnd-fracStart)
	for first < last && digit(first) == '0' {
		first++
	}
	if first == last {
		return append(dst, '0'), nil // 0, -0, 0.000e9
	}
	for digit(last-1) == '0' {
		last--
		scale++
	}
	if scale < 0 {
		return dst, ErrFraction
	}
	if int64(last-first)+scale > MaxDigits {
		return dst, ErrRange
	}
	if neg {
		dst = append(dst, '-')
	}
	for k := first; k < last; k++ {
		dst = append(dst, digit(k))
	}
	for range scale {
		dst = append(dst, '0')
	}
	return dst, nil
}

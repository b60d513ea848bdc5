package vault

import (
	"fmt"
	"log/slog"
	"unsafe"
)

// Redacted is what a Secret prints, marshals and logs as, whatever the
// format.
const Redacted = "[REDACTED]"

// Secret is plaintext that refuses to leave the process by accident: every
// fmt verb, String, GoString, json.Marshal, encoding.TextMarshaler and
// slog yield Redacted. Only Reveal gives the bytes.
//
// The bytes are held as a pointer to their first byte and a length, not as
// a slice, so that even a Secret in an unexported struct field (which fmt
// prints by reflection, without calling its methods) shows as an address
// and a length, never as its contents; and without an extra allocation.
//
// Copies of a Secret share its bytes: Wipe on one wipes them all. The zero
// Secret is empty.
type Secret struct {
	p *byte
	n int
}

// NewSecret returns a Secret holding b. It takes ownership of b: the caller
// must not use b afterwards except through the Secret.
func NewSecret(b []byte) Secret {
	return Secret{p: unsafe.SliceData(b), n: len(b)}
}

// Reveal returns the plaintext. The slice is the Secret's own storage, not a
// copy: do not keep it beyond the call that needs it, and do not modify it.
// After Wipe it is all zeros.
func (s Secret) Reveal() []byte {
	if s.p == nil {
		return nil
	}
	return unsafe.Slice(s.p, s.n)
}

// Len returns the length of the plaintext.
func (s Secret) Len() int { return s.n }

// IsZero reports whether s holds no plaintext.
func (s Secret) IsZero() bool { return s.Len() == 0 }

// Wipe overwrites the plaintext with zeros. Go's garbage collector may
// already have copied it elsewhere (a grown slice, a string conversion by
// the caller), so Wipe narrows the window in which a memory dump shows the
// secret; it does not close it.
func (s Secret) Wipe() { clear(s.Reveal()) }

// String returns Redacted.
func (Secret) String() string { return Redacted }

// GoString returns Redacted, for %#v.
func (Secret) GoString() string { return Redacted }

// Format writes Redacted for every verb and flag (%s, %v, %+v, %#v, %x, %q,
// %d, …).
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// MarshalJSON returns the JSON string Redacted.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText returns Redacted.
func (Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue returns Redacted as a slog string.
func (Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

var (
	_ fmt.Stringer   = Secret{}
	_ fmt.GoStringer = Secret{}
	_ fmt.Formatter  = Secret{}
	_ slog.LogValuer = Secret{}
)

package vault

import (
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"fmt"
)

// Sealed is a value encrypted by Seal: what a tenant-owned table stores in
// place of a token or other secret. It names the data key it was sealed
// with (KeyID), so that rotation knows which values still need resealing.
//
// A Sealed is stored in one bun column of type BLOB (BYTEA on PostgreSQL;
// write BLOB with migrations.Exec and it becomes BYTEA there): it
// implements sql.Scanner and driver.Valuer, the zero Sealed is stored as
// NULL and NULL scans into the zero Sealed. It never prints or marshals
// its ciphertext: fmt shows the key id and length, JSON shows a marker.
// Bytes and ParseSealed move it through other storage.
//
// The encoding is Tink's: a 0x01 version byte, the 4-byte big-endian key id,
// then the AES-256-GCM nonce, ciphertext and tag (5+12+16 bytes of
// overhead).
type Sealed struct {
	ct []byte
}

const (
	tinkPrefixByte = 0x01 // Tink's OutputPrefixType TINK
	prefixLen      = 5
	minSealedLen   = prefixLen + 12 + 16
)

// ParseSealed returns the Sealed encoded in b (as returned by Bytes). It
// copies b. A malformed b is refused with ErrOpen, as Open would.
func ParseSealed(b []byte) (Sealed, error) {
	if len(b) == 0 {
		return Sealed{}, nil
	}
	if !wellFormed(b) {
		return Sealed{}, ErrOpen
	}
	return Sealed{ct: append([]byte(nil), b...)}, nil
}

func wellFormed(b []byte) bool {
	return len(b) >= minSealedLen && b[0] == tinkPrefixByte
}

// Bytes returns a copy of the encoded value, for storage other than a bun
// column. The zero Sealed returns nil.
func (s Sealed) Bytes() []byte {
	if len(s.ct) == 0 {
		return nil
	}
	return append([]byte(nil), s.ct...)
}

// IsZero reports whether s holds no value.
func (s Sealed) IsZero() bool { return len(s.ct) == 0 }

// KeyID returns the id of the tenant data key s was sealed with, 0 for the
// zero or a malformed Sealed.
func (s Sealed) KeyID() uint32 {
	if !wellFormed(s.ct) {
		return 0
	}
	return binary.BigEndian.Uint32(s.ct[1:prefixLen])
}

// Value implements driver.Valuer: the encoded bytes, or NULL for the zero
// Sealed.
func (s Sealed) Value() (driver.Value, error) {
	if len(s.ct) == 0 {
		return nil, nil
	}
	return s.ct, nil
}

// Scan implements sql.Scanner. It accepts NULL, []byte and string, and
// copies what it is given (drivers reuse their buffers). A malformed value
// scans without error and fails to Open with ErrOpen, so that one damaged
// row does not make a whole listing unreadable.
func (s *Sealed) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		s.ct = nil
	case []byte:
		s.ct = append([]byte(nil), v...)
	case string:
		s.ct = []byte(v)
	default:
		return fmt.Errorf("vault: cannot scan %T into Sealed", src)
	}
	if len(s.ct) == 0 {
		s.ct = nil
	}
	return nil
}

// String describes s without its ciphertext.
func (s Sealed) String() string {
	if s.IsZero() {
		return "vault.Sealed(empty)"
	}
	return fmt.Sprintf("vault.Sealed(key=%08x, %d bytes)", s.KeyID(), len(s.ct))
}

// GoString is String, for %#v.
func (s Sealed) GoString() string { return s.String() }

// Format writes String for every verb, so that %x or %q cannot dump the
// ciphertext.
func (s Sealed) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// MarshalJSON returns null for the zero Sealed and the string "[sealed]"
// otherwise: a Sealed is not exported through JSON (an export holds
// plaintext opened on purpose, or nothing).
func (s Sealed) MarshalJSON() ([]byte, error) {
	if s.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"[sealed]"`), nil
}

var (
	_ sql.Scanner   = (*Sealed)(nil)
	_ driver.Valuer = Sealed{}
	_ fmt.Formatter = Sealed{}
)

// Binding names where a sealed value lives: the record (a row id) and the
// field (a column name) it belongs to. Together with the context's tenant it
// is the associated data of the ciphertext, so a value copied to another
// record, field or tenant fails to open. Both are required.
type Binding struct {
	Record string
	Field  string
}

func (b Binding) validate() error {
	if b.Record == "" || b.Field == "" {
		return fmt.Errorf("%w: record and field are required", ErrInvalidBinding)
	}
	return nil
}

// Domain separators for associated data: a sealed value, a wrapped data
// keyset, a wrapped index keyset and a blind index input can never be
// mistaken for one another.
const (
	adSealed      = "socialcrm/vault/sealed/v1"
	adDataKeyset  = "socialcrm/vault/data-keyset/v1"
	adIndexKeyset = "socialcrm/vault/index-keyset/v1"
	adIndex       = "socialcrm/vault/index/v1"
)

// lengthPrefixed encodes parts as a sequence of 4-byte big-endian lengths
// each followed by its bytes, so that no two different part lists encode
// alike ("a|bc" and "ab|c" differ).
func lengthPrefixed(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += 4 + len(p)
	}
	return appendLengthPrefixed(make([]byte, 0, n), parts...)
}

func appendLengthPrefixed(out []byte, parts ...string) []byte {
	for _, p := range parts {
		out = binary.BigEndian.AppendUint32(out, uint32(len(p)))
		out = append(out, p...)
	}
	return out
}

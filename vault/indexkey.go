package vault

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"sync"

	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf/hmacprf"
)

// indexKey computes a tenant's blind indexes: HMAC-SHA256 under the
// primary key of the tenant's index keyset, exactly what Tink's HMAC PRF
// computes (the same bytes: stored indexes keep matching), from pooled
// hashers that are reset between uses instead of one new HMAC per value.
// Tink's PRF allocated a fresh HMAC (two SHA-256 states and the padded
// key) for every call, about a fifth of the time of the 17 indexes of a
// contact.
//
// It holds key material: it never leaves the vault, and it prints as a
// placeholder (String, GoString, Format), never its bytes.
type indexKey struct {
	pool sync.Pool // of *indexHasher
}

// indexHasher is an HMAC-SHA256 keyed with the index key, and buffers for
// its input and its output.
type indexHasher struct {
	mac hash.Hash
	buf []byte
	sum []byte
}

// newIndexKey returns the indexKey of the index keyset h, or nil when its
// primary key is not an HMAC-SHA256 PRF key (the caller then computes
// through Tink's PRF).
func newIndexKey(h *keyset.Handle) *indexKey {
	e, err := h.Primary()
	if err != nil {
		return nil
	}
	k, ok := e.Key().(*hmacprf.Key)
	if !ok {
		return nil
	}
	p, ok := k.Parameters().(*hmacprf.Parameters)
	if !ok || p.HashType() != hmacprf.SHA256 {
		return nil
	}
	secret := k.KeyBytes().Data(insecuresecretdataaccess.Token{})
	key := make([]byte, len(secret))
	copy(key, secret)
	return &indexKey{pool: sync.Pool{New: func() any {
		return &indexHasher{mac: hmac.New(sha256.New, key), buf: make([]byte, 0, 256), sum: make([]byte, 0, sha256.Size)}
	}}}
}

// index returns the blind index of the length-prefixed parts, encoded as
// Index returns it.
func (k *indexKey) index(parts ...string) string {
	h := k.pool.Get().(*indexHasher)
	h.mac.Reset()
	h.buf = appendLengthPrefixed(h.buf[:0], parts...)
	h.mac.Write(h.buf)
	clear(h.buf) // the input holds the value: wiped before the hasher goes back
	h.sum = h.mac.Sum(h.sum[:0])
	var enc [64]byte
	b := enc[:base64.RawURLEncoding.EncodedLen(indexLen)]
	base64.RawURLEncoding.Encode(b, h.sum[:indexLen])
	k.pool.Put(h)
	return string(b)
}

// String, GoString and Format print a placeholder: the key never reaches
// a log line or an error through fmt.
func (k *indexKey) String() string                { return "vault.indexKey{REDACTED}" }
func (k *indexKey) GoString() string              { return k.String() }
func (k *indexKey) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(k.String())) }

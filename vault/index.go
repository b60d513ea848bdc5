package vault

import (
	"context"
	"encoding/base64"
	"fmt"
)

// indexLen is the length of a blind index in bytes before encoding: the
// full HMAC-SHA256 output, so that distinct values never collide in
// practice.
const indexLen = 32

// Index returns a blind index of value for the context's tenant and field:
// a keyed hash (HMAC-SHA256 under the primary key of a per-tenant Tink PRF
// keyset kept beside the tenant's data keys — the bytes Tink's PRF
// computes, from hashers pooled per tenant) that is equal for equal inputs
// and reveals nothing else. Store it beside the Sealed value and look rows up by it:
//
//	email := strings.ToLower(strings.TrimSpace(input))
//	idx, err := v.Index(ctx, email, "email")
//	sealed, err := v.Seal(ctx, []byte(email), vault.Binding{Record: id, Field: "email"})
//	// INSERT … (email_sealed, email_index) VALUES (sealed, idx)
//	// later: SELECT … WHERE email_index = ? (Index of the normalized query)
//
// Normalize before indexing, the same way on every write and lookup:
// e-mail addresses trimmed and lower-cased; phone numbers in E.164
// (+14155550100), parsed with the caller's default region; names and other
// free text folded (case, Unicode normalization, spaces) as the lookup
// requires. Index does not normalize: exact bytes in, exact match out.
//
// What it leaks: which rows of one tenant hold the same value in the same
// field (equality), to anyone who can read the table. What it does not
// leak: the value itself, equality across fields (the field is hashed in)
// or across tenants (each tenant has its own key), or any order or prefix
// of the values. Anyone who holds the tenant's index key (that is, the
// key-encryption key and the database) can test guesses; values from a
// small space (a birth date, a short PIN) are guessable that way, so index
// only identifiers.
//
// The index key is not rotated by RotateKey (rotating it would break every
// stored index); DestroyKey destroys it with the data keys, after which
// Index fails with ErrKeyDestroyed and stored indexes match nothing new.
// The first Index for a tenant creates its keys, as Seal does.
func (v *Vault) Index(ctx context.Context, value, field string) (string, error) {
	if field == "" {
		return "", fmt.Errorf("%w: field is required", ErrInvalidBinding)
	}
	tid, k, err := v.keys(ctx, true)
	if err != nil {
		return "", err
	}
	if k.destroyed {
		return "", ErrKeyDestroyed
	}
	if k.indexKey != nil {
		return k.indexKey.index(adIndex, tid, field, value), nil
	}
	mac, err := k.index.ComputePRF(lengthPrefixed(adIndex, tid, field, value), indexLen)
	if err != nil {
		return "", fmt.Errorf("vault: index: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(mac), nil
}

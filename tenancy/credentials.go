package tenancy

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// PasswordCost is the bcrypt cost of every stored password.
const PasswordCost = 12

// Password length bounds. bcrypt reads at most 72 bytes, so longer
// passwords are refused rather than silently truncated.
const (
	MinPasswordLen = 10
	MaxPasswordLen = 72
)

// HashPassword returns the bcrypt hash (cost PasswordCost) of password. It
// refuses passwords outside [MinPasswordLen, MaxPasswordLen] bytes with a
// *ValidationError.
func HashPassword(password string) (string, error) {
	if n := len(password); n < MinPasswordLen || n > MaxPasswordLen {
		return "", &ValidationError{Field: "Password", Reason: fmt.Sprintf("must be %d to %d bytes long", MinPasswordLen, MaxPasswordLen)}
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), PasswordCost)
	if err != nil {
		return "", fmt.Errorf("tenancy: hash password: %w", err)
	}
	return string(h), nil
}

// CheckPassword reports whether password matches hash, in time independent of
// where they differ. It returns ErrInvalidCredentials on a mismatch.
func CheckPassword(hash, password string) error {
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)); err != nil {
		return ErrInvalidCredentials
	}
	return nil
}

// ErrInvalidCredentials is returned for a wrong email, password or API key;
// it never says which.
var ErrInvalidCredentials = errors.New("tenancy: invalid credentials")

// apiKeyPrefix starts every API key, so that secret scanners can find leaked
// ones.
const apiKeyPrefix = "sck_"

// newAPIKey returns a key for tenantID: "sck_" + the tenant id without
// dashes + "_" + 32 random bytes in base64url. The tenant part lets the key
// be looked up inside its tenant's scope; the random part is the secret.
func newAPIKey(tenantID string) (key, hint string) {
	secret := make([]byte, 32)
	rand.Read(secret) // never fails (crypto/rand documents this)
	s := base64.RawURLEncoding.EncodeToString(secret)
	return apiKeyPrefix + strings.ReplaceAll(tenantID, "-", "") + "_" + s, s[len(s)-4:]
}

// parseAPIKey returns the tenant id a key names.
func parseAPIKey(key string) (tenantID string, ok bool) {
	rest, ok := strings.CutPrefix(key, apiKeyPrefix)
	if !ok || len(rest) != 32+1+43 || rest[32] != '_' {
		return "", false
	}
	h := rest[:32]
	if _, err := hex.DecodeString(h); err != nil {
		return "", false
	}
	id := h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	if ValidateID(id) != nil {
		return "", false
	}
	return id, true
}

// hashAPIKey is what is stored: the hex SHA-256 of the whole key. A key has
// 256 bits of entropy, so a fast hash is enough (no brute force can reach
// it) and lets the key be found by an index lookup.
func hashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func equalHashes(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// Hash is a stored credential hash (bcrypt or SHA-256). It is not a secret
// in itself, but it is an offline target, so it never prints, logs or
// marshals: every rendering is "[REDACTED]".
type Hash string

const redacted = "[REDACTED]"

// String implements fmt.Stringer.
func (Hash) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (Hash) GoString() string { return redacted }

// Format implements fmt.Formatter for every verb.
func (Hash) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON implements json.Marshaler.
func (Hash) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// LogValue implements slog.LogValuer.
func (Hash) LogValue() slog.Value { return slog.StringValue(redacted) }

package tenancy

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
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
	return hashPassword(password, PasswordCost)
}

func hashPassword(password string, cost int) (string, error) {
	if n := len(password); n < MinPasswordLen || n > MaxPasswordLen {
		return "", &ValidationError{Field: "Password", Reason: fmt.Sprintf("must be %d to %d bytes long", MinPasswordLen, MaxPasswordLen)}
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("tenancy: hash password: %w", err)
	}
	return string(h), nil
}

// ErrNotTesting is returned by NewStore given an option meant only for
// tests (WithInsecurePasswordCost) in a program that is not a Go test
// binary.
var ErrNotTesting = errors.New("tenancy: test-only option outside a test binary")

// WithInsecurePasswordCost makes the Store hash the passwords it stores at
// bcrypt cost instead of PasswordCost, and compare an unknown email
// against a hash of the same cost, so that an unknown email still costs
// what a wrong password costs. It is for tests only, where a cost-12 hash
// takes seconds under the race detector: NewStore refuses it with
// ErrNotTesting unless the program is a Go test binary (one where the
// testing package has registered its flags), and cost must be from bcrypt's
// minimum, 4, to PasswordCost. Hashes already stored keep their cost and
// are checked as they are.
func WithInsecurePasswordCost(cost int) Option {
	return func(o *options) error {
		if !inTestBinary() {
			return ErrNotTesting
		}
		if cost < bcrypt.MinCost || cost > PasswordCost {
			return fmt.Errorf("tenancy: WithInsecurePasswordCost: cost must be %d to %d, got %d", bcrypt.MinCost, PasswordCost, cost)
		}
		o.passwordCost = cost
		return nil
	}
}

// inTestBinary reports whether the program is a test binary: the testing
// package, which go test links into it, has registered its flags.
// (testing.Testing says the same, but importing the testing package would
// make every program that embeds socialcrm link it.)
func inTestBinary() bool {
	return flag.Lookup("test.v") != nil && flag.Lookup("test.paniconexit0") != nil
}

// dummyHash12 is compared against when the email is unknown and the Store
// hashes at PasswordCost, so that a missing member costs the same bcrypt
// time as a wrong password. It is the hash of no password anyone knows.
const dummyHash12 = "$2a$12$UBE7ZJJaEs8OyKMAQaixEuwBRZWRPLcgQq17Rf4xhuPS4Rc8rMu.K"

// dummyHashFor returns the hash an unknown email is compared against at
// cost: dummyHash12 at PasswordCost, a hash of random bytes otherwise.
func dummyHashFor(cost int) (string, error) {
	if cost == PasswordCost {
		return dummyHash12, nil
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	h, err := bcrypt.GenerateFromPassword([]byte(base64.RawURLEncoding.EncodeToString(secret)), cost)
	if err != nil {
		return "", fmt.Errorf("tenancy: dummy hash: %w", err)
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

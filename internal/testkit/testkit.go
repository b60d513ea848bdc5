// Package testkit holds the test helpers that several packages' tests
// share, so that none of them carries a copy: a fresh key-encryption key
// and the check that no secret reached a text. Database helpers are in
// dbtest, the manual clock in fakeclock. Only tests import it.
package testkit

import (
	"strings"
	"testing"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// NewKEK returns a fresh in-memory AES-256-GCM key-encryption key.
func NewKEK(t testing.TB) tink.AEAD {
	t.Helper()
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		t.Fatalf("testkit: new keyset: %v", err)
	}
	a, err := aead.New(h)
	if err != nil {
		t.Fatalf("testkit: new AEAD: %v", err)
	}
	return a
}

// RequireNoSecret fails t when text holds any of secrets (empty ones are
// ignored), naming only the secret's first characters.
func RequireNoSecret(t testing.TB, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Fatalf("secret %.6s… leaked into %q", s, text)
		}
	}
}

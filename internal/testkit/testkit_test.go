package testkit

import "testing"

// recorder is a testing.TB that records a Fatalf instead of stopping.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Fatalf(string, ...any) { r.failed = true }

func TestRequireNoSecret(t *testing.T) {
	for text, want := range map[string]bool{"token=s3cr3t-value": true, "nothing here": false} {
		r := &recorder{TB: t}
		RequireNoSecret(r, text, "", "s3cr3t-value")
		if r.failed != want {
			t.Errorf("RequireNoSecret(%q) failed = %v, want %v", text, r.failed, want)
		}
	}
}

func TestNewKEK(t *testing.T) {
	a, b := NewKEK(t), NewKEK(t)
	ct, err := a.Encrypt([]byte("data key"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := a.Decrypt(ct, []byte("ad")); err != nil || string(pt) != "data key" {
		t.Errorf("Decrypt returned %q, %v, want the plaintext", pt, err)
	}
	if _, err := b.Decrypt(ct, []byte("ad")); err == nil {
		t.Error("another key decrypted the ciphertext")
	}
}

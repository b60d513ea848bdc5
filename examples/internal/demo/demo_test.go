package demo_test

import (
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/examples/internal/demo"
)

func TestClockStartsAtStartAndAdvances(t *testing.T) {
	start := time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC)
	c := demo.NewClock(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now() = %v, want %v", got, start)
	}
	c.Advance(7 * 24 * time.Hour)
	if got, want := c.Now(), start.AddDate(0, 0, 7); !got.Equal(want) {
		t.Fatalf("Now() after a week = %v, want %v", got, want)
	}
}

func TestEphemeralKEKsAreDistinct(t *testing.T) {
	a, err := demo.EphemeralKEK()
	if err != nil {
		t.Fatal(err)
	}
	b, err := demo.EphemeralKEK()
	if err != nil {
		t.Fatal(err)
	}
	ct, err := a.Encrypt([]byte("data key"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := a.Decrypt(ct, []byte("ad")); err != nil || string(pt) != "data key" {
		t.Fatalf("Decrypt with the same key = %q, %v; want the plaintext", pt, err)
	}
	if _, err := b.Decrypt(ct, []byte("ad")); err == nil {
		t.Fatal("another ephemeral KEK opened the ciphertext; each must be a fresh key")
	}
}

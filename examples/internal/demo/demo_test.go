package demo_test

import (
	"os"
	"path/filepath"
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

func TestOpenThrowAwayAndNamed(t *testing.T) {
	db, kek, done, err := demo.Open("", "", "demo")
	if err != nil {
		t.Fatal(err)
	}
	var path string
	if err := db.QueryRowContext(t.Context(), "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&path); err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "demo.db" || kek == nil {
		t.Fatalf("Open(\"\") opened %q with KEK %v, want a throw-away demo.db and a key", path, kek)
	}
	done()
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Fatalf("done left the throw-away directory: %v", err)
	}

	dir := t.TempDir()
	db, kek, done, err = demo.Open(filepath.Join(dir, "kept.db"), filepath.Join(dir, "kek.json"), "demo")
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if err := db.PingContext(t.Context()); err != nil || kek == nil {
		t.Fatalf("Open(dsn) = ping %v, KEK %v", err, kek)
	}
	for _, f := range []string{"kept.db", "kek.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("Open(dsn) did not create %s: %v", f, err)
		}
	}
}

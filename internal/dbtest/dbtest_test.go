package dbtest

import (
	"context"
	"os"
	"testing"

	"github.com/uptrace/bun"
)

// noop is a named setup: the databases it prepares are copies of a
// template.
func noop(context.Context, *bun.DB) error { return nil }

// TestCommitMode: a test's PostgreSQL handles, on a copy of a template and
// on a schema of the shared database alike, commit without waiting for the
// disk; a benchmark's DSN is left as given; FlushLog runs.
func TestCommitMode(t *testing.T) {
	if os.Getenv(EnvPostgres) == "" {
		t.Log("not run: " + EnvPostgres + " is not set")
		return
	}
	ctx := context.Background()
	for name, d := range map[string]*DB{"template copy": Postgres(t, noop), "schema": Postgres(t)} {
		for role, h := range map[string]*bun.DB{"application": d.DB, "owner": d.Owner} {
			var got string
			if err := h.NewRaw("SHOW synchronous_commit").Scan(ctx, &got); err != nil {
				t.Fatal(err)
			}
			if got != "off" {
				t.Errorf("%s, %s role: synchronous_commit is %q, want off", name, role, got)
			}
		}
		d.FlushLog(t)
	}
	const dsn = "postgres://u@127.0.0.1:5432/db?sslmode=disable"
	if got := commitMode(&testing.B{}, dsn); got != dsn {
		t.Errorf("commitMode of a benchmark returned %q, want %q", got, dsn)
	}
}

// TestAdminIsOneHandle: Admin returns the same handle on every call, from
// the database's test and its subtests, and it stays open after a subtest
// that used it first has ended.
func TestAdminIsOneHandle(t *testing.T) {
	Each(t, func(t *testing.T, d *DB) {
		var first *bun.DB
		t.Run("first", func(t *testing.T) { first = d.Admin(t) })
		if got := d.Admin(t); got != first {
			t.Fatalf("Admin returned %p, then %p", first, got)
		}
		var n int
		if err := first.NewRaw("SELECT 1").Scan(context.Background(), &n); err != nil || n != 1 {
			t.Fatalf("the handle after its first subtest ended: %d, %v", n, err)
		}
	}, noop)
}

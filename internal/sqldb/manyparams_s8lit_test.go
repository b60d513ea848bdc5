package sqldb

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/uptrace/bun"
)

// PostgreSQL's extended protocol carries at most 65535 parameters; a
// statement with more literals params could turn into parameters runs as
// written, as it did before params.
func TestParamsBeyondTheProtocolLimit(t *testing.T) {
	dsn := postgresDSN(t)
	db, err := Postgres(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ids := make([]string, 70000)
	for i := range ids {
		ids[i] = "id" + strconv.Itoa(i)
	}
	var n int
	if err := db.NewRaw("SELECT count(*) FROM (SELECT 'id7' AS id) x WHERE id IN (?)", bun.In(ids)).Scan(context.Background(), &n); err != nil {
		t.Fatalf("IN list of %d values: %v", len(ids), err)
	}
	if n != 1 {
		t.Errorf("found %d, want 1", n)
	}
}

// SQLite binds at most 32766 parameters (SQLITE_MAX_VARIABLE_NUMBER): a
// statement marked PreparedLiterals with more literals runs as written.
func TestPreparedLiteralsBeyondTheVariableLimit(t *testing.T) {
	db, err := SQLite(filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE p (a TEXT)`); err != nil {
		t.Fatal(err)
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO p (a) SELECT 'id7' WHERE 'id7' IN ('id0'`)
	for i := 1; i < 40000; i++ {
		q.WriteString(`, 'id` + strconv.Itoa(i) + `'`)
	}
	q.WriteString(`)`)
	if _, err := db.ExecContext(PreparedLiterals(ctx), q.String()); err != nil {
		t.Fatalf("IN list of 40000 literals: %v", err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM p`).Scan(&n); err != nil || n != 1 {
		t.Errorf("stored %d rows (%v), want 1", n, err)
	}
}

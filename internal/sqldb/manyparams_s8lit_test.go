package sqldb

import (
	"context"
	"os"
	"testing"

	"github.com/uptrace/bun"
)

// PostgreSQL's extended protocol carries at most 65535 parameters; a
// statement with more literals params could turn into parameters runs as
// written, as it did before params.
func TestParamsBeyondTheProtocolLimit(t *testing.T) {
	dsn := os.Getenv("SOCIALCRM_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("SOCIALCRM_TEST_POSTGRES not set")
	}
	db, err := Postgres(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ids := make([]string, 70000)
	for i := range ids {
		ids[i] = "id" + itoa(i)
	}
	var n int
	if err := db.NewRaw("SELECT count(*) FROM (SELECT 'id7' AS id) x WHERE id IN (?)", bun.In(ids)).Scan(context.Background(), &n); err != nil {
		t.Fatalf("IN list of %d values: %v", len(ids), err)
	}
	if n != 1 {
		t.Errorf("found %d, want 1", n)
	}
}

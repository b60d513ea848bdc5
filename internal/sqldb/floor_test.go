package sqldb_test

import (
	"context"
	"database/sql"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/sqldb"
)

// BenchmarkRowsAgainstPgx measures the floor under every read the SDK
// makes through database/sql: one row read under row-level security
// through a handle of this package (its setting held by the connection,
// its literals made parameters: one round trip, as the raw query's) —
// database_sql — and the same read straight through pgx on a connection
// that holds the setting — pgx_row_security: what the server adds —
// each against one raw pgx query of the same row from a table without
// row-level security, on a connection of its own, alternated in one loop
// (metric ratio:<way>_vs_pgx_query, the median of the per-pair ratios).
// Needs SOCIALCRM_TEST_POSTGRES.
func BenchmarkRowsAgainstPgx(b *testing.B) {
	db := dbtest.Postgres(b)
	owner := db.ReopenOwner(b)
	ctx := context.Background()
	for _, q := range []string{
		"CREATE TABLE floor_rows (tenant TEXT NOT NULL, id TEXT NOT NULL, at TIMESTAMPTZ NOT NULL, n BIGINT NOT NULL, t TEXT NOT NULL, o TEXT, b BYTEA, PRIMARY KEY (tenant, id))",
		"INSERT INTO floor_rows SELECT 'a', 'id' || g, now(), g, 'text', NULL, decode(repeat('ab', 150), 'hex') FROM generate_series(1, 1000) g",
		"CREATE TABLE plain_rows AS SELECT * FROM floor_rows",
		"ALTER TABLE plain_rows ADD PRIMARY KEY (tenant, id)",
		"ALTER TABLE floor_rows ENABLE ROW LEVEL SECURITY",
		"ALTER TABLE floor_rows FORCE ROW LEVEL SECURITY",
		"CREATE POLICY p ON floor_rows USING (tenant = NULLIF(current_setting('app.floor_rows', true), ''))",
	} {
		if _, err := owner.ExecContext(ctx, q); err != nil {
			b.Fatal(q, err)
		}
	}
	dbtest.GrantApp(b, db)
	raw, err := pgx.Connect(ctx, db.DSN())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { raw.Close(context.Background()) })
	h := db.Reopen(b).DB
	h.SetMaxOpenConns(2)
	a := sqldb.WithSetting(ctx, "app.floor_rows", "a")
	var id, t string
	var at time.Time
	var n int64
	var bs []byte
	base := func() {
		var o *string
		if err := raw.QueryRow(ctx, "SELECT id, at, n, t, o, b FROM plain_rows WHERE tenant = $1 AND id = $2", "a", "id7").
			Scan(&id, &at, &n, &t, &o, &bs); err != nil {
			b.Fatal(err)
		}
	}
	// The same read as the application's role under row-level security,
	// straight through pgx on a connection that holds the setting: what
	// the server adds.
	rls, err := pgx.Connect(ctx, db.DSN())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rls.Close(context.Background()) })
	if _, err := rls.Exec(ctx, "SELECT set_config('app.floor_rows', 'a', false)"); err != nil {
		b.Fatal(err)
	}
	ways := []struct {
		name string
		read func()
	}{
		{"database_sql", func() {
			var o sql.NullString
			if err := h.QueryRowContext(a, "SELECT id, at, n, t, o, b FROM floor_rows WHERE (tenant = 'a') AND (id = 'id7')").
				Scan(&id, &at, &n, &t, &o, &bs); err != nil {
				b.Fatal(err)
			}
		}},
		{"pgx_row_security", func() {
			var o *string
			if err := rls.QueryRow(ctx, "SELECT id, at, n, t, o, b FROM floor_rows WHERE (tenant = $1) AND (id = $2)", "a", "id7").
				Scan(&id, &at, &n, &t, &o, &bs); err != nil {
				b.Fatal(err)
			}
		}},
	}
	for _, w := range ways {
		b.Run(w.name, func(b *testing.B) {
			w.read()
			base()
			var ratios []float64
			for i := 0; b.Loop(); i++ {
				t0 := time.Now()
				if i%2 == 0 {
					w.read()
					t1 := time.Now()
					base()
					ratios = append(ratios, float64(t1.Sub(t0))/float64(time.Since(t1)))
				} else {
					base()
					t1 := time.Now()
					w.read()
					ratios = append(ratios, float64(time.Since(t1))/float64(t1.Sub(t0)))
				}
			}
			slices.Sort(ratios)
			b.ReportMetric(ratios[len(ratios)/2], "ratio:"+w.name+"_vs_pgx_query")
		})
	}
}

package sqldb_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/sqldb"
)

// TestWithParams: the statement whose text WithParams names takes its
// parameters from the context — with a setting (sent in a batch) and
// without — and is prepared once: run again under a setting the session
// holds, it is one round trip. A statement of another text, or with
// arguments of its own, runs as written. On SQLite the context changes
// nothing.
func TestWithParams(t *testing.T) {
	ctx := context.Background()
	t.Run("sqlite", func(t *testing.T) {
		db, err := sqldb.SQLite(filepath.Join(t.TempDir(), "p.db"))
		require.NoError(t, err)
		defer db.Close()
		var n int
		require.NoError(t, db.DB.QueryRowContext(sqldb.WithParams(ctx, "SELECT 1", 5), "SELECT 1").Scan(&n))
		require.Equal(t, 1, n)
	})
	t.Run("postgres", func(t *testing.T) {
		h, _ := pgHandle(t)
		if h == nil {
			return
		}
		const q = "SELECT cardinality($1::text[]), $2::bigint"
		for _, c := range []context.Context{ctx, sqldb.WithSetting(ctx, "app.s", "A")} {
			bound := sqldb.WithParams(c, q, "{a,\"b,c\",NULL}", int64(7))
			var n, v int64
			require.NoError(t, h.QueryRowContext(bound, q).Scan(&n, &v))
			require.Equal(t, [2]int64{3, 7}, [2]int64{n, v})
			before, _ := sqldb.RoundTrips(h)
			require.NoError(t, h.QueryRowContext(bound, q).Scan(&n, &v))
			after, _ := sqldb.RoundTrips(h)
			require.Equal(t, [2]int64{3, 7}, [2]int64{n, v})
			require.EqualValues(t, 1, after-before, "the statement runs again in one round trip")

			var one int
			require.NoError(t, h.QueryRowContext(bound, "SELECT 1").Scan(&one), "another text runs as written")
			require.Equal(t, 1, one)
			require.NoError(t, h.QueryRowContext(bound, q, "{x}", int64(9)).Scan(&n, &v), "arguments of its own")
			require.Equal(t, [2]int64{1, 9}, [2]int64{n, v})
		}
	})
}

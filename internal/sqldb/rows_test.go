package sqldb_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/sqldb"
)

// Rows read under a setting (on PostgreSQL: each statement sent with its
// set_config in one batch, its rows converted by this package) scan as database/sql promises:
// bytes scanned into a []byte are the caller's, unchanged by the rows read
// after them, and statements of different result shapes alternating on
// one connection each convert their own columns.
func TestRowsScanIntoCallerMemory(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		h := db.ReopenOwner(t)
		h.SetMaxOpenConns(1)
		ctx := context.Background()
		_, err := h.ExecContext(ctx, "CREATE TABLE rows_test (n BIGINT NOT NULL, t TEXT NOT NULL, b BLOB)")
		if db.Name == "postgres" {
			_, err = h.ExecContext(ctx, "CREATE TABLE rows_test (n BIGINT NOT NULL, t TEXT NOT NULL, b BYTEA)")
		}
		require.NoError(t, err)
		want := [][]byte{bytes.Repeat([]byte{1}, 40), bytes.Repeat([]byte{2}, 40), {}, nil}
		for i, b := range want {
			_, err := h.ExecContext(ctx, "INSERT INTO rows_test (n, t, b) VALUES (?, ?, ?)", i, string(rune('a'+i)), b)
			require.NoError(t, err)
		}
		ctx = sqldb.WithSetting(ctx, "app.rows_test", "1")
		var s string
		var n int64
		for round := range 3 {
			rows, err := h.QueryContext(ctx, "SELECT n, t, b FROM rows_test WHERE n >= 0 ORDER BY n")
			require.NoError(t, err)
			var got [][]byte
			var texts []string
			for rows.Next() {
				var n int64
				var s string
				var b []byte
				require.NoError(t, rows.Scan(&n, &s, &b))
				got, texts = append(got, b), append(texts, s)
			}
			require.NoError(t, rows.Err())
			require.NoError(t, rows.Close())
			require.Equal(t, []string{"a", "b", "c", "d"}, texts, "round %d", round)
			require.Equal(t, want[0], got[0], "round %d: an earlier row's bytes survive the later rows", round)
			require.Equal(t, want[1], got[1])
			require.Empty(t, got[2])
			require.Nil(t, got[3], "NULL scans as nil")

			// Another shape on the same connection, between two runs of
			// the first.
			require.NoError(t, h.QueryRowContext(ctx, "SELECT t, n FROM rows_test WHERE n = 1").Scan(&s, &n))
			require.Equal(t, "b", s)
			require.EqualValues(t, 1, n)
		}
		if db.Name == "postgres" {
			var set string
			require.NoError(t, h.QueryRowContext(ctx, "SELECT current_setting('app.rows_test', true)").Scan(&set))
			require.Equal(t, "1", set, "the statements went with their setting, through this package's rows")
		}
	})
}

// TestRowsScanArrays: on PostgreSQL an array column (a text[], as the crm
// contacts' name_index) read through this package scans into a string in
// its text form, as any other type without a conversion of its own, and
// NULL as nil.
func TestRowsScanArrays(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		if db.Name != "postgres" {
			return // SQLite has no array type
		}
		h := db.ReopenOwner(t)
		ctx := context.Background()
		_, err := h.ExecContext(ctx, "CREATE TABLE rows_arrays (n BIGINT NOT NULL, a TEXT[], i BIGINT[])")
		require.NoError(t, err)
		_, err = h.ExecContext(ctx, `INSERT INTO rows_arrays VALUES (1, '{x,"y z"}', '{1,2}'), (2, NULL, NULL)`)
		require.NoError(t, err)
		ctx = sqldb.WithSetting(ctx, "app.rows_test", "1")
		rows, err := h.QueryContext(ctx, "SELECT a, i FROM rows_arrays WHERE n > 0 ORDER BY n")
		require.NoError(t, err)
		var got []any
		for rows.Next() {
			var a, i *string
			require.NoError(t, rows.Scan(&a, &i))
			got = append(got, a, i)
		}
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
		x, y := `{x,"y z"}`, "{1,2}"
		require.Equal(t, []any{&x, &y, (*string)(nil), (*string)(nil)}, got)
	})
}

// TestRowsScanIntoMapsKeepBytes: bun scanning rows into maps keeps each
// bytea value as the driver handed it (a []byte inside an any, which no
// Scanner copies), so the value the driver hands out must be the caller's
// own memory: the rows read after it and the statements run after it leave
// it as it was.
func TestRowsScanIntoMapsKeepBytes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		h := db.ReopenOwner(t)
		h.SetMaxOpenConns(1)
		ctx := context.Background()
		typ := "BLOB"
		if db.Name == "postgres" {
			typ = "BYTEA"
		}
		_, err := h.ExecContext(ctx, "CREATE TABLE rows_map_test (n BIGINT NOT NULL, b "+typ+" NOT NULL)")
		require.NoError(t, err)
		want := [][]byte{bytes.Repeat([]byte{7}, 64), bytes.Repeat([]byte{8}, 64), bytes.Repeat([]byte{9}, 64)}
		for i, b := range want {
			_, err := h.ExecContext(ctx, "INSERT INTO rows_map_test (n, b) VALUES (?, ?)", i, b)
			require.NoError(t, err)
		}
		ctx = sqldb.WithSetting(ctx, "app.rows_test", "1")
		var rows []map[string]any
		require.NoError(t, h.NewSelect().Table("rows_map_test").Column("n", "b").Where("n >= ?", 0).OrderExpr("n").Scan(ctx, &rows))
		for range 3 { // other statements on the same connection
			var n int64
			require.NoError(t, h.QueryRowContext(ctx, "SELECT count(*) FROM rows_map_test WHERE n >= 0").Scan(&n))
		}
		one := map[string]any{}
		require.NoError(t, h.NewSelect().Table("rows_map_test").Column("n", "b").Where("n = ?", 1).Scan(ctx, &one))
		var b, n any // database/sql's own *any, which copies
		require.NoError(t, h.QueryRowContext(ctx, "SELECT b, n FROM rows_map_test WHERE n = 2").Scan(&b, &n))
		for range 3 { // other statements on the same connection
			var n int64
			require.NoError(t, h.QueryRowContext(ctx, "SELECT count(*) FROM rows_map_test WHERE n >= 0").Scan(&n))
			_, err := h.ExecContext(ctx, "UPDATE rows_map_test SET n = n WHERE n = ?", 5)
			require.NoError(t, err)
		}
		require.Equal(t, want[1], one["b"], "a single row's bytes, read into a map")
		require.Equal(t, want[2], b)
		require.Len(t, rows, len(want))
		for i, r := range rows {
			require.Equal(t, want[i], r["b"], "row %d's bytes, read into a map, after the rows and statements that followed", i)
		}
	})
}

package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
)

// nastyValues are values a user controls that a literal rewriter could
// read differently from the database: quotes doubled and run into words,
// backslashes, comment marks, dollar and question marks, prefixes, names.
var nastyValues = []string{
	"", "'", "''", "'''", `\`, `\'`, `'\`, `\\''`, "o'Brien", "x'00'", "X'", "E'x", "U&'d", "B'0", "N'a",
	"a'--", "--", "/*", "*/", "/* '*/", "$1", "$$", "$tag$x$tag$", "?", "?1", ":a", "@a", ";", "'; DELETE FROM p; --",
	"' OR '1'='1", `"`, `""`, `"'"`, "[x]", "`", "é'", "\u00e9\u0301", "\xff\xfe", "\u2028", "a\nb\r\t",
	strings.Repeat("'", 257), strings.Repeat("(", 40) + "'" + strings.Repeat(")", 40), strings.Repeat("ab'--$;?", 5000),
}

func nested(depth int, s string) string {
	return strings.Repeat("(", depth) + s + strings.Repeat(")", depth)
}

// A statement the SQLite connection runs prepared (PreparedLiterals)
// stores exactly what the same text run as written stores, for any value
// bun writes into it, and changes no other row.
func FuzzPreparedLiteralsSQLite(f *testing.F) {
	for _, v := range nastyValues {
		f.Add(v, []byte(v))
	}
	db, err := SQLite(filepath.Join(f.TempDir(), "p.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE p (k INTEGER, a TEXT, b BLOB, c, "it's -- x" TEXT, [x'y] INTEGER)`); err != nil {
		f.Fatal(err)
	}
	d := sqlitedialect.New()
	n := 0
	f.Fuzz(func(t *testing.T, a string, b []byte) {
		if strings.IndexByte(a, 0) >= 0 {
			return // bun refuses a NUL in a string
		}
		n++
		qa := string(d.AppendString(nil, a))
		qb := string(d.AppendBytes(nil, b))
		guard := string(d.AppendString(nil, "guard"))
		if _, err := db.ExecContext(ctx, `INSERT INTO p (k, a, b, c) VALUES (-1, `+guard+`, X'00', 'g')`); err != nil {
			t.Fatal(err)
		}
		stmts := func(k int) []string {
			ks := fmt.Sprint(k)
			return []string{
				`INSERT INTO p (k, a, b, c, "it's -- x", [x'y]) SELECT ` + ks + `, ` + qa + `, ` + qb + `, ` + nested(20, qa) + `, ` + qa + `, 1 WHERE NOT EXISTS (SELECT 1 FROM p WHERE ` + nested(18, "a = "+qa) + ` AND k = ` + ks + `)`,
				`UPDATE p SET c = ` + qa + ` || ` + qa + `, [x'y] = length(` + qb + `) WHERE k = ` + ks + ` AND a = ` + qa + ` AND b = ` + qb,
			}
		}
		for _, q := range stmts(0) {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatalf("as written: %v", err)
			}
		}
		p := PreparedLiterals(ctx)
		for range 2 {
			for _, q := range stmts(1) {
				if _, err := db.ExecContext(p, q); err != nil {
					t.Fatalf("prepared: %v", err)
				}
			}
		}
		rows := dump(t, db.DB)
		if len(rows) != 3 || rows[0][0] != "-1" || rows[1][0] != "0" || rows[2][0] != "1" {
			t.Fatalf("rows %q, want the guard, one row as written and one prepared", rows)
		}
		for i := 1; i < 6; i++ {
			if rows[1][i] != rows[2][i] {
				t.Errorf("value %q: prepared column %d stores %q, as written %q", a, i, rows[2][i], rows[1][i])
			}
		}
		if rows[0][1] != "'guard'text" || rows[0][3] != "'g'text" {
			t.Errorf("value %q changed the guard row: %q", a, rows[0])
		}
		if rows[1][1] != string(d.AppendString(nil, a))+"text" {
			t.Errorf("value %q stored as %s", a, rows[1][1])
		}
		if _, err := db.ExecContext(ctx, `DELETE FROM p`); err != nil {
			t.Fatal(err)
		}
	})
}

func dump(t *testing.T, db *sql.DB) [][6]string {
	t.Helper()
	rs, err := db.QueryContext(context.Background(), `SELECT k, quote(a) || typeof(a), quote(b) || typeof(b), quote(c) || typeof(c), quote("it's -- x") || typeof("it's -- x"), quote([x'y]) || typeof([x'y]) FROM p ORDER BY k`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out [][6]string
	for rs.Next() {
		var r [6]string
		if err := rs.Scan(&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// A statement params rewrites runs on PostgreSQL exactly as the text
// bun wrote: the same rows stored, the same rows found, no other row
// changed, for any value bun writes into it.
func FuzzParamsPostgres(f *testing.F) {
	dsn := postgresDSN(f)
	for _, v := range nastyValues {
		f.Add(v, []byte(v))
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { c.Close(ctx) })
	if _, err := c.Exec(ctx, `CREATE TEMP TABLE p (k int, a text, b bytea, c text, "it's -- x" text, "a$" int)`); err != nil {
		f.Fatal(err)
	}
	d := pgdialect.New()
	f.Fuzz(func(t *testing.T, a string, b []byte) {
		if strings.IndexByte(a, 0) >= 0 {
			return // bun refuses a NUL in a string
		}
		qa := string(d.AppendString(nil, a))
		qb := string(d.AppendBytes(nil, b))
		if _, err := c.Exec(ctx, `INSERT INTO p (k, a, b, c) VALUES (-1, 'guard', '\x00', 'g')`); err != nil {
			t.Fatal(err)
		}
		stmts := func(k int) []string {
			ks := fmt.Sprint(k)
			return []string{
				`INSERT INTO "p" ("k", "a", "b", "c", "it's -- x") VALUES (` + ks + `, ` + qa + `, ` + qb + `, ` + qa + `::text, ` + qa + `)`,
				`UPDATE "p" SET "c" = ` + qa + `, "a$" = 1 WHERE ` + nested(20, `"a" = `+qa) + ` AND "k" = ` + ks + ` AND "b" IN (` + qb + `, '\x01')`,
			}
		}
		run := func(q string, rewrite bool) {
			t.Helper()
			if rewrite {
				if out, args, ok := params(q); ok {
					if _, err := c.Exec(ctx, out, args...); err != nil {
						t.Fatalf("rewritten %q: %v", out, err)
					}
					return
				}
			}
			if _, err := c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
				t.Fatalf("as written: %v", err)
			}
		}
		for _, q := range stmts(0) {
			run(q, false)
		}
		for _, q := range stmts(1) {
			run(q, true)
		}
		count := `SELECT count(*) FROM "p" WHERE "a" IN (` + qa + `, 'zz') AND "b" = ` + qb + ` AND "c" = ` + qa + `::text`
		var plain, rewritten int
		if err := c.QueryRow(ctx, count, pgx.QueryExecModeSimpleProtocol).Scan(&plain); err != nil {
			t.Fatal(err)
		}
		out, args, ok := params(count)
		if !ok {
			out, args = count, []any{pgx.QueryExecModeSimpleProtocol}
		}
		if err := c.QueryRow(ctx, out, args...).Scan(&rewritten); err != nil {
			t.Fatal(err)
		}
		if plain != 2 || rewritten != 2 {
			t.Errorf("value %q: as written finds %d rows, rewritten %d, want 2", a, plain, rewritten)
		}
		rs, err := c.Query(ctx, `SELECT k, a, encode(b, 'hex'), c, coalesce("it's -- x", 'NULL'), coalesce("a$", -9) FROM p ORDER BY k`)
		if err != nil {
			t.Fatal(err)
		}
		var got [][6]any
		for rs.Next() {
			v, err := rs.Values()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, [6]any(v))
		}
		rs.Close()
		if rs.Err() != nil {
			t.Fatal(rs.Err())
		}
		if len(got) != 3 {
			t.Fatalf("value %q: %d rows, want 3", a, len(got))
		}
		if fmt.Sprint(got[0]) != fmt.Sprint([6]any{int32(-1), "guard", "00", "g", "NULL", int32(-9)}) {
			t.Errorf("value %q changed the guard row: %v", a, got[0])
		}
		for i := 1; i < 6; i++ {
			if got[1][i] != got[2][i] {
				t.Errorf("value %q: rewritten column %d stores %v, as written %v", a, i, got[2][i], got[1][i])
			}
		}
		if got[1][1] != strings.ToValidUTF8(a, "\uFFFD") && utf8Valid(a) {
			t.Errorf("value %q stored as %q", a, got[1][1])
		}
		if _, err := c.Exec(ctx, `DELETE FROM p`); err != nil {
			t.Fatal(err)
		}
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }

package sqldb

import (
	"context"
	"database/sql/driver"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

func TestLiteralParams(t *testing.T) {
	for _, c := range []struct {
		in, out string
		args    []driver.Value
	}{
		{`INSERT INTO "c" ("a", "b", "n", "d") SELECT 'a''b', X'00ff', 1, NULL WHERE NOT EXISTS (SELECT 1 FROM "c" AS "ct" WHERE ("ct"."a" = 'x') AND ("ct".tenant_id = 't'))`,
			`INSERT INTO "c" ("a", "b", "n", "d") SELECT $1, $2, 1, NULL WHERE NOT EXISTS (SELECT 1 FROM "c" AS "ct" WHERE ("ct"."a" = $3) AND ("ct".tenant_id = $4))`,
			[]driver.Value{"a'b", []byte{0, 0xff}, "x", "t"}},
		{`SELECT "it's" FROM [x'y] WHERE a = x'' AND b = ''`, `SELECT "it's" FROM [x'y] WHERE a = $1 AND b = $2`, []driver.Value{[]byte{}, ""}},
		{`SELECT max('a') FROM c`, `SELECT max($1) FROM c`, []driver.Value{"a"}},
	} {
		out, args, ok := literalParams(c.in)
		var vals []driver.Value
		for i, a := range args {
			if a.Ordinal != i+1 {
				t.Errorf("literalParams(%q): argument %d has ordinal %d", c.in, i, a.Ordinal)
			}
			vals = append(vals, a.Value)
		}
		if !ok || out != c.out || !reflect.DeepEqual(vals, c.args) {
			t.Errorf("literalParams(%q) = %q, %v, %v, want %q, %v", c.in, out, vals, ok, c.out, c.args)
		}
	}
	for _, q := range []string{
		`SELECT 1`,
		`SELECT * FROM c WHERE a = ?`,
		`SELECT * FROM c WHERE a = $1`,
		`SELECT * FROM c WHERE a = 'x'; DELETE FROM c`,
		`SELECT * FROM c WHERE a = 'x' -- 'y'`,
		`SELECT * FROM c WHERE a = 'x' /* 'y' */`,
		`SELECT * FROM c WHERE a = 'x`,
		`SELECT * FROM c WHERE a = X'0g'`,
		`SELECT * FROM c WHERE a = 'x'y`,
	} {
		if out, _, ok := literalParams(q); ok {
			t.Errorf("literalParams(%q) = %q, want it left whole", q, out)
		}
	}
}

// A statement marked with PreparedLiterals runs on SQLite as one prepared
// statement per connection whatever its values, and stores exactly what
// the same text run as written stores: the same values of the same types.
func TestPreparedLiteralsStoreWhatTheTextSays(t *testing.T) {
	db, err := SQLite(filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE p (k INTEGER, a TEXT, b BLOB, c, d NUMERIC)`); err != nil {
		t.Fatal(err)
	}
	insert := func(ctx context.Context, k int, a, b, d string) {
		t.Helper()
		q := `INSERT INTO p (k, a, b, c, d) SELECT ` + strconv.Itoa(k) + `, '` + a + `', X'` + b + `', '` + a + `', '` + d + `' WHERE NOT EXISTS (SELECT 1 FROM p WHERE a = '` + a + `' AND k = ` + strconv.Itoa(k) + `)`
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	prepared := PreparedLiterals(ctx)
	for _, v := range [][3]string{{"o''Brien", "00ff", "12"}, {"", "", "1.5"}, {"x", "61", "007"}} {
		insert(ctx, 0, v[0], v[1], v[2])
		insert(prepared, 1, v[0], v[1], v[2])
		insert(prepared, 1, v[0], v[1], v[2]) // the NOT EXISTS holds it back
	}
	rows, err := db.QueryContext(ctx, `SELECT k, quote(a) || typeof(a), quote(b) || typeof(b), quote(c) || typeof(c), quote(d) || typeof(d) FROM p ORDER BY rowid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got [][4]string
	for rows.Next() {
		var k int
		var r [4]string
		if err := rows.Scan(&k, &r[0], &r[1], &r[2], &r[3]); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if len(got) != 6 {
		t.Fatalf("got %d rows, want 6", len(got))
	}
	for i := 0; i < 6; i += 2 {
		if got[i] != got[i+1] {
			t.Errorf("prepared row %v, want %v as the text stores it", got[i+1], got[i])
		}
	}
	withConn(t, db.DB, func(c *conn) {
		if len(c.prepared) != 1 {
			t.Errorf("the connection keeps %d prepared statements, want 1", len(c.prepared))
		}
	})
}

package sqldb

import (
	"reflect"
	"testing"
)

func TestParams(t *testing.T) {
	for _, c := range []struct {
		in, out string
		args    []any
	}{
		{`SELECT "ct"."id" FROM "c" AS "ct" WHERE ("ct"."tenant_id" = 'a''b') AND ("ct"."id" = 'x') AND ("ct"."version" = 3)`,
			`SELECT "ct"."id" FROM "c" AS "ct" WHERE ("ct"."tenant_id" = $1) AND ("ct"."id" = $2) AND ("ct"."version" = $3::integer)`, []any{"a'b", "x", "3"}},
		{`SELECT * FROM "c" WHERE "id" IN ('x', 'y') AND "n" >= 2 LIMIT 101`,
			`SELECT * FROM "c" WHERE "id" IN ($1, $2) AND "n" >= $3::integer LIMIT 101`, []any{"x", "y", "2"}},
		{`INSERT INTO "c" ("a", "b", "c") VALUES ('x', lower('y'), DEFAULT), ('z', 1, NULL) RETURNING "id"`,
			`INSERT INTO "c" ("a", "b", "c") VALUES ($1, lower('y'), DEFAULT), ($2, $3::integer, NULL) RETURNING "id"`, []any{"x", "z", "1"}},
		{`UPDATE "c" SET "a" = 'x', "b" = coalesce('y', "b") WHERE "id" = 'i'`,
			`UPDATE "c" SET "a" = $1, "b" = coalesce('y', "b") WHERE "id" = $2`, []any{"x", "i"}},
		{`SELECT 'x', "a" LIKE 'p%' FROM "c" WHERE "b" = 'v'::jsonb`,
			`SELECT 'x', "a" LIKE 'p%' FROM "c" WHERE "b" = $1::jsonb`, []any{"v"}},
		{`SELECT pg_advisory_xact_lock(k) FROM unnest('{-5,7}'::bigint[]) AS k`,
			`SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k`, []any{"{-5,7}"}},
		// Numbers are cast to the type PostgreSQL gives the literal.
		{`SELECT * FROM "c" WHERE "i" = 1.0 AND "j" < 3000000000 AND "k" IN (2, 99999999999999999999) AND "l" = 2147483647`,
			`SELECT * FROM "c" WHERE "i" = $1::numeric AND "j" < $2::bigint AND "k" IN ($3::integer, $4::numeric) AND "l" = $5::integer`,
			[]any{"1.0", "3000000000", "2", "99999999999999999999", "2147483647"}},
		// Keywords in any case (they are compared as written, ignoring case).
		{`select * from "c" where "id" in ('x', 'y') and "n" = 'z'`,
			`select * from "c" where "id" in ($1, $2) and "n" = $3`, []any{"x", "y", "z"}},
		{`insert into "c" ("a", "b") Values ('x', 1), ('y', 2)`,
			`insert into "c" ("a", "b") Values ($1, $2::integer), ($3, $4::integer)`, []any{"x", "1", "y", "2"}},
		{`SELECT * FROM "c" WHERE "a" = 'v1' AND "b" = 'v2' AND "c" = 'v3' AND "d" = 'v4' AND "e" = 'v5' AND "f" = 'v6' AND "g" = 'v7' AND "h" = 'v8' AND "i" = 'v9' AND "j" = 'v10'`,
			`SELECT * FROM "c" WHERE "a" = $1 AND "b" = $2 AND "c" = $3 AND "d" = $4 AND "e" = $5 AND "f" = $6 AND "g" = $7 AND "h" = $8 AND "i" = $9 AND "j" = $10`,
			[]any{"v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10"}},
		{`(SELECT "a" FROM "c" WHERE "a" = 'x') UNION (SELECT "a" FROM "d" WHERE "a" = 'y')`,
			`(SELECT "a" FROM "c" WHERE "a" = $1) UNION (SELECT "a" FROM "d" WHERE "a" = $2)`, []any{"x", "y"}},
		// Comment marks, dollar signs and semicolons inside a literal or a
		// quoted name are data (a blind index holds "--" now and then).
		{`INSERT INTO "c" ("a--", "b") SELECT 'HK--5v'::text, 'x/*y'::text WHERE "a$" = 'p;q' AND "b" = '$1''--'`,
			`INSERT INTO "c" ("a--", "b") SELECT $1::text, $2::text WHERE "a$" = $3 AND "b" = $4`, []any{"HK--5v", "x/*y", "p;q", "$1'--"}},
	} {
		out, args, ok := params(c.in)
		if !ok || out != c.out || !reflect.DeepEqual(args, c.args) {
			t.Errorf("params(%q) = %q, %v, %v, want %q, %v", c.in, out, args, ok, c.out, c.args)
		}
	}
	for _, q := range []string{
		`SELECT 1`,
		`SELECT * FROM "c" WHERE "a" = $1`,
		`SELECT * FROM "c" WHERE "a" = E'x\n'`,
		`SELECT * FROM "c" WHERE "a" = 'x'; DELETE FROM "c"`,
		`SELECT * FROM "c" WHERE "a" = 'x' -- 'y'`,
		`SELECT * FROM "c" WHERE "a" = 'x' /* 'y' */`,
		`SELECT * FROM "c" WHERE "a" = 'x' AND "b" = $$y$$`,
		`SELECT * FROM "c" WHERE "a" = 'x' AND b$ = 'y'`,
		`SELECT * FROM "c" WHERE "a" = 'x--'; DELETE FROM "c" WHERE "a" = 'y'`,
		`SELECT * FROM "c" WHERE "a" = 'x'--'y'`,
		`SELECT * FROM "c" WHERE "a" = 'x`,
		`SELECT * FROM "c" WHERE "a" = 1e5`,
		`SELECT * FROM "c" WHERE "a" = 1.2.3`,
		`CREATE TRIGGER t BEFORE INSERT ON "c" FOR EACH ROW WHEN (NEW.tenant_id = 'x') EXECUTE FUNCTION f()`,
	} {
		if out, _, ok := params(q); ok {
			t.Errorf("params(%q) = %q, want it left whole", q, out)
		}
	}
}

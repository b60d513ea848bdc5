package tenancy

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// BenchmarkGuardCheck is the Guard's cost per statement once its shape is
// cached: blanking the literals, a cache hit, and the tenant comparison.
func BenchmarkGuardCheck(b *testing.B) {
	g := &Guard{tables: []string{"test_widgets"}, unsafe: map[string]error{}}
	tid := NewID()
	ctx := WithPrincipal(context.Background(), Principal{TenantID: tid, Role: RoleStaff})
	q := `SELECT "w"."tenant_id", "w"."id", "w"."name", "w"."size" FROM "test_widgets" AS "w" WHERE ("w"."id" = '` + NewID() + `') AND ("w"."tenant_id" = '` + tid + `')`
	if err := g.check(ctx, q); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if err := g.check(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBlankLiterals checks the cache key and literal offsets the Guard
// takes from a statement, and the statements it will not cache.
func TestBlankLiterals(t *testing.T) {
	key, lits, ok := blankLiterals(`SELECT 'a''b', "x'y", 12, t1.c, 1.5 -- 'c'
	/* 'd' /* 'e' */ 'f' */ FROM "t" WHERE x = 'g'`)
	if !ok || len(lits) != 2 {
		t.Fatalf("blankLiterals = %q, %v, %v", key, lits, ok)
	}
	want := "SELECT \x00, \"x'y\", \x01, t1.c, \x01 -- 'c'\n\t/* 'd' /* 'e' */ 'f' */ FROM \"t\" WHERE x = \x00"
	if key != want {
		t.Errorf("key = %q, want %q", key, want)
	}
	for _, q := range []string{`SELECT 'a\b', json_extract(x, '$.a')`, `SELECT 1 FROM t WHERE a = 'x' -- 'y'`,
		`SELECT $1, x FROM t WHERE a = $12::text[] AND b = 'x'`} {
		if _, _, ok := blankLiterals(q); !ok {
			t.Errorf("blankLiterals(%q) is not cacheable", q)
		}
	}
	for _, q := range []string{`SELECT E'\''`, `SELECT e'x'`, `SELECT U&'d!0061t' UESCAPE '!'`, "SELECT 'a'\n'b'",
		"SELECT 'a' -- c\n 'b'", `SELECT $$x$$`, `SELECT $a$x$a$`, `SELECT $1abc`, `SELECT x$1`, `SELECT x$1$`, "SELECT \x00 1", `SELECT 'open`, `SELECT /* open`} {
		if _, _, ok := blankLiterals(q); ok {
			t.Errorf("blankLiterals(%q) is cacheable", q)
		}
	}
}

// TestGuardBunSavepoints checks that bun's own savepoint statements pass
// the Guard without being parsed (their names are random, so a parse
// would happen every time), and that nothing else rides on that path: a
// statement that only looks like one is checked as any other.
func TestGuardBunSavepoints(t *testing.T) {
	const name = "SP_0123456789abcdef0123456789ab"
	for _, q := range []string{"SAVEPOINT " + name, "RELEASE SAVEPOINT " + name, "ROLLBACK TO SAVEPOINT " + name} {
		if !bunSavepointStatement(q) {
			t.Errorf("bunSavepointStatement(%q) = false, want true", q)
		}
	}
	for _, q := range []string{
		"SAVEPOINT " + name + "; DELETE FROM test_widgets", // a second statement
		"SAVEPOINT " + name + " ",                          // trailing text
		"SAVEPOINT SP_0123456789ABCDEF0123456789AB",        // not bun's spelling
		"SAVEPOINT SP_0123456789abcdef0123456789a",         // one digit short
		"savepoint " + name,                                // lower case
		"/* c */ SAVEPOINT " + name,                        // a comment first
		"ROLLBACK TO " + name,                              // without SAVEPOINT
		"SAVEPOINT my_savepoint",
	} {
		if bunSavepointStatement(q) {
			t.Errorf("bunSavepointStatement(%q) = true, want false", q)
		}
	}
	g := &Guard{tables: []string{"test_widgets"}, unsafe: map[string]error{}}
	if err := g.check(context.Background(), "SAVEPOINT "+name); err != nil {
		t.Errorf("check(bun savepoint) = %v, want nil", err)
	}
	if err := g.check(context.Background(), "SAVEPOINT "+name+"; DELETE FROM test_widgets"); err == nil {
		t.Error("check(savepoint; delete without a tenant) = nil, want a refusal")
	}
}

// TestGuardCachesParameterizedStatements: a statement whose values travel
// as parameters ($1) is analysed once and then found in the shape cache,
// as one with literals is, and the cached shape checks the tenant's
// literal as strictly: another tenant's id, or a parameter where the
// tenant's id must be read, is refused each time.
func TestGuardCachesParameterizedStatements(t *testing.T) {
	g := &Guard{tables: []string{"test_widgets"}, unsafe: map[string]error{}}
	tid, other := NewID(), NewID()
	ctx := WithPrincipal(context.Background(), Principal{TenantID: tid, Role: RoleStaff})
	q := func(tenant string) string {
		return `INSERT INTO test_widgets (tenant_id, id, name) SELECT '` + tenant + `', s.id, s.name
			FROM unnest($1::text[], $2::text[]) AS s(id, name) WHERE $3::timestamptz IS NOT NULL`
	}
	for range 2 {
		if err := g.check(ctx, q(tid)); err != nil {
			t.Fatalf("check of the tenant's own statement: %v", err)
		}
	}
	if n := g.shapes.len(); n != 1 {
		t.Fatalf("the Guard keeps %d shapes, want 1: the parameterized statement is not cached", n)
	}
	for range 2 {
		if err := g.check(ctx, q(other)); !errors.Is(err, ErrUnscoped) {
			t.Fatalf("check of a statement naming another tenant = %v, want ErrUnscoped", err)
		}
	}
	// SQLite reads $1::a(…) as one parameter's name, PostgreSQL's lexer
	// as a parameter and a cast: there such a statement on a tenant-owned
	// table is refused (the parser would not read what SQLite runs) and not
	// cached.
	sq := &Guard{tables: []string{"test_widgets"}, unsafe: map[string]error{}, sqlite: true}
	if err := sq.check(ctx, q(tid)); !errors.Is(err, ErrUnscoped) {
		t.Fatalf("check on SQLite = %v, want ErrUnscoped", err)
	}
	if n := sq.shapes.len(); n != 0 {
		t.Fatalf("the SQLite Guard keeps %d shapes of a statement with parameters, want 0", n)
	}
	byParam := `INSERT INTO test_widgets (tenant_id, id, name) SELECT $3, s.id, s.name FROM unnest($1::text[], $2::text[]) AS s(id, name)`
	for range 2 {
		if err := g.check(ctx, byParam); !errors.Is(err, ErrUnscoped) {
			t.Fatalf("check of a statement taking the tenant's id as a parameter = %v, want ErrUnscoped", err)
		}
	}
}

// TestQuotes: quotes, which compares a literal with a value without
// building the quoted value, agrees with building it, over every string
// of up to six letters and quotes (and literals that are not quoted).
func TestQuotes(t *testing.T) {
	var all []string
	var grow func(s string)
	grow = func(s string) {
		all = append(all, s)
		if len(s) < 6 {
			grow(s + "a")
			grow(s + "'")
		}
	}
	grow("")
	for _, s := range all {
		want := "'" + strings.ReplaceAll(s, "'", "''") + "'"
		for _, x := range all {
			for _, lit := range []string{"'" + x + "'", x} {
				if got := quotes(lit, s); got != (lit == want) {
					t.Fatalf("quotes(%q, %q) = %v, want %v", lit, s, got, lit == want)
				}
			}
		}
	}
}

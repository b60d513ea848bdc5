package tenancy

import (
	"context"
	"testing"
)

// TestGuardCachesOnlyConstantLiterals: a statement whose blanked literals
// are all constants of the parse tree (strings, bun's X'…' bytes) is
// cached; one whose literal is a UESCAPE character or an option's value,
// or that the parser cannot read, is not, unless nothing was blanked.
func TestGuardCachesOnlyConstantLiterals(t *testing.T) {
	tid := NewID()
	ctx := WithPrincipal(context.Background(), Principal{TenantID: tid, Role: RoleStaff})
	for _, c := range []struct {
		q      string
		shapes int
	}{
		{`INSERT INTO test_widgets (tenant_id, id, data) VALUES ('` + tid + `', 'w', X'0a1b')`, 1},
		{`SELECT B'101', N'x', date '2020-01-01', 'a'::text`, 1},
		{`SELECT 1 FROM U&"x!0061" UESCAPE '!'`, 0},
		{`EXPLAIN (ANALYZE 'false') SELECT 1`, 0},
		{`PRAGMA 'optimize'`, 0},
		{`PRAGMA optimize`, 1},
	} {
		for _, sqlite := range []bool{false, true} {
			g := &Guard{tables: []string{"test_widgets"}, unsafe: map[string]error{}, sqlite: sqlite}
			_ = g.check(ctx, c.q)
			if n := g.shapes.len(); n != c.shapes {
				t.Errorf("%s (sqlite %v): the Guard keeps %d shapes, want %d", c.q, sqlite, n, c.shapes)
			}
		}
	}
}

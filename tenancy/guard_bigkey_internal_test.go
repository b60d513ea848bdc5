package tenancy

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// bigStatement is a statement of about 4 KB on a tenant-owned table, with
// the tenant's id as a literal (as Ingest's is), naming tid.
func bigStatement(tid string) string {
	return `SELECT "w"."id" FROM "test_widgets" AS "w" WHERE "w"."tenant_id" = '` + tid + `' AND "w"."name" IN (` +
		strings.Repeat("$1, ", 1000) + `$2)`
}

// BenchmarkGuardCheckBig is BenchmarkGuardCheck for a statement of about
// 4 KB, whose key does not fit check's stack buffer.
func BenchmarkGuardCheckBig(b *testing.B) {
	g := &Guard{tables: []string{"test_widgets"}, unsafe: map[string]error{}}
	tid := NewID()
	ctx := WithPrincipal(context.Background(), Principal{TenantID: tid, Role: RoleStaff})
	q := bigStatement(tid)
	if err := g.check(ctx, q); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := g.check(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
}

// TestGuardBigStatementVerdicts: the keys of statements over 512 bytes
// are written into pooled buffers; a big statement naming the tenant and
// one naming another tenant, checked in turn (each reusing the buffer the
// other left), keep their verdicts, as do an uncacheable big statement
// and a small one between them.
func TestGuardBigStatementVerdicts(t *testing.T) {
	g := &Guard{tables: []string{"test_widgets"}, unsafe: map[string]error{}}
	tid, other := NewID(), NewID()
	ctx := WithPrincipal(context.Background(), Principal{TenantID: tid, Role: RoleStaff})
	own, foreign := bigStatement(tid), bigStatement(other)
	unscoped := `SELECT "w"."id" FROM "test_widgets" AS "w" WHERE $$x$$ = '` + strings.Repeat("y", 600) + `'`
	small := `SELECT "w"."id" FROM "test_widgets" AS "w" WHERE "w"."tenant_id" = '` + other + `'`
	for range 3 {
		if err := g.check(ctx, own); err != nil {
			t.Fatalf("the tenant's statement: %v", err)
		}
		for _, q := range []string{foreign, unscoped, small} {
			if err := g.check(ctx, q); !errors.Is(err, ErrUnscoped) {
				t.Fatalf("check(%.60q…) = %v, want ErrUnscoped", q, err)
			}
		}
	}
}

package tenancy_test

import (
	"context"
	"testing"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// plainWidget is widget without Owned: what a hand-written query reads.
type plainWidget struct {
	bun.BaseModel `bun:"table:test_widgets,alias:w"`
	TenantID      string `bun:"tenant_id"`
	ID            string `bun:"id,pk"`
	Name          string `bun:"name,notnull"`
	Size          int    `bun:"size,notnull"`
}

// benchGetDB fills a SQLite database with 1,000 widgets in each of three
// tenants and returns it with one widget id of the first tenant.
func benchGetDB(b *testing.B) (*dbtest.DB, context.Context, string) {
	db := dbtest.SQLite(b, setup)
	var target string
	var ctx context.Context
	for t := range 3 {
		tctx := as(tenancy.NewID())
		ws := make([]*widget, 1000)
		for i := range ws {
			ws[i] = &widget{ID: tenancy.NewID(), Name: "w", Size: i}
		}
		if _, err := db.NewInsert().Model(&ws).Exec(tctx); err != nil {
			b.Fatal(err)
		}
		if t == 0 {
			ctx, target = tctx, ws[500].ID
		}
	}
	return db, ctx, target
}

// BenchmarkTenancyScopedGet is a get-by-id through the Owned hooks with the
// Guard installed, as the SDK runs it.
func BenchmarkTenancyScopedGet(b *testing.B) {
	db, ctx, id := benchGetDB(b)
	b.ResetTimer()
	for b.Loop() {
		var w widget
		if err := db.NewSelect().Model(&w).Where("?TableAlias.id = ?", id).Scan(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTenancyBaselineBunGet is the same query written by hand with bun
// and an explicit tenant_id filter, on a handle with no hooks.
func BenchmarkTenancyBaselineBunGet(b *testing.B) {
	db, ctx, id := benchGetDB(b)
	tid, _ := tenancy.TenantID(ctx)
	raw := db.Reopen(b)
	b.ResetTimer()
	for b.Loop() {
		var w plainWidget
		if err := raw.NewSelect().Model(&w).Where("?TableAlias.id = ?", id).Where("?TableAlias.tenant_id = ?", tid).Scan(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

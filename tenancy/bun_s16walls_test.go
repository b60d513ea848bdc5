package tenancy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestS16BunQueriesStayInTheTenant: ordinary bun code of tenant B — every
// query shape bun builds (subqueries, unions, CTEs, joins, relation
// joins, RETURNING, bulk updates and deletes through Model((*T)(nil)),
// Count, Exists, ScanAndCount, raw queries, window functions, WHERE
// EXISTS, INSERT … SELECT, UPDATE … FROM, DELETE … USING, a condition
// that closes bun's parentheses) — reads and changes none of tenant A's
// rows: each is confined to B's rows or refused, on SQLite (the Guard
// alone) and on PostgreSQL (the Guard and row-level security), inside
// RunInTx and outside it. A's rows are as they were afterwards.
func TestS16BunQueriesStayInTheTenant(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(a), db, &widget{ID: "wa-" + a, Name: "secret-a", Size: 1}))
		require.NoError(t, insert(as(a), db, &gadget{ID: "ga-" + a, WidgetID: "wa-" + a, Label: "secret-a"}))
		require.NoError(t, insert(as(b), db, &widget{ID: "wb-" + b, Name: "mine-b", Size: 2}))
		// B's gadget names A's widget: a relation join must not bring it.
		require.NoError(t, insert(as(b), db, &gadget{ID: "gb-" + b, WidgetID: "wa-" + a, Label: "mine-b"}))
		wa := "wa-" + a
		type result struct {
			names []string
			n     int64
		}
		cases := []struct {
			name string
			run  func(ctx context.Context, db bun.IDB) (result, error)
		}{
			{"select", func(ctx context.Context, db bun.IDB) (result, error) {
				var ws []widget
				err := db.NewSelect().Model(&ws).Scan(ctx)
				return names(ws), err
			}},
			{"count", func(ctx context.Context, db bun.IDB) (result, error) {
				n, err := db.NewSelect().Model((*widget)(nil)).Count(ctx)
				return result{n: n}, err
			}},
			{"count scoped", func(ctx context.Context, db bun.IDB) (result, error) {
				n, err := db.NewSelect().Model((*widget)(nil)).Apply(tenancy.Scope(ctx)).Count(ctx)
				return result{n: n}, err
			}},
			{"exists A's id", func(ctx context.Context, db bun.IDB) (result, error) {
				ok, err := db.NewSelect().Model((*widget)(nil)).Where("w.id = ?", wa).Exists(ctx)
				if ok {
					return result{names: []string{"secret-a"}}, err
				}
				return result{}, err
			}},
			{"scan and count", func(ctx context.Context, db bun.IDB) (result, error) {
				var ws []widget
				n, err := db.NewSelect().Model(&ws).ScanAndCount(ctx)
				r := names(ws)
				r.n = n
				return r, err
			}},
			{"subquery in FROM", func(ctx context.Context, db bun.IDB) (result, error) {
				var ns []string
				err := db.NewSelect().TableExpr("(?) AS s", db.NewSelect().Model((*widget)(nil)).Column("name")).Column("s.name").Scan(ctx, &ns)
				return result{names: ns}, err
			}},
			{"subquery in WHERE", func(ctx context.Context, db bun.IDB) (result, error) {
				var ws []widget
				err := db.NewSelect().Model(&ws).Where("w.name IN (?)", db.NewSelect().Model((*widget)(nil)).Column("name")).
					Column("w.name").ColumnExpr("(SELECT max(name) FROM test_widgets) AS size").Scan(ctx)
				return names(ws), err
			}},
			{"where exists", func(ctx context.Context, db bun.IDB) (result, error) {
				var ws []widget
				err := db.NewSelect().Model(&ws).Where("EXISTS (?)", db.NewRaw("SELECT 1 FROM test_widgets x WHERE x.name = 'secret-a'")).Scan(ctx)
				return names(ws), err
			}},
			{"union", func(ctx context.Context, db bun.IDB) (result, error) {
				var ns []string
				err := db.NewSelect().Model((*widget)(nil)).Column("name").
					Union(db.NewSelect().Model((*widget)(nil)).Column("name")).Scan(ctx, &ns)
				return result{names: ns}, err
			}},
			{"union all of a table", func(ctx context.Context, db bun.IDB) (result, error) {
				var ns []string
				err := db.NewSelect().Model((*widget)(nil)).Column("name").
					UnionAll(db.NewSelect().Table("test_widgets").Column("name")).Scan(ctx, &ns)
				return result{names: ns}, err
			}},
			{"cte", func(ctx context.Context, db bun.IDB) (result, error) {
				var ns []string
				err := db.NewSelect().With("x", db.NewSelect().Model((*widget)(nil)).Column("name", "tenant_id")).
					Table("x").Column("name").Where("x.tenant_id = ?", b).Scan(ctx, &ns)
				return result{names: ns}, err
			}},
			{"join", func(ctx context.Context, db bun.IDB) (result, error) {
				var ns []string
				err := db.NewSelect().Model((*widget)(nil)).Join("JOIN test_widgets AS o ON o.id <> w.id").
					ColumnExpr("o.name").Scan(ctx, &ns)
				return result{names: ns}, err
			}},
			{"left join with the tenant", func(ctx context.Context, db bun.IDB) (result, error) {
				var ns []string
				err := db.NewSelect().Model((*widget)(nil)).Join("LEFT JOIN test_gadgets AS g ON g.widget_id = w.id").
					JoinOn("g.tenant_id = w.tenant_id").ColumnExpr("g.label").Scan(ctx, &ns)
				return result{names: ns}, err
			}},
			{"relation belongs-to", func(ctx context.Context, db bun.IDB) (result, error) {
				var gs []gadget
				err := db.NewSelect().Model(&gs).Relation("Widget").Scan(ctx)
				var r result
				for _, g := range gs {
					r.names = append(r.names, g.Label)
					if g.Widget != nil {
						r.names = append(r.names, g.Widget.Name)
					}
				}
				return r, err
			}},
			{"relation has-many", func(ctx context.Context, db bun.IDB) (result, error) {
				var ws []widget
				err := db.NewSelect().Model(&ws).Relation("Gadgets").Scan(ctx)
				r := names(ws)
				for _, w := range ws {
					for _, g := range w.Gadgets {
						r.names = append(r.names, g.Label)
					}
				}
				return r, err
			}},
			{"window", func(ctx context.Context, db bun.IDB) (result, error) {
				var ns []string
				err := db.NewSelect().Model((*widget)(nil)).ColumnExpr("max(w.name) OVER ()").Scan(ctx, &ns)
				return result{names: ns}, err
			}},
			{"window over a raw table", func(ctx context.Context, db bun.IDB) (result, error) {
				var ns []string
				err := db.NewSelect().Table("test_widgets").ColumnExpr("max(name) OVER ()").Where("tenant_id = ? OR size > 0", b).Scan(ctx, &ns)
				return result{names: ns}, err
			}},
			{"raw", func(ctx context.Context, db bun.IDB) (result, error) {
				var ns []string
				err := db.NewRaw("SELECT name FROM test_widgets").Scan(ctx, &ns)
				return result{names: ns}, err
			}},
			{"raw quoted and aliased", func(ctx context.Context, db bun.IDB) (result, error) {
				var ns []string
				err := db.NewRaw(`SELECT "X".name FROM "test_widgets" AS "X" WHERE "x".tenant_id = ?`, b).Scan(ctx, &ns)
				return result{names: ns}, err
			}},
			{"closing bun's parentheses", func(ctx context.Context, db bun.IDB) (result, error) {
				var ws []widget
				err := db.NewSelect().Model(&ws).Where("1 = 1) OR (1 = 1").Scan(ctx)
				return names(ws), err
			}},
			{"top-level or", func(ctx context.Context, db bun.IDB) (result, error) {
				var ws []widget
				err := db.NewSelect().Model(&ws).Where("w.name = 'secret-a'").WhereOr("1 = 0").Scan(ctx)
				return names(ws), err
			}},
			{"model table expression", func(ctx context.Context, db bun.IDB) (result, error) {
				var ws []widget
				err := db.NewSelect().Model(&ws).ModelTableExpr("(SELECT * FROM test_widgets) AS w").Scan(ctx)
				return names(ws), err
			}},
			{"returning", func(ctx context.Context, db bun.IDB) (result, error) {
				var ns []string
				err := db.NewUpdate().Model((*widget)(nil)).Set("size = size").Where("w.id = ?", "wb-"+b).
					Returning("(SELECT max(name) FROM test_widgets)").Scan(ctx, &ns)
				return result{names: ns}, err
			}},
			{"bulk update", func(ctx context.Context, db bun.IDB) (result, error) {
				_, err := db.NewUpdate().Model((*widget)(nil)).Set("size = 9").Where("1 = 1").Exec(ctx)
				return result{}, err
			}},
			{"bulk update from", func(ctx context.Context, db bun.IDB) (result, error) {
				var ns []string
				err := db.NewUpdate().Model((*widget)(nil)).TableExpr("test_widgets AS o").Set("name = o.name").
					Where("o.id = ?", wa).Returning("w.name").Scan(ctx, &ns)
				return result{names: ns}, err
			}},
			{"bulk delete", func(ctx context.Context, db bun.IDB) (result, error) {
				_, err := db.NewDelete().Model((*widget)(nil)).Where("w.name = 'secret-a'").Exec(ctx)
				return result{}, err
			}},
			{"delete using", func(ctx context.Context, db bun.IDB) (result, error) {
				_, err := db.NewRaw("DELETE FROM test_gadgets AS g USING test_widgets AS o WHERE g.tenant_id = ? AND o.id = ?", b, wa).Exec(ctx)
				return result{}, err
			}},
			{"insert select", func(ctx context.Context, db bun.IDB) (result, error) {
				_, err := db.NewRaw("INSERT INTO test_widgets (tenant_id, id, name, size) SELECT ?, 'copy-' || id, name, size FROM test_widgets WHERE id = ?", b, wa).Exec(ctx)
				return result{}, err
			}},
			{"insert naming another tenant", func(ctx context.Context, db bun.IDB) (result, error) {
				_, err := db.NewInsert().Model(&widget{Owned: tenancy.Owned{TenantID: a}, ID: "planted", Name: "planted", Size: 1}).Exec(ctx)
				return result{}, err
			}},
			{"upsert onto A's id", func(ctx context.Context, db bun.IDB) (result, error) {
				_, err := db.NewInsert().Model(&widget{ID: wa, Name: "stolen", Size: 1}).On("CONFLICT (id) DO UPDATE").Set("tenant_id = EXCLUDED.tenant_id").Exec(ctx)
				return result{}, err
			}},
			{"set_config", func(ctx context.Context, db bun.IDB) (result, error) {
				_, err := db.NewRaw("SELECT set_config(?, ?, true)", "app.tenant_id", a).Exec(ctx)
				return result{}, err
			}},
		}
		for _, c := range cases {
			for _, inTx := range []bool{true, false} {
				var r result
				var err error
				if inTx {
					err = tenancy.RunInTx(as(b), db, nil, func(ctx context.Context, tx bun.Tx) error {
						var err error
						r, err = c.run(ctx, tx)
						return err
					})
				} else {
					r, err = c.run(as(b), db)
				}
				for _, n := range r.names {
					require.NotContains(t, n, "secret-a", "%s (in a transaction: %v) read A's row", c.name, inTx)
				}
				require.LessOrEqual(t, r.n, int64(1), "%s (in a transaction: %v) counted A's row", c.name, inTx)
				if err != nil && !strings.Contains(err.Error(), "tenancy") && db.Name == "sqlite" {
					t.Errorf("%s (in a transaction: %v): not refused by the Guard: %v", c.name, inTx, err)
				}
			}
		}
		seen, err := execAs(db.Owner, a, "SELECT id || ':' || name || ':' || size FROM test_widgets WHERE tenant_id = '"+a+"' ORDER BY id")
		require.NoError(t, err)
		require.Equal(t, wa+":secret-a:1", seen, "A's rows are as they were")
		seen, err = execAs(db.Owner, a, "SELECT label FROM test_gadgets WHERE tenant_id = '"+a+"'")
		require.NoError(t, err)
		require.Equal(t, "secret-a", seen)
	})
}

func names(ws []widget) struct {
	names []string
	n     int64
} {
	var r struct {
		names []string
		n     int64
	}
	for _, w := range ws {
		r.names = append(r.names, w.Name)
	}
	return r
}

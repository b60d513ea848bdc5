package tenancy_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestIsolationProperty runs 10,000 random operations on widgets and gadgets
// of three tenants, from random tenants, and checks each result against a
// model of who owns what: no operation may return, change or delete another
// tenant's row, and every operation without a tenant must fail with
// ErrNoTenant. About a third of the operations are query shapes that
// bypass the model hooks (see shapeOp) — subqueries, unions, CTEs, joins,
// RETURNING, Count/Exists/Rows, tenant_id assignments, upserts, REPLACE —
// either confined to the tenant, which must work, or not, which the Guard
// must refuse.
//
// Under the race detector, which slows every statement several times, it
// runs 3,000 operations (a new seed each run).
func TestIsolationProperty(t *testing.T) {
	ops := 10_000
	if raceEnabled {
		ops = 3_000
	}
	each(t, func(t *testing.T, db *dbtest.DB) {
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, 1))
		tenants := []string{tenancy.NewID(), tenancy.NewID(), tenancy.NewID()}

		type row struct {
			tenant, name string
			kind         string // "widget" or "gadget"
		}
		model := map[string]row{} // id -> row
		var ids []string          // every id ever created, deleted ones too

		pickID := func() string {
			if len(ids) == 0 || rng.IntN(20) == 0 {
				return tenancy.NewID() // an id nobody has
			}
			return ids[rng.IntN(len(ids))]
		}
		run := func(ctx context.Context, fn func(ctx context.Context, db bun.IDB) error) error {
			return in(ctx, db, func(db bun.IDB) error { return fn(ctx, db) })
		}
		counts := map[string]int{}
		seen := 0 // other tenants' rows any operation returned
		for i := range ops {
			tenant := tenants[rng.IntN(len(tenants))]
			ctx := as(tenant)
			noTenant := rng.IntN(15) == 0
			if noTenant {
				ctx = context.Background()
			}
			kind := []string{"widget", "gadget"}[rng.IntN(2)]
			op := []string{"create", "create", "get", "list", "update", "delete", "bulk", "shape", "shape", "shape", "shape"}[rng.IntN(11)]
			counts[op]++
			name := fmt.Sprintf("n%d", i)
			var err error
			switch op {
			case "shape":
				mine := func(r row) bool { return r.tenant == tenant }
				var own, foreign []string // ids
				for _, id := range ids {
					if r, ok := model[id]; ok && r.kind == "widget" && mine(r) {
						own = append(own, id)
					} else if ok && r.kind == "widget" {
						foreign = append(foreign, id)
					}
				}
				sh := shapes[rng.IntN(len(shapes))]
				scoped := rng.IntN(2) == 0 && sh.scoped != nil
				counts["shape "+sh.name]++
				var res shapeResult
				err = run(ctx, func(ctx context.Context, db bun.IDB) error {
					var err error
					if scoped {
						res, err = sh.scoped(ctx, db, shapeArgs{rng: rng, own: own, foreign: foreign, name: name, tenant: tenant, others: tenants})
					} else {
						res, err = sh.attack(ctx, db, shapeArgs{rng: rng, own: own, foreign: foreign, name: name, tenant: tenant, others: tenants})
					}
					return err
				})
				if noTenant {
					break
				}
				for _, n := range res.names {
					if n == "" {
						continue // NULL: a subquery that found nothing
					}
					found := false
					for _, r := range model {
						if r.name == n && mine(r) {
							found = true
						}
					}
					if !found {
						seen++
					}
				}
				if res.count > 0 {
					want := 0
					for _, r := range model {
						if mine(r) && r.kind == res.countKind {
							want++
						}
					}
					if res.count > want {
						seen += res.count - want
					}
				}
				require.Zero(t, seen, "op %d: shape %s (scoped %v) showed other tenants' rows", i, sh.name, scoped)
				if !scoped {
					require.ErrorIs(t, err, tenancy.ErrUnscoped, "op %d: shape %s not refused", i, sh.name)
					break
				}
				if res.mayFail && err != nil {
					break
				}
				require.NoError(t, err, "op %d: shape %s scoped", i, sh.name)
				for id, name := range res.renamed {
					r := model[id]
					require.True(t, mine(r), "op %d: %s renamed another tenant's row", i, sh.name)
					if name == "" {
						name = r.name + "f"
					}
					r.name = name
					model[id] = r
				}
			case "create":
				id := tenancy.NewID()
				if kind == "widget" {
					err = run(ctx, func(ctx context.Context, db bun.IDB) error {
						_, err := db.NewInsert().Model(&widget{ID: id, Name: name, Size: i}).Exec(ctx)
						return err
					})
				} else {
					err = run(ctx, func(ctx context.Context, db bun.IDB) error {
						_, err := db.NewInsert().Model(&gadget{ID: id, WidgetID: pickID(), Label: name}).Exec(ctx)
						return err
					})
				}
				if err == nil {
					model[id] = row{tenant: tenant, name: name, kind: kind}
					ids = append(ids, id)
				}
			case "get":
				id := pickID()
				var got string
				if kind == "widget" {
					w := &widget{ID: id}
					err = run(ctx, func(ctx context.Context, db bun.IDB) error { return db.NewSelect().Model(w).WherePK().Scan(ctx) })
					got = w.Name
					require.True(t, err != nil || w.TenantID == tenant, "op %d: got a row of tenant %s", i, w.TenantID)
				} else {
					g := &gadget{ID: id}
					err = run(ctx, func(ctx context.Context, db bun.IDB) error { return db.NewSelect().Model(g).WherePK().Scan(ctx) })
					got = g.Label
					require.True(t, err != nil || g.TenantID == tenant, "op %d: got a row of tenant %s", i, g.TenantID)
				}
				if noTenant {
					break
				}
				want, ok := model[id]
				if ok && want.tenant == tenant && want.kind == kind {
					require.NoError(t, err, "op %d: own row", i)
					require.Equal(t, want.name, got, "op %d", i)
				} else {
					require.ErrorIs(t, err, sql.ErrNoRows, "op %d: %s %s of %s read from %s", i, kind, id, want.tenant, tenant)
				}
			case "list":
				var names []string
				err = run(ctx, func(ctx context.Context, db bun.IDB) error {
					if kind == "widget" {
						var ws []widget
						err := db.NewSelect().Model(&ws).Scan(ctx)
						for _, w := range ws {
							names = append(names, w.Name)
						}
						return err
					}
					var gs []gadget
					err := db.NewSelect().Model(&gs).Scan(ctx)
					for _, g := range gs {
						names = append(names, g.Label)
					}
					return err
				})
				if noTenant {
					break
				}
				require.NoError(t, err)
				var want []string
				for _, r := range model {
					if r.tenant == tenant && r.kind == kind {
						want = append(want, r.name)
					}
				}
				require.ElementsMatch(t, want, names, "op %d: list %s of %s", i, kind, tenant)
			case "update", "delete":
				id := pickID()
				var n int64
				n, err = exec(ctx, db, func(db bun.IDB) (sql.Result, error) {
					switch {
					case op == "update" && kind == "widget":
						return db.NewUpdate().Model(&widget{ID: id, Name: name}).Column("name").WherePK().Exec(ctx)
					case op == "update":
						return db.NewUpdate().Model(&gadget{ID: id, Label: name}).Column("label").WherePK().Exec(ctx)
					case kind == "widget":
						return db.NewDelete().Model(&widget{ID: id}).WherePK().Exec(ctx)
					default:
						return db.NewDelete().Model(&gadget{ID: id}).WherePK().Exec(ctx)
					}
				})
				if noTenant {
					break
				}
				require.NoError(t, err, "op %d", i)
				want, ok := model[id]
				mine := ok && want.tenant == tenant && want.kind == kind
				require.Equal(t, mine, n == 1, "op %d: %s of %s's %s from %s changed %d rows", i, op, want.tenant, kind, tenant, n)
				if mine && op == "update" {
					want.name = name
					model[id] = want
				} else if mine {
					delete(model, id)
				}
			case "bulk":
				// Rename every row of the kind whose name ends in a digit d.
				d := rng.IntN(10)
				var n int64
				n, err = exec(ctx, db, func(db bun.IDB) (sql.Result, error) {
					if kind == "widget" {
						return db.NewUpdate().Model((*widget)(nil)).Set("name = name || 'b'").Where("name LIKE ?", fmt.Sprintf("%%%d", d)).Exec(ctx)
					}
					return db.NewUpdate().Model((*gadget)(nil)).Set("label = label || 'b'").Where("label LIKE ?", fmt.Sprintf("%%%d", d)).Exec(ctx)
				})
				if noTenant {
					break
				}
				require.NoError(t, err)
				var want int64
				for _, id := range slices.Sorted(maps.Keys(model)) {
					r := model[id]
					if r.tenant == tenant && r.kind == kind && r.name[len(r.name)-1] == byte('0'+d) {
						r.name += "b"
						model[id] = r
						want++
					}
				}
				require.Equal(t, want, n, "op %d: bulk update touched other tenants' rows", i)
			}
			if noTenant {
				require.True(t, errors.Is(err, tenancy.ErrNoTenant), "op %d: %s %s without tenant: %v", i, op, kind, err)
			}
		}
		t.Logf("ops: %v", counts)
		require.Zero(t, seen, "foreign rows seen")

		// Finally, through a handle without hooks, every row is where the
		// model says, and nothing else exists.
		raw := db.Reopen(t)
		for _, tenant := range tenants {
			type dbRow struct {
				TenantID, ID, Name, Kind string
			}
			var rows []dbRow
			require.NoError(t, tenancy.RunInTx(as(tenant), raw, nil, func(ctx context.Context, tx bun.Tx) error {
				return tx.NewRaw(`SELECT tenant_id, id, name, 'widget' AS kind FROM test_widgets WHERE tenant_id = ?
					UNION ALL SELECT tenant_id, id, label, 'gadget' FROM test_gadgets WHERE tenant_id = ?`, tenant, tenant).Scan(ctx, &rows)
			}))
			want := 0
			for _, r := range model {
				if r.tenant == tenant {
					want++
				}
			}
			require.Len(t, rows, want)
			for _, r := range rows {
				m, ok := model[r.ID]
				require.True(t, ok, "row %s exists but the model deleted it", r.ID)
				require.Equal(t, row{tenant: r.TenantID, name: r.Name, kind: r.Kind}, m)
			}
		}
		if db.Name == "sqlite" { // no row-level security: the raw handle sees every tenant
			var total int
			require.NoError(t, raw.NewRaw("SELECT (SELECT count(*) FROM test_widgets) + (SELECT count(*) FROM test_gadgets)").Scan(context.Background(), &total))
			require.Equal(t, len(model), total, "no row exists outside the three tenants")
		}
	})
}

// shapeArgs are what a shape needs: the acting tenant's live ids and every
// other tenant's, a fresh name, and the three tenants.
type shapeArgs struct {
	rng          *rand.Rand
	own, foreign []string
	name, tenant string
	others       []string
}

func (a shapeArgs) pick(ids []string) string {
	if len(ids) == 0 {
		return tenancy.NewID()
	}
	return ids[a.rng.IntN(len(ids))]
}

// any picks an id of the tenant's or of another's.
func (a shapeArgs) any() string {
	if a.rng.IntN(2) == 0 {
		return a.pick(a.own)
	}
	return a.pick(a.foreign)
}

func (a shapeArgs) other() string {
	for {
		if t := a.others[a.rng.IntN(len(a.others))]; t != a.tenant {
			return t
		}
	}
}

// shapeResult is what a shape returned: names of widgets or labels of
// gadgets, or a count of widgets or gadgets, and rows it renamed.
type shapeResult struct {
	names     []string
	count     int
	countKind string
	renamed   map[string]string // id -> new name
	mayFail   bool              // a scoped shape that may fail without harm (a key taken by another tenant)
}

// shape is a query form that bun runs without (or beyond) the model hooks:
// attack leaves some reference to a tenant-owned table unconfined, scoped
// confines every one (nil: no confined form exists).
type shape struct {
	name           string
	attack, scoped func(ctx context.Context, db bun.IDB, a shapeArgs) (shapeResult, error)
}

func gadgetLabels(db bun.IDB) *bun.SelectQuery {
	return db.NewSelect().Model((*gadget)(nil)).Column("label")
}

var shapes = []shape{
	{name: "column subquery",
		attack: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			err = db.NewSelect().Model((*widget)(nil)).ColumnExpr("(?)", gadgetLabels(db).OrderExpr("label").Limit(1)).Scan(ctx, &r.names)
			return r, err
		},
		scoped: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			err = db.NewSelect().Model((*widget)(nil)).ColumnExpr("(?)", gadgetLabels(db).Apply(tenancy.Scope(ctx)).OrderExpr("label").Limit(1)).Scan(ctx, &r.names)
			return r, err
		}},
	{name: "where exists",
		attack: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			err = db.NewSelect().Model((*widget)(nil)).Column("name").
				Where("EXISTS (?)", db.NewSelect().Model((*gadget)(nil)).ColumnExpr("1").Where("g.widget_id = w.id")).Scan(ctx, &r.names)
			return r, err
		},
		scoped: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			err = db.NewSelect().Model((*widget)(nil)).Column("name").
				Where("EXISTS (?)", db.NewSelect().Model((*gadget)(nil)).ColumnExpr("1").Where("g.widget_id = w.id").Apply(tenancy.Scope(ctx))).Scan(ctx, &r.names)
			return r, err
		}},
	{name: "union",
		attack: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			err = db.NewSelect().Model((*widget)(nil)).Column("name").Apply(tenancy.Scope(ctx)).Union(gadgetLabels(db)).Scan(ctx, &r.names)
			return r, err
		},
		scoped: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			err = db.NewSelect().Model((*widget)(nil)).Column("name").Apply(tenancy.Scope(ctx)).UnionAll(gadgetLabels(db).Apply(tenancy.Scope(ctx))).Scan(ctx, &r.names)
			return r, err
		}},
	{name: "union all",
		attack: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			err = db.NewSelect().Model((*widget)(nil)).Column("name").Apply(tenancy.Scope(ctx)).UnionAll(db.NewSelect().Model((*widget)(nil)).Column("name")).Scan(ctx, &r.names)
			return r, err
		}},
	{name: "with",
		attack: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			err = db.NewSelect().With("x", gadgetLabels(db)).Table("x").Column("label").Scan(ctx, &r.names)
			return r, err
		},
		scoped: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			err = db.NewSelect().With("x", gadgetLabels(db).Apply(tenancy.Scope(ctx))).Table("x").Column("label").Scan(ctx, &r.names)
			return r, err
		}},
	{name: "join",
		attack: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			err = db.NewSelect().Model((*widget)(nil)).ColumnExpr("g2.label").Join("JOIN test_gadgets AS g2 ON g2.widget_id = w.id").Apply(tenancy.Scope(ctx)).Scan(ctx, &r.names)
			return r, err
		},
		scoped: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			err = db.NewSelect().Model((*widget)(nil)).ColumnExpr("g2.label").Join("JOIN test_gadgets AS g2 ON g2.widget_id = w.id AND g2.tenant_id = w.tenant_id").Apply(tenancy.Scope(ctx)).Scan(ctx, &r.names)
			return r, err
		}},
	{name: "returning subquery",
		attack: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			err = db.NewUpdate().Model((*widget)(nil)).Set("size = size").Where("id = ?", a.pick(a.own)).
				Returning("(?)", db.NewSelect().TableExpr("test_widgets AS o").Column("o.name").Where("o.id = ?", a.pick(a.foreign))).Scan(ctx, &r.names)
			return r, err
		},
		scoped: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			err = db.NewUpdate().Model((*widget)(nil)).Set("size = size").Where("id = ?", a.any()).
				Returning("(?)", db.NewSelect().TableExpr("test_widgets AS o").Column("o.name").Where("o.id = ?", a.any()).Where("o.tenant_id = ?", a.tenant)).Scan(ctx, &r.names)
			return r, err
		}},
	{name: "count",
		attack: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			n, err := db.NewSelect().Model((*widget)(nil)).Count(ctx)
			return shapeResult{count: int(n), countKind: "widget"}, err
		},
		scoped: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			n, err := db.NewSelect().Model((*gadget)(nil)).Apply(tenancy.Scope(ctx)).Count(ctx)
			return shapeResult{count: int(n), countKind: "gadget"}, err
		}},
	{name: "count beside a scoped subquery",
		attack: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			n, err := db.NewSelect().Model((*widget)(nil)).Where("id NOT IN (?)", db.NewSelect().Model((*gadget)(nil)).Column("widget_id").Apply(tenancy.Scope(ctx))).Count(ctx)
			return shapeResult{count: int(n), countKind: "widget"}, err
		}},
	{name: "exists",
		attack: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			_, err = db.NewSelect().Model((*widget)(nil)).Where("id = ?", a.pick(a.foreign)).Exists(ctx)
			return r, err
		},
		scoped: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			_, err = db.NewSelect().Model((*widget)(nil)).Where("id = ?", a.any()).Apply(tenancy.Scope(ctx)).Exists(ctx)
			return r, err
		}},
	{name: "rows",
		attack: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			return rowsNames(ctx, db.NewSelect().Model((*widget)(nil)).Column("name"))
		},
		scoped: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			return rowsNames(ctx, db.NewSelect().Model((*widget)(nil)).Column("name").Apply(tenancy.Scope(ctx)))
		}},
	{name: "set tuple with tenant_id",
		attack: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			_, err = db.NewUpdate().Model((*widget)(nil)).Set("(tenant_id, name) = (?, ?)", a.other(), a.name).Where("id = ?", a.pick(a.own)).Exec(ctx)
			return r, err
		},
		scoped: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			id := a.any()
			res, err := db.NewUpdate().Model((*widget)(nil)).Set("name = ?", a.name).Where("id = ?", id).Exec(ctx)
			return renamed(res, err, id, a.name)
		}},
	{name: "update from",
		attack: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			_, err = db.NewUpdate().Model((*widget)(nil)).TableExpr("test_widgets AS c2").Set("tenant_id = c2.tenant_id").
				Where("w.id = ?", a.pick(a.own)).Where("c2.id = ?", a.pick(a.foreign)).Exec(ctx)
			return r, err
		},
		scoped: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			id := a.any()
			res, err := db.NewUpdate().Model((*widget)(nil)).TableExpr("test_widgets AS c2").Set("name = c2.name || 'f'").
				Where("w.id = ?", id).Where("c2.id = w.id").Where("c2.tenant_id = w.tenant_id").Exec(ctx)
			return renamed(res, err, id, "")
		}},
	{name: "upsert on id",
		attack: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			_, err = db.NewInsert().Model(&widget{ID: a.pick(a.foreign), Name: a.name}).On("CONFLICT (id) DO UPDATE").Set("name = EXCLUDED.name").Exec(ctx)
			return r, err
		},
		scoped: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			if len(a.own) == 0 {
				_, err := db.NewSelect().Model((*widget)(nil)).Apply(tenancy.Scope(ctx)).Count(ctx)
				return r, err
			}
			id := a.pick(a.own)
			res, err := db.NewInsert().Model(&widget{ID: id, Name: a.name}).On("CONFLICT (tenant_id, id) DO UPDATE").Set("name = EXCLUDED.name").Exec(ctx)
			return renamed(res, err, id, a.name)
		}},
	{name: "second on conflict",
		attack: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			_, err = db.NewInsert().Model(&widget{ID: a.pick(a.foreign), Name: a.name}).On("CONFLICT (tenant_id, id) DO NOTHING ON CONFLICT (id) DO UPDATE").Set("name = EXCLUDED.name").Exec(ctx)
			return r, err
		}},
	{name: "replace",
		attack: func(ctx context.Context, db bun.IDB, a shapeArgs) (r shapeResult, err error) {
			_, err = db.NewInsert().Model(&widget{ID: a.pick(a.foreign), Name: a.name}).Replace().Exec(ctx)
			return r, err
		}},
}

// renamed reports the rename an update made: the row id is renamed to name
// (or its own name with "f" appended when name is empty) if a row changed.
func renamed(res sql.Result, err error, id, name string) (shapeResult, error) {
	if err != nil {
		return shapeResult{}, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return shapeResult{}, nil
	}
	return shapeResult{renamed: map[string]string{id: name}}, nil
}

func rowsNames(ctx context.Context, q *bun.SelectQuery) (r shapeResult, err error) {
	rows, err := q.Rows(ctx)
	if err != nil {
		return r, err
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return r, err
		}
		r.names = append(r.names, n)
	}
	return r, rows.Err()
}

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
// ErrNoTenant.
func TestIsolationProperty(t *testing.T) {
	const ops = 10_000
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
		for i := range ops {
			tenant := tenants[rng.IntN(len(tenants))]
			ctx := as(tenant)
			noTenant := rng.IntN(15) == 0
			if noTenant {
				ctx = context.Background()
			}
			kind := []string{"widget", "gadget"}[rng.IntN(2)]
			op := []string{"create", "create", "get", "list", "update", "delete", "bulk"}[rng.IntN(7)]
			counts[op]++
			name := fmt.Sprintf("n%d", i)
			var err error
			switch op {
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

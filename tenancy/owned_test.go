package tenancy_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// in runs fn inside tenancy.RunInTx for ctx's tenant, as every tenant-owned
// access must on PostgreSQL, where row-level security shows nothing outside
// it. Without a tenant, fn runs on db directly, so the test sees the hooks'
// own refusal.
func in(ctx context.Context, db bun.IDB, fn func(db bun.IDB) error) error {
	if _, err := tenancy.TenantID(ctx); err != nil {
		return fn(db)
	}
	return tenancy.RunInTx(ctx, db, nil, func(_ context.Context, tx bun.Tx) error { return fn(tx) })
}

// exec runs q's statement through in and returns its rows affected.
func exec(ctx context.Context, db bun.IDB, q func(db bun.IDB) (sql.Result, error)) (int64, error) {
	var n int64
	err := in(ctx, db, func(db bun.IDB) error {
		res, err := q(db)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

func insert(ctx context.Context, db bun.IDB, model any) error {
	_, err := exec(ctx, db, func(db bun.IDB) (sql.Result, error) { return db.NewInsert().Model(model).Exec(ctx) })
	return err
}

func TestOwnedScopesEveryModelQuery(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		ctxA, ctxB := as(a), as(b)
		noTenant := context.Background()

		w := &widget{ID: tenancy.NewID(), Name: "a-widget", Size: 1}
		require.ErrorIs(t, insert(noTenant, db, w), tenancy.ErrNoTenant, "insert without tenant")
		require.NoError(t, insert(ctxA, db, w))
		require.Equal(t, a, w.TenantID, "insert stamps the tenant")

		// A row naming another tenant is refused, not moved.
		stolen := &widget{ID: tenancy.NewID(), Name: "x", Owned: tenancy.Owned{TenantID: a}}
		require.ErrorIs(t, insert(ctxB, db, stolen), tenancy.ErrTenantMismatch)

		// Slice inserts are stamped row by row.
		ws := []*widget{{ID: tenancy.NewID(), Name: "b1", Size: 2}, {ID: tenancy.NewID(), Name: "b2", Size: 3}}
		require.NoError(t, insert(ctxB, db, &ws))
		require.Equal(t, b, ws[0].TenantID)
		require.Equal(t, b, ws[1].TenantID)

		// Select by primary key from the other tenant finds nothing.
		get := func(ctx context.Context, w *widget) error {
			return in(ctx, db, func(db bun.IDB) error { return db.NewSelect().Model(w).WherePK().Scan(ctx) })
		}
		got := &widget{ID: w.ID}
		require.ErrorIs(t, get(ctxB, got), sql.ErrNoRows, "B must not read A's widget")
		require.ErrorIs(t, get(noTenant, got), tenancy.ErrNoTenant)
		require.NoError(t, get(ctxA, got))
		require.Equal(t, "a-widget", got.Name)

		var list []widget
		var n int64
		require.NoError(t, in(ctxB, db, func(db bun.IDB) error {
			var err error
			n, err = db.NewSelect().Model(&list).Order("name").ScanAndCount(ctxB)
			return err
		}))
		require.Len(t, list, 2)
		require.EqualValues(t, 2, n)

		// Updates and deletes, single and bulk, stay in the tenant.
		rows, err := exec(ctxB, db, func(db bun.IDB) (sql.Result, error) {
			return db.NewUpdate().Model(&widget{ID: w.ID, Name: "hijacked"}).WherePK().Exec(ctxB)
		})
		require.NoError(t, err)
		require.Zero(t, rows)
		bulkUpdate := func(ctx context.Context) (int64, error) {
			return exec(ctx, db, func(db bun.IDB) (sql.Result, error) {
				return db.NewUpdate().Model((*widget)(nil)).Set("name = ?", "bulk").Where("1 = 1").Exec(ctx)
			})
		}
		bulkDelete := func(ctx context.Context) (int64, error) {
			return exec(ctx, db, func(db bun.IDB) (sql.Result, error) {
				return db.NewDelete().Model((*widget)(nil)).Where("1 = 1").Exec(ctx)
			})
		}
		rows, err = bulkUpdate(ctxB)
		require.NoError(t, err)
		require.EqualValues(t, 2, rows)
		_, err = bulkUpdate(noTenant)
		require.ErrorIs(t, err, tenancy.ErrNoTenant)
		_, err = bulkDelete(noTenant)
		require.ErrorIs(t, err, tenancy.ErrNoTenant)
		rows, err = bulkDelete(ctxB)
		require.NoError(t, err)
		require.EqualValues(t, 2, rows)

		require.NoError(t, get(ctxA, got))
		require.Equal(t, "a-widget", got.Name, "A's widget survived B's bulk update and delete")

		// An update of a struct cannot move it to another tenant.
		got.Owned.TenantID = b
		_, err = exec(ctxA, db, func(db bun.IDB) (sql.Result, error) { return db.NewUpdate().Model(got).WherePK().Exec(ctxA) })
		require.ErrorIs(t, err, tenancy.ErrTenantMismatch)
	})
}

func TestGuardStopsQueriesThatBypassHooks(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		ctxA, ctxB := as(a), as(b)
		for i, ctx := range []context.Context{ctxA, ctxA, ctxB} {
			require.NoError(t, insert(ctx, db, &widget{ID: tenancy.NewID(), Name: "w", Size: i}))
		}
		count := func(ctx context.Context, q func(db bun.IDB) *bun.SelectQuery) (int64, error) {
			var n int64
			err := in(ctx, db, func(db bun.IDB) error {
				var err error
				n, err = q(db).Count(ctx)
				return err
			})
			return n, err
		}
		widgets := func(db bun.IDB) *bun.SelectQuery { return db.NewSelect().Model((*widget)(nil)) }

		// bun runs Count, Exists and Rows without model hooks.
		_, err := count(ctxA, widgets)
		require.ErrorIs(t, err, tenancy.ErrUnscoped)
		_, err = count(context.Background(), widgets)
		require.ErrorIs(t, err, tenancy.ErrNoTenant)
		err = in(ctxA, db, func(db bun.IDB) error { _, err := widgets(db).Exists(ctxA); return err })
		require.ErrorIs(t, err, tenancy.ErrUnscoped)
		err = in(ctxA, db, func(db bun.IDB) error {
			rows, err := widgets(db).Rows(ctxA)
			if err == nil {
				rows.Close()
			}
			return err
		})
		require.ErrorIs(t, err, tenancy.ErrUnscoped)

		// Scope makes them legal, and right.
		n, err := count(ctxA, func(db bun.IDB) *bun.SelectQuery { return widgets(db).Apply(tenancy.Scope(ctxA)) })
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
		var exists bool
		require.NoError(t, in(ctxB, db, func(db bun.IDB) error {
			var err error
			exists, err = widgets(db).Apply(tenancy.Scope(ctxB)).Where("size = 0").Exists(ctxB)
			return err
		}))
		require.False(t, exists, "B has no widget of size 0")
		_, err = count(ctxA, func(db bun.IDB) *bun.SelectQuery { return widgets(db).Apply(tenancy.Scope(context.Background())) })
		require.ErrorIs(t, err, tenancy.ErrNoTenant)

		// ScanAndCount with a limit, outside a transaction, counts in a
		// concurrent query cloned before the hooks ran. (Inside one it reuses
		// the scoped query.)
		var ws []widget
		_, err = db.NewSelect().Model(&ws).Limit(1).ScanAndCount(ctxA)
		require.ErrorIs(t, err, tenancy.ErrUnscoped)
		require.NoError(t, in(ctxA, db, func(db bun.IDB) error {
			var err error
			n, err = db.NewSelect().Model(&ws).Limit(1).ScanAndCount(ctxA)
			return err
		}))
		require.EqualValues(t, 2, n)
		require.NoError(t, in(ctxA, db, func(db bun.IDB) error {
			var err error
			n, err = db.NewSelect().Model(&ws).Apply(tenancy.Scope(ctxA)).Limit(1).ScanAndCount(ctxA)
			return err
		}))
		require.EqualValues(t, 2, n)
		require.Len(t, ws, 1)

		// Raw queries must carry the predicate on the context's tenant.
		raw := func(ctx context.Context, query string, args ...any) (int64, error) {
			var n int64
			err := in(ctx, db, func(db bun.IDB) error { return db.NewRaw(query, args...).Scan(ctx, &n) })
			return n, err
		}
		_, err = raw(ctxA, "SELECT count(*) FROM test_widgets")
		require.ErrorIs(t, err, tenancy.ErrUnscoped)
		_, err = raw(ctxA, "SELECT count(*) FROM test_widgets WHERE tenant_id = ?", b)
		require.ErrorIs(t, err, tenancy.ErrUnscoped, "a predicate on another tenant is not a scope")
		_, err = exec(ctxA, db, func(db bun.IDB) (sql.Result, error) { return db.ExecContext(ctxA, "DELETE FROM test_widgets") })
		require.ErrorIs(t, err, tenancy.ErrUnscoped)
		_, err = db.ExecContext(context.Background(), "DELETE FROM test_widgets")
		require.ErrorIs(t, err, tenancy.ErrNoTenant)
		// A raw insert is judged as an insert: it must carry the tenant's id.
		rawInsert := func(ctx context.Context, tenant string) error {
			_, err := exec(ctx, db, func(db bun.IDB) (sql.Result, error) {
				return db.ExecContext(ctx, "INSERT INTO test_widgets (tenant_id, id, name, size) VALUES (?, ?, 'raw', 9)", tenant, tenancy.NewID())
			})
			return err
		}
		require.NoError(t, rawInsert(ctxA, a))
		require.ErrorIs(t, rawInsert(ctxA, b), tenancy.ErrUnscoped, "a raw insert for another tenant")
		_, err = exec(ctxA, db, func(db bun.IDB) (sql.Result, error) {
			return db.NewRaw("UPDATE test_widgets SET size = 10 WHERE size = 9").Exec(ctxA)
		})
		require.ErrorIs(t, err, tenancy.ErrUnscoped, "a raw update without the tenant predicate")
		_, err = exec(ctxA, db, func(db bun.IDB) (sql.Result, error) {
			return db.NewRaw("DELETE FROM test_widgets WHERE tenant_id = ? AND size = 9", a).Exec(ctxA)
		})
		require.NoError(t, err)
		n, err = raw(ctxA, "SELECT count(*) FROM test_widgets WHERE tenant_id = ?", a)
		require.NoError(t, err)
		require.EqualValues(t, 2, n)

		// Nothing was deleted by the refused statements.
		n, err = count(ctxB, func(db bun.IDB) *bun.SelectQuery { return widgets(db).Apply(tenancy.Scope(ctxB)) })
		require.NoError(t, err)
		require.EqualValues(t, 1, n)

		// A table whose name only starts like a tenant-owned one is not guarded.
		_, err = db.Owner.ExecContext(context.Background(), "CREATE TABLE test_widgets_archive (id TEXT)")
		require.NoError(t, err)
		dbtest.GrantApp(t, db)
		require.NoError(t, db.NewRaw("SELECT count(*) FROM test_widgets_archive").Scan(context.Background(), &n))
	})
}

func TestRelationsStayInTenant(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		ctxA, ctxB := as(a), as(b)
		wa := &widget{ID: tenancy.NewID(), Name: "wa"}
		require.NoError(t, insert(ctxA, db, wa))
		require.NoError(t, insert(ctxA, db, &gadget{ID: tenancy.NewID(), WidgetID: wa.ID, Label: "ga"}))
		// B plants a gadget pointing at A's widget id.
		require.NoError(t, insert(ctxB, db, &gadget{ID: tenancy.NewID(), WidgetID: wa.ID, Label: "planted"}))

		// has-many is loaded by a second query, which the hooks scope.
		var w widget
		require.NoError(t, in(ctxA, db, func(db bun.IDB) error {
			return db.NewSelect().Model(&w).Relation("Gadgets").Where("w.id = ?", wa.ID).Scan(ctxA)
		}))
		require.Len(t, w.Gadgets, 1)
		require.Equal(t, "ga", w.Gadgets[0].Label)

		// belongs-to is a join on tenant_id too: B's planted gadget does not
		// bring A's widget along.
		gadgets := func(ctx context.Context) []gadget {
			var gs []gadget
			require.NoError(t, in(ctx, db, func(db bun.IDB) error {
				return db.NewSelect().Model(&gs).Relation("Widget").Scan(ctx)
			}))
			return gs
		}
		gs := gadgets(ctxB)
		require.Len(t, gs, 1)
		require.Nil(t, gs[0].Widget, "B must not see A's widget through a join")
		gs = gadgets(ctxA)
		require.Len(t, gs, 1)
		require.NotNil(t, gs[0].Widget)
		require.Equal(t, "wa", gs[0].Widget.Name)
	})
}

// leaky joins a tenant-owned model without the tenant.
type leaky struct {
	bun.BaseModel `bun:"table:test_leaky,alias:lk"`
	tenancy.Owned
	ID       string  `bun:"id,pk"`
	WidgetID string  `bun:"widget_id"`
	Widget   *widget `bun:"rel:belongs-to,join:widget_id=id"`
}

func TestGuardRefusesRelationsWithoutTenant(t *testing.T) {
	db := dbtest.SQLite(t, setup)
	g, err := tenancy.InstallGuard(db.DB, (*leaky)(nil))
	require.ErrorIs(t, err, tenancy.ErrUnsafeRelation)
	require.Contains(t, err.Error(), "Widget")
	require.Contains(t, g.Tables(), "test_leaky")
	_, err = db.ExecContext(context.Background(), "CREATE TABLE test_leaky (tenant_id TEXT, id TEXT, widget_id TEXT)")
	require.NoError(t, err)
	var ls []leaky
	err = db.NewSelect().Model(&ls).Relation("Widget").Scan(as(tenancy.NewID()))
	require.ErrorIs(t, err, tenancy.ErrUnsafeRelation)
}

// TestOrCannotEscapeTheTenant: bun renders Where(a).WhereOr(b) without
// parentheses, so an appended tenant predicate would bind to b only.
func TestOrCannotEscapeTheTenant(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		ctxA := as(a)
		wb := &widget{ID: tenancy.NewID(), Name: "b-secret"}
		require.NoError(t, insert(as(b), db, wb))
		wa := &widget{ID: tenancy.NewID(), Name: "a-own"}
		require.NoError(t, insert(ctxA, db, wa))

		var ws []widget
		err := in(ctxA, db, func(db bun.IDB) error {
			return db.NewSelect().Model(&ws).Where("id = ?", wb.ID).WhereOr("name = ?", "x").Scan(ctxA)
		})
		require.ErrorIs(t, err, tenancy.ErrTopLevelOr)
		_, err = exec(ctxA, db, func(db bun.IDB) (sql.Result, error) {
			return db.NewUpdate().Model((*widget)(nil)).Set("name = 'pwned'").Where("id = ?", wb.ID).WhereOr("1 = 0").Exec(ctxA)
		})
		require.ErrorIs(t, err, tenancy.ErrTopLevelOr)
		_, err = exec(ctxA, db, func(db bun.IDB) (sql.Result, error) {
			return db.NewDelete().Model((*widget)(nil)).Where("id = ?", wb.ID).WhereGroup(" OR ", func(q *bun.DeleteQuery) *bun.DeleteQuery {
				return q.Where("1 = 0")
			}).Exec(ctxA)
		})
		require.ErrorIs(t, err, tenancy.ErrTopLevelOr, "an OR-joined group is a top-level OR too")
		_, err = db.NewSelect().Model((*widget)(nil)).Where("id = ?", wb.ID).WhereOr("1 = 1").Apply(tenancy.Scope(ctxA)).Count(ctxA)
		require.ErrorIs(t, err, tenancy.ErrTopLevelOr)

		// Grouped, the alternatives stay inside the tenant.
		require.NoError(t, in(ctxA, db, func(db bun.IDB) error {
			return db.NewSelect().Model(&ws).WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
				return q.Where("id = ?", wb.ID).WhereOr("name = ?", "a-own")
			}).Scan(ctxA)
		}))
		require.Len(t, ws, 1)
		require.Equal(t, "a-own", ws[0].Name)
	})
}

// TestGuardRefusesEscapes replays the ways a security review found past an
// earlier Guard: verbs it did not check, comments, identifier case, foreign
// tenant ids in SET, upserts across tenants, and resetting the tenant
// row-level security enforces.
func TestGuardRefusesEscapes(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		ctxA := as(a)
		wb := &widget{ID: tenancy.NewID(), Name: "b-secret"}
		require.NoError(t, insert(as(b), db, wb))
		require.NoError(t, insert(ctxA, db, &widget{ID: tenancy.NewID(), Name: "a-own"}))

		run := func(ctx context.Context, query string, args ...any) error {
			return in(ctx, db, func(db bun.IDB) error {
				_, err := db.ExecContext(ctx, query, args...)
				return err
			})
		}
		for _, c := range []struct {
			name, query string
			args        []any
		}{
			{"truncate", "TRUNCATE TABLE test_widgets", nil},
			{"leading line comment", "-- report\nDELETE FROM test_widgets", nil},
			{"leading block comment", "/* report */ DELETE FROM test_widgets", nil},
			{"upper-case name", "DELETE FROM TEST_WIDGETS", nil},
			{"quoted mixed-case name", `DELETE FROM "Test_Widgets"`, nil},
			{"predicate in a comment", "DELETE FROM test_widgets /* tenant_id = '" + a + "' */", nil},
			{"other tenant in SET", "UPDATE test_widgets SET tenant_id = ? WHERE tenant_id = ?", []any{b, a}},
			{"other tenant beside own", "UPDATE test_widgets SET name = 'x' WHERE tenant_id = ? OR tenant_id = ?", []any{a, b}},
			{"replace", "REPLACE INTO test_widgets (tenant_id, id, name, size) VALUES (?, ?, 'r', 0)", []any{a, wb.ID}},
			{"insert or replace", "INSERT OR REPLACE INTO test_widgets (tenant_id, id, name, size) VALUES (?, ?, 'r', 0)", []any{a, wb.ID}},
			{"create as select", "CREATE TABLE stolen AS SELECT * FROM test_widgets", nil},
			{"subquery in values", "SELECT (SELECT count(*) FROM test_widgets)", nil},
		} {
			require.ErrorIs(t, run(ctxA, c.query, c.args...), tenancy.ErrUnscoped, c.name)
		}
		require.ErrorIs(t, run(context.Background(), "/* x */ SELECT 1 FROM test_widgets"), tenancy.ErrNoTenant)

		// bun's own truncate on a tenant-owned model.
		_, err := exec(ctxA, db, func(db bun.IDB) (sql.Result, error) {
			return db.NewTruncateTable().Model((*widget)(nil)).Exec(ctxA)
		})
		require.ErrorIs(t, err, tenancy.ErrUnscoped)

		// An upsert whose conflict target lacks tenant_id would rewrite B's row.
		_, err = exec(ctxA, db, func(db bun.IDB) (sql.Result, error) {
			return db.NewInsert().Model(&widget{ID: wb.ID, Name: "overwritten"}).
				On("CONFLICT (id) DO UPDATE").Set("name = EXCLUDED.name").Exec(ctxA)
		})
		require.ErrorIs(t, err, tenancy.ErrUnscoped)
		_, err = exec(ctxA, db, func(db bun.IDB) (sql.Result, error) {
			return db.NewUpdate().Model((*widget)(nil)).Set("tenant_id = ?", b).Where("name = 'a-own'").Exec(ctxA)
		})
		require.ErrorIs(t, err, tenancy.ErrUnscoped, "a bulk update cannot move rows to another tenant")

		// Nobody but RunInTx chooses the tenant of row-level security.
		require.ErrorIs(t, run(ctxA, "SELECT set_config('app.tenant_id', ?, true)", b), tenancy.ErrUnscoped)
		_, err = db.ExecContext(context.Background(), "SET app.tenant_id = '"+b+"'")
		require.ErrorIs(t, err, tenancy.ErrUnscoped)

		// B's row is as it was.
		got := &widget{ID: wb.ID}
		require.NoError(t, in(as(b), db, func(db bun.IDB) error { return db.NewSelect().Model(got).WherePK().Scan(as(b)) }))
		require.Equal(t, "b-secret", got.Name)
		require.Equal(t, b, got.TenantID)
	})
}

func TestGuardStripsComments(t *testing.T) {
	for in, want := range map[string]string{
		"/* x */ SELECT 1":             "  SELECT 1",
		"SELECT 1 -- tail":             "SELECT 1  ",
		"SELECT '--not' /*c*/, 2":      "SELECT '--not'  , 2",
		"SELECT 'it''s /* no */' -- c": "SELECT 'it''s /* no */'  ",
		"SELECT 1 /* open":             "SELECT 1  ",
	} {
		require.Equal(t, want, tenancy.StripCommentsForTest(in), in)
	}
}

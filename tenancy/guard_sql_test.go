package tenancy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestGuardReadsStatements runs statements of every shape through the
// Guard as tenant A: the ones confined to A in every scope run, the others
// are refused with ErrUnscoped before they reach the database.
func TestGuardReadsStatements(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		wa, wb := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(a), db, &widget{ID: wa, Name: "a", Size: 1}))
		require.NoError(t, insert(as(b), db, &widget{ID: wb, Name: "b", Size: 2}))
		require.NoError(t, insert(as(a), db, &gadget{ID: tenancy.NewID(), WidgetID: wa, Label: "ga"}))

		allowed := []string{
			`SELECT count(*) FROM test_widgets AS w WHERE w.tenant_id = '{a}'`,
			`SELECT count(*) FROM test_widgets WHERE tenant_id = '{a}' AND size > 0`,
			`SELECT w.id, (SELECT count(*) FROM test_gadgets AS g WHERE g.widget_id = w.id AND g.tenant_id = w.tenant_id) FROM test_widgets AS w WHERE w.tenant_id = '{a}'`,
			`SELECT w.id FROM test_widgets AS w WHERE w.tenant_id = '{a}' AND EXISTS (SELECT 1 FROM test_gadgets AS g WHERE g.tenant_id = '{a}' AND g.widget_id = w.id)`,
			`SELECT id FROM test_widgets AS w WHERE w.tenant_id = '{a}' UNION SELECT id FROM test_gadgets AS g WHERE g.tenant_id = '{a}'`,
			`WITH mine AS (SELECT id FROM test_widgets AS w WHERE w.tenant_id = '{a}') SELECT count(*) FROM mine`,
			`SELECT g.id FROM test_gadgets AS g JOIN test_widgets AS w ON w.id = g.widget_id AND w.tenant_id = g.tenant_id WHERE g.tenant_id = '{a}'`,
			`SELECT g.id FROM test_gadgets AS g LEFT JOIN test_widgets AS w ON (w.id = g.widget_id) AND (w.tenant_id = g.tenant_id) WHERE (g.tenant_id = '{a}')`,
			`SELECT g.id FROM test_gadgets AS g WHERE (g.widget_id, g.tenant_id) IN (('{wa}', '{a}'), ('x', '{a}')) AND g.tenant_id IN ('{a}')`,
			`UPDATE test_widgets AS w SET name = 'x' WHERE w.tenant_id = '{a}' AND w.id = '{wa}' RETURNING (SELECT count(*) FROM test_gadgets AS g WHERE g.tenant_id = '{a}')`,
			`UPDATE test_widgets AS w SET tenant_id = '{a}', name = 'y' WHERE w.tenant_id = '{a}'`,
			`DELETE FROM test_gadgets AS g WHERE g.tenant_id = '{a}' AND g.id = 'nobody'`,
			`INSERT INTO test_widgets (tenant_id, id, name, size) VALUES ('{a}', '{new}', 'n', 1) ON CONFLICT (tenant_id, id) DO UPDATE SET name = EXCLUDED.name`,
			`INSERT INTO test_widgets (tenant_id, id, name, size) VALUES ('{a}', '{new}', 'n', 1) ON CONFLICT DO NOTHING`,
			`INSERT INTO test_widgets (tenant_id, id, name, size) VALUES ('{a}', '{wa}', 'n', 1) ON CONFLICT (tenant_id, id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, name = EXCLUDED.name`,
			`SELECT 1`,
			`ANALYZE test_widgets`,
		}
		refused := []string{
			`SELECT count(*) FROM test_widgets`,
			`SELECT count(*) FROM test_widgets AS w WHERE w.tenant_id = '{b}'`,
			`SELECT count(*) FROM test_widgets AS w WHERE w.tenant_id = '{a}' OR true`,
			`SELECT w.id, (SELECT count(*) FROM test_gadgets) FROM test_widgets AS w WHERE w.tenant_id = '{a}'`,
			`SELECT w.id FROM test_widgets AS w WHERE w.tenant_id = '{a}' AND EXISTS (SELECT 1 FROM test_widgets AS o WHERE o.name = 'b')`,
			`SELECT id FROM test_widgets AS w WHERE w.tenant_id = '{a}' UNION ALL SELECT id FROM test_widgets`,
			`WITH every AS (SELECT id FROM test_widgets) SELECT count(*) FROM test_widgets AS w WHERE w.tenant_id = '{a}' AND w.id IN (SELECT id FROM every)`,
			`SELECT w.id FROM test_widgets AS w JOIN test_gadgets AS g ON g.widget_id = w.id WHERE w.tenant_id = '{a}'`,
			`SELECT w.id FROM test_widgets AS w LEFT JOIN test_gadgets AS g ON g.tenant_id = '{a}' WHERE g.tenant_id = '{a}'`,
			`SELECT w.id FROM test_widgets AS w, test_widgets AS o WHERE w.tenant_id = '{a}'`,
			`SELECT (SELECT name FROM test_widgets AS w2 WHERE w2.tenant_id = w.tenant_id) FROM test_widgets AS w`,
			`UPDATE test_widgets AS w SET name = 'x' WHERE w.tenant_id = '{a}' RETURNING (SELECT count(*) FROM test_widgets)`,
			`UPDATE test_widgets AS w SET (tenant_id, name) = ('{b}', 'x') WHERE w.tenant_id = '{a}'`,
			`UPDATE test_widgets AS w SET tenant_id = c2.tenant_id FROM test_widgets AS c2 WHERE w.tenant_id = '{a}' AND c2.tenant_id = '{a}'`,
			`UPDATE test_widgets AS w SET tenant_id = '{b}' WHERE w.tenant_id = '{a}'`,
			`UPDATE test_widgets AS w SET name = c2.name FROM test_widgets AS c2 WHERE w.tenant_id = '{a}'`,
			`DELETE FROM test_widgets`,
			`DELETE FROM test_widgets AS w WHERE w.tenant_id = '{a}' AND w.id IN (SELECT widget_id FROM test_gadgets)`,
			`INSERT INTO test_widgets (tenant_id, id, name, size) VALUES ('{b}', '{new}', 'n', 1)`,
			`INSERT INTO test_widgets (id, name, size) VALUES ('{new}', 'n', 1)`,
			`INSERT INTO test_widgets (tenant_id, id, name, size) SELECT tenant_id, id || 'x', name, size FROM test_widgets`,
			`INSERT INTO test_widgets (tenant_id, id, name, size) VALUES ('{a}', '{wb}', 'n', 1) ON CONFLICT (id) DO UPDATE SET name = 'taken'`,
			`INSERT INTO test_widgets (tenant_id, id, name, size) VALUES ('{a}', '{wb}', 'n', 1) ON CONFLICT (id) DO NOTHING`,
			`INSERT INTO test_widgets (tenant_id, id, name, size) VALUES ('{a}', '{wb}', 'n', 1) ON CONFLICT DO UPDATE SET name = 'taken'`,
			`INSERT INTO test_widgets (tenant_id, id, name, size) VALUES ('{a}', '{wb}', 'n', 1) ON CONFLICT (tenant_id, id) DO UPDATE SET tenant_id = '{b}'`,
			`INSERT INTO test_widgets (tenant_id, id, name, size) VALUES ('{a}', '{wb}', 'n', 1) ON CONFLICT (tenant_id, id) DO NOTHING ON CONFLICT (id) DO UPDATE SET name = 'taken'`,
			`INSERT OR REPLACE INTO test_widgets (tenant_id, id, name, size) VALUES ('{a}', '{wb}', 'n', 1)`,
			`REPLACE INTO test_widgets (tenant_id, id, name, size) VALUES ('{a}', '{wb}', 'n', 1)`,
			`INSERT INTO test_widgets (tenant_id, id, name, size) VALUES ('{a}', '{new}', 'n', 1) RETURNING (SELECT name FROM test_widgets AS o WHERE o.id = '{wb}')`,
			`TRUNCATE test_widgets`,
			`CREATE VIEW every_widget AS SELECT * FROM test_widgets`,
			`PREPARE every_widget AS SELECT * FROM test_widgets`,
			`COPY test_widgets TO STDOUT`,
			`MERGE INTO test_widgets AS w USING test_gadgets AS g ON g.widget_id = w.id WHEN MATCHED THEN DELETE`,
			`CREATE RULE hide AS ON DELETE TO test_widgets DO INSTEAD NOTHING`,
			`CREATE TABLE stolen AS SELECT * FROM test_widgets`,
			`SELECT count(*) FROM test_widgets AS w WHERE w.tenant_id = E'{a}'; SELECT count(*) FROM test_gadgets`,
			`SELECT count(*) FROM "Test_Widgets" AS w`,
			"SELECT count(*) FROM test_widgets AS w WHERE w.tenant_id = '{a}'\n'x'",
			`SELECT count(*) FROM main.test_widgets AS w WHERE w.tenant_id = '{b}'`,
		}
		fill := func(q string) string {
			for k, v := range map[string]string{"{a}": a, "{b}": b, "{wa}": wa, "{wb}": wb, "{new}": tenancy.NewID()} {
				q = strings.ReplaceAll(q, k, v)
			}
			return q
		}
		ctx := as(a)
		for _, q := range allowed {
			q = fill(q)
			err := tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.ExecContext(ctx, q)
				return err
			})
			require.NoError(t, err, "%s", q)
		}
		for _, q := range refused {
			q = fill(q)
			err := tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.ExecContext(ctx, q)
				return err
			})
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
		}
		// B's row is as B left it.
		var w widget
		require.NoError(t, in(as(b), db, func(db bun.IDB) error {
			return db.NewSelect().Model(&w).Where("?TableAlias.id = ?", wb).Scan(as(b))
		}))
		require.Equal(t, "b", w.Name)
	})
}

// TestGuardRefusesSettingEscapes runs, inside tenant A's transaction, each
// raw statement that could switch the row-security tenant or switch row
// security off. The Guard refuses every one on both databases; on
// PostgreSQL, B's rows stay invisible and row security stays forced.
func TestGuardRefusesSettingEscapes(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(b), db, &widget{ID: tenancy.NewID(), Name: "b", Size: 2}))
		escapes := []string{
			`SELECT set_config('app.' || 'tenant_id', '{b}', true)`,
			`SELECT pg_catalog.set_config('app.tenant_id', '{b}', false)`,
			`SELECT "set_config"('app.tenant_id', '{b}', true)`,
			`SET LOCAL "app"."tenant_id" = '{b}'`,
			`SET app.tenant_id TO '{b}'`,
			`SET SESSION "app.tenant_id" = '{b}'`,
			`RESET app.tenant_id`,
			`RESET ALL`,
			`DISCARD ALL`,
			`UPDATE pg_settings SET setting = '{b}' WHERE name = 'app.tenant_id'`,
			`DO $$ BEGIN PERFORM set_config('app.tenant_id', '{b}', true); END $$`,
			`do 'begin perform 1; end'`,
			`SELECT query_to_xml('SELECT set_config(''app.tenant_id'', ''{b}'', true)', true, true, '')`,
			`SELECT dblink('dbname=other', 'SELECT 1')`,
			`SET ROLE postgres`,
			`SET LOCAL search_path TO elsewhere`,
			`SET row_security = off`,
			`CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'SELECT 1'`,
			`CREATE OR REPLACE PROCEDURE p() LANGUAGE sql AS 'SELECT 1'`,
			`ALTER TABLE test_widgets NO FORCE ROW LEVEL SECURITY`,
			`ALTER TABLE test_widgets DISABLE ROW LEVEL SECURITY`,
			`CREATE POLICY open ON test_widgets USING (true)`,
			`ALTER POLICY tenant_isolation ON test_widgets USING (true)`,
			`DROP POLICY tenant_isolation ON test_widgets`,
		}
		for _, q := range escapes {
			q = strings.ReplaceAll(q, "{b}", b)
			err := tenancy.RunInTx(as(a), db, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.ExecContext(ctx, q)
				return err
			})
			require.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
		}
		if db.Name != "postgres" {
			return
		}
		raw := db.Reopen(t)
		var n int
		require.NoError(t, tenancy.RunInTx(as(a), raw, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewRaw("SELECT count(*) FROM test_widgets").Scan(ctx, &n)
		}))
		require.Zero(t, n, "A still sees none of B's rows")
		var forced bool
		require.NoError(t, raw.NewRaw("SELECT relforcerowsecurity FROM pg_class WHERE relname = 'test_widgets' AND relnamespace = current_schema()::regnamespace").Scan(context.Background(), &forced))
		require.True(t, forced)
	})
}

// undoHook is a query hook installed after the Guard that tries to undo
// its refusal: it drops the cancellation and acts as another principal.
type undoHook struct{ as tenancy.Principal }

func (h undoHook) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return tenancy.WithPrincipal(context.WithoutCancel(ctx), h.as)
}

func (undoHook) AfterQuery(context.Context, *bun.QueryEvent) {}

// TestGuardRefusalCannotBeUndone installs a hook after the Guard that
// hands the driver a context without the refusal's cancellation and with
// another tenant's principal. The driver refuses what the Guard refused.
func TestGuardRefusalCannotBeUndone(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(a), db, &widget{ID: tenancy.NewID(), Name: "a", Size: 1}))
		require.NoError(t, insert(as(b), db, &widget{ID: tenancy.NewID(), Name: "b", Size: 2}))
		db.AddQueryHook(undoHook{as: tenancy.Principal{TenantID: b, Role: tenancy.RoleStaff}})

		// Unscoped: refused whatever the principal.
		n := -1
		err := db.NewRaw("SELECT count(*) FROM test_widgets").Scan(as(a), &n)
		require.ErrorIs(t, err, tenancy.ErrUnscoped)
		require.Equal(t, -1, n, "nothing came back")
		cnt, err := db.NewSelect().Model((*widget)(nil)).Count(as(a))
		require.ErrorIs(t, err, tenancy.ErrUnscoped)
		require.Zero(t, cnt)

		// Scoped to B from A's context: the hook turns the context into
		// B's, but the Guard's refusal stands at the driver.
		err = db.NewRaw("SELECT count(*) FROM test_widgets WHERE tenant_id = ?", b).Scan(as(a), &n)
		require.ErrorIs(t, err, tenancy.ErrUnscoped)
		_, err = db.NewUpdate().Model((*widget)(nil)).Set("name = 'taken'").Where("tenant_id = ?", b).Exec(as(a))
		require.Error(t, err)

		// database/sql directly, beneath bun and its hooks: the driver
		// checks the statement with the context it is given.
		_, err = db.DB.DB.ExecContext(as(a), "UPDATE test_widgets SET name = 'taken'")
		require.ErrorIs(t, err, tenancy.ErrUnscoped)
		_, err = db.DB.DB.ExecContext(context.Background(), fmt.Sprintf("DELETE FROM test_widgets WHERE tenant_id = '%s'", b))
		require.ErrorIs(t, err, tenancy.ErrNoTenant)
		_, err = db.DB.DB.PrepareContext(as(a), "SELECT * FROM test_widgets")
		require.ErrorIs(t, err, tenancy.ErrUnscoped)

		var w widget
		require.NoError(t, in(as(b), db.Reopen(t), func(db bun.IDB) error {
			return db.NewRaw("SELECT * FROM test_widgets WHERE tenant_id = ?", b).Scan(as(b), &w)
		}))
		require.Equal(t, "b", w.Name, "B's row is untouched")
	})
}

// TestNestedRunInTxRestoresTenant runs tenant B's transaction inside A's:
// after B's part returns, or fails, A's statements see A's rows again.
func TestNestedRunInTxRestoresTenant(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(a), db, &widget{ID: tenancy.NewID(), Name: "a", Size: 1}))
		count := func(ctx context.Context, tx bun.Tx) int {
			n, err := tx.NewSelect().Model((*widget)(nil)).Apply(tenancy.Scope(ctx)).Count(ctx)
			require.NoError(t, err)
			return int(n)
		}
		errInner := errors.New("inner failed")
		err := tenancy.RunInTx(as(a), db, nil, func(ctx context.Context, tx bun.Tx) error {
			require.Equal(t, 1, count(ctx, tx))
			require.NoError(t, tenancy.RunInTx(as(b), tx, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.NewInsert().Model(&widget{ID: tenancy.NewID(), Name: "b"}).Exec(ctx)
				require.NoError(t, err)
				require.Equal(t, 1, count(ctx, tx))
				return nil
			}))
			require.Equal(t, 1, count(ctx, tx), "A's rows are visible again after B's savepoint")
			require.ErrorIs(t, tenancy.RunInTx(as(b), tx, nil, func(ctx context.Context, tx bun.Tx) error {
				return errInner
			}), errInner)
			require.Equal(t, 1, count(ctx, tx), "and after a failed one")
			_, err := tx.NewInsert().Model(&widget{ID: tenancy.NewID(), Name: "a2"}).Exec(ctx)
			require.NoError(t, err, "A can still write its own rows")
			require.Equal(t, 2, count(ctx, tx))
			return nil
		})
		require.NoError(t, err)
		var nb int
		require.NoError(t, tenancy.RunInTx(as(b), db, nil, func(ctx context.Context, tx bun.Tx) error {
			nb = count(ctx, tx)
			return nil
		}))
		require.Equal(t, 1, nb)
	})
}

// TestGuardShapeCacheIsBounded feeds the Guard more distinct statement
// shapes than it keeps, and the same shape with many literals: the cache
// stays within its bound and one shape is one entry.
func TestGuardShapeCacheIsBounded(t *testing.T) {
	db := dbtest.SQLite(t, setup)
	g, err := tenancy.InstallGuard(db.DB)
	require.NoError(t, err)
	ctx := as(tenancy.NewID())
	for i := range 50 {
		_, err := db.NewRaw(fmt.Sprintf("SELECT count(*) FROM test_widgets AS w WHERE w.tenant_id = ? AND w.size > %d AND w.name = 'n%d'", i, i), "x").Exec(ctx)
		require.ErrorIs(t, err, tenancy.ErrUnscoped, "another tenant's id")
	}
	require.LessOrEqual(t, tenancy.ShapesForTest(g), 2, "literals do not make shapes")
	for i := range tenancy.ShapeCacheSize + 100 {
		_, _ = db.NewRaw(fmt.Sprintf("SELECT %d AS c%d", i, i)).Exec(ctx)
	}
	require.LessOrEqual(t, tenancy.ShapesForTest(g), tenancy.ShapeCacheSize)
}

package tenancy_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// rawNamesSeen runs q with args through database/sql in tenant's
// transaction (the driver's Check sees it) and returns every text value
// of every row.
func rawNamesSeen(db bun.IDB, tenant, q string, args ...any) (string, error) {
	var out []string
	err := tenancy.RunInTx(as(tenant), db, nil, func(ctx context.Context, tx bun.Tx) error {
		rows, err := tx.Tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		out, err = textColumns(rows)
		return err
	})
	return strings.Join(out, "|"), err
}

// TestGuardReadsSQLiteVariablesAsSQLiteDoes: SQLite reads a parameter
// name that starts with $, @, : or # on past "::" and through a
// parenthesized suffix up to the first ")" (@a(') is one name), where
// PostgreSQL's parser reads an operator before a function call on a
// string, or a cast to a type with a string modifier: the rest of the
// text, a string to the parser, was SQL to SQLite, and read every
// tenant's rows.
func TestGuardReadsSQLiteVariablesAsSQLiteDoes(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(a), db, &widget{ID: tenancy.NewID(), Name: "mine-a", Size: 1}))
		require.NoError(t, insert(as(b), db, &widget{ID: tenancy.NewID(), Name: "secret-b", Size: 2}))
		for _, c := range []struct {
			q    string
			name string
		}{
			{"SELECT @a(') AS p, (SELECT group_concat(name) FROM test_widgets) AS x --')", "a(')"},
			{"SELECT 1 #a(') AS p, (SELECT group_concat(name) FROM test_widgets) AS x --')", "a(')"},
			{"SELECT x[1:a(')], (SELECT group_concat(name) FROM test_widgets) AS y --')] FROM (SELECT 1 AS x) AS s", "a(')"},
			{"SELECT $1::a(') AS p, (SELECT group_concat(name) FROM test_widgets) AS x --')", ""},
			{"SELECT :a(') AS p, (SELECT group_concat(name) FROM test_widgets) AS x --')", "a(')"},
		} {
			var args []any
			if c.name != "" {
				args = append(args, sql.Named(c.name, 1))
			}
			seen, err := rawNamesSeen(db, a, c.q, args...)
			assert.NotContains(t, seen, "secret-b", "%s", c.q)
			if db.Name == "sqlite" {
				assert.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", c.q)
			}
		}
	})
}

// TestGuardRefusesTextSearchSQLRunners: ts_stat and ts_rewrite run the SQL
// text they are given, which the Guard never saw: inside them, on
// PostgreSQL, tenant A set app.tenant_id to B's id before the rows were
// read and got B's names back past both walls. Refused on both databases
// now (SQLite has no such functions).
func TestGuardRefusesTextSearchSQLRunners(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(a), db, &widget{ID: tenancy.NewID(), Name: "minea", Size: 1}))
		require.NoError(t, insert(as(b), db, &widget{ID: tenancy.NewID(), Name: "secretb", Size: 2}))
		switchTo := "WITH s AS MATERIALIZED (SELECT set_config(''app.tenant_id'', ''" + b + "'', true) AS v) "
		for _, q := range []string{
			"SELECT word FROM ts_stat('" + switchTo + "SELECT to_tsvector(''simple'', w.name) FROM s, test_widgets AS w')",
			"SELECT word FROM pg_catalog.ts_stat('" + switchTo + "SELECT to_tsvector(''simple'', w.name) FROM s, test_widgets AS w', 'a')",
			"SELECT ts_rewrite('x'::tsquery, '" + switchTo + "SELECT ''x''::tsquery, to_tsquery(''simple'', w.name) FROM s, test_widgets AS w')::text",
		} {
			var seen []string
			err := tenancy.RunInTx(as(a), db, nil, func(ctx context.Context, tx bun.Tx) error {
				return tx.NewRaw(q).Scan(ctx, &seen)
			})
			assert.NotContains(t, strings.Join(seen, " "), "secretb", "%s", q)
			assert.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", q)
		}
	})
}

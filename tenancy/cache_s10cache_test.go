package tenancy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestGuardCacheKeepsValuesThatChangeTheStatement: the Guard caches a
// statement's shape with its string literals blanked out, and some
// literals are no values but change what the statement is: the escape
// character of a U&"…" UESCAPE '…' name decides which table or function it
// names, and EXPLAIN (ANALYZE '…') turns ANALYZE on or off. Tenant A primed
// the cache with a harmless spelling (a name that decodes to nothing it
// knows, ANALYZE 'false') and sent the same shape with another value: on
// PostgreSQL set_config switched app.tenant_id to B and the statement read
// B's rows, and EXPLAIN ANALYZE counted B's rows.
func TestGuardCacheKeepsValuesThatChangeTheStatement(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(a), db, &widget{ID: tenancy.NewID(), Name: "mine-a", Size: 1}))
		for range 3 {
			require.NoError(t, insert(as(b), db, &widget{ID: tenancy.NewID(), Name: "secret-b", Size: 2}))
		}
		run := func(q string) (string, error) {
			var out []string
			err := tenancy.RunInTx(as(a), db, nil, func(ctx context.Context, tx bun.Tx) error {
				rows, err := tx.QueryContext(ctx, q)
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					var s string
					if err := rows.Scan(&s); err != nil {
						return err
					}
					out = append(out, s)
				}
				return rows.Err()
			})
			return strings.Join(out, "\n"), err
		}
		for _, c := range []struct{ prime, attack string }{
			{
				prime: `WITH s AS MATERIALIZED (SELECT U&"set!005fconfig" UESCAPE '#'('app.tenant_id', '` + b + `', true) AS v)
					SELECT w.name FROM s, U&"test!005fwidgets" UESCAPE '#' AS w`,
				attack: `WITH s AS MATERIALIZED (SELECT U&"set!005fconfig" UESCAPE '!'('app.tenant_id', '` + b + `', true) AS v)
					SELECT w.name FROM s, U&"test!005fwidgets" UESCAPE '!' AS w`,
			},
			{
				prime:  `EXPLAIN (ANALYZE 'false', COSTS false) SELECT name FROM test_widgets WHERE tenant_id = '` + a + `' AND size >= 0`,
				attack: `EXPLAIN (ANALYZE 'true', COSTS false) SELECT name FROM test_widgets WHERE tenant_id = '` + a + `' AND size >= 0`,
			},
			{
				// SQLite takes a string for a PRAGMA's name.
				prime:  `PRAGMA 'optimize'`,
				attack: `PRAGMA 'data_version'`,
			},
			{
				prime:  `PRAGMA 'table_info'('no_such_table')`,
				attack: `PRAGMA 'secure_delete'('off')`,
			},
		} {
			_, _ = run(c.prime) // fails or not: the Guard has seen its shape
			out, err := run(c.attack)
			assert.NotContains(t, out, "secret-b", "%s", c.attack)
			assert.NotContains(t, out, "Removed by Filter", "%s", c.attack)
			assert.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", c.attack)
		}
	})
}

// TestGuardCacheKeepsDigitsOfNonASCIINames: the shape cache blanked the
// digits that end a name holding a non-ASCII letter (wé1, wé2) as if they
// were numbers, so that two statements naming different aliases shared a
// shape: tenant A primed it with the table's alias confined, swapped the
// aliases, and read every tenant's rows (on SQLite; row-level security
// kept them on PostgreSQL).
func TestGuardCacheKeepsDigitsOfNonASCIINames(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		require.NoError(t, insert(as(a), db, &widget{ID: tenancy.NewID(), Name: "mine-a", Size: 1}))
		require.NoError(t, insert(as(b), db, &widget{ID: tenancy.NewID(), Name: "secret-b", Size: 2}))
		// The alias of the table and of a one-row derived table with a
		// tenant_id column swap places: the qualified condition confines
		// the derived table then, and the table's rows are everyone's.
		prime := `SELECT name FROM test_widgets AS wé1, (SELECT '` + a + `' AS tenant_id) AS wé2 WHERE wé1.tenant_id = '` + a + `'`
		seen, err := namesSeen(db, a, prime)
		require.NoError(t, err)
		require.Equal(t, "mine-a", seen)
		attack := `SELECT name FROM test_widgets AS wé2, (SELECT '` + a + `' AS tenant_id) AS wé1 WHERE wé1.tenant_id = '` + a + `'`
		seen, err = namesSeen(db, a, attack)
		assert.NotContains(t, seen, "secret-b", "%s", attack)
		assert.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", attack)
	})
}

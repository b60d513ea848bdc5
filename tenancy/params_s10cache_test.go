package tenancy_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TestGuardRefusesTenantByParameter: a statement whose parameters the
// driver binds ($1 with arguments through database/sql) is checked by its
// text, where the Guard cannot read a parameter's value: wherever the
// tenant's id must be read — a condition, an inserted or assigned
// tenant_id — a parameter is refused, twice in a row (the second time
// from the shape cache, which keeps parameters in its key on PostgreSQL),
// and B's rows are neither read nor planted nor moved.
func TestGuardRefusesTenantByParameter(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		mine := tenancy.NewID()
		require.NoError(t, insert(as(a), db, &widget{ID: mine, Name: "mine-a", Size: 1}))
		require.NoError(t, insert(as(b), db, &widget{ID: tenancy.NewID(), Name: "secret-b", Size: 2}))
		for _, c := range []struct {
			q    string
			args []any
		}{
			{`SELECT name FROM test_widgets WHERE tenant_id = $1`, []any{b}},
			{`SELECT name FROM test_widgets WHERE tenant_id IN ('` + a + `', $1)`, []any{b}},
			{`SELECT name FROM test_widgets WHERE tenant_id = '` + a + `' OR tenant_id = $1`, []any{b}},
			{`SELECT name FROM test_widgets WHERE (tenant_id, size) IN (('` + a + `', 1), ($1, 2))`, []any{b}},
			{`SELECT name FROM test_widgets WHERE tenant_id = COALESCE($1, '` + a + `')`, []any{b}},
			{`INSERT INTO test_widgets (tenant_id, id, name, size) VALUES ($1, $2, 'planted', 1)`, []any{b, tenancy.NewID()}},
			{`INSERT INTO test_widgets (tenant_id, id, name, size) SELECT $1, $2, 'planted', 1`, []any{b, tenancy.NewID()}},
			{`UPDATE test_widgets SET tenant_id = $1 WHERE tenant_id = '` + a + `'`, []any{b}},
			{`UPDATE test_widgets SET (tenant_id, name) = ($1, 'moved') WHERE tenant_id = '` + a + `'`, []any{b}},
			{`INSERT INTO test_widgets (tenant_id, id, name, size) VALUES ('` + a + `', $2, 'x', 1) ON CONFLICT (tenant_id, id) DO UPDATE SET tenant_id = $1`, []any{b, mine}},
		} {
			for range 2 {
				var names []string
				err := tenancy.RunInTx(as(a), db, nil, func(ctx context.Context, tx bun.Tx) error {
					rows, err := tx.Tx.QueryContext(ctx, c.q, c.args...)
					if err != nil {
						return err
					}
					defer rows.Close()
					for rows.Next() {
						var s string
						if err := rows.Scan(&s); err != nil {
							return err
						}
						names = append(names, s)
					}
					return rows.Err()
				})
				assert.NotContains(t, names, "secret-b", "%s", c.q)
				assert.ErrorIs(t, err, tenancy.ErrUnscoped, "%s", c.q)
			}
		}
		var inB []string
		require.NoError(t, tenancy.RunInTx(as(b), db, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewSelect().Model((*widget)(nil)).Column("name").Apply(tenancy.Scope(ctx)).Scan(ctx, &inB)
		}))
		require.Equal(t, []string{"secret-b"}, inB, "nothing was planted in or moved to B")
	})
}

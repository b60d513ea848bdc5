package crm

import (
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/schema"

	"github.com/socialcrm/socialcrm/tenancy"
)

// TestGetContactQueryIsBunsSelect: Get's statement, written once, is the
// text bun's query builder writes for the same select confined to the
// tenant by tenancy.Scope — on both dialects, with values that need
// quoting — so that the Guard, the shapes it caches and the parameters
// internal/sqldb makes of the literals see what they saw before.
func TestGetContactQueryIsBunsSelect(t *testing.T) {
	for _, d := range []schema.Dialect{pgdialect.New(), sqlitedialect.New()} {
		db := bun.NewDB(new(sql.DB), d)
		for _, v := range [][2]string{{tenancy.NewID(), tenancy.NewID()}, {`o'brien"?x`, tenancy.NewID()}} {
			id, tid := v[0], v[1]
			ctx := tenancy.WithPrincipal(t.Context(), tenancy.Principal{TenantID: tid, Role: tenancy.RoleStaff})
			built := db.NewSelect().Model((*Contact)(nil)).ColumnExpr(contactColumns).Where("?TableAlias.id = ?", id).
				Apply(tenancy.Scope(ctx)).String()
			require.Equal(t, built, db.QueryGen().FormatQuery(getContactQuery, id, tid), "%s", d.Name())
		}
	}
}

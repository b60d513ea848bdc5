package retention_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention"
)

// TestExportDerivedColumns: Export writes a category's Derived column as
// its expression gives it, in the column's place and under its name, in
// the JSON and CSV files; ?tenant is the request's tenant (the count
// takes the tenant's rows, not the other tenant's); the dialect is the
// engine's.
func TestExportDerivedColumns(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		v := newEnv(t, db)
		tidA, a := v.tenant(t, "alpha")
		_, b := v.tenant(t, "beta")
		insert(t, a, db, &[]conn{
			{ID: "c1", AccountID: "acct", Token: "t1", ConnectedAt: epoch},
			{ID: "c2", AccountID: "other", Token: "t2", ConnectedAt: epoch},
		})
		insert(t, b, db, &[]conn{{ID: "c1", AccountID: "acct", Token: "t3", ConnectedAt: epoch}, {ID: "c2", AccountID: "acct", Token: "t4", ConnectedAt: epoch}})
		var asked []dialect.Name
		c := retention.Category{Name: "test.derived_connection", Table: "test_connections", Time: "connected_at",
			Subject: map[string]string{"account_id": "account_id"},
			Omit:    []string{"token"},
			Derived: func(d dialect.Name) map[string]string {
				asked = append(asked, d)
				return map[string]string{"account_id": "r.account_id || '/' || (SELECT count(*) FROM test_connections AS c WHERE c.tenant_id = ?tenant)"}
			},
			LegalBasis: "contract", Purpose: "connections with a derived column"}
		e, err := retention.New(db, retention.WithClock(v.clock.Now), retention.WithStore(v.store))
		require.NoError(t, err)
		require.NoError(t, e.Register(c))

		files := export(t, a, e, map[string]string{"account_id": "acct"})
		require.Equal(t, `[
{"tenant_id":"`+tidA+`","id":"c1","account_id":"acct/2","connected_at":"2026-11-23T12:00:00Z"}
]
`, files["test.derived_connection.json"])
		require.Equal(t, "tenant_id,id,account_id,connected_at\n"+tidA+",c1,acct/2,2026-11-23T12:00:00Z\n", files["test.derived_connection.csv"])
		require.NotEmpty(t, asked)
		require.Equal(t, db.DB.Dialect().Name(), asked[0])
	})
}

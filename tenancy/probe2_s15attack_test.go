package tenancy_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

func TestProbeTempShadow(t *testing.T) {
	each(t, func(t *testing.T, db *dbtest.DB) {
		a, b := tenancy.NewID(), tenancy.NewID()
		db.SetMaxOpenConns(1)
		defer db.SetMaxOpenConns(0)
		for _, q := range []string{
			"CREATE TABLE temp.test_widgets (tenant_id TEXT NOT NULL, id TEXT PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL)",
			"CREATE TABLE pg_temp.stash (tenant_id TEXT NOT NULL, id TEXT PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL)",
			"CREATE TABLE pg_temp.test_widgets () INHERITS (pg_temp.stash)",
			"CREATE TABLE pg_temp.test_widgets (tenant_id TEXT NOT NULL, id TEXT PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL)",
			"CREATE TABLE \"temp\".\"Test_Widgets\" (tenant_id TEXT NOT NULL, id TEXT PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL)",
		} {
			_, err := db.ExecContext(as(b), q)
			t.Logf("%s => %v", q, err)
		}
		require.NoError(t, insert(as(a), db, &widget{ID: "wa", Name: "secret-a", Size: 1}))
		seen, err := execAs(db, a, "SELECT name FROM test_widgets WHERE tenant_id = '"+a+"'")
		t.Logf("A sees %q %v", seen, err)
		seen, err = execAs(db, b, "SELECT name FROM pg_temp.stash")
		t.Logf("B stash %q %v", seen, err)
		var n int
		require.NoError(t, db.Owner.QueryRowContext(t.Context(), "SELECT count(*) FROM main.test_widgets").Scan(&n))
		t.Logf("rows in real table %d", n)
	})
}

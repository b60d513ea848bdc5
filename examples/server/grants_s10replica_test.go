package main

import (
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
)

// TestGrantsOfReplicasSerializeS10: replicas starting together grant the
// application role its privileges at the same moment — socialcrm's grants
// (which cover every sequence of the schema), River's and the server's
// own. Run side by side again and again, none fails with PostgreSQL's
// "tuple concurrently updated". (SQLite has no roles to grant to.)
func TestGrantsOfReplicasSerializeS10(t *testing.T) {
	if os.Getenv(dbtest.EnvPostgres) == "" {
		t.Skip("set SOCIALCRM_TEST_POSTGRES to run the grant test (CI does); SQLite has no grants")
	}
	db := dbtest.Postgres(t)
	ctx := t.Context()
	ownerPool, err := pgxpool.New(ctx, db.OwnerDSN())
	require.NoError(t, err)
	defer ownerPool.Close()
	appPool, err := pgxpool.New(ctx, db.DSN())
	require.NoError(t, err)
	defer appPool.Close()
	require.NoError(t, socialcrm.Migrate(ctx, db.Owner, serverMigrations()))
	require.NoError(t, migrateRiverPG(ctx, ownerPool, true, appPool))
	var role string
	require.NoError(t, db.DB.NewRaw("SELECT current_user").Scan(ctx, &role))
	for range 20 {
		var wg sync.WaitGroup
		errs := make([]error, 4)
		wg.Go(func() { errs[0] = socialcrm.Grant(ctx, db.Owner, role) })
		wg.Go(func() { errs[1] = migrateRiverPG(ctx, ownerPool, true, appPool) })
		wg.Go(func() { errs[2] = grantSessions(ctx, db.Owner, db.DB) })
		wg.Go(func() { errs[3] = socialcrm.Grant(ctx, db.Owner, role) })
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
	}
}

package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun/dialect"
)

// s15ServerUnmapped are the tables of the example server (its own and
// River's) that the data map does not list, with why; socialcrm's own are
// checked by the library's TestS15EveryTableInTheDataMap.
var s15ServerUnmapped = map[string]string{
	"example_server_keys":      "keys every replica shares, sealed by the key-encryption key",
	"example_login_attempts":   "sign-in attempts per keyed hash of the client address, one one-minute window (pruned)",
	"example_migrations":       "applied migration versions",
	"example_signup_keys":      "one-time keys of the sign-up form: a random key, the tenant it created and a time (pruned after a day)",
	"example_migrations_locks": "the migration lock",
}

// TestS15ServerTablesInTheDataMap: every table of the example server's
// database is in its engine's data map, is socialcrm's (socialcrm_…), is
// River's (river_…, when jobs run: their arguments are a task name and
// ids — retentionriver's and jobs.go's taskArgs) or is
// listed in s15ServerUnmapped.
func TestS15ServerTablesInTheDataMap(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, a *testApp) {
		ctx := context.Background()
		var tables []string
		q := "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1"
		if a.db.Dialect().Name() == dialect.PG {
			q = "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema() ORDER BY 1"
		}
		require.NoError(t, a.db.NewRaw(q).Scan(ctx, &tables))
		mapped := map[string]bool{}
		for _, c := range a.sdk.Retention.DataMap().Categories {
			mapped[c.Table] = true
		}
		require.True(t, mapped[tablePublishes] && mapped[tableSessions], "the server's own categories are in the map")
		for _, tb := range tables {
			switch {
			case mapped[tb], len(tb) > 10 && tb[:10] == "socialcrm_", len(tb) > 6 && tb[:6] == "river_", tb == "sqlite_sequence":
				continue
			}
			require.Contains(t, s15ServerUnmapped, tb, "table %s is neither in the data map nor known to hold no personal data", tb)
		}
	})
}

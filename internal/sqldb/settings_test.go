package sqldb_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/sqldb"
)

// TestSessionTwoSettings: a statement under two settings (WithSettings)
// runs under both; the next one under only the first runs with the second
// emptied, on the same pooled connection, in a transaction too; and one
// under neither runs with both empty.
func TestSessionTwoSettings(t *testing.T) {
	h, _ := pgHandle(t)
	if h == nil {
		return
	}
	ctx := context.Background()
	both := sqldb.WithSettings(ctx, "app.t", "T", "app.m", "M")
	one := sqldb.WithSetting(ctx, "app.t", "T")
	for range 2 {
		require.Equal(t, "T", setting(t, both, h, "app.t"))
		require.Equal(t, "M", setting(t, both, h, "app.m"))
		require.Equal(t, "T", setting(t, one, h, "app.t"))
		require.Equal(t, "", setting(t, one, h, "app.m"), "the second setting does not outlive its statements")
	}
	tx, err := h.BeginTx(both, nil)
	require.NoError(t, err)
	require.Equal(t, "M", setting(t, ctx, tx, "app.m"), "a transaction begun under both runs under both")
	require.Equal(t, "", setting(t, one, tx, "app.m"))
	require.NoError(t, tx.Rollback())
	require.Equal(t, "", setting(t, ctx, h, "app.t"))
	require.Equal(t, "", setting(t, ctx, h, "app.m"))
}

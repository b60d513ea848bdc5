package crm

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	imigrations "github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// TestNameFTSPendingMigration builds the schema of the release before
// migration 20261208010000 (every create wrote its words into the FTS5
// index), creates contacts with it, then migrates: on SQLite the watermark
// is the highest rowid (every existing contact is in the index, none
// pending), the index is unchanged and exact, the old contacts are found,
// running the migration again changes nothing, and the next creates stay
// pending (no word into the index) and are found. On PostgreSQL the
// migration does nothing and the searches are the same.
func TestNameFTSPendingMigration(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		before := migrationsWithout("20261208010000")
		require.NoError(t, imigrations.Run(ctx, db.Owner, tenancy.Migrations(), vault.Migrations(), retention.Migrations(), before))
		dbtest.GrantApp(t, db)
		v, err := vault.New(db.DB, testkit.NewKEK(t))
		require.NoError(t, err)
		s, err := New(db.DB, v)
		require.NoError(t, err)
		sqlite := db.Name == "sqlite"
		a := tenancy.WithPrincipal(ctx, tenancy.Principal{TenantID: tenancy.NewID(), MemberID: tenancy.NewID(), Role: tenancy.RoleOwner})
		_, err = v.EnsureKey(a)
		require.NoError(t, err)
		for i := range 40 {
			_, err := s.Contacts().Create(a, ContactInput{FirstName: "Ada", LastName: fmt.Sprintf("Old%02d", i)})
			require.NoError(t, err)
		}
		pairs := 0
		if sqlite {
			var n int
			require.NoError(t, db.Admin(t).NewRaw("SELECT count(*) FROM sqlite_master WHERE name = ?", TableContactNameFTSMark).Scan(ctx, &n))
			require.Zero(t, n, "the release before has no watermark")
			pairs = requireFTSExactAll(t, db.Admin(t))
			require.Greater(t, pairs, 0)
		}
		search := func(q string) int {
			t.Helper()
			p, err := s.Contacts().List(a, ContactFilter{NamePrefix: q}, ListOptions{Limit: MaxLimit})
			require.NoError(t, err)
			return len(p.Items)
		}
		migrated := func() {
			t.Helper()
			if sqlite {
				var mark, top int64
				require.NoError(t, db.Admin(t).NewRaw("SELECT w FROM "+TableContactNameFTSMark).Scan(ctx, &mark))
				require.NoError(t, db.Admin(t).NewRaw("SELECT max(rowid) FROM "+TableContacts).Scan(ctx, &top))
				require.Equal(t, top, mark, "every existing contact is in the index")
				require.Equal(t, pairs, requireFTSExact(t, db.Admin(t)))
				require.Equal(t, pairs, ftsIndexedPairs(t, db.Admin(t)), "the index is unchanged")
			}
			require.Equal(t, 40, search("old"))
			require.Equal(t, 1, search("old07"))
		}
		require.NoError(t, imigrations.Run(ctx, db.Owner, tenancy.Migrations(), vault.Migrations(), retention.Migrations(), Migrations()))
		migrated()
		require.NoError(t, db.Owner.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error { return migrateNameFTSPending(ctx, tx) }))
		migrated()

		for i := range 10 {
			_, err := s.Contacts().Create(a, ContactInput{FirstName: "Ada", LastName: fmt.Sprintf("New%02d", i)})
			require.NoError(t, err)
			require.Equal(t, 1, search(fmt.Sprintf("new%02d", i)))
		}
		require.Equal(t, 40, search("old"))
		if sqlite {
			require.Greater(t, requireFTSExact(t, db.Admin(t)), pairs)
			require.Equal(t, pairs, ftsIndexedPairs(t, db.Admin(t)), "the new contacts are pending: no word of theirs in the index")
		}
	})
}

// requireFTSExactAll is requireFTSExact for a database without the
// watermark (before migration 20261208010000): every contact is in the
// index.
func requireFTSExactAll(t *testing.T, db *bun.DB) int {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.ExecContext(ctx, "CREATE TABLE "+TableContactNameFTSMark+" (w INTEGER NOT NULL)")
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO "+TableContactNameFTSMark+" (w) SELECT coalesce(max(rowid), 0) FROM "+TableContacts)
		return err
	}))
	defer func() {
		_, err := db.ExecContext(ctx, "DROP TABLE "+TableContactNameFTSMark)
		require.NoError(t, err)
	}()
	return requireFTSExact(t, db)
}

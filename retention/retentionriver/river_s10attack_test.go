package retentionriver_test

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/retention/retentionriver"
	"github.com/socialcrm/socialcrm/tenancy"
)

// walledSetup is setup with River's tables walled off (Tables).
func walledSetup(ctx context.Context, db *bun.DB) error {
	if err := migrations.Run(ctx, db, tenancy.Migrations(), retention.Migrations(), testMigrations()); err != nil {
		return err
	}
	g, err := tenancy.InstallGuard(db, append(retention.Models(), (*response)(nil), (*tenancy.Member)(nil), (*tenancy.AuditEntry)(nil))...)
	g.Unreachable(retentionriver.Tables()...)
	return err
}

// TestTenantCannotReachRiversTables: River's tables lie in the SDK's
// database, beside the tenants' rows, and the Guard did not know them, so
// tenant B's ordinary statements on the SDK's handle read every job's
// arguments (the ids of other tenants and of their erasure requests),
// paused the queue and cancelled or deleted the jobs of every tenant —
// A's erasure and its closure's purge among them. Walled off
// (Guard.Unreachable with Tables), a statement naming one under a
// tenant's principal is refused in any form; the system principal still
// reads them, and River's own client works on.
func TestTenantCannotReachRiversTables(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		store, err := tenancy.NewStore(db, tenancy.WithClock(func() time.Time { return now }))
		require.NoError(t, err)
		e, err := retention.New(db, retention.WithStore(store), retention.WithClock(func() time.Time { return now }))
		require.NoError(t, err)
		tn, m, err := store.CreateTenant(context.Background(), tenancy.SignUp{TenantName: "river-b", Owner: tenancy.NewMember{Email: "b@example.com", Name: "B"}})
		require.NoError(t, err)
		b := tenancy.WithPrincipal(context.Background(), tenancy.Principal{TenantID: tn.ID, MemberID: m.ID, Role: tenancy.RoleOwner})

		insert, events := startRetention(t, db, e)
		insert(retentionriver.SweepArgs{}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})

		attacks := map[string]string{
			"read the jobs' arguments": "SELECT args FROM river_job",
			"read them in a subquery":  "SELECT 1 WHERE EXISTS (SELECT 1 FROM river_job WHERE kind = 'socialcrm.retention.request')",
			"read them in a CTE":       "WITH j AS (SELECT id FROM river_job) SELECT count(*) FROM j",
			"pause the queue":          "UPDATE river_queue SET paused_at = CURRENT_TIMESTAMP",
			"cancel every job":         "UPDATE river_job SET state = 'cancelled', finalized_at = CURRENT_TIMESTAMP WHERE state = 'scheduled'",
			"delete every job":         "DELETE FROM river_job",
			"depose the leader":        "DELETE FROM river_leader",
			"quoted and qualified":     `SELECT count(*) FROM "River_Job"`,
			"forget the migrations":    "DELETE FROM river_migration",
			"drop the jobs":            "DROP TABLE river_job",
			"index the leader":         "CREATE UNIQUE INDEX one ON river_leader (elected_at)",
		}
		if db.Name == "sqlite" {
			attacks["replace the leader"] = "INSERT OR REPLACE INTO river_leader (name, leader_id, elected_at, expires_at) VALUES ('default', 'b', CURRENT_TIMESTAMP, '2999-01-01')"
		}
		for name, q := range attacks {
			err := tenancy.RunInTx(b, db, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.ExecContext(ctx, q)
				return err
			})
			require.ErrorIs(t, err, tenancy.ErrUnscoped, name)
		}

		// The system principal still reads them, and the job B tried to
		// delete is still there and runs.
		var n int
		require.NoError(t, db.NewRaw("SELECT count(*) FROM river_job WHERE kind = ?", retentionriver.KindSweep).
			Scan(tenancy.System(context.Background(), "test"), &n))
		require.Equal(t, 1, n)
		insert(retentionriver.SweepArgs{}, nil)
		require.Equal(t, river.EventKindJobCompleted, await(t, events, retentionriver.KindSweep).Kind)
	}, walledSetup)
}

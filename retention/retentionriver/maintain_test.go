package retentionriver_test

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention/retentionriver"
)

func TestMaintenanceJob(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		var runs atomic.Int32
		fail := atomic.Bool{}
		workers := river.NewWorkers()
		require.NoError(t, retentionriver.AddMaintenance(workers, func(context.Context) error {
			runs.Add(1)
			if fail.Load() {
				return errors.New("platform down")
			}
			return nil
		}))
		cfg := &river.Config{
			Queues:   map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
			Workers:  workers,
			TestOnly: true,
		}
		var insert func(river.JobArgs, *river.InsertOpts)
		var events <-chan *river.Event
		if db.Name == "sqlite" {
			pool, err := sql.Open("sqlite", "file:"+db.Path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
			require.NoError(t, err)
			pool.SetMaxOpenConns(1)
			t.Cleanup(func() { pool.Close() })
			insert, events = runClient(t, riversqlite.New(pool), cfg)
		} else {
			// River's tables are created by the owner role and granted to
			// the application role, as in startRiver.
			ownerPool, err := pgxpool.New(t.Context(), db.OwnerDSN())
			require.NoError(t, err)
			m, err := rivermigrate.New(riverpgxv5.New(ownerPool), nil)
			require.NoError(t, err)
			_, err = m.Migrate(t.Context(), rivermigrate.DirectionUp, nil)
			ownerPool.Close()
			require.NoError(t, err)
			dbtest.GrantApp(t, db)
			pool, err := pgxpool.New(t.Context(), db.DSN())
			require.NoError(t, err)
			t.Cleanup(pool.Close)
			insert, events = runClient(t, riverpgxv5.New(pool), cfg)
		}
		insert(retentionriver.MaintainArgs{}, nil)
		ev := await(t, events, retentionriver.KindMaintain)
		require.Equal(t, river.EventKindJobCompleted, ev.Kind)
		require.EqualValues(t, 1, runs.Load())

		fail.Store(true)
		insert(retentionriver.MaintainArgs{}, nil)
		ev = await(t, events, retentionriver.KindMaintain)
		require.Equal(t, river.EventKindJobFailed, ev.Kind, "a failed run fails the job, for River to retry")
	}, setup)
	require.Len(t, retentionriver.MaintenanceJobs(time.Hour), 1)
	require.Error(t, retentionriver.AddMaintenance(river.NewWorkers(), nil))
}

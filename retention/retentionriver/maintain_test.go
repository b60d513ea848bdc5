package retentionriver_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
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
		insert, events := startRiver(t, db, cfg)
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

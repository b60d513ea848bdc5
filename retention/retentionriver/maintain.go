package retentionriver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// KindMaintain is the job kind of the connections' maintenance.
const KindMaintain = "socialcrm.connections.maintain"

// MaintainArgs is the job of one maintenance run over every platform and
// tenant: socialcrm.SDK.Maintain (revocation retries, OAuth state and
// webhook delivery pruning).
type MaintainArgs struct{}

// Kind implements river.JobArgs.
func (MaintainArgs) Kind() string { return KindMaintain }

// AddMaintenance registers the maintenance worker, which calls maintain
// (socialcrm.SDK.Maintain, adapted to drop its report):
//
//	retentionriver.AddMaintenance(workers, func(ctx context.Context) error {
//		_, err := sdk.Maintain(ctx)
//		return err
//	})
//
// A failing run fails the job, which River retries; each part of the
// maintenance is idempotent, and a revocation another process claimed is
// left to it.
func AddMaintenance(workers *river.Workers, maintain func(ctx context.Context) error) error {
	if maintain == nil {
		return errors.New("retentionriver: AddMaintenance: nil function")
	}
	if err := river.AddWorkerSafely(workers, &maintainWorker{fn: maintain}); err != nil {
		return fmt.Errorf("retentionriver: %w", err)
	}
	return nil
}

// MaintenanceJobs returns the maintenance as a periodic job that runs
// every interval (and once at start), unique within its period like
// PeriodicJobs.
func MaintenanceJobs(every time.Duration) []*river.PeriodicJob {
	return []*river.PeriodicJob{periodic(every, KindMaintain, MaintainArgs{})}
}

type maintainWorker struct {
	river.WorkerDefaults[MaintainArgs]
	fn func(ctx context.Context) error
}

func (w *maintainWorker) Work(ctx context.Context, _ *river.Job[MaintainArgs]) error {
	return w.fn(ctx)
}

// Package retentionriver runs the retention engine's operations as durable
// River jobs (https://riverqueue.com), on SQLite (riversqlite) or PostgreSQL
// (riverpgxv5): a periodic sweep, a periodic tenant purge (and a purge job
// scheduled at a closed tenant's due time), a periodic resumption of every
// open verified erasure (Engine.ResumeErasures: an erasure cut short
// finishes by itself), and one job per data-subject erasure request.
//
//	workers := river.NewWorkers()
//	retentionriver.AddWorkers(workers, engine)
//	client, err := river.NewClient(riversqlite.New(sqlDB), &river.Config{
//		Queues:       map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2}},
//		Workers:      workers,
//		PeriodicJobs: retentionriver.PeriodicJobs(time.Hour),
//	})
//	// when a tenant closes:
//	_, err = client.Insert(ctx, retentionriver.PurgeArgs{}, retentionriver.PurgeAt(tenant))
//	// when an erasure request arrives:
//	_, err = client.Insert(ctx, retentionriver.RequestArgs{TenantID: tid, RequestID: req.ID}, nil)
//
// # Concurrency
//
// The workers are safe for concurrent use; the engine's operations are
// idempotent, so River's retries and overlapping periodic runs do no harm.
//
// # Errors
//
// A failing operation fails the job, which River retries with backoff. An
// erasure request whose identity is not verified yet is snoozed (checked
// again after RequestRecheck); one that is closed completes the job.
//
// # Security
//
// Jobs carry only tenant and request ids, never subject identifiers. The
// workers act as the system principal named "retention", one tenant at a
// time, so the tenancy walls stay in force.
//
// River's tables (Tables) lie in the SDK's database and name every tenant
// (a request job's arguments hold its tenant's id); on a handle that
// tenants' code reaches, wall them off, so that a statement under a
// tenant's principal can neither read them nor pause the queue, hold the
// leadership (no periodic sweep, purge or erasure would run again), or
// insert, cancel or delete another tenant's jobs:
//
//	guard.Unreachable(retentionriver.Tables()...)
//
// River's own client connects with a pool of its own and is not affected.
//
// # Testing
//
// Tests run on SQLite and, when SOCIALCRM_TEST_POSTGRES is set, on
// PostgreSQL, with River's own migrations.
package retentionriver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// Tables returns the names of River's tables, for tenancy's
// Guard.Unreachable. The caller owns the returned slice.
func Tables() []string {
	return []string{"river_client", "river_client_queue", "river_job", "river_leader", "river_migration", "river_notification", "river_queue"}
}

// Job kinds.
const (
	KindSweep   = "socialcrm.retention.sweep"
	KindPurge   = "socialcrm.retention.purge"
	KindRequest = "socialcrm.retention.request"
	KindResume  = "socialcrm.retention.resume_erasures"
)

// RequestRecheck is how long an erasure job waits for a pending identity
// verification before it looks again.
const RequestRecheck = time.Hour

// SweepArgs is the job of Engine.Sweep over every tenant.
type SweepArgs struct{}

// Kind implements river.JobArgs.
func (SweepArgs) Kind() string { return KindSweep }

// PurgeArgs is the job of Engine.PurgeTenants: it purges every closed
// tenant whose grace period has ended.
type PurgeArgs struct{}

// Kind implements river.JobArgs.
func (PurgeArgs) Kind() string { return KindPurge }

// ResumeArgs is the job of Engine.ResumeErasures: it finishes every open,
// verified erasure request of every tenant.
type ResumeArgs struct{}

// Kind implements river.JobArgs.
func (ResumeArgs) Kind() string { return KindResume }

// RequestArgs is the job of one data-subject request.
type RequestArgs struct {
	TenantID  string `json:"tenant_id"`
	RequestID string `json:"request_id"`
}

// Kind implements river.JobArgs.
func (RequestArgs) Kind() string { return KindRequest }

// PurgeAt returns insert options that schedule a PurgeArgs job at the
// tenant's purge time (its closure plus grace).
func PurgeAt(t tenancy.Tenant) *river.InsertOpts {
	o := &river.InsertOpts{}
	if t.PurgeAfter != nil {
		o.ScheduledAt = *t.PurgeAfter
	}
	return o
}

// Option configures the workers.
type Option func(*config) error

type config struct{ now func() time.Time }

// WithClock sets the clock the workers pass to the engine as "now"
// (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errors.New("retentionriver: WithClock: nil clock")
		}
		c.now = now
		return nil
	}
}

// AddWorkers registers the sweep, purge, resume and request workers for
// engine.
func AddWorkers(workers *river.Workers, engine *retention.Engine, opts ...Option) error {
	if engine == nil {
		return errors.New("retentionriver: nil engine")
	}
	c := config{now: time.Now}
	for _, o := range opts {
		if o == nil {
			continue // a nil Option means the default
		}
		if err := o(&c); err != nil {
			return err
		}
	}
	if err := river.AddWorkerSafely(workers, &sweepWorker{e: engine, now: c.now}); err != nil {
		return fmt.Errorf("retentionriver: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &purgeWorker{e: engine, now: c.now}); err != nil {
		return fmt.Errorf("retentionriver: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &resumeWorker{e: engine}); err != nil {
		return fmt.Errorf("retentionriver: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &requestWorker{e: engine}); err != nil {
		return fmt.Errorf("retentionriver: %w", err)
	}
	return nil
}

// PeriodicJobs returns a sweep, a purge and a resumption of open erasures
// that run every interval (and once at start).
//
// Only the elected leader among the River clients of a database enqueues
// periodic jobs, and each job is unique within its period, so replicas
// that start together or change leader do not run a period's job twice.
func PeriodicJobs(every time.Duration) []*river.PeriodicJob {
	return []*river.PeriodicJob{
		periodic(every, KindSweep, SweepArgs{}),
		periodic(every, KindPurge, PurgeArgs{}),
		periodic(every, KindResume, ResumeArgs{}),
	}
}

// periodic is a job of args every interval (and at start), unique within
// its period.
func periodic(every time.Duration, id string, args river.JobArgs) *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(every), func() (river.JobArgs, *river.InsertOpts) {
		return args, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: every}}
	}, &river.PeriodicJobOpts{ID: id, RunOnStart: true})
}

func system(ctx context.Context) context.Context { return tenancy.System(ctx, "retention") }

type sweepWorker struct {
	river.WorkerDefaults[SweepArgs]
	e   *retention.Engine
	now func() time.Time
}

func (w *sweepWorker) Work(ctx context.Context, _ *river.Job[SweepArgs]) error {
	_, err := w.e.Sweep(system(ctx), w.now())
	return err
}

type purgeWorker struct {
	river.WorkerDefaults[PurgeArgs]
	e   *retention.Engine
	now func() time.Time
}

func (w *purgeWorker) Work(ctx context.Context, _ *river.Job[PurgeArgs]) error {
	_, err := w.e.PurgeTenants(system(ctx), w.now())
	return err
}

type resumeWorker struct {
	river.WorkerDefaults[ResumeArgs]
	e *retention.Engine
}

func (w *resumeWorker) Work(ctx context.Context, _ *river.Job[ResumeArgs]) error {
	_, err := w.e.ResumeErasures(system(ctx))
	return err
}

type requestWorker struct {
	river.WorkerDefaults[RequestArgs]
	e *retention.Engine
}

// Work carries out an erasure request once its subject's identity is
// verified. Other kinds need a person (an export has to be delivered, a
// rectification decided): their job only checks that the request exists.
func (w *requestWorker) Work(ctx context.Context, job *river.Job[RequestArgs]) error {
	tctx, err := tenancy.AsTenant(system(ctx), job.Args.TenantID)
	if err != nil {
		return river.JobCancel(err)
	}
	req, err := w.e.Get(tctx, job.Args.RequestID)
	if errors.Is(err, retention.ErrNotFound) {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	switch {
	case req.Status != retention.StatusOpen || req.Kind != retention.KindErasure:
		return nil
	case req.Verification == retention.VerificationFailed:
		return nil
	case req.Verification != retention.VerificationVerified:
		return river.JobSnooze(RequestRecheck)
	}
	_, err = w.e.Erase(tctx, req.ID)
	return err
}

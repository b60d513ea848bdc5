package main

import (
	"context"
	"time"

	"github.com/socialcrm/socialcrm/tenancy"
)

// jobReport is what the last scheduled run did, for /readyz and the console.
type jobReport struct {
	At            time.Time `json:"at"`
	Erased        int64     `json:"erased"`
	TenantsPurged int       `json:"tenants_purged"`
	// ErasuresResumed counts the open verified erasure requests finished.
	ErasuresResumed int `json:"erasures_resumed"`
	Overdue         int `json:"overdue_requests"`
	Revocations     int `json:"revocations_retried"`
	Errors          int `json:"errors"`
}

// runJobs runs the scheduled jobs once at start and then every interval
// until ctx ends: the retention sweep, purges of closed tenants past their
// grace, verified erasure requests left open (an erasure cut short by a
// crash or a deploy finishes by itself), retries of failed platform revocations, expired OAuth states and
// webhook keys, and the data-subject deadline check (overdue requests are
// logged for the tenant's staff). Every operation is idempotent, so a run
// cut short by shutdown is completed by the next one.
func (a *app) runJobs(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		a.runJobsOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *app) runJobsOnce(ctx context.Context) jobReport {
	now := a.now()
	rep := jobReport{At: now}
	sys := tenancy.System(ctx, "example-jobs")
	fail := func(job string, err error) {
		if err != nil && ctx.Err() == nil {
			rep.Errors++
			a.log.Error("scheduled job failed", "job", job, "err", err)
		}
	}
	sweep, err := a.sdk.Retention.Sweep(sys, now)
	fail("sweep", err)
	rep.Erased = sweep.Erased()
	purged, err := a.sdk.Retention.PurgeTenants(sys, now)
	fail("purge", err)
	rep.TenantsPurged = len(purged)
	resumed, err := a.sdk.Retention.ResumeErasures(sys)
	fail("resume erasures", err)
	rep.ErasuresResumed = len(resumed)
	// Requests recorded by an older version keep their identifiers in
	// clear until sealed here (once; then a no-op).
	_, err = a.sdk.Retention.ProtectIdentifiers(sys)
	fail("protect request identifiers", err)
	// Revocation retries of every platform, OAuth state and webhook
	// delivery pruning: the SDK's one maintenance entry point.
	maint, err := a.sdk.Maintain(ctx)
	fail("maintain connections", err)
	rep.Revocations = maint.Revoked
	_, err = a.callbacks.ResumeDeletions(sys)
	fail("meta deletions", err)
	tenants, err := a.sdk.Tenants.Tenants(sys, tenancy.TenantFilter{Status: tenancy.StatusActive})
	fail("tenants", err)
	for _, t := range tenants {
		if ctx.Err() != nil {
			break
		}
		tctx, err := tenancy.AsTenant(sys, t.ID)
		if err != nil {
			fail("as tenant", err)
			continue
		}
		overdue, err := a.sdk.Retention.Overdue(tctx, now)
		fail("overdue", err)
		for _, r := range overdue {
			a.log.Warn("data-subject request overdue", "tenant", t.ID, "request", r.ID, "kind", r.Kind, "due_at", r.DueAt)
		}
		rep.Overdue += len(overdue)
	}
	a.log.Info("scheduled jobs ran", "erased", rep.Erased, "tenants_purged", rep.TenantsPurged, "erasures_resumed", rep.ErasuresResumed,
		"overdue_requests", rep.Overdue, "errors", rep.Errors)
	a.jobsMu.Lock()
	a.lastJob = rep
	a.jobsMu.Unlock()
	return rep
}

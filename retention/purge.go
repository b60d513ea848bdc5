package retention

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/socialcrm/socialcrm/tenancy"
)

// PurgeResult is what PurgeTenants did to one tenant.
type PurgeResult struct {
	Tenant string `json:"tenant"`
	// Purged is true when the tenant was erased, its hooks ran and it was
	// marked purged; false when a legal hold kept some of its rows (the
	// tenant stays due and the next run tries again).
	Purged   bool              `json:"purged"`
	Receipts []CategoryReceipt `json:"receipts"`
}

// PurgeTenants purges every closed tenant whose grace period ended at or
// before now: it erases every category except those a legal-obligation
// rule keeps (they are swept by age later), in batches with receipts; rows
// of anonymizing categories are deleted, since nobody is left for whom an
// anonymized row would be kept
// (action "retention.purged"); then, if no legal hold kept anything, it
// calls the tenant purge hooks (crypto-shredding of the tenant's key) and
// marks the tenant purged. It must be called with the system principal.
// It is idempotent and resumable: an interrupted purge is finished by the
// next call. An error in one tenant does not stop the others.
func (e *Engine) PurgeTenants(ctx context.Context, now time.Time) ([]PurgeResult, error) {
	if err := requireSystem(ctx); err != nil {
		return nil, err
	}
	now = now.UTC().Truncate(time.Microsecond)
	tenants, err := e.store.Tenants(ctx, tenancy.TenantFilter{DueBy: now})
	if err != nil {
		return nil, err
	}
	var out []PurgeResult
	var errs []error
	for _, t := range tenants {
		tctx, err := tenancy.AsTenant(ctx, t.ID)
		if err != nil {
			return out, err
		}
		res, err := e.purge(tctx, t.ID, now)
		out = append(out, res)
		if err != nil {
			e.log.ErrorContext(ctx, "retention: purge failed", "tenant", t.ID, "err", err)
			errs = append(errs, fmt.Errorf("tenant %s: %w", t.ID, err))
		}
	}
	return out, errors.Join(errs...)
}

func (e *Engine) purge(ctx context.Context, tid string, now time.Time) (PurgeResult, error) {
	res := PurgeResult{Tenant: tid}
	if err := e.drainPending(ctx); err != nil {
		return res, err
	}
	hs, err := e.holds(ctx, tid)
	if err != nil {
		return res, err
	}
	var held int64
	for _, c := range e.Categories() {
		rule, _ := e.policy.rule(c.Name)
		if rule.Keep {
			continue
		}
		rc := CategoryReceipt{Tenant: tid, Category: c.Name, Policy: e.policy.Name, Rule: "tenant closed; purge after grace"}
		if c.Truncate != nil {
			if !hs.tenant {
				n, err := c.Truncate(ctx, now)
				if err != nil {
					return res, fmt.Errorf("retention: truncate %s: %w", c.Name, err)
				}
				rc.Erased = n
			}
		} else {
			j := &job{cat: c, tid: tid, action: "retention.purged", rc: &rc, delete: true}
			if c.Table == TableHolds {
				j.where("r.released_at IS NOT NULL") // active holds outlive the purge they stop
			}
			if err := e.run(ctx, j, hs); err != nil {
				return res, err
			}
		}
		held += rc.Held
		if rc.Erased != 0 || rc.Held != 0 {
			res.Receipts = append(res.Receipts, rc)
		}
	}
	if held > 0 || hs.tenant {
		return res, nil
	}
	for _, hook := range e.purgeHooks {
		if err := hook(ctx); err != nil {
			return res, fmt.Errorf("retention: tenant purge hook: %w", err)
		}
		e.point("purge.hook")
	}
	if _, err := e.store.MarkPurged(ctx); err != nil {
		return res, err
	}
	res.Purged = true
	return res, nil
}

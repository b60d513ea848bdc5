package retention

import (
	"context"
	"errors"
	"fmt"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
)

// ResumeErasures runs the AfterErase hooks a crash left due (see
// Category.AfterErase) and carries out every open, verified erasure
// request of every tenant: those whose Erase was interrupted (a crash, a deploy, an error of
// a hook) and those verified but never started. It runs as the system
// principal (tenancy.ErrNotSystem otherwise), like Sweep, and is meant for
// the same schedule: an erasure never stays half done until someone
// notices. Each returned Receipt counts every run of its request. It
// carries on after an error in one request and returns the errors joined.
func (e *Engine) ResumeErasures(ctx context.Context) ([]Receipt, error) {
	if err := requireSystem(ctx); err != nil {
		return nil, err
	}
	tenants, err := e.store.Tenants(ctx, tenancy.TenantFilter{})
	if err != nil {
		return nil, err
	}
	var out []Receipt
	var errs []error
	for _, t := range tenants {
		tctx, err := tenancy.AsTenant(ctx, t.ID)
		if err != nil {
			return out, err
		}
		if err := e.drainPending(tctx); err != nil {
			errs = append(errs, fmt.Errorf("retention: resume work of tenant %s: %w", t.ID, err))
			continue
		}
		var ids []string
		err = tenancy.RunInTx(tctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewSelect().Model((*Request)(nil)).Column("id").
				Where("status = ?", StatusOpen).Where("kind = ?", KindErasure).Where("verification = ?", VerificationVerified).
				Order("due_at", "id").Scan(ctx, &ids)
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("retention: resume erasures of tenant %s: %w", t.ID, err))
			continue
		}
		for _, id := range ids {
			rc, err := e.Erase(tctx, id)
			if errors.Is(err, ErrClosed) {
				continue // completed by a concurrent run
			}
			if err != nil {
				e.log.ErrorContext(ctx, "retention: resume erasure failed", "tenant", t.ID, "request", id, "err", err)
				errs = append(errs, fmt.Errorf("retention: resume erasure %s of tenant %s: %w", id, t.ID, err))
				continue
			}
			out = append(out, rc)
		}
	}
	return out, errors.Join(errs...)
}

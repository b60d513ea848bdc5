package retention

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
)

// Report is what an operation over several categories (or tenants) did:
// one receipt per category and tenant that had anything due.
type Report struct {
	Receipts []CategoryReceipt `json:"receipts"`
}

// Erased sums the erased rows of every receipt.
func (r Report) Erased() int64 {
	var n int64
	for _, rc := range r.Receipts {
		n += rc.Erased
	}
	return n
}

// Held sums the held rows of every receipt.
func (r Report) Held() int64 {
	var n int64
	for _, rc := range r.Receipts {
		n += rc.Held
	}
	return n
}

func (r *Report) add(rc CategoryReceipt) {
	if rc.Erased != 0 || rc.Held != 0 || rc.Kept != 0 || rc.Pending != 0 {
		r.Receipts = append(r.Receipts, rc)
	}
}

func requireSystem(ctx context.Context) error {
	if p, ok := tenancy.FromContext(ctx); !ok || !p.IsSystem() {
		return tenancy.ErrNotSystem
	}
	return nil
}

// Sweep erases, in every tenant, the rows that the policy's rules make due
// at now, in batches of the engine's batch size, each batch in its own
// transaction together with its receipt (audit action "retention.swept").
// It must be called with the system principal (tenancy.System). It is
// idempotent and resumable: a sweep interrupted anywhere leaves whole
// batches erased with their receipts and nothing half-done, and the next
// sweep selects what is still due. An error in one tenant does not stop
// the others; all errors are returned joined, with the report of what was
// done.
//
// For each tenant, the sweep start hooks (WithSweepStartHook) run first,
// outside any transaction. A category whose BeforeErase hook kept rows
// for work still to be done outside the database (queued platform
// revokes: the tenant's sweep then stops with the hook's error) has a
// receipt in the report that counts them as Pending.
func (e *Engine) Sweep(ctx context.Context, now time.Time) (Report, error) {
	var rep Report
	if err := requireSystem(ctx); err != nil {
		return rep, err
	}
	if err := e.policy.validate(e.catMap(), false); err != nil {
		return rep, err
	}
	now = now.UTC().Truncate(time.Microsecond)
	tenants, err := e.store.Tenants(ctx, tenancy.TenantFilter{})
	if err != nil {
		return rep, err
	}
	var errs []error
	for _, t := range tenants {
		tctx, err := tenancy.AsTenant(ctx, t.ID)
		if err != nil {
			return rep, err
		}
		e.point("tenant")
		if err := e.sweepTenant(tctx, t.ID, now, &rep); err != nil {
			e.log.ErrorContext(ctx, "retention: sweep failed", "tenant", t.ID, "err", err)
			errs = append(errs, fmt.Errorf("tenant %s: %w", t.ID, err))
		}
	}
	if rep.Erased() > 0 {
		if err := e.flushLog(ctx); err != nil { // walflush.go
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

// WithSweepStartHook adds a hook that Sweep calls for each tenant before
// it erases anything (and after the AfterErase work a crash left),
// outside any transaction, with a context acting on that tenant as the
// system in which SweepCutoff reports the sweep's cutoffs: for work
// outside the database that the categories' erasure then finds done, so
// that no network call holds a batch's transaction (the root package
// passes social.Store.RetryRevocations: the queued platform revokes the
// sweep is about to erase). An error stops the tenant's sweep; the next
// sweep calls the hook again. Hooks must be idempotent.
func WithSweepStartHook(hook func(ctx context.Context) error) Option {
	return func(e *Engine) error {
		if hook == nil {
			return errors.New("retention: WithSweepStartHook: nil hook")
		}
		e.sweepStarts = append(e.sweepStarts, hook)
		return nil
	}
}

type sweepKey struct{}

// SweepCutoff reports, to the hooks a sweep calls (WithSweepStartHook,
// and a category's BeforeErase and AfterErase hooks), the cutoff of
// category in that sweep: the sweep erases the category's rows dated at
// or before it. ok is false outside a sweep, and for a category the
// policy does not sweep by age (no rule, or a rule triggered by an
// event).
func SweepCutoff(ctx context.Context, category string) (cutoff time.Time, ok bool) {
	cs, _ := ctx.Value(sweepKey{}).(map[string]time.Time)
	cutoff, ok = cs[category]
	return cutoff, ok
}

func (e *Engine) sweepTenant(ctx context.Context, tid string, now time.Time, rep *Report) error {
	cutoffs := map[string]time.Time{}
	for _, r := range e.policy.Rules {
		if r.Event == "" {
			cutoffs[r.Category] = now.Add(-r.Period)
		}
	}
	ctx = context.WithValue(ctx, sweepKey{}, cutoffs)
	if err := e.drainPending(ctx); err != nil {
		return err
	}
	for _, hook := range e.sweepStarts {
		if err := hook(ctx); err != nil {
			return fmt.Errorf("retention: sweep start hook: %w", err)
		}
	}
	hs, err := e.holds(ctx, tid)
	if err != nil {
		return err
	}
	for _, c := range e.Categories() {
		r, ok := e.policy.rule(c.Name)
		if !ok {
			continue
		}
		e.point("category")
		cutoff := now.Add(-r.Period)
		rc := CategoryReceipt{Tenant: tid, Category: c.Name, Policy: e.policy.Name, Rule: r.String(), Window: window(cutoff)}
		switch {
		case r.Event != "":
			if err := e.sweepEvent(ctx, c, r, tid, cutoff, hs, &rc); err != nil {
				return unfinishedReceipt(err, rc, rep)
			}
		case c.Truncate != nil:
			// The truncation has no batch whose selection a hold placed
			// since the sweep began would stop (run): it reads the holds
			// as they are now, and the categories after it use them too.
			if !hs.tenant {
				if hs, err = e.holds(ctx, tid); err != nil {
					return err
				}
			}
			if hs.tenant {
				continue // the audit log under a tenant hold stays whole
			}
			n, err := c.Truncate(ctx, cutoff)
			if err != nil {
				return fmt.Errorf("retention: truncate %s: %w", c.Name, err)
			}
			e.point("truncated")
			if n > 0 {
				rc.Erased = n
				j := &job{cat: c, tid: tid, action: "retention.swept", rc: &rc}
				if err := tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
					return e.receipt(ctx, tx, j, n)
				}); err != nil {
					return err
				}
			}
		default:
			j := &job{cat: c, tid: tid, action: "retention.swept", rc: &rc}
			e.whereDue(j, c, cutoff)
			if err := e.run(ctx, j, hs); err != nil {
				return unfinishedReceipt(err, rc, rep)
			}
		}
		rep.add(rc)
	}
	if hs.any {
		return nil // held rows may outlive a hold: keep their events
	}
	return e.cleanEvents(ctx, now)
}

// unfinishedReceipt returns err, the failure of a category's sweep, after
// adding its receipt to rep when a BeforeErase hook kept rows for work
// still to be done outside the database (a platform revoke): the receipt
// counts them as Pending, beside what the batches before erased.
func unfinishedReceipt(err error, rc CategoryReceipt, rep *Report) error {
	var unfinished *UnfinishedError
	if errors.As(err, &unfinished) {
		rc.Pending += int64(len(unfinished.IDs))
		rep.add(rc)
	}
	return err
}

// sweepEvent erases, for each event of the rule's name older than cutoff,
// the subject's rows dated at or before the event.
func (e *Engine) sweepEvent(ctx context.Context, c Category, r Rule, tid string, cutoff time.Time, hs holdState, rc *CategoryReceipt) error {
	var evs []event
	err := tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&evs).Where("name = ?", r.Event).Where("at <= ?", cutoff).Order("at", "id").Scan(ctx)
	})
	if err != nil {
		return fmt.Errorf("retention: read events: %w", err)
	}
	for _, ev := range evs {
		tmpl, ok := c.subjectCond(e.db.Dialect().Name(), ev.SubjectKind)
		if !ok {
			continue
		}
		// The identifier is sealed under WithIdentifierProtection: opened
		// here, in memory, to find the subject's rows.
		if err := e.revealEvent(ctx, &ev); err != nil {
			return err
		}
		cond, args := bind(tmpl, ev.SubjectValue, tid)
		j := &job{cat: c, tid: tid, action: "retention.swept", rc: rc,
			meta: map[string]string{"event": ev.Name, "event_at": window(ev.At)}}
		j.where(cond, args...)
		e.whereDue(j, c, ev.At)
		if err := e.run(ctx, j, hs); err != nil {
			return err
		}
	}
	return nil
}

// whereDue confines j to the rows of c whose time is at or before cutoff,
// with c's TimeIndex condition where it has one.
func (e *Engine) whereDue(j *job, c Category, cutoff time.Time) {
	j.where("r."+c.Time+" <= ?", cutoff)
	if c.TimeIndex == nil {
		return
	}
	if cond, args := c.TimeIndex(e.db.Dialect().Name(), cutoff); cond != "" {
		j.where(cond, args...)
	}
}

// cleanEvents deletes events that every rule triggered by them has
// processed. Until then a crashed sweep finds them again.
func (e *Engine) cleanEvents(ctx context.Context, now time.Time) error {
	longest := map[string]time.Duration{}
	for _, r := range e.policy.Rules {
		if r.Event != "" && r.Period > longest[r.Event] {
			longest[r.Event] = r.Period
		}
	}
	for _, name := range sortedKeys(longest) {
		err := tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewDelete().Model((*event)(nil)).Where("name = ?", name).Where("at <= ?", now.Add(-longest[name])).Exec(ctx)
			return err
		})
		if err != nil {
			return fmt.Errorf("retention: clean events: %w", err)
		}
		e.point("events.cleaned")
	}
	return nil
}

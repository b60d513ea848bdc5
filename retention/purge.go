package retention

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/tenancy"
)

// PurgeResult is what PurgeTenants did to one tenant.
type PurgeResult struct {
	Tenant string `json:"tenant"`
	// Purged is true when the tenant was erased, its hooks ran and it was
	// marked purged; false when a legal hold kept some of its rows (the
	// tenant stays due and the next run tries again).
	Purged bool `json:"purged"`
	// Receipts has one receipt per category that erased or held rows;
	// when a category's hook kept rows for work still to be done outside
	// the database (queued platform revokes: the purge then stops with
	// the hook's error), its receipt counts them as Pending.
	Receipts []CategoryReceipt `json:"receipts"`
}

// PurgeTenants purges every closed tenant whose grace period ended at or
// before now: it erases every category except those a legal-obligation
// rule keeps (they are swept by age later), in batches with receipts; rows
// of anonymizing categories are deleted, since nobody is left for whom an
// anonymized row would be kept
// (action "retention.purged"); the categories that shred the tenant's
// sealed data (Category.Shreds: the vault's keys) go last, and only when
// nothing is left that must stay readable; then, if no legal hold kept
// anything and no rule kept rows readable (Rule.Readable: receipts count
// them Kept), it calls the tenant purge hooks (crypto-shredding of the
// tenant's key) and marks the tenant purged. A tenant left unpurged is
// purged again by each later run, until nothing keeps it. It must be called with the system principal.
// It is idempotent and resumable: an interrupted purge is finished by the
// next call. An error in one tenant does not stop the others. Runs that
// meet share the work: a tenant whose purge another run holds (in this
// process, or on PostgreSQL in any process) is left to it and left out of
// the result, and so is one that run finished meanwhile.
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
		release, ok, err := e.claim(tctx, t.ID)
		if err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: %w", t.ID, err))
			continue
		}
		if !ok {
			continue // another run is purging it
		}
		res, err := e.purge(tctx, t.ID, now)
		release()
		if errors.Is(err, errPurgedMeanwhile) {
			continue
		}
		out = append(out, res)
		if err != nil {
			e.log.ErrorContext(ctx, "retention: purge failed", "tenant", t.ID, "err", err)
			errs = append(errs, fmt.Errorf("tenant %s: %w", t.ID, err))
		}
	}
	if len(out) > 0 {
		if err := e.flushLog(ctx); err != nil { // walflush.go
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// errPurgedMeanwhile: the tenant was purged by another run between the
// listing of due tenants and this run's claim.
var errPurgedMeanwhile = errors.New("retention: tenant purged by another run")

// purgeLockSpace is the first key of the PostgreSQL advisory locks that
// claim a tenant's purge (the second is a hash of the tenant id).
const purgeLockSpace int32 = 0x70757267 // "purg"

// claim makes this run the only one purging tid until release is called:
// ok is false when another run holds it — in this process, or, on
// PostgreSQL, in any process on the database (a session advisory lock,
// which the server releases if the process dies). Two runs that meet
// would otherwise both erase the tenant's categories, the second deleting
// the key tombstone the first one's hooks wrote and destroying the key
// (and marking the tenant) a second time.
func (e *Engine) claim(ctx context.Context, tid string) (release func(), ok bool, err error) {
	if _, busy := e.purging.LoadOrStore(tid, struct{}{}); busy {
		return nil, false, nil
	}
	local := func() { e.purging.Delete(tid) }
	db, isDB := e.db.(pool)
	if !isDB || db.Dialect().Name() != dialect.PG {
		return local, true, nil
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		local()
		return nil, false, fmt.Errorf("retention: claim purge: %w", err)
	}
	var got bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock(?, hashtext(?))", purgeLockSpace, tid).Scan(&got); err != nil || !got {
		conn.Close()
		local()
		if err != nil {
			return nil, false, fmt.Errorf("retention: claim purge: %w", err)
		}
		return nil, false, nil
	}
	return func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(?, hashtext(?))", purgeLockSpace, tid)
		conn.Close()
		local()
	}, true, nil
}

// WithTenantPurgeStartHook adds a hook that PurgeTenants calls for each
// tenant it purges before it erases anything (and after the AfterErase
// work a crash left), outside any transaction, with a context acting on
// that tenant as the system that PurgeDue recognizes: for work outside
// the database that the categories' erasure then finds done, so that no
// network call holds a batch's transaction (the root package passes
// social.Store.RetryRevocations: the tenant's queued platform revokes).
// An error stops the tenant's purge; the next run calls the hook again.
// Hooks must be idempotent.
func WithTenantPurgeStartHook(hook func(ctx context.Context) error) Option {
	return func(e *Engine) error {
		if hook == nil {
			return errors.New("retention: WithTenantPurgeStartHook: nil hook")
		}
		e.purgeStarts = append(e.purgeStarts, hook)
		return nil
	}
}

type purgeDueKey struct{}

// PurgeDue reports, to a category's BeforeErase hook, whether it runs in a
// tenant purge and when that purge was due (the end of the tenant's grace
// period): a hook that waits on something outside the database (a
// platform's revoke) gives up once the purge is overdue by a bound it
// documents, so that the purge completes in bounded time.
func PurgeDue(ctx context.Context) (time.Time, bool) {
	t, ok := ctx.Value(purgeDueKey{}).(time.Time)
	return t, ok
}

func (e *Engine) purge(ctx context.Context, tid string, now time.Time) (PurgeResult, error) {
	res := PurgeResult{Tenant: tid}
	// A run that listed the tenant before another one finished purging it
	// finds it purged once it holds the claim.
	if t, err := e.store.Tenant(ctx); err != nil {
		return res, err
	} else if t.Status == tenancy.StatusPurged {
		return res, errPurgedMeanwhile
	} else if t.PurgeAfter != nil {
		ctx = context.WithValue(ctx, purgeDueKey{}, t.PurgeAfter.UTC())
	}
	if err := e.drainPending(ctx); err != nil {
		return res, err
	}
	for _, hook := range e.purgeStarts {
		if err := hook(ctx); err != nil {
			return res, fmt.Errorf("retention: tenant purge start hook: %w", err)
		}
	}
	hs, err := e.holds(ctx, tid)
	if err != nil {
		return res, err
	}
	var held int64
	cats := e.Categories()
	// The categories that shred the tenant's sealed data go last, and only
	// when nothing was held (see Category.Shreds).
	slices.SortStableFunc(cats, func(a, b Category) int {
		switch {
		case a.Shreds == b.Shreds:
			return 0
		case a.Shreds:
			return 1
		}
		return -1
	})
	var kept int64 // rows that Keep and Readable rules keep readable
	for _, c := range cats {
		rule, _ := e.policy.rule(c.Name)
		if rule.Keep {
			if rule.Readable {
				n, err := e.count(ctx, c, tid, nil, nil)
				if err != nil {
					return res, err
				}
				if n > 0 {
					kept += n
					res.Receipts = append(res.Receipts, CategoryReceipt{Tenant: tid, Category: c.Name, Policy: e.policy.Name,
						Rule: "tenant closed; kept readable for its legal period", Kept: n})
				}
			}
			continue
		}
		if c.Shreds && (held > 0 || hs.tenant || kept > 0) {
			continue
		}
		e.point("purge.category")
		rc := CategoryReceipt{Tenant: tid, Category: c.Name, Policy: e.policy.Name, Rule: "tenant closed; purge after grace"}
		if c.Truncate != nil {
			// The truncation has no batch whose selection a hold placed
			// since the purge began would stop (run): it reads the holds
			// as they are now, and the categories after it use them too
			// (a tenant hold then also keeps the tenant from being marked
			// purged), as a sweep does.
			if !hs.tenant {
				if hs, err = e.holds(ctx, tid); err != nil {
					return res, err
				}
			}
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
				// Rows a hook kept for work still to be done outside the
				// database (a platform revoke) are in the receipt, pending.
				var unfinished *UnfinishedError
				if errors.As(err, &unfinished) {
					rc.Pending = int64(len(unfinished.IDs))
					res.Receipts = append(res.Receipts, rc)
				}
				return res, err
			}
		}
		held += rc.Held
		if rc.Erased != 0 || rc.Held != 0 {
			res.Receipts = append(res.Receipts, rc)
		}
	}
	if held > 0 || hs.tenant || kept > 0 {
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

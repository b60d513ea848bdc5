package retention

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
)

// TablePending records the rows whose category's AfterErase hook is still
// to run: written in the transaction of the batch that erased them,
// removed once the hook succeeded.
const TablePending = "socialcrm_retention_pending"

// CategoryPending is the category of TablePending.
const CategoryPending = "retention.pending"

// pending is one erased row whose AfterErase hook has not run yet.
type pending struct {
	bun.BaseModel `bun:"table:socialcrm_retention_pending,alias:rpd"`
	tenancy.Owned

	ID       string    `bun:"id,pk"`
	Category string    `bun:"category,notnull"`
	RecordID string    `bun:"record_id,notnull"`
	At       time.Time `bun:"at,notnull"`
}

// recordPending records, in the batch's transaction, that the rows ids of
// c were erased and its AfterErase hook is due for them.
func (e *Engine) recordPending(ctx context.Context, tx bun.Tx, c Category, ids []string) error {
	return RecordAfterErase(ctx, tx, c.Name, ids, e.clock())
}

// RecordAfterErase records, in tx, that the rows ids of category were
// deleted by their own package (a record deleted through its repository,
// not by the engine) and that the category's AfterErase hook is due for
// them, at. Once tx has committed, the package runs the hook's work itself
// and calls ClearAfterErase; if it cannot (a crash, a failure), the engine
// runs the hook at its next visit of the tenant (Erase, Sweep,
// PurgeTenants, ResumeErasures), as for its own erasures. So work that
// cannot be rolled back (deleting stored files) happens only once the rows
// are gone for good, and happens even when the process dies first. ctx
// carries the tenant; the records belong to category CategoryPending.
func RecordAfterErase(ctx context.Context, tx bun.IDB, category string, ids []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	rows := make([]pending, len(ids))
	for i, id := range ids {
		rows[i] = pending{ID: tenancy.NewID(), Category: category, RecordID: id, At: at}
	}
	if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
		return fmt.Errorf("retention: %s: record after-erase work: %w", category, err)
	}
	return nil
}

// ClearAfterErase removes the records RecordAfterErase wrote for ids of
// category, once their work is done, in its own transaction on db.
func ClearAfterErase(ctx context.Context, db bun.IDB, category string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	err := tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewDelete().Model((*pending)(nil)).Where("category = ?", category).Where("record_id IN (?)", bun.In(ids)).Exec(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("retention: %s: clear after-erase work: %w", category, err)
	}
	return nil
}

// afterErase runs c's AfterErase hook for ids, whose batch has committed,
// then removes their pending records.
func (e *Engine) afterErase(ctx context.Context, c Category, ids []string) error {
	if err := c.AfterErase(ctx, ids); err != nil {
		return fmt.Errorf("retention: %s: after erase: %w", c.Name, err)
	}
	e.point("after.hooked")
	err := tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewDelete().Model((*pending)(nil)).Where("category = ?", c.Name).Where("record_id IN (?)", bun.In(ids)).Exec(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("retention: %s: after erase: %w", c.Name, err)
	}
	return nil
}

// drainPending runs the AfterErase hooks that a crash (or a failing hook)
// left due in the context's tenant: each Erase, Sweep, PurgeTenants and
// ResumeErasures calls it for the tenants it visits before anything else,
// so that, say, attachment bytes whose rows were erased never outlive the
// next run.
func (e *Engine) drainPending(ctx context.Context) error {
	cats := e.catMap()
	for {
		var ps []pending
		err := tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewSelect().Model(&ps).Order("at", "id").Limit(int64(e.batch)).Scan(ctx)
		})
		if err != nil {
			return fmt.Errorf("retention: read after-erase work: %w", err)
		}
		if len(ps) == 0 {
			return nil
		}
		byCat := map[string][]string{}
		for _, p := range ps {
			byCat[p.Category] = append(byCat[p.Category], p.RecordID)
		}
		for _, name := range sortedKeys(byCat) {
			c, ok := cats[name]
			if !ok || c.AfterErase == nil {
				return fmt.Errorf("retention: after-erase work for %s, which has no AfterErase hook registered", name)
			}
			if err := e.afterErase(ctx, c, byCat[name]); err != nil {
				return err
			}
		}
	}
}

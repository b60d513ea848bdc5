package retention

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/tenancy"
)

// CategoryReceipt says what one operation did to one category of one
// tenant. It is also written, batch by batch, to the tenant's audit log.
type CategoryReceipt struct {
	Tenant   string `json:"tenant"`
	Category string `json:"category"`
	// Erased counts rows deleted or anonymized.
	Erased int64 `json:"erased"`
	// Held counts rows that were due but survived under a legal hold.
	Held int64 `json:"held"`
	// Kept counts rows spared by a legal-obligation keep.
	Kept int64 `json:"kept"`
	// Policy and Rule name what made the rows due; Window is the cutoff
	// (rows dated at or before it were due), empty when time did not count.
	Policy string `json:"policy"`
	Rule   string `json:"rule"`
	Window string `json:"window,omitempty"`
	// Pending counts, for an erasure request, what the category still
	// holds about the subject once the erasure is done (Category.Pending:
	// a platform revoke still queued, with its sealed tokens, until the
	// platform accepts it); for a sweep or a tenant purge, the due rows a
	// BeforeErase hook kept (*UnfinishedError) for work still to be done
	// outside the database.
	Pending int64 `json:"pending,omitempty"`
}

// job is one erase over one category of one tenant.
type job struct {
	cat    Category
	tid    string
	conds  []string // ANDed, in addition to the tenant
	args   []any
	action string
	meta   map[string]string
	// delete deletes rows even when the category anonymizes (tenant purge:
	// nobody is left for whom an anonymized row is kept).
	delete bool
	rc     *CategoryReceipt
	// request is the erasure request the job carries out ("" for sweeps
	// and purges): each batch adds its count to the request's.
	request string
}

func (j *job) where(cond string, args ...any) {
	j.conds = append(j.conds, cond)
	j.args = append(j.args, args...)
}

// holdState is what a tenant's active holds are, read once per operation.
type holdState struct {
	any, tenant bool
	// subjects are the active subject holds, their identifiers opened,
	// and held what each one's identifier resolves to, as a request by it
	// would (Resolve: an e-mail address leads to the contacts holding it
	// sealed, their duplicates and conversations): exclusions binds those
	// keys as arguments (a sealed identifier cannot be compared in SQL),
	// and newHold treats any other subject hold as new.
	subjects []Hold
	held     []subjectKeys
}

func (e *Engine) holds(ctx context.Context, tid string) (holdState, error) {
	var hs holdState
	err := tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		var scopes []string
		err := tx.NewSelect().Model((*Hold)(nil)).Column("scope").Where("released_at IS NULL").
			Apply(tenancy.Scope(ctx)).Distinct().Scan(ctx, &scopes)
		for _, s := range scopes {
			hs.any = true
			hs.tenant = hs.tenant || s == string(HoldTenant)
		}
		return err
	})
	if err != nil {
		return hs, fmt.Errorf("retention: read holds: %w", err)
	}
	if hs.any && !hs.tenant {
		if hs.subjects, err = e.activeHolds(ctx, HoldSubject); err != nil {
			return hs, fmt.Errorf("retention: read holds: %w", err)
		}
		// A subject hold placed between the two reads is one the
		// operation knows: newHold compares ids.
		for _, h := range hs.subjects {
			// Resolved now, as a request by the identifier would be:
			// rows written since the hold was placed (a new contact with
			// the held address) are held too. A kind no resolver knows
			// holds the rows that find it directly.
			keys, err := e.resolveFrom(ctx, Keys{h.SubjectKind: {h.SubjectValue}})
			if err != nil {
				return hs, fmt.Errorf("retention: resolve hold %s: %w", h.ID, err)
			}
			s, err := e.subjectOf(ctx, keys)
			if err != nil {
				return hs, fmt.Errorf("retention: resolve hold %s: %w", h.ID, err)
			}
			hs.held = append(hs.held, s)
		}
	}
	return hs, nil
}

// exclusions returns the condition that keeps held rows out, on a
// database of dialect d.
func exclusions(d dialect.Name, c Category, tid string, hs holdState) (string, []any) {
	var conds []string
	args := []any{tid, c.Name}
	held := "h.category = ?"
	if c.HeldWith != "" {
		// Category.HeldWith: a record hold on the owner's row holds these
		// rows too.
		held = "h.category IN (?, ?)"
		args = append(args, c.HeldWith)
	}
	conds = append(conds, "CAST(r."+c.idColumn()+" AS TEXT) NOT IN (SELECT h.record_id FROM "+TableHolds+
		" h WHERE h.tenant_id = ? AND h.scope = 'record' AND "+held+" AND h.released_at IS NULL)")
	for _, s := range hs.held {
		cond, cargs, ok := subjectMatch(d, c, s, tid)
		if !ok {
			continue
		}
		conds = append(conds, "("+cond+") IS NOT TRUE")
		args = append(args, cargs...)
	}
	return strings.Join(conds, " AND "), args
}

// notAnonymized keeps rows already anonymized out, so that anonymizing is
// idempotent and a batch loop always ends.
func notAnonymized(c Category) (string, []any) {
	if len(c.Erase.Anonymize) == 0 {
		return "", nil
	}
	var parts []string
	var args []any
	for _, col := range c.Erase.columns() {
		v := c.Erase.Anonymize[col]
		if v == nil {
			parts = append(parts, "r."+col+" IS NULL")
			continue
		}
		parts = append(parts, "r."+col+" IS NOT DISTINCT FROM ?")
		args = append(args, v)
	}
	return "NOT (" + strings.Join(parts, " AND ") + ")", args
}

func (e *Engine) count(ctx context.Context, c Category, tid string, conds []string, args []any) (int64, error) {
	var n int64
	q := "SELECT count(*) FROM " + c.Table + " AS r WHERE r.tenant_id = ?"
	for _, cond := range conds {
		q += " AND (" + cond + ")"
	}
	err := tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewRaw(q, append([]any{tid}, args...)...).Scan(ctx, &n)
	})
	if err != nil {
		return 0, fmt.Errorf("retention: count %s: %w", c.Name, err)
	}
	return n, nil
}

// run erases the rows of j in batches, each in its own transaction with its
// receipt, and fills j.rc.
//
// hs is what the tenant's holds were when the operation began; a hold
// placed while it runs must hold too. Each batch therefore selects
// nothing once a hold appears that hs does not account for (any hold,
// when hs had none; a tenant hold, when hs had only others): the
// condition costs the statement one look-up of the holds' index, not one
// per row. When a batch so selects nothing and would end the run, the
// same transaction asks whether such a hold exists, and if so the run
// reads the holds again and goes on under them (counting what they hold).
func (e *Engine) run(ctx context.Context, j *job, hs holdState) error {
	c := j.cat
	if j.delete {
		c.Erase = Erase{}
	}
	if n, a := notAnonymized(c); n != "" {
		j.where(n, a...)
	}
	for {
		again, err := e.runUnder(ctx, j, c, hs)
		if err != nil || !again {
			return err
		}
		if hs, err = e.holds(ctx, j.tid); err != nil {
			return err
		}
	}
}

// newHold is the condition, on the holds of tid, of a hold that hs does
// not account for: any active hold when hs had none, an active tenant hold
// or a subject hold it did not read when it had only record or subject
// holds.
func newHold(hs holdState, tid string) (string, []any) {
	q := "SELECT 1 FROM " + TableHolds + " h WHERE h.tenant_id = ? AND h.released_at IS NULL"
	args := []any{tid}
	if hs.any {
		// A subject hold is excluded by its identifier, read with hs: one
		// placed since is new.
		known := "h.scope = 'subject'"
		if len(hs.subjects) > 0 {
			ids := make([]string, len(hs.subjects))
			for i, h := range hs.subjects {
				ids[i] = h.ID
			}
			known += " AND h.id NOT IN (?)"
			args = append(args, bun.In(ids))
		}
		q += " AND (h.scope = 'tenant' OR (" + known + "))"
	}
	return q, args
}

// holdAppeared reports, in tx, whether a hold hs does not account for is
// active now.
func (e *Engine) holdAppeared(ctx context.Context, tx bun.Tx, hs holdState, tid string) (bool, error) {
	q, a := newHold(hs, tid)
	var found bool
	if err := tx.NewRaw("SELECT EXISTS ("+q+")", a...).Scan(ctx, &found); err != nil {
		return false, fmt.Errorf("retention: read holds: %w", err)
	}
	return found, nil
}

// runUnder is run under the holds hs; again reports that a hold hs does
// not account for appeared meanwhile and stopped the batches.
func (e *Engine) runUnder(ctx context.Context, j *job, c Category, hs holdState) (again bool, err error) {
	if hs.tenant {
		n, err := e.count(ctx, c, j.tid, j.conds, j.args)
		if err != nil {
			return false, err
		}
		j.rc.Held += n
		return false, e.heldReceipt(ctx, j)
	}
	conds, args := j.conds, j.args
	if hs.any {
		total, err := e.count(ctx, c, j.tid, conds, args)
		if err != nil {
			return false, err
		}
		ex, exArgs := exclusions(e.db.Dialect().Name(), c, j.tid, hs)
		conds = append(append([]string(nil), conds...), ex)
		args = append(append([]any(nil), args...), exArgs...)
		free, err := e.count(ctx, c, j.tid, conds, args)
		if err != nil {
			return false, err
		}
		j.rc.Held += total - free
	}
	guard, guardArgs := newHold(hs, j.tid)
	conds = append(append([]string(nil), conds...), "NOT EXISTS ("+guard+")")
	args = append(append([]any(nil), args...), guardArgs...)
	// A deleting category without a BeforeErase hook erases each batch
	// with one statement, the selection its subquery (RETURNING the ids
	// only for an AfterErase hook): one round trip, as a hand-written
	// batched DELETE makes (deleteSelected).
	oneStatement := len(c.Erase.Anonymize) == 0 && c.BeforeErase == nil
	pg := e.db.Dialect().Name() == dialect.PG
	byLookup := oneStatement && c.Lookup != ""
	id := "r." + c.idColumn()
	if byLookup {
		id = "r." + c.Lookup + ", " + id // deleteSelected: through Lookup's index
	}
	sel := "SELECT " + id + " FROM " + c.Table + " AS r WHERE r.tenant_id = ?"
	for _, cond := range conds {
		sel += " AND (" + cond + ")"
	}
	// On PostgreSQL batches skip rows another run holds locked, so that
	// concurrent sweeps share the work; the last pass waits for such locks
	// instead, so that a sweep never ends with due rows left behind (by a
	// concurrent run, or by a crashed one whose transaction the server has
	// not yet ended).
	wrote, stalls, wait := false, 0, false
	lastPass := func() bool {
		if pg && !wait {
			wait = true
			return false
		}
		return true
	}
	for {
		var ids []string
		var selected, erased int64
		// unfinished is the BeforeErase hook's *UnfinishedError: the batch
		// erases and commits the other rows, then the operation stops.
		var unfinished *UnfinishedError
		// also counts, by category, the rows the BeforeErase hook erased
		// with the batch (CountErased).
		var also *hookCounts
		// A batch that selects nothing ends the run (on PostgreSQL, in
		// the pass that waits for locks): it asks then whether a hold
		// appeared, which its guard would have kept it from seeing.
		ending, appeared := !pg || wait, false
		err := tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) (err error) {
			unfinished, appeared, also = nil, false, nil
			// No ORDER BY: erased rows leave the selection (deleted, or no
			// longer matching once anonymized), so each batch takes any due
			// rows and the planner may use the time index.
			// On PostgreSQL, concurrent runs take different rows: rows
			// locked by another run's batch are skipped, not waited for.
			q, a := sel+" LIMIT ?", append(append([]any{j.tid}, args...), e.batch)
			if pg && wait {
				q += " FOR UPDATE"
			} else if pg {
				q += " FOR UPDATE SKIP LOCKED"
			}
			if oneStatement {
				n, got, err := e.deleteSelected(ctx, tx, c, byLookup, j.tid, q, a)
				if err != nil {
					return err
				}
				ids, selected, erased = got, n, n
				if n == 0 {
					if ending {
						appeared, err = e.holdAppeared(ctx, tx, hs, j.tid)
					}
					return err
				}
				e.point("batch.selected")
			} else {
				if err := tx.NewRaw(q, a...).Scan(ctx, &ids); err != nil {
					return fmt.Errorf("retention: select %s: %w", c.Name, err)
				}
				if selected = int64(len(ids)); selected == 0 {
					if ending {
						appeared, err = e.holdAppeared(ctx, tx, hs, j.tid)
					}
					return err
				}
				e.point("batch.selected")
				if c.BeforeErase != nil {
					var hctx context.Context
					hctx, also = withHookCounts(ctx)
					if err := c.BeforeErase(hctx, tx, ids); errors.As(err, &unfinished) && unfinished.Err != nil {
						ids = without(ids, unfinished.IDs)
					} else if err != nil {
						unfinished = nil // a bare *UnfinishedError: a failure
						return fmt.Errorf("retention: %s: before erase: %w", c.Name, err)
					}
					e.point("batch.hooked")
					if len(ids) == 0 {
						return nil
					}
				}
				n, err := e.eraseIDs(ctx, tx, c, j.tid, ids)
				if err != nil {
					return err
				}
				if erased = n; n == 0 {
					return nil // another run erased them first; no receipt
				}
			}
			if c.AfterErase != nil {
				if err := e.recordPending(ctx, tx, c, ids); err != nil {
					return err
				}
			}
			e.point("batch.erased")
			if err := e.receiptWith(ctx, tx, j, erased, also); err != nil {
				return err
			}
			if j.request != "" {
				if err := e.addErased(ctx, tx, j.request, c.Name, erased); err != nil {
					return err
				}
				for _, cat := range also.categories() {
					if err := e.addErased(ctx, tx, j.request, cat, also.n[cat]); err != nil {
						return err
					}
				}
			}
			e.point("batch.receipt")
			return nil
		})
		if err != nil {
			return false, err
		}
		if selected == 0 {
			if appeared {
				return true, nil
			}
			if lastPass() {
				break
			}
			continue
		}
		e.point("batch.committed")
		if c.AfterErase != nil && erased > 0 {
			if err := e.afterErase(ctx, c, ids); err != nil {
				return false, err
			}
		}
		if c.BeforeErase != nil && erased > 0 {
			// The hook may have recorded work due once the batch
			// committed (RecordAfterErase: the files of the rows it
			// deleted with the batch's): it is done now, not at the next run.
			if err := e.drainPending(ctx); err != nil {
				return false, err
			}
		}
		if unfinished != nil {
			j.rc.Erased += erased
			return false, fmt.Errorf("retention: %s: before erase: %w", c.Name, unfinished)
		}
		if erased == 0 {
			// Another run took these rows, or the erase action does not
			// change them (then the next selection would be the same).
			if stalls++; stalls > 3 {
				return false, fmt.Errorf("retention: erase %s: no progress on %d selected rows", c.Name, selected)
			}
			continue
		}
		stalls = 0
		wrote = true
		j.rc.Erased += erased
		if selected < int64(e.batch) && lastPass() {
			break
		}
	}
	if !wrote && j.rc.Held > 0 {
		return false, e.heldReceipt(ctx, j)
	}
	return false, nil
}

// deleteSelected deletes the rows of c that the selection q (of ids, with
// its arguments a; of c.Lookup and ids when byLookup) names, in one
// statement, and returns how many it deleted — with their ids when c has
// an AfterErase hook.
func (e *Engine) deleteSelected(ctx context.Context, tx bun.Tx, c Category, byLookup bool, tid, q string, a []any) (int64, []string, error) {
	id := c.idColumn()
	del := "DELETE FROM " + c.Table + " WHERE tenant_id = ? AND " + id + " IN (" + q + ")"
	switch {
	case byLookup && e.db.Dialect().Name() != dialect.PG:
		// Category.Lookup on SQLite: the rows whose pair it selected.
		del = "DELETE FROM " + c.Table + " WHERE tenant_id = ? AND (" + c.Lookup + ", " + id + ") IN (" + q + ")"
		a = append([]any{tid}, a...)
	case byLookup:
		// Category.Lookup on PostgreSQL: the selection runs once (a
		// materialized CTE, its rows locked), the delete reads its
		// Lookup values through their index and keeps the rows whose
		// pair it selected. The rows are locked: none goes before the
		// delete, and one updated since the statement began is followed
		// to its new version and checked again, as by ID.
		lk := c.Lookup
		del = "WITH s AS MATERIALIZED (" + q + ") DELETE FROM " + c.Table + " WHERE tenant_id = ? AND " +
			lk + " = ANY(ARRAY(SELECT s." + lk + " FROM s)) AND (" + lk + ", " + id + ") IN (SELECT s." + lk + ", s." + id + " FROM s)"
		a = append(append([]any(nil), a...), tid)
	case e.db.Dialect().Name() == dialect.PG:
		// On PostgreSQL the ids go in as an array the selection fills
		// first: the planner then fetches the batch's rows by the primary
		// key, where with IN it hash-joins the batch against every row the
		// tenant still has — a scan per batch that grows with the tenant
		// (O(n²) over a sweep).
		del = "DELETE FROM " + c.Table + " WHERE tenant_id = ? AND " + id + " = ANY(ARRAY(" + q + "))"
		a = append([]any{tid}, a...)
	default:
		a = append([]any{tid}, a...)
	}
	if c.AfterErase != nil {
		var ids []string
		if err := tx.NewRaw(del+" RETURNING "+id, a...).Scan(ctx, &ids); err != nil {
			return 0, nil, fmt.Errorf("retention: erase %s: %w", c.Name, err)
		}
		return int64(len(ids)), ids, nil
	}
	res, err := tx.NewRaw(del, a...).Exec(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("retention: erase %s: %w", c.Name, err)
	}
	n, err := res.RowsAffected()
	return n, nil, err
}

func (e *Engine) eraseIDs(ctx context.Context, tx bun.Tx, c Category, tid string, ids []string) (int64, error) {
	var q string
	var args []any
	if len(c.Erase.Anonymize) == 0 {
		q = "DELETE FROM " + c.Table + " WHERE tenant_id = ? AND " + c.idColumn() + " IN (?)"
		args = []any{tid, bun.In(ids)}
	} else {
		var sets []string
		for _, col := range c.Erase.columns() {
			sets = append(sets, col+" = ?")
			args = append(args, c.Erase.Anonymize[col])
		}
		q = "UPDATE " + c.Table + " SET " + strings.Join(sets, ", ") + " WHERE tenant_id = ? AND " + c.idColumn() + " IN (?)"
		args = append(args, tid, bun.In(ids))
	}
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("retention: erase %s: %w", c.Name, err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

func (e *Engine) receipt(ctx context.Context, db bun.IDB, j *job, n int64) error {
	return e.receiptWith(ctx, db, j, n, nil)
}

// receiptWith is receipt for a batch whose BeforeErase hook erased also
// (rows of other categories, by category) with it: the entry names them,
// as "with": "category:count,…".
func (e *Engine) receiptWith(ctx context.Context, db bun.IDB, j *job, n int64, also *hookCounts) error {
	log, err := tenancy.NewAuditLog(db, tenancy.WithClock(e.now), tenancy.WithAuditKeys(e.audit.Keys()))
	if err != nil {
		return err
	}
	md := map[string]string{
		"category": j.cat.Name, "count": strconv.FormatInt(n, 10), "held": strconv.FormatInt(j.rc.Held, 10),
		"kept": strconv.FormatInt(j.rc.Kept, 10), "policy": j.rc.Policy, "rule": j.rc.Rule, "erase": j.cat.Erase.String(),
	}
	if j.delete {
		md["erase"] = "delete"
	}
	if j.rc.Window != "" {
		md["window"] = j.rc.Window
	}
	for k, v := range j.meta {
		md[k] = v
	}
	if cats := also.categories(); len(cats) > 0 {
		parts := make([]string, len(cats))
		for i, cat := range cats {
			parts[i] = cat + ":" + strconv.FormatInt(also.n[cat], 10)
		}
		md["with"] = strings.Join(parts, ",")
	}
	if _, err := log.Append(ctx, tenancy.AuditEvent{Action: j.action, Target: "category:" + j.cat.Name, Metadata: md}); err != nil {
		return fmt.Errorf("retention: receipt: %w", err)
	}
	return nil
}

// heldReceipt records that due rows survived under a hold when nothing was
// erased (erasing batches carry the held count in their own receipts).
func (e *Engine) heldReceipt(ctx context.Context, j *job) error {
	if j.rc.Held == 0 {
		return nil
	}
	return tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		return e.receipt(ctx, tx, j, 0)
	})
}

func window(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// without returns ids without those in drop.
func without(ids, drop []string) []string {
	skip := make(map[string]bool, len(drop))
	for _, id := range drop {
		skip[id] = true
	}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !skip[id] {
			out = append(out, id)
		}
	}
	return out
}

// hookCounts are the rows a BeforeErase hook reported erasing with its
// batch (CountErased), by category.
type hookCounts struct {
	n map[string]int64
}

type hookCountsKey struct{}

// withHookCounts returns ctx for a BeforeErase hook, with the counts its
// CountErased calls add to.
func withHookCounts(ctx context.Context) (context.Context, *hookCounts) {
	h := &hookCounts{n: map[string]int64{}}
	return context.WithValue(ctx, hookCountsKey{}, h), h
}

// categories returns the categories h counts rows of, sorted.
func (h *hookCounts) categories() []string {
	if h == nil {
		return nil
	}
	var out []string
	for cat, n := range h.n {
		if n > 0 {
			out = append(out, cat)
		}
	}
	slices.Sort(out)
	return out
}

// CountErased reports, from a Category.BeforeErase hook and with the
// context the hook was given, that the hook erased n rows of category
// with the batch (rows hanging off the batch's rows, such as the files of
// records being erased). The batch's audit receipt names them ("with"),
// and an erasure request adds them to its counts of that category, in
// the batch's transaction: its receipt counts every row it erased, those
// written while it ran that only a hook could reach included. Called
// with another context, or n <= 0, it does nothing.
func CountErased(ctx context.Context, category string, n int64) {
	if h, ok := ctx.Value(hookCountsKey{}).(*hookCounts); ok && n > 0 && category != "" {
		h.n[category] += n
	}
}

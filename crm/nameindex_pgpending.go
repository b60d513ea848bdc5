package crm

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/tenancy"
)

// On PostgreSQL a contact that Create stores gets its rows of
// TableContactNames later (migration 20261213010000): its statement sets
// the contact's names_pending column, and a move writes the rows and
// clears the column, in one statement — Contacts.IndexPendingNames
// (socialcrm's Maintain runs it for every tenant), or a create, about one
// in pendingNamesCheckEvery, that finds its tenant with more than
// pendingNamesBound contacts pending. Until then a name search finds the
// contact through its own name_index (pendingNamesArm): the search reads
// the tenant's pending contacts through a partial index of them, so the
// bound is what it reads at most, give or take the creates between two
// checks.
//
// A create so writes one entry of that partial index instead of a
// trigger's call and a heap row and b-tree entry per keyed prefix. The
// rows' triggers write and delete rows of contacts that are not pending
// only (pgNameIndexPendingFunc), so that:
//   - a rename of a pending contact writes no rows (its new name_index is
//     what the search and the later move read);
//   - a move writes the rows of the contact's name_index as it is then,
//     once: its UPDATE locks the row, and a second move (or a rename, a
//     delete) of the contact waits for it; the second move then finds the
//     column cleared and skips the row, and a rename or delete finds a
//     contact that is not pending, whose rows its trigger rewrites or
//     deletes as for any other;
//   - a delete (erasure, merge, tenant purge) of a pending contact has no
//     rows to delete, and its row leaves the partial index with it.
//
// Every other way of storing a contact (ImportCSV, merges) leaves
// names_pending NULL: the BEFORE INSERT trigger writes its rows at once,
// as before. On SQLite nothing changes: its create writes no rows either
// (nameindex_sqlite.go), and IndexPendingNames does nothing there.

// pendingNamesBound is how many pending contacts of a tenant a create's
// check leaves pending; the older ones beyond it are moved.
const pendingNamesBound = 256

// pendingNamesCheckEvery: one create in this many of a tenant's (counted
// per Store and tenant) checks the tenant's pending contacts against
// pendingNamesBound.
const pendingNamesCheckEvery = 64

// pendingNamesBatch is how many pending contacts one statement of a move
// clears.
const pendingNamesBatch = 500

// pendingNames counts a Store's creates of each tenant for the check of
// the bound; the Store's copies (Store.Using) share it. The count is the
// tenant's own: one count for all tenants picked whichever tenant's create
// came 64th, and with tenants whose creates take turns it picked the same
// tenant every time while another's pending contacts grew without bound
// (TestS16PendBoundEveryTenant). It holds a counter per tenant that has
// created a contact through the Store.
type pendingNames struct {
	creates sync.Map // tenant id → *atomic.Uint64
}

// due reports whether this create of tenant is one that checks the bound.
func (p *pendingNames) due(tenant string) bool {
	if p == nil {
		return false
	}
	n, ok := p.creates.Load(tenant)
	if !ok {
		n, _ = p.creates.LoadOrStore(tenant, new(atomic.Uint64))
	}
	return n.(*atomic.Uint64).Add(1)%pendingNamesCheckEvery == 0
}

// pendingContact is the contacts table under another alias, for the
// pending arm of a name search and the moves: names_pending is not a
// field of Contact, which every other query reads and writes.
type pendingContact struct {
	bun.BaseModel `bun:"table:socialcrm_crm_contacts,alias:ctp"`
	tenancy.Owned
	ID string `bun:"id,pk"`
}

// pgNameMatch is the subquery of the ids of the tenant's contacts whose
// name holds every one of tokens (the tokens a name search looks up, one
// per query word) on PostgreSQL: the INTERSECT of each token's look-up in
// TableContactNames, and, UNION ALL, the tenant's pending contacts whose
// name_index holds every token, read through the partial index of
// pending contacts and filtered by their arrays (the arrays' operators
// serve no index under row-level security; the bound keeps the read
// short). One subquery, which the plan runs once: an arm of pending
// contacts beside each token's look-up, in a subquery per word, was
// planned as a nested loop that read the pending contacts again for each
// candidate of another word.
func pgNameMatch(ctx context.Context, db bun.IDB, tokens []string) *bun.SelectQuery {
	var rows *bun.SelectQuery
	pending := db.NewSelect().Model((*pendingContact)(nil)).Column("ctp.id").
		Where("ctp.names_pending")
	for _, tok := range tokens {
		look := db.NewSelect().Model((*contactName)(nil)).Column("ctn.contact_id").
			Where("ctn.token = ?", tok).Apply(tenancy.Scope(ctx))
		if rows == nil {
			rows = look
		} else {
			rows = rows.Intersect(look)
		}
		pending = pending.Where("?::text = ANY(ctp.name_index)", tok)
	}
	return rows.UnionAll(pending.Apply(tenancy.Scope(ctx)))
}

// IndexPendingNames writes the name index rows of the tenant's contacts
// that Create stored with their rows pending (PostgreSQL), in batches of
// one statement each, until none is pending but those another
// transaction holds at the time (a later run moves them); it returns how
// many contacts it moved. Searches find a pending contact by name as they find the
// others; moving them keeps the part of a search that reads them short.
// It is safe to run concurrently with itself and with any other write
// (each contact's rows are written once), and to stop at any point: what
// a batch moved stays moved. On SQLite it does nothing and returns 0.
// socialcrm's Maintain runs it for every tenant.
func (r *Contacts) IndexPendingNames(ctx context.Context) (int, error) {
	if r.s.db.Dialect().Name() != dialect.PG {
		return 0, nil
	}
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := r.movePendingNames(ctx, 0)
		total += n
		if err != nil || n < pendingNamesBatch {
			return total, err
		}
	}
}

// movePendingNames moves at most pendingNamesBatch of the tenant's
// pending contacts, the oldest first, leaving the newest keep pending: one
// statement clears their names_pending and writes their rows (a
// data-modifying WITH: the rows of all of them in one INSERT, where a
// trigger ran an INSERT per contact), and returns how many it moved.
func (r *Contacts) movePendingNames(ctx context.Context, keep int) (int, error) {
	var n int64
	err := r.s.one(ctx, func(ctx context.Context, db bun.IDB) error {
		sub := db.NewSelect().Model((*pendingContact)(nil)).Column("ctp.id").
			Where("ctp.names_pending").
			Apply(tenancy.Scope(ctx))
		if keep > 0 {
			sub = sub.OrderExpr("ctp.id DESC").Offset(int64(keep))
		} else {
			sub = sub.OrderExpr("ctp.id")
		}
		// The sub-select takes the rows it picks itself, skipping any
		// another transaction holds (a move, a rename, an erasure's or a
		// merge's batch): a move so never waits for a row lock, and
		// cannot close a cycle of them. Two moves' UPDATEs, or a move's
		// and an erasure's DELETE, each locking several contacts in an
		// order of its own, deadlocked, and the create whose check ran
		// the move failed (TestS16PendConcurrentEverything). A contact
		// skipped is moved by a later move. NO KEY UPDATE is the UPDATE's
		// own lock: a reference's KEY SHARE (checkRefs) does not hold it
		// up.
		sub = sub.Limit(pendingNamesBatch).For("NO KEY UPDATE SKIP LOCKED")
		// The row lock orders two moves (and a rename, a delete) of one
		// contact: a row another has moved since the statement began is
		// re-checked as its mover left it (names_pending cleared) and not
		// taken, so that only the UPDATE that cleared it returns the row,
		// and its INSERT writes the rows of the row's name_index as that
		// UPDATE left it.
		tid, err := tenancy.TenantID(ctx)
		if err != nil {
			return err
		}
		moved := db.NewUpdate().Model((*pendingContact)(nil)).
			Set("names_pending = NULL").
			Where("ctp.names_pending").
			Where("ctp.id IN (?)", sub).
			Where("ctp.tenant_id = ?", tid).
			Returning("ctp.id, ctp.name_index")
		return db.NewRaw(`WITH moved AS (?), written AS (INSERT INTO ? (tenant_id, token, contact_id)
			SELECT ?, t, m.id FROM moved AS m, unnest(`+pgMovedKeyedTokens+`) AS t) SELECT count(*) FROM moved`,
			moved, bun.Ident(TableContactNames), tid).Scan(ctx, &n)
	})
	if err != nil {
		return int(n), fmt.Errorf("crm: index pending names: %w", err)
	}
	return int(n), nil
}

// pgMovedKeyedTokens is pgNameKeyedTokens of a moved contact m.
const pgMovedKeyedTokens = `m.name_index[1:coalesce(array_position(m.name_index, '') - 1, cardinality(m.name_index))]`

// boundPendingNames is the check of a create that pendingNames.due
// picked: it moves the tenant's pending contacts beyond
// pendingNamesBound, if any.
func (r *Contacts) boundPendingNames(ctx context.Context) error {
	if r.s.db.Dialect().Name() != dialect.PG {
		return nil
	}
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return err
	}
	if !r.s.names.due(tid) {
		return nil
	}
	_, err = r.movePendingNames(ctx, pendingNamesBound)
	return err
}

// pgNameIndexPendingFunc is the function of the AFTER UPDATE and DELETE
// triggers of the contacts from migration 20261213010000 on: that of
// pgNameIndexFunc, for contacts whose rows are written (names_pending not
// true) only; the trigger of an update fires on a change of name_index
// alone, so a move's UPDATE, which clears names_pending, fires none.
const pgNameIndexPendingFunc = `CREATE OR REPLACE FUNCTION socialcrm_crm_contact_name_index() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF TG_OP <> 'INSERT' AND OLD.name_index IS NOT NULL AND OLD.names_pending IS NOT TRUE THEN
			DELETE FROM socialcrm_crm_contact_names
				WHERE token = ANY(OLD.name_index) AND tenant_id = OLD.tenant_id AND contact_id = OLD.id;
		END IF;
		IF TG_OP <> 'DELETE' AND NEW.name_index IS NOT NULL AND NEW.names_pending IS NOT TRUE THEN
			INSERT INTO socialcrm_crm_contact_names (tenant_id, token, contact_id)
				SELECT NEW.tenant_id, t, NEW.id FROM unnest(` + pgNameKeyedTokens + `) AS t;
		END IF;
		RETURN NULL;
	END $$`

// pgNameIndexFuncOf is the update and delete triggers' function for the
// schema of tx: pgNameIndexPendingFunc once migration 20261213010000 has
// added names_pending (an older migration run again must not put back the
// function that writes rows of pending contacts), pgNameIndexFunc before.
func pgNameIndexFuncOf(ctx context.Context, tx bun.Tx) (string, error) {
	pending, err := hasColumn(ctx, tx, TableContacts, "names_pending")
	if err != nil || !pending {
		return pgNameIndexFunc, err
	}
	return pgNameIndexPendingFunc, nil
}

// migrateNamesPendingPG (PostgreSQL; nothing on SQLite) lets a create
// leave its name index rows pending (see above): it adds the contacts'
// names_pending column (NULL for every contact there is: their rows are
// written), a partial index of the pending contacts on (tenant_id, id),
// and makes the triggers skip pending contacts (the insert and delete
// triggers by their conditions, the update trigger's function by its
// own). The partial index serves no look-up but the search's pending arm
// and the moves (their conditions name names_pending), so the create's
// look-ups keep their indexes (TestCreatePlanOnColdTable). Its statements
// run in the migration's transaction and do the same when run again. On a
// schema without the name_index column (an older release's, which tests
// build) it adds the column and the index only, so that the Store's
// statements run; that schema's later migrations write every contact's
// rows at its insert, and must not meet a move.
func migrateNamesPendingPG(ctx context.Context, tx bun.Tx) error {
	if tx.Dialect().Name() != dialect.PG {
		return nil
	}
	if err := migrations.Exec(ctx, tx,
		`ALTER TABLE socialcrm_crm_contacts ADD COLUMN IF NOT EXISTS names_pending BOOLEAN`,
		`CREATE INDEX IF NOT EXISTS socialcrm_crm_contacts_names_pending ON socialcrm_crm_contacts (tenant_id, id) WHERE names_pending`,
	); err != nil {
		return err
	}
	if has, err := hasColumn(ctx, tx, TableContacts, "name_index"); err != nil || !has {
		return err
	}
	return migrations.Exec(ctx, tx,
		pgNameIndexNewFunc, // as migration 20261206080200 made it, which an older schema runs before name_index exists
		pgNameIndexPendingFunc,
		`DROP TRIGGER IF EXISTS socialcrm_crm_contact_name_index_insert ON socialcrm_crm_contacts`,
		`CREATE TRIGGER socialcrm_crm_contact_name_index_insert BEFORE INSERT ON socialcrm_crm_contacts
			FOR EACH ROW WHEN (NEW.name_index IS NOT NULL AND NEW.names_pending IS NOT TRUE) EXECUTE FUNCTION socialcrm_crm_contact_name_index_new()`,
		`DROP TRIGGER IF EXISTS socialcrm_crm_contact_name_index_delete ON socialcrm_crm_contacts`,
		`CREATE TRIGGER socialcrm_crm_contact_name_index_delete AFTER DELETE ON socialcrm_crm_contacts
			FOR EACH ROW WHEN (OLD.name_index IS NOT NULL AND OLD.names_pending IS NOT TRUE) EXECUTE FUNCTION socialcrm_crm_contact_name_index()`,
	)
}

package crm

import (
	"context"
	"fmt"
	"sync"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/tenancy"
)

// On PostgreSQL a new contact's name index rows (TableContactNames) are
// not written by its create: the create writes one row of
// TableContactNamesPending (tenant, contact) instead — one heap row and
// one b-tree entry where the rows of its keyed prefixes were about eight
// heap rows and sixteen b-tree entries — and a flush
// (Contacts.FlushNameIndex) moves a tenant's pending contacts into
// TableContactNames later, in one statement. Until then a name search
// reads the tenant's pending contacts too, matched by the name_index
// array of their row, so that it finds the same contacts either way.
//
// Who flushes: the create that is the pgNamesFlushEvery-th of its tenant
// through this Store (createCounts) outside a transaction (one more statement, after its
// own, through socialcrm.OpenDB's handle), and whoever calls
// Contacts.FlushNameIndex (a scheduler). A tenant's pending contacts are
// therefore at most pgNamesFlushEvery-1 per Store that creates its
// contacts (twice that once a Store has counted more than
// maxCountedTenants tenants), plus those created in a transaction (a contact with tags, a
// caller's transaction, a handle not from socialcrm.OpenDB) and those of a
// flush that failed or a process that stopped before its count came
// round, until the next flush. A name search reads each of them once per
// word of its query (by the table's primary key, then the contact's row by
// its own) and, when it finds more than pgNamesSearchMax of them, flushes
// them first in its statement: its snapshot still reads them, the next
// search does not. SQLite has a design of its own (nameindex_sqlite.go).
//
// The pending table is the tenant's own: row-level security like every
// tenant table, so that one tenant's pending rows are neither read nor
// counted by another's search or flush, and no state is shared between
// tenants (the SQLite watermark's timing channel does not arise).

// TableContactNamesPending lists, on PostgreSQL, the contacts whose name
// index rows are still to be written to TableContactNames.
const TableContactNamesPending = TablePrefix + "contact_names_pending"

// contactNamePending is a contact whose name index rows are pending.
type contactNamePending struct {
	bun.BaseModel `bun:"table:socialcrm_crm_contact_names_pending,alias:ctnp"`
	tenancy.Owned
	ContactID string `bun:"contact_id,pk"`
}

// pgNamesSearchMax is how many pending contacts of its tenant a name
// search reads before it flushes them (in its own statement, whose
// snapshot still reads them once: the next search reads the new ones).
const pgNamesSearchMax = 64

// pgNamesFlushEvery is how many creates of a tenant in a process lead to
// one flush of the tenant's pending contacts.
const pgNamesFlushEvery = 32

// createCounts counts each tenant's creates through one Store (and the
// Stores Using derives from it), for pgNamesFlushEvery. It holds at most
// maxCountedTenants tenants: past that it starts again from empty, so that
// a tenant's count can restart once and its pending contacts reach up to
// twice pgNamesFlushEvery-1 from this process before its next flush.
type createCounts struct {
	mu sync.Mutex
	n  map[string]uint32
}

// maxCountedTenants bounds createCounts.
const maxCountedTenants = 65536

// count counts a create of tenant tid and reports whether it is the one
// that flushes.
func (c *createCounts) count(tid string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil || len(c.n) >= maxCountedTenants {
		c.n = make(map[string]uint32)
	}
	c.n[tid]++
	return c.n[tid]%pgNamesFlushEvery == 0
}

// FlushNameIndex moves the name index of the context's tenant's contacts
// created since the last flush into the index a name search looks up
// (PostgreSQL; on SQLite it does nothing and returns 0), and returns the
// number of index rows written. Searches find those contacts before and
// after. Creates call it now and then on their own; a scheduler may call
// it for each tenant, and several replicas may call it at once: each
// flush is one statement, a flush that finds another of the tenant's
// under way returns 0 at once, and a contact is moved once. A contact
// being renamed or deleted meanwhile is left to its rename (which indexes
// it) or delete, or to the next flush.
func (r *Contacts) FlushNameIndex(ctx context.Context) (int, error) {
	if r.s.db.Dialect().Name() != dialect.PG {
		return 0, nil
	}
	var n int
	err := r.s.one(ctx, func(ctx context.Context, db bun.IDB) error {
		tid, err := tenancy.TenantID(ctx)
		if err != nil {
			return err
		}
		return db.NewRaw("SELECT socialcrm_crm_contact_names_flush(?::text, -1)", tid).Scan(ctx, &n)
	})
	if err != nil {
		return 0, fmt.Errorf("crm: flush name index: %w", err)
	}
	return n, nil
}

// migrateNamesPendingPG creates TableContactNamesPending (on both
// databases; only PostgreSQL writes it), with row-level security, and on
// PostgreSQL makes the contacts' name index triggers use it:
//   - the BEFORE INSERT trigger writes the contact's pending row instead
//     of its name index rows;
//   - the AFTER UPDATE (of name_index) and DELETE triggers delete the
//     contact's pending row with its name index rows, and an update writes
//     the rows of its new name: a renamed contact is indexed at once;
//   - socialcrm_crm_contact_names_flush(tenant) moves the tenant's pending
//     contacts, see pgNamesFlushFunc.
//
// Contacts created before keep their rows. Running it again replaces the
// functions with the same.
func migrateNamesPendingPG(ctx context.Context, tx bun.Tx) error {
	if err := ownedTables(ctx, tx, []string{TableContactNamesPending},
		`CREATE TABLE IF NOT EXISTS socialcrm_crm_contact_names_pending (
			tenant_id TEXT NOT NULL,
			contact_id TEXT NOT NULL,
			PRIMARY KEY (tenant_id, contact_id)
		)`); err != nil {
		return err
	}
	if tx.Dialect().Name() != dialect.PG {
		return nil
	}
	if _, err := tx.ExecContext(ctx, pgNamesFlushFunc); err != nil {
		return fmt.Errorf("crm: name index pending: %w", err)
	}
	// On a schema without the name_index column (an older release's, which
	// tests build) the triggers come later and write the rows at once.
	if has, err := hasColumn(ctx, tx, TableContacts, "name_index"); err != nil || !has {
		return err
	}
	for _, s := range []string{pgNamePendingNewFunc, pgNamePendingFunc} {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("crm: name index pending: %w", err)
		}
	}
	return nil
}

// pgNamePendingNewFunc replaces the function of the BEFORE INSERT trigger
// (pgNameIndexNewFunc): one pending row.
const pgNamePendingNewFunc = `CREATE OR REPLACE FUNCTION socialcrm_crm_contact_name_index_new() RETURNS trigger LANGUAGE plpgsql AS $f$
	BEGIN
		INSERT INTO socialcrm_crm_contact_names_pending (tenant_id, contact_id) VALUES (NEW.tenant_id, NEW.id);
		RETURN NEW;
	END $f$`

// pgNamePendingFunc replaces the function of the AFTER UPDATE and DELETE
// triggers (pgNameIndexFunc): the pending row goes with the rows.
const pgNamePendingFunc = `CREATE OR REPLACE FUNCTION socialcrm_crm_contact_name_index() RETURNS trigger LANGUAGE plpgsql AS $f$
	BEGIN
		IF TG_OP <> 'INSERT' THEN
			DELETE FROM socialcrm_crm_contact_names WHERE tenant_id = OLD.tenant_id AND contact_id = OLD.id;
			DELETE FROM socialcrm_crm_contact_names_pending WHERE tenant_id = OLD.tenant_id AND contact_id = OLD.id;
		END IF;
		IF TG_OP <> 'DELETE' AND NEW.name_index IS NOT NULL THEN
			INSERT INTO socialcrm_crm_contact_names (tenant_id, token, contact_id)
				SELECT NEW.tenant_id, t, NEW.id FROM unnest(` + pgNameKeyedTokens + `) AS t;
		END IF;
		RETURN NULL;
	END $f$`

// pgNamesFlushFunc moves tenant p_tenant's pending contacts into
// TableContactNames — when p_over is negative, or when the tenant has
// more than p_over of them (a name search's check) — in one statement,
// with the caller's rights (row-level security: the caller's tenant
// only), and returns the number of rows written. It never waits for
// another transaction: a flush of the tenant under way in another one
// (its transaction-level advisory lock taken) makes it return 0, and it
// skips the contacts whose rows another transaction has locked (a rename
// or a delete under way, whose trigger takes the pending row itself; they
// stay pending otherwise). It reads the pending rows by the primary key's
// tenant_id, then each one's contact by its own primary key (a LATERAL
// subquery with a locking clause, which the planner keeps as it is: the
// flush reads the pending contacts, not the tenant's every contact). It
// locks each contact it moves (FOR SHARE)
// before it deletes the pending row, in the order a rename or a delete
// takes them (the row, then its pending row in the trigger), and writes
// rows only for the pending rows it deleted itself: a rename or delete
// that comes after it finds the rows it wrote and replaces or deletes
// them. Killed midway, the statement leaves nothing half done. In a
// read-only transaction (a caller's, or any on a hot standby) it writes
// nothing and returns 0: the search still reads the pending contacts.
const pgNamesFlushFunc = `CREATE OR REPLACE FUNCTION socialcrm_crm_contact_names_flush(p_tenant text, p_over integer) RETURNS integer LANGUAGE plpgsql VOLATILE AS $f$
	DECLARE
		n integer;
	BEGIN
		IF current_setting('transaction_read_only')::boolean THEN
			RETURN 0; -- a read-only transaction (a hot standby's too) searches without flushing
		END IF;
		IF p_over >= 0 AND (SELECT count(*) FROM (SELECT 1 FROM socialcrm_crm_contact_names_pending AS p
				WHERE p.tenant_id = p_tenant LIMIT p_over + 1) AS x) <= p_over THEN
			RETURN 0;
		END IF;
		IF NOT pg_try_advisory_xact_lock(hashtext('socialcrm.crm.contact_names_flush'), hashtext(p_tenant)) THEN
			RETURN 0;
		END IF;
		WITH src AS (
			SELECT c.id, c.tenant_id, c.name_index FROM socialcrm_crm_contact_names_pending AS p,
				LATERAL (SELECT c.id, c.tenant_id, c.name_index FROM socialcrm_crm_contacts AS c
					WHERE c.tenant_id = p.tenant_id AND c.id = p.contact_id FOR SHARE SKIP LOCKED) AS c
			WHERE p.tenant_id = p_tenant
		), moved AS (
			DELETE FROM socialcrm_crm_contact_names_pending AS p USING src
			WHERE p.tenant_id = p_tenant AND p.contact_id = src.id
			RETURNING p.contact_id
		)
		INSERT INTO socialcrm_crm_contact_names (tenant_id, token, contact_id)
			SELECT src.tenant_id, t, src.id FROM src JOIN moved ON moved.contact_id = src.id,
				unnest(src.name_index[1:coalesce(array_position(src.name_index, '') - 1, cardinality(src.name_index))]) AS t;
		GET DIAGNOSTICS n = ROW_COUNT;
		RETURN n;
	END $f$`

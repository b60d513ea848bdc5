package crm

import (
	"context"
	"fmt"
	"reflect"
	"strconv"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/schema"

	"github.com/socialcrm/socialcrm/internal/dberr"
	"github.com/socialcrm/socialcrm/internal/migrations"
)

// migrateCreatePG (PostgreSQL; nothing on SQLite) rebuilds the contacts'
// indexes of the e-mail address, phone number and birthday blind indexes
// as partial indexes of the rows that have one (WHERE … IS NOT NULL), and
// builds them last.
//
// Create's statement checks for a duplicate e-mail address and phone
// number with one look-up each (createOne), and pgx prepares it once per
// connection: after five executions PostgreSQL keeps a generic plan for
// the connection's life, until the table's statistics change (ANALYZE).
// On a table not analyzed since it was small, every index that begins
// with tenant_id is estimated at one row and costs the same, and the
// planner took the last-built such index — the birthday one — for both
// look-ups, filtering the tenant's every contact: a create cost more with
// every contact the tenant had (the statement took 2.6 times a plain
// insert's time at 1,000 contacts, 1.2 times after ANALYZE). A partial index serves only the
// conditions that imply its predicate: the e-mail look-up
// (email_index = …) can use the e-mail index and no other blind index's,
// the phone look-up only the phone one's, the birthday look-ups
// (birth_index IN …) only the birthday one's; built after every other
// index of the table, each is the one the planner takes at equal cost.
// A later migration that builds another index of the table beginning with
// tenant_id must build these again after it (TestCreatePlanOnColdTable).
// The rows without a value, which no look-up finds, leave the indexes.
// The indexes are built in the migration's transaction: writes to the
// contacts wait until the three are built (on a large table, plan the
// migration for a quiet moment), and a migration that stops leaves the
// old ones in place.
func migrateCreatePG(ctx context.Context, tx bun.Tx) error {
	if tx.Dialect().Name() != dialect.PG {
		return nil
	}
	return migrations.Exec(ctx, tx,
		`DROP INDEX IF EXISTS socialcrm_crm_contacts_email_id`,
		`DROP INDEX IF EXISTS socialcrm_crm_contacts_phone_id`,
		`DROP INDEX IF EXISTS socialcrm_crm_contacts_birth`,
		`CREATE INDEX socialcrm_crm_contacts_birth ON socialcrm_crm_contacts (tenant_id, birth_index) WHERE birth_index IS NOT NULL`,
		`CREATE INDEX socialcrm_crm_contacts_email_id ON socialcrm_crm_contacts (tenant_id, email_index, id) WHERE email_index IS NOT NULL`,
		`CREATE INDEX socialcrm_crm_contacts_phone_id ON socialcrm_crm_contacts (tenant_id, phone_index, id) WHERE phone_index IS NOT NULL`,
	)
}

// migrateNamesBeforeInsertPG (PostgreSQL; nothing on SQLite) writes a new
// contact's name index rows (TableContactNames, one per token of its
// name_index) from a BEFORE INSERT row trigger instead of an AFTER INSERT
// one. An AFTER row trigger queues an event per row and runs at the end
// of the statement, fetching the inserted row again from the heap; a
// BEFORE trigger runs as the row is formed. Measured with pgbench as the
// application role (row-level security on), contact table with 3,000
// contacts, 15 tokens a name, interleaved, median of each: the create
// statement's server time 606 → 546 µs with synchronous_commit off,
// 4.39 → 4.16 ms with it on under the machine's load.
//
// The rows are written before the contact's: should the contact's insert
// then fail (a key already taken, a check of row-level security), the
// statement fails and takes them with it; a create whose checks find a
// duplicate selects no row, and no trigger runs at all
// (TestContactCreateOneStatement). Renames and deletes keep their AFTER
// triggers (migration 20261123000570). Running it again replaces the
// function and the trigger with the same. On a schema without the
// name_index column (migration 20261123000570 not run yet, as in tests
// that build an older release's schema) it does nothing: that migration
// creates the AFTER INSERT trigger when it runs.
func migrateNamesBeforeInsertPG(ctx context.Context, tx bun.Tx) error {
	if tx.Dialect().Name() != dialect.PG {
		return nil
	}
	if has, err := hasColumn(ctx, tx, TableContacts, "name_index"); err != nil || !has {
		return err
	}
	return migrations.Exec(ctx, tx,
		pgNameIndexNewFunc, // nameindex_pgcreate2.go: the keyed tokens' rows
		`DROP TRIGGER IF EXISTS socialcrm_crm_contact_name_index_insert ON socialcrm_crm_contacts`,
		`CREATE TRIGGER socialcrm_crm_contact_name_index_insert BEFORE INSERT ON socialcrm_crm_contacts
			FOR EACH ROW WHEN (NEW.name_index IS NOT NULL) EXECUTE FUNCTION socialcrm_crm_contact_name_index_new()`,
	)
}

// migrateNamesNarrowPG (PostgreSQL; nothing on SQLite) gives
// TableContactNames two narrow b-trees in place of its primary key on
// (tenant_id, token, contact_id) and its index on (tenant_id, contact_id):
// one on token, which the name search looks up by equality, and one on
// contact_id, by which the triggers, the erasure and the export of a
// person's data found a contact's rows (until migration 20261211010000,
// which drops it: they find them by token now). Neither holds tenant_id: a token
// is a blind index keyed per tenant and a contact id is unique, so each
// finds only the rows of one tenant (bar a collision of 128-bit blind
// indexes), and row-level security still filters every row read by its
// tenant_id. Neither is unique: the triggers write a contact's tokens
// once each (namePrefixes keeps each prefix once), and a uniqueness check
// cost each of a create's rows a look-up. Measured on the server by
// BenchmarkPostgresContactCreateServer (as the application's role, at
// 1,000 contacts, runs alternated under load), Create's statement took
// 3.8–4.2 times the raw INSERT's time after, 4.9–5.1 before, and wrote
// 5.8 KB of WAL against 7.3 (see the package documentation). The name
// search stays a look-up of the b-tree on token: at 100,000 contacts of
// the tenant it took 0.76 ms, against 0.91 ms at 1,000
// (BenchmarkScaleContactLookup, under load; TestNamesNarrowMigration
// checks the plan).
//
// The rows stay as they are; only their indexes change. The statements
// run in the migration's transaction (a run that stops leaves the old
// indexes; writes to the table wait until it commits) and are no-ops when
// run again. On a schema without the table (tests that build an older
// release's schema, whose migration 20261123000550 runs later and creates
// the table with the old indexes, which then serve as before) it does
// nothing.
func migrateNamesNarrowPG(ctx context.Context, tx bun.Tx) error {
	if tx.Dialect().Name() != dialect.PG {
		return nil
	}
	if has, err := hasTable(ctx, tx, TableContactNames); err != nil || !has {
		return err
	}
	var pkeys []string
	if err := tx.NewRaw(`SELECT conname FROM pg_constraint
		WHERE conrelid = 'socialcrm_crm_contact_names'::regclass AND contype = 'p'`).Scan(ctx, &pkeys); err != nil {
		return err
	}
	stmts := []string{
		`CREATE INDEX IF NOT EXISTS socialcrm_crm_contact_names_token ON socialcrm_crm_contact_names (token)`,
		`CREATE INDEX IF NOT EXISTS socialcrm_crm_contact_names_contact_id ON socialcrm_crm_contact_names (contact_id)`,
		`DROP INDEX IF EXISTS socialcrm_crm_contact_names_contact`,
	}
	for _, c := range pkeys {
		stmts = append(stmts, `ALTER TABLE socialcrm_crm_contact_names DROP CONSTRAINT `+pgIdent(c))
	}
	return migrations.Exec(ctx, tx, stmts...)
}

// migrateOwnerPartialPG (PostgreSQL; nothing on SQLite, whose index is
// partial already) rebuilds the contacts' index of owner_id, which a
// contact filter by owner uses (owner_id = …), as a partial index of the
// contacts that have an owner: a contact created without one no longer
// writes an entry to it, one b-tree insert fewer per such create, and a
// condition owner_id = … implies owner_id IS NOT NULL, so the filter uses
// it as before (TestOwnerFilterUsesPartialIndex). The e-mail, phone and
// birthday indexes are then built again, last (migrateCreatePG), so that
// the create's look-ups keep finding them first on a table not analyzed
// (TestCreatePlanOnColdTable); on a schema without their columns (an
// older release's, which tests build) that is left to migration
// 20261123000595, which builds them when it runs. The statements run in the migration's
// transaction (writes to the contacts wait until it commits; a run that
// stops leaves the old indexes) and do the same when run again.
func migrateOwnerPartialPG(ctx context.Context, tx bun.Tx) error {
	if tx.Dialect().Name() != dialect.PG {
		return nil
	}
	if err := migrations.Exec(ctx, tx,
		`DROP INDEX IF EXISTS socialcrm_crm_contacts_owner`,
		`CREATE INDEX socialcrm_crm_contacts_owner ON socialcrm_crm_contacts (tenant_id, owner_id, id) WHERE owner_id IS NOT NULL`,
	); err != nil {
		return err
	}
	for _, col := range []string{"email_index", "phone_index", "birth_index"} {
		// On an older release's schema (tests build one) the look-up
		// indexes come later, with migration 20261123000595, last.
		if has, err := hasColumn(ctx, tx, TableContacts, col); err != nil || !has {
			return err
		}
	}
	return migrateCreatePG(ctx, tx)
}

// insertStatementPG writes createOne's statement for c on PostgreSQL, with
// its values, as bun writes it (the INSERT … SELECT of insertChecked's
// query on SQLite, each value as bun appends it, cast by rowValues; the
// company's check a subquery scoped to c's tenant as tenancy.Scope scopes
// it; the duplicate checks one call of socialcrm_crm_contact_unclaimed,
// see migrateUnclaimedPG) — but straight into one buffer: building the two subqueries as bun
// queries and formatting the statement's arguments into it cost about a
// tenth of a create's work at the client. TestInsertStatementPG compares
// it with bun's text: the Guard checks, and the driver prepares, the same
// statement as before.
//
// With claim, the contact is marked as the holder of its e-mail address
// and phone number (create_pgclaim.go): the statement fails on their
// unique index when another contact holds either. With lookup too, the
// duplicate check runs first as before (socialcrm_crm_contact_unclaimed:
// locks and look-ups), so that a duplicate inserts nothing rather than
// failing — in a caller's transaction, which a failed statement would
// end.
func insertStatementPG(d schema.Dialect, c *Contact, claim, lookup bool) []byte {
	gen := schema.NewQueryGen(d)
	t := d.Tables().Get(reflect.TypeFor[Contact]())
	b := make([]byte, 0, 2048+len(c.nameIndex))
	b = append(b, "INSERT INTO "...)
	b = gen.AppendIdent(b, TableContacts)
	b = append(b, " ("...)
	b, _ = columnList(t.Fields).AppendQuery(gen, b)
	b = append(b, ", name_index"...)
	if claim {
		b = append(b, ", email_claim, phone_claim"...)
	}
	b = append(b, ") SELECT "...)
	b, _ = rowValues{fields: t.Fields, v: reflect.ValueOf(c).Elem(), casts: true}.AppendQuery(gen, b)
	b = append(b, ", "...)
	b = gen.Append(b, nullIfEmpty(c.nameIndex))
	b = append(b, "::text[]"...)
	if claim {
		for _, idx := range []string{c.EmailIndex, c.PhoneIndex} {
			if idx != "" {
				b = append(b, ", true"...)
			} else {
				b = append(b, ", NULL::boolean"...)
			}
		}
	}
	where := " WHERE "
	exists := func(neg string, t *schema.Table, col, value string) {
		b = append(b, where...)
		where = " AND "
		b = append(b, neg...)
		b = append(b, "EXISTS (SELECT 1 FROM "...)
		b = append(b, t.SQLNameForSelects...)
		b = append(b, " AS "...)
		b = append(b, t.SQLAlias...)
		b = append(b, " WHERE ("...)
		b = append(b, t.SQLAlias...)
		b = append(b, '.')
		b = append(b, col...)
		b = append(b, " = "...)
		b = gen.Append(b, value)
		b = append(b, ") AND ("...)
		b = append(b, t.SQLAlias...)
		b = append(b, ".tenant_id = "...)
		b = gen.Append(b, c.TenantID)
		b = append(b, "))"...)
	}
	if lookup && (c.EmailIndex != "" || c.PhoneIndex != "") {
		b = append(b, where...)
		where = " AND "
		b = appendUnclaimed(gen, b, c)
	}
	if c.CompanyID != "" {
		exists("", d.Tables().Get(reflect.TypeFor[Company]()), "id", c.CompanyID)
	}
	return b
}

// execInsertPG runs insertStatementPG's statement for c on db, whose
// tenant c.TenantID is, and returns the number of contacts it inserted.
// The statement reaches bun whole, as one argument it appends as it is
// (bun.Safe): its query hooks, the Guard's among them, see it as before.
// A failure on the holders' unique indexes (create_pgclaim.go) is
// errClaimTaken, wrapping the database's error.
func execInsertPG(ctx context.Context, db bun.IDB, c *Contact, claim, lookup bool) (int64, error) {
	res, err := db.NewRaw("?", bun.Safe(insertStatementPG(db.Dialect(), c, claim, lookup))).Exec(ctx)
	if err != nil {
		if dberr.IsUniqueViolation(err) { // the holders' indexes: the key is a new id
			return 0, fmt.Errorf("%w: %w", errClaimTaken, err)
		}
		return 0, fmt.Errorf("crm: create contact: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("crm: create contact: %w", err)
	}
	return n, nil
}

// appendUnclaimed appends the call of socialcrm_crm_contact_unclaimed
// (pgUnclaimedFunc) that checks c's e-mail address and phone number: the
// advisory lock keys of lockKeys, the tenant, the two blind indexes (""
// for none). Each literal is followed by its cast, so that the driver
// sends it as a parameter (internal/sqldb params) and the statement keeps
// one text whatever the values.
func appendUnclaimed(gen schema.QueryGen, b []byte, c *Contact) []byte {
	keys := tenantLockKeys(c.TenantID, [][2]string{{"email", c.EmailIndex}, {"phone", c.PhoneIndex}})
	b = append(b, "socialcrm_crm_contact_unclaimed("...)
	b = gen.Append(b, lockKeysLiteral(keys))
	b = append(b, "::bigint[], "...)
	b = gen.Append(b, c.TenantID)
	b = append(b, "::text, "...)
	b = gen.Append(b, c.EmailIndex)
	b = append(b, "::text, "...)
	b = gen.Append(b, c.PhoneIndex)
	b = append(b, "::text)"...)
	return b
}

// lockKeysLiteral is the bigint[] literal of keys, without quotes.
func lockKeysLiteral(keys []int64) string {
	b := make([]byte, 0, 2+21*len(keys))
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, k, 10)
	}
	return string(append(b, '}'))
}

// pgUnclaimedLookup is the query socialcrm_crm_contact_unclaimed runs once
// it holds the locks: whether no contact of tenant p_tenant has the e-mail
// blind index p_email or the phone blind index p_phone ("" for none),
// each looked up through its own partial index (TestCreatePlanOnColdTable).
const pgUnclaimedLookup = `NOT (p_email <> '' AND EXISTS (SELECT 1 FROM socialcrm_crm_contacts AS ct
			WHERE ct.email_index = p_email AND ct.tenant_id = p_tenant))
		AND NOT (p_phone <> '' AND EXISTS (SELECT 1 FROM socialcrm_crm_contacts AS ct_1
			WHERE ct_1.phone_index = p_phone AND ct_1.tenant_id = p_tenant))`

// pgUnclaimedFunc is the function of migrateUnclaimedPG.
const pgUnclaimedFunc = `CREATE OR REPLACE FUNCTION socialcrm_crm_contact_unclaimed(p_keys bigint[], p_tenant text, p_email text, p_phone text)
	RETURNS boolean LANGUAGE plpgsql VOLATILE AS $f$
	DECLARE
		k bigint;
	BEGIN
		FOREACH k IN ARRAY p_keys LOOP
			PERFORM pg_advisory_xact_lock(k);
		END LOOP;
		RETURN ` + pgUnclaimedLookup + `;
	END $f$`

// migrateUnclaimedPG (PostgreSQL; nothing on SQLite) creates the function
// socialcrm_crm_contact_unclaimed(keys, tenant, email, phone), which
// Create's statement called in its WHERE clause (insertStatementPG) in
// place of its two NOT EXISTS checks of a duplicate and of the advisory
// locks that used to precede it, a statement of their own in its round
// trip. Since migration 20261214010000 only a create in a caller's
// transaction calls it (the holders' unique index checks every create:
// create_pgclaim.go). The function takes the transaction-level advisory locks of keys
// (lockKeys: tenant, field and blind index), in the order given, and only
// then looks the e-mail address and the phone number up. It is VOLATILE:
// under READ COMMITTED each query it runs takes a snapshot of its own,
// here after the locks, so that a create of the same address that
// committed while this one waited for its lock is seen (the statement's
// own snapshot, taken before, would miss it: that is why the locks had
// to come first). The look-ups keep the tenant's condition and run with
// the caller's rights, under row-level security. Creates of one address
// at once store one contact (TestContactCreateConcurrentDuplicates).
// Running the migration again replaces the function with the same.
func migrateUnclaimedPG(ctx context.Context, tx bun.Tx) error {
	if tx.Dialect().Name() != dialect.PG {
		return nil
	}
	return migrations.Exec(ctx, tx, pgUnclaimedFunc)
}

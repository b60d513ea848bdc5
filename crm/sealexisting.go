package crm

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// tableUnsealed holds, between the schema migration that seals the crm
// tables and Store.SealExisting, the plaintext values that databases
// created before it held in clear: one row per record and column. The
// migration moves them there (the plaintext columns are dropped), and
// SealExisting seals them into the sealed columns and deletes each row as
// it goes, then drops the table.
const tableUnsealed = TablePrefix + "unsealed"

// createUnsealed creates tableUnsealed.
const createUnsealed = `CREATE TABLE IF NOT EXISTS ` + tableUnsealed + ` (
	tenant_id TEXT NOT NULL,
	tbl TEXT NOT NULL,
	id TEXT NOT NULL,
	col TEXT NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (tenant_id, tbl, id, col)
)`

// plainColumn is a column that held personal data in clear before sealing:
// the migration stages its non-empty values in tableUnsealed and drops it.
type plainColumn struct {
	name  string
	empty string // SQL list of the values that mean "nothing" (not staged)
}

func text(name string) plainColumn   { return plainColumn{name, "''"} }
func number(name string) plainColumn { return plainColumn{name, "'0'"} }
func jsonCol(name string) plainColumn {
	return plainColumn{name, "'', '{}', '[]', 'null'"}
}

// sealedTable is how the migration changes one table.
type sealedTable struct {
	table       string
	id          string        // the row id column (default "id")
	stage       []plainColumn // staged, then dropped
	drop        []string      // dropped (derived copies: nothing to stage)
	dropIndexes []string      // indexes on dropped columns, dropped first
	rename      [][2]string   // columns renamed (kept in a constraint)
	add         []string      // column definitions added
}

// coreSealedTables are the changes of the core tables.
var coreSealedTables = []sealedTable{
	{table: TableContacts,
		stage: []plainColumn{text("first_name"), text("last_name"), text("utm_source"), text("utm_medium"), text("utm_campaign"),
			text("utm_term"), text("utm_content"), number("birth_year"), number("birth_month"), number("birth_day"),
			jsonCol("preferences"), jsonCol("tags")},
		drop:        []string{"name_fold", "last_fold"},
		dropIndexes: []string{"socialcrm_crm_contacts_name", "socialcrm_crm_contacts_last", "socialcrm_crm_contacts_birthday"},
		add: []string{"first_name_sealed BLOB", "last_name_sealed BLOB", "utm_sealed BLOB", "birthday_sealed BLOB", "birth_index TEXT",
			"preferences_sealed BLOB", "tags_sealed BLOB"}},
	// The tag index rows are rebuilt from the contact's tags.
	{table: TableContactTags, rename: [][2]string{{"tag", "tag_index"}}},
	{table: TableNotes, stage: []plainColumn{text("body")}, add: []string{"body_sealed BLOB"}},
	{table: TableTasks, stage: []plainColumn{text("title"), text("description")}, add: []string{"title_sealed BLOB", "description_sealed BLOB"}},
	{table: TableActivities, stage: []plainColumn{text("subject"), text("body")}, add: []string{"subject_sealed BLOB", "body_sealed BLOB"}},
	{table: TableDeals, stage: []plainColumn{text("title")}, add: []string{"title_sealed BLOB"}},
	{table: TableMessages, stage: []plainColumn{text("text"), jsonCol("attachments")}, add: []string{"text_sealed BLOB", "attachments_sealed BLOB"}},
	// thread_id is in the table's unique key: renamed, it keeps the key
	// and holds the blind index once sealed.
	{table: TableConversations, stage: []plainColumn{text("thread_id")}, rename: [][2]string{{"thread_id", "thread_index"}},
		add: []string{"thread_sealed BLOB"}},
	{table: TableConsents, stage: []plainColumn{text("source")}, add: []string{"source_sealed BLOB"}},
	{table: TableConsentEvents, stage: []plainColumn{text("source")}, add: []string{"source_sealed BLOB"}},
}

// sealTablesMigration stages the plaintext of tables in tableUnsealed and
// changes their schema to the sealed one. It is idempotent: a column
// already gone is neither staged nor dropped again.
func sealTablesMigration(tables []sealedTable) func(ctx context.Context, tx bun.Tx) error {
	return func(ctx context.Context, tx bun.Tx) error {
		if err := migrations.Exec(ctx, tx, createUnsealed); err != nil {
			return err
		}
		pg := tx.Dialect().Name() == dialect.PG
		for _, t := range tables {
			if pg {
				// Row-level security binds the table's owner too (FORCE):
				// lift it for the copy, in this transaction only.
				if _, err := tx.ExecContext(ctx, "ALTER TABLE ? NO FORCE ROW LEVEL SECURITY", bun.Ident(t.table)); err != nil {
					return fmt.Errorf("crm: seal %s: %w", t.table, err)
				}
			}
			for _, c := range t.stage {
				ok, err := hasColumn(ctx, tx, t.table, c.name)
				if err != nil || !ok {
					if err != nil {
						return err
					}
					continue
				}
				id := t.id
				if id == "" {
					id = "id"
				}
				if _, err := tx.ExecContext(ctx, "INSERT INTO "+tableUnsealed+" (tenant_id, tbl, id, col, value) "+
					"SELECT tenant_id, ?, ?, ?, CAST(? AS TEXT) FROM ? WHERE ? IS NOT NULL AND CAST(? AS TEXT) NOT IN ("+c.empty+")",
					t.table, bun.Ident(id), c.name, bun.Ident(c.name), bun.Ident(t.table), bun.Ident(c.name), bun.Ident(c.name)); err != nil {
					return fmt.Errorf("crm: stage %s.%s: %w", t.table, c.name, err)
				}
			}
			if pg {
				if _, err := tx.ExecContext(ctx, "ALTER TABLE ? FORCE ROW LEVEL SECURITY", bun.Ident(t.table)); err != nil {
					return fmt.Errorf("crm: seal %s: %w", t.table, err)
				}
			}
			for _, ix := range t.dropIndexes {
				if _, err := tx.ExecContext(ctx, "DROP INDEX IF EXISTS ?", bun.Ident(ix)); err != nil {
					return fmt.Errorf("crm: seal %s: %w", t.table, err)
				}
			}
			for _, rn := range t.rename {
				ok, err := hasColumn(ctx, tx, t.table, rn[0])
				if err != nil {
					return err
				}
				if ok {
					if _, err := tx.ExecContext(ctx, "ALTER TABLE ? RENAME COLUMN ? TO ?", bun.Ident(t.table), bun.Ident(rn[0]), bun.Ident(rn[1])); err != nil {
						return fmt.Errorf("crm: seal %s: %w", t.table, err)
					}
				}
			}
			var drop []string
			for _, c := range t.stage {
				drop = append(drop, c.name)
			}
			for _, c := range append(drop, t.drop...) {
				ok, err := hasColumn(ctx, tx, t.table, c)
				if err != nil {
					return err
				}
				if ok {
					if _, err := tx.ExecContext(ctx, "ALTER TABLE ? DROP COLUMN ?", bun.Ident(t.table), bun.Ident(c)); err != nil {
						return fmt.Errorf("crm: seal %s: %w", t.table, err)
					}
				}
			}
			for _, def := range t.add {
				name, _, _ := strings.Cut(def, " ")
				ok, err := hasColumn(ctx, tx, t.table, name)
				if err != nil {
					return err
				}
				if !ok {
					if err := migrations.Exec(ctx, tx, "ALTER TABLE "+t.table+" ADD COLUMN "+def); err != nil {
						return err
					}
				}
			}
		}
		// A database without plaintext (a new one) needs no SealExisting.
		return dropUnsealedIfEmpty(ctx, tx)
	}
}

// dropUnsealedIfEmpty drops tableUnsealed when nothing is pending in it.
func dropUnsealedIfEmpty(ctx context.Context, tx bun.Tx) error {
	var n int
	if err := tx.NewRaw("SELECT count(*) FROM "+tableUnsealed).Scan(ctx, &n); err != nil {
		return fmt.Errorf("crm: seal: %w", err)
	}
	if n == 0 {
		if _, err := tx.ExecContext(ctx, "DROP TABLE "+tableUnsealed); err != nil {
			return fmt.Errorf("crm: seal: %w", err)
		}
	}
	return nil
}

// hasColumn reports whether table has column.
func hasColumn(ctx context.Context, db bun.IDB, table, column string) (bool, error) {
	var n int
	var err error
	if db.Dialect().Name() == dialect.PG {
		err = db.NewRaw("SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?",
			table, column).Scan(ctx, &n)
	} else {
		err = db.NewRaw("SELECT count(*) FROM pragma_table_info(?) WHERE name = ?", table, column).Scan(ctx, &n)
	}
	if err != nil {
		return false, fmt.Errorf("crm: inspect %s.%s: %w", table, column, err)
	}
	return n > 0, nil
}

// hasTable reports whether table exists.
func hasTable(ctx context.Context, db bun.IDB, table string) (bool, error) {
	var n int
	var err error
	if db.Dialect().Name() == dialect.PG {
		err = db.NewRaw("SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?", table).Scan(ctx, &n)
	} else {
		err = db.NewRaw("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", table).Scan(ctx, &n)
	}
	if err != nil {
		return false, fmt.Errorf("crm: inspect %s: %w", table, err)
	}
	return n > 0, nil
}

// SealProgress reports SealExisting's progress: values sealed so far, of
// how many there were when it started.
type SealProgress func(done, total int64)

// SealExisting seals the personal data that a database created by an
// earlier version of the package held in clear. The schema migration moved
// those values aside when it dropped their columns (the Store reads such
// a field as empty until then); SealExisting seals them into their
// records, batch records at a time (default 500 when batch < 1), each batch
// in one transaction of its tenant that also deletes what it sealed, and
// calls progress (if not nil) after each. When everything is sealed it
// drops the table of pending values. Contacts whose personal fields an
// earlier release sealed one by one are pending the same way (migration
// 20261123000580 lists them): SealExisting opens their fields and seals
// them again as the contact's profile, and when none is left drops the
// per-field columns.
//
// It is resumable — stopped anywhere (a cancelled context, a crash), the
// next call goes on where the last committed batch ended — and running it
// when nothing is pending is a no-op returning 0. socialcrm.Open calls it;
// an application wiring crm itself calls it after Migrations, before
// serving. On PostgreSQL with an application role that owns no table, run
// it on a Store over the owner's handle (Using), which may drop the table.
// It returns the number of values sealed.
func (s *Store) SealExisting(ctx context.Context, batch int, progress SealProgress) (int64, error) {
	if batch < 1 {
		batch = 500
	}
	ok, err := hasTable(ctx, s.db, tableUnsealed)
	if err != nil || !ok {
		return 0, err
	}
	var tenants []string
	var total int64
	if err := s.db.NewRaw("SELECT DISTINCT tenant_id FROM "+tableUnsealed+" ORDER BY tenant_id").Scan(ctx, &tenants); err != nil {
		return 0, fmt.Errorf("crm: seal existing: %w", err)
	}
	if err := s.db.NewRaw("SELECT count(*) FROM "+tableUnsealed).Scan(ctx, &total); err != nil {
		return 0, fmt.Errorf("crm: seal existing: %w", err)
	}
	var done int64
	sys := tenancy.System(ctx, "crm-seal")
	for _, tid := range tenants {
		tctx, err := tenancy.AsTenant(sys, tid)
		if err != nil {
			return done, fmt.Errorf("crm: seal existing: %w", err)
		}
		// The tenant's keys, created outside the write transactions.
		if err := s.ensureKeys(tctx); err != nil {
			return done, err
		}
		for {
			n, err := s.sealBatch(tctx, tid, batch)
			if err != nil {
				return done, err
			}
			if n == 0 {
				break
			}
			done += int64(n)
			if progress != nil {
				progress(done, total)
			}
			if err := ctx.Err(); err != nil {
				return done, err
			}
		}
	}
	var left int
	if err := s.db.NewRaw("SELECT count(*) FROM "+tableUnsealed).Scan(ctx, &left); err != nil {
		return done, fmt.Errorf("crm: seal existing: %w", err)
	}
	if left == 0 {
		// Every contact has its profile: the columns of the values sealed
		// one by one go, before the table that says some are pending.
		if err := dropFieldColumns(ctx, s.db); err != nil {
			return done, err
		}
		if _, err := s.db.ExecContext(ctx, "DROP TABLE IF EXISTS "+tableUnsealed); err != nil {
			return done, fmt.Errorf("crm: seal existing: %w", err)
		}
	}
	return done, nil
}

// unsealedRow is one pending value.
type unsealedRow struct {
	Tbl   string `bun:"tbl"`
	ID    string `bun:"id"`
	Col   string `bun:"col"`
	Value string `bun:"value"`
}

// sealBatch seals the pending values of up to batch records of tenant
// tid, in one transaction, and returns how many values it sealed.
func (s *Store) sealBatch(ctx context.Context, tid string, batch int) (int, error) {
	var sealed int
	err := tenancy.RunInTx(ctx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
		var rows []unsealedRow
		if err := tx.NewRaw("SELECT u.tbl, u.id, u.col, u.value FROM "+tableUnsealed+" u JOIN "+
			"(SELECT DISTINCT tbl, id FROM "+tableUnsealed+" WHERE tenant_id = ? ORDER BY tbl, id LIMIT ?) r ON r.tbl = u.tbl AND r.id = u.id "+
			"WHERE u.tenant_id = ? ORDER BY u.tbl, u.id", tid, batch, tid).Scan(ctx, &rows); err != nil {
			return fmt.Errorf("crm: seal existing: %w", err)
		}
		for i := 0; i < len(rows); {
			j := i
			vals := map[string]string{}
			for ; j < len(rows) && rows[j].Tbl == rows[i].Tbl && rows[j].ID == rows[i].ID; j++ {
				vals[rows[j].Col] = rows[j].Value
			}
			if err := s.sealRow(ctx, tx, tid, rows[i].Tbl, rows[i].ID, vals); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+tableUnsealed+" WHERE tenant_id = ? AND tbl = ? AND id = ?", tid, rows[i].Tbl, rows[i].ID); err != nil {
				return fmt.Errorf("crm: seal existing: %w", err)
			}
			sealed += j - i
			i = j
		}
		return nil
	})
	return sealed, err
}

// simpleSealed maps a staged column of a table to its sealed column and
// the field its seal is bound to.
var simpleSealed = map[string]map[string][2]string{
	TableNotes:         {"body": {"body_sealed", "body"}},
	TableTasks:         {"title": {"title_sealed", "title"}, "description": {"description_sealed", "description"}},
	TableActivities:    {"subject": {"subject_sealed", "subject"}, "body": {"body_sealed", "body"}},
	TableDeals:         {"title": {"title_sealed", "title"}},
	TableMessages:      {"text": {"text_sealed", "text"}, "attachments": {"attachments_sealed", "attachments"}},
	TableConsents:      {"source": {"source_sealed", "source"}},
	TableConsentEvents: {"source": {"source_sealed", "source"}},
}

// commerceSealedTables are the changes of the commerce tables.
var commerceSealedTables = []sealedTable{
	{table: TableFieldValues, stage: []plainColumn{text("value")}, add: []string{"value_sealed BLOB"}},
	{table: TableAttachments, stage: []plainColumn{text("file_name")}, add: []string{"file_name_sealed BLOB"}},
	{table: TableInvoices, stage: []plainColumn{jsonCol("lines"), text("bill_to_name"), text("bill_to_address"), text("bill_to_tax_id")},
		add: []string{"lines_sealed BLOB", "bill_to_name_sealed BLOB", "bill_to_address_sealed BLOB", "bill_to_tax_id_sealed BLOB"}},
	{table: TableInvoiceRecipients, id: "invoice_id", stage: []plainColumn{text("email"), text("phone")},
		add: []string{"email_sealed BLOB", "email_index TEXT", "phone_sealed BLOB", "phone_index TEXT"}},
	{table: TableProposals, stage: []plainColumn{text("title"), text("body")}, add: []string{"title_sealed BLOB", "body_sealed BLOB"}},
	{table: TableProposalRevisions, stage: []plainColumn{text("title"), text("body")}, add: []string{"title_sealed BLOB", "body_sealed BLOB"}},
	{table: TableProposalEvents, stage: []plainColumn{text("note")}, add: []string{"note_sealed BLOB"}},
	{table: TableClients, stage: []plainColumn{text("name"), text("email"), text("phone")},
		add: []string{"name_sealed BLOB", "email_sealed BLOB", "phone_sealed BLOB"}},
}

// commerceSimpleSealed is simpleSealed for the commerce tables.
var commerceSimpleSealed = map[string]map[string][2]string{
	TableFieldValues: {"value": {"value_sealed", "value"}},
	TableInvoices: {"lines": {"lines_sealed", "lines"}, "bill_to_name": {"bill_to_name_sealed", "bill_to_name"},
		"bill_to_address": {"bill_to_address_sealed", "bill_to_address"}, "bill_to_tax_id": {"bill_to_tax_id_sealed", "bill_to_tax_id"}},
	TableProposals:         {"title": {"title_sealed", "title"}, "body": {"body_sealed", "body"}},
	TableProposalRevisions: {"title": {"title_sealed", "title"}, "body": {"body_sealed", "body"}},
	TableProposalEvents:    {"note": {"note_sealed", "note"}},
	TableClients:           {"name": {"name_sealed", "name"}, "email": {"email_sealed", "email"}, "phone": {"phone_sealed", "phone"}},
}

// sealRow seals the staged values vals of record id of table tbl.
func (s *Store) sealRow(ctx context.Context, tx bun.Tx, tid, tbl, id string, vals map[string]string) error {
	set := map[string]any{}
	switch tbl {
	case TableContacts:
		return s.sealContactRow(ctx, tx, tid, id, vals)
	case TableInvoiceRecipients:
		rc := invoiceRecipient{Recipient: Recipient{Email: vals["email"], Phone: vals["phone"]}}
		if err := s.sealFields(ctx, KindInvoice, id, rc.sealedFields()); err != nil {
			return err
		}
		q := tx.NewUpdate().TableExpr(TableInvoiceRecipients).Set("email_sealed = ?", rc.EmailSealed).Set("phone_sealed = ?", rc.PhoneSealed)
		for _, f := range []struct{ col, value, field string }{{"email_index", normalizeEmail(rc.Email), indexEmail}, {"phone_index", rc.Phone, indexPhone}} {
			var idx any
			if f.value != "" {
				v, err := s.vault.Index(ctx, f.value, f.field)
				if err != nil {
					return fmt.Errorf("crm: seal existing %s: %w", tbl, err)
				}
				idx = v
			}
			q = q.Set("? = ?", bun.Ident(f.col), idx)
		}
		if _, err := q.Where("tenant_id = ?", tid).Where("invoice_id = ?", id).Exec(ctx); err != nil {
			return fmt.Errorf("crm: seal existing %s: %w", tbl, err)
		}
		return nil
	case TableAttachments:
		if err := s.sealExistingBytes(ctx, tid, id); err != nil {
			return err
		}
		sealed, err := s.vault.Seal(ctx, []byte(vals["file_name"]), vault.Binding{Record: id, Field: "file_name"})
		if err != nil {
			return fmt.Errorf("crm: seal existing %s: %w", tbl, err)
		}
		set["file_name_sealed"] = sealed
	case TableConversations:
		v := vals["thread_id"]
		sealed, err := s.vault.Seal(ctx, []byte(v), vault.Binding{Record: id, Field: "thread_id"})
		if err != nil {
			return fmt.Errorf("crm: seal existing %s: %w", tbl, err)
		}
		idx, err := s.vault.Index(ctx, v, indexThread)
		if err != nil {
			return fmt.Errorf("crm: seal existing %s: %w", tbl, err)
		}
		set["thread_sealed"], set["thread_index"] = sealed, idx
	default:
		cols, ok := simpleSealed[tbl]
		if !ok {
			cols, ok = commerceSimpleSealed[tbl]
		}
		if !ok {
			return fmt.Errorf("crm: seal existing: unknown table %q", tbl)
		}
		for col, v := range vals {
			dst, ok := cols[col]
			if !ok {
				return fmt.Errorf("crm: seal existing: unknown column %s.%s", tbl, col)
			}
			sealed, err := s.vault.Seal(ctx, []byte(v), vault.Binding{Record: id, Field: dst[1]})
			if err != nil {
				return fmt.Errorf("crm: seal existing %s: %w", tbl, err)
			}
			set[dst[0]] = sealed
		}
	}
	return updateColumns(ctx, tx, tid, tbl, id, set)
}

// updateColumns sets the columns of set on record id of tbl.
func updateColumns(ctx context.Context, tx bun.IDB, tid, tbl, id string, set map[string]any) error {
	if len(set) == 0 {
		return nil
	}
	q := tx.NewUpdate().TableExpr("?", bun.Ident(tbl))
	for col, v := range set {
		q = q.Set("? = ?", bun.Ident(col), v)
	}
	if _, err := q.Where("tenant_id = ?", tid).Where("id = ?", id).Exec(ctx); err != nil {
		return fmt.Errorf("crm: seal existing %s: %w", tbl, err)
	}
	return nil
}

// fieldColumns are the columns in which releases before the contact
// profile sealed a contact's personal fields one by one, in the order of
// profileFields (each bound to tenant|contact|its field).
var fieldColumns = []string{"first_name_sealed", "last_name_sealed", "email_sealed", "phone_sealed", "utm_sealed",
	"birthday_sealed", "preferences_sealed", "tags_sealed"}

// colFields marks, in tableUnsealed, a contact whose personal fields are
// sealed one by one in fieldColumns: SealExisting seals them again as its
// profile.
const colFields = "sealed_fields"

// profileMigration adds the contacts' profile column. A database with
// contacts whose fields were sealed one by one keeps those columns and
// stages each such contact in tableUnsealed (the marker colFields), for
// SealExisting, which needs the vault, to seal their fields again as
// profiles and then drop the columns; a database without any drops them
// at once. It is idempotent.
func profileMigration(ctx context.Context, tx bun.Tx) error {
	ok, err := hasColumn(ctx, tx, TableContacts, "profile_sealed")
	if err != nil {
		return err
	}
	if !ok {
		if err := migrations.Exec(ctx, tx, "ALTER TABLE "+TableContacts+" ADD COLUMN profile_sealed BLOB"); err != nil {
			return err
		}
	}
	var present []string
	for _, c := range fieldColumns {
		ok, err := hasColumn(ctx, tx, TableContacts, c)
		if err != nil {
			return err
		}
		if ok {
			present = append(present, c)
		}
	}
	if len(present) == 0 {
		return nil
	}
	if err := migrations.Exec(ctx, tx, createUnsealed); err != nil {
		return err
	}
	pg := tx.Dialect().Name() == dialect.PG
	if pg {
		// Row-level security binds the table's owner too (FORCE): lift it
		// for the copy, in this transaction only.
		if _, err := tx.ExecContext(ctx, "ALTER TABLE ? NO FORCE ROW LEVEL SECURITY", bun.Ident(TableContacts)); err != nil {
			return fmt.Errorf("crm: stage contact profiles: %w", err)
		}
	}
	conds := make([]string, len(present))
	for i, c := range present {
		conds[i] = c + " IS NOT NULL"
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO "+tableUnsealed+" (tenant_id, tbl, id, col, value) SELECT tenant_id, ?, id, ?, '' FROM "+
		TableContacts+" WHERE ("+strings.Join(conds, " OR ")+") ON CONFLICT DO NOTHING", TableContacts, colFields); err != nil {
		return fmt.Errorf("crm: stage contact profiles: %w", err)
	}
	if pg {
		if _, err := tx.ExecContext(ctx, "ALTER TABLE ? FORCE ROW LEVEL SECURITY", bun.Ident(TableContacts)); err != nil {
			return fmt.Errorf("crm: stage contact profiles: %w", err)
		}
	}
	var pending int
	if err := tx.NewRaw("SELECT count(*) FROM "+tableUnsealed+" WHERE tbl = ?", TableContacts).Scan(ctx, &pending); err != nil {
		return fmt.Errorf("crm: stage contact profiles: %w", err)
	}
	if pending == 0 {
		if err := dropFieldColumns(ctx, tx); err != nil {
			return err
		}
	}
	return dropUnsealedIfEmpty(ctx, tx)
}

// dropFieldColumns drops those of fieldColumns the contacts table still has.
func dropFieldColumns(ctx context.Context, db bun.IDB) error {
	for _, c := range fieldColumns {
		ok, err := hasColumn(ctx, db, TableContacts, c)
		if err != nil {
			return err
		}
		if ok {
			if _, err := db.ExecContext(ctx, "ALTER TABLE ? DROP COLUMN ?", bun.Ident(TableContacts), bun.Ident(c)); err != nil {
				return fmt.Errorf("crm: drop %s.%s: %w", TableContacts, c, err)
			}
		}
	}
	return nil
}

// sealContactRow seals contact id's personal fields as its profile: those
// an earlier release sealed one by one (marker colFields), with the staged
// plaintext values of vals over them; then it clears the columns of the
// fields sealed one by one and rebuilds the contact's blind indexes.
func (s *Store) sealContactRow(ctx context.Context, tx bun.Tx, tid, id string, vals map[string]string) error {
	c := Contact{}
	c.ID, c.UpdatedAt = id, s.clock()
	clearProfile(&c.ContactInput)
	present, err := s.openFieldColumns(ctx, tx, tid, &c)
	if err != nil {
		return err
	}
	set := func(col string, dst *string) {
		if v, ok := vals[col]; ok {
			*dst = v
		}
	}
	set("first_name", &c.FirstName)
	set("last_name", &c.LastName)
	set("utm_source", &c.UTM.Source)
	set("utm_medium", &c.UTM.Medium)
	set("utm_campaign", &c.UTM.Campaign)
	set("utm_term", &c.UTM.Term)
	set("utm_content", &c.UTM.Content)
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	if _, ok := vals["birth_month"]; ok {
		c.Birthday = Birthday{Year: atoi(vals["birth_year"]), Month: atoi(vals["birth_month"]), Day: atoi(vals["birth_day"])}
	}
	if v := vals["preferences"]; v != "" {
		if err := json.Unmarshal([]byte(v), &c.Preferences); err != nil {
			return fmt.Errorf("crm: seal existing contact %s: malformed preferences", id)
		}
	}
	if v := vals["tags"]; v != "" {
		if err := json.Unmarshal([]byte(v), &c.Tags); err != nil {
			return fmt.Errorf("crm: seal existing contact %s: malformed tags", id)
		}
	}
	if err := s.sealProfile(ctx, &c); err != nil {
		return err
	}
	r := s.Contacts()
	if err := r.index(ctx, &c); err != nil {
		return err
	}
	// The name index follows name_index (on SQLite by trigger).
	cols := map[string]any{"profile_sealed": c.ProfileSealed, "birth_index": nullIfEmpty(c.BirthIndex), "name_index": nullIfEmpty(c.nameIndex)}
	for _, col := range present {
		cols[col] = nil
	}
	if err := updateColumns(ctx, tx, tid, TableContacts, id, cols); err != nil {
		return err
	}
	return r.writeTags(ctx, tx, &c, true)
}

// openFieldColumns opens into c the personal fields of contact c.ID that
// an earlier release sealed one by one, and returns those of fieldColumns
// the table still has.
func (s *Store) openFieldColumns(ctx context.Context, tx bun.Tx, tid string, c *Contact) ([]string, error) {
	rows, err := tx.QueryContext(ctx, "SELECT * FROM "+TableContacts+" WHERE tenant_id = ? AND id = ?", tid, c.ID)
	if err != nil {
		return nil, fmt.Errorf("crm: seal existing contact %s: %w", c.ID, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("crm: seal existing contact %s: %w", c.ID, err)
	}
	raw := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("crm: seal existing contact %s: %w", c.ID, err)
		}
		return nil, notFound(kindContact, c.ID)
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, fmt.Errorf("crm: seal existing contact %s: %w", c.ID, err)
	}
	var present []string
	op := s.vault.Opener(ctx)
	for i, col := range cols {
		if !slices.Contains(fieldColumns, col) {
			continue
		}
		present = append(present, col)
		if len(raw[i]) == 0 {
			continue
		}
		field := strings.TrimSuffix(col, "_sealed")
		sealed, err := vault.ParseSealed(raw[i])
		if err != nil {
			return nil, fmt.Errorf("crm: seal existing contact %s %s: %w", c.ID, field, err)
		}
		sec, err := op.Open(sealed, vault.Binding{Record: c.ID, Field: field})
		if err != nil {
			return nil, fmt.Errorf("crm: seal existing contact %s %s: %w", c.ID, field, err)
		}
		pt := sec.Reveal()
		switch field {
		case "first_name":
			c.FirstName = string(pt)
		case "last_name":
			c.LastName = string(pt)
		case "email":
			c.Email = string(pt)
		case "phone":
			c.Phone = string(pt)
		case "utm":
			err = json.Unmarshal(pt, &c.UTM)
		case "birthday":
			err = json.Unmarshal(pt, &c.Birthday)
		case "preferences":
			err = json.Unmarshal(pt, &c.Preferences)
		case "tags":
			err = json.Unmarshal(pt, &c.Tags)
		}
		sec.Wipe()
		if err != nil {
			return nil, fmt.Errorf("crm: seal existing contact %s %s: malformed plaintext", c.ID, field)
		}
	}
	return present, rows.Close()
}

// nullIfEmpty returns nil for "", s otherwise.
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// sealExistingBytes replaces the plaintext bytes of attachment id in the
// Store's storage with their sealed form. Bytes that open already (sealed
// by a run that stopped before its batch committed) are left as they are.
func (s *Store) sealExistingBytes(ctx context.Context, tid, id string) error {
	if s.storage == nil {
		return fmt.Errorf("%w: sealing existing attachments needs their storage (WithStorage)", ErrConfig)
	}
	rc, err := s.storage.Get(ctx, tid, id)
	if errors.Is(err, ErrNotFound) {
		return nil // nothing stored: nothing to seal
	}
	if err != nil {
		return fmt.Errorf("crm: seal existing attachment: %w", err)
	}
	_, err = io.Copy(io.Discard, newOpeningReader(ctx, s.vault, id, rc))
	rc.Close()
	if err == nil {
		return nil
	}
	rc, err = s.storage.Get(ctx, tid, id)
	if err != nil {
		return fmt.Errorf("crm: seal existing attachment: %w", err)
	}
	defer rc.Close()
	// Put writes a temporary object renamed into place: reading the old
	// one while writing the new is safe.
	if _, err := s.storage.Put(ctx, tid, id, newSealingReader(ctx, s.vault, id, rc)); err != nil {
		return fmt.Errorf("crm: seal existing attachment: %w", err)
	}
	return nil
}

package crm

import (
	"context"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TableContactNameFTS is, on SQLite, the name index of the contacts (see
// ContactFilter.NamePrefix): an FTS5 table over the contacts' name_index
// column, which holds on SQLite the blind indexes of the contact's name
// prefixes as words (ftsWord), space-separated. It is an external-content
// table: it stores the index only, and reads a matched row's id from the
// contacts table by rowid. It holds the contacts at or below a watermark
// (TableContactNameFTSMark); the newest contacts, above it, are pending:
// a name search reads their name_index column directly, and the create
// that takes a rowid namePendingSpan above the watermark moves them all
// into the index in one statement. Triggers on the contacts keep both
// exact on every insert, change of name_index (or of the rowid) and
// delete (migrations 20261123000590 and 20261208010000). On PostgreSQL
// the name index stays TableContactNames.
const TableContactNameFTS = TablePrefix + "contact_name_fts"

// contactNameFTS is the model of TableContactNameFTS, for the Guard, which
// walls it and its shadow tables off (tenancy.FullTextIndex): no statement
// of the application may name them but the look-up List runs.
type contactNameFTS struct {
	bun.BaseModel `bun:"table:socialcrm_crm_contact_name_fts"`
	tenancy.FullTextIndex
}

// ftsEncoding writes a token's 128 bits as 26 letters and digits: one word
// to FTS5's ascii tokenizer, which folds case and splits at anything but
// ASCII letters and digits (a base64url token's - and _).
var ftsEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// ftsWord is the FTS5 word of a name token (a blind index cut to
// nameTokenLen base64url characters): its first 128 bits in base32.
func ftsWord(token string) string {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < 16 {
		// Not a cut blind index: no word of it can match another's.
		b = []byte(token)
	}
	return ftsEncoding.EncodeToString(b[:min(len(b), 16)])
}

// ftsTokens is the name_index value of tokens on SQLite, and the FTS5
// query that finds a contact holding every one of them: their words,
// space-separated (FTS5 ANDs them).
func ftsTokens(tokens []string) string {
	words := make([]string, len(tokens))
	for i, t := range tokens {
		words[i] = ftsWord(t)
	}
	return strings.Join(words, " ")
}

// nameMatchSQLite confines q, a select of contacts, to those whose name
// index holds every one of tokens: their ids come from one IN list of two
// arms, which SQLite reads through the primary key with q's tenant
// condition (tenant_id = ? AND id = ?), in id order. The contacts at or
// below the watermark (TableContactNameFTSMark) come from one FTS5 look-up
// of TableContactNameFTS, the AND of the tokens. The pending ones, above
// the watermark and fewer than namePendingSpan rowids above it, come from
// a scan of the same FTS5 table bounded on both sides of the rowid, which
// reads those rows of the contacts table (every tenant's, along the
// rowid) and keeps those whose name_index holds every token's word
// whole. Tokens are keyed per tenant, so another tenant's contacts do not
// match at all. The Guard lets exactly this shape through
// (tenancy.FullTextIndex). Selecting the contacts' rowids instead, or
// the pending contacts from the contacts table itself (with a tenant
// condition of its own, or as an OR beside the look-up), was planned as
// a scan of the tenant's contacts whenever the tables had no statistics
// (no ANALYZE).
func nameMatchSQLite(q *bun.SelectQuery, tokens []string) *bun.SelectQuery {
	words := ftsTokens(tokens)
	fts := bun.Ident(TableContactNameFTS)
	mark := bun.Ident(TableContactNameFTSMark)
	sql := "ct.id IN (SELECT id FROM ? WHERE ? = ? UNION ALL SELECT id FROM ? WHERE rowid > (SELECT w FROM ?) AND rowid < (SELECT w FROM ?) + ?"
	args := []any{fts, fts, words, fts, mark, mark, namePendingSpan}
	for _, w := range strings.Fields(words) {
		// Every word is 26 letters and digits between spaces: a word of
		// the query matches a whole word of the name_index only.
		sql += " AND instr(' ' || name_index || ' ', ?) > 0"
		args = append(args, " "+w+" ")
	}
	return q.Where(sql+")", args...)
}

// migrateNameFTS moves, on SQLite, the name index of the contacts from the
// b-tree table TableContactNames into the FTS5 table TableContactNameFTS,
// and makes the indexes of contacts by owner and by birthday partial.
//
// Why: a contact named "Ada Lovelace 123" has 14 name prefixes; each row
// of TableContactNames went to a random place of its b-tree (and of its
// contact index), about 1.8 pages written to the write-ahead log per
// token: 37 pages per create against 11 without a name. FTS5 writes one
// small segment per transaction and merges segments later, as an LSM
// tree does: about 5 pages. detail=none keeps no positions (a search is an
// AND of whole words); columnsize=0 keeps no document sizes (one b-tree
// fewer to write); secure-delete removes a deleted row's words from the
// index pages at once, so that an erased contact's tokens do not linger
// in the file. A delete hands FTS5 the old document (the 'delete'
// command), which the row's name_index holds. Many contacts have no
// owner or no birthday: the indexes by owner (List's OwnerID filter, an
// equality) and by birthday (the Scheduler's birth_index IN (…)) leave
// them out, a page fewer per create each.
//
// The name_index values in JSON (migration 20261123000570) are rewritten
// as words, the old triggers give way to the new, and TableContactNames'
// rows are deleted (the table stays: PostgreSQL uses it, and erasure
// reaches it). Every statement is a no-op when run again. On PostgreSQL
// it does nothing.
func migrateNameFTS(ctx context.Context, tx bun.Tx) error {
	if tx.Dialect().Name() == dialect.PG {
		return nil
	}
	if err := migrations.Exec(ctx, tx,
		`DROP TRIGGER IF EXISTS socialcrm_crm_contact_name_index_insert`,
		`DROP TRIGGER IF EXISTS socialcrm_crm_contact_name_index_update`,
		`DROP TRIGGER IF EXISTS socialcrm_crm_contact_name_index_delete`,
	); err != nil {
		return err
	}
	// JSON arrays to words, before the FTS5 triggers exist.
	var rows []struct {
		RowID int64  `bun:"rowid"`
		Index string `bun:"name_index"`
	}
	if err := tx.NewRaw("SELECT rowid, name_index FROM socialcrm_crm_contacts WHERE name_index LIKE '[%'").Scan(ctx, &rows); err != nil {
		return fmt.Errorf("read name indexes: %w", err)
	}
	for _, r := range rows {
		var tokens []string
		if err := json.Unmarshal([]byte(r.Index), &tokens); err != nil {
			return fmt.Errorf("read name index of contact row %d: %w", r.RowID, err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE socialcrm_crm_contacts SET name_index = ? WHERE rowid = ?",
			nullIfEmpty(ftsTokens(tokens)), r.RowID); err != nil {
			return err
		}
	}
	var exists int
	if err := tx.NewRaw("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", TableContactNameFTS).
		Scan(ctx, &exists); err != nil {
		return err
	}
	if exists == 0 {
		if err := migrations.Exec(ctx, tx,
			`CREATE VIRTUAL TABLE socialcrm_crm_contact_name_fts USING fts5(name_index, id UNINDEXED,
				content='socialcrm_crm_contacts', columnsize=0, detail=none, tokenize='ascii')`,
			`INSERT INTO socialcrm_crm_contact_name_fts (socialcrm_crm_contact_name_fts, rank) VALUES ('secure-delete', 1)`,
			`INSERT INTO socialcrm_crm_contact_name_fts (rowid, name_index, id)
				SELECT rowid, name_index, id FROM socialcrm_crm_contacts WHERE name_index IS NOT NULL`,
		); err != nil {
			return err
		}
	}
	return migrations.Exec(ctx, tx,
		`CREATE TRIGGER IF NOT EXISTS socialcrm_crm_contact_name_fts_insert
			AFTER INSERT ON socialcrm_crm_contacts WHEN NEW.name_index IS NOT NULL
			BEGIN
				INSERT INTO socialcrm_crm_contact_name_fts (rowid, name_index, id) VALUES (NEW.rowid, NEW.name_index, NEW.id);
			END`,
		// Every update: a row's rowid can change too (UPDATE … SET rowid).
		`CREATE TRIGGER IF NOT EXISTS socialcrm_crm_contact_name_fts_update
			AFTER UPDATE ON socialcrm_crm_contacts
			WHEN OLD.name_index IS NOT NEW.name_index OR OLD.rowid IS NOT NEW.rowid
			BEGIN
				INSERT INTO socialcrm_crm_contact_name_fts (socialcrm_crm_contact_name_fts, rowid, name_index, id)
					SELECT 'delete', OLD.rowid, OLD.name_index, OLD.id WHERE OLD.name_index IS NOT NULL;
				INSERT INTO socialcrm_crm_contact_name_fts (rowid, name_index, id)
					SELECT NEW.rowid, NEW.name_index, NEW.id WHERE NEW.name_index IS NOT NULL;
			END`,
		`CREATE TRIGGER IF NOT EXISTS socialcrm_crm_contact_name_fts_delete
			AFTER DELETE ON socialcrm_crm_contacts WHEN OLD.name_index IS NOT NULL
			BEGIN
				INSERT INTO socialcrm_crm_contact_name_fts (socialcrm_crm_contact_name_fts, rowid, name_index, id)
					VALUES ('delete', OLD.rowid, OLD.name_index, OLD.id);
			END`,
		`DELETE FROM socialcrm_crm_contact_names`,
		`DROP INDEX IF EXISTS socialcrm_crm_contacts_owner`,
		`CREATE INDEX socialcrm_crm_contacts_owner ON socialcrm_crm_contacts (tenant_id, owner_id, id) WHERE owner_id IS NOT NULL`,
		`DROP INDEX IF EXISTS socialcrm_crm_contacts_birth`,
		`CREATE INDEX socialcrm_crm_contacts_birth ON socialcrm_crm_contacts (tenant_id, birth_index) WHERE birth_index IS NOT NULL`,
	)
}

// TableContactNameFTSMark is, on SQLite, the name index's watermark: one
// row, one column w, the highest contact rowid whose name is in
// TableContactNameFTS. Contacts above it are the pending ones (at most
// namePendingSpan−1 rowids above it): a create writes nothing but its
// row, and a name search reads their name_index directly
// (nameMatchSQLite). The Guard walls it off like the FTS5 table's shadow
// tables (tenancy.FullTextIndex): a statement may name it only in the
// name search's read of the pending contacts, to bound their rowids.
const TableContactNameFTSMark = TableContactNameFTS + "_mark"

// namePendingSpan is how many rowids above the watermark a contact may
// take before its insert moves every pending contact into the FTS5 index
// in one statement and raises the watermark: the most contacts a name
// search reads by their name_index column (see migrateNameFTSPending).
const namePendingSpan = 64

// migrateNameFTSPending keeps, on SQLite, the newest contacts out of the
// FTS5 name index: those whose rowid is above the watermark
// (TableContactNameFTSMark). A create then writes its row only; the
// insert that takes a rowid namePendingSpan or more above the watermark
// writes every pending contact into the FTS5 index in one statement (one
// segment) and raises the watermark to the highest rowid. A contact
// inserted at or below the watermark (a rowid reused after deletes at
// the top of the table) goes into the index at once, and a rename or a
// delete touches the index only for a contact at or below the watermark;
// an update that moves a contact above the watermark (UPDATE … SET
// rowid) indexes every pending contact, so that no contact is ever above
// the watermark by namePendingSpan or more. Every existing contact is in
// the index: the watermark starts at the highest rowid. On PostgreSQL it
// does nothing.
func migrateNameFTSPending(ctx context.Context, tx bun.Tx) error {
	if tx.Dialect().Name() == dialect.PG {
		return nil
	}
	span := fmt.Sprint(namePendingSpan)
	const mark = `(SELECT w FROM socialcrm_crm_contact_name_fts_mark)`
	return migrations.Exec(ctx, tx,
		`CREATE TABLE IF NOT EXISTS socialcrm_crm_contact_name_fts_mark (w INTEGER NOT NULL)`,
		`INSERT INTO socialcrm_crm_contact_name_fts_mark (w)
			SELECT coalesce(max(rowid), 0) FROM socialcrm_crm_contacts
			WHERE NOT EXISTS (SELECT 1 FROM socialcrm_crm_contact_name_fts_mark)`,
		`DROP TRIGGER IF EXISTS socialcrm_crm_contact_name_fts_insert`,
		`DROP TRIGGER IF EXISTS socialcrm_crm_contact_name_fts_update`,
		`DROP TRIGGER IF EXISTS socialcrm_crm_contact_name_fts_delete`,
		// One trigger, its statements in order: the first indexes a row
		// at or below the watermark, the next two (only when the row is
		// namePendingSpan or more above it) index the pending rows and
		// raise the watermark.
		`CREATE TRIGGER socialcrm_crm_contact_name_fts_insert
			AFTER INSERT ON socialcrm_crm_contacts
			WHEN (SELECT CASE WHEN NEW.rowid <= w THEN NEW.name_index IS NOT NULL ELSE NEW.rowid >= w + `+span+` END
				FROM socialcrm_crm_contact_name_fts_mark)
			BEGIN
				INSERT INTO socialcrm_crm_contact_name_fts (rowid, name_index, id)
					SELECT NEW.rowid, NEW.name_index, NEW.id WHERE NEW.rowid <= `+mark+` AND NEW.name_index IS NOT NULL;
				INSERT INTO socialcrm_crm_contact_name_fts (rowid, name_index, id)
					SELECT rowid, name_index, id FROM socialcrm_crm_contacts
					WHERE NEW.rowid >= `+mark+` + `+span+` AND rowid > `+mark+` AND name_index IS NOT NULL;
				UPDATE socialcrm_crm_contact_name_fts_mark SET w = (SELECT max(rowid) FROM socialcrm_crm_contacts)
					WHERE NEW.rowid >= w + `+span+`;
			END`,
		// Every update: a row's rowid can change too (UPDATE … SET rowid).
		`CREATE TRIGGER socialcrm_crm_contact_name_fts_update
			AFTER UPDATE ON socialcrm_crm_contacts
			WHEN OLD.name_index IS NOT NEW.name_index OR OLD.rowid IS NOT NEW.rowid
			BEGIN
				INSERT INTO socialcrm_crm_contact_name_fts (socialcrm_crm_contact_name_fts, rowid, name_index, id)
					SELECT 'delete', OLD.rowid, OLD.name_index, OLD.id WHERE OLD.name_index IS NOT NULL AND OLD.rowid <= `+mark+`;
				INSERT INTO socialcrm_crm_contact_name_fts (rowid, name_index, id)
					SELECT NEW.rowid, NEW.name_index, NEW.id WHERE NEW.name_index IS NOT NULL AND NEW.rowid <= `+mark+`;
				INSERT INTO socialcrm_crm_contact_name_fts (rowid, name_index, id)
					SELECT rowid, name_index, id FROM socialcrm_crm_contacts
					WHERE OLD.rowid IS NOT NEW.rowid AND NEW.rowid > `+mark+` AND rowid > `+mark+` AND name_index IS NOT NULL;
				UPDATE socialcrm_crm_contact_name_fts_mark SET w = (SELECT max(rowid) FROM socialcrm_crm_contacts)
					WHERE OLD.rowid IS NOT NEW.rowid AND NEW.rowid > w;
			END`,
		`CREATE TRIGGER socialcrm_crm_contact_name_fts_delete
			AFTER DELETE ON socialcrm_crm_contacts WHEN OLD.name_index IS NOT NULL AND OLD.rowid <= `+mark+`
			BEGIN
				INSERT INTO socialcrm_crm_contact_name_fts (socialcrm_crm_contact_name_fts, rowid, name_index, id)
					VALUES ('delete', OLD.rowid, OLD.name_index, OLD.id);
			END`,
	)
}

package crm

import (
	"context"
	"encoding/hex"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TableContactNameFTS is, on SQLite, the name index of the contacts (see
// ContactFilter.NamePrefix): a contentless FTS5 table whose rowid is the
// contact row's rowid and whose document is the blind indexes of the
// contact's name prefixes, each written as the hexadecimal digits of its
// text. Triggers on the contacts keep it from their name_index column on
// every insert, change of name_index (or rowid) and delete (migration
// 20261123000590). On PostgreSQL the name index stays TableContactNames.
const TableContactNameFTS = TablePrefix + "contact_name_fts"

// contactNameFTS is the model of TableContactNameFTS, for the Guard, which
// walls it and its shadow tables off (tenancy.FullTextIndex): no statement
// of the application may name them but the look-up List runs.
type contactNameFTS struct {
	bun.BaseModel `bun:"table:socialcrm_crm_contact_name_fts"`
	tenancy.FullTextIndex
}

// ftsTokens is the FTS5 query of a name search on SQLite: the AND of the
// exact tokens of tokens, each the hexadecimal digits of a blind index's
// text, as the triggers write them (SQL's hex()). Hexadecimal digits are
// whole words to FTS5's ascii tokenizer, which folds case: hex(), upper
// case, and this, lower, agree.
func ftsTokens(tokens []string) string {
	words := make([]string, len(tokens))
	for i, t := range tokens {
		words[i] = hex.EncodeToString([]byte(t))
	}
	return strings.Join(words, " ")
}

// nameMatchSQLite confines q, a select of contacts, to those whose name
// index holds every one of tokens, through TableContactNameFTS: one FTS5
// look-up (the AND of the tokens) yields the rowids of the matching
// contacts of every tenant, and q's tenant condition keeps the tenant's.
// Tokens are keyed per tenant, so another tenant's contacts do not match
// at all. The Guard lets exactly this shape through (tenancy.FullTextIndex).
func nameMatchSQLite(q *bun.SelectQuery, tokens []string) *bun.SelectQuery {
	return q.Where("ct.id IN (SELECT id FROM ? WHERE ? = ?)",
		bun.Ident(TableContactNameFTS), bun.Ident(TableContactNameFTS), ftsTokens(tokens))
}

// ftsDocument is the SQL expression of the FTS5 document of a contact
// row's name_index (a JSON array of tokens): each token's hexadecimal
// digits, space-separated; NULL for an empty array.
func ftsDocument(row string) string {
	return "(SELECT group_concat(hex(value), ' ') FROM json_each(" + row + ".name_index))"
}

// migrateNameFTS moves, on SQLite, the name index of the contacts from the
// b-tree table TableContactNames into the FTS5 table TableContactNameFTS.
//
// Why: a contact named "Ada Lovelace 123" has 14 name prefixes; each row
// of TableContactNames went to a random place of its b-tree (and of its
// contact index), about 1.8 pages written to the write-ahead log per
// token: 37 pages per create against 11 without a name. FTS5 writes one
// small segment per transaction and merges segments later, as an LSM
// tree does. detail=none keeps no positions (a search is an AND of whole
// tokens); contentless_delete=1 lets a row be deleted by rowid without
// the document; secure-delete removes a deleted row's tokens from the
// index pages at once, so that an erased contact's tokens do not linger
// in the file.
//
// The table is created and filled from every contact's name_index once;
// the old triggers give way to the new, and TableContactNames' rows are
// deleted (the table stays: PostgreSQL uses it, and its model keeps
// erasure reaching it). Every statement is a no-op when run again. On
// PostgreSQL it does nothing.
func migrateNameFTS(ctx context.Context, tx bun.Tx) error {
	if tx.Dialect().Name() == dialect.PG {
		return nil
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
				SELECT c.rowid, `+ftsDocument("c")+`, c.id FROM socialcrm_crm_contacts c WHERE c.name_index IS NOT NULL`,
		); err != nil {
			return err
		}
	}
	return migrations.Exec(ctx, tx,
		`DROP TRIGGER IF EXISTS socialcrm_crm_contact_name_index_insert`,
		`DROP TRIGGER IF EXISTS socialcrm_crm_contact_name_index_update`,
		`DROP TRIGGER IF EXISTS socialcrm_crm_contact_name_index_delete`,
		`CREATE TRIGGER IF NOT EXISTS socialcrm_crm_contact_name_fts_insert
			AFTER INSERT ON socialcrm_crm_contacts WHEN NEW.name_index IS NOT NULL
			BEGIN
				INSERT INTO socialcrm_crm_contact_name_fts (rowid, name_index, id) VALUES (NEW.rowid, `+ftsDocument("NEW")+`, NEW.id);
			END`,
		// Every update: a row's rowid can change too (UPDATE … SET rowid).
		`CREATE TRIGGER IF NOT EXISTS socialcrm_crm_contact_name_fts_update
			AFTER UPDATE ON socialcrm_crm_contacts
			WHEN OLD.name_index IS NOT NEW.name_index OR OLD.rowid IS NOT NEW.rowid
			BEGIN
				INSERT INTO socialcrm_crm_contact_name_fts (socialcrm_crm_contact_name_fts, rowid, name_index, id)
					SELECT 'delete', OLD.rowid, `+ftsDocument("OLD")+`, OLD.id WHERE OLD.name_index IS NOT NULL;
				INSERT INTO socialcrm_crm_contact_name_fts (rowid, name_index, id)
					SELECT NEW.rowid, `+ftsDocument("NEW")+`, NEW.id WHERE NEW.name_index IS NOT NULL;
			END`,
		`CREATE TRIGGER IF NOT EXISTS socialcrm_crm_contact_name_fts_delete
			AFTER DELETE ON socialcrm_crm_contacts WHEN OLD.name_index IS NOT NULL
			BEGIN
				INSERT INTO socialcrm_crm_contact_name_fts (socialcrm_crm_contact_name_fts, rowid, name_index, id)
					VALUES ('delete', OLD.rowid, `+ftsDocument("OLD")+`, OLD.id);
			END`,
		`DELETE FROM socialcrm_crm_contact_names`,
	)
}

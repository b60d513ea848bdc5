package crm

import (
	"context"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// TablePrefix starts the name of every crm table, so that none collides
// with a host application's own tables.
const TablePrefix = "socialcrm_crm_"

// migration is one versioned schema change of the package.
type migration struct {
	// version is a UTC timestamp, unique across socialcrm. crm uses
	// 20261123000500–20261123000599 for the core records (this file's
	// coreMigrations) and 20261123000600–20261123000699 for the commerce
	// records (commerceMigrations in commerce.go).
	version, comment string
	up               func(ctx context.Context, tx bun.Tx) error
}

// Migrations returns the versioned migrations of the crm tables.
// socialcrm.Migrate runs them after those of tenancy, vault and retention.
func Migrations() *migrate.Migrations {
	ms := migrate.NewMigrations()
	for _, m := range append(append(append(coreMigrations(), commerceMigrations()...), clearMigrations()...), claimMigrations()...) {
		migrations.Add(ms, m.version, m.comment, m.up)
	}
	return ms
}

// Models returns a pointer to each tenant-owned model of the package, for
// tenancy.InstallGuard.
func Models() []any {
	return append(coreModels(), commerceModels()...)
}

// Categories returns the retention categories of every crm table: how a
// data subject's rows are found (by contact_id, and by email for the
// contacts), how they are erased, why they are kept.
func Categories() []retention.Category {
	return withClear(append(commerceCategories(), coreCategories()...)) // commerce first: its rows hang off core records
}

// SealedColumns declares the package's sealed columns, for
// vault.WithColumns (key rotation reseals them).
func SealedColumns() []vault.Column {
	return append(coreSealedColumns(), commerceSealedColumns()...)
}

// recordColumns are the columns of Record, which every crm table starts
// with (the primary key is (tenant_id, id)).
const recordColumns = `tenant_id TEXT NOT NULL,
					id TEXT NOT NULL,
					created_at TIMESTAMP NOT NULL,
					updated_at TIMESTAMP NOT NULL,
					version BIGINT NOT NULL,`

// ownedTables runs the DDL statements stmts (portable types, IF NOT
// EXISTS; see internal/migrations.Exec), then enables PostgreSQL row-level
// security on each of tables, which must be tenant-owned.
func ownedTables(ctx context.Context, tx bun.Tx, tables []string, stmts ...string) error {
	if err := migrations.Exec(ctx, tx, stmts...); err != nil {
		return err
	}
	for _, t := range tables {
		if err := tenancy.EnableRowSecurity(ctx, tx, t); err != nil {
			return err
		}
	}
	return nil
}

// coreMigrations are the migrations of the core records (contacts,
// companies, deals, activities, tasks, notes, consent, conversations and
// messages), in version order.
func coreMigrations() []migration {
	return []migration{
		{"20261123000500", "crm_conversations", func(ctx context.Context, tx bun.Tx) error {
			return ownedTables(ctx, tx, []string{TableConversations, TableMessages},
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_conversations (
					`+recordColumns+`
					channel TEXT NOT NULL,
					account_id TEXT NOT NULL,
					thread_id TEXT NOT NULL,
					contact_id TEXT,
					last_message_at TIMESTAMP NOT NULL,
					delivered_until TIMESTAMP,
					read_until TIMESTAMP,
					PRIMARY KEY (tenant_id, id),
					UNIQUE (tenant_id, channel, account_id, thread_id)
				)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_conversations_last ON socialcrm_crm_conversations (tenant_id, last_message_at, id)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_conversations_contact ON socialcrm_crm_conversations (tenant_id, contact_id)`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_messages (
					`+recordColumns+`
					conversation_id TEXT NOT NULL,
					direction TEXT NOT NULL,
					external_id TEXT,
					text TEXT NOT NULL,
					attachments TEXT NOT NULL,
					sent_at TIMESTAMP NOT NULL,
					status TEXT NOT NULL,
					PRIMARY KEY (tenant_id, id),
					UNIQUE (tenant_id, conversation_id, external_id)
				)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_messages_sent ON socialcrm_crm_messages (tenant_id, conversation_id, sent_at, id)`,
			)
		}},
		{"20261123000501", "crm_contacts", func(ctx context.Context, tx bun.Tx) error {
			return ownedTables(ctx, tx, []string{TableContacts, TableContactTags},
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_contacts (
					`+recordColumns+`
					first_name TEXT NOT NULL,
					last_name TEXT NOT NULL,
					stage TEXT NOT NULL,
					source TEXT NOT NULL,
					utm_source TEXT NOT NULL,
					utm_medium TEXT NOT NULL,
					utm_campaign TEXT NOT NULL,
					utm_term TEXT NOT NULL,
					utm_content TEXT NOT NULL,
					birth_year INTEGER NOT NULL,
					birth_month INTEGER NOT NULL,
					birth_day INTEGER NOT NULL,
					preferences TEXT NOT NULL,
					company_id TEXT,
					owner_id TEXT,
					tags TEXT NOT NULL,
					email_sealed BLOB,
					email_index TEXT,
					phone_sealed BLOB,
					phone_index TEXT,
					name_fold TEXT NOT NULL,
					last_fold TEXT NOT NULL,
					PRIMARY KEY (tenant_id, id)
				)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_contacts_stage ON socialcrm_crm_contacts (tenant_id, stage, id)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_contacts_owner ON socialcrm_crm_contacts (tenant_id, owner_id, id)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_contacts_updated ON socialcrm_crm_contacts (tenant_id, updated_at)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_contacts_name ON socialcrm_crm_contacts (tenant_id, name_fold)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_contacts_last ON socialcrm_crm_contacts (tenant_id, last_fold)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_contacts_email ON socialcrm_crm_contacts (tenant_id, email_index)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_contacts_phone ON socialcrm_crm_contacts (tenant_id, phone_index)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_contacts_birthday ON socialcrm_crm_contacts (tenant_id, birth_month, birth_day)`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_contact_tags (
					`+recordColumns+`
					contact_id TEXT NOT NULL,
					tag TEXT NOT NULL,
					PRIMARY KEY (tenant_id, id),
					UNIQUE (tenant_id, tag, contact_id)
				)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_contact_tags_contact ON socialcrm_crm_contact_tags (tenant_id, contact_id)`,
			)
		}},
		{"20261123000502", "crm_sales", func(ctx context.Context, tx bun.Tx) error {
			return ownedTables(ctx, tx, []string{TableCompanies, TablePipelines, TableDeals, TableStageChanges, TableActivities, TableTasks, TableNotes},
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_companies (
					`+recordColumns+`
					name TEXT NOT NULL,
					domain TEXT NOT NULL,
					industry TEXT NOT NULL,
					owner_id TEXT,
					name_fold TEXT NOT NULL,
					PRIMARY KEY (tenant_id, id)
				)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_companies_name ON socialcrm_crm_companies (tenant_id, name_fold)`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_pipelines (
					`+recordColumns+`
					name TEXT NOT NULL,
					stages TEXT NOT NULL,
					PRIMARY KEY (tenant_id, id)
				)`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_deals (
					`+recordColumns+`
					pipeline_id TEXT NOT NULL,
					stage TEXT NOT NULL,
					status TEXT NOT NULL,
					title TEXT NOT NULL,
					amount BIGINT NOT NULL,
					currency TEXT NOT NULL,
					contact_id TEXT,
					company_id TEXT,
					owner_id TEXT,
					expected_close TIMESTAMP,
					PRIMARY KEY (tenant_id, id)
				)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_deals_pipeline ON socialcrm_crm_deals (tenant_id, pipeline_id, stage)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_deals_contact ON socialcrm_crm_deals (tenant_id, contact_id)`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_deal_stage_changes (
					`+recordColumns+`
					deal_id TEXT NOT NULL,
					from_stage TEXT NOT NULL,
					to_stage TEXT NOT NULL,
					actor TEXT NOT NULL,
					changed_at TIMESTAMP NOT NULL,
					PRIMARY KEY (tenant_id, id)
				)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_deal_stage_changes_deal ON socialcrm_crm_deal_stage_changes (tenant_id, deal_id, changed_at)`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_activities (
					`+recordColumns+`
					kind TEXT NOT NULL,
					direction TEXT NOT NULL,
					external_id TEXT,
					contact_id TEXT,
					company_id TEXT,
					deal_id TEXT,
					subject TEXT NOT NULL,
					body TEXT NOT NULL,
					occurred_at TIMESTAMP NOT NULL,
					duration_sec BIGINT NOT NULL,
					owner_id TEXT,
					PRIMARY KEY (tenant_id, id),
					UNIQUE (tenant_id, kind, external_id)
				)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_activities_contact ON socialcrm_crm_activities (tenant_id, contact_id, occurred_at, id)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_activities_time ON socialcrm_crm_activities (tenant_id, occurred_at, id)`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_tasks (
					`+recordColumns+`
					title TEXT NOT NULL,
					description TEXT NOT NULL,
					status TEXT NOT NULL,
					due_at TIMESTAMP,
					assignee_id TEXT,
					contact_id TEXT,
					deal_id TEXT,
					completed_at TIMESTAMP,
					PRIMARY KEY (tenant_id, id)
				)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_tasks_assignee ON socialcrm_crm_tasks (tenant_id, assignee_id, status)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_tasks_contact ON socialcrm_crm_tasks (tenant_id, contact_id)`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_notes (
					`+recordColumns+`
					body TEXT NOT NULL,
					contact_id TEXT,
					company_id TEXT,
					deal_id TEXT,
					author_id TEXT,
					PRIMARY KEY (tenant_id, id)
				)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_notes_contact ON socialcrm_crm_notes (tenant_id, contact_id)`,
			)
		}},
		{"20261123000503", "crm_consent", func(ctx context.Context, tx bun.Tx) error {
			return ownedTables(ctx, tx, []string{TableConsents, TableConsentEvents, TableNotifications},
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_consents (
					`+recordColumns+`
					contact_id TEXT NOT NULL,
					channel TEXT NOT NULL,
					purpose TEXT NOT NULL,
					granted BOOLEAN NOT NULL,
					source TEXT NOT NULL,
					at TIMESTAMP NOT NULL,
					PRIMARY KEY (tenant_id, id),
					UNIQUE (tenant_id, contact_id, channel, purpose)
				)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_consents_audience ON socialcrm_crm_consents (tenant_id, channel, purpose, granted, contact_id)`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_consent_events (
					`+recordColumns+`
					contact_id TEXT NOT NULL,
					channel TEXT NOT NULL,
					purpose TEXT NOT NULL,
					action TEXT NOT NULL,
					source TEXT NOT NULL,
					actor TEXT NOT NULL,
					at TIMESTAMP NOT NULL,
					PRIMARY KEY (tenant_id, id)
				)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_consent_events_contact ON socialcrm_crm_consent_events (tenant_id, contact_id, at)`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_notifications (
					`+recordColumns+`
					contact_id TEXT NOT NULL,
					channel TEXT NOT NULL,
					purpose TEXT NOT NULL,
					key TEXT NOT NULL,
					sent_at TIMESTAMP NOT NULL,
					PRIMARY KEY (tenant_id, id),
					UNIQUE (tenant_id, contact_id, channel, key)
				)`,
			)
		}},
		{"20261123000550", "crm_sealed", func(ctx context.Context, tx bun.Tx) error {
			if err := sealTablesMigration(coreSealedTables)(ctx, tx); err != nil {
				return err
			}
			// The exact look-ups by blind index list in id order: the
			// index serves both.
			for _, ix := range []string{"socialcrm_crm_contacts_email", "socialcrm_crm_contacts_phone"} {
				if _, err := tx.ExecContext(ctx, "DROP INDEX IF EXISTS ?", bun.Ident(ix)); err != nil {
					return err
				}
			}
			return ownedTables(ctx, tx, []string{TableContactNames},
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_contacts_email_id ON socialcrm_crm_contacts (tenant_id, email_index, id)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_contacts_phone_id ON socialcrm_crm_contacts (tenant_id, phone_index, id)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_contacts_birth ON socialcrm_crm_contacts (tenant_id, birth_index)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_conversations_thread ON socialcrm_crm_conversations (tenant_id, thread_index)`,
				`CREATE TABLE IF NOT EXISTS socialcrm_crm_contact_names (
					tenant_id TEXT NOT NULL,
					token TEXT NOT NULL,
					contact_id TEXT NOT NULL,
					PRIMARY KEY (tenant_id, token, contact_id)
				)`,
				`CREATE INDEX IF NOT EXISTS socialcrm_crm_contact_names_contact ON socialcrm_crm_contact_names (tenant_id, contact_id)`,
			)
		}},
		{"20261123000551", "crm_pipeline_outcomes", func(ctx context.Context, tx bun.Tx) error {
			// The stages that close a deal as won or lost (Pipeline.WonStage,
			// LostStage); empty in pipelines created before.
			return migrations.Exec(ctx, tx,
				`ALTER TABLE socialcrm_crm_pipelines ADD COLUMN won_stage TEXT NOT NULL DEFAULT ''`,
				`ALTER TABLE socialcrm_crm_pipelines ADD COLUMN lost_stage TEXT NOT NULL DEFAULT ''`)
		}},
		{"20261123000560", "crm_contact_name_tokens", func(ctx context.Context, tx bun.Tx) error {
			// Contacts.Create writes a contact and its name index rows in one
			// statement: the INSERT carries the rows' tokens in name_tokens
			// (a JSON array), this trigger writes the rows and clears the
			// column, which is NULL at rest (createOne). On PostgreSQL it
			// runs before the insert and clears the column in the row
			// inserted; on SQLite, after it, with an UPDATE of the row.
			if err := migrations.Exec(ctx, tx, `ALTER TABLE socialcrm_crm_contacts ADD COLUMN name_tokens TEXT`); err != nil {
				return err
			}
			if tx.Dialect().Name() == dialect.PG {
				return migrations.Exec(ctx, tx, `CREATE OR REPLACE FUNCTION socialcrm_crm_contact_name_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
					BEGIN
						INSERT INTO socialcrm_crm_contact_names (tenant_id, token, contact_id)
							SELECT NEW.tenant_id, t, NEW.id FROM json_array_elements_text(NEW.name_tokens::json) AS t;
						NEW.name_tokens := NULL;
						RETURN NEW;
					END $$`,
					`CREATE TRIGGER socialcrm_crm_contact_name_tokens BEFORE INSERT ON socialcrm_crm_contacts
						FOR EACH ROW WHEN (NEW.name_tokens IS NOT NULL) EXECUTE FUNCTION socialcrm_crm_contact_name_tokens()`)
			}
			return migrations.Exec(ctx, tx, `CREATE TRIGGER IF NOT EXISTS socialcrm_crm_contact_name_tokens
				AFTER INSERT ON socialcrm_crm_contacts WHEN NEW.name_tokens IS NOT NULL
				BEGIN
					INSERT INTO socialcrm_crm_contact_names (tenant_id, token, contact_id)
						SELECT NEW.tenant_id, value, NEW.id FROM json_each(NEW.name_tokens);
					UPDATE socialcrm_crm_contacts SET name_tokens = NULL WHERE rowid = NEW.rowid;
				END`)
		}},
		{"20261123000570", "crm_contact_name_index", migrateNameIndex},
		{"20261123000580", "crm_contact_profile", profileMigration},
		{"20261123000590", "crm_contact_name_fts", migrateNameFTS},   // nameindex_sqlite.go
		{"20261123000595", "crm_contact_create_pg", migrateCreatePG}, // create_pg.go
		{"20261123000610", "crm_conversations_hot", conversationsHotMigration},
		{"20261123000620", "crm_conversations_day", conversationsDayMigration},
		{"20261206080200", "crm_contact_names_before_insert", migrateNamesBeforeInsertPG}, // create_pg.go
		{"20261207010000", "crm_contact_names_narrow", migrateNamesNarrowPG},              // create_pg.go
		{"20261208010000", "crm_contact_name_fts_pending", migrateNameFTSPending},         // nameindex_sqlite.go
		{"20261208020000", "crm_contact_owner_partial", migrateOwnerPartialPG},            // create_pg.go
		{"20261209010000", "crm_contact_names_keyed", migrateNamesKeyedPG},                // nameindex_pgcreate2.go
		{"20261210010000", "crm_contact_create_unclaimed", migrateUnclaimedPG},            // create_pg.go
		{"20261211010000", "crm_contact_names_one_btree", migrateNamesOneBtreePG},         // nameindex_btree.go
	}
}

// conversationsHotMigration makes the update of a conversation that a
// message moves forward — what every webhook delivery does to each
// conversation it brings a message to — cheap on PostgreSQL. Each such
// update added an entry to each of the table's five indexes (a new row
// version, the last message time an indexed column). Now:
//   - the index on (tenant_id, last_message_at, id) goes, so that no
//     indexed column changes and the update can be a heap-only tuple
//     (HOT: no index entry at all) when the row's page has room for the
//     new version — for which the table keeps half of each page free
//     (fillfactor, for pages written from now on);
//   - the unique key is (tenant_id, thread_index, channel, account_id),
//     which also serves the look-ups by thread alone, so the index on
//     (tenant_id, thread_index) goes;
//   - the index on (tenant_id, contact_id) holds the linked conversations
//     only (the only ones a look-up by contact finds);
//
// so an update that cannot be HOT (its page full, the server not having
// pruned it yet) adds two index entries: the primary key's and the
// unique key's. SQLite keeps its indexes: it updates rows in place.
func conversationsHotMigration(ctx context.Context, tx bun.Tx) error {
	if tx.Dialect().Name() != dialect.PG {
		return nil
	}
	var unique []string
	if err := tx.NewRaw(`SELECT conname FROM pg_constraint
		WHERE conrelid = 'socialcrm_crm_conversations'::regclass AND contype = 'u'`).Scan(ctx, &unique); err != nil {
		return err
	}
	stmts := []string{
		`CREATE UNIQUE INDEX IF NOT EXISTS socialcrm_crm_conversations_key
			ON socialcrm_crm_conversations (tenant_id, thread_index, channel, account_id)`,
	}
	for _, c := range unique {
		stmts = append(stmts, `ALTER TABLE socialcrm_crm_conversations DROP CONSTRAINT `+pgIdent(c))
	}
	stmts = append(stmts,
		`DROP INDEX IF EXISTS socialcrm_crm_conversations_thread`,
		`DROP INDEX IF EXISTS socialcrm_crm_conversations_last`,
		`DROP INDEX IF EXISTS socialcrm_crm_conversations_contact`,
		`CREATE INDEX IF NOT EXISTS socialcrm_crm_conversations_contact ON socialcrm_crm_conversations (tenant_id, contact_id)
			WHERE contact_id IS NOT NULL`,
		`ALTER TABLE socialcrm_crm_conversations SET (fillfactor = 50)`)
	return migrations.Exec(ctx, tx, stmts...)
}

// conversationsDayMigration gives PostgreSQL's conversations a coarse
// bucket of their last message time, last_message_day (whole days since
// 1970-01-01 UTC), and an index on (tenant_id, last_message_day DESC):
// List reads a tenant's conversations along it, sorting only those of a
// day by the exact time (an incremental sort), where since
// conversationsHotMigration it sorted all of them. The column is generated
// by the server from last_message_at, so every statement that writes the
// time (Record, Ingest, merges, imports) keeps it exact without naming it;
// it changes at most once a day per conversation, and the update a
// message makes to its conversation within the day still changes no
// indexed column (it can stay a heap-only tuple). Adding the column fills
// it for the existing rows (a rewrite of the table, in the migration's
// transaction); both statements are no-ops when run again. SQLite keeps
// its index on the exact time: it updates rows in place.
func conversationsDayMigration(ctx context.Context, tx bun.Tx) error {
	if tx.Dialect().Name() != dialect.PG {
		return nil
	}
	return migrations.Exec(ctx, tx,
		// timestamptz - timestamptz and extract from an interval are
		// immutable (extract from a timestamptz is not): the expression
		// may generate a column.
		`ALTER TABLE socialcrm_crm_conversations ADD COLUMN IF NOT EXISTS last_message_day INTEGER
			GENERATED ALWAYS AS (floor(extract(epoch FROM last_message_at - '1970-01-01 00:00:00+00'::timestamptz) / 86400)::integer) STORED`,
		`CREATE INDEX IF NOT EXISTS socialcrm_crm_conversations_day
			ON socialcrm_crm_conversations (tenant_id, last_message_day DESC)`)
}

// pgIdent quotes a PostgreSQL identifier.
func pgIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// migrateNameIndex keeps a contact's name index in its row: the
// name_index column holds the blind indexes of its name prefixes (a text[]
// on PostgreSQL, a JSON array on SQLite), and triggers keep
// TableContactNames' rows exactly those tokens on every insert, update of
// name_index and delete. Before, the INSERT carried the tokens in
// name_tokens and a trigger wrote the rows and cleared the column (on
// SQLite with a second UPDATE of the row just inserted); a rename and a
// delete rewrote the rows by statements of their own.
//
// The rows stay in TableContactNames, searched through its b-tree by
// equality. A GIN index of the arrays measured cheaper to write on
// PostgreSQL (the create's server time halved), but the planner never uses
// it for the application's role: under row-level security a condition
// can serve as an index condition only if its operator is leakproof, and
// no GIN operator is — a name search at 100,000 contacts scanned them all
// (132 ms).
//
// Existing rows' tokens are copied into their contacts' name_index, in
// the migration's transaction: a run that stops leaves nothing done, and
// every statement is a no-op when run again.
func migrateNameIndex(ctx context.Context, tx bun.Tx) error {
	has, err := hasColumn(ctx, tx, TableContacts, "name_index")
	if err != nil {
		return err
	}
	if tx.Dialect().Name() == dialect.PG {
		if err := migrations.Exec(ctx, tx,
			`ALTER TABLE socialcrm_crm_contacts ADD COLUMN IF NOT EXISTS name_index TEXT[]`,
			// Row-level security binds the table's owner too (FORCE): lift
			// it for the copy, in this transaction only (restored below).
			`ALTER TABLE socialcrm_crm_contacts NO FORCE ROW LEVEL SECURITY`,
			`ALTER TABLE socialcrm_crm_contact_names NO FORCE ROW LEVEL SECURITY`,
			`UPDATE socialcrm_crm_contacts ct SET name_index = n.tokens
				FROM (SELECT tenant_id, contact_id, array_agg(token ORDER BY token) AS tokens
					FROM socialcrm_crm_contact_names GROUP BY tenant_id, contact_id) n
				WHERE ct.tenant_id = n.tenant_id AND ct.id = n.contact_id AND ct.name_index IS NULL`,
			`DROP TRIGGER IF EXISTS socialcrm_crm_contact_name_tokens ON socialcrm_crm_contacts`,
			`DROP FUNCTION IF EXISTS socialcrm_crm_contact_name_tokens()`,
			`ALTER TABLE socialcrm_crm_contacts DROP COLUMN IF EXISTS name_tokens`,
			// Invoked with the application's rights: row-level security
			// confines the rows it writes and deletes to the transaction's
			// tenant, which is the row's.
			`CREATE OR REPLACE FUNCTION socialcrm_crm_contact_name_index() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN
					IF TG_OP <> 'INSERT' THEN
						DELETE FROM socialcrm_crm_contact_names WHERE tenant_id = OLD.tenant_id AND contact_id = OLD.id;
					END IF;
					IF TG_OP <> 'DELETE' AND NEW.name_index IS NOT NULL THEN
						INSERT INTO socialcrm_crm_contact_names (tenant_id, token, contact_id)
							SELECT NEW.tenant_id, t, NEW.id FROM unnest(NEW.name_index) AS t;
					END IF;
					RETURN NULL;
				END $$`,
			`DROP TRIGGER IF EXISTS socialcrm_crm_contact_name_index_insert ON socialcrm_crm_contacts`,
			`CREATE TRIGGER socialcrm_crm_contact_name_index_insert AFTER INSERT ON socialcrm_crm_contacts
				FOR EACH ROW WHEN (NEW.name_index IS NOT NULL) EXECUTE FUNCTION socialcrm_crm_contact_name_index()`,
			`DROP TRIGGER IF EXISTS socialcrm_crm_contact_name_index_update ON socialcrm_crm_contacts`,
			`CREATE TRIGGER socialcrm_crm_contact_name_index_update AFTER UPDATE OF name_index ON socialcrm_crm_contacts
				FOR EACH ROW WHEN (OLD.name_index IS DISTINCT FROM NEW.name_index) EXECUTE FUNCTION socialcrm_crm_contact_name_index()`,
			`DROP TRIGGER IF EXISTS socialcrm_crm_contact_name_index_delete ON socialcrm_crm_contacts`,
			`CREATE TRIGGER socialcrm_crm_contact_name_index_delete AFTER DELETE ON socialcrm_crm_contacts
				FOR EACH ROW WHEN (OLD.name_index IS NOT NULL) EXECUTE FUNCTION socialcrm_crm_contact_name_index()`,
		); err != nil {
			return err
		}
		for _, t := range []string{TableContacts, TableContactNames} {
			if err := tenancy.EnableRowSecurity(ctx, tx, t); err != nil {
				return err
			}
		}
		return nil
	}
	if !has {
		if err := migrations.Exec(ctx, tx, `ALTER TABLE socialcrm_crm_contacts ADD COLUMN name_index TEXT`); err != nil {
			return err
		}
	}
	if err := migrations.Exec(ctx, tx,
		`UPDATE socialcrm_crm_contacts SET name_index = (SELECT json_group_array(n.token) FROM socialcrm_crm_contact_names n
			WHERE n.tenant_id = socialcrm_crm_contacts.tenant_id AND n.contact_id = socialcrm_crm_contacts.id)
			WHERE name_index IS NULL AND EXISTS (SELECT 1 FROM socialcrm_crm_contact_names n
				WHERE n.tenant_id = socialcrm_crm_contacts.tenant_id AND n.contact_id = socialcrm_crm_contacts.id)`,
		`DROP TRIGGER IF EXISTS socialcrm_crm_contact_name_tokens`,
	); err != nil {
		return err
	}
	if old, err := hasColumn(ctx, tx, TableContacts, "name_tokens"); err != nil {
		return err
	} else if old {
		if err := migrations.Exec(ctx, tx, `ALTER TABLE socialcrm_crm_contacts DROP COLUMN name_tokens`); err != nil {
			return err
		}
	}
	return migrations.Exec(ctx, tx,
		`CREATE TRIGGER IF NOT EXISTS socialcrm_crm_contact_name_index_insert
			AFTER INSERT ON socialcrm_crm_contacts WHEN NEW.name_index IS NOT NULL
			BEGIN
				INSERT INTO socialcrm_crm_contact_names (tenant_id, token, contact_id)
					SELECT NEW.tenant_id, value, NEW.id FROM json_each(NEW.name_index);
			END`,
		`CREATE TRIGGER IF NOT EXISTS socialcrm_crm_contact_name_index_update
			AFTER UPDATE OF name_index ON socialcrm_crm_contacts WHEN OLD.name_index IS NOT NEW.name_index
			BEGIN
				DELETE FROM socialcrm_crm_contact_names WHERE tenant_id = OLD.tenant_id AND contact_id = OLD.id;
				INSERT INTO socialcrm_crm_contact_names (tenant_id, token, contact_id)
					SELECT NEW.tenant_id, value, NEW.id FROM json_each(NEW.name_index);
			END`,
		`CREATE TRIGGER IF NOT EXISTS socialcrm_crm_contact_name_index_delete
			AFTER DELETE ON socialcrm_crm_contacts WHEN OLD.name_index IS NOT NULL
			BEGIN
				DELETE FROM socialcrm_crm_contact_names WHERE tenant_id = OLD.tenant_id AND contact_id = OLD.id;
			END`,
	)
}

// coreModels are the tenant-owned models of the core records.
func coreModels() []any {
	return []any{(*Conversation)(nil), (*Message)(nil), (*Contact)(nil), (*contactTag)(nil), (*contactName)(nil), (*contactNameFTS)(nil),
		(*Company)(nil), (*Pipeline)(nil), (*Deal)(nil), (*StageChange)(nil), (*Activity)(nil), (*Task)(nil), (*Note)(nil),
		(*Consent)(nil), (*ConsentEvent)(nil), (*sentNotification)(nil), (*contactMerge)(nil)}
}

// coreSealedColumns are the sealed columns of the core tables.
func coreSealedColumns() []vault.Column {
	return []vault.Column{
		{Table: TableContacts, ID: "id", Sealed: "profile_sealed", Binding: func(id string) vault.Binding { return vault.Binding{Record: id, Field: profileField} }},
	}
}

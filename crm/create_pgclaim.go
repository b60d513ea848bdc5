package crm

import (
	"context"
	"errors"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/internal/migrations"
)

// On PostgreSQL each e-mail address and each phone number a tenant's
// contacts hold has one holder, the contact whose email_claim (phone_claim)
// is true; a unique index of (tenant_id, blind index) over the holders
// (migrateClaimPG) makes Create's duplicate check: Create's statement
// marks its contact as the holder of its address and number, and fails
// on the index when another contact holds either (a create of the same
// address in progress makes it wait until that one ends, as the advisory
// locks did). That takes no lock and runs no look-up: see the package
// documentation for what it saves. The other contacts with the address —
// created with AllowDuplicate, or given it by an update — are not marked.
// Triggers keep one holder whatever writes the contacts: a contact
// inserted unmarked, or whose address changes, becomes the holder when
// there is none (false marks a contact that does not hold it); when the
// holder goes (deleted, erased, merged away) or its address changes, the
// oldest other contact with the address becomes the holder, in a block
// that catches the unique violation: a create that marked its contact
// first, even uncommitted, stays the holder. An AllowDuplicate create
// that meets a holder not yet committed fails on the index once it
// commits, and Create runs it again (its trigger then sees the holder); an
// update of an address in that race fails.

// claimMigrations are the migrations of the holder marks.
func claimMigrations() []migration {
	return []migration{
		{"20261214010000", "crm_contact_claims", migrateClaimPG}, // create_pgclaim.go
	}
}

// errClaimTaken is returned (wrapped, with the database's error) by
// execInsertPG when the contact could not be marked as the holder of its
// e-mail address or phone number: another contact holds one of them.
var errClaimTaken = errors.New("crm: create contact: an identifier is held by another contact")

// pgClaimFunc is the function that makes the oldest contact of tenant
// p_tenant with the blind index p_index the holder of it, unless one
// holds it already (a create that marked its contact and has not
// committed is waited for: if it commits, it holds the index and this
// gives up). "email" is replaced by "phone" for the phone numbers'.
const pgClaimFunc = `CREATE OR REPLACE FUNCTION socialcrm_crm_contact_claim_email(p_tenant text, p_index text)
	RETURNS void LANGUAGE plpgsql VOLATILE AS $f$
	DECLARE
		h text;
	BEGIN
		FOR n IN 1..8 LOOP
			IF EXISTS (SELECT 1 FROM socialcrm_crm_contacts AS ct
				WHERE ct.email_index = p_index AND ct.tenant_id = p_tenant AND ct.email_claim) THEN
				RETURN;
			END IF;
			SELECT ct.id INTO h FROM socialcrm_crm_contacts AS ct
				WHERE ct.email_index = p_index AND ct.tenant_id = p_tenant ORDER BY ct.id LIMIT 1;
			IF NOT FOUND THEN
				RETURN;
			END IF;
			BEGIN
				UPDATE socialcrm_crm_contacts SET email_claim = true
					WHERE tenant_id = p_tenant AND id = h AND email_index = p_index AND email_claim IS NOT TRUE;
				IF FOUND THEN
					RETURN;
				END IF;
			EXCEPTION WHEN unique_violation THEN
				RETURN;
			END;
		END LOOP;
	END $f$`

// pgClaimDecide is the function of the BEFORE INSERT and UPDATE trigger:
// a contact inserted without a mark (NULL: an AllowDuplicate create), or
// whose address (number) changes, becomes its holder when no contact
// holds it (true) and is marked false otherwise. Should a contact that
// holds it not have committed yet, the statement then fails on the unique
// index once that one commits (Create tries again, and marks false).
const pgClaimDecide = `CREATE OR REPLACE FUNCTION socialcrm_crm_contact_claims_decide() RETURNS trigger LANGUAGE plpgsql AS $f$
	BEGIN
		IF TG_OP = 'INSERT' AND NEW.email_claim IS NULL OR TG_OP = 'UPDATE' AND NEW.email_index IS DISTINCT FROM OLD.email_index THEN
			NEW.email_claim := CASE WHEN NEW.email_index IS NULL THEN NULL
				ELSE NOT EXISTS (SELECT 1 FROM socialcrm_crm_contacts AS ct
					WHERE ct.email_index = NEW.email_index AND ct.tenant_id = NEW.tenant_id AND ct.email_claim) END;
		END IF;
		IF TG_OP = 'INSERT' AND NEW.phone_claim IS NULL OR TG_OP = 'UPDATE' AND NEW.phone_index IS DISTINCT FROM OLD.phone_index THEN
			NEW.phone_claim := CASE WHEN NEW.phone_index IS NULL THEN NULL
				ELSE NOT EXISTS (SELECT 1 FROM socialcrm_crm_contacts AS ct
					WHERE ct.phone_index = NEW.phone_index AND ct.tenant_id = NEW.tenant_id AND ct.phone_claim) END;
		END IF;
		RETURN NEW;
	END $f$`

// pgClaimTrigger is the function of the AFTER UPDATE and DELETE triggers:
// when the holder of an address (number) goes or its address changes,
// the oldest other contact with it becomes the holder.
const pgClaimTrigger = `CREATE OR REPLACE FUNCTION socialcrm_crm_contact_claims() RETURNS trigger LANGUAGE plpgsql AS $f$
	BEGIN
		IF OLD.email_claim AND (TG_OP = 'DELETE' OR NEW.email_index IS DISTINCT FROM OLD.email_index) THEN
			PERFORM socialcrm_crm_contact_claim_email(OLD.tenant_id, OLD.email_index);
		END IF;
		IF OLD.phone_claim AND (TG_OP = 'DELETE' OR NEW.phone_index IS DISTINCT FROM OLD.phone_index) THEN
			PERFORM socialcrm_crm_contact_claim_phone(OLD.tenant_id, OLD.phone_index);
		END IF;
		RETURN NULL;
	END $f$`

// pgClaimBackfill marks the oldest contact of each tenant's address with
// no holder; "email" is replaced by "phone" for the numbers.
const pgClaimBackfill = `UPDATE socialcrm_crm_contacts SET email_claim = true
	WHERE email_claim IS NULL AND (tenant_id, id) IN (
		SELECT DISTINCT ON (c.tenant_id, c.email_index) c.tenant_id, c.id FROM socialcrm_crm_contacts AS c
		WHERE c.email_index IS NOT NULL AND NOT EXISTS (SELECT 1 FROM socialcrm_crm_contacts AS d
			WHERE d.tenant_id = c.tenant_id AND d.email_index = c.email_index AND d.email_claim)
		ORDER BY c.tenant_id, c.email_index, c.id)`

// migrateClaimPG (PostgreSQL; nothing on SQLite, whose writes take turns
// and whose create keeps its look-ups) adds the holder marks email_claim
// and phone_claim to the contacts, marks the oldest contact of each
// address and number, builds their unique indexes and creates the
// triggers that keep them (see above), then builds the e-mail, phone and
// birthday look-up indexes again, last (migrateCreatePG). It runs in the
// migration's transaction (writes to the contacts wait until it commits;
// a run that stops leaves nothing done) and does the same when run again.
// Row-level security binds the table's owner too (FORCE): it is lifted
// for the marking, in this transaction only, and restored.
func migrateClaimPG(ctx context.Context, tx bun.Tx) error {
	if tx.Dialect().Name() != dialect.PG {
		return nil
	}
	for _, col := range []string{"email_index", "phone_index", "birth_index"} {
		if has, err := hasColumn(ctx, tx, TableContacts, col); err != nil || !has {
			return err
		}
	}
	phone := func(s string) string { return strings.ReplaceAll(s, "email", "phone") }
	if err := migrations.Exec(ctx, tx,
		`ALTER TABLE socialcrm_crm_contacts ADD COLUMN IF NOT EXISTS email_claim BOOLEAN, ADD COLUMN IF NOT EXISTS phone_claim BOOLEAN`,
		`ALTER TABLE socialcrm_crm_contacts NO FORCE ROW LEVEL SECURITY`,
		pgClaimBackfill, phone(pgClaimBackfill),
		`ALTER TABLE socialcrm_crm_contacts FORCE ROW LEVEL SECURITY`,
		`CREATE UNIQUE INDEX IF NOT EXISTS socialcrm_crm_contacts_email_claim ON socialcrm_crm_contacts (tenant_id, email_index) WHERE email_claim`,
		`CREATE UNIQUE INDEX IF NOT EXISTS socialcrm_crm_contacts_phone_claim ON socialcrm_crm_contacts (tenant_id, phone_index) WHERE phone_claim`,
		pgClaimFunc, phone(pgClaimFunc), pgClaimDecide, pgClaimTrigger,
		`DROP TRIGGER IF EXISTS socialcrm_crm_contact_claims_insert ON socialcrm_crm_contacts`,
		`CREATE TRIGGER socialcrm_crm_contact_claims_insert BEFORE INSERT ON socialcrm_crm_contacts
			FOR EACH ROW WHEN ((NEW.email_index IS NOT NULL AND NEW.email_claim IS NULL) OR (NEW.phone_index IS NOT NULL AND NEW.phone_claim IS NULL))
			EXECUTE FUNCTION socialcrm_crm_contact_claims_decide()`,
		`DROP TRIGGER IF EXISTS socialcrm_crm_contact_claims_changed ON socialcrm_crm_contacts`,
		`CREATE TRIGGER socialcrm_crm_contact_claims_changed BEFORE UPDATE OF email_index, phone_index ON socialcrm_crm_contacts
			FOR EACH ROW EXECUTE FUNCTION socialcrm_crm_contact_claims_decide()`,
		`DROP TRIGGER IF EXISTS socialcrm_crm_contact_claims_update ON socialcrm_crm_contacts`,
		`CREATE TRIGGER socialcrm_crm_contact_claims_update AFTER UPDATE OF email_index, phone_index ON socialcrm_crm_contacts
			FOR EACH ROW WHEN (OLD.email_claim OR OLD.phone_claim) EXECUTE FUNCTION socialcrm_crm_contact_claims()`,
		`DROP TRIGGER IF EXISTS socialcrm_crm_contact_claims_delete ON socialcrm_crm_contacts`,
		`CREATE TRIGGER socialcrm_crm_contact_claims_delete AFTER DELETE ON socialcrm_crm_contacts
			FOR EACH ROW WHEN (OLD.email_claim OR OLD.phone_claim) EXECUTE FUNCTION socialcrm_crm_contact_claims()`,
	); err != nil {
		return err
	}
	return migrateCreatePG(ctx, tx)
}

package crm

import (
	"context"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

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

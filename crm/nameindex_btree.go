package crm

import (
	"context"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/internal/migrations"
)

// migrateNamesOneBtreePG (PostgreSQL; nothing on SQLite, whose name index
// rows are not kept) drops TableContactNames' b-tree on contact_id, which
// every create paid for with one entry per row written (about 8), and
// leaves the table its b-tree on token alone. Nothing reads the rows by
// contact_id any more: the rename and delete triggers find a contact's
// rows by the tokens of its old name_index (pgNameIndexFunc: every row a
// trigger or a migration wrote for the contact is one of those tokens),
// through the token b-tree; a data-subject request finds them the same
// way (contactNamesByToken), and the retention engine deletes the rows a
// batch selected through the token b-tree (retention.Category.Lookup). It
// replaces the triggers' function with that one first, in the migration's
// transaction (a run that stops leaves the index and the old function),
// and is a no-op when run again. On a schema without the name_index
// column (an older release's, which tests build) it does nothing: the
// migrations that come later there create the function and the index as
// before.
func migrateNamesOneBtreePG(ctx context.Context, tx bun.Tx) error {
	if tx.Dialect().Name() != dialect.PG {
		return nil
	}
	if has, err := hasColumn(ctx, tx, TableContacts, "name_index"); err != nil || !has {
		return err
	}
	if has, err := hasTable(ctx, tx, TableContactNames); err != nil || !has {
		return err
	}
	return migrations.Exec(ctx, tx, pgNameIndexFunc,
		`DROP INDEX IF EXISTS socialcrm_crm_contact_names_contact_id`)
}

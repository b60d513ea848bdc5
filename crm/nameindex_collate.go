package crm

import (
	"context"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/internal/migrations"
)

// migrateNamesTokenCPG (PostgreSQL; nothing on SQLite) gives the token
// column of TableContactNames the "C" collation, which compares bytes:
// every name index row a create writes is an entry of the b-tree on
// token, whose insert compares the token with a dozen others on its way
// down, and under the database's collation (a libc or ICU locale, as
// PostgreSQL databases are usually created) each comparison is a call of
// the locale's string comparison rather than a comparison of bytes. A
// token is a blind index in base64url: nothing sorts by it or compares it
// but for equality, and equality under a deterministic collation is
// equality of bytes, so every look-up finds the same rows. A condition
// token = x, or token = ANY(x), with x of the default collation takes the
// column's (a non-default implicit collation wins over the default), so
// the look-ups use the b-tree as before (TestNamesErasureThroughTokens
// and TestNamesNarrowMigration check the plans).
//
// The column keeps its type, so the table is not rewritten; its b-tree on
// token is built again, in the migration's transaction: writes to the
// table, and so creates, renames and deletes of contacts, wait until it
// is built (on a large table, plan the migration for a quiet moment), and
// a migration that stops leaves the column and the index as they were.
// It does nothing when the column has the collation already, and on a
// schema without the table (an older release's, which tests build: there
// the table comes later, with the database's collation, and serves as
// before).
func migrateNamesTokenCPG(ctx context.Context, tx bun.Tx) error {
	if tx.Dialect().Name() != dialect.PG {
		return nil
	}
	if has, err := hasTable(ctx, tx, TableContactNames); err != nil || !has {
		return err
	}
	var collation string
	if err := tx.NewRaw(`SELECT coalesce(c.collname, '') FROM pg_attribute AS a LEFT JOIN pg_collation AS c ON c.oid = a.attcollation
		WHERE a.attrelid = 'socialcrm_crm_contact_names'::regclass AND a.attname = 'token'`).Scan(ctx, &collation); err != nil {
		return err
	}
	if collation == "C" {
		return nil
	}
	return migrations.Exec(ctx, tx, `ALTER TABLE socialcrm_crm_contact_names ALTER COLUMN token TYPE text COLLATE "C"`)
}

package migrations

import (
	"context"
	"fmt"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// Exec runs DDL statements written with portable type names: TIMESTAMP
// becomes TIMESTAMPTZ and BLOB becomes BYTEA on PostgreSQL. Statements should
// use IF NOT EXISTS so that running them twice is harmless.
func Exec(ctx context.Context, tx bun.IDB, stmts ...string) error {
	pg := tx.Dialect().Name() == dialect.PG
	for _, s := range stmts {
		if pg {
			s = strings.NewReplacer(" TIMESTAMP", " TIMESTAMPTZ", " BLOB", " BYTEA").Replace(s)
		}
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("migrations: %w\n%s", err, s)
		}
	}
	return nil
}

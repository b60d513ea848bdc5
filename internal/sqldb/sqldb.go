// Package sqldb opens the databases socialcrm runs on, configured the way
// its tests and benchmarks measured: modernc SQLite in WAL mode with
// immediate write transactions and secure_delete, and PostgreSQL through
// pgx (PostgresConnector), with settings each connection keeps in its
// session and sets, in the round trip of the statement that needs it, only
// when its value changes (WithSetting). Their connections run a Check
// (SetCheck) before every statement, where no query hook can reach. A
// SQLite statement whose context is marked with PreparedLiterals runs,
// after the Check, as a statement its connection keeps prepared. A
// PostgreSQL statement may take its values as parameters from its context
// (WithParams), where bun would write them into its text, and hand its rows
// to a reader on the driver's side of database/sql (ReadRows).
package sqldb

import (
	"database/sql"
	"fmt"
	"net/url"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/sqliteshim"
)

// SQLite opens (creating it if needed) the SQLite database file at path.
//
// WAL lets readers run beside the one writer; write transactions begin
// IMMEDIATE so that two writers queue on busy_timeout instead of failing
// with SQLITE_BUSY when one upgrades a read lock; foreign keys are enforced;
// secure_delete overwrites deleted content with zeros, so that an erased
// row does not linger in the file's free pages.
func SQLite(path string) (*bun.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "secure_delete(ON)")
	q.Set("_txlock", "immediate")
	c := &connector{base: dsnConnector{dsn: "file:" + path + "?" + q.Encode(), d: sqliteshim.Driver()}}
	db := bun.NewDB(sql.OpenDB(c), sqlitedialect.New())
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqldb: open sqlite: %w", err)
	}
	return db, nil
}

// Postgres connects to the PostgreSQL server named by dsn
// (postgres://user@host:port/db?sslmode=disable&search_path=…).
func Postgres(dsn string) (*bun.DB, error) {
	c, err := PostgresConnector(dsn)
	if err != nil {
		return nil, err
	}
	db := bun.NewDB(sql.OpenDB(c), pgdialect.New())
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqldb: connect postgres: %w", err)
	}
	return db, nil
}

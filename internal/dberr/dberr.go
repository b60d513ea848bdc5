// Package dberr classifies driver errors the same way on SQLite and
// PostgreSQL.
package dberr

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun/driver/pgdriver"
	"modernc.org/sqlite"
)

// SQLite extended result codes (https://sqlite.org/rescode.html).
const (
	sqliteConstraintPrimaryKey = 1555
	sqliteConstraintUnique     = 2067
)

// IsUniqueViolation reports whether err is a unique or primary-key violation.
func IsUniqueViolation(err error) bool {
	if c, ok := pgCode(err); ok {
		return c == "23505"
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		c := sqErr.Code()
		return c == sqliteConstraintUnique || c == sqliteConstraintPrimaryKey
	}
	return false
}

// IsBusy reports whether err is SQLite's SQLITE_BUSY (or SQLITE_LOCKED):
// another connection held the database past the busy timeout.
func IsBusy(err error) bool {
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		c := sqErr.Code() & 0xff // the primary result code
		return c == 5 || c == 6
	}
	return false
}

// IsSerialization reports whether err is a PostgreSQL serialization failure
// or deadlock, after which the transaction may be retried.
func IsSerialization(err error) bool {
	c, _ := pgCode(err)
	return c == "40001" || c == "40P01"
}

// pgCode returns the SQLSTATE of a PostgreSQL error from either driver
// socialcrm runs on: pgx (sqldb's handles) or bun's pgdriver (a host's own
// handle).
func pgCode(err error) (string, bool) {
	var pgxErr *pgconn.PgError
	if errors.As(err, &pgxErr) {
		return pgxErr.Code, true
	}
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) {
		return pgErr.Field('C'), true
	}
	return "", false
}

// Code returns the SQLSTATE of a PostgreSQL error, empty for any other
// error.
func Code(err error) string {
	c, _ := pgCode(err)
	return c
}

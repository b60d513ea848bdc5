package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"net"
	"testing"
)

// SessionValue returns what db's connection knows its session holds of
// name, or "\x00unknown". db must have one connection, not in use.
func SessionValue(t testing.TB, db *sql.DB, name string) string {
	t.Helper()
	out := "\x00unknown"
	withConn(t, db, func(c *conn) {
		for _, s := range c.sess {
			if s.name == name && s.known {
				out = s.value
			}
		}
	})
	return out
}

// ServerValue returns what db's connection's session holds of name, asked
// past the tracking.
func ServerValue(t testing.TB, db *sql.DB, name string) string {
	t.Helper()
	var v string
	withConn(t, db, func(c *conn) {
		if err := c.pgx.QueryRow(context.Background(), "SELECT coalesce(current_setting($1, true), '')", name).Scan(&v); err != nil {
			t.Fatal(err)
		}
	})
	return v
}

func withConn(t testing.TB, db *sql.DB, f func(c *conn)) {
	t.Helper()
	cn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	if err := cn.Raw(func(dc any) error { f(dc.(*conn)); return nil }); err != nil {
		t.Fatal(err)
	}
}

// BatchStatements returns how many statements the package's PostgreSQL
// connections have sent in batches (a set_config, the advisory locks of
// WithAdvisoryLocks, a deferred BEGIN and the statement itself each count
// one).
func BatchStatements() int64 { return batchStatements.Load() }

// WrapNet makes the PostgreSQL connector c (PostgresConnector) wrap each
// network connection it dials with f, before any statement is sent.
func WrapNet(c driver.Connector, f func(net.Conn) net.Conn) { c.(*connector).wrapNet = f }

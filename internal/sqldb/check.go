package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Check decides whether query may run in ctx; an error refuses it, and the
// driver returns that error without sending anything.
type Check func(ctx context.Context, query string) error

// SetCheck makes every statement db sends from now on — Exec, Query and
// Prepare, through bun or database/sql directly, on any connection — pass
// check first, at the driver, after every query hook has run. It reports
// false, and does nothing, when db was not opened by this package.
func SetCheck(db *sql.DB, check Check) bool {
	d, ok := db.Driver().(checkingDriver)
	if !ok {
		return false
	}
	d.c.check.Store(&check)
	return true
}

// Checked wraps a driver's connector so that the handle sql.OpenDB makes of
// it runs a Check installed with SetCheck, as this package's own handles do.
func Checked(c driver.Connector) driver.Connector { return &connector{base: c} }

// connector wraps a driver's connector so that its connections run the
// installed Check.
type connector struct {
	base  driver.Connector
	check atomic.Pointer[Check]
	trips atomic.Int64 // round trips of PostgreSQL connections (RoundTrips)
	pings atomic.Int64 // of which pgx's liveness pings before reuse
	// names are the setting names statements of this handle have carried
	// (WithSetting), which every statement sets or empties (pg.go).
	names   atomic.Pointer[[]string]
	namesMu sync.Mutex
	// local is set when settings are transaction-local, sent with every
	// statement that needs one (socialcrm_settings=transaction).
	local bool
	// wrapNet, when set (tests only), wraps each PostgreSQL network
	// connection as it is dialled.
	wrapNet func(net.Conn) net.Conn
}

// dsnConnector is a connector for a driver without one of its own.
type dsnConnector struct {
	dsn string
	d   driver.Driver
}

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.d.Open(c.dsn) }
func (c dsnConnector) Driver() driver.Driver                        { return c.d }

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	cn, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	w := &conn{base: cn, c: c}
	if p, ok := cn.(*stdlib.Conn); ok {
		w.pgx = p.Conn()
		w.cancelled, _ = w.pgx.PgConn().CustomData()[cancelMarkKey].(*cancelMark)
		preferText(w.pgx.TypeMap())
	}
	return w, nil
}

func (c *connector) Driver() driver.Driver { return checkingDriver{c} }

// checkingDriver is what (*sql.DB).Driver returns for a handle of this
// package; it opens connections only through the connector.
type checkingDriver struct{ c *connector }

var errOpen = errors.New("sqldb: open connections through the connector")

func (checkingDriver) Open(string) (driver.Conn, error) { return nil, errOpen }

// conn runs the Check before every statement and forwards everything else.
// The driver's connection is an unexported field, not an embedded one, so
// that code holding the conn (sql.Conn.Raw) reaches it only through the
// methods below, which keep the session's settings tracked (pg.go).
type conn struct {
	base driver.Conn
	c    *connector
	pgx  *pgx.Conn // PostgreSQL through pgx: settings and BEGIN fold (WithSetting)
	tx   *pgTx     // the open transaction on pgx
	// cancelled marks a context ended during one of pgx's calls: the
	// pool must not hand the connection on (IsValid, ResetSession).
	cancelled *cancelMark
	// SQLite: inTx while a driver transaction is open; loose when a
	// statement naming a savepoint ran outside one, which may have begun
	// a transaction the pool must not hand on (IsValid).
	inTx, loose bool
	sess        []sessVal // what the session is known to hold of each setting (pg.go)
	convs       convs     // column conversions of result shapes seen (pg.go)
	// plans are the scan plans of statements read by ReadRows, by the
	// text sent (readrows.go).
	plans map[string]*scanPlans
	// parsed are statement texts the server has parsed on the connection
	// (pgx's statement cache holds them), so that a batch of them has no
	// parse round trip of its own (pg.go).
	parsed map[string]struct{}
	// prepared are the SQLite statements the connection keeps prepared,
	// by text (PreparedLiterals, sqlite_stmts.go).
	prepared map[string]driver.Stmt
}

var (
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
)

// ErrNonConformingStrings is returned for a statement on a PostgreSQL
// session with standard_conforming_strings off, which reads the literals
// bun writes otherwise than the Guard checked them.
var ErrNonConformingStrings = errors.New("sqldb: standard_conforming_strings is off")

func (c *conn) checkQuery(ctx context.Context, query string) error {
	if c.pgx != nil && c.pgx.PgConn().ParameterStatus("standard_conforming_strings") != "on" {
		return ErrNonConformingStrings
	}
	if f := c.c.check.Load(); f != nil {
		return (*f)(ctx, query)
	}
	return nil
}

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if err := c.checkQuery(ctx, query); err != nil {
		return nil, err
	}
	var st driver.Stmt
	var err error
	if p, ok := c.base.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = c.base.Prepare(query)
	}
	if err != nil || c.pgx == nil {
		return st, err
	}
	return &pgStmt{Stmt: st, c: c, query: query}, nil
}

func (c *conn) Close() error {
	c.closePrepared()
	return c.base.Close()
}

// Begin begins a transaction as BeginTx does, so that one begun through
// the driver's connection (sql.Conn.Raw) is tracked like any other.
func (c *conn) Begin() (driver.Tx, error) { return c.BeginTx(context.Background(), driver.TxOptions{}) }

func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if _, ok := c.base.(driver.ExecerContext); !ok {
		return nil, driver.ErrSkip // database/sql prepares instead, and PrepareContext checks
	}
	if err := c.checkQuery(ctx, query); err != nil {
		return nil, err
	}
	return c.exec(ctx, query, args)
}

// exec runs a statement that passed the Check.
func (c *conn) exec(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if c.pgx != nil {
		args = boundArgs(ctx, query, args) // bound.go
		if res, sent, err := c.pgExec(ctx, query, args); sent {
			return res, err
		}
		query, args = plainArgs(query, args)
	} else {
		c.noteSavepoint(query)
		if res, handled, err := c.preparedExec(ctx, query, args); handled {
			return res, err
		}
	}
	return c.base.(driver.ExecerContext).ExecContext(ctx, query, args)
}

func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if _, ok := c.base.(driver.QueryerContext); !ok {
		return nil, driver.ErrSkip
	}
	if err := c.checkQuery(ctx, query); err != nil {
		return nil, err
	}
	return c.query(ctx, query, args)
}

// query runs a statement that passed the Check.
func (c *conn) query(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if c.pgx != nil {
		args = boundArgs(ctx, query, args) // bound.go
		if rows, sent, err := c.pgQuery(ctx, query, args); sent {
			return rows, err
		}
		query, args = plainArgs(query, args)
	}
	c.noteSavepoint(query)
	return c.base.(driver.QueryerContext).QueryContext(ctx, query, args)
}

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.pgx != nil {
		return c.pgBegin(ctx, opts)
	}
	var tx driver.Tx
	var err error
	if b, ok := c.base.(driver.ConnBeginTx); ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		tx, err = c.base.Begin() //nolint:staticcheck // the driver has nothing better
	}
	if err != nil {
		return nil, err
	}
	c.inTx = true
	return sqliteTx{Tx: tx, c: c}, nil
}

// sqliteTx marks its connection out of the transaction when it ends.
type sqliteTx struct {
	driver.Tx
	c *conn
}

func (t sqliteTx) Commit() error   { t.c.inTx = false; return t.Tx.Commit() }
func (t sqliteTx) Rollback() error { t.c.inTx = false; return t.Tx.Rollback() }

// noteSavepoint marks a SQLite connection loose when query, run outside a
// driver transaction, may name a savepoint: SQLite's SAVEPOINT outside a
// transaction begins one, which would run the next user's statements on
// the pooled connection (for its ROLLBACK TO to undo them).
func (c *conn) noteSavepoint(query string) {
	if c.pgx == nil && !c.inTx && containsFold(query, "savepoint") {
		c.loose = true
	}
}

// containsFold reports whether s contains the lower-case ASCII word w in
// any case.
func containsFold(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		j := 0
		for j < len(w) && s[i+j]|0x20 == w[j] {
			j++
		}
		if j == len(w) {
			return true
		}
	}
	return false
}

func (c *conn) Ping(ctx context.Context) error {
	if p, ok := c.base.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *conn) ResetSession(ctx context.Context) error {
	if c.cancelled != nil && c.cancelled.fired.Load() {
		return driver.ErrBadConn // see PostgresConnector
	}
	if r, ok := c.base.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *conn) IsValid() bool {
	if c.pgx != nil && c.pgx.PgConn().ParameterStatus("standard_conforming_strings") != "on" {
		return false // checkQuery refuses every statement: not back to the pool
	}
	if c.cancelled != nil && c.cancelled.fired.Load() {
		return false // a read pgx had under way may keep a timeout for the next caller (PostgresConnector)
	}
	if c.loose {
		return false // closing it rolls back what a SAVEPOINT began (noteSavepoint)
	}
	if v, ok := c.base.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if n, ok := c.base.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

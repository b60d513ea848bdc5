package sqldb

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
)

// PostgresConnector returns the connector Postgres opens its handle with:
// pgx through its database/sql adapter; the literals bun writes into a
// statement turned into parameters where their type is certain (see
// params), so that each statement shape is prepared once per connection
// (pgx's statement cache) and runs in one round trip after that; a
// statement left whole runs unprepared, in one round trip too; settings
// (WithSetting) kept in each connection's session and, with a deferred
// BEGIN, sent in the round trip of the statement that needs them; and the
// Check (SetCheck) run before every statement, on the statement as bun
// wrote it. The statements it sends itself ask for results in the formats
// the adapter asks for, so that their rows convert to the same values.
func PostgresConnector(dsn string) (driver.Connector, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("sqldb: postgres dsn: %w", err)
	}
	if u, err := url.Parse(dsn); err == nil && u.Query().Has("default_query_exec_mode") {
		return nil, fmt.Errorf("sqldb: postgres dsn: default_query_exec_mode is chosen per statement")
	}
	c := &connector{}
	switch cfg.RuntimeParams[settingsParam] {
	case "", "session":
	case "transaction":
		c.local = true
	default:
		return nil, fmt.Errorf("sqldb: postgres dsn: %s is session or transaction", settingsParam)
	}
	delete(cfg.RuntimeParams, settingsParam)
	// bun writes strings for standard_conforming_strings on, and the Guard
	// and params read them so; with it off (a database's or role's
	// default, the DSN) the server reads a backslash before a quote as an
	// escape and a value can end a literal early. A startup parameter
	// overrides those defaults; checkQuery refuses a session turned off
	// later.
	cfg.RuntimeParams["standard_conforming_strings"] = "on"
	dial := cfg.DialFunc
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if c.wrapNet != nil {
			nc = c.wrapNet(nc)
		}
		return &countingConn{Conn: nc, trips: &c.trips}, nil
	}
	// A context that ends while pgx watches it leaves the connection
	// unfit for the next caller: pgx sets a deadline on the network
	// connection to interrupt the call and clears it when the call
	// returns, but a read its background reader had under way meanwhile
	// (pgx starts one when a write takes long) keeps the timeout for the
	// connection's next read — the next statement, whoever sends it,
	// fails with "i/o timeout". The connection is marked instead, and
	// the pool closes it (conn.IsValid, conn.ResetSession).
	build := cfg.BuildContextWatcherHandler
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		m := &cancelMark{Handler: build(pc)}
		pc.CustomData()[cancelMarkKey] = m
		return m
	}
	c.base = stdlib.GetConnector(*cfg, stdlib.OptionShouldPing(func(_ context.Context, p stdlib.ShouldPingParams) bool {
		// pgx's own rule: a connection taken from the pool more than a
		// second after it was last taken is pinged first (a round trip
		// of its own, busy or not). Counted, for RoundTrips to leave out.
		if p.IdleDuration <= time.Second {
			return false
		}
		c.pings.Add(1)
		return true
	}))
	return c, nil
}

// cancelMark records that a context pgx watched over a call of its
// connection ended during the call (see PostgresConnector).
type cancelMark struct {
	ctxwatch.Handler
	fired atomic.Bool
}

func (m *cancelMark) HandleCancel(ctx context.Context) {
	m.fired.Store(true)
	m.Handler.HandleCancel(ctx)
}

// cancelMarkKey is the key of a connection's cancelMark among its
// pgconn.PgConn's CustomData.
const cancelMarkKey = "socialcrm.sqldb.cancelMark"

// settingsParam is the DSN parameter that chooses where settings live
// (see WithSetting): "session" (the default) or "transaction".
const settingsParam = "socialcrm_settings"

// RoundTrips returns how many round trips db's connections have made to
// the server since they were opened — request messages sent after the
// last response was read — and whether db is a PostgreSQL handle of this
// package. Benchmarks and tests count with it. It leaves out the liveness
// ping pgx sends before handing out a pooled connection last handed out
// more than a second before: one round trip whether or not the
// connection was busy meanwhile, so a count of a statement's round trips
// would depend on how fast the machine ran it.
func RoundTrips(db *sql.DB) (int64, bool) {
	d, ok := db.Driver().(checkingDriver)
	if !ok {
		return 0, false
	}
	return d.c.trips.Load() - d.c.pings.Load(), true
}

// countingConn counts round trips: a write after a read (or the first
// write) begins one. pgx reads on a background goroutine while the caller
// writes, so the state is atomic.
type countingConn struct {
	net.Conn
	trips   *atomic.Int64
	writing atomic.Bool
}

func (c *countingConn) Write(b []byte) (int, error) {
	if c.writing.CompareAndSwap(false, true) {
		c.trips.Add(1)
	}
	return c.Conn.Write(b)
}

func (c *countingConn) Read(b []byte) (int, error) {
	c.writing.Store(false)
	return c.Conn.Read(b)
}

// setting is a server setting carried by a context.
type setting struct{ name, value string }

type settingKey struct{}

// WithSetting returns a context under which statements sent through a
// PostgreSQL handle of this package run with the server setting name set
// to value, and every other setting a statement of the handle has carried
// empty; a statement whose context carries no setting runs with them all
// empty (the empty string).
//
// The value is set at session level (set_config(name, value, false)) in
// the round trip of the statement it governs, and each connection
// remembers what its session holds: a statement whose values the
// connection is known to hold already is sent alone, with no set_config;
// any other is preceded in its round trip by the set_config of each value
// that differs or is not known — a statement without a setting on a
// connection that holds one empties it first. The connection holds a
// value as known only once the round trip that set it has ended outside
// any transaction (its implicit transaction committed), or the
// transaction that set it has committed; it forgets every value —
// sets them again before its next statement — when anything might have
// undone or changed one: an error or cancellation while the setting was
// on its way, a rollback (of the transaction, or to a savepoint) after a
// set_config in the transaction, a commit that rolled back, a statement
// that leaves or finds the session inside a transaction this package did
// not begin, and a statement whose text might set a setting or end a
// transaction (set_config, pg_settings, SET, RESET, DISCARD, transaction
// control, DO, CALL, EXECUTE, several statements). A new connection holds
// nothing known. Prepared statements (PrepareContext) and transactions
// begun through the driver's connection (sql.Conn.Raw) take the same path;
// the pgx connection beneath is not reachable from the handle.
//
// In a transaction begun with a setting (BeginTx under such a context),
// statements whose context carries none run under the one it was begun
// with, one whose context carries another runs under that one, and the
// BEGIN travels with the first statement. So every statement runs under
// exactly its own value, and a pooled connection's next user — any
// statement of the handle, whoever sends it — runs under its own value or
// none, never under the previous user's.
//
// The session is the connection's own: put no transaction-pooling proxy
// (which hands one client's statements to several server sessions)
// between such a handle and the server — or open the handle with the DSN
// parameter socialcrm_settings=transaction, under which every statement
// that needs a setting carries it transaction-local
// (set_config(name, value, true)), in its round trip, and nothing is
// kept in the session. On other handles the context changes nothing:
// check Folds first.
func WithSetting(ctx context.Context, name, value string) context.Context {
	return context.WithValue(ctx, settingKey{}, []setting{{name, value}})
}

// WithSettings is WithSetting for several settings at once: pairs holds
// names and values, alternately ("app.a", "1", "app.b", "2"). Statements
// run under each of them, and under the empty value of every other
// setting the handle has seen. An odd last name is set to "".
func WithSettings(ctx context.Context, pairs ...string) context.Context {
	sets := make([]setting, 0, (len(pairs)+1)/2)
	for i := 0; i < len(pairs); i += 2 {
		v := ""
		if i+1 < len(pairs) {
			v = pairs[i+1]
		}
		sets = append(sets, setting{pairs[i], v})
	}
	return context.WithValue(ctx, settingKey{}, sets)
}

// valueOf returns the value sets give name, "" when they give none.
func valueOf(sets []setting, name string) string {
	for _, s := range sets {
		if s.name == name {
			return s.value
		}
	}
	return ""
}

type locksKey struct{}

// WithAdvisoryLocks returns a context under which each statement sent
// through a PostgreSQL handle of this package is preceded, in its round
// trip, by pg_advisory_xact_lock of each of keys in the order given (give
// them in one order everywhere, so that two statements never wait on each
// other in a cycle). The locks are held until the transaction ends: outside
// a transaction, the implicit one of that round trip, which the statement
// ends; in one, until its COMMIT or ROLLBACK. The statement runs after the
// locks are taken, so under READ COMMITTED it sees what was committed
// before. When the statement carries a set_config too, the locks are
// taken in the same statement as the last one: one statement fewer in the
// round trip. On other handles the context changes nothing: check Folds
// first.
func WithAdvisoryLocks(ctx context.Context, keys []int64) context.Context {
	return context.WithValue(ctx, locksKey{}, keys)
}

// Folds reports whether db is a PostgreSQL handle of this package, on
// which WithSetting and WithAdvisoryLocks take effect: the setting of a
// statement travels in its round trip, or not at all when the
// connection's session holds it already (see WithSetting for what a
// connection keeps between statements and why no statement runs under
// another's value).
func Folds(db *sql.DB) bool {
	d, ok := db.Driver().(checkingDriver)
	return ok && d.c.pg()
}

func (c *connector) pg() bool {
	_, ok := c.base.(interface{ Driver() driver.Driver }).Driver().(*stdlib.Driver)
	return ok
}

// pgTx is a transaction whose BEGIN waits for its first statement.
type pgTx struct {
	c     *conn
	begin string    // the BEGIN still to send; empty once sent
	want  []setting // the settings the transaction was begun with
	// dirty is set once a set_config was sent in the transaction: a
	// rollback undoes it.
	dirty bool
	// deferred are savepoint statements (SAVEPOINT, RELEASE SAVEPOINT)
	// still to send, in order, in the round trip of the next statement.
	deferred []string
	// savepoints are the names bun gave the open savepoints, outermost
	// first; the server knows them by their depth.
	savepoints []string
}

func beginStatement(opts driver.TxOptions) (string, error) {
	s := "BEGIN"
	switch sql.IsolationLevel(opts.Isolation) {
	case sql.LevelDefault:
	case sql.LevelReadUncommitted:
		s += " ISOLATION LEVEL READ UNCOMMITTED"
	case sql.LevelReadCommitted:
		s += " ISOLATION LEVEL READ COMMITTED"
	case sql.LevelRepeatableRead, sql.LevelSnapshot:
		s += " ISOLATION LEVEL REPEATABLE READ"
	case sql.LevelSerializable:
		s += " ISOLATION LEVEL SERIALIZABLE"
	default:
		return "", fmt.Errorf("sqldb: unsupported isolation level %v", opts.Isolation)
	}
	if opts.ReadOnly {
		s += " READ ONLY"
	}
	return s, nil
}

func (c *conn) pgBegin(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.pgx.IsClosed() {
		return nil, driver.ErrBadConn
	}
	b, err := beginStatement(opts)
	if err != nil {
		return nil, err
	}
	want, _ := ctx.Value(settingKey{}).([]setting)
	c.tx = &pgTx{c: c, begin: b, want: want}
	return c.tx, nil
}

func (t *pgTx) end(stmt string) error {
	c := t.c
	defer func() { c.tx = nil }()
	if t.begin != "" { // nothing was sent: there is nothing to end
		return nil
	}
	tag, err := c.pgx.Exec(context.Background(), stmt)
	if err == nil && stmt == "COMMIT" && tag.String() != "COMMIT" {
		err = pgx.ErrTxCommitRollback // a failed transaction answers COMMIT with ROLLBACK
	}
	if err != nil || stmt != "COMMIT" && t.dirty || c.pgx.PgConn().TxStatus() != 'I' {
		c.forget()
	}
	return err
}

func (t *pgTx) Commit() error   { return t.end("COMMIT") }
func (t *pgTx) Rollback() error { return t.end("ROLLBACK") }

// prelude is what must precede a statement sent in ctx: the deferred
// BEGIN and savepoint statements, the set_config of each setting whose
// value the session is not known to hold, and the advisory locks of
// WithAdvisoryLocks.
type prelude struct {
	begin string
	pre   []string  // deferred savepoint statements, after the BEGIN
	sets  []setting // session-level set_configs
	locks []int64
	// scoped is set when the statement's context (or its transaction)
	// carries a setting.
	scoped bool
	// idle is set when the session was outside any transaction before
	// the statement, and the statement opens none of its own.
	idle bool
}

// sessVal is what a connection's session holds of one setting: value,
// when known is set; otherwise it must be set again before a statement
// that relies on it.
type sessVal struct {
	name, value string
	known       bool
}

// register adds name to the setting names of the handle.
func (c *connector) register(name string) {
	if p := c.names.Load(); p != nil && slices.Contains(*p, name) {
		return
	}
	c.namesMu.Lock()
	defer c.namesMu.Unlock()
	var names []string
	if p := c.names.Load(); p != nil {
		if slices.Contains(*p, name) {
			return
		}
		names = slices.Clone(*p)
	}
	names = append(names, name)
	c.names.Store(&names)
}

// holds reports whether the session is known to hold value for name.
func (c *conn) holds(name, value string) bool {
	for _, s := range c.sess {
		if s.name == name {
			return s.known && s.value == value
		}
	}
	return false
}

// mark records what the session holds of each of sets: their values when
// known is set, else nothing known. With transaction-local settings the
// session holds none.
func (c *conn) mark(sets []setting, known bool) {
	if c.c.local {
		return
	}
next:
	for _, set := range sets {
		for i := range c.sess {
			if c.sess[i].name == set.name {
				c.sess[i] = sessVal{set.name, set.value, known}
				continue next
			}
		}
		c.sess = append(c.sess, sessVal{set.name, set.value, known})
	}
}

// forget marks every setting's value unknown.
func (c *conn) forget() {
	for i := range c.sess {
		c.sess[i].known = false
	}
}

// A statement runs under its context's setting or, in a transaction, the
// one the transaction was begun with, and under the empty value of every
// other setting name the handle has seen — so that a setting a nested
// scope sent for its own statements ends with them, and a setting never
// outlives the statements it was sent for.
func (c *conn) prelude(ctx context.Context) (p prelude, ok bool) {
	p.locks, _ = ctx.Value(locksKey{}).([]int64)
	want, _ := ctx.Value(settingKey{}).([]setting)
	has := len(want) > 0
	if t := c.tx; t != nil {
		if !has {
			want, has = t.want, len(t.want) > 0
		}
		p.begin, p.pre = t.begin, t.deferred
	} else if c.pgx.PgConn().TxStatus() != 'I' {
		c.forget() // a transaction this package did not begin may undo anything
	} else {
		p.idle = true
	}
	p.scoped = has
	for _, w := range want {
		c.c.register(w.name)
	}
	if names := c.c.names.Load(); names != nil {
		for _, n := range *names {
			v := valueOf(want, n)
			switch {
			case c.c.local && c.tx == nil && v == "":
				// Transaction-local settings end with each statement.
			case c.c.local || !c.holds(n, v):
				p.sets = append(p.sets, setting{n, v})
			}
		}
	}
	return p, p.begin != "" || len(p.pre) > 0 || len(p.sets) > 0 || len(p.locks) > 0
}

// settle records what the session holds after a statement sent with p
// ended (err is its outcome): the values p set once they are sure to
// stay — its implicit transaction committed, or in a transaction of this
// package, until that one ends — and nothing known after a statement that
// might have changed or undone a setting.
func (c *conn) settle(p *prelude, query string, err error) {
	switch {
	case unsettling(query) || c.pgx.IsClosed():
		c.forget()
	case c.tx != nil:
		if err == nil && len(p.sets) > 0 {
			c.mark(p.sets, true)
		}
		if c.pgx.PgConn().TxStatus() == 'I' {
			c.forget() // the transaction ended under the statement
		}
	case p.idle && c.pgx.PgConn().TxStatus() == 'I':
		if err == nil && len(p.sets) > 0 {
			c.mark(p.sets, true)
		}
	default:
		c.forget() // a transaction is open that this package did not begin
	}
}

// unsettling reports whether query might change a setting or end a
// transaction, so that the connection no longer knows what its session
// holds: a statement that names set_config or pg_settings; one that
// begins with SET, RESET, DISCARD, a transaction or savepoint command,
// DO, CALL, EXECUTE, PREPARE or LOAD — after any whitespace, comments
// and parentheses before its first word; one that holds a semicolon (it
// may be several); and one with a Unicode-escaped name (U&"…"), which
// may spell any of these.
func unsettling(query string) bool {
	if strings.IndexByte(query, ';') >= 0 || namesSettings(query) {
		return true
	}
	first, ok := firstWord(query)
	if !ok {
		return true // a comment that does not end: let the server say
	}
	if k := strings.IndexFunc(first, func(r rune) bool { return r > 0x7f || !isWord(byte(r)) }); k >= 0 {
		first = first[:k]
	}
	switch strings.ToUpper(first) {
	case "SET", "RESET", "DISCARD", "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT",
		"SAVEPOINT", "RELEASE", "PREPARE", "DO", "CALL", "EXECUTE", "LOAD":
		return true
	}
	return false
}

// namesSettings reports whether query names set_config or pg_settings
// (any case) or holds a Unicode-escaped name (U&"…"). It runs on every
// statement.
func namesSettings(query string) bool {
	for i := 0; i < len(query); i++ {
		switch query[i] {
		case '_':
			// Most names hold an underscore: look at the byte after it
			// before comparing the rest (as EqualFold does: a non-ASCII
			// letter may fold to an ASCII one).
			if i+1 < len(query) && (query[i+1] >= 0x80 || query[i+1]|0x20 == 'c' || query[i+1]|0x20 == 's') &&
				(hasFoldPrefix(query[i:], "_config") || hasFoldPrefix(query[i:], "_settings")) {
				return true
			}
		case '&':
			if i > 0 && (query[i-1] == 'u' || query[i-1] == 'U') && i+1 < len(query) && query[i+1] == '"' {
				return true
			}
		}
	}
	return false
}

// firstWord returns query from its first word on: PostgreSQL's
// whitespace, comments (-- to the end of the line, /* */ nested) and
// opening parentheses skipped. ok is false for a comment that does not
// end.
func firstWord(query string) (rest string, ok bool) {
	q := query
	for len(q) > 0 {
		switch {
		case strings.IndexByte(" \t\n\r\f\v(", q[0]) >= 0:
			q = q[1:]
		case strings.HasPrefix(q, "--"):
			k := strings.IndexAny(q, "\n\r")
			if k < 0 {
				return "", true
			}
			q = q[k+1:]
		case strings.HasPrefix(q, "/*"):
			depth, k := 0, 0
			for k < len(q) && (k == 0 || depth > 0) {
				switch {
				case strings.HasPrefix(q[k:], "/*"):
					depth, k = depth+1, k+2
				case strings.HasPrefix(q[k:], "*/"):
					depth, k = depth-1, k+2
				default:
					k++
				}
			}
			if depth > 0 {
				return "", false
			}
			q = q[k:]
		default:
			return q, true
		}
	}
	return q, true
}

func hasFoldPrefix(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// savepoint defers a savepoint statement of a transaction to the round trip
// of the transaction's next statement, as the BEGIN is (bun opens a
// savepoint for every nested RunInTx, and tenant-scoped code nests often).
// handled is false for any other statement, and for a savepoint of the
// application's own (a name bun does not make): it goes to the server as
// written, so that every spelling PostgreSQL takes of its rollback or
// release finds it. bun's savepoints are renamed by
// their depth, so that the statements keep one text each and stay in pgx's
// statement cache (bun names each one at random). A savepoint released or
// rolled back to before anything was sent in it is never sent at all. A
// rollback to a savepoint that was sent goes at once, with what is deferred
// before it, and forgets what the session holds: it undoes a set_config
// sent after the savepoint.
func (c *conn) savepoint(ctx context.Context, query string, args []driver.NamedValue) (handled bool, err error) {
	t := c.tx
	if t == nil || len(args) > 0 {
		return false, nil
	}
	depthName := func(i int) string { return "socialcrm_sp" + strconv.Itoa(i+1) }
	if name, ok := strings.CutPrefix(query, "SAVEPOINT "); ok {
		if !BunSavepoint(name) {
			return false, nil
		}
		t.savepoints = append(t.savepoints, name)
		t.deferred = append(t.deferred, "SAVEPOINT "+depthName(len(t.savepoints)-1))
		return true, nil
	}
	if name, ok := strings.CutPrefix(query, "RELEASE SAVEPOINT "); ok {
		i := lastIndex(t.savepoints, name) // the most recent of a name, as the server's
		if i < 0 {
			return false, nil // not ours: the server answers
		}
		t.savepoints = t.savepoints[:i]
		if n := len(t.deferred); n > 0 && t.deferred[n-1] == "SAVEPOINT "+depthName(i) {
			t.deferred = t.deferred[:n-1] // nothing was sent in it
		} else {
			t.deferred = append(t.deferred, "RELEASE SAVEPOINT "+depthName(i))
		}
		return true, nil
	}
	name, ok := strings.CutPrefix(query, "ROLLBACK TO SAVEPOINT ")
	if !ok {
		return false, nil
	}
	i := lastIndex(t.savepoints, name) // the most recent of a name, as the server's
	if i < 0 {
		return false, nil
	}
	t.savepoints = t.savepoints[:i+1] // the savepoint outlives the rollback
	if j := slices.Index(t.deferred, "SAVEPOINT "+depthName(i)); j >= 0 {
		t.deferred = t.deferred[:j+1] // nothing was sent after it
		return true, nil
	}
	if c.pgx.IsClosed() {
		return true, driver.ErrBadConn
	}
	br, err := c.batch(ctx, &prelude{begin: t.begin, pre: t.deferred}, "ROLLBACK TO SAVEPOINT "+depthName(i), nil)
	if err == nil {
		_, err = br.Exec()
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}
	if t.dirty || err != nil {
		c.forget() // it undoes a set_config sent after the savepoint
	}
	return true, err
}

// BunSavepoint reports whether name is one bun makes for a nested
// transaction: SP_ and 28 lower-case hexadecimal digits.
func BunSavepoint(name string) bool {
	hex, ok := strings.CutPrefix(name, "SP_")
	if !ok || len(hex) != 28 {
		return false
	}
	for i := range len(hex) {
		if c := hex[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// maxParsed bounds the statement texts a connection remembers as parsed
// (pgx's statement cache holds 512 by default; one it has dropped is
// parsed again, in a round trip of its own).
const maxParsed = 512

// lastIndex returns the index of the last s equal to v, or -1.
func lastIndex(s []string, v string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == v {
			return i
		}
	}
	return -1
}

// setLockSession and setLockLocal set a setting (session-level and
// transaction-local) and take the advisory locks of WithAdvisoryLocks in
// one statement: the keys' locks in the array's order (unnest returns
// them in order, count makes each call run), before the statement that
// follows in the batch starts, so that under READ COMMITTED its snapshot
// sees what the lock holders committed.
const (
	setLockSession = "SELECT set_config($1, $2, false), (SELECT count(pg_advisory_xact_lock(k)) FROM unnest($3::bigint[]) AS k)"
	setLockLocal   = "SELECT set_config($1, $2, true), (SELECT count(pg_advisory_xact_lock(k)) FROM unnest($3::bigint[]) AS k)"
)

// batchStatements counts the statements batch has sent, for the
// package's tests (BatchStatements).
var batchStatements atomic.Int64

// batch sends the prelude and the statement in one round trip and returns
// the batch, positioned at the statement's results. The values it sets
// are unknown from here until the statement settles.
func (c *conn) batch(ctx context.Context, p *prelude, query string, vals []any) (pgx.BatchResults, error) {
	if _, ok := c.parsed[query]; c.tx != nil && p.begin == "" && len(p.pre) > 0 && !ok {
		// pgx parses a statement new to the connection in a round trip
		// before the batch runs. Should the server refuse it, the open
		// transaction would abort before the deferred savepoints were
		// taken, and no rollback to them could save it: take them first.
		if _, err := c.pgx.Exec(ctx, strings.Join(p.pre, "; ")); err != nil {
			if !pgconn.SafeToRetry(err) { // else nothing was sent: they stay deferred
				c.tx.deferred = nil
			}
			c.forget()
			return nil, err
		}
		c.tx.deferred, p.pre = nil, nil
	}
	var b pgx.Batch
	if p.begin != "" {
		b.Queue(p.begin)
	}
	for _, q := range p.pre {
		b.Queue(q)
	}
	set, setLock := "SELECT set_config($1, $2, false)", setLockSession
	if c.c.local {
		set, setLock = "SELECT set_config($1, $2, true)", setLockLocal
	}
	for i, s := range p.sets {
		if i == len(p.sets)-1 && len(p.locks) > 0 {
			// The advisory locks travel in the last set_config's
			// statement: one statement fewer to bind and run.
			b.Queue(setLock, s.name, s.value, p.locks)
			continue
		}
		b.Queue(set, s.name, s.value)
	}
	if len(p.locks) > 0 && len(p.sets) == 0 {
		// unnest returns the keys, and the locks are taken, in order.
		b.Queue("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k", p.locks)
	}
	b.Queue(query, vals...)
	batchStatements.Add(int64(len(b.QueuedQueries)))
	if t := c.tx; t != nil {
		t.begin = "" // sent: from here on, the transaction must be ended
		t.deferred = nil
		t.dirty = t.dirty || len(p.sets) > 0
	}
	c.mark(p.sets, false)
	br := c.pgx.SendBatch(ctx, &b)
	for range len(b.QueuedQueries) - 1 {
		if _, err := br.Exec(); err != nil {
			br.Close()
			if t := c.tx; t != nil && p.begin != "" && !c.pgx.IsClosed() && c.pgx.PgConn().TxStatus() == 'I' {
				// Nothing ran (the statement failed to prepare, or the
				// context ended before sending): the BEGIN is still to send,
				// or the transaction's next statements would each commit on
				// their own.
				t.begin, t.deferred = p.begin, p.pre
			}
			return nil, err
		}
	}
	if len(b.QueuedQueries) > 1 { // a statement ran: every one was parsed
		if c.parsed == nil || len(c.parsed) >= maxParsed {
			c.parsed = make(map[string]struct{})
		}
		c.parsed[query] = struct{}{}
	}
	return br, nil
}

// values returns the statement to send and its arguments: bun's literals
// turned into parameters where params can (the statement is then
// prepared once per connection, pgx's statement cache).
func values(query string, args []driver.NamedValue) (string, []any) {
	if len(args) == 0 {
		if q, ps, ok := params(query); ok {
			return q, ps
		}
		return query, nil
	}
	vals := make([]any, len(args))
	for i, a := range args {
		vals[i] = a.Value
	}
	return query, vals
}

// route returns the prelude of query in ctx, whether it must be sent in a
// batch, and whether this package sends it at all (see pgExec).
func (c *conn) route(ctx context.Context, query string) (p prelude, batch, handled bool, err error) {
	p, batch = c.prelude(ctx)
	if !batch && !p.scoped {
		if unsettling(query) {
			c.forget()
		}
		return p, false, false, nil
	}
	if c.pgx.IsClosed() {
		return p, batch, true, driver.ErrBadConn
	}
	return p, batch, true, nil
}

// pgExec runs a statement that needs what this package sends: a prelude
// (the deferred BEGIN, a setting the session does not hold, locks), or a
// setting in force, which the session holds already. handled is false
// for any other, which goes the adapter's way.
func (c *conn) pgExec(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, bool, error) {
	if handled, err := c.savepoint(ctx, query, args); handled {
		return driver.RowsAffected(0), true, err
	}
	p, ok, handled, err := c.route(ctx, query)
	if !handled || err != nil {
		return nil, handled, err
	}
	q, vals := values(query, args)
	var tag pgconn.CommandTag
	if ok {
		var br pgx.BatchResults
		if br, err = c.batch(ctx, &p, q, vals); err != nil {
			c.settle(&p, query, err)
			return nil, true, retryable(err)
		}
		tag, err = br.Exec()
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	} else {
		tag, err = c.pgx.Exec(ctx, q, vals...)
	}
	c.settle(&p, query, err)
	if err != nil {
		return nil, true, err
	}
	return driver.RowsAffected(tag.RowsAffected()), true, nil
}

// pgQuery is pgExec for a statement whose rows are read.
func (c *conn) pgQuery(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, bool, error) {
	p, ok, handled, err := c.route(ctx, query)
	if !handled || err != nil {
		return nil, handled, err
	}
	q, vals := values(query, args)
	r := &pgRows{c: c, p: p, query: query}
	if ok {
		if r.br, err = c.batch(ctx, &r.p, q, vals); err != nil {
			c.settle(&r.p, query, err)
			return nil, true, retryable(err)
		}
		if r.rows, err = r.br.Query(); err != nil {
			r.br.Close()
			c.settle(&r.p, query, err)
			return nil, true, err
		}
	} else if r.rows, err = c.pgx.Query(ctx, q, vals...); err != nil {
		c.settle(&r.p, query, err)
		return nil, true, retryable(err)
	}
	if read, ok := ctx.Value(readerKey{}).(func(Rows) error); ok {
		rows, err := r.readBy(q, read) // readrows.go
		return rows, true, err
	}
	// Read the first row now: database/sql asks for the columns before
	// Next, and an error of the statement shows here.
	r.more = r.rows.Next()
	if err := r.rows.Err(); err != nil {
		r.Close()
		return nil, true, err
	}
	r.first = true
	return r, true, nil
}

// plainArgs returns the statement and arguments to send through pgx's
// adapter: the statement parameterized and prepared (pgx's statement
// cache) when params can, else as it is, unprepared.
func plainArgs(query string, args []driver.NamedValue) (string, []driver.NamedValue) {
	if len(args) == 0 {
		if q, ps, ok := params(query); ok {
			nv := make([]driver.NamedValue, len(ps)+1)
			nv[0] = driver.NamedValue{Ordinal: 1, Value: pgx.QueryExecModeCacheStatement}
			for i, p := range ps {
				nv[i+1] = driver.NamedValue{Ordinal: i + 2, Value: p}
			}
			return q, nv
		}
	}
	nv := make([]driver.NamedValue, len(args)+1)
	nv[0] = driver.NamedValue{Ordinal: 1, Value: pgx.QueryExecModeExec}
	copy(nv[1:], args)
	return query, nv
}

// pgStmt is a prepared statement of a PostgreSQL connection: it runs as
// the connection's statements do, with what must precede it (its
// server-side twin is kept for its parameter count and closed with it).
type pgStmt struct {
	driver.Stmt
	c     *conn
	query string
}

func (s *pgStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.c.exec(ctx, s.query, args)
}

func (s *pgStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.c.query(ctx, s.query, args)
}

func (s *pgStmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), named(args))
}

func (s *pgStmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), named(args))
}

func named(args []driver.Value) []driver.NamedValue {
	nv := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return nv
}

// retryable turns an error that left the server untouched into
// driver.ErrBadConn, so that database/sql retries on another connection.
func retryable(err error) error {
	if pgconn.SafeToRetry(err) {
		return driver.ErrBadConn
	}
	return err
}

// pgRows are the rows of a statement sent in a batch, converted to the
// values pgx's database/sql adapter gives.
type pgRows struct {
	br      pgx.BatchResults // nil for a statement sent alone
	rows    pgx.Rows
	c       *conn
	p       prelude
	query   string
	more    bool
	first   bool
	settled bool
	conv    []func([]byte) (driver.Value, error)
	cols    []string
}

// convs are a connection's column conversions, kept per result shape (the
// columns' types and formats): a statement run again reuses them instead
// of planning each column's scan anew. A connection runs one statement at
// a time, so the conversions' scratch values are never shared.
type convs struct {
	m map[string][]func([]byte) (driver.Value, error)
}

// maxConvShapes bounds a connection's cached result shapes.
const maxConvShapes = 256

// get returns the conversions of fds, planning them on a miss.
func (cs *convs) get(m *pgtype.Map, fds []pgconn.FieldDescription) []func([]byte) (driver.Value, error) {
	var kb [256]byte
	key := kb[:0]
	for _, fd := range fds {
		key = binary.BigEndian.AppendUint32(key, fd.DataTypeOID)
		key = append(key, byte(fd.Format))
	}
	if conv, ok := cs.m[string(key)]; ok {
		return conv
	}
	conv := make([]func([]byte) (driver.Value, error), len(fds))
	for i, fd := range fds {
		conv[i] = converter(m, fd)
	}
	if cs.m == nil || len(cs.m) >= maxConvShapes {
		cs.m = make(map[string][]func([]byte) (driver.Value, error))
	}
	cs.m[string(key)] = conv
	return conv
}

func (r *pgRows) Columns() []string {
	if r.cols == nil {
		fds := r.rows.FieldDescriptions()
		r.cols = make([]string, len(fds))
		for i, fd := range fds {
			r.cols[i] = fd.Name
		}
	}
	return r.cols
}

func (r *pgRows) Close() error {
	r.rows.Close()
	err := r.rows.Err()
	if r.br != nil {
		if cerr := r.br.Close(); err == nil {
			err = cerr
		}
	}
	if !r.settled {
		r.settled = true
		r.c.settle(&r.p, r.query, err)
	}
	return err
}

func (r *pgRows) Next(dest []driver.Value) error {
	if r.first {
		r.first = false
	} else {
		r.more = r.rows.Next()
	}
	if !r.more {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	if r.conv == nil {
		r.conv = r.c.convs.get(r.c.pgx.TypeMap(), r.rows.FieldDescriptions())
	}
	for i, raw := range r.rows.RawValues() {
		if raw == nil {
			dest[i] = nil
			continue
		}
		v, err := r.conv[i](raw)
		if err != nil {
			return fmt.Errorf("sqldb: convert column %d: %w", i, err)
		}
		dest[i] = v
	}
	return nil
}

// adapterBinary are the types whose results pgx's database/sql adapter
// asks for in binary; it asks for every other type's in text, which it
// returns as the server wrote it.
var adapterBinary = []uint32{pgtype.BoolOID, pgtype.ByteaOID, pgtype.CIDOID, pgtype.DateOID, pgtype.Float4OID,
	pgtype.Float8OID, pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.OIDOID, pgtype.TimestampOID,
	pgtype.TimestamptzOID, pgtype.XIDOID}

// textFirst is a codec that asks for text results (and sends text
// parameters) where the codec it wraps would ask for binary.
type textFirst struct{ pgtype.Codec }

func (textFirst) PreferredFormat() int16 { return pgtype.TextFormatCode }

// preferText makes the statements this package sends itself on a
// connection (with a setting) ask for results in the formats the adapter
// asks for, so that their rows convert to the same values: text for every
// built-in type but adapterBinary.
func preferText(m *pgtype.Map) {
	var types []*pgtype.Type
	for oid := uint32(1); oid < 10000; oid++ {
		t, ok := m.TypeForOID(oid)
		if !ok || slices.Contains(adapterBinary, oid) || t.Codec.PreferredFormat() != pgtype.BinaryFormatCode {
			continue
		}
		types = append(types, &pgtype.Type{Name: t.Name, OID: t.OID, Codec: textFirst{t.Codec}})
	}
	m.RegisterTypes(types)
}

// converter returns the conversion of one column's raw values into what
// pgx's database/sql adapter returns for its type.
func converter(m *pgtype.Map, fd pgconn.FieldDescription) func([]byte) (driver.Value, error) {
	oid, f := fd.DataTypeOID, fd.Format
	if oid == pgtype.ByteaOID && f == pgtype.BinaryFormatCode {
		// A copy of the raw bytes: bun's scan of a row into a map keeps
		// the value it is handed, so the driver's read buffer, which the
		// next statement overwrites, must not be (TestRowsScanIntoMapsKeepBytes).
		return func(src []byte) (driver.Value, error) { return bytes.Clone(src), nil }
	}
	switch oid {
	case pgtype.BoolOID:
		return scanAs[bool](m, oid, f, func(v bool) driver.Value { return v })
	case pgtype.ByteaOID, pgtype.JSONOID, pgtype.JSONBOID, pgtype.XMLOID:
		return scanAs[[]byte](m, oid, f, func(v []byte) driver.Value { return v })
	case pgtype.Float4OID:
		return scanAs[float32](m, oid, f, func(v float32) driver.Value { return float64(v) })
	case pgtype.Float8OID:
		return scanAs[float64](m, oid, f, func(v float64) driver.Value { return v })
	case pgtype.Int2OID:
		return scanAs[int16](m, oid, f, func(v int16) driver.Value { return int64(v) })
	case pgtype.Int4OID:
		return scanAs[int32](m, oid, f, func(v int32) driver.Value { return int64(v) })
	case pgtype.Int8OID:
		return scanAs[int64](m, oid, f, func(v int64) driver.Value { return v })
	case pgtype.DateOID:
		return scanValuer[pgtype.Date](m, oid, f)
	case pgtype.TimestampOID:
		return scanValuer[pgtype.Timestamp](m, oid, f)
	case pgtype.TimestamptzOID:
		return scanValuer[pgtype.Timestamptz](m, oid, f)
	case pgtype.CIDOID, pgtype.OIDOID, pgtype.XIDOID:
		return scanValuer[pgtype.Uint32](m, oid, f)
	}
	if t, ok := m.TypeForOID(oid); ok && f == pgtype.BinaryFormatCode {
		if _, ok := t.Codec.(*pgtype.ArrayCodec); ok {
			return arrayText(m, oid)
		}
	}
	return scanAs[string](m, oid, f, func(v string) driver.Value { return v })
}

// arrayText converts an array in binary format to its text form
// ({a,b,…}), which pgx cannot scan into a string directly.
func arrayText(m *pgtype.Map, oid uint32) func([]byte) (driver.Value, error) {
	var d any
	plan := m.PlanScan(oid, pgtype.BinaryFormatCode, &d)
	return func(src []byte) (driver.Value, error) {
		if err := plan.Scan(src, &d); err != nil {
			return nil, err
		}
		b, err := m.Encode(oid, pgtype.TextFormatCode, d, nil)
		if err != nil {
			return nil, err
		}
		return string(b), nil
	}
}

func scanAs[T any](m *pgtype.Map, oid uint32, format int16, out func(T) driver.Value) func([]byte) (driver.Value, error) {
	var d T
	plan := m.PlanScan(oid, format, &d)
	return func(src []byte) (driver.Value, error) {
		if err := plan.Scan(src, &d); err != nil {
			return nil, err
		}
		return out(d), nil
	}
}

func scanValuer[T any, PT interface {
	*T
	driver.Valuer
}](m *pgtype.Map, oid uint32, format int16) func([]byte) (driver.Value, error) {
	var d T
	plan := m.PlanScan(oid, format, &d)
	return func(src []byte) (driver.Value, error) {
		if err := plan.Scan(src, &d); err != nil {
			return nil, err
		}
		return PT(&d).Value()
	}
}

// Package dbtest runs a test body on every database socialcrm supports: on
// SQLite always, and on PostgreSQL when SOCIALCRM_TEST_POSTGRES holds the DSN
// of a server where that user may create roles and databases (on a default
// local install: postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable).
//
// Each run gets a database of its own that is removed afterwards: a fresh
// SQLite file in t.TempDir, or on PostgreSQL a database copied from a
// template (socialcrm_clone_…) or, without setups or for setups that are
// closures, a fresh schema in the database socialcrm_tests. Setups that
// are named functions migrate once per test binary, into the template
// that each test copies (see SQLite and Postgres): migrating takes seconds
// under the race detector, copying does not. Copies are dropped in the
// background; the next test process drops what a finished one left
// (socialcrm_tmpl_…, socialcrm_clone_…). A test's PostgreSQL handles
// commit without waiting for the disk (synchronous_commit off; a
// benchmark's wait as production's do): see FlushLog for a test that
// reads the write-ahead log files. On PostgreSQL the tests run as an
// application would, with
// two roles: the setups (migrations) run as socialcrm_tests_owner, which owns
// the schema and its tables, and the test body gets a handle connected as
// socialcrm_tests_app, which owns nothing, is neither a superuser nor
// BYPASSRLS, and holds only the privileges migrations.Grant gives it — so
// row-level security binds it and it cannot switch it off.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/socialcrm/socialcrm/internal/dberr"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/internal/sqldb"
)

// EnvPostgres names the environment variable holding the PostgreSQL admin
// DSN.
const EnvPostgres = "SOCIALCRM_TEST_POSTGRES"

const (
	pgOwner    = "socialcrm_tests_owner"
	pgApp      = "socialcrm_tests_app"
	pgDatabase = "socialcrm_tests"
)

// DB is a test database. Its embedded handle is the application's: on
// PostgreSQL it is connected as the application role.
type DB struct {
	*bun.DB
	// Owner is a handle connected as the owner of the tables (the role
	// that migrates): on PostgreSQL a second connection pool as
	// socialcrm_tests_owner, on SQLite, which has no roles, the same
	// handle as DB.
	Owner *bun.DB
	// Name is "sqlite" or "postgres".
	Name string
	// Path is the SQLite file; empty on PostgreSQL.
	Path string

	dsn, ownerDSN string
	database      string // PostgreSQL: the test database
	schema        string // PostgreSQL: the test schema

	// tb is the test the database was made for: Admin's handle lives
	// until it ends. Nil for a Backup's copy.
	tb      testing.TB
	adminMu sync.Mutex
	admin   *bun.DB
	srv     *pgServer // PostgreSQL, a template's copy: the server it is on
}

// DSN returns the PostgreSQL connection string of the test schema (the
// application role, search_path set), for a child process that must reach
// the same database; empty on SQLite, whose file is Path.
func (d *DB) DSN() string { return d.dsn }

// OwnerDSN returns the PostgreSQL connection string of the test schema as
// its owner role, for a child process that migrates; empty on SQLite.
func (d *DB) OwnerDSN() string { return d.ownerDSN }

// AppRole is the PostgreSQL role the test body's handle connects as.
const AppRole = pgApp

// Reopen returns a second, independent handle on the same database, like
// another process would have. It is closed when t ends.
func (d *DB) Reopen(t testing.TB) *bun.DB {
	t.Helper()
	var db *bun.DB
	var err error
	if d.Name == "sqlite" {
		db, err = sqldb.SQLite(d.Path)
	} else {
		db, err = OpenPostgres(d.dsn)
	}
	if err != nil {
		t.Fatalf("dbtest: reopen: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// ReopenOwner is Reopen connected as the owner role (on SQLite, the same
// as Reopen).
func (d *DB) ReopenOwner(t testing.TB) *bun.DB {
	t.Helper()
	if d.Name == "sqlite" {
		return d.Reopen(t)
	}
	db, err := OpenPostgres(d.ownerDSN)
	if err != nil {
		t.Fatalf("dbtest: reopen: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Setup prepares a fresh database before the test body runs, e.g. by running
// migrations and installing query hooks.
type Setup func(ctx context.Context, db *bun.DB) error

// Each runs fn as the subtest "sqlite" and, when SOCIALCRM_TEST_POSTGRES is
// set, as the subtest "postgres", each on a fresh database prepared by
// setups.
func Each(t *testing.T, fn func(t *testing.T, db *DB), setups ...Setup) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t, setups...)) })
	if os.Getenv(EnvPostgres) != "" {
		t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t, setups...)) })
	}
}

// SQLite returns a fresh SQLite database in t.TempDir.
//
// When every setup is a named function (not a closure or a method value,
// whose captured state could differ from one call to the next), the
// setups run once per test binary on a template database, and each test
// gets a copy of its file, on which the setups run again: migrations then
// find nothing to do, hooks are installed on the test's handle. Migrating
// SQLite takes seconds under the race detector; copying a file does not.
func SQLite(t testing.TB, setups ...Setup) *DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "socialcrm.db")
	if b := sqliteTemplate(setups); b != nil {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatalf("dbtest: copy template: %v", err)
		}
	}
	db, err := sqldb.SQLite(path)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	d := &DB{DB: db, Owner: db, Name: "sqlite", Path: path, tb: t}
	setup(t, d.DB, "sqlite", setups)
	return d
}

// SQLiteFile writes to path the SQLite database setups have prepared,
// copied from the template SQLite makes once per test binary, for code
// that has no testing.TB, such as the helper of an Example. The caller
// opens the file and runs setups on its handle as usual: migrations then
// find nothing to do. When the setups cannot share a template (a closure
// or a method value) or failed on it, SQLiteFile writes nothing, and the
// caller's setups do the whole work on a new file.
func SQLiteFile(path string, setups ...Setup) error {
	b := sqliteTemplate(setups)
	if b == nil {
		return nil
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("dbtest: copy template: %w", err)
	}
	return nil
}

// Postgres returns a fresh schema on the server named by
// SOCIALCRM_TEST_POSTGRES, failing the test when the variable is unset or
// the server cannot be reached. setups run twice: as the owner role (they
// migrate), then, after every table of the schema is granted to the
// application role, on the application's handle (migrations find nothing
// to do; hooks such as the Guard are installed there).
//
// When there are setups and every one is a named function (see SQLite),
// they migrate a template database once per test binary, and each test
// gets a database of its own copied from it (CREATE DATABASE … TEMPLATE),
// on which the setups run as above, finding nothing to migrate. Otherwise
// the schema is created in the shared database socialcrm_tests.
func Postgres(t testing.TB, setups ...Setup) *DB {
	t.Helper()
	admin := os.Getenv(EnvPostgres)
	if admin == "" {
		t.Fatalf("dbtest: %s is not set", EnvPostgres)
	}
	srv, err := prepareServer(admin)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	if len(setups) > 0 {
		if key, ok := setupsKey(setups); ok {
			if tm := srv.template(key, setups); tm.err == nil {
				return clonePostgres(t, srv, tm, setups)
			}
		}
	}
	schema := "t_" + randomHex(8)
	ownerDSN := commitMode(t, withParam(srv.owner, "search_path", schema))
	owner, err := OpenPostgres(ownerDSN)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() {
		if _, err := owner.Exec("DROP SCHEMA ? CASCADE", bun.Ident(schema)); err != nil {
			t.Errorf("dbtest: drop schema %s: %v", schema, err)
		}
		owner.Close()
	})
	if _, err := owner.Exec("CREATE SCHEMA ?", bun.Ident(schema)); err != nil {
		t.Fatalf("dbtest: create schema: %v", err)
	}
	return openPostgres(t, owner, ownerDSN, commitMode(t, withParam(srv.app, "search_path", schema)), pgDatabase, schema, setups, false)
}

// clonePostgres returns a database of its own copied from tm, dropped
// when t ends.
func clonePostgres(t testing.TB, srv *pgServer, tm *pgTemplate, setups []Setup) *DB {
	t.Helper()
	name := "socialcrm_clone_" + srv.id + "_" + randomHex(6)
	ctx := context.Background()
	if _, err := srv.admin.ExecContext(ctx, "CREATE DATABASE ? TEMPLATE ? OWNER ?",
		bun.Ident(name), bun.Ident(tm.database), bun.Ident(pgOwner)); err != nil {
		t.Fatalf("dbtest: copy template: %v", err)
	}
	// Registered first, so it runs last: after every handle is closed.
	t.Cleanup(func() { srv.drop(name) })
	ownerDSN := commitMode(t, withParam(withDatabase(srv.owner, name), "search_path", tm.schema))
	owner, err := OpenPostgres(ownerDSN)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	t.Cleanup(func() { owner.Close() })
	d := openPostgres(t, owner, ownerDSN, commitMode(t, withParam(withDatabase(srv.app, name), "search_path", tm.schema)), name, tm.schema, setups, true)
	d.srv = srv
	return d
}

// AwaitDrops waits, for a minute at most, until the databases this
// process's earlier tests and benchmarks used are dropped: dbtest drops
// them in the background, and the server checkpoints for each drop,
// writing out every changed page at once. A benchmark calls it before it
// measures, so that no drop of the run before lands in its timing. On
// SQLite it returns at once.
func (d *DB) AwaitDrops() {
	if d.srv == nil {
		return
	}
	for deadline := time.Now().Add(time.Minute); d.srv.pending.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}

// openPostgres runs setups on owner, grants the application role its
// privileges and opens the application's handle on appDSN, where setups
// run again. A copy of a template has its privileges already (granted
// true): the template's were granted after its setups, CREATE DATABASE
// copies them with the tables, and the setups find nothing new to create
// on the copy. Granting again would cost two statements per table.
func openPostgres(t testing.TB, owner *bun.DB, ownerDSN, appDSN, database, schema string, setups []Setup, granted bool) *DB {
	t.Helper()
	owner.SetMaxOpenConns(2)
	db, err := OpenPostgres(appDSN)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	db.SetMaxOpenConns(8)
	t.Cleanup(func() { db.Close() })
	d := &DB{DB: db, Owner: owner, Name: "postgres", dsn: appDSN, ownerDSN: ownerDSN, database: database, schema: schema, tb: t}
	setup(t, owner, "postgres (owner)", setups)
	// Tests rarely need the owner after setup: keep no idle connections,
	// since parallel test binaries share the server's connection slots.
	owner.SetMaxIdleConns(0)
	if !granted {
		GrantApp(t, d)
	}
	setup(t, db, "postgres", setups)
	return d
}

// commitMode returns dsn with synchronous_commit off for a test, and dsn
// unchanged for a benchmark. A commit then returns once its record is in
// the server's memory instead of waiting for the write-ahead log to reach
// the disk: what it changed is visible to every other session at once, as
// before, and only a crash of the server itself could lose it, which no
// test provokes. On a loaded 2-core machine a one-row INSERT committed in
// 7.8-8.3 ms with the wait and 0.6-1.3 ms without it. Benchmarks keep the
// server's default: their ratios compare the SDK with raw statements as a
// production server runs them. A test that reads the write-ahead log
// files calls FlushLog first.
func commitMode(t testing.TB, dsn string) string {
	if _, bench := t.(*testing.B); bench {
		return dsn
	}
	return withParam(dsn, "synchronous_commit", "off")
}

// FlushLog writes every commit made so far on the server to its
// write-ahead log files on disk, which a commit of a test's handle does
// not wait for (synchronous_commit is off for tests): call it before
// reading those files. On SQLite it does nothing.
func (d *DB) FlushLog(t testing.TB) {
	t.Helper()
	if d.Name != "postgres" {
		return
	}
	admin := d.Admin(t)
	// A transaction that writes a record (here a logical message, which
	// changes no table) commits with synchronous_commit on, the admin
	// DSN's default, so its commit flushes the log up to its own record,
	// and with it every record written before.
	if _, err := admin.ExecContext(context.Background(),
		"BEGIN; SET LOCAL synchronous_commit = on; SELECT pg_logical_emit_message(true, 'dbtest', 'flush'); COMMIT"); err != nil {
		t.Fatalf("dbtest: flush the write-ahead log: %v", err)
	}
}

// drop drops database name in the background: dropping a database makes
// the server checkpoint, which takes seconds while other tests write, and
// no test needs to wait for it. What the process has not dropped when it
// exits, the next test process drops (sweep).
func (srv *pgServer) drop(name string) {
	srv.dropOnce.Do(func() {
		srv.drops = make(chan string, 1024)
		go func() {
			for name := range srv.drops {
				_, _ = srv.admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS ? WITH (FORCE)", bun.Ident(name))
				srv.pending.Add(-1)
			}
		}()
	})
	srv.pending.Add(1)
	select {
	case srv.drops <- name:
	default: // a full queue: left to the sweep
		srv.pending.Add(-1)
	}
}

// pgTemplate is a database the setups of one key have migrated, in
// schema, to copy for each test.
type pgTemplate struct {
	once             sync.Once
	database, schema string
	err              error
}

// template returns the template database of the setups named key,
// migrating it on first use.
func (srv *pgServer) template(key string, setups []Setup) *pgTemplate {
	srv.mu.Lock()
	tm := srv.templates[key]
	if tm == nil {
		tm = &pgTemplate{}
		srv.templates[key] = tm
	}
	srv.mu.Unlock()
	tm.once.Do(func() {
		tm.database = "socialcrm_tmpl_" + srv.id + "_" + randomHex(6)
		tm.schema = "t_" + randomHex(8)
		tm.err = srv.migrateTemplate(tm, setups)
	})
	return tm
}

func (srv *pgServer) migrateTemplate(tm *pgTemplate, setups []Setup) error {
	ctx := context.Background()
	if _, err := srv.admin.ExecContext(ctx, "CREATE DATABASE ? OWNER ?", bun.Ident(tm.database), bun.Ident(pgOwner)); err != nil {
		return fmt.Errorf("create template: %w", err)
	}
	// Migrating commits many times: no test or benchmark measures it, so
	// it does not wait for the disk either (see commitMode).
	owner, err := OpenPostgres(withParam(withParam(withDatabase(srv.owner, tm.database), "search_path", tm.schema), "synchronous_commit", "off"))
	if err != nil {
		return err
	}
	// Every connection must be gone before the database can be copied.
	defer owner.Close()
	owner.SetMaxOpenConns(2)
	if _, err := owner.ExecContext(ctx, "CREATE SCHEMA ?", bun.Ident(tm.schema)); err != nil {
		return fmt.Errorf("create template schema: %w", err)
	}
	for _, s := range setups {
		if err := s(ctx, owner); err != nil {
			return err
		}
	}
	plain := bun.NewDB(owner.DB, pgdialect.New())
	tables, err := migrations.Tables(ctx, plain, "")
	if err == nil {
		err = migrations.Grant(ctx, plain, pgApp, tables)
	}
	return err
}

// GrantApp grants the application role what migrations.Grant gives it on
// every table of d's schema; call it after creating tables through Owner
// in a test body. On SQLite it does nothing.
func GrantApp(t testing.TB, d *DB) {
	t.Helper()
	if d.Name != "postgres" {
		return
	}
	// A bun handle without hooks over Owner's pool: a setup may have
	// installed the Guard on Owner, and GRANT names tenant-owned tables
	// without a tenant.
	owner := bun.NewDB(d.Owner.DB, pgdialect.New())
	ctx := context.Background()
	tables, err := migrations.Tables(ctx, owner, "")
	if err == nil {
		err = migrations.Grant(ctx, owner, pgApp, tables)
	}
	if err != nil {
		t.Fatalf("dbtest: grant: %v", err)
	}
}

func setup(t testing.TB, db *bun.DB, name string, setups []Setup) {
	t.Helper()
	for _, s := range setups {
		if err := s(context.Background(), db); err != nil {
			t.Fatalf("dbtest: setup on %s: %v", name, err)
		}
	}
}

// templates holds, per list of setups (by their functions' names), the
// file of a SQLite database they have prepared.
var templates struct {
	sync.Mutex
	files map[string]*template
}

type template struct {
	once sync.Once
	file []byte // nil when the setups failed: each test then runs them itself
}

// sqliteTemplate returns the bytes of a SQLite database prepared by
// setups, nil when they cannot be shared (a closure or a method value) or
// failed.
func sqliteTemplate(setups []Setup) []byte {
	key, ok := setupsKey(setups)
	if !ok {
		return nil
	}
	templates.Lock()
	if templates.files == nil {
		templates.files = map[string]*template{}
	}
	tm := templates.files[key]
	if tm == nil {
		tm = &template{}
		templates.files[key] = tm
	}
	templates.Unlock()
	tm.once.Do(func() { tm.file = prepareTemplate(setups) })
	return tm.file
}

// setupsKey names setups by their functions, when every one is a named
// function.
func setupsKey(setups []Setup) (string, bool) {
	var names []string
	for _, s := range setups {
		f := runtime.FuncForPC(reflect.ValueOf(s).Pointer())
		if f == nil {
			return "", false
		}
		name := f.Name()
		// Closures are named pkg.outer.funcN (pkg.glob..funcN at the top
		// level), method values pkg.T.M-fm.
		if strings.Contains(name, ".func") || strings.HasSuffix(name, "-fm") {
			return "", false
		}
		names = append(names, name)
	}
	return strings.Join(names, "\n"), true
}

func prepareTemplate(setups []Setup) []byte {
	dir, err := os.MkdirTemp("", "socialcrm-dbtest-")
	if err != nil {
		return nil
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "template.db")
	db, err := sqldb.SQLite(path)
	if err != nil {
		return nil
	}
	for _, s := range setups {
		if err := s(context.Background(), db); err != nil {
			db.Close()
			return nil
		}
	}
	if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		db.Close()
		return nil
	}
	if err := db.Close(); err != nil {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return b
}

// pgServer is what prepareServer made ready on one server: the roles,
// the shared test database, and this process's templates.
type pgServer struct {
	owner, app string  // DSNs of socialcrm_tests as the owner and application roles
	admin      *bun.DB // the admin DSN: creates and drops databases
	// id names this process's databases; a connection of the process,
	// named after it, stays open while it runs, so that another process
	// can tell its databases from those a dead process left behind.
	id        string
	mu        sync.Mutex
	templates map[string]*pgTemplate
	dropOnce  sync.Once
	drops     chan string  // databases to drop
	pending   atomic.Int64 // drops queued and not yet done (AwaitDrops)
}

var servers struct {
	sync.Mutex
	byDSN map[string]*pgServer // by admin DSN
}

// aliveName is the application_name of process id's connection.
const aliveName = "socialcrm_dbtest_"

// prepareServer makes sure the roles and the database for tests exist,
// drops the databases of test processes that are gone, and returns the
// server's DSNs and handles.
func prepareServer(adminDSN string) (*pgServer, error) {
	servers.Lock()
	defer servers.Unlock()
	if srv, ok := servers.byDSN[adminDSN]; ok {
		return srv, nil
	}
	srv := &pgServer{id: randomHex(4), templates: map[string]*pgTemplate{}}
	admin, err := OpenPostgres(withParam(adminDSN, "application_name", aliveName+srv.id))
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	// The connection that says this process is alive: held, never closed.
	if _, err := admin.Conn(ctx); err != nil {
		admin.Close()
		return nil, err
	}
	admin.SetMaxIdleConns(1)
	srv.admin = admin
	// Several test binaries may get here at once: tolerate losing the race.
	for _, role := range []string{pgOwner, pgApp} {
		if _, err := admin.ExecContext(ctx, `DO $$ BEGIN
			CREATE ROLE `+role+` LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`); err != nil {
			return nil, fmt.Errorf("create role %s: %w", role, err)
		}
	}
	var exists bool
	if err := admin.NewRaw("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = ?)", pgDatabase).Scan(ctx, &exists); err != nil {
		return nil, fmt.Errorf("look up database: %w", err)
	}
	if !exists {
		_, err := admin.ExecContext(ctx, "CREATE DATABASE "+pgDatabase+" OWNER "+pgOwner)
		if c := dberr.Code(err); err != nil && c != "42P04" && c != "23505" {
			return nil, fmt.Errorf("create database %s: %w", pgDatabase, err)
		}
	}
	sweep(ctx, admin)
	u, err := url.Parse(adminDSN)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", EnvPostgres, err)
	}
	u.Path = "/" + pgDatabase
	u.User = url.User(pgOwner)
	srv.owner = u.String()
	u.User = url.User(pgApp)
	srv.app = u.String()
	if servers.byDSN == nil {
		servers.byDSN = map[string]*pgServer{}
	}
	servers.byDSN[adminDSN] = srv
	return srv, nil
}

// sweep drops the template and test databases of processes that are gone
// (killed before their cleanups ran). Best effort: another process may be
// dropping the same ones.
func sweep(ctx context.Context, admin *bun.DB) {
	var stale []string
	err := admin.NewRaw(`SELECT datname FROM pg_database
		WHERE (datname LIKE 'socialcrm\_tmpl\_%' OR datname LIKE 'socialcrm\_clone\_%')
		AND ? || split_part(datname, '_', 3) NOT IN (SELECT application_name FROM pg_stat_activity)`, aliveName).
		Scan(ctx, &stale)
	if err != nil {
		return
	}
	for _, name := range stale {
		_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS ? WITH (FORCE)", bun.Ident(name))
	}
}

// withDatabase returns dsn naming database instead of its own.
func withDatabase(dsn, database string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	u.Path = "/" + database
	return u.String()
}

func withParam(dsn, key, value string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// OpenPostgres connects to dsn like sqldb.Postgres, except that every new
// connection of the pool waits (up to a minute, with backoff) while the
// server answers that its connection slots are taken (SQLSTATE 53300):
// test binaries run in parallel, each with databases of its own, and a
// burst of them can briefly hold every slot of a default server (100
// connections). Other errors return at once.
func OpenPostgres(dsn string) (*bun.DB, error) {
	// sqldb's connector: the Guard refuses at the driver, settings fold,
	// as on sqldb's handles.
	c, err := sqldb.PostgresConnector(dsn)
	if err != nil {
		return nil, err
	}
	db := bun.NewDB(sql.OpenDB(patientConnector{c}), pgdialect.New())
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("dbtest: connect postgres: %w", err)
	}
	return db, nil
}

// patientConnector retries a connection refused for lack of slots.
type patientConnector struct{ driver.Connector }

func (c patientConnector) Connect(ctx context.Context) (driver.Conn, error) {
	wait := 50 * time.Millisecond
	deadline := time.Now().Add(time.Minute)
	for {
		conn, err := c.Connector.Connect(ctx)
		if err == nil || dberr.Code(err) != "53300" || time.Now().After(deadline) {
			return conn, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// Admin returns a handle that sees every row of the test database: on
// PostgreSQL a superuser connection (the admin DSN) to the test schema, to
// which row-level security does not apply; on SQLite a handle of its own
// on the file, without the query hooks installed on the test's handle.
// Use it to inspect what is stored, never to exercise the code under test.
//
// Every call returns the same handle, opened on the first and closed when
// the test the database was made for ends: a new SQLite handle parses the
// whole schema on its first statement, and a test of crm that inspects the
// file 600 times spent 11 s of CPU on new handles under the race detector.
func (d *DB) Admin(t testing.TB) *bun.DB {
	t.Helper()
	if d.tb == nil { // a Backup's copy
		return d.openAdmin(t, d.schema)
	}
	d.adminMu.Lock()
	defer d.adminMu.Unlock()
	if d.admin == nil {
		// Opened for, and closed with, the database's test: t may be
		// a subtest that ends first.
		db, err := d.adminHandle(d.schema)
		if err != nil {
			t.Fatalf("dbtest: admin: %v", err)
		}
		d.tb.Cleanup(func() { db.Close() })
		d.admin = db
	}
	return d.admin
}

// openAdmin opens an admin handle on schema (see Admin) that is closed
// when t ends.
func (d *DB) openAdmin(t testing.TB, schema string) *bun.DB {
	t.Helper()
	db, err := d.adminHandle(schema)
	if err != nil {
		t.Fatalf("dbtest: admin: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// adminHandle opens an admin handle: on PostgreSQL on schema.
func (d *DB) adminHandle(schema string) (*bun.DB, error) {
	if d.Name == "sqlite" {
		return sqldb.SQLite(d.Path)
	}
	u, err := url.Parse(os.Getenv(EnvPostgres))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", EnvPostgres, err)
	}
	u.Path = "/" + d.database
	return OpenPostgres(withParam(u.String(), "search_path", schema))
}

// Backup returns a copy of the database as a backup taken now would hold
// it: on SQLite a byte copy of the file made after a checkpoint (so the WAL
// is in it), opened as its own database, with its Path; on PostgreSQL
// every table of the test schema copied, rows and all, into a new schema
// (what restoring a dump gives), reached through an admin handle (Admin).
// The copy is removed when t ends.
func (d *DB) Backup(t testing.TB) *DB {
	t.Helper()
	ctx := context.Background()
	if d.Name == "sqlite" {
		if _, err := d.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			t.Fatalf("dbtest: checkpoint: %v", err)
		}
		b, err := os.ReadFile(d.Path)
		if err != nil {
			t.Fatalf("dbtest: backup: %v", err)
		}
		path := filepath.Join(t.TempDir(), "backup.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatalf("dbtest: backup: %v", err)
		}
		db, err := sqldb.SQLite(path)
		if err != nil {
			t.Fatalf("dbtest: backup: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		return &DB{DB: db, Name: "sqlite", Path: path}
	}
	admin := d.Admin(t)
	schema := "b_" + randomHex(8)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA ?", bun.Ident(schema)); err != nil {
		t.Fatalf("dbtest: backup: %v", err)
	}
	var tables []string
	if err := admin.NewRaw("SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE'", d.schema).
		Scan(ctx, &tables); err != nil {
		t.Fatalf("dbtest: backup: %v", err)
	}
	for _, tbl := range tables {
		if _, err := admin.ExecContext(ctx, "CREATE TABLE ?.? AS SELECT * FROM ?.?",
			bun.Ident(schema), bun.Ident(tbl), bun.Ident(d.schema), bun.Ident(tbl)); err != nil {
			t.Fatalf("dbtest: backup %s: %v", tbl, err)
		}
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA ? CASCADE", bun.Ident(schema)); err != nil {
			t.Errorf("dbtest: drop schema %s: %v", schema, err)
		}
	})
	db := d.openAdmin(t, schema)
	return &DB{DB: db, Name: "postgres", database: d.database, schema: schema}
}

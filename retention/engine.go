package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/tenancy"
)

// Engine sweeps, erases, exports and purges the categories registered with
// it, under one Policy. Create it with New; an Engine is safe for
// concurrent use. Its operations are plain synchronous functions that any
// scheduler can call; it starts no goroutines.
type Engine struct {
	db         bun.IDB
	now        func() time.Time
	batch      int
	log        *slog.Logger
	store      *tenancy.Store
	audit      *tenancy.AuditLog
	policy     Policy
	requestDue time.Duration
	purgeHooks []func(ctx context.Context) error
	tempDir    string             // where Export spools; "" is os.TempDir
	trace      func(point string) // kill points for the crash test; nil outside tests

	purgeStarts []func(ctx context.Context) error // WithTenantPurgeStartHook (purge.go)
	sweepStarts []func(ctx context.Context) error // WithSweepStartHook (sweep.go)

	resolveDepth int // bounds of a resolution (WithResolutionLimits)
	resolveKeys  int
	protection   *IdentifierProtection // nil: requests keep identifiers in clear

	purging sync.Map // tenant ids whose purge runs in this process
	erasing sync.Map // request id → chan closed when this process's run of its erasure ends

	mu        sync.RWMutex
	cats      []Category
	resolvers map[string][]Resolver
}

// Option configures an Engine.
type Option func(*Engine) error

// WithClock sets the clock for receipts, requests and deadlines (default
// time.Now).
func WithClock(now func() time.Time) Option {
	return func(e *Engine) error {
		if now == nil {
			return errors.New("retention: WithClock: nil clock")
		}
		e.now = now
		return nil
	}
}

// WithBatchSize bounds the rows erased per transaction (default 1000).
func WithBatchSize(n int) Option {
	return func(e *Engine) error {
		if n < 1 || n > maxBatchSize {
			return fmt.Errorf("retention: WithBatchSize: %d not in [1, %d]", n, maxBatchSize)
		}
		e.batch = n
		return nil
	}
}

// WithLogger sets the logger (default: discard). The engine logs counts
// and category names, never row contents or subject identifiers.
func WithLogger(l *slog.Logger) Option {
	return func(e *Engine) error {
		e.log = l
		return nil
	}
}

// WithStore sets the tenancy store (default: one built over the engine's
// db with the engine's clock). Its audit log receives the receipts.
func WithStore(s *tenancy.Store) Option {
	return func(e *Engine) error {
		if s == nil {
			return errors.New("retention: WithStore: nil store")
		}
		e.store = s
		return nil
	}
}

// WithPolicy sets the policy (default: no rules, nothing is swept).
func WithPolicy(p Policy) Option {
	return func(e *Engine) error {
		if p.Name == "" {
			p.Name = policyNameUnspecified
		}
		e.policy = p
		return nil
	}
}

// WithRequestDeadline sets how long after receipt a data-subject request is
// due (default 30 days).
func WithRequestDeadline(d time.Duration) Option {
	return func(e *Engine) error {
		if d <= 0 {
			return fmt.Errorf("retention: WithRequestDeadline: %s is not positive", d)
		}
		e.requestDue = d
		return nil
	}
}

// WithTenantPurgeHook adds a hook that PurgeTenants calls for each purged
// tenant after its data is erased and before the tenant is marked purged,
// with a context acting on that tenant as the system (the root package
// passes vault.DestroyKey: crypto-shredding). Hooks must be idempotent: a
// purge interrupted after them runs them again.
func WithTenantPurgeHook(hook func(ctx context.Context) error) Option {
	return func(e *Engine) error {
		if hook == nil {
			return errors.New("retention: WithTenantPurgeHook: nil hook")
		}
		e.purgeHooks = append(e.purgeHooks, hook)
		return nil
	}
}

// WithTempDir sets the directory where Export spools the CSV file of the
// category it is writing, compressed and sealed with a key of that export
// held in memory only, until the zip format lets it follow the JSON file
// (default os.TempDir()). The file is private to the process
// (mode 0600), is unlinked as soon as it is created where the system
// allows it (so a crash leaves nothing behind) and is removed before
// Export returns in any case. dir must be an existing directory.
func WithTempDir(dir string) Option {
	return func(e *Engine) error {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("retention: WithTempDir: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("retention: WithTempDir: %s is not a directory", dir)
		}
		e.tempDir = dir
		return nil
	}
}

// New returns an Engine over db (a *bun.DB; the engine runs its own short
// transactions).
func New(db bun.IDB, opts ...Option) (*Engine, error) {
	if db == nil {
		return nil, errors.New("retention: nil db")
	}
	e := &Engine{db: db, now: time.Now, batch: defaultBatchSize, requestDue: defaultRequestDue,
		policy: Policy{Name: policyNameUnspecified}, resolveDepth: defaultResolveDepth, resolveKeys: defaultResolveKeys}
	for _, opt := range opts {
		if opt == nil {
			continue // a nil Option means the default
		}
		if err := opt(e); err != nil {
			return nil, err
		}
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.store == nil {
		s, err := tenancy.NewStore(db, tenancy.WithClock(e.now))
		if err != nil {
			return nil, err
		}
		e.store = s
	}
	e.audit = e.store.Audit()
	return e, nil
}

// Policy returns the engine's policy.
func (e *Engine) Policy() Policy { return e.policy }

// Register adds categories. It fails, registering none of them, with a
// *CategoryError for a bad declaration or a duplicate name. Check, Sweep and
// the other operations validate the policy against what is registered.
func (e *Engine) Register(cats ...Category) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	names := map[string]bool{}
	for _, c := range e.cats {
		names[c.Name] = true
	}
	cats = slices.Clone(cats)
	for i, c := range cats {
		c = e.bindOwn(c) // the events' sealed identifier (events.go)
		cats[i] = c
		if err := c.validate(); err != nil {
			return err
		}
		if names[c.Name] {
			return &CategoryError{Category: c.Name, Field: "Name", Reason: "already registered"}
		}
		names[c.Name] = true
	}
	if err := heldWithRegistered(append(slices.Clone(e.cats), cats...)); err != nil {
		return err
	}
	e.cats = append(e.cats, cats...)
	return nil
}

// Categories returns the registered categories in registration order. The
// caller owns the slice.
func (e *Engine) Categories() []Category {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return slices.Clone(e.cats)
}

func (e *Engine) category(name string) (Category, bool) {
	for _, c := range e.Categories() {
		if c.Name == name {
			return c, true
		}
	}
	return Category{}, false
}

func (e *Engine) catMap() map[string]Category {
	m := map[string]Category{}
	for _, c := range e.Categories() {
		m[c.Name] = c
	}
	return m
}

func (e *Engine) clock() time.Time { return e.now().UTC().Truncate(time.Microsecond) }

func (e *Engine) point(name string) {
	if e.trace != nil {
		e.trace(name)
	}
}

// Check validates the policy against the registered categories and every
// category against the database schema: the table and each named column
// must exist. It returns all problems joined.
func (e *Engine) Check(ctx context.Context) error {
	cats := e.catMap()
	var errs []error
	if err := e.policy.validate(cats, true); err != nil {
		errs = append(errs, err)
	}
	schema, err := e.schema(ctx)
	if err != nil {
		return err
	}
	for _, c := range e.Categories() {
		have := schema[c.Table]
		if len(have) == 0 {
			errs = append(errs, &CategoryError{Category: c.Name, Field: "Table", Reason: "no table " + c.Table})
			continue
		}
		for _, col := range c.columns() {
			if !slices.Contains(have, col) {
				errs = append(errs, &CategoryError{Category: c.Name, Field: "column", Reason: "no column " + col + " in " + c.Table})
			}
		}
	}
	return errors.Join(errs...)
}

// schema returns the columns of every table of the database (the current
// schema on PostgreSQL). The query names no table, so the Guard lets it
// through without a tenant.
func (e *Engine) schema(ctx context.Context) (map[string][]string, error) {
	var q string
	if e.db.Dialect().Name() == dialect.PG {
		q = `SELECT c.table_name, c.column_name FROM information_schema.columns c
			JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
			WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
			ORDER BY c.table_name, c.ordinal_position`
	} else {
		q = `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
			WHERE m.type = 'table' ORDER BY m.name, p.cid`
	}
	rows, err := e.db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("retention: read schema: %w", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			return nil, fmt.Errorf("retention: read schema: %w", err)
		}
		out[t] = append(out[t], c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("retention: read schema: %w", err)
	}
	return out, nil
}

func (e *Engine) columnsOf(ctx context.Context, table string) ([]string, error) {
	s, err := e.schema(ctx)
	if err != nil {
		return nil, err
	}
	return s[table], nil
}

// Uncovered lists the tables of the database that have a tenant_id column
// but no registered category, sorted: personal data the engine would never
// erase. A test of the application should require it to be empty.
func (e *Engine) Uncovered(ctx context.Context) ([]string, error) {
	s, err := e.schema(ctx)
	if err != nil {
		return nil, err
	}
	covered := map[string]bool{}
	for _, c := range e.Categories() {
		covered[c.Table] = true
	}
	var out []string
	for t, cols := range s {
		if !covered[t] && slices.Contains(cols, "tenant_id") {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out, nil
}

// RecordEvent records that the named event happened now to the subject
// identified by (kind, value) in the context's tenant, for rules whose
// trigger is that event: for example
//
//	engine.RecordEvent(ctx, retention.EventDeauthorized, "connection_id", conn.ID)
//
// Under WithIdentifierProtection the identifier is stored only sealed
// (bound to the event) beside the tenant's keyed hash of it, never in
// clear. The event is the subject's data: a request whose identifiers
// resolve to (kind, value) finds it by that hash — an access export
// shows it with its identifier opened, an erasure erases it, a subject
// hold holds it.
func (e *Engine) RecordEvent(ctx context.Context, name, kind, value string) error {
	if name == "" || kind == "" || strings.TrimSpace(value) == "" {
		return &ValidationError{Field: "event", Reason: "name, kind and value are required"}
	}
	ev, err := e.protectEvent(ctx, event{ID: tenancy.NewID(), Name: name, SubjectKind: kind, SubjectValue: strings.TrimSpace(value), At: e.clock()})
	if err != nil {
		return err
	}
	return tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(&ev).Exec(ctx); err != nil {
			return fmt.Errorf("retention: record event: %w", err)
		}
		return nil
	})
}

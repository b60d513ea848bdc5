package crm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"strings"
	"time"

	"github.com/go-playground/validator/v10"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// Store holds a tenant's CRM records. Each record kind has a repository
// reached from it (Contacts, Conversations, …); every repository method
// takes the context first, acts on the context's tenant only, and runs in a
// transaction of its own (tenancy.RunInTx) — or in a savepoint of the
// caller's transaction when the Store was bound to it with Using.
//
// Create a Store with New. It is safe for concurrent use; it owns its
// validator, clock and logger and keeps no other state.
type Store struct {
	db       bun.IDB
	vault    *vault.Vault
	validate *validator.Validate
	now      func() time.Time
	log      *slog.Logger
	// phoneRegion reads national phone numbers (WithDefaultRegion, phone.go).
	phoneRegion string
	phones      *e164Prefixes        // numbers the parser would return as given (phone.go)
	commerce                         // the commerce records' settings (commerce.go)
	opened      *openedConversations // conversations Ingest knows exist (conversations_batch.go)
}

// Option configures a Store. Options validate their argument: New fails with
// an error matching ErrConfig for a bad one.
type Option func(*Store) error

// WithClock sets the clock (default time.Now) that stamps created and
// updated times, stage changes and consent records, and decides which
// birthdays are due.
func WithClock(now func() time.Time) Option {
	return func(s *Store) error {
		if now == nil {
			return fmt.Errorf("%w: WithClock: nil clock", ErrConfig)
		}
		s.now = now
		return nil
	}
}

// WithLogger sets the logger (nil, the default: discard). It never
// receives the plaintext of sealed fields.
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) error {
		s.log = l
		return nil
	}
}

// New returns a Store over db, on which Migrations (with those of tenancy,
// vault and retention) have run, sealing contact identifiers with v.
func New(db *bun.DB, v *vault.Vault, opts ...Option) (*Store, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: New: nil db", ErrConfig)
	}
	if v == nil {
		return nil, fmt.Errorf("%w: New: nil vault", ErrConfig)
	}
	s := &Store{db: db, vault: v, now: time.Now, validate: newValidator(), phones: newE164Prefixes(),
		opened: &openedConversations{}}
	for _, o := range opts {
		if o == nil {
			continue // a nil Option means the default
		}
		if err := o(s); err != nil {
			return nil, err
		}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Using returns a Store that works on idb — typically the caller's own
// bun.Tx from tenancy.RunInTx — so that several repository calls commit or
// roll back together with the caller's work. Each call then runs in a
// savepoint of that transaction. The returned Store shares s's validator,
// clock, logger and vault.
//
//	err := tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
//		c, err := store.Using(tx).Contacts().Create(ctx, in)
//		…
//	})
func (s *Store) Using(idb bun.IDB) *Store {
	c := *s
	c.db = idb
	return &c
}

// clock returns the current time as stored: UTC, microsecond precision
// (what both databases keep), so that a value read back equals the value
// written.
func (s *Store) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// tx runs fn in a transaction scoped to the context's tenant, for the
// kinds not shared with the client portal: run with staffOnly. Like every
// transaction of run, it appends the audit entries fn records last
// (auditLast).
func (s *Store) tx(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	return s.run(ctx, staffOnly(""), func(ctx context.Context, tx bun.Tx, _ access) error { return fn(ctx, tx) })
}

// one runs fn, which issues a single statement (or statements that need
// not commit together), scoped to the context's tenant without a
// transaction of its own where none is needed (tenancy.RunScoped): on
// PostgreSQL through socialcrm.OpenDB the statement carries the tenant
// that row-level security compares with in its own round trip; on SQLite,
// which has no row-level security, the statement runs alone — an implicit
// transaction, without the statement journal and the BEGIN and COMMIT
// round trips of an explicit one. The Owned hooks and the Guard apply
// either way.
func (s *Store) one(ctx context.Context, fn func(ctx context.Context, db bun.IDB) error) error {
	if _, err := s.access(ctx, nil, staffOnly("")); err != nil { // the role check (portal.go)
		return err
	}
	return tenancy.RunScoped(ctx, s.db, fn)
}

// check validates v (a struct or pointer to one) with the Store's validator
// and the rules of values every column can hold (validate_values.go),
// returning a *ValidationError naming each failed field by its JSON name.
// kind names the record kind in the message ("contact").
func (s *Store) check(kind string, v any) error {
	err := s.validate.Struct(v)
	bad := unstorable(v) // validate_values.go: what no column can hold
	if err == nil {
		if bad == nil {
			return nil
		}
		return &ValidationError{Kind: kind, Fields: bad}
	}
	var ves validator.ValidationErrors
	if !errors.As(err, &ves) {
		return fmt.Errorf("crm: validate %s: %w", kind, err)
	}
	verr := validationErrorFrom(kind, ves)
	verr.Fields = append(verr.Fields, bad...)
	return verr
}

// newValidator returns the validator a Store owns: fields are named by their
// JSON names (what an API client sent), and the rules the package declares
// are registered on it.
func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			return ""
		case "":
			return f.Name
		}
		return name
	})
	return v
}

// record is implemented by every model embedding Record.
type record interface{ base() *Record }

// Record is embedded in every CRM model: the tenant (through
// tenancy.Owned, which scopes every query to the context's tenant), the id,
// the created and updated times, and Version, the optimistic-concurrency
// counter. Version is 1 after creation and grows by one with every update;
// an update that names a stale version fails with a *ConflictError.
type Record struct {
	tenancy.Owned
	// ID is a time-ordered UUID given on creation.
	ID        string    `bun:"id,pk" json:"id"`
	CreatedAt time.Time `bun:"created_at,notnull" json:"created_at"`
	UpdatedAt time.Time `bun:"updated_at,notnull" json:"updated_at"`
	Version   int64     `bun:"version,notnull" json:"version"`
}

func (r *Record) base() *Record { return r }

// stamp prepares a new record for insertion.
func (r *Record) stamp(now time.Time) {
	if r.ID == "" {
		r.ID = tenancy.NewID()
	}
	r.CreatedAt, r.UpdatedAt, r.Version = now, now, 1
}

// insert stamps and inserts a new record (an ID already set is kept).
func insert[T any, PT interface {
	*T
	record
}](ctx context.Context, db bun.IDB, now time.Time, rec PT) error {
	rec.base().stamp(now)
	if _, err := db.NewInsert().Model(rec).Exec(ctx); err != nil {
		return err
	}
	return nil
}

// get reads the record id of the context's tenant, ErrNotFound (wrapped,
// naming kind and id) when there is none.
func get[T any, PT interface {
	*T
	record
}](ctx context.Context, db bun.IDB, kind, id string) (T, error) {
	var rec T
	if err := checkText(kind, "id", id); err != nil { // validate_values.go
		return rec, err
	}
	PT(&rec).base().ID = id
	if err := db.NewSelect().Model(PT(&rec)).WherePK().Scan(ctx); err != nil {
		var zero T
		if errors.Is(err, sql.ErrNoRows) {
			return zero, notFound(kind, id)
		}
		return zero, fmt.Errorf("crm: get %s: %w", kind, err)
	}
	return rec, nil
}

// update writes rec over the stored record if the stored version is still
// rec.Version, then advances rec.Version and UpdatedAt. A stale version
// fails with a *ConflictError, a missing record with ErrNotFound, a
// Version below 1 (none named) with a *ValidationError; either way nothing
// is written. columns, if given, limits the columns written
// (version and updated_at are always written). It records the audit
// entry "crm.<kind>.updated" (appended when the transaction's work is
// done: auditLast).
func update[T any, PT interface {
	*T
	record
}](ctx context.Context, s *Store, db bun.IDB, now time.Time, kind string, rec PT, columns ...string) error {
	if err := updateRow[T](ctx, db, now, kind, rec, columns...); err != nil {
		return err
	}
	return s.audit(ctx, db, kind, "updated", rec.base().ID)
}

// updateRow is update without the audit entry, for a caller that records
// an entry of its own (Contacts.Update). Where the entry is recorded does
// not matter to the lock order: it is appended after the transaction's
// rows either way (auditLast; TestS14AttackNamesRenameDuringOwnErasure).
func updateRow[T any, PT interface {
	*T
	record
}](ctx context.Context, db bun.IDB, now time.Time, kind string, rec PT, columns ...string) error {
	b := rec.base()
	seen, was := b.Version, b.UpdatedAt
	if seen < 1 {
		return checkVersion(kind, seen)
	}
	b.Version, b.UpdatedAt = seen+1, now
	q := db.NewUpdate().Model(rec).WherePK().Where("?TableAlias.version = ?", seen)
	if len(columns) > 0 {
		q = q.Column(append(columns, "version", "updated_at")...)
	} else {
		q = q.ExcludeColumn("created_at")
	}
	res, err := q.Exec(ctx)
	if err == nil {
		var n int64
		n, err = res.RowsAffected()
		if err == nil && n == 0 {
			b.Version, b.UpdatedAt = seen, was
			cur, gerr := get[T, PT](ctx, db, kind, b.ID)
			if gerr != nil {
				return gerr
			}
			return &ConflictError{Kind: kind, ID: b.ID, Version: seen, Current: PT(&cur).base().Version}
		}
	}
	if err != nil {
		b.Version, b.UpdatedAt = seen, was
		return fmt.Errorf("crm: update %s: %w", kind, err)
	}
	return nil
}

// audit records an entry of the tenant's audit log in db (the write's
// transaction): who (the context's principal) did what to which record —
// "crm.<kind>.<verb>" on "<kind>:<id>", never a value. Like writeAudit,
// it is appended when the transaction's work is done (auditLast).
func (s *Store) audit(ctx context.Context, db bun.IDB, kind, verb, id string) error {
	return s.writeAudit(ctx, db, tenancy.AuditEvent{Action: "crm." + kind + "." + verb, Target: kind + ":" + id})
}

// The lock order of writes. Appending an audit entry locks the head of
// the tenant's audit chain (on PostgreSQL an advisory lock, held to the
// end of the transaction). Every retention batch — erasure, sweep, purge —
// locks the rows it erases first and the audit head last, for its
// receipt. A write that took the audit head before rows such a batch
// holds would wait for the batch while the batch waits for it: a
// deadlock (SQLSTATE 40P01; TestS15LockOrderCompositeWritesDuringErasure).
// So no write of the package appends its entries where it records them:
// writeAudit holds them back in the transaction's auditQueue, and
// auditLast appends them, in the order recorded, once the transaction's
// work is done — after every row it writes, whatever repository calls
// it is composed of (Merge: an Update, row moves, a Delete; an import
// batch: many).

// auditQueue holds the audit events recorded in one transaction until
// its work is done. It travels in the context of the calls made within
// the transaction (under auditQueueKey, unexported), and belongs to the
// database transaction tx: an event written through another handle is
// appended at once.
type auditQueue struct {
	tx     *sql.Tx
	events []tenancy.AuditEvent
}

type auditQueueKey struct{}

// queued returns the context's audit queue when it belongs to db's
// transaction, else nil.
func queued(ctx context.Context, db bun.IDB) *auditQueue {
	q, _ := ctx.Value(auditQueueKey{}).(*auditQueue)
	tx, ok := db.(bun.Tx)
	if q == nil || !ok || tx.Tx != q.tx {
		return nil
	}
	return q
}

// auditLast runs fn in tx and then appends, in tx, the audit entries fn
// recorded through writeAudit (in order): the transaction takes the head
// of the audit chain after all its rows. In a call nested in another of
// the same transaction (a repository of Store.Using(tx), which runs in a
// savepoint) the entries join the outer call's queue, to be appended when
// the outermost call's work is done; those of a nested call that fails
// (its savepoint rolled back) are dropped. A Store bound to the caller's
// transaction appends its entries at the end of each call: the
// caller's own writes after it come after the audit head.
func (s *Store) auditLast(ctx context.Context, tx bun.Tx, fn func(ctx context.Context, tx bun.Tx) error) error {
	if q := queued(ctx, tx); q != nil {
		n := len(q.events)
		if err := fn(ctx, tx); err != nil {
			q.events = q.events[:n]
			return err
		}
		return nil
	}
	q := &auditQueue{tx: tx.Tx}
	if err := fn(context.WithValue(ctx, auditQueueKey{}, q), tx); err != nil {
		return err
	}
	for _, ev := range q.events {
		if err := s.appendAudit(ctx, tx, ev); err != nil {
			return err
		}
	}
	return nil
}

// writeAudit records ev for the tenant's audit log in db, the write's
// transaction, so that the entry commits or rolls back with what it
// records: in a transaction of run it is appended when the transaction's
// work is done (auditLast), else at once. The log is the vault's, keyed
// like the SDK's when the database has an audit key.
func (s *Store) writeAudit(ctx context.Context, db bun.IDB, ev tenancy.AuditEvent) error {
	if q := queued(ctx, db); q != nil {
		ev.Metadata = maps.Clone(ev.Metadata)
		q.events = append(q.events, ev)
		return nil
	}
	return s.appendAudit(ctx, db, ev)
}

// appendAudit appends ev to the tenant's audit log in db now.
func (s *Store) appendAudit(ctx context.Context, db bun.IDB, ev tenancy.AuditEvent) error {
	log, err := s.vault.AuditLog(ctx, db, tenancy.WithClock(s.now))
	if err != nil {
		return fmt.Errorf("crm: audit: %w", err)
	}
	if _, err := log.Append(ctx, ev); err != nil {
		return fmt.Errorf("crm: audit: %w", err)
	}
	return nil
}

// checkContact checks that contactID, if not empty, names a contact of the
// context's tenant; else it returns a *ValidationError of kind on
// contact_id.
func (s *Store) checkContact(ctx context.Context, tx bun.IDB, kind, contactID string) error {
	if contactID == "" {
		return nil
	}
	return mustExist(ctx, tx, (*Contact)(nil), kind, "contact_id", contactID)
}

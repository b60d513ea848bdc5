package tenancy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/uptrace/bun"
)

// Status is where a tenant is in its lifecycle: active → closed → purged.
type Status string

// Tenant statuses.
const (
	StatusActive Status = "active"
	// StatusClosed tenants keep their data until PurgeAfter, so that a
	// closure can be undone during the grace period.
	StatusClosed Status = "closed"
	// StatusPurged tenants have had their data erased; the tenant row stays
	// as the record that it existed and when it was purged.
	StatusPurged Status = "purged"
)

// Tenant is an organization using the host CRM: every tenant-owned row
// belongs to exactly one tenant.
type Tenant struct {
	bun.BaseModel `bun:"table:socialcrm_tenants,alias:tn"`

	ID         string     `bun:"id,pk" json:"id"`
	Name       string     `bun:"name,notnull" json:"name"` // emptied when the tenant is purged (MarkPurged)
	Status     Status     `bun:"status,notnull" json:"status"`
	CreatedAt  time.Time  `bun:"created_at,notnull" json:"created_at"`
	ClosedAt   *time.Time `bun:"closed_at" json:"closed_at,omitempty"`
	PurgeAfter *time.Time `bun:"purge_after" json:"purge_after,omitempty"`
	PurgedAt   *time.Time `bun:"purged_at" json:"purged_at,omitempty"`
}

// Store manages tenants, their members and API keys, and writes the audit
// entries for what it does. Create it with NewStore; a Store is safe for
// concurrent use.
type Store struct {
	db      bun.IDB
	now     func() time.Time
	lockout Lockout
	log     *slog.Logger
	audit   *AuditLog
	sealer  Sealer
	// passwordCost is the bcrypt cost of new passwords; dummyHash, of
	// that cost, is what an unknown email is compared against.
	passwordCost int
	dummyHash    string
}

// Option configures a Store or an AuditLog.
type Option func(*options) error

type options struct {
	now     func() time.Time
	lockout Lockout
	log     *slog.Logger
	sealer  Sealer
	keys    AuditKeys

	passwordCost int
}

// WithAuditKeys makes the audit log a keyed chain: every entry is
// authenticated with k's per-tenant key (the vault's: vault.Vault.AuditKeys),
// so that a database writer without it cannot rewrite the chain. Without
// it the chain is a plain SHA-256 hash chain, which shows accidents but not
// a writer who recomputes it. WithAuditKeys(nil) changes nothing, so that
// WithAuditKeys(log.Keys()) carries another log's keys, if any.
func WithAuditKeys(k AuditKeys) Option {
	return func(o *options) error {
		if k != nil {
			o.keys = k
		}
		return nil
	}
}

// WithClock sets the clock used for every timestamp and deadline (default
// time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("tenancy: WithClock: nil clock")
		}
		o.now = now
		return nil
	}
}

// WithLockout sets the failed-login lockout policy (default DefaultLockout).
func WithLockout(l Lockout) Option {
	return func(o *options) error {
		if l.MaxFailures < 1 || l.Window <= 0 || l.Duration <= 0 {
			return fmt.Errorf("tenancy: WithLockout: MaxFailures, Window and Duration must be positive, got %+v", l)
		}
		o.lockout = l
		return nil
	}
}

// WithLogger sets the logger (default: discard). socialcrm never logs
// passwords, API keys or tokens.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		o.log = l
		return nil
	}
}

func buildOptions(opts []Option) (options, error) {
	o := options{now: time.Now, lockout: DefaultLockout(), passwordCost: PasswordCost}
	for _, opt := range opts {
		if opt == nil {
			continue // a nil Option means the default
		}
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// NewStore returns a Store over db, which may be a *bun.DB or a bun.Tx.
func NewStore(db bun.IDB, opts ...Option) (*Store, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	audit, err := NewAuditLog(db, opts...)
	if err != nil {
		return nil, err
	}
	dummy, err := dummyHashFor(o.passwordCost)
	if err != nil {
		return nil, err
	}
	return &Store{db: db, now: o.now, lockout: o.lockout, log: o.log, audit: audit, sealer: o.sealer,
		passwordCost: o.passwordCost, dummyHash: dummy}, nil
}

// Audit returns the Store's audit log.
func (s *Store) Audit() *AuditLog { return s.audit }

func (s *Store) clock() time.Time { return normalize(s.now()) }

// normalize drops what PostgreSQL cannot store (sub-microseconds, the zone)
// so that a time reads back exactly as it was written on every database.
func normalize(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// SignUp is what CreateTenant needs: the tenant's name and its first owner.
type SignUp struct {
	TenantName string
	Owner      NewMember
}

// CreateTenant creates an active tenant and its owner in one transaction and
// returns them with a context acting as that owner. It needs no principal:
// it is sign-up.
func (s *Store) CreateTenant(ctx context.Context, req SignUp) (Tenant, Member, error) {
	name := strings.TrimSpace(req.TenantName)
	if name == "" {
		return Tenant{}, Member{}, &ValidationError{Field: "TenantName", Reason: "required"}
	}
	if err := checkText("TenantName", name, MaxNameLen); err != nil {
		return Tenant{}, Member{}, err
	}
	req.Owner.Role = RoleOwner
	t := Tenant{ID: NewID(), Name: name, Status: StatusActive, CreatedAt: s.clock()}
	octx := WithPrincipal(ctx, Principal{TenantID: t.ID, Role: RoleOwner})
	m, err := s.newMember(req.Owner)
	if err != nil {
		return Tenant{}, Member{}, err
	}
	ownerName := m.Name
	if err := s.sealName(octx, &m); err != nil {
		return Tenant{}, Member{}, err
	}
	err = RunInTx(octx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(&t).Exec(ctx); err != nil {
			return fmt.Errorf("tenancy: create tenant: %w", err)
		}
		if _, err := tx.NewInsert().Model(&m).Exec(ctx); err != nil {
			return fmt.Errorf("tenancy: create owner: %w", err)
		}
		actx := WithPrincipal(ctx, Principal{TenantID: t.ID, MemberID: m.ID, Role: RoleOwner})
		_, err := s.audit.with(tx).Append(actx, AuditEvent{Action: "tenant.created", Target: "tenant:" + t.ID})
		return err
	})
	if err != nil {
		return Tenant{}, Member{}, err
	}
	m.Name = ownerName
	return t, m, nil
}

// Tenant returns the context's tenant.
func (s *Store) Tenant(ctx context.Context) (Tenant, error) {
	tid, err := TenantID(ctx)
	if err != nil {
		return Tenant{}, err
	}
	return s.tenant(ctx, s.db, tid)
}

func (s *Store) tenant(ctx context.Context, db bun.IDB, id string) (Tenant, error) {
	var t Tenant
	err := db.NewSelect().Model(&t).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return Tenant{}, fmt.Errorf("%w: tenant %s", ErrNotFound, id)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("tenancy: get tenant: %w", err)
	}
	return t, nil
}

// TenantFilter selects tenants in Tenants. The zero value selects all.
type TenantFilter struct {
	// Status, when set, keeps tenants in that status.
	Status Status
	// DueBy, when set, keeps closed tenants whose grace period ended at or
	// before it: the tenants due for purging.
	DueBy time.Time
}

// Tenants lists tenants across the whole database, oldest first. Only the
// system principal may call it (ErrNotSystem otherwise).
func (s *Store) Tenants(ctx context.Context, f TenantFilter) ([]Tenant, error) {
	if p, ok := FromContext(ctx); !ok || !p.IsSystem() {
		return nil, ErrNotSystem
	}
	q := s.db.NewSelect().Model((*Tenant)(nil)).Order("created_at", "id")
	if f.Status != "" {
		q.Where("status = ?", f.Status)
	}
	if !f.DueBy.IsZero() {
		q.Where("status = ?", StatusClosed).Where("purge_after <= ?", normalize(f.DueBy))
	}
	var ts []Tenant
	if err := q.Scan(ctx, &ts); err != nil {
		return nil, fmt.Errorf("tenancy: list tenants: %w", err)
	}
	return ts, nil
}

// CloseTenant closes the context's tenant: it stays readable until now+grace,
// after which the retention engine purges it. Only an owner or the system
// may close a tenant. Closing a closed tenant again changes nothing.
func (s *Store) CloseTenant(ctx context.Context, grace time.Duration) (Tenant, error) {
	if err := Require(ctx, RoleOwner); err != nil {
		return Tenant{}, err
	}
	if grace < 0 {
		return Tenant{}, &ValidationError{Field: "grace", Reason: "must not be negative"}
	}
	var t Tenant
	err := RunInTx(ctx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if t, err = s.tenant(ctx, tx, mustTenant(ctx)); err != nil {
			return err
		}
		if t.Status != StatusActive {
			return nil
		}
		now := s.clock()
		purge := now.Add(grace)
		t.Status, t.ClosedAt, t.PurgeAfter = StatusClosed, &now, &purge
		if _, err := tx.NewUpdate().Model(&t).Column("status", "closed_at", "purge_after").WherePK().Exec(ctx); err != nil {
			return fmt.Errorf("tenancy: close tenant: %w", err)
		}
		_, err = s.audit.with(tx).Append(ctx, AuditEvent{
			Action: "tenant.closed", Target: "tenant:" + t.ID,
			Metadata: map[string]string{"purge_after": purge.Format(time.RFC3339)},
		})
		return err
	})
	return t, err
}

// ReopenTenant undoes a closure during the grace period. Only an owner or the
// system may reopen a tenant; a purged tenant cannot be reopened
// (ErrPurged).
func (s *Store) ReopenTenant(ctx context.Context) (Tenant, error) {
	if err := Require(ctx, RoleOwner); err != nil {
		return Tenant{}, err
	}
	var t Tenant
	err := RunInTx(ctx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if t, err = s.tenant(ctx, tx, mustTenant(ctx)); err != nil {
			return err
		}
		switch t.Status {
		case StatusActive:
			return nil
		case StatusPurged:
			return ErrPurged
		}
		t.Status, t.ClosedAt, t.PurgeAfter = StatusActive, nil, nil
		if _, err := tx.NewUpdate().Model(&t).Column("status", "closed_at", "purge_after").WherePK().Exec(ctx); err != nil {
			return fmt.Errorf("tenancy: reopen tenant: %w", err)
		}
		_, err = s.audit.with(tx).Append(ctx, AuditEvent{Action: "tenant.reopened", Target: "tenant:" + t.ID})
		return err
	})
	return t, err
}

// MarkPurged records that the context's tenant has been purged. Only the
// system principal (acting through AsTenant) may call it, and only on a
// closed tenant whose grace period has ended (ErrNotDue otherwise). It
// empties the tenant's name, which may be a person's. A purged tenant
// stays as it is: two calls that meet mark it, and write its
// "tenant.purged" audit entry, once.
func (s *Store) MarkPurged(ctx context.Context) (Tenant, error) {
	if p, ok := FromContext(ctx); !ok || !p.IsSystem() {
		return Tenant{}, ErrNotSystem
	}
	var t Tenant
	err := RunInTx(ctx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if t, err = s.tenant(ctx, tx, mustTenant(ctx)); err != nil {
			return err
		}
		now := s.clock()
		switch {
		case t.Status == StatusPurged:
			return nil
		case t.Status != StatusClosed || t.PurgeAfter == nil || t.PurgeAfter.After(now):
			return ErrNotDue
		}
		// Only a closed tenant turns purged: when two purges meet, the
		// second update finds the row purged and changes nothing, and the
		// tenant is marked (and audited) once.
		// The name goes with the data: a sole trader's workspace often
		// carries her own name, and the row outlives the purge.
		res, err := tx.NewUpdate().Model((*Tenant)(nil)).Set("status = ?", StatusPurged).Set("purged_at = ?", now).
			Set("name = ?", "").Where("id = ?", t.ID).Where("status = ?", StatusClosed).Exec(ctx)
		if err != nil {
			return fmt.Errorf("tenancy: mark purged: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			t, err = s.tenant(ctx, tx, t.ID)
			return err
		}
		t.Status, t.PurgedAt, t.Name = StatusPurged, &now, ""
		_, err = s.audit.with(tx).Append(ctx, AuditEvent{Action: "tenant.purged", Target: "tenant:" + t.ID})
		return err
	})
	return t, err
}

// More errors of the tenant lifecycle.
var (
	// ErrPurged is returned for an operation on a purged tenant.
	ErrPurged = errors.New("tenancy: tenant is purged")
	// ErrNotDue is returned by MarkPurged before the grace period ends.
	ErrNotDue = errors.New("tenancy: tenant is not due for purging")
)

// ValidationError reports bad input: which field and why. Match it with
// errors.As.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	return "tenancy: invalid " + e.Field + ": " + e.Reason
}

// Require checks that the context's principal has a tenant and is the system
// principal or holds one of roles. It fails with ErrNoTenant or an error
// matching ErrForbidden.
func Require(ctx context.Context, roles ...Role) error {
	p, ok := FromContext(ctx)
	if !ok || p.TenantID == "" {
		return ErrNoTenant
	}
	if p.IsSystem() {
		return nil
	}
	for _, r := range roles {
		if p.Role == r {
			return nil
		}
	}
	return fmt.Errorf("%w: role %q", ErrForbidden, p.Role)
}

// mustTenant returns the tenant of a context already checked by require or
// TenantID.
func mustTenant(ctx context.Context) string {
	p, _ := FromContext(ctx)
	return p.TenantID
}

// Length limits of the free-text fields tenancy stores, in characters.
const (
	MaxNameLen  = 200 // tenant, member and API key names
	MaxEmailLen = 254 // the longest address SMTP can carry
)

// checkText refuses text that no name or address needs and that a database
// may refuse or a log may garble: control characters (NUL among them),
// invalid UTF-8, and more than max characters.
func checkText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return &ValidationError{Field: field, Reason: "must be valid UTF-8"}
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return &ValidationError{Field: field, Reason: "must not contain control characters"}
	}
	if n := utf8.RuneCountInString(s); n > max {
		return &ValidationError{Field: field, Reason: fmt.Sprintf("must be at most %d characters long", max)}
	}
	return nil
}

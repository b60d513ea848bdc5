package tenancy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/internal/dberr"
)

// Member is a person with access to a tenant.
type Member struct {
	bun.BaseModel `bun:"table:socialcrm_members,alias:mb"`
	Owned

	ID    string `bun:"id,pk" json:"id"`
	Email string `bun:"email,notnull" json:"email"`
	// Name is stored sealed when the Store has a Sealer (WithSealer; the
	// name column then holds ""), in clear otherwise.
	Name string `bun:"name,notnull" json:"name"`
	Role Role   `bun:"role,notnull" json:"role"`
	// ClientID is the client relationship a RoleClient member is limited to.
	ClientID string `bun:"client_id,nullzero" json:"client_id,omitempty"`
	// PasswordHash is the bcrypt hash; it is never marshalled.
	PasswordHash  Hash       `bun:"password_hash,nullzero" json:"-"`
	FailedLogins  int        `bun:"failed_logins,notnull" json:"-"`
	FirstFailedAt *time.Time `bun:"first_failed_at" json:"-"`
	LockedUntil   *time.Time `bun:"locked_until" json:"locked_until,omitempty"`
	CreatedAt     time.Time  `bun:"created_at,notnull" json:"created_at"`
	// NameSealed is Name sealed by the Store's Sealer.
	NameSealed []byte `bun:"name_sealed" json:"-"`
}

// Sealer seals and opens personal fields of the context tenant's records,
// bound to the record and field, so that a sealed value opens nowhere else:
// the vault, through the adapter socialcrm.Open wires with WithSealer.
// Seal is called outside any transaction of the Store (a tenant's first
// seal may create its keys).
type Sealer interface {
	Seal(ctx context.Context, plaintext []byte, record, field string) ([]byte, error)
	Open(ctx context.Context, sealed []byte, record, field string) ([]byte, error)
}

// WithSealer makes the Store keep member names sealed by s. Without it
// names are stored in clear.
func WithSealer(s Sealer) Option {
	return func(o *options) error {
		if s == nil {
			return errors.New("tenancy: WithSealer: nil sealer")
		}
		o.sealer = s
		return nil
	}
}

// sealName seals m's name when the Store has a Sealer.
func (s *Store) sealName(ctx context.Context, m *Member) error {
	if s.sealer == nil {
		return nil
	}
	b, err := s.sealer.Seal(ctx, []byte(m.Name), m.ID, "member_name")
	if err != nil {
		return fmt.Errorf("tenancy: seal member name: %w", err)
	}
	m.NameSealed = b
	m.Name = ""
	return nil
}

// openName fills m's name from its sealed form (a name stored in clear, by
// a Store without a Sealer, is kept as it is).
func (s *Store) openName(ctx context.Context, m *Member) error {
	if len(m.NameSealed) == 0 {
		return nil
	}
	if s.sealer == nil {
		return fmt.Errorf("tenancy: member %s: name is sealed and the Store has no Sealer", m.ID)
	}
	b, err := s.sealer.Open(ctx, m.NameSealed, m.ID, "member_name")
	if err != nil {
		return fmt.Errorf("tenancy: open member %s name: %w", m.ID, err)
	}
	m.Name = string(b)
	return nil
}

// Principal returns the principal acting as m.
func (m Member) Principal() Principal {
	return Principal{TenantID: m.TenantID, MemberID: m.ID, Role: m.Role, ClientID: m.ClientID}
}

// NewMember is what AddMember needs. Password may be empty for members who
// never sign in with one (creators connecting accounts through a link).
type NewMember struct {
	Email    string
	Name     string
	Role     Role
	ClientID string
	Password string
}

// ErrDuplicate is returned when a member's email or another unique value is
// already taken in the tenant.
var ErrDuplicate = errors.New("tenancy: already exists")

func (s *Store) newMember(n NewMember) (Member, error) {
	if err := checkText("Email", n.Email, MaxEmailLen); err != nil {
		return Member{}, err
	}
	if err := checkText("Name", n.Name, MaxNameLen); err != nil {
		return Member{}, err
	}
	addr, err := mail.ParseAddress(n.Email)
	if err != nil || addr.Address != strings.TrimSpace(n.Email) {
		return Member{}, &ValidationError{Field: "Email", Reason: "must be a plain email address"}
	}
	if strings.TrimSpace(n.Name) == "" {
		return Member{}, &ValidationError{Field: "Name", Reason: "required"}
	}
	if !n.Role.Valid() {
		return Member{}, &ValidationError{Field: "Role", Reason: fmt.Sprintf("unknown role %q", n.Role)}
	}
	if (n.Role == RoleClient) != (n.ClientID != "") {
		return Member{}, &ValidationError{Field: "ClientID", Reason: "required for, and only for, the client role"}
	}
	m := Member{
		ID: NewID(), Email: strings.ToLower(addr.Address), Name: strings.TrimSpace(n.Name),
		Role: n.Role, ClientID: n.ClientID, CreatedAt: s.clock(),
	}
	if n.Password != "" {
		h, err := hashPassword(n.Password, s.passwordCost)
		if err != nil {
			return Member{}, err
		}
		m.PasswordHash = Hash(h)
	}
	return m, nil
}

// AddMember adds a member to the context's tenant. Owners and admins may add
// members; only an owner may add another owner.
func (s *Store) AddMember(ctx context.Context, n NewMember) (Member, error) {
	if err := Require(ctx, RoleOwner, RoleAdmin); err != nil {
		return Member{}, err
	}
	if p, _ := FromContext(ctx); n.Role == RoleOwner && !p.IsSystem() && p.Role != RoleOwner {
		return Member{}, fmt.Errorf("%w: only an owner may add an owner", ErrForbidden)
	}
	m, err := s.newMember(n)
	if err != nil {
		return Member{}, err
	}
	name := m.Name
	if err := s.sealName(ctx, &m); err != nil {
		return Member{}, err
	}
	err = RunInTx(ctx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(&m).Exec(ctx); err != nil {
			if dberr.IsUniqueViolation(err) {
				return fmt.Errorf("%w: member %s", ErrDuplicate, m.Email)
			}
			return fmt.Errorf("tenancy: add member: %w", err)
		}
		_, err := s.audit.with(tx).Append(ctx, AuditEvent{
			Action: "member.added", Target: "member:" + m.ID,
			Metadata: map[string]string{"role": string(m.Role)},
		})
		return err
	})
	if err != nil {
		return Member{}, err
	}
	m.Name = name
	return m, nil
}

// Members lists the context tenant's members by email. Owners, admins and
// staff may list them; clients and creators may not.
func (s *Store) Members(ctx context.Context) ([]Member, error) {
	if err := Require(ctx, RoleOwner, RoleAdmin, RoleStaff); err != nil {
		return nil, err
	}
	var ms []Member
	err := RunInTx(ctx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&ms).Order("email").Scan(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("tenancy: list members: %w", err)
	}
	for i := range ms {
		if err := s.openName(ctx, &ms[i]); err != nil {
			return nil, err
		}
	}
	return ms, nil
}

// Lockout is the failed-login policy: after MaxFailures failures within
// Window, the member is locked for Duration.
type Lockout struct {
	MaxFailures int
	Window      time.Duration
	Duration    time.Duration
}

// DefaultLockout returns the default lockout policy: a member is locked
// for 15 minutes after 5 failures within 15 minutes.
func DefaultLockout() Lockout {
	return Lockout{MaxFailures: 5, Window: 15 * time.Minute, Duration: 15 * time.Minute}
}

// LockedError is returned by Authenticate while a member is locked out. It
// matches ErrLocked with errors.Is.
type LockedError struct {
	Until time.Time
}

func (e *LockedError) Error() string {
	return "tenancy: account locked until " + e.Until.Format(time.RFC3339)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// ErrLocked matches every *LockedError.
var ErrLocked = errors.New("tenancy: account locked")

// Authenticate checks a member's email and password in tenantID and returns
// the member's principal. A wrong email or password fails with
// ErrInvalidCredentials and counts towards the lockout; a locked member
// fails with *LockedError even with the right password; members of a purged
// tenant cannot sign in. Every attempt is written to the audit log with ip
// and userAgent (never the password).
//
// The bcrypt comparison (about a quarter of a second at cost 12) runs
// outside any transaction, and always runs, whether or not the email
// exists or the member is locked, so that the answer's timing tells
// nothing. The failure counter is then updated in a short transaction that
// locks the member's row, so parallel attempts cannot undercount.
func (s *Store) Authenticate(ctx context.Context, tenantID, email, password string, req RequestInfo) (Principal, error) {
	if ValidateID(tenantID) != nil || checkText("Email", email, MaxEmailLen) != nil {
		// No member can have such an address: the same answer, in the
		// same time, as for a wrong password.
		_ = CheckPassword(s.dummyHash, password)
		return Principal{}, ErrInvalidCredentials
	}
	ctx = WithPrincipal(ctx, Principal{TenantID: tenantID})
	email = strings.ToLower(strings.TrimSpace(email))

	var (
		m      Member
		found  bool
		purged bool
	)
	err := RunInTx(ctx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
		t, err := s.tenant(ctx, tx, tenantID)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		purged = t.Status == StatusPurged
		err = tx.NewSelect().Model(&m).Where("email = ?", email).Scan(ctx)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return Principal{}, fmt.Errorf("tenancy: authenticate: %w", err)
	}
	hash := s.dummyHash
	if found && m.PasswordHash != "" {
		hash = string(m.PasswordHash)
	}
	passwordOK := CheckPassword(hash, password) == nil && found && m.PasswordHash != "" && !purged

	var (
		result  Principal
		authErr error
	)
	err = RunInTx(ctx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
		audit := s.audit.with(tx)
		event := func(ctx context.Context, action, target string, meta map[string]string) error {
			_, err := audit.Append(ctx, AuditEvent{Action: action, Target: target, IP: req.IP, UserAgent: req.UserAgent, Metadata: meta})
			return err
		}
		if !found {
			authErr = ErrInvalidCredentials
			return event(ctx, "login.failed", "email", map[string]string{"reason": "unknown email"})
		}
		q := tx.NewSelect().Model(&m).WherePK()
		if tx.Dialect().Name() == dialect.PG {
			q.For("UPDATE")
		}
		if err := q.Scan(ctx); err != nil {
			return fmt.Errorf("tenancy: authenticate: %w", err)
		}
		now := s.clock()
		actx := WithPrincipal(ctx, m.Principal())
		target := "member:" + m.ID
		switch {
		case m.LockedUntil != nil && now.Before(*m.LockedUntil):
			authErr = &LockedError{Until: *m.LockedUntil}
			return event(actx, "login.locked", target, nil)
		case passwordOK:
			m.FailedLogins, m.FirstFailedAt, m.LockedUntil = 0, nil, nil
			if _, err := tx.NewUpdate().Model(&m).Column("failed_logins", "first_failed_at", "locked_until").WherePK().Exec(ctx); err != nil {
				return fmt.Errorf("tenancy: record login: %w", err)
			}
			result = m.Principal()
			return event(actx, "login.succeeded", target, nil)
		}
		if m.FirstFailedAt == nil || now.Sub(*m.FirstFailedAt) > s.lockout.Window {
			m.FailedLogins, m.FirstFailedAt = 0, &now
		}
		m.FailedLogins++
		authErr = ErrInvalidCredentials
		action := "login.failed"
		if m.FailedLogins >= s.lockout.MaxFailures {
			until := now.Add(s.lockout.Duration)
			m.LockedUntil, m.FailedLogins, m.FirstFailedAt = &until, 0, nil
			authErr = &LockedError{Until: until}
			action = "member.locked"
		}
		if _, err := tx.NewUpdate().Model(&m).Column("failed_logins", "first_failed_at", "locked_until").WherePK().Exec(ctx); err != nil {
			return fmt.Errorf("tenancy: record failed login: %w", err)
		}
		return event(actx, action, target, nil)
	})
	if err != nil {
		return Principal{}, err
	}
	return result, authErr
}

// RequestInfo is what the audit log records about the request behind an
// action.
type RequestInfo struct {
	IP        string
	UserAgent string
}

// SealNames seals the member names stored in clear — by a Store without a
// Sealer, or a release before names were sealed — tenant by tenant, each
// member in a transaction of its own, and returns how many it sealed. It
// needs the system principal (ErrNotSystem) and a Sealer. Stopped anywhere,
// the next call goes on; when nothing is left it is a no-op returning 0.
// socialcrm.Open calls it.
func (s *Store) SealNames(ctx context.Context) (int, error) {
	if s.sealer == nil {
		return 0, errors.New("tenancy: SealNames: the Store has no Sealer (WithSealer)")
	}
	ts, err := s.Tenants(ctx, TenantFilter{})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range ts {
		tctx, err := AsTenant(ctx, t.ID)
		if err != nil {
			return n, err
		}
		var ms []Member
		err = RunInTx(tctx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewSelect().Model(&ms).Where("name <> ''").Scan(ctx)
		})
		if err != nil {
			return n, fmt.Errorf("tenancy: seal names: %w", err)
		}
		for _, m := range ms {
			if err := s.sealName(tctx, &m); err != nil {
				return n, err
			}
			err := RunInTx(tctx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.NewUpdate().Model(&m).Column("name", "name_sealed").WherePK().Exec(ctx)
				return err
			})
			if err != nil {
				return n, fmt.Errorf("tenancy: seal names: %w", err)
			}
			n++
		}
	}
	return n, nil
}

// ErrLastOwner is returned when a change would leave the tenant without an
// owner: its last owner can be neither demoted nor removed.
var ErrLastOwner = errors.New("tenancy: the tenant's last owner")

// roleRank orders the roles that hold API keys: a key outranking its
// member's new role is revoked when the member is demoted.
func roleRank(r Role) int {
	switch r {
	case RoleOwner:
		return 3
	case RoleAdmin:
		return 2
	case RoleStaff:
		return 1
	}
	return 0
}

// memberForChange loads the context tenant's member id for SetRole and
// RemoveMember, checks that the context's principal may change it, and
// fails with ErrLastOwner when want (the role the member would hold, ""
// for removal) would leave the tenant without an owner. On PostgreSQL the
// tenant's owner rows are locked first (FOR UPDATE), meant to keep two
// owners demoting each other at once from both succeeding; no test forces
// that interleaving yet.
func (s *Store) memberForChange(ctx context.Context, tx bun.Tx, id string, want Role) (Member, error) {
	var owners []string
	q := tx.NewSelect().Model((*Member)(nil)).Column("id").Where("role = ?", RoleOwner).Order("id")
	if tx.Dialect().Name() == dialect.PG {
		q.For("UPDATE")
	}
	if err := q.Scan(ctx, &owners); err != nil {
		return Member{}, fmt.Errorf("tenancy: change member: %w", err)
	}
	var m Member
	if err := tx.NewSelect().Model(&m).Where("id = ?", id).Scan(ctx); err != nil {
		if isNoRows(err) {
			return Member{}, fmt.Errorf("%w: member %s", ErrNotFound, id)
		}
		return Member{}, fmt.Errorf("tenancy: change member: %w", err)
	}
	p, _ := FromContext(ctx)
	if (m.Role == RoleOwner || want == RoleOwner) && !p.IsSystem() && p.Role != RoleOwner {
		return Member{}, fmt.Errorf("%w: only an owner may make, demote or remove an owner", ErrForbidden)
	}
	if m.Role == RoleOwner && want != RoleOwner && len(owners) <= 1 {
		return Member{}, fmt.Errorf("%w: member %s", ErrLastOwner, id)
	}
	return m, nil
}

// SetRole changes the role of the context tenant's member id to role and
// returns the member. Owners and admins may change roles; only an owner may
// make an owner or change an owner's role (ErrForbidden); the last owner
// cannot be demoted (ErrLastOwner). The role must be owner, admin or staff
// (a *ValidationError otherwise), and a client member's role, tied to its
// client relationship, cannot be changed. A demotion revokes the member's
// API keys whose role is above the new one. A member of another tenant, or
// none, is ErrNotFound. The change is written to the audit log ("member.role_changed",
// with the old and new role); setting the role a member already holds
// changes nothing and writes nothing.
func (s *Store) SetRole(ctx context.Context, id string, role Role) (Member, error) {
	if err := Require(ctx, RoleOwner, RoleAdmin); err != nil {
		return Member{}, err
	}
	if ValidateID(id) != nil {
		return Member{}, fmt.Errorf("%w: member", ErrNotFound)
	}
	if role != RoleOwner && role != RoleAdmin && role != RoleStaff {
		return Member{}, &ValidationError{Field: "Role", Reason: "must be owner, admin or staff"}
	}
	var m Member
	err := RunInTx(ctx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if m, err = s.memberForChange(ctx, tx, id, role); err != nil {
			return err
		}
		if m.Role == RoleClient {
			return &ValidationError{Field: "Role", Reason: "a client member's role is fixed by its client relationship"}
		}
		if m.Role == role {
			return nil
		}
		from := m.Role
		m.Role = role
		if _, err := tx.NewUpdate().Model(&m).Column("role").WherePK().Exec(ctx); err != nil {
			return fmt.Errorf("tenancy: set role: %w", err)
		}
		revoked, err := s.revokeMemberKeys(ctx, tx, id, roleRank(role))
		if err != nil {
			return err
		}
		_, err = s.audit.with(tx).Append(ctx, AuditEvent{
			Action: "member.role_changed", Target: "member:" + id,
			Metadata: map[string]string{"from": string(from), "to": string(role), "api_keys_revoked": fmt.Sprint(revoked)},
		})
		return err
	})
	if err != nil {
		return Member{}, err
	}
	if err := s.openName(ctx, &m); err != nil {
		return Member{}, err
	}
	return m, nil
}

// revokeMemberKeys revokes member id's live API keys whose role ranks above
// maxRank, and returns how many it revoked.
func (s *Store) revokeMemberKeys(ctx context.Context, tx bun.Tx, id string, maxRank int) (int64, error) {
	var over []Role
	for _, r := range []Role{RoleOwner, RoleAdmin, RoleStaff, RoleCreator} {
		if roleRank(r) > maxRank {
			over = append(over, r)
		}
	}
	if len(over) == 0 {
		return 0, nil
	}
	res, err := tx.NewUpdate().Model((*APIKey)(nil)).Set("revoked_at = ?", s.clock()).
		Where("member_id = ?", id).Where("revoked_at IS NULL").Where("role IN (?)", bun.In(over)).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("tenancy: revoke member's api keys: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// RemoveMember removes the context tenant's member id: their record (e-mail,
// name, password hash) is deleted and every API key they created is
// revoked. Owners and admins may remove members; only an owner may remove
// an owner (ErrForbidden); the last owner cannot be removed (ErrLastOwner).
// A member of another tenant, or none, is ErrNotFound. The removal is
// written to the audit log ("member.removed", with the role the member held
// and how many keys were revoked), nothing of the member but their id.
// Sessions an application keeps for the member are the application's to
// end.
func (s *Store) RemoveMember(ctx context.Context, id string) error {
	if err := Require(ctx, RoleOwner, RoleAdmin); err != nil {
		return err
	}
	if ValidateID(id) != nil {
		return fmt.Errorf("%w: member", ErrNotFound)
	}
	return RunInTx(ctx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
		m, err := s.memberForChange(ctx, tx, id, "")
		if err != nil {
			return err
		}
		revoked, err := s.revokeMemberKeys(ctx, tx, id, -1)
		if err != nil {
			return err
		}
		if _, err := tx.NewDelete().Model(&m).WherePK().Exec(ctx); err != nil {
			return fmt.Errorf("tenancy: remove member: %w", err)
		}
		_, err = s.audit.with(tx).Append(ctx, AuditEvent{
			Action: "member.removed", Target: "member:" + id,
			Metadata: map[string]string{"role": string(m.Role), "api_keys_revoked": fmt.Sprint(revoked)},
		})
		return err
	})
}

package tenancy

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// Role is what a member may do inside its tenant.
type Role string

// The roles a member can hold. A client sees only the records shared with its
// client relationship; a creator is an external person who only connects
// accounts.
const (
	RoleOwner   Role = "owner"
	RoleAdmin   Role = "admin"
	RoleStaff   Role = "staff"
	RoleClient  Role = "client"
	RoleCreator Role = "creator"
)

// Valid reports whether r is one of the defined roles.
func (r Role) Valid() bool {
	switch r {
	case RoleOwner, RoleAdmin, RoleStaff, RoleClient, RoleCreator:
		return true
	}
	return false
}

// Principal is who is acting: a member of a tenant, an API key, or the
// system (a maintenance job acting explicitly on one tenant at a time).
//
// The zero Principal has no tenant; every tenant-owned query made with it
// fails with ErrNoTenant.
type Principal struct {
	// TenantID is the tenant every query is scoped to.
	TenantID string
	// MemberID is the acting member, empty for the system and for API keys
	// that are not tied to a member.
	MemberID string
	// Role is the member's role.
	Role Role
	// ClientID is the client relationship a RoleClient principal is limited
	// to.
	ClientID string
	// System names the maintenance job when the principal is the system
	// (see System and AsTenant); empty for people and API keys.
	System string
}

// IsSystem reports whether p is the system principal.
func (p Principal) IsSystem() bool { return p.System != "" }

// Actor is how p is recorded in the audit log: "system:<name>",
// "member:<id>", or "tenant:<id>" for an API key without a member.
func (p Principal) Actor() string {
	switch {
	case p.System != "":
		return "system:" + p.System
	case p.MemberID != "":
		return "member:" + p.MemberID
	case p.TenantID != "":
		return "tenant:" + p.TenantID
	}
	return "anonymous"
}

type principalKey struct{}

// WithPrincipal returns a copy of ctx carrying p. It is the only value
// socialcrm stores in a context.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal carried by ctx, if any.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// TenantID returns the tenant ctx is scoped to. It fails with ErrNoTenant when
// ctx carries no principal or a principal without a tenant, and with
// ErrInvalidTenant when the tenant id is not a canonical UUID.
func TenantID(ctx context.Context) (string, error) {
	p, ok := FromContext(ctx)
	if !ok || p.TenantID == "" {
		return "", ErrNoTenant
	}
	if err := ValidateID(p.TenantID); err != nil {
		return "", err
	}
	return p.TenantID, nil
}

// ValidateID checks that id is a canonical, lower-case UUID, the only form of
// tenant id socialcrm accepts.
func ValidateID(id string) error {
	if !canonicalUUID(id) {
		return fmt.Errorf("%w: %q", ErrInvalidTenant, id)
	}
	return nil
}

// canonicalUUID reports whether id is xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx in
// lower-case hex. It runs on every scoped query, so it does not allocate.
func canonicalUUID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// NewID returns a new time-ordered (version 7) UUID, the form of every id
// socialcrm generates.
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// System returns a context carrying the system principal named name (for
// example "retention"). The system principal has no tenant: it can list
// tenants, and it acts on tenant-owned data only through AsTenant, one tenant
// at a time, so row-level security and the query hooks stay in force. Its
// name is recorded as the actor of every audit entry it writes.
func System(ctx context.Context, name string) context.Context {
	if name == "" {
		name = "unnamed"
	}
	return WithPrincipal(ctx, Principal{System: name})
}

// AsTenant returns a context in which the system principal of ctx acts on
// tenantID. It fails with ErrNotSystem when ctx does not carry the system
// principal: a member can never switch tenants this way.
func AsTenant(ctx context.Context, tenantID string) (context.Context, error) {
	p, ok := FromContext(ctx)
	if !ok || !p.IsSystem() {
		return nil, ErrNotSystem
	}
	if err := ValidateID(tenantID); err != nil {
		return nil, err
	}
	return WithPrincipal(ctx, Principal{System: p.System, TenantID: tenantID, Role: RoleOwner}), nil
}

// Errors returned by tenancy. Match them with errors.Is.
var (
	// ErrNoTenant is returned by every tenant-owned query made without a
	// tenant in the context: scoping fails closed.
	ErrNoTenant = errors.New("tenancy: no tenant in context")
	// ErrInvalidTenant is returned when a tenant id is not a canonical UUID.
	ErrInvalidTenant = errors.New("tenancy: invalid tenant id")
	// ErrTenantMismatch is returned when a model carries a tenant id other
	// than the context's: a row is never moved to, or written for, another
	// tenant.
	ErrTenantMismatch = errors.New("tenancy: model belongs to another tenant")
	// ErrUnscoped is returned (through the Guard) for a query on a
	// tenant-owned table that bypassed the scoping hooks, such as Count,
	// Exists, Rows or a raw query without a tenant_id predicate.
	ErrUnscoped = errors.New("tenancy: query on a tenant-owned table is not scoped to the tenant")
	// ErrNotSystem is returned when an operation reserved for the system
	// principal is attempted by anyone else.
	ErrNotSystem = errors.New("tenancy: operation requires the system principal")
	// ErrForbidden is returned when the principal's role does not allow an
	// operation.
	ErrForbidden = errors.New("tenancy: forbidden")
	// ErrNotFound is returned when a tenant, member or key does not exist
	// (or is not visible to the principal).
	ErrNotFound = errors.New("tenancy: not found")
)

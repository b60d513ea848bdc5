package tenancy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// APIKey is the stored record of an API key: never the key itself, only its
// SHA-256 hash and the last four characters as a hint.
type APIKey struct {
	bun.BaseModel `bun:"table:socialcrm_api_keys,alias:ak"`
	Owned

	ID         string     `bun:"id,pk" json:"id"`
	Name       string     `bun:"name,notnull" json:"name"`
	Hint       string     `bun:"hint,notnull" json:"hint"`
	Hash       Hash       `bun:"hash,notnull" json:"-"`
	Role       Role       `bun:"role,notnull" json:"role"`
	MemberID   string     `bun:"member_id,nullzero" json:"member_id,omitempty"`
	CreatedAt  time.Time  `bun:"created_at,notnull" json:"created_at"`
	LastUsedAt *time.Time `bun:"last_used_at" json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `bun:"revoked_at" json:"revoked_at,omitempty"`
}

// CreateAPIKey creates an API key for the context's tenant acting with role
// and returns the key — shown this once, never stored — with its record.
// Owners and admins may create keys, for roles up to their own.
func (s *Store) CreateAPIKey(ctx context.Context, name string, role Role) (string, APIKey, error) {
	if err := Require(ctx, RoleOwner, RoleAdmin); err != nil {
		return "", APIKey{}, err
	}
	if name == "" {
		return "", APIKey{}, &ValidationError{Field: "Name", Reason: "required"}
	}
	if err := checkText("Name", name, MaxNameLen); err != nil {
		return "", APIKey{}, err
	}
	p, _ := FromContext(ctx)
	if !role.Valid() || role == RoleClient {
		return "", APIKey{}, &ValidationError{Field: "Role", Reason: fmt.Sprintf("role %q cannot hold an API key", role)}
	}
	if role == RoleOwner && !p.IsSystem() && p.Role != RoleOwner {
		return "", APIKey{}, fmt.Errorf("%w: only an owner may create an owner key", ErrForbidden)
	}
	key, hint := newAPIKey(p.TenantID)
	k := APIKey{ID: NewID(), Name: name, Hint: hint, Hash: Hash(hashAPIKey(key)), Role: role, MemberID: p.MemberID, CreatedAt: s.clock()}
	err := RunInTx(ctx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(&k).Exec(ctx); err != nil {
			return fmt.Errorf("tenancy: create api key: %w", err)
		}
		_, err := s.audit.with(tx).Append(ctx, AuditEvent{Action: "apikey.created", Target: "apikey:" + k.ID,
			Metadata: map[string]string{"role": string(role), "name": name}})
		return err
	})
	if err != nil {
		return "", APIKey{}, err
	}
	return key, k, nil
}

// APIKeys lists the context tenant's API keys, revoked ones included
// (RevokedAt set), oldest first: their records only, never a key or its
// hash. Owners and admins may list them.
func (s *Store) APIKeys(ctx context.Context) ([]APIKey, error) {
	if err := Require(ctx, RoleOwner, RoleAdmin); err != nil {
		return nil, err
	}
	keys := []APIKey{}
	err := RunInTx(ctx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&keys).Order("created_at", "id").Scan(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("tenancy: list api keys: %w", err)
	}
	for i := range keys {
		keys[i].Hash = ""
		keys[i].CreatedAt = keys[i].CreatedAt.UTC()
	}
	return keys, nil
}

// AuthenticateAPIKey returns the principal of a valid, unrevoked key, or
// ErrInvalidCredentials. The tenant named inside the key must be active.
func (s *Store) AuthenticateAPIKey(ctx context.Context, key string) (Principal, error) {
	tid, ok := parseAPIKey(key)
	if !ok {
		return Principal{}, ErrInvalidCredentials
	}
	ctx = WithPrincipal(ctx, Principal{TenantID: tid})
	hash := hashAPIKey(key)
	var k APIKey
	err := RunInTx(ctx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewSelect().Model(&k).Where("hash = ?", hash).Where("revoked_at IS NULL").Scan(ctx); err != nil {
			return err
		}
		t, err := s.tenant(ctx, tx, tid)
		if err != nil {
			return err
		}
		if t.Status != StatusActive {
			return ErrInvalidCredentials
		}
		now := s.clock()
		k.LastUsedAt = &now
		_, err = tx.NewUpdate().Model(&k).Column("last_used_at").WherePK().Exec(ctx)
		return err
	})
	if err != nil || !equalHashes(string(k.Hash), hash) {
		if err != nil && !isNoRows(err) && err != ErrInvalidCredentials {
			return Principal{}, fmt.Errorf("tenancy: authenticate api key: %w", err)
		}
		reason := "unknown or revoked key"
		if err == ErrInvalidCredentials {
			reason = "tenant not active"
		}
		if err := s.auditFailedKey(ctx, tid, reason); err != nil {
			return Principal{}, err
		}
		return Principal{}, ErrInvalidCredentials
	}
	return Principal{TenantID: tid, MemberID: k.MemberID, Role: k.Role}, nil
}

// auditFailedKey records a failed API-key sign-in in the log of the tenant
// the key names, if that tenant exists: action "apikey.failed", the reason,
// and nothing of the key.
func (s *Store) auditFailedKey(ctx context.Context, tid, reason string) error {
	err := RunInTx(ctx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := s.tenant(ctx, tx, tid); err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		_, err := s.audit.with(tx).Append(ctx, AuditEvent{Action: "apikey.failed", Target: "apikey",
			Metadata: map[string]string{"reason": reason}})
		return err
	})
	if err != nil {
		return fmt.Errorf("tenancy: audit failed api key: %w", err)
	}
	return nil
}

// RevokeAPIKey revokes the context tenant's key id. Owners and admins may
// revoke keys.
func (s *Store) RevokeAPIKey(ctx context.Context, id string) error {
	if err := Require(ctx, RoleOwner, RoleAdmin); err != nil {
		return err
	}
	return RunInTx(ctx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*APIKey)(nil)).Set("revoked_at = ?", s.clock()).
			Where("id = ?", id).Where("revoked_at IS NULL").Exec(ctx)
		if err != nil {
			return fmt.Errorf("tenancy: revoke api key: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: api key %s", ErrNotFound, id)
		}
		_, err = s.audit.with(tx).Append(ctx, AuditEvent{Action: "apikey.revoked", Target: "apikey:" + id})
		return err
	})
}

package social

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// revocation is a platform revoke that failed at disconnect and is retried
// by RetryRevocations. It holds the sealed tokens only for that.
type revocation struct {
	bun.BaseModel `bun:"table:socialcrm_social_revocations,alias:srv"`
	tenancy.Owned

	ID           string       `bun:"id,pk"`
	ConnectionID string       `bun:"connection_id,notnull"`
	Platform     string       `bun:"platform,notnull"`
	AccessToken  vault.Sealed `bun:"access_token"`
	RefreshToken vault.Sealed `bun:"refresh_token"`
	Attempts     int          `bun:"attempts,notnull"`
	LastError    string       `bun:"last_error,notnull"`
	CreatedAt    time.Time    `bun:"created_at,notnull"`
	NextAt       time.Time    `bun:"next_at,notnull"`
	// ClaimedUntil is the lease of the process retrying it now.
	ClaimedUntil time.Time `bun:"claimed_until,nullzero"`
}

// RevocationLease is how long a process that claimed a revocation retry
// has it to itself; a claim left by a dead process is taken over after it.
const RevocationLease = 2 * time.Minute

// Disconnect disconnects the connection in one operation: it revokes the
// authorization at the platform through p (nil: the provider registered
// for the connection's platform, WithProviders), both tokens where the
// platform revokes them apart, deletes the sealed tokens from
// the connection, marks it revoked and writes an audit entry, then calls
// the disconnect hook (WithDisconnectHook) to hand the connection's
// derived data to retention. If the platform's revoke fails, the tokens
// are deleted all the same, and the revoke is queued (the tokens sealed
// apart) for RetryRevocations.
//
// The connections derived from it (Session.ConnectDerived, see Derived)
// are disconnected first, the same way and each through the hook, so that
// a Facebook user's Pages do not outlive the user's connection. Calling
// Disconnect again finishes a cascade that failed part way; disconnecting
// a revoked connection without live derived connections does nothing.
func (s *Store) Disconnect(ctx context.Context, id string, p Provider) (Connection, error) {
	if p == nil {
		c, err := s.Get(ctx, id)
		if err != nil {
			return Connection{}, err
		}
		var ok bool
		if p, ok = s.providers[c.Platform]; !ok {
			return Connection{}, fmt.Errorf("%w: Disconnect: no provider for %q", ErrConfig, c.Platform)
		}
	}
	// The tenant's key is loaded before any transaction (see Token).
	if _, err := s.vault.EnsureKey(ctx); err != nil {
		return Connection{}, fmt.Errorf("social: disconnect: %w", err)
	}
	derived, c, done, err := s.revokeTree(ctx, id, p, "connection.disconnected", "user", 0)
	if err != nil {
		return Connection{}, fmt.Errorf("social: disconnect: %w", err)
	}
	return c, s.handOver(ctx, derived, c, done)
}

// handOver calls the disconnect hook for each derived connection that was
// just revoked, then for c when done, going on after a failure and
// returning every failure.
func (s *Store) handOver(ctx context.Context, derived []Connection, c Connection, done bool) error {
	if s.onDisconnect == nil {
		return nil
	}
	if done {
		derived = append(derived, c)
	}
	var errs []error
	for _, d := range derived {
		if err := s.onDisconnect(ctx, d); err != nil {
			errs = append(errs, fmt.Errorf("social: disconnect hook: %w", err))
		}
	}
	return errors.Join(errs...)
}

// maxDerivedDepth bounds how far a disconnect follows parent links.
const maxDerivedDepth = 8

// revokeTree revokes the live connections derived from id (recursively),
// then id itself. It returns the derived connections it revoked and id's
// connection, done being false when that one was revoked already; none
// of them has been through the disconnect hook yet.
func (s *Store) revokeTree(ctx context.Context, id string, p Provider, action, reason string, depth int) (derived []Connection, c Connection, done bool, err error) {
	if depth < maxDerivedDepth {
		children, err := s.Derived(ctx, id)
		if err != nil {
			return nil, Connection{}, false, err
		}
		for _, ch := range children {
			sub, cc, cdone, err := s.revokeTree(ctx, ch.ID, p, action, reason+" (parent "+id+")", depth+1)
			if err != nil {
				return nil, Connection{}, false, err
			}
			derived = append(derived, sub...)
			if cdone {
				derived = append(derived, cc)
			}
		}
	}
	c, done, err = s.revoke(ctx, id, p, action, reason)
	if err != nil {
		return nil, Connection{}, false, err
	}
	return derived, c, done, nil
}

// Derived returns the connections derived from the connection id
// (Session.ConnectDerived) that are not revoked, oldest first. The caller
// owns the slice.
func (s *Store) Derived(ctx context.Context, id string) ([]Connection, error) {
	var cs []Connection
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&cs).Where("parent_id = ?", id).Where("status <> ?", StatusRevoked).
			Order("created_at", "id").Scan(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("social: derived connections: %w", err)
	}
	for i := range cs {
		if err := s.openProfile(ctx, &cs[i]); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

// revoke deletes the connection's tokens and marks it revoked, revoking at
// the platform through p first when p is not nil. done is false when the
// connection was revoked already.
func (s *Store) revoke(ctx context.Context, id string, p Provider, action, reason string) (c Connection, done bool, err error) {
	err = s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		c, err = get(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if c.Status == StatusRevoked {
			return nil
		}
		if p != nil && p.Platform() != c.Platform {
			return fmt.Errorf("%w: provider does not match the connection's platform", ErrConfig)
		}
		done = true
		now := s.clock()
		revoke := "done"
		if p == nil {
			revoke = "by_platform"
		}
		var pending *revocation
		if p != nil && !c.AccessToken.IsZero() {
			var t Tokens
			if t, err = s.openTokens(ctx, c.AccessToken, c.RefreshToken, c.ID); err != nil {
				return err
			}
			defer t.Wipe()
			if rerr := p.Revoke(ctx, t); rerr != nil {
				revoke = "pending"
				if pending, err = s.pendingRevocation(ctx, c, t, rerr, now); err != nil {
					return err
				}
			}
		}
		c.AccessToken, c.RefreshToken = vault.Sealed{}, vault.Sealed{}
		c.Status, c.RevokedAt, c.UpdatedAt = StatusRevoked, now, now
		c.TokenExpiry, c.RefreshExpiry = time.Time{}, time.Time{}
		c.TokenVersion++
		if _, err := tx.NewUpdate().Model(&c).
			Column("access_token", "refresh_token", "status", "revoked_at", "updated_at", "token_expiry", "refresh_expiry", "token_version").
			WherePK().Exec(ctx); err != nil {
			return err
		}
		if pending != nil {
			if _, err := tx.NewInsert().Model(pending).Exec(ctx); err != nil {
				return err
			}
		}
		return s.audit(ctx, tx, tenancy.AuditEvent{
			Action: action, Target: "connection:" + c.ID,
			Metadata: map[string]string{"platform": c.Platform, "revoke": revoke, "reason": reason},
		})
	})
	return c, done, err
}

// pendingRevocation returns the queued retry of a revoke of c's tokens t
// that failed with rerr, the tokens sealed apart.
func (s *Store) pendingRevocation(ctx context.Context, c Connection, t Tokens, rerr error, now time.Time) (*revocation, error) {
	pending := &revocation{ID: tenancy.NewID(), ConnectionID: c.ID, Platform: c.Platform,
		Attempts: 1, LastError: rerr.Error(), CreatedAt: now, NextAt: now.Add(retryDelay(1))}
	var err error
	if pending.AccessToken, err = s.vault.Seal(ctx, t.AccessToken.Reveal(), binding(pending.ID, "access_token")); err != nil {
		return nil, err
	}
	if !t.RefreshToken.IsZero() {
		if pending.RefreshToken, err = s.vault.Seal(ctx, t.RefreshToken.Reveal(), binding(pending.ID, "refresh_token")); err != nil {
			return nil, err
		}
	}
	s.log.WarnContext(ctx, "social: revoke failed; queued for retry", "connection", c.ID, "error", rerr)
	return pending, nil
}

// revokeErased revokes at the platform, in tx, the authorizations of the
// connections ids that a data-subject erasure or a tenant purge is about
// to delete: each one still holding tokens, through the provider
// registered for its platform (WithProviders). A revoke that fails is
// queued for RetryRevocations, as Disconnect queues it; a connection of a
// platform without a provider is deleted with its tokens, the platform
// untold (logged). Each revoke is audited as connection.revoked.
func (s *Store) revokeErased(ctx context.Context, tx bun.Tx, ids []string) error {
	var cs []Connection
	if err := tx.NewSelect().Model(&cs).Column("id", "platform", "access_token", "refresh_token").
		Where("?TableAlias.id IN (?)", bun.In(ids)).Where("?TableAlias.access_token IS NOT NULL").Scan(ctx); err != nil {
		return fmt.Errorf("social: revoke erased connections: %w", err)
	}
	for _, c := range cs {
		p, ok := s.providers[c.Platform]
		if !ok {
			s.log.WarnContext(ctx, "social: erased connection not revoked: no provider for its platform", "connection", c.ID, "platform", c.Platform)
			continue
		}
		t, err := s.openTokens(ctx, c.AccessToken, c.RefreshToken, c.ID)
		if err != nil {
			return fmt.Errorf("social: revoke erased connections: %w", err)
		}
		revoke := "done"
		if rerr := p.Revoke(ctx, t); rerr != nil {
			revoke = "pending"
			pending, err := s.pendingRevocation(ctx, c, t, rerr, s.clock())
			if err == nil {
				_, err = tx.NewInsert().Model(pending).Exec(ctx)
			}
			if err != nil {
				t.Wipe()
				return fmt.Errorf("social: revoke erased connections: %w", err)
			}
		}
		t.Wipe()
		if err := s.audit(ctx, tx, tenancy.AuditEvent{Action: "connection.revoked", Target: "connection:" + c.ID,
			Metadata: map[string]string{"platform": c.Platform, "revoke": revoke, "reason": "erased"}}); err != nil {
			return err
		}
	}
	return nil
}

// retryDelay is the wait before revoke attempt n+1: a minute doubling up
// to a day.
func retryDelay(n int) time.Duration {
	d := time.Minute << min(n-1, 11)
	return min(d, 24*time.Hour)
}

// PendingRevocations returns how many revokes of the context's tenant wait
// for RetryRevocations.
func (s *Store) PendingRevocations(ctx context.Context) (int, error) {
	n := 0
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		c, err := tx.NewSelect().Model((*revocation)(nil)).Apply(tenancy.Scope(ctx)).Count(ctx)
		n = int(c)
		return err
	})
	return n, err
}

// openTokens opens the sealed tokens of record id (either may be zero).
func (s *Store) openTokens(ctx context.Context, access, refresh vault.Sealed, id string) (Tokens, error) {
	var t Tokens
	var err error
	if !access.IsZero() {
		if t.AccessToken, err = s.vault.Open(ctx, access, binding(id, "access_token")); err != nil {
			return Tokens{}, fmt.Errorf("social: open access token: %w", err)
		}
	}
	if !refresh.IsZero() {
		if t.RefreshToken, err = s.vault.Open(ctx, refresh, binding(id, "refresh_token")); err != nil {
			t.Wipe()
			return Tokens{}, fmt.Errorf("social: open refresh token: %w", err)
		}
	}
	return t, nil
}

// RetryRevocations retries the context tenant's due revokes, of every
// platform with a provider registered (WithProviders), and returns how many
// succeeded. Each revoke is first claimed for RevocationLease with a
// conditional update, so that two processes retrying at once never both
// call the platform; a success deletes the queued tokens and is audited
// once as connection.revoked. A revoke that fails again is rescheduled
// with a growing delay.
func (s *Store) RetryRevocations(ctx context.Context) (int, error) {
	if len(s.providers) == 0 {
		return 0, nil
	}
	if _, err := s.vault.EnsureKey(ctx); err != nil {
		return 0, fmt.Errorf("social: retry revocations: %w", err)
	}
	platforms := make([]string, 0, len(s.providers))
	for name := range s.providers {
		platforms = append(platforms, name)
	}
	var due []revocation
	now := s.clock()
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&due).Where("platform IN (?)", bun.In(platforms)).Where("next_at <= ?", now).
			Where("claimed_until IS NULL OR claimed_until <= ?", now).
			Order("next_at").Limit(100).Scan(ctx)
	})
	if err != nil {
		return 0, fmt.Errorf("social: retry revocations: %w", err)
	}
	done := 0
	for _, r := range due {
		ok, err := s.retryRevocation(ctx, r)
		if err != nil {
			return done, fmt.Errorf("social: retry revocations: %w", err)
		}
		if ok {
			done++
		}
	}
	return done, nil
}

// retryRevocation claims r, revokes its tokens and records the outcome.
// It reports whether the platform revoked them.
func (s *Store) retryRevocation(ctx context.Context, r revocation) (bool, error) {
	now := s.clock()
	lease := now.Add(RevocationLease)
	claimed := false
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*revocation)(nil)).Set("claimed_until = ?", lease).
			Where("id = ?", r.ID).Where("next_at <= ?", now).
			Where("claimed_until IS NULL OR claimed_until <= ?", now).Exec(ctx)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		claimed = n == 1
		return nil
	})
	if err != nil || !claimed {
		return false, err
	}
	p := s.providers[r.Platform]
	t, rerr := s.openTokens(ctx, r.AccessToken, r.RefreshToken, r.ID)
	if rerr == nil {
		rerr = p.Revoke(ctx, t)
		t.Wipe()
	}
	err = s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if rerr == nil {
			res, err := tx.NewDelete().Model((*revocation)(nil)).Where("id = ?", r.ID).
				Where("claimed_until = ?", lease).Exec(ctx)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return nil // our lease ran out and another process took it over
			}
			return s.audit(ctx, tx, tenancy.AuditEvent{
				Action: "connection.revoked", Target: "connection:" + r.ConnectionID,
				Metadata: map[string]string{"platform": r.Platform, "attempts": fmt.Sprint(r.Attempts + 1)},
			})
		}
		r.Attempts++
		r.LastError, r.NextAt, r.ClaimedUntil = rerr.Error(), s.clock().Add(retryDelay(r.Attempts)), time.Time{}
		_, err := tx.NewUpdate().Model(&r).Column("attempts", "last_error", "next_at", "claimed_until").
			WherePK().Where("claimed_until = ?", lease).Exec(ctx)
		return err
	})
	return rerr == nil && err == nil, err
}

package social

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// revocation is a platform revoke that failed at disconnect and is retried
// by RetryRevocations. It holds the sealed access token only for that.
type revocation struct {
	bun.BaseModel `bun:"table:socialcrm_social_revocations,alias:srv"`
	tenancy.Owned

	ID           string       `bun:"id,pk"`
	ConnectionID string       `bun:"connection_id,notnull"`
	Platform     string       `bun:"platform,notnull"`
	AccessToken  vault.Sealed `bun:"access_token"`
	Attempts     int          `bun:"attempts,notnull"`
	LastError    string       `bun:"last_error,notnull"`
	CreatedAt    time.Time    `bun:"created_at,notnull"`
	NextAt       time.Time    `bun:"next_at,notnull"`
}

// Disconnect disconnects the connection in one operation: it revokes the
// authorization at the platform through p, deletes the sealed tokens from
// the connection, marks it revoked and writes an audit entry, then calls
// the disconnect hook (WithDisconnectHook) to hand the connection's
// derived data to retention. If the platform's revoke fails, the tokens
// are deleted all the same, and the revoke is queued (the access token
// sealed apart) for RetryRevocations. Disconnecting a revoked connection
// does nothing.
func (s *Store) Disconnect(ctx context.Context, id string, p Provider) (Connection, error) {
	if p == nil {
		return Connection{}, fmt.Errorf("%w: Disconnect: nil provider", ErrConfig)
	}
	c, done, err := s.revoke(ctx, id, p, "connection.disconnected", "user")
	if err != nil {
		return Connection{}, fmt.Errorf("social: disconnect: %w", err)
	}
	if !done || s.onDisconnect == nil {
		return c, nil
	}
	if err := s.onDisconnect(ctx, c); err != nil {
		return c, fmt.Errorf("social: disconnect hook: %w", err)
	}
	return c, nil
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
			at, err := s.vault.Open(ctx, c.AccessToken, binding(c.ID, "access_token"))
			if err != nil {
				return fmt.Errorf("social: open access token: %w", err)
			}
			rerr := p.Revoke(ctx, at)
			if rerr != nil {
				revoke = "pending"
				pending = &revocation{ID: tenancy.NewID(), ConnectionID: c.ID, Platform: c.Platform,
					Attempts: 1, LastError: rerr.Error(), CreatedAt: now, NextAt: now.Add(retryDelay(1))}
				pending.AccessToken, err = s.vault.Seal(ctx, at.Reveal(), binding(pending.ID, "access_token"))
				if err != nil {
					at.Wipe()
					return err
				}
				s.log.WarnContext(ctx, "social: revoke failed; queued for retry", "connection", c.ID, "error", rerr)
			}
			at.Wipe()
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

// RetryRevocations retries the due revokes of the context's tenant for p's
// platform and returns how many succeeded. A revoke that fails again is
// rescheduled with a growing delay.
func (s *Store) RetryRevocations(ctx context.Context, p Provider) (int, error) {
	var due []revocation
	now := s.clock()
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&due).Where("platform = ?", p.Platform()).Where("next_at <= ?", now).
			Order("next_at").Limit(100).Scan(ctx)
	})
	if err != nil {
		return 0, fmt.Errorf("social: retry revocations: %w", err)
	}
	done := 0
	for _, r := range due {
		at, err := s.vault.Open(ctx, r.AccessToken, binding(r.ID, "access_token"))
		var rerr error
		if err == nil {
			rerr = p.Revoke(ctx, at)
			at.Wipe()
		} else {
			rerr = err
		}
		err = s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
			if rerr == nil {
				if _, err := tx.NewDelete().Model(&r).WherePK().Exec(ctx); err != nil {
					return err
				}
				return s.audit(ctx, tx, tenancy.AuditEvent{
					Action: "connection.revoked", Target: "connection:" + r.ConnectionID,
					Metadata: map[string]string{"platform": r.Platform, "attempts": fmt.Sprint(r.Attempts + 1)},
				})
			}
			r.Attempts++
			r.LastError, r.NextAt = rerr.Error(), s.clock().Add(retryDelay(r.Attempts))
			_, err := tx.NewUpdate().Model(&r).Column("attempts", "last_error", "next_at").WherePK().Exec(ctx)
			return err
		})
		if err != nil {
			return done, fmt.Errorf("social: retry revocations: %w", err)
		}
		if rerr == nil {
			done++
		}
	}
	return done, nil
}

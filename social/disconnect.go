package social

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// revocation is a platform revoke that failed at disconnect and is retried
// by RetryRevocations. It holds the sealed tokens only for that.
type revocation struct {
	bun.BaseModel `bun:"table:socialcrm_social_revocations,alias:srv"`
	tenancy.Owned

	ID           string `bun:"id,pk"`
	ConnectionID string `bun:"connection_id,notnull"`
	// AccountID is the connection's platform account ('' in rows queued
	// before it was recorded).
	AccountID    string       `bun:"account_id,notnull"`
	Platform     string       `bun:"platform,notnull"`
	AccessToken  vault.Sealed `bun:"access_token"`
	RefreshToken vault.Sealed `bun:"refresh_token"`
	// AccessExpiry is when the access token expires (zero: unknown), so
	// that a provider refreshes before revoking through a dead token.
	AccessExpiry time.Time `bun:"access_expiry,nullzero"`
	Attempts     int       `bun:"attempts,notnull"`
	LastError    string    `bun:"last_error,notnull"`
	CreatedAt    time.Time `bun:"created_at,notnull"`
	NextAt       time.Time `bun:"next_at,notnull"`
	// ClaimedUntil is the lease of the process retrying it now.
	ClaimedUntil time.Time `bun:"claimed_until,nullzero"`
}

// RevocationLease is how long a process that claimed a revocation retry
// has it to itself; a claim left by a dead process is taken over after it.
const RevocationLease = 2 * time.Minute

// Disconnect disconnects the connection in one operation. In one
// transaction it deletes the sealed tokens from the connection, queues
// their revoke (the tokens sealed apart), marks the connection revoked and
// writes an audit entry (connection.disconnected, revoke "queued"); after
// the commit it calls the disconnect hook (WithDisconnectHook) to hand the
// connection's derived data to retention, then revokes the authorization
// at the platform through p (nil: the provider registered for the
// connection's platform, WithProviders), both tokens where the platform
// revokes them apart, which removes the queued revoke and is audited as
// connection.revoked. If the platform's revoke fails, or the process dies
// or ctx is cancelled while the platform is asked, the revoke stays queued
// for RetryRevocations (after RevocationLease when the process died
// holding its claim): no token of a disconnected connection is ever left
// anywhere but in that queue. A connection whose hook failed, or whose
// process died before the hook took it, is handed over by
// RetryRevocations once RevocationLease has passed.
//
// The connections derived from it (Session.ConnectDerived, see Derived)
// are disconnected first, the same way and each through the hook, so that
// a Facebook user's Pages do not outlive the user's connection. Calling
// Disconnect again finishes a cascade that failed part way; disconnecting
// a revoked connection without live derived connections does nothing.
func (s *Store) Disconnect(ctx context.Context, id string, p Provider) (Connection, error) {
	if err := noClient(ctx); err != nil {
		return Connection{}, err
	}
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
	var queued []revocation
	derived, c, done, err := s.revokeTree(ctx, id, p, "connection.disconnected", "user", 0, &queued)
	var herr error
	if err == nil {
		herr = s.handOver(ctx, derived, c, done)
	}
	// The platform is asked only now that every token of the tree has left
	// its connection (even when part of the tree failed).
	for _, r := range queued {
		if _, rerr := s.claimAndRevoke(ctx, p, r); rerr != nil {
			s.log.WarnContext(ctx, "social: revoke after disconnect not recorded; left queued", "connection", r.ConnectionID, "error", rerr)
		}
	}
	if err != nil {
		return Connection{}, fmt.Errorf("social: disconnect: %w", err)
	}
	return c, herr
}

// handOver calls the disconnect hook for each derived connection that was
// just revoked, then for c when done, going on after a failure and
// returning every failure. A connection the hook took is no longer
// pending (handover_pending); one it failed stays so for RetryRevocations.
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
			continue
		}
		if err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewUpdate().Model((*Connection)(nil)).Set("handover_pending = ?", false).
				Where("tenant_id = ?", mustTenant(ctx)).Where("id = ?", d.ID).Exec(ctx)
			return err
		}); err != nil {
			errs = append(errs, fmt.Errorf("social: disconnect hook: %w", err))
		}
	}
	return errors.Join(errs...)
}

// retryHandOvers calls the disconnect hook for the context tenant's
// revoked connections that it has not taken (handover_pending) since
// RevocationLease at least — their process died between the revoke's
// commit and the hook, or the hook failed — and returns how many it took.
// A hook may thus run twice for a connection whose process died after the
// hook and before recording it.
func (s *Store) retryHandOvers(ctx context.Context) (int, error) {
	if s.onDisconnect == nil {
		return 0, nil
	}
	var cs []Connection
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&cs).Where("?TableAlias.handover_pending = ?", true).
			Where("?TableAlias.status = ?", StatusRevoked).Where("?TableAlias.revoked_at <= ?", s.clock().Add(-RevocationLease)).
			Order("revoked_at").Limit(100).Scan(ctx)
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range cs {
		if err := s.openProfile(ctx, &c); err != nil {
			return n, err
		}
		if err := s.handOver(ctx, nil, c, true); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// maxDerivedDepth bounds how far a disconnect follows parent links.
const maxDerivedDepth = 8

// revokeTree revokes the live connections derived from id (recursively),
// then id itself, appending to queued the platform revokes it queued (with
// p; see revoke). It returns the derived connections it revoked and id's
// connection, done being false when that one was revoked already; none
// of them has been through the disconnect hook yet.
func (s *Store) revokeTree(ctx context.Context, id string, p Provider, action, reason string, depth int, queued *[]revocation) (derived []Connection, c Connection, done bool, err error) {
	if depth < maxDerivedDepth {
		children, err := s.Derived(ctx, id)
		if err != nil {
			return nil, Connection{}, false, err
		}
		for _, ch := range children {
			sub, cc, cdone, err := s.revokeTree(ctx, ch.ID, p, action, reason+" (parent "+id+")", depth+1, queued)
			if err != nil {
				return nil, Connection{}, false, err
			}
			derived = append(derived, sub...)
			if cdone {
				derived = append(derived, cc)
			}
		}
	}
	c, done, err = s.revoke(ctx, id, p, action, reason, queued)
	if err != nil {
		return nil, Connection{}, false, err
	}
	return derived, c, done, nil
}

// Derived returns the connections derived from the connection id
// (Session.ConnectDerived) that are not revoked, oldest first. The caller
// owns the slice.
func (s *Store) Derived(ctx context.Context, id string) ([]Connection, error) {
	if err := noClient(ctx); err != nil {
		return nil, err
	}
	var cs []Connection
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return derivedQuery(tx.NewSelect().Model(&cs), id).Where("status <> ?", StatusRevoked).Scan(ctx)
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

// derivedQuery narrows q, a select of connections, to those derived from
// the connection id, oldest first: the one definition of the cascade that
// Disconnect and an erasure (resolveDerived) follow.
func derivedQuery(q *bun.SelectQuery, id string) *bun.SelectQuery {
	return q.Where("?TableAlias.parent_id = ?", id).OrderExpr("?TableAlias.created_at, ?TableAlias.id")
}

// resolveDerived is the resolver of SubjectConnection: the connections
// derived from it, revoked or not, so that erasing a Facebook user's
// connection erases the Page and Instagram connections made through it,
// as Disconnect disconnects them (the engine follows the keys to their
// own derived connections).
func resolveDerived(ctx context.Context, db bun.IDB, id string) (map[string][]string, error) {
	var ids []string
	err := tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
		return derivedQuery(tx.NewSelect().Model((*Connection)(nil)).Column("id").Apply(tenancy.Scope(ctx)), id).Scan(ctx, &ids)
	})
	if err != nil {
		return nil, fmt.Errorf("social: resolve derived connections: %w", err)
	}
	return map[string][]string{SubjectConnection: ids}, nil
}

// revoke deletes the connection's tokens and marks it revoked. With p,
// the tokens go, in the same transaction, to the revoke queue (sealed
// apart, due at once), and the revoke is appended to queued for the
// caller to make once the commit is done (claimAndRevoke): a process
// killed or a context cancelled while the platform is asked leaves the
// connection without tokens and the revoke queued for RetryRevocations,
// never a live token on a connection the user disconnected. done is false
// when the connection was revoked already.
func (s *Store) revoke(ctx context.Context, id string, p Provider, action, reason string, queued *[]revocation) (c Connection, done bool, err error) {
	var q *revocation
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
		if p != nil && !c.AccessToken.IsZero() {
			t, err := s.openTokens(ctx, c.AccessToken, c.RefreshToken, c.ID)
			if err != nil {
				return err
			}
			q, err = s.queueRevocation(ctx, c, t, now)
			t.Wipe()
			if err != nil {
				return err
			}
			if _, err := tx.NewInsert().Model(q).Exec(ctx); err != nil {
				return err
			}
			revoke = "queued"
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
		// Until the disconnect hook has taken it (handOver).
		if _, err := tx.NewUpdate().Model((*Connection)(nil)).Set("handover_pending = ?", true).
			Where("tenant_id = ?", mustTenant(ctx)).Where("id = ?", c.ID).Exec(ctx); err != nil {
			return err
		}
		// Webhook routing (AccountTenants) learns it from the index.
		if _, err := tx.NewUpdate().Model((*account)(nil)).Set("live = ?", false).
			Where("tenant_id = ?", mustTenant(ctx)).Where("connection_id = ?", c.ID).Exec(ctx); err != nil {
			return err
		}
		return s.audit(ctx, tx, tenancy.AuditEvent{
			Action: action, Target: "connection:" + c.ID,
			Metadata: map[string]string{"platform": c.Platform, "revoke": revoke, "reason": reason},
		})
	})
	if err == nil && q != nil {
		*queued = append(*queued, *q)
	}
	return c, done, err
}

// queueRevocation returns a revoke of c's tokens t for the queue, due at
// now, the tokens sealed apart.
func (s *Store) queueRevocation(ctx context.Context, c Connection, t Tokens, now time.Time) (*revocation, error) {
	r := &revocation{ID: tenancy.NewID(), ConnectionID: c.ID, AccountID: c.AccountID, Platform: c.Platform, AccessExpiry: c.TokenExpiry,
		CreatedAt: now, NextAt: now}
	if !t.AccessExpiry.IsZero() {
		r.AccessExpiry = t.AccessExpiry
	}
	var err error
	if r.AccessToken, err = s.vault.Seal(ctx, t.AccessToken.Reveal(), binding(r.ID, "access_token")); err != nil {
		return nil, err
	}
	if !t.RefreshToken.IsZero() {
		if r.RefreshToken, err = s.vault.Seal(ctx, t.RefreshToken.Reveal(), binding(r.ID, "refresh_token")); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// revokeErased takes away, in tx, the authorizations of the connections
// ids that a data-subject erasure, a sweep or a tenant purge is about to
// delete: each one still holding tokens, through the provider registered
// for its platform (WithProviders); a connection of a platform without a
// provider is deleted with its tokens, the platform untold (logged).
//
// It follows Disconnect's rule: the tokens move to the revoke queue
// (sealed apart, due at once) in the erasure's transaction, audited as
// connection.revoked with revoke "queued" and reason "erased", and the
// platform is asked only after the commit, by the category's AfterErase
// hook (revokeErasedQueued) or else by RetryRevocations. A process killed
// before the commit leaves the erasure to resume with the tokens where
// they were; killed after it, the tokens are only in the queue. No
// network call holds the erasure's transaction, a tenant purge's
// included: a purge, which destroys the tenant's key once done, waits for
// the queue to be empty (revokeQueued) before it does.
func (s *Store) revokeErased(ctx context.Context, tx bun.Tx, ids []string) error {
	var cs []Connection
	if err := tx.NewSelect().Model(&cs).Column("id", "platform", "account_id", "access_token", "refresh_token", "token_expiry").
		Where("?TableAlias.id IN (?)", bun.In(ids)).Where("?TableAlias.access_token IS NOT NULL").Scan(ctx); err != nil {
		return fmt.Errorf("social: revoke erased connections: %w", err)
	}
	for _, c := range cs {
		attempted, err := s.queueErased(ctx, tx, c)
		if err != nil {
			return fmt.Errorf("social: revoke erased connections: %w", err)
		}
		if !attempted {
			continue
		}
		if err := s.audit(ctx, tx, tenancy.AuditEvent{Action: "connection.revoked", Target: "connection:" + c.ID,
			Metadata: map[string]string{"platform": c.Platform, "revoke": "queued", "reason": "erased"}}); err != nil {
			return err
		}
	}
	return nil
}

// queueErased queues, in tx, the revoke of the erased connection c's
// tokens, due at once; false (logged) when no provider is registered for
// its platform, which nothing could ever revoke through.
func (s *Store) queueErased(ctx context.Context, tx bun.Tx, c Connection) (bool, error) {
	if _, ok := s.providers[c.Platform]; !ok {
		s.log.WarnContext(ctx, "social: revoke skipped: no provider for its platform", "connection", c.ID, "platform", c.Platform)
		return false, nil
	}
	t, err := s.openTokens(ctx, c.AccessToken, c.RefreshToken, c.ID)
	if err != nil {
		return false, err
	}
	q, err := s.queueRevocation(ctx, c, t, s.clock())
	t.Wipe()
	if err != nil {
		return false, err
	}
	_, err = tx.NewInsert().Model(q).Exec(ctx)
	return err == nil, err
}

// revokeErasedQueued is CategoryConnection's AfterErase hook: once an
// erasure's batch has committed, it makes the revokes the batch queued
// for the connections ids (revokeErased), through claimAndRevoke, which
// records each outcome (connection.revoked, or the failure kept queued
// for RetryRevocations). A revoke another process holds, or one not due,
// is left to RetryRevocations. A platform that fails does not fail the
// erasure: the revoke stays queued, its tokens sealed apart; only a
// failure to read the queue is returned (the engine then runs the hook
// again). In a tenant purge, a revoke that fails past RevokeAbandonAfter
// is given up (claimAndRevoke).
func (s *Store) revokeErasedQueued(ctx context.Context, ids []string) error {
	var rs []revocation
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		// Those due: a revoke that failed before (in a purge, at its start)
		// waits for its retry.
		return tx.NewSelect().Model(&rs).Where("?TableAlias.connection_id IN (?)", bun.In(ids)).
			Where("?TableAlias.next_at <= ?", s.clock()).Scan(ctx)
	})
	if err != nil {
		return fmt.Errorf("social: revoke erased connections: %w", err)
	}
	for _, r := range rs {
		p, ok := s.providers[r.Platform]
		if !ok {
			continue
		}
		if _, err := s.claimAndRevoke(ctx, p, r); err != nil {
			s.log.WarnContext(ctx, "social: revoke after erasure not recorded; left queued", "connection", r.ConnectionID, "error", err)
		}
	}
	return nil
}

// ErrRevokePending reports queued platform revokes that a tenant purge or
// a sweep could not make yet: their tokens are kept (and so is the tenant's
// key, since the purge stops before destroying it) until a later run makes
// them, or gives them up after RevokeAbandonAfter. Match it with errors.Is.
var ErrRevokePending = errors.New("social: queued platform revokes still fail")

// RevokeAbandonAfter bounds how long a tenant purge, or a sweep of
// CategoryRevocation, waits on a platform that keeps failing a queued
// revoke (errors, a misconfigured provider): a purge run this long after
// the purge was due (the end of the tenant's grace period), or a sweep of
// a revoke queued this long ago, gives the revoke up after a last attempt,
// audits it as connection.revoke_abandoned (with the reason and the
// attempts: every one made, by Disconnect, RetryRevocations and the purge
// and sweep runs, this last one included) and completes. The platform then keeps the grant until it expires or the
// user removes the app.
const RevokeAbandonAfter = 7 * 24 * time.Hour

// revokeTokenInvalid is the revoke outcome audited when the platform
// refused the token itself (expired, revoked already): the grant can no
// longer be used through it, and nothing is left to retry.
const revokeTokenInvalid = "token_invalid"

// tokenDead reports whether a revoke failed because the platform refused
// the token (social.ErrInvalidToken): an outcome, not a failure to retry.
func tokenDead(rerr error) bool { return rerr != nil && errors.Is(rerr, ErrInvalidToken) }

// abandonReason reports whether a queued revoke r that failed again at now
// is given up (RevokeAbandonAfter), and why: in a tenant purge, counted
// from the purge's due time; in a sweep, from when r was queued. Neither
// moves when a run fails (a failure records the attempt and reschedules
// r's retry, nothing else).
func abandonReason(ctx context.Context, r revocation, now time.Time) (string, bool) {
	bound := fmt.Sprintf("%d days", RevokeAbandonAfter/(24*time.Hour))
	if due, ok := retention.PurgeDue(ctx); ok {
		return "platform still failing; tenant purge overdue by " + bound + " or more", !now.Before(due.Add(RevokeAbandonAfter))
	}
	return "platform still failing; queued " + bound + " ago or more", !now.Before(r.CreatedAt.Add(RevokeAbandonAfter))
}

// revokeQueued settles, in tx, the queued revokes ids that are about to
// be erased (by a tenant purge, or a sweep of CategoryRevocation),
// whatever their schedule: a purge destroys the tenant's key right after,
// and with it any chance to make them; a sweep erases their tokens.
//
// It calls no platform: the operation made every queued revoke it could
// before this batch, outside any transaction — when it began
// (RetryRevocations, the purge's or the sweep's start hook: in a sweep,
// those queued at or before its cutoff), and, in a purge, those its
// erasure of the connections queued once that batch committed
// (revokeErasedQueued) — each claimed, made once, and its outcome
// recorded as RetryRevocations records one (a revoke that still fails
// past RevokeAbandonAfter given up there). What is still queued here
// failed in this run, or is held by another process's claim (erased
// under it, a failure of that process's call would go unrecorded, the
// tokens and the revoke lost): it is kept, and the operation stops with a
// *retention.UnfinishedError naming the kept revokes, matching
// ErrRevokePending (a purge before the key goes); the next run tries
// again. A revoke of a platform without a provider registered is erased
// with its tokens (logged: the platform is left untold).
func (s *Store) revokeQueued(ctx context.Context, tx bun.Tx, ids []string) error {
	var rs []revocation
	now := s.clock()
	if err := tx.NewSelect().Model(&rs).Column("id", "connection_id", "platform").Where("?TableAlias.id IN (?)", bun.In(ids)).
		Where("?TableAlias.claimed_until IS NULL OR ?TableAlias.claimed_until <= ?", now).Scan(ctx); err != nil {
		return fmt.Errorf("social: revoke queued: %w", err)
	}
	var failed []string
	if len(rs) < len(ids) {
		// Another process claimed the rest (RetryRevocations): they
		// stay queued until it records its outcome or its lease runs out.
		mine := make(map[string]bool, len(rs))
		for _, r := range rs {
			mine[r.ID] = true
		}
		for _, id := range ids {
			if !mine[id] {
				failed = append(failed, id)
			}
		}
	}
	for _, r := range rs {
		if _, ok := s.providers[r.Platform]; ok {
			failed = append(failed, r.ID)
			continue
		}
		s.log.WarnContext(ctx, "social: revoke skipped: no provider for its platform", "connection", r.ConnectionID, "platform", r.Platform)
	}
	if len(failed) > 0 {
		return &retention.UnfinishedError{IDs: failed, Err: fmt.Errorf("%w: %d of %d", ErrRevokePending, len(failed), len(ids))}
	}
	return nil
}

// rotatedTokens returns the live tokens of a revoke that failed after the
// platform rotated them (*RotatedError).
func rotatedTokens(rerr error) (Tokens, bool) {
	var re *RotatedError
	if errors.As(rerr, &re) && !re.Tokens.AccessToken.IsZero() {
		return re.Tokens, true
	}
	return Tokens{}, false
}

// keepRotated seals into r, in place of its spent tokens, the live ones of
// a revoke that failed after the platform rotated them (rerr a
// *RotatedError), wiping them, and returns cols with the columns that
// changed.
func (s *Store) keepRotated(ctx context.Context, r *revocation, rerr error, cols ...string) ([]string, error) {
	rot, ok := rotatedTokens(rerr)
	if !ok {
		return cols, nil
	}
	defer rot.Wipe()
	more, err := s.sealInto(ctx, r, rot)
	if err != nil {
		return nil, err
	}
	return append(cols, more...), nil
}

// sealInto seals rot into r in place of its tokens and returns the
// columns that changed; rot is left as it is.
func (s *Store) sealInto(ctx context.Context, r *revocation, rot Tokens) ([]string, error) {
	var err error
	if r.AccessToken, err = s.vault.Seal(ctx, rot.AccessToken.Reveal(), binding(r.ID, "access_token")); err != nil {
		return nil, err
	}
	r.RefreshToken = vault.Sealed{}
	if !rot.RefreshToken.IsZero() {
		if r.RefreshToken, err = s.vault.Seal(ctx, rot.RefreshToken.Reveal(), binding(r.ID, "refresh_token")); err != nil {
			return nil, err
		}
	}
	r.AccessExpiry = rot.AccessExpiry
	return []string{"access_token", "refresh_token", "access_expiry"}, nil
}

// retryDelay is the wait before revoke attempt n+1: a minute doubling up
// to a day.
func retryDelay(n int) time.Duration {
	d := time.Minute << min(n-1, 11)
	return min(d, 24*time.Hour)
}

// Revocation is a platform revoke waiting in the queue: one that failed at
// Disconnect (or at an erasure), and every retry of which has failed so
// far. It holds no token.
type Revocation struct {
	// ID names the queued revoke.
	ID string `json:"id"`
	// ConnectionID and Platform name the revoked connection.
	ConnectionID string `json:"connection_id"`
	Platform     string `json:"platform"`
	// Attempts counts the attempts made: the first one, RetryRevocations'
	// and those of tenant purges and sweeps that failed.
	Attempts int `json:"attempts"`
	// LastError is the last attempt's failure, as the provider reported it.
	LastError string `json:"last_error"`
	// CreatedAt is when the revoke was queued, NextAt when RetryRevocations
	// tries it next: a minute after the first failure, the delay doubling
	// with each failed attempt up to a day.
	CreatedAt time.Time `json:"created_at"`
	NextAt    time.Time `json:"next_at"`
}

// Revocations returns a page of the context tenant's queued revokes,
// oldest first, with how they failed: what a console shows beside
// PendingRevocations' count. A bad limit or cursor fails with an error
// matching ErrListOptions.
func (s *Store) Revocations(ctx context.Context, o ListOptions) (Page[Revocation], error) {
	if err := noClient(ctx); err != nil {
		return Page[Revocation]{}, err
	}
	after, err := o.check()
	if err != nil {
		return Page[Revocation]{}, err
	}
	var rs []revocation
	err = s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		q := tx.NewSelect().Model(&rs).
			Column("id", "connection_id", "platform", "attempts", "last_error", "created_at", "next_at").
			Apply(tenancy.Scope(ctx)).
			OrderExpr("?TableAlias.created_at ASC").OrderExpr("?TableAlias.id ASC").Limit(int64(o.limit() + 1))
		if after != nil {
			q = q.Where("(?TableAlias.created_at, ?TableAlias.id) > (?, ?)", after.CreatedAt, after.ID)
		}
		return q.Scan(ctx)
	})
	if err != nil {
		return Page[Revocation]{}, fmt.Errorf("social: list revocations: %w", err)
	}
	p := Page[Revocation]{Items: make([]Revocation, 0, min(len(rs), o.limit()))}
	for _, r := range rs[:min(len(rs), o.limit())] {
		p.Items = append(p.Items, Revocation{ID: r.ID, ConnectionID: r.ConnectionID, Platform: r.Platform,
			Attempts: r.Attempts, LastError: r.LastError, CreatedAt: r.CreatedAt.UTC(), NextAt: r.NextAt.UTC()})
	}
	if len(rs) > o.limit() {
		last := p.Items[len(p.Items)-1]
		if p.NextCursor, err = (connectionCursor{CreatedAt: last.CreatedAt, ID: last.ID}).encode(); err != nil {
			return Page[Revocation]{}, err
		}
	}
	return p, nil
}

// PendingRevocations returns how many revokes of the context's tenant wait
// for RetryRevocations (Revocations lists them).
func (s *Store) PendingRevocations(ctx context.Context) (int, error) {
	if err := noClient(ctx); err != nil {
		return 0, err
	}
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
// once as connection.revoked. A revoke whose token the platform refuses
// (expired, or revoked already: the grant can no longer be used through
// it) counts as made, audited with revoke token_invalid. A revoke that
// fails otherwise is rescheduled with a growing delay.
//
// It also hands to the disconnect hook (WithDisconnectHook) the revoked
// connections the hook has not taken for RevocationLease or more: their
// process died between the revoke's commit and the hook, or the hook
// failed. These are not counted.
//
// A queued revoke of a platform without a provider registered here (a
// Disconnect given a provider the Store was not built with, whose own
// attempt failed or whose process died) is never retried by this Store:
// each call logs a warning naming the platform and how many wait, until a
// Store with that provider retries them or a purge or sweep gives them up
// (RevokeAbandonAfter).
//
// A tenant purge calls it when it begins (the root package registers it
// with retention.WithTenantPurgeStartHook; retention.PurgeDue tells it
// apart): then it tries every queued revoke of the tenant, whatever its
// schedule, outside any transaction, and gives up one that fails once the
// purge is RevokeAbandonAfter overdue (audited as
// connection.revoke_abandoned); it hands nothing to the disconnect hook.
// What still waits stops the purge before the tenant's key goes
// (ErrRevokePending).
//
// A sweep calls it too when it begins (retention.WithSweepStartHook;
// retention.SweepCutoff of CategoryRevocation tells it apart): then it
// tries, outside any transaction, the tenant's queued revokes that the
// sweep is about to erase (queued at or before the sweep's cutoff),
// whatever their schedule, and gives up one that fails once it was queued
// RevokeAbandonAfter ago; it hands nothing to the disconnect hook. What
// still waits stops the tenant's sweep (ErrRevokePending).
func (s *Store) RetryRevocations(ctx context.Context) (int, error) {
	_, purge := retention.PurgeDue(ctx)
	cutoff, sweep := retention.SweepCutoff(ctx, CategoryRevocation)
	sweep = sweep && !purge
	if !purge && !sweep {
		if _, err := s.retryHandOvers(ctx); err != nil {
			return 0, fmt.Errorf("social: retry revocations: %w", err)
		}
	}
	if !sweep {
		if err := s.warnUnretried(ctx); err != nil {
			return 0, fmt.Errorf("social: retry revocations: %w", err)
		}
	}
	if len(s.providers) == 0 {
		return 0, nil
	}
	keyed := false
	platforms := make([]string, 0, len(s.providers))
	for name := range s.providers {
		platforms = append(platforms, name)
	}
	done := 0
	after := ""
	for {
		var due []revocation
		now := s.clock()
		err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
			q := tx.NewSelect().Model(&due).Where("platform IN (?)", bun.In(platforms)).
				Where("claimed_until IS NULL OR claimed_until <= ?", now).Limit(100)
			if sweep {
				// Those the sweep erases, whatever their schedule, once.
				q = q.Where("created_at <= ?", cutoff)
			}
			if purge || sweep {
				// Every one, whatever its schedule, once.
				return q.Where("id > ?", after).Order("id").Scan(ctx)
			}
			return q.Where("next_at <= ?", now).Order("next_at").Scan(ctx)
		})
		if err != nil {
			return done, fmt.Errorf("social: retry revocations: %w", err)
		}
		if len(due) > 0 && !keyed {
			// The tenant's key, opened once for the tokens (a sweep of a
			// tenant with nothing queued leaves its key as it is).
			if _, err := s.vault.EnsureKey(ctx); err != nil {
				return done, fmt.Errorf("social: retry revocations: %w", err)
			}
			keyed = true
		}
		for _, r := range due {
			ok, err := s.retryRevocation(ctx, r)
			if err != nil {
				return done, fmt.Errorf("social: retry revocations: %w", err)
			}
			if ok {
				done++
			}
		}
		if !purge && !sweep || len(due) < 100 {
			return done, nil
		}
		after = due[len(due)-1].ID
	}
}

// warnUnretried logs, per platform, the context tenant's queued revokes
// that no provider registered here can make.
func (s *Store) warnUnretried(ctx context.Context) error {
	var rows []struct {
		Platform string `bun:"platform"`
		N        int    `bun:"n"`
	}
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		q := tx.NewSelect().Model((*revocation)(nil)).ColumnExpr("platform, count(*) AS n").Group("platform")
		if len(s.providers) > 0 {
			platforms := make([]string, 0, len(s.providers))
			for name := range s.providers {
				platforms = append(platforms, name)
			}
			q = q.Where("platform NOT IN (?)", bun.In(platforms))
		}
		return q.Scan(ctx, &rows)
	})
	for _, r := range rows {
		s.log.WarnContext(ctx, "social: queued revokes not retried: no provider registered for their platform (WithProviders)",
			"platform", r.Platform, "queued", r.N)
	}
	return err
}

// retryRevocation claims r, revokes its tokens and records the outcome.
// It reports whether the platform revoked them.
func (s *Store) retryRevocation(ctx context.Context, r revocation) (bool, error) {
	return s.claimAndRevoke(ctx, s.providers[r.Platform], r)
}

// claimAndRevoke claims r for RevocationLease, unless another process
// holds it or it is not due (in a tenant purge, or a sweep that erases
// r, whatever its schedule),
// revokes its tokens through p and records the outcome, even when ctx is
// cancelled meanwhile. It reports whether the platform revoked them.
//
// Tokens the platform rotated on the way (a provider that refreshes to
// revoke, Tokens.Rotated) are sealed into r's row, under the claim,
// before the provider uses them: a process killed between the platform's
// refresh and its revoke leaves the live tokens queued, not the spent
// ones. In a tenant purge, or in a sweep that erases r (swept), a revoke
// that fails past RevokeAbandonAfter is given up
// (connection.revoke_abandoned) and leaves the queue.
func (s *Store) claimAndRevoke(ctx context.Context, p Provider, r revocation) (bool, error) {
	now := s.clock()
	lease := now.Add(RevocationLease)
	_, purge := retention.PurgeDue(ctx)
	settle := purge || swept(ctx, r)
	claimed := false
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		q := tx.NewUpdate().Model((*revocation)(nil)).Set("claimed_until = ?", lease).
			Where("id = ?", r.ID).Where("claimed_until IS NULL OR claimed_until <= ?", now)
		if !settle {
			q = q.Where("next_at <= ?", now)
		}
		res, err := q.Exec(ctx)
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
	t, rerr := s.openTokens(ctx, r.AccessToken, r.RefreshToken, r.ID)
	t.AccessExpiry = r.AccessExpiry
	if rerr == nil {
		t.Rotated = func(ctx context.Context, rot Tokens) error { return s.saveRotatedRevocation(ctx, r, lease, rot) }
		rerr = p.Revoke(ctx, t)
		t.Wipe()
	}
	// The platform's answer is recorded even if the caller went away.
	ctx = context.WithoutCancel(ctx)
	meta := map[string]string{"platform": r.Platform, "attempts": fmt.Sprint(r.Attempts + 1)}
	action := "connection.revoked"
	if tokenDead(rerr) {
		meta["revoke"], rerr = revokeTokenInvalid, nil
	}
	if rerr != nil && settle {
		if reason, ok := abandonReason(ctx, r, s.clock()); ok {
			s.log.WarnContext(ctx, "social: queued revoke abandoned", "connection", r.ConnectionID, "error", rerr)
			action, meta["reason"], rerr = "connection.revoke_abandoned", reason, nil
		}
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
				Action: action, Target: "connection:" + r.ConnectionID, Metadata: meta,
			})
		}
		s.log.WarnContext(ctx, "social: revoke failed; queued for retry", "connection", r.ConnectionID, "error", rerr)
		r.Attempts++
		r.LastError, r.NextAt, r.ClaimedUntil = rerr.Error(), s.clock().Add(retryDelay(r.Attempts)), time.Time{}
		cols, err := s.keepRotated(ctx, &r, rerr, "attempts", "last_error", "next_at", "claimed_until")
		if err != nil {
			return err
		}
		_, err = tx.NewUpdate().Model(&r).Column(cols...).WherePK().Where("claimed_until = ?", lease).Exec(ctx)
		return err
	})
	return rerr == nil && action == "connection.revoked" && err == nil, err
}

// swept reports whether the queued revoke r is one the running sweep
// erases (retention.SweepCutoff of CategoryRevocation at or after its
// queueing): the sweep's start hook makes it whatever its schedule.
func swept(ctx context.Context, r revocation) bool {
	cutoff, ok := retention.SweepCutoff(ctx, CategoryRevocation)
	return ok && !r.CreatedAt.After(cutoff)
}

// saveRotatedRevocation seals rot, the tokens the platform rotated while
// revoking the queued r (claimed until lease), into r's row in place of
// its spent ones, in a transaction of its own that runs even if ctx is
// cancelled (the platform has rotated them). It does not wipe rot, which
// the provider goes on to revoke with.
func (s *Store) saveRotatedRevocation(ctx context.Context, r revocation, lease time.Time, rot Tokens) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RefreshTimeout)
	defer cancel()
	cols, err := s.sealInto(ctx, &r, rot)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model(&r).Column(cols...).WherePK().Where("claimed_until = ?", lease).Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("social: save rotated tokens of a queued revoke: the claim ran out")
		}
		return nil
	})
}

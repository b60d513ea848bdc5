package social

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/uptrace/bun"
	"golang.org/x/oauth2"

	"github.com/socialcrm/socialcrm/tenancy"
)

// errConflict means another writer changed the tokens between our read
// and our compare-and-swap; the caller reads again.
var errConflict = errors.New("social: token version changed")

// RefreshTimeout bounds a refresh: the exchange with the platform and
// the save of the tokens it returns run detached from the caller's
// cancellation (a refresh token the platform rotated must be stored once
// the platform has answered). The platform's answer is awaited at most
// RefreshTimeout, and the save always has at least RefreshTimeout of its
// own after it: an answer that arrives just before the platform's
// deadline is still stored.
const RefreshTimeout = 30 * time.Second

// liveToken is an opened access token with what decides when it is
// refreshed and which stored version it is.
type liveToken struct {
	tok     *oauth2.Token
	issued  time.Time
	version int64
}

func (l liveToken) copy() *oauth2.Token {
	t := *l.tok
	return &t
}

// noVersion asks for a token without a refused one to replace.
const noVersion = -1

// Token returns a valid access token of the connection, opened in memory
// only, refreshing it through p first when it expires within the refresh
// window (WithRefreshWindow). A refresh persists the rotated tokens with a
// compare-and-swap on the connection's token version, inside a transaction
// that holds the connection's row (SELECT … FOR UPDATE on PostgreSQL, the
// write lock on SQLite) while the platform is called, so two processes
// never spend the same single-use refresh token: the second one finds the
// tokens the first stored. The refresh and its save run detached from
// ctx's cancellation, under RefreshTimeout: once the platform has rotated
// the refresh token, the new one is stored even if the caller went away.
// The tenant's data key is loaded before the transaction begins, so a
// refresh holds one database connection at a time. A refresh token the
// platform refuses marks the connection needs_reauth and fails with
// ErrNeedsReauth.
//
// A process killed (SIGKILL, a crash) while it holds the row releases it
// with its database connection, and the next caller refreshes. One killed
// after the platform rotated the refresh token and before the save loses
// the rotated token with its answer: on a platform whose old refresh token
// stops working (TikTok's single-use rotation), the next refresh is
// refused and the connection becomes needs_reauth. Nothing on this side
// can store a token it never received; the window is the platform's round
// trip plus the save. A save that fails once the platform answered (the
// database connection dropped, the commit failed) is made again, in new
// transactions under the same compare-and-swap, before the refresh
// gives up. If a disconnect or an erasure took the connection before that
// save (its revoke went through the spent tokens), the rotated ones are
// queued for revocation and revoked as Disconnect revokes, audited as
// connection.revoked with reason "refreshed while disconnected"; if a
// refresh through the spent refresh token was refused meanwhile and
// marked the connection needs_reauth, they are saved and the connection
// is active again (connection.reauthorized).
func (s *Store) Token(ctx context.Context, id string, p Provider) (*oauth2.Token, error) {
	if err := noClient(ctx); err != nil {
		return nil, err
	}
	lt, err := s.token(ctx, id, p, noVersion)
	if err != nil {
		return nil, err
	}
	return lt.tok, nil
}

// token returns a fresh token of the connection. With refused at or above
// zero, the token of that version was refused by the platform: a newer
// stored token is returned as it is, and the same one is replaced by a
// refresh whatever its expiry, or marks the connection needs_reauth when
// it cannot be refreshed.
func (s *Store) token(ctx context.Context, id string, p Provider, refused int64) (liveToken, error) {
	c, err := s.Get(ctx, id)
	if err != nil {
		return liveToken{}, err
	}
	if err := usable(c); err != nil {
		return liveToken{}, err
	}
	if refused < 0 && s.fresh(c.TokenIssuedAt, c.TokenExpiry) || refused >= 0 && c.TokenVersion != refused {
		return s.openAccess(ctx, c)
	}
	if err := ctx.Err(); err != nil {
		return liveToken{}, err
	}
	// Load the tenant's data key now: inside the transaction a cold key
	// cache would take a second database connection while holding one.
	if _, err := s.vault.EnsureKey(ctx); err != nil {
		return liveToken{}, fmt.Errorf("social: refresh: %w", err)
	}
	dctx := context.WithoutCancel(ctx)
	for range 3 {
		lt, err := s.refresh(dctx, id, p, refused)
		if errors.Is(err, errConflict) {
			continue
		}
		return lt, err
	}
	return liveToken{}, fmt.Errorf("social: refresh: %w", errConflict)
}

func usable(c Connection) error {
	switch c.Status {
	case StatusActive:
		return nil
	case StatusRevoked:
		return fmt.Errorf("%w: %s", ErrRevoked, c.ID)
	default:
		return fmt.Errorf("%w: %s", ErrNeedsReauth, c.ID)
	}
}

// window is how long before expiry a token issued at issued is refreshed:
// the configured window, but at most half the token's lifetime, so that a
// short-lived token is not refreshed at every call.
func (s *Store) window(issued, expiry time.Time) time.Duration {
	w := s.refreshWindow
	if !issued.IsZero() && expiry.After(issued) {
		w = min(w, expiry.Sub(issued)/2)
	}
	return w
}

// fresh reports whether a token issued at issued and expiring at expiry
// stays valid beyond the refresh window.
func (s *Store) fresh(issued, expiry time.Time) bool {
	return expiry.IsZero() || s.clock().Add(s.window(issued, expiry)).Before(expiry)
}

func (s *Store) openAccess(ctx context.Context, c Connection) (liveToken, error) {
	sec, err := s.vault.Open(ctx, c.AccessToken, binding(c.ID, "access_token"))
	if err != nil {
		return liveToken{}, fmt.Errorf("social: open access token: %w", err)
	}
	tok := &oauth2.Token{AccessToken: string(sec.Reveal()), TokenType: "Bearer", Expiry: c.TokenExpiry}
	sec.Wipe()
	return liveToken{tok: tok, issued: c.TokenIssuedAt, version: c.TokenVersion}, nil
}

func (s *Store) refresh(ctx context.Context, id string, p Provider, refusedVersion int64) (liveToken, error) {
	var lt liveToken
	var refused error
	// rotated holds the connection with the sealed tokens the platform
	// returned, from the moment it answered, and prev the version they
	// replace: if the transaction then fails, they are saved again.
	var rotated *Connection
	var prev int64
	// The transaction may wait for another process's refresh (the row
	// lock), ask the platform, and save: the platform is given at most
	// RefreshTimeout and never the last RefreshTimeout, which is the
	// save's.
	ctx, cancel := context.WithTimeout(ctx, 3*RefreshTimeout)
	defer cancel()
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		c, err := get(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if err := usable(c); err != nil {
			return err
		}
		if refusedVersion < 0 && s.fresh(c.TokenIssuedAt, c.TokenExpiry) || refusedVersion >= 0 && c.TokenVersion != refusedVersion {
			// another process refreshed while we waited
			lt, err = s.openAccess(ctx, c)
			return err
		}
		now := s.clock()
		if c.RefreshToken.IsZero() || !c.RefreshExpiry.IsZero() && !now.Before(c.RefreshExpiry) {
			reason := "refresh_token_expired"
			if refusedVersion >= 0 {
				reason = "access_token_invalid"
			}
			refused = fmt.Errorf("%w: %s: %s", ErrNeedsReauth, id, strings.ReplaceAll(reason, "_", " "))
			return s.markNeedsReauth(ctx, tx, id, reason)
		}
		rt, err := s.vault.Open(ctx, c.RefreshToken, binding(c.ID, "refresh_token"))
		if err != nil {
			return fmt.Errorf("social: open refresh token: %w", err)
		}
		end := time.Now().Add(RefreshTimeout)
		if dl, ok := ctx.Deadline(); ok && dl.Add(-RefreshTimeout).Before(end) {
			end = dl.Add(-RefreshTimeout)
		}
		pctx, pcancel := context.WithDeadline(ctx, end)
		g, err := p.Refresh(pctx, rt)
		pcancel()
		rt.Wipe()
		if errors.Is(err, ErrInvalidGrant) {
			refused = fmt.Errorf("%w: %w", ErrNeedsReauth, err)
			return s.markNeedsReauth(ctx, tx, id, "invalid_grant")
		}
		if err != nil {
			return err
		}
		defer g.Wipe()
		prev = c.TokenVersion
		c.TokenVersion++
		c.UpdatedAt = now
		if err := s.sealGrant(ctx, &c, g, now); err != nil {
			return err
		}
		if len(g.Scopes) > 0 {
			c.Scopes = g.Scopes.Intersect(c.Requested)
		}
		lt = liveToken{
			tok:    &oauth2.Token{AccessToken: string(g.AccessToken.Reveal()), TokenType: "Bearer", Expiry: c.TokenExpiry},
			issued: c.TokenIssuedAt, version: c.TokenVersion,
		}
		saved := c
		rotated = &saved
		res, err := tx.NewUpdate().Model(&c).
			Column("access_token", "refresh_token", "token_expiry", "token_issued_at", "refresh_expiry", "token_version", "scopes", "updated_at").
			WherePK().Where("token_version = ?", prev).Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errConflict
		}
		return nil
	})
	if err != nil && rotated != nil && !errors.Is(err, errConflict) {
		// The platform rotated the tokens and the transaction failed after
		// its answer (the database connection dropped, the commit
		// failed): save them in a new one, still only over the version
		// they replace.
		for i, wait := range []time.Duration{0, 100 * time.Millisecond, time.Second} {
			if i > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
			}
			serr := s.saveRotated(ctx, *rotated, prev)
			if serr == nil || errors.Is(serr, errConflict) {
				err = serr
				break
			}
			err = errors.Join(err, serr)
		}
	}
	if errors.Is(err, errConflict) && rotated != nil {
		// The platform rotated the tokens, and a disconnect or an erasure
		// took the connection between its answer and the save: the
		// tokens it queued for revocation are the spent ones, these are
		// the grant's live ones. Revoke them as it would have.
		if rerr := s.revokeOrphaned(ctx, *rotated, p); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	if err != nil {
		lt = liveToken{}
	}
	if err == nil && refused != nil {
		return liveToken{}, refused
	}
	if err != nil && !errors.Is(err, errConflict) && !errors.Is(err, ErrNotFound) &&
		!errors.Is(err, ErrRevoked) && !errors.Is(err, ErrNeedsReauth) {
		err = fmt.Errorf("social: refresh: %w", err)
	}
	return lt, err
}

// saveRotated stores the tokens sealed in c over the version prev, in a
// transaction of its own: errConflict when the stored tokens changed
// meanwhile, or the connection is gone or revoked. A connection marked
// needs_reauth at version prev meanwhile is active again with them: a
// refresh that went through the refresh token these tokens replace was
// refused because the platform had rotated it for these (audited as
// connection.reauthorized, reason "rotated tokens saved").
func (s *Store) saveRotated(ctx context.Context, c Connection, prev int64) error {
	return s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		cur, err := get(ctx, tx, c.ID, true)
		if errors.Is(err, ErrNotFound) {
			return errConflict
		}
		if err != nil {
			return err
		}
		if cur.TokenVersion != prev || cur.Status != StatusActive && cur.Status != StatusNeedsReauth {
			return errConflict
		}
		c.Status = StatusActive
		res, err := tx.NewUpdate().Model(&c).
			Column("access_token", "refresh_token", "token_expiry", "token_issued_at", "refresh_expiry", "token_version", "scopes", "updated_at", "status").
			WherePK().Where("token_version = ?", prev).Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errConflict
		}
		if cur.Status == StatusActive {
			return nil
		}
		s.log.InfoContext(ctx, "social: connection active again: the rotated tokens of a refresh were saved", "connection", c.ID)
		return s.audit(ctx, tx, tenancy.AuditEvent{Action: "connection.reauthorized", Target: "connection:" + c.ID,
			Metadata: map[string]string{"platform": c.Platform, "reason": "rotated tokens saved"}})
	})
}

// TokenSource returns an oauth2.TokenSource for the connection: each Token
// call returns the cached token while it is fresh and otherwise goes
// through Store.Token. oauth2.TokenSource has no context parameter, so the
// source keeps ctx (which carries the tenant) for its calls; build one per
// request or job.
func (s *Store) TokenSource(ctx context.Context, id string, p Provider) oauth2.TokenSource {
	return &tokenSource{ctx: ctx, s: s, id: id, p: p}
}

type tokenSource struct {
	ctx context.Context
	s   *Store
	id  string
	p   Provider

	mu  sync.Mutex
	tok *liveToken
}

func (ts *tokenSource) Token() (*oauth2.Token, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.tok != nil && ts.s.fresh(ts.tok.issued, ts.tok.tok.Expiry) {
		return ts.tok.copy(), nil
	}
	lt, err := ts.s.token(ts.ctx, ts.id, ts.p, noVersion)
	if err != nil {
		ts.tok = nil
		return nil, err
	}
	ts.tok = &lt
	return lt.copy(), nil
}

// Session is what a typed platform client needs from a connection: its
// granted scopes, its tokens, and a way to report tokens the platform
// refused. Get one with Store.Session; it is safe for concurrent use.
type Session struct {
	store *Store
	p     Provider
	conn  Connection

	mu  sync.Mutex
	tok *liveToken
	// used is the version of the last token handed out, the one a
	// refusal is about.
	used int64
}

// Session returns a session on the active connection id, for p's platform.
func (s *Store) Session(ctx context.Context, id string, p Provider) (*Session, error) {
	if err := noClient(ctx); err != nil {
		return nil, err
	}
	c, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := usable(c); err != nil {
		return nil, err
	}
	if p == nil || c.Platform != p.Platform() {
		return nil, fmt.Errorf("%w: Session: provider does not match the connection's platform", ErrConfig)
	}
	return &Session{store: s, p: p, conn: c, used: c.TokenVersion}, nil
}

// Connection returns the connection as loaded when the session began.
func (ss *Session) Connection() Connection { return ss.conn }

// Scopes returns the granted scopes.
func (ss *Session) Scopes() Scopes { return ss.conn.Scopes }

// Require returns a *ScopeError when the connection lacks any of need.
func (ss *Session) Require(need ...string) error { return Require(ss.conn.Scopes, need...) }

// Token returns a fresh access token (see Store.Token).
func (ss *Session) Token(ctx context.Context) (*oauth2.Token, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.tok == nil || !ss.store.fresh(ss.tok.issued, ss.tok.tok.Expiry) {
		lt, err := ss.store.token(ctx, ss.conn.ID, ss.p, noVersion)
		if err != nil {
			return nil, err
		}
		ss.tok = &lt
	}
	ss.used = ss.tok.version
	return ss.tok.copy(), nil
}

// Audit appends action to the tenant's audit log with the connection as
// target, for what a client does on the user's instruction (publishing).
func (ss *Session) Audit(ctx context.Context, action string, meta map[string]string) error {
	m := map[string]string{"platform": ss.conn.Platform}
	for k, v := range meta {
		m[k] = v
	}
	return ss.store.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return ss.store.audit(ctx, tx, tenancy.AuditEvent{Action: action, Target: "connection:" + ss.conn.ID, Metadata: m})
	})
}

// Refused handles the platform's answer that the access token is
// invalid. A token refused while another process stored a newer one, or
// one that a refresh replaces, does not end the connection: Refused then
// returns an error wrapping ErrTokenRenewed, and the caller sends the
// refused request again, once, with a new Token (the platform processed
// nothing). Otherwise the connection becomes needs_reauth (audited) and
// the error wraps ErrNeedsReauth and cause.
func (ss *Session) Refused(ctx context.Context, cause error) error {
	ss.mu.Lock()
	used := ss.used
	ss.tok = nil
	ss.mu.Unlock()
	lt, err := ss.store.token(ctx, ss.conn.ID, ss.p, used)
	if err == nil {
		ss.mu.Lock()
		ss.tok = &lt
		ss.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrTokenRenewed, cause)
	}
	if errors.Is(err, ErrNeedsReauth) || errors.Is(err, ErrRevoked) {
		return fmt.Errorf("%w: %w", err, cause)
	}
	// The token could not be renewed now (the platform or the database
	// failed): the connection stays as it is.
	return errors.Join(cause, err)
}

// Removed records that the platform answered that the user removed the
// app (Meta's 190/458), as AccountRemoved does for a notice: the
// connection the session's descends from through parent links (the
// Facebook user's behind a Page's), and every connection derived from
// that one, have their tokens deleted, are marked revoked with reason
// "app_removed", audited as connection.deauthorized and handed to the
// disconnect hook. It returns an error wrapping ErrRevoked and cause.
func (ss *Session) Removed(ctx context.Context, cause error) error {
	ss.mu.Lock()
	ss.tok = nil
	ss.mu.Unlock()
	root := ss.conn
	for range maxDerivedDepth {
		if root.ParentID == "" {
			break
		}
		parent, err := ss.store.Get(ctx, root.ParentID)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return errors.Join(fmt.Errorf("%w: %w", ErrRevoked, cause), err)
		}
		root = parent
	}
	derived, c, done, err := ss.store.revokeTree(ctx, root.ID, nil, "connection.deauthorized", "app_removed", 0, nil)
	if err == nil {
		err = ss.store.handOver(ctx, derived, c, done)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("%w: %w", ErrRevoked, cause), err)
	}
	return fmt.Errorf("%w: %w", ErrRevoked, cause)
}

// ConnectDerived stores grant as a connection derived from the session's:
// an account the connected user manages and the platform issues its own
// token for (a Facebook Page behind a Facebook user). The new connection
// has the session's platform, requested scopes and purposes; its granted
// scopes are grant.Scopes within those requested, and its ParentID is the
// session's connection, so that disconnecting or deauthorizing that one
// disconnects it too. Connecting the same account again replaces its
// tokens (and its parent). It is audited as connection.connected.
func (ss *Session) ConnectDerived(ctx context.Context, grant *Grant) (Connection, error) {
	if grant == nil {
		return Connection{}, fmt.Errorf("%w: ConnectDerived: nil grant", ErrConfig)
	}
	if grant.AccountID == ss.conn.AccountID {
		return Connection{}, fmt.Errorf("%w: ConnectDerived: the account is the session's own", ErrConfig)
	}
	return ss.store.connect(ctx, ss.conn.Platform, ss.conn.Requested, ss.conn.Purposes, grant, ss.conn.ID, ss.conn.MemberID)
}

// revokeOrphaned handles tokens the platform rotated (sealed in c) whose
// save lost to a writer that took the connection away
// meanwhile: when the connection is gone (erased) or revoked, they are
// queued for revocation (sealed apart, due at once) and revoked through
// p, as Disconnect does; a connection still live keeps whatever tokens
// its winner stored, and these are dropped (another refresh replaced
// them, so the platform rotated them away).
func (s *Store) revokeOrphaned(ctx context.Context, c Connection, p Provider) error {
	var q *revocation
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		cur, err := get(ctx, tx, c.ID, true)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return err
		case cur.Status != StatusRevoked:
			return nil
		}
		t, err := s.openTokens(ctx, c.AccessToken, c.RefreshToken, c.ID)
		if err != nil {
			return err
		}
		q, err = s.queueRevocation(ctx, c, t, s.clock())
		t.Wipe()
		if err != nil {
			return err
		}
		if _, err := tx.NewInsert().Model(q).Exec(ctx); err != nil {
			return err
		}
		s.log.WarnContext(ctx, "social: refreshed tokens of a connection taken away meanwhile; queued for revocation", "connection", c.ID)
		return s.audit(ctx, tx, tenancy.AuditEvent{Action: "connection.revoked", Target: "connection:" + c.ID,
			Metadata: map[string]string{"platform": c.Platform, "revoke": "queued", "reason": "refreshed while disconnected"}})
	})
	if err != nil || q == nil {
		return err
	}
	if _, err := s.claimAndRevoke(ctx, p, *q); err != nil {
		s.log.WarnContext(ctx, "social: revoke of orphaned tokens not recorded; left queued", "connection", c.ID, "error", err)
	}
	return nil
}

package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// Session lifetimes: access tokens are short-lived, signed, and
// honoured only while their session is live (one primary-key read per
// request: sign-out and tenant closure end them at once); refresh tokens
// rotate on every use, and presenting a spent one revokes the whole session
// (a stolen token is detected).
const (
	accessTTL    = 15 * time.Minute
	sessionTTL   = 30 * 24 * time.Hour
	refreshGrace = 30 * time.Second
)

// tableSessions is the example server's own tenant-owned table.
const tableSessions = "example_sessions"

// session is a sign-in: one refresh-token family. Only the SHA-256 of the
// current refresh token is stored.
type session struct {
	bun.BaseModel `bun:"table:example_sessions,alias:es"`
	tenancy.Owned

	ID          string       `bun:"id,pk"`
	MemberID    string       `bun:"member_id,notnull"`
	Role        tenancy.Role `bun:"role,notnull"`
	RefreshHash string       `bun:"refresh_hash,notnull"`
	// PrevHash is the refresh token spent last, at RotatedAt: presented
	// again within refreshGrace it is a race between two requests of one
	// client (two browser tabs), refused without ending the session.
	PrevHash  string    `bun:"prev_hash,notnull"`
	RotatedAt time.Time `bun:"rotated_at,nullzero"`
	Rotations int       `bun:"rotations,notnull"`
	// UserAgent is empty: start no longer keeps the client's user agent.
	UserAgent string     `bun:"user_agent,notnull"`
	CreatedAt time.Time  `bun:"created_at,notnull"`
	ExpiresAt time.Time  `bun:"expires_at,notnull"`
	RevokedAt *time.Time `bun:"revoked_at"`
}

// sessionCategory declares the sessions table to the retention engine:
// sessions go 30 days after sign-in (they have expired by then).
func sessionCategory() retention.Category {
	return retention.Category{
		Name: "example.session", Table: tableSessions, Time: "created_at",
		Subject:    map[string]string{"member_id": "member_id"},
		Omit:       []string{"refresh_hash", "prev_hash"},
		LegalBasis: "contract; security of processing (GDPR art. 32)",
		Purpose:    "sign-in sessions of the console and API (refresh-token families)",
	}
}

func sessionRule() retention.Rule {
	return retention.Rule{Category: "example.session", Period: sessionTTL, Note: "a session lives at most 30 days"}
}

// grantSessions gives the application role of app what it needs on the
// server's own tables, as owner (socialcrm.Grant covers only socialcrm's
// tables).
func grantSessions(ctx context.Context, owner, app *bun.DB) error {
	if app.Dialect().Name() != dialect.PG {
		return nil
	}
	var role string
	if err := app.NewRaw("SELECT current_user").Scan(ctx, &role); err != nil {
		return fmt.Errorf("grant %s: %w", tableSessions, err)
	}
	// Under socialcrm's grant lock, one replica after the other.
	return owner.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", grantLockKey); err != nil {
			return fmt.Errorf("grant: lock: %w", err)
		}
		for table, privs := range map[string]string{tableSessions: "SELECT, INSERT, UPDATE, DELETE",
			tableLoginAttempts: "SELECT, INSERT, UPDATE, DELETE", tableServerKeys: "SELECT, INSERT",
			tablePublishes: "SELECT, INSERT, UPDATE, DELETE", tableFormKeys: "SELECT, INSERT, UPDATE, DELETE",
			tableSignupKeys: "SELECT, INSERT, UPDATE, DELETE"} {
			if _, err := tx.ExecContext(ctx, "GRANT "+privs+" ON ? TO ?", bun.Ident(table), bun.Ident(role)); err != nil {
				return fmt.Errorf("grant %s: %w", table, err)
			}
		}
		return nil
	})
}

// tableServerKeys holds the keys every replica of the server shares, each
// sealed by the key-encryption key (which every replica has).
const tableServerKeys = "example_server_keys"

// sharedKey returns the 32-byte key named name that every replica on db
// shares: the first replica to ask draws it and stores it sealed by kek
// (so that the database alone does not give it away), the others read
// it. A key drawn by each process (SOCIALCRM_SESSION_KEY unset) would
// make what it keys differ from one replica to the next.
func sharedKey(ctx context.Context, db *bun.DB, kek tink.AEAD, name string) ([]byte, error) {
	ad := []byte("socialcrm example server|" + name)
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	sealed, err := kek.Encrypt(fresh, ad)
	if err != nil {
		return nil, fmt.Errorf("shared key %s: %w", name, err)
	}
	if _, err := db.NewRaw("INSERT INTO ? (name, sealed) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
		bun.Ident(tableServerKeys), name, base64.StdEncoding.EncodeToString(sealed)).Exec(ctx); err != nil {
		return nil, fmt.Errorf("shared key %s: %w", name, err)
	}
	var stored string
	if err := db.NewRaw("SELECT sealed FROM ? WHERE name = ?", bun.Ident(tableServerKeys), name).Scan(ctx, &stored); err != nil {
		return nil, fmt.Errorf("shared key %s: %w", name, err)
	}
	ct, err := base64.StdEncoding.DecodeString(stored)
	if err != nil {
		return nil, fmt.Errorf("shared key %s: %w", name, err)
	}
	key, err := kek.Decrypt(ct, ad)
	if err != nil {
		return nil, fmt.Errorf("shared key %s: sealed by another key-encryption key: %w", name, err)
	}
	return key, nil
}

// keyedHash is HMAC-SHA256 under key, for values kept in the database
// that must not give themselves away (a client's address).
func keyedHash(key []byte) func(string) string {
	return func(s string) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(s))
		return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
}

// serverMigrations are the server's own tables, applied by
// socialcrm.Migrate with socialcrm's migrations, under the same lock and
// history: replicas that start together create them once. The sessions
// table has row-level security on PostgreSQL like every tenant-owned
// table.
func serverMigrations() *migrate.Migrations {
	ms := migrate.NewMigrations()
	ms.Add(migrate.Migration{Name: "29990101000100", Comment: "example server: sessions",
		Up: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
			db := m.DB()
			if _, err := db.NewCreateTable().Model((*session)(nil)).IfNotExists().Exec(ctx); err != nil {
				return fmt.Errorf("create %s: %w", tableSessions, err)
			}
			if _, err := db.NewCreateIndex().Model((*session)(nil)).Index("example_sessions_tenant_member").
				Column("tenant_id", "member_id").IfNotExists().Exec(ctx); err != nil {
				return fmt.Errorf("index %s: %w", tableSessions, err)
			}
			return tenancy.EnableRowSecurity(ctx, db, tableSessions)
		}})
	ms.Add(migrate.Migration{Name: "20261208060000", Comment: "example server: keys shared by the replicas",
		Up: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
			_, err := m.DB().ExecContext(ctx, "CREATE TABLE IF NOT EXISTS ? (name TEXT PRIMARY KEY, sealed TEXT NOT NULL)", bun.Ident(tableServerKeys))
			return err
		}})
	ms.Add(migrate.Migration{Name: "20261209070000", Comment: "example server: TikTok publishes by idempotency key",
		Up: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
			return migratePublishes(ctx, m.DB())
		}})
	ms.Add(migrate.Migration{Name: "20261212050000", Comment: "example server: leases of TikTok publishes being sent",
		Up: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
			return migratePublishLeases(ctx, m.DB())
		}})
	ms.Add(migrate.Migration{Name: "20261213050100", Comment: "example server: beats of TikTok publish leases",
		Up: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
			return migratePublishBeats(ctx, m.DB())
		}})
	ms.Add(migrate.Migration{Name: "20261213060000", Comment: "example server: one-time keys of console forms",
		Up: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
			return migrateFormKeys(ctx, m.DB())
		}})
	ms.Add(migrate.Migration{Name: "20261214040000", Comment: "example server: one-time keys of the sign-up form",
		Up: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
			return migrateSignupKeys(ctx, m.DB())
		}})
	ms.Add(migrate.Migration{Name: "20261214090000", Comment: "example server: states of console form keys (pending, done)",
		Up: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
			return migrateFormKeyStates(ctx, m.DB())
		}})
	ms.Add(migrate.Migration{Name: "29990101000200", Comment: "example server: login attempts",
		Up: func(ctx context.Context, m *migrate.Migrator, _ *migrate.Migration) error {
			_, err := m.DB().ExecContext(ctx, "CREATE TABLE IF NOT EXISTS ? (key_hash TEXT NOT NULL, window_start TIMESTAMP NOT NULL, "+
				"attempts INTEGER NOT NULL, PRIMARY KEY (key_hash, window_start))", bun.Ident(tableLoginAttempts))
			return err
		}})
	return ms
}

// tokens issues and checks access and refresh tokens.
type tokens struct {
	db  *bun.DB
	key []byte // HMAC key of access tokens
	now func() time.Time
}

type accessClaims struct {
	Tenant  string       `json:"t"`
	Member  string       `json:"m"`
	Role    tenancy.Role `json:"r"`
	Session string       `json:"s"`
	Expires int64        `json:"e"`
}

// pair is what sign-in and refresh return.
type pair struct {
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type"`
	ExpiresIn    int       `json:"expires_in"`
	ExpiresAt    time.Time `json:"expires_at"`
	RefreshToken string    `json:"refresh_token"`
}

func (t *tokens) mac(data string) string {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(data))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func (t *tokens) access(s session) (string, time.Time) {
	exp := t.now().Add(accessTTL)
	c, _ := json.Marshal(accessClaims{Tenant: s.TenantID, Member: s.MemberID, Role: s.Role, Session: s.ID, Expires: exp.Unix()})
	body := "at1." + base64.RawURLEncoding.EncodeToString(c)
	return body + "." + t.mac(body), exp
}

// verifyAccess checks an access token's signature and expiry.
func (t *tokens) verifyAccess(tok string) (accessClaims, bool) {
	i := strings.LastIndexByte(tok, '.')
	if !strings.HasPrefix(tok, "at1.") || i < 0 {
		return accessClaims{}, false
	}
	if subtle.ConstantTimeCompare([]byte(t.mac(tok[:i])), []byte(tok[i+1:])) != 1 {
		return accessClaims{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok[4:i])
	if err != nil {
		return accessClaims{}, false
	}
	var c accessClaims
	if json.Unmarshal(raw, &c) != nil || t.now().Unix() >= c.Expires || tenancy.ValidateID(c.Tenant) != nil {
		return accessClaims{}, false
	}
	return c, true
}

func (c accessClaims) principal() tenancy.Principal {
	return tenancy.Principal{TenantID: c.Tenant, MemberID: c.Member, Role: c.Role}
}

// start opens a session for a signed-in member. The client's user agent
// is not kept (UserAgent stays empty): nothing reads it, and it is
// personal data; sessions stored before kept theirs until they are swept,
// 30 days after sign-in.
func (t *tokens) start(ctx context.Context, p tenancy.Principal, _ string) (pair, error) {
	now := t.now()
	s := session{ID: tenancy.NewID(), MemberID: p.MemberID, Role: p.Role,
		CreatedAt: now, ExpiresAt: now.Add(sessionTTL)}
	refresh := refreshToken(p.TenantID, s.ID)
	s.RefreshHash = sha(refresh)
	ctx = tenancy.WithPrincipal(ctx, p)
	if err := tenancy.RunInTx(ctx, t.db, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewInsert().Model(&s).Exec(ctx)
		return err
	}); err != nil {
		return pair{}, err
	}
	s.TenantID = p.TenantID
	return t.pair(s, refresh), nil
}

func refreshToken(tenantID, sessionID string) string {
	return "rt1." + tenantID + "." + sessionID + "." + randomToken()
}

func (t *tokens) pair(s session, refresh string) pair {
	at, exp := t.access(s)
	return pair{AccessToken: at, TokenType: "Bearer", ExpiresIn: int(accessTTL / time.Second), ExpiresAt: exp, RefreshToken: refresh}
}

var errSpentRefresh = errors.New("refresh token reused; session revoked")

// refresh rotates a refresh token: the presented one is spent, a new pair is
// returned. A spent, unknown or expired token is ErrInvalidCredentials; a
// spent one of a live session also revokes the session (reuse detection).
func (t *tokens) refresh(ctx context.Context, presented string) (pair, error) {
	parts := strings.Split(presented, ".")
	if len(parts) != 4 || parts[0] != "rt1" || tenancy.ValidateID(parts[1]) != nil || tenancy.ValidateID(parts[2]) != nil {
		return pair{}, tenancy.ErrInvalidCredentials
	}
	ctx = tenancy.WithPrincipal(ctx, tenancy.Principal{TenantID: parts[1]})
	now := t.now()
	next := refreshToken(parts[1], parts[2])
	var s session
	var reused bool
	err := tenancy.RunInTx(ctx, t.db, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*session)(nil)).
			Set("refresh_hash = ?", sha(next)).Set("prev_hash = ?", sha(presented)).Set("rotated_at = ?", now).
			Set("rotations = rotations + 1").
			Where("id = ?", parts[2]).Where("refresh_hash = ?", sha(presented)).
			Where("revoked_at IS NULL").Where("expires_at > ?", now).Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return tx.NewSelect().Model(&s).Where("id = ?", parts[2]).Scan(ctx)
		}
		// Not the current token of a live session: if the session exists,
		// someone replays a spent token — end the session, unless it is the
		// token spent a moment ago (two requests of one client racing).
		res, err = tx.NewUpdate().Model((*session)(nil)).Set("revoked_at = ?", now).
			Where("id = ?", parts[2]).Where("revoked_at IS NULL").
			WhereGroup(" AND ", func(q *bun.UpdateQuery) *bun.UpdateQuery {
				return q.Where("prev_hash <> ?", sha(presented)).WhereOr("rotated_at IS NULL").WhereOr("rotated_at < ?", now.Add(-refreshGrace))
			}).Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			reused = true
		}
		return nil
	})
	if err != nil {
		return pair{}, err
	}
	if s.ID == "" {
		if reused {
			return pair{}, fmt.Errorf("%w: %w", tenancy.ErrInvalidCredentials, errSpentRefresh)
		}
		return pair{}, tenancy.ErrInvalidCredentials
	}
	return t.pair(s, next), nil
}

// revoke ends the session of an access token's claims.
func (t *tokens) revoke(ctx context.Context, c accessClaims) error {
	ctx = tenancy.WithPrincipal(ctx, c.principal())
	return tenancy.RunInTx(ctx, t.db, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewUpdate().Model((*session)(nil)).Set("revoked_at = ?", t.now()).
			Where("id = ?", c.Session).Where("revoked_at IS NULL").Exec(ctx)
		return err
	})
}

// live reports whether the session behind an access token is still live:
// not revoked (sign-out, a replayed refresh token, the tenant's closure)
// and not expired. Every authenticated request asks, so that an access
// token dies with its session at once rather than up to accessTTL later;
// it is one read by primary key.
func (t *tokens) live(ctx context.Context, c accessClaims) (bool, error) {
	if tenancy.ValidateID(c.Session) != nil {
		return false, nil
	}
	ctx = tenancy.WithPrincipal(ctx, c.principal())
	var n int64
	err := tenancy.RunInTx(ctx, t.db, nil, func(ctx context.Context, tx bun.Tx) error {
		var ids []string
		err := tx.NewSelect().Model((*session)(nil)).Column("id").Where("id = ?", c.Session).
			Where("revoked_at IS NULL").Where("expires_at > ?", t.now()).Limit(1).Scan(ctx, &ids)
		n = int64(len(ids))
		return err
	})
	return n == 1, err
}

// sessionTenant returns the tenant of the session r's console cookies
// name, live or not: the refresh token's when it is its session's current
// or previous one, else the access token's when its signature holds
// (expired or not). It tells a form sent from an ended session what
// became of that session's organization; it signs nobody in.
func (t *tokens) sessionTenant(ctx context.Context, r *http.Request) (string, bool) {
	if c, err := r.Cookie(cookieRefresh); err == nil {
		parts := strings.Split(c.Value, ".")
		if len(parts) == 4 && parts[0] == "rt1" && tenancy.ValidateID(parts[1]) == nil && tenancy.ValidateID(parts[2]) == nil {
			ctx := tenancy.WithPrincipal(ctx, tenancy.Principal{TenantID: parts[1]})
			var ids []string
			err := tenancy.RunInTx(ctx, t.db, nil, func(ctx context.Context, tx bun.Tx) error {
				return tx.NewSelect().Model((*session)(nil)).Column("id").Where("id = ?", parts[2]).
					WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
						return q.Where("refresh_hash = ?", sha(c.Value)).WhereOr("prev_hash = ?", sha(c.Value))
					}).Limit(1).Scan(ctx, &ids)
			})
			if err == nil && len(ids) == 1 {
				return parts[1], true
			}
		}
	}
	if c, err := r.Cookie(cookieAccess); err == nil {
		i := strings.LastIndexByte(c.Value, '.')
		if !strings.HasPrefix(c.Value, "at1.") || i < 0 || subtle.ConstantTimeCompare([]byte(t.mac(c.Value[:i])), []byte(c.Value[i+1:])) != 1 {
			return "", false
		}
		raw, err := base64.RawURLEncoding.DecodeString(c.Value[4:i])
		var claims accessClaims
		if err != nil || json.Unmarshal(raw, &claims) != nil || tenancy.ValidateID(claims.Tenant) != nil {
			return "", false
		}
		return claims.Tenant, true
	}
	return "", false
}

// revokeTenant ends every live session of the context's tenant except keep
// (the session closing the tenant, which may still reopen it).
func (t *tokens) revokeTenant(ctx context.Context, keep string) error {
	return tenancy.RunInTx(ctx, t.db, nil, func(ctx context.Context, tx bun.Tx) error {
		q := tx.NewUpdate().Model((*session)(nil)).Set("revoked_at = ?", t.now()).Where("revoked_at IS NULL")
		if keep != "" {
			q = q.Where("id <> ?", keep)
		}
		_, err := q.Exec(ctx)
		return err
	})
}

// sessionKey is the context key of the request's session id.
type sessionKey struct{}

// withSession notes the request's session (none for an API key).
func withSession(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, sessionKey{}, id)
}

// sessionOf returns the request's session id, "" for an API key.
func sessionOf(ctx context.Context) string {
	id, _ := ctx.Value(sessionKey{}).(string)
	return id
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// tableLoginAttempts counts sign-in attempts per client address and
// window, shared by every replica on the database. It is not tenant-owned
// (an attempt precedes knowing the tenant): rows hold a keyed hash of the
// address, never the address, and live one window (the pruning job
// deletes older windows).
const tableLoginAttempts = "example_login_attempts"

// limiter is a fixed-window rate limiter per key (the client IP), counted
// in the database: at most n events per window across all replicas.
type limiter struct {
	db     *bun.DB
	n      int
	window time.Duration
	now    func() time.Time
	hash   func(key string) string // keyed, so that a row does not give the address away
}

func newLimiter(db *bun.DB, n int, window time.Duration, now func() time.Time, hash func(string) string) *limiter {
	return &limiter{db: db, n: n, window: window, now: now, hash: hash}
}

// allow records an event for key and reports whether it is within the
// limit. One statement: an upsert that returns the window's count.
func (l *limiter) allow(ctx context.Context, key string) (bool, error) {
	if l.n <= 0 {
		return true, nil
	}
	start := l.now().UTC().Truncate(l.window)
	// The count is no tenant's: a request that carries a session (a
	// console sign-in by someone signed in already) counts as any other.
	ctx = tenancy.System(ctx, "login-limit")
	var count int
	err := l.db.NewRaw("INSERT INTO ? (key_hash, window_start, attempts) VALUES (?, ?, 1) "+
		"ON CONFLICT (key_hash, window_start) DO UPDATE SET attempts = ?.attempts + 1 RETURNING attempts",
		bun.Ident(tableLoginAttempts), l.hash(key), start, bun.Ident(tableLoginAttempts)).Scan(ctx, &count)
	if err != nil {
		return false, fmt.Errorf("login rate limit: %w", err)
	}
	return count <= l.n, nil
}

// prune deletes the windows that ended.
func (l *limiter) prune(ctx context.Context) error {
	_, err := l.db.NewRaw("DELETE FROM ? WHERE window_start < ?", bun.Ident(tableLoginAttempts),
		l.now().UTC().Truncate(l.window).Add(-l.window)).Exec(ctx)
	return err
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

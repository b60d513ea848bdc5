package social

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// Status is the state of a connection.
type Status string

// Connection statuses.
const (
	// StatusActive connections have working tokens.
	StatusActive Status = "active"
	// StatusNeedsReauth connections were refused by the platform (revoked
	// there, expired refresh token); the user must connect again.
	StatusNeedsReauth Status = "needs_reauth"
	// StatusRevoked connections were disconnected; they hold no tokens.
	StatusRevoked Status = "revoked"
)

// Table names of the social package.
const (
	TableConnections = "socialcrm_social_connections"
	TableStates      = "socialcrm_social_oauth_states"
	TableRevocations = "socialcrm_social_revocations"
	// TableMedia, TableSnapshots and TableRawResponses hold
	// platform-derived data (see Categories).
	TableMedia        = "socialcrm_social_media"
	TableSnapshots    = "socialcrm_social_snapshots"
	TableRawResponses = "socialcrm_social_raw_responses"
	// TableAccounts maps platform accounts to the tenants that connected
	// them, so that a platform's webhook (which names only the account)
	// reaches the right tenants. It holds no personal data beyond the
	// platform's opaque account id and is not tenant-owned.
	TableAccounts = "socialcrm_social_accounts"
	// TableDeliveries remembers webhook deliveries already processed.
	TableDeliveries = "socialcrm_social_webhook_deliveries"
)

// Connection is a platform account connected to a tenant. Its tokens are
// stored only sealed by the vault, bound to the tenant, the connection and
// the field, and never leave the package in plaintext except inside a
// token source's oauth2.Token for an outbound call. They are not part of
// the JSON form.
type Connection struct {
	bun.BaseModel `bun:"table:socialcrm_social_connections,alias:scn"`
	// MemberOwned records the member who connected the account (its
	// MemberID, empty for a connection made by an API key, the system or
	// before connections recorded it): a creator reaches only the
	// connections it connected (see the package's Creators section).
	tenancy.MemberOwned

	ID       string `bun:"id,pk" json:"id"`
	Platform string `bun:"platform,notnull" json:"platform"`
	// AccountID is the platform's id of the account (TikTok's open_id).
	// It is stored only sealed, and found through a blind index under the
	// tenant's key (see the package's Security section).
	AccountID string `bun:"-" json:"account_id"`
	// DisplayName is the account's name on the platform. It is stored only
	// sealed, like AvatarURL.
	DisplayName string `bun:"-" json:"display_name"`
	// AvatarURL may be a signed CDN URL that expires within hours; refresh
	// it on sync rather than relying on it.
	AvatarURL string `bun:"-" json:"avatar_url,omitempty"`
	// Scopes are the scopes the user granted; Requested those the flow
	// asked for. A requested scope missing from Scopes was declined.
	Scopes    Scopes   `bun:"scopes,type:text,notnull" json:"scopes"`
	Requested Scopes   `bun:"requested,type:text,notnull" json:"requested"`
	Purposes  Purposes `bun:"purposes,type:text,notnull" json:"purposes"`
	Status    Status   `bun:"status,notnull" json:"status"`
	// ParentID is the connection this one was derived from
	// (Session.ConnectDerived: a Facebook Page behind the Facebook user who
	// connected it), "" for a connection made by a Flow. Disconnecting or
	// deauthorizing a connection disconnects those derived from it.
	ParentID string `bun:"parent_id,notnull" json:"parent_id,omitempty"`

	AccessToken  vault.Sealed `bun:"access_token" json:"-"`
	RefreshToken vault.Sealed `bun:"refresh_token" json:"-"`
	// TokenVersion counts token rotations; every write of new tokens is a
	// compare-and-swap on it.
	TokenVersion int64     `bun:"token_version,notnull" json:"-"`
	TokenExpiry  time.Time `bun:"token_expiry,nullzero" json:"token_expiry,omitzero"`
	// TokenIssuedAt is when the access token was stored; with TokenExpiry
	// it gives the token's lifetime, which bounds the refresh window.
	TokenIssuedAt time.Time `bun:"token_issued_at,nullzero" json:"-"`
	RefreshExpiry time.Time `bun:"refresh_expiry,nullzero" json:"refresh_expiry,omitzero"`

	LastSyncAt time.Time `bun:"last_sync_at,nullzero" json:"last_sync_at,omitzero"`
	CreatedAt  time.Time `bun:"created_at,notnull" json:"created_at"`
	UpdatedAt  time.Time `bun:"updated_at,notnull" json:"updated_at"`
	RevokedAt  time.Time `bun:"revoked_at,nullzero" json:"revoked_at,omitzero"`

	connectionSealed
}

// connectionSealed is the stored form of a connection's account id and
// profile.
type connectionSealed struct {
	// AccountIndex is the blind index of AccountID (connAccountIndex):
	// the column named account_id holds no platform id in clear.
	AccountIndex      string       `bun:"account_id,notnull" json:"-"`
	AccountIDSealed   vault.Sealed `bun:"account_id_sealed" json:"-"`
	DisplayNameSealed vault.Sealed `bun:"display_name_sealed" json:"-"`
	AvatarURLSealed   vault.Sealed `bun:"avatar_url_sealed" json:"-"`
}

// fieldAccountID is the field a connection's (and a queued revoke's)
// sealed account id is bound to.
const fieldAccountID = "account_id"

// connAccountField is the vault.Index field of connAccountIndex.
const connAccountField = "social.connection.account"

// connAccountIndex returns the blind index, under the context tenant's
// key, of a platform account id, as the connections and the revoke queue
// store it: a keyed hash, so that a reader without the tenant's key
// cannot match it against a known id, and that destroying the key leaves
// nothing to match. It does not depend on the platform, so that a
// data-subject request naming only the id finds it.
func (s *Store) connAccountIndex(ctx context.Context, accountID string) (string, error) {
	h, err := s.vault.Index(ctx, accountID, connAccountField)
	if err != nil {
		return "", fmt.Errorf("social: account index: %w", err)
	}
	return accountPrefix + h, nil
}

// sealAccount seals c.AccountID into its stored form, with its blind
// index.
func (s *Store) sealAccount(ctx context.Context, c *Connection) error {
	var err error
	if c.AccountIndex, err = s.connAccountIndex(ctx, c.AccountID); err != nil {
		return err
	}
	c.AccountIDSealed, err = s.seal(ctx, c.AccountID, c.ID, fieldAccountID)
	return err
}

// sealProfile seals c's display name and avatar URL into its stored form.
func (s *Store) sealProfile(ctx context.Context, c *Connection) error {
	var err error
	if c.DisplayNameSealed, err = s.seal(ctx, c.DisplayName, c.ID, fieldDisplayName); err != nil {
		return err
	}
	c.AvatarURLSealed, err = s.seal(ctx, c.AvatarURL, c.ID, fieldAvatarURL)
	return err
}

// openProfile opens the account ids, display names and avatar URLs of
// cs.
func (s *Store) openProfile(ctx context.Context, cs ...*Connection) error {
	for _, c := range cs {
		var err error
		if c.AccountID, err = s.open(ctx, c.AccountIDSealed, c.ID, fieldAccountID); err != nil {
			return fmt.Errorf("social: open connection account: %w", err)
		}
		if c.DisplayName, err = s.open(ctx, c.DisplayNameSealed, c.ID, fieldDisplayName); err != nil {
			return fmt.Errorf("social: open connection profile: %w", err)
		}
		if c.AvatarURL, err = s.open(ctx, c.AvatarURLSealed, c.ID, fieldAvatarURL); err != nil {
			return fmt.Errorf("social: open connection profile: %w", err)
		}
	}
	return nil
}

// Declined returns the requested scopes the user did not grant.
func (c Connection) Declined() Scopes { return c.Scopes.Missing(c.Requested...) }

func binding(connID, field string) vault.Binding {
	return vault.Binding{Record: connID, Field: field}
}

// Migrations returns the versioned migrations of the social tables.
// socialcrm.Migrate runs them after tenancy's and the vault's.
func Migrations() *migrate.Migrations {
	ms := migrate.NewMigrations()
	migrations.Add(ms, "20261123000400", "social_init", func(ctx context.Context, tx bun.Tx) error {
		if err := migrations.Exec(ctx, tx,
			`CREATE TABLE IF NOT EXISTS socialcrm_social_connections (
				tenant_id TEXT NOT NULL,
				id TEXT NOT NULL,
				platform TEXT NOT NULL,
				account_id TEXT NOT NULL,
				display_name TEXT NOT NULL,
				avatar_url TEXT NOT NULL,
				scopes TEXT NOT NULL,
				requested TEXT NOT NULL,
				purposes TEXT NOT NULL,
				status TEXT NOT NULL,
				access_token BLOB,
				refresh_token BLOB,
				token_version BIGINT NOT NULL,
				token_expiry TIMESTAMP,
				refresh_expiry TIMESTAMP,
				last_sync_at TIMESTAMP,
				created_at TIMESTAMP NOT NULL,
				updated_at TIMESTAMP NOT NULL,
				revoked_at TIMESTAMP,
				PRIMARY KEY (tenant_id, id),
				UNIQUE (tenant_id, platform, account_id)
			)`,
			`CREATE TABLE IF NOT EXISTS socialcrm_social_oauth_states (
				tenant_id TEXT NOT NULL,
				id TEXT NOT NULL,
				platform TEXT NOT NULL,
				verifier BLOB NOT NULL,
				scopes TEXT NOT NULL,
				purposes TEXT NOT NULL,
				created_at TIMESTAMP NOT NULL,
				expires_at TIMESTAMP NOT NULL,
				used_at TIMESTAMP,
				PRIMARY KEY (tenant_id, id)
			)`,
			`CREATE TABLE IF NOT EXISTS socialcrm_social_media (
				tenant_id TEXT NOT NULL,
				connection_id TEXT NOT NULL,
				external_id TEXT NOT NULL,
				platform TEXT NOT NULL,
				kind TEXT NOT NULL,
				title TEXT NOT NULL,
				description TEXT NOT NULL,
				share_url TEXT NOT NULL,
				published_at TIMESTAMP,
				duration_sec INTEGER NOT NULL,
				views BIGINT NOT NULL,
				likes BIGINT NOT NULL,
				comments BIGINT NOT NULL,
				shares BIGINT NOT NULL,
				purposes TEXT NOT NULL,
				fetched_at TIMESTAMP NOT NULL,
				PRIMARY KEY (tenant_id, connection_id, external_id)
			)`,
			`CREATE TABLE IF NOT EXISTS socialcrm_social_snapshots (
				tenant_id TEXT NOT NULL,
				id TEXT NOT NULL,
				connection_id TEXT NOT NULL,
				platform TEXT NOT NULL,
				taken_at TIMESTAMP NOT NULL,
				followers BIGINT NOT NULL,
				following BIGINT NOT NULL,
				likes BIGINT NOT NULL,
				media_count BIGINT NOT NULL,
				views BIGINT NOT NULL,
				engagement_rate DOUBLE PRECISION NOT NULL,
				purposes TEXT NOT NULL,
				PRIMARY KEY (tenant_id, id)
			)`,
			`CREATE INDEX IF NOT EXISTS socialcrm_social_snapshots_conn ON socialcrm_social_snapshots (tenant_id, connection_id, taken_at)`,
			`CREATE TABLE IF NOT EXISTS socialcrm_social_raw_responses (
				tenant_id TEXT NOT NULL,
				id TEXT NOT NULL,
				connection_id TEXT NOT NULL,
				platform TEXT NOT NULL,
				endpoint TEXT NOT NULL,
				body TEXT NOT NULL,
				fetched_at TIMESTAMP NOT NULL,
				PRIMARY KEY (tenant_id, id)
			)`,
			`CREATE TABLE IF NOT EXISTS socialcrm_social_accounts (
				platform TEXT NOT NULL,
				account_id TEXT NOT NULL,
				tenant_id TEXT NOT NULL,
				connection_id TEXT NOT NULL,
				PRIMARY KEY (platform, account_id, tenant_id)
			)`,
			`CREATE TABLE IF NOT EXISTS socialcrm_social_webhook_deliveries (
				platform TEXT NOT NULL,
				key TEXT NOT NULL,
				received_at TIMESTAMP NOT NULL,
				PRIMARY KEY (platform, key)
			)`,
			`CREATE INDEX IF NOT EXISTS socialcrm_social_webhook_deliveries_at ON socialcrm_social_webhook_deliveries (received_at)`,
			`CREATE TABLE IF NOT EXISTS socialcrm_social_revocations (
				tenant_id TEXT NOT NULL,
				id TEXT NOT NULL,
				connection_id TEXT NOT NULL,
				platform TEXT NOT NULL,
				access_token BLOB,
				attempts INTEGER NOT NULL,
				last_error TEXT NOT NULL,
				created_at TIMESTAMP NOT NULL,
				next_at TIMESTAMP NOT NULL,
				PRIMARY KEY (tenant_id, id)
			)`,
		); err != nil {
			return err
		}
		for _, t := range []string{TableConnections, TableStates, TableRevocations, TableMedia, TableSnapshots, TableRawResponses} {
			if err := tenancy.EnableRowSecurity(ctx, tx, t); err != nil {
				return err
			}
		}
		return nil
	})
	migrations.Add(ms, "20261201000100", "social_snapshot_source", func(ctx context.Context, tx bun.Tx) error {
		return migrations.Exec(ctx, tx,
			`ALTER TABLE socialcrm_social_snapshots ADD COLUMN source TEXT NOT NULL DEFAULT ''`)
	})
	migrations.Add(ms, "20261201190000", "social_connection_parent", func(ctx context.Context, tx bun.Tx) error {
		return migrations.Exec(ctx, tx,
			`ALTER TABLE socialcrm_social_connections ADD COLUMN parent_id TEXT NOT NULL DEFAULT ''`,
			`CREATE INDEX IF NOT EXISTS socialcrm_social_connections_parent ON socialcrm_social_connections (tenant_id, parent_id)`)
	})
	migrations.Add(ms, "20261201190100", "social_delivery_claims", func(ctx context.Context, tx bun.Tx) error {
		return migrations.Exec(ctx, tx,
			`ALTER TABLE socialcrm_social_webhook_deliveries ADD COLUMN pending BOOLEAN NOT NULL DEFAULT FALSE`)
	})
	migrations.Add(ms, "20261206010100", "social_token_lifetimes_revocation_claims", func(ctx context.Context, tx bun.Tx) error {
		return migrations.Exec(ctx, tx,
			`ALTER TABLE socialcrm_social_connections ADD COLUMN token_issued_at TIMESTAMP`,
			`ALTER TABLE socialcrm_social_oauth_states ADD COLUMN redirect_url TEXT NOT NULL DEFAULT ''`,
			`ALTER TABLE socialcrm_social_revocations ADD COLUMN refresh_token BLOB`,
			`ALTER TABLE socialcrm_social_revocations ADD COLUMN claimed_until TIMESTAMP`)
	})
	migrations.Add(ms, "20261206020000", "social_snapshot_breakdowns", func(ctx context.Context, tx bun.Tx) error {
		return migrations.Exec(ctx, tx,
			`ALTER TABLE socialcrm_social_snapshots ADD COLUMN breakdowns TEXT`)
	})
	migrations.Add(ms, "20261206030000", "social_sealed_platform_data", sealedPlatformData)
	migrations.Add(ms, "20261209030000", "social_connection_member", connectionMember) // creator.go
	migrations.Add(ms, "20261206070000", "social_media_unknown_metrics", mediaUnknownMetrics)
	// Whether each indexed connection is revoked (AccountTenant.Live), so
	// that a webhook is routed without reading the connections; unknown
	// for the rows before.
	migrations.Add(ms, "20261206070100", "social_account_index_live", func(ctx context.Context, tx bun.Tx) error {
		return migrations.Exec(ctx, tx, `ALTER TABLE socialcrm_social_accounts ADD COLUMN live BOOLEAN`)
	})
	// The number of live routes of each tenant's accounts, which a
	// webhook's write checks under the tenant's principal (Routed): the
	// index itself is confined to the tenant's own rows.
	migrations.Add(ms, "20261208040000", "social_account_routes", func(ctx context.Context, tx bun.Tx) error {
		view := `socialcrm_social_account_routes AS
			SELECT a.platform, a.account_id, a.tenant_id, a.connection_id, a.live,
				(SELECT COUNT(DISTINCT r.tenant_id) FROM socialcrm_social_accounts AS r
					WHERE r.platform = a.platform AND r.account_id = a.account_id AND (r.live IS NULL OR r.live)) AS routes
			FROM socialcrm_social_accounts AS a`
		if tx.Dialect().Name() == dialect.PG {
			return migrations.Exec(ctx, tx, `CREATE OR REPLACE VIEW `+view)
		}
		return migrations.Exec(ctx, tx, `CREATE VIEW IF NOT EXISTS `+view)
	})
	// handover_pending marks a revoked connection the disconnect hook has
	// not taken yet (its process died after the revoke's commit, or the
	// hook failed): RetryRevocations hands it over.
	migrations.Add(ms, "20261212040000", "social_connection_handover", func(ctx context.Context, tx bun.Tx) error {
		return migrations.Exec(ctx, tx,
			`ALTER TABLE socialcrm_social_connections ADD COLUMN handover_pending BOOLEAN NOT NULL DEFAULT FALSE`)
	})
	// The platform account a queued revoke is for, so that an erasure
	// naming the account reports the revoke still pending after the
	// connection is gone (CategoryRevocation's Pending), and when its
	// access token expires (a provider refreshes before revoking through
	// a dead token); unknown ('', NULL) for the rows before.
	migrations.Add(ms, "20261213050000", "social_revocation_account_expiry", func(ctx context.Context, tx bun.Tx) error {
		return migrations.Exec(ctx, tx,
			`ALTER TABLE socialcrm_social_revocations ADD COLUMN account_id TEXT NOT NULL DEFAULT ''`,
			`ALTER TABLE socialcrm_social_revocations ADD COLUMN access_expiry TIMESTAMP`)
	})
	migrations.Add(ms, "20261214070000", "social_account_ids_sealed", sealedAccountIDs) // seal.go
	return ms
}

// Models returns the tenant-owned models of the package, for
// tenancy.InstallGuard.
func Models() []any {
	return []any{(*Connection)(nil), (*authState)(nil), (*revocation)(nil), (*account)(nil), (*accountRoute)(nil), (*delivery)(nil), (*Media)(nil), (*Snapshot)(nil), (*RawResponse)(nil), (*unsealed)(nil)}
}

// SealedColumns declares the package's sealed columns, for
// vault.WithColumns (key rotation reseals them).
func SealedColumns() []vault.Column {
	out := []vault.Column{
		{Table: TableConnections, ID: "id", Sealed: "access_token"},
		{Table: TableConnections, ID: "id", Sealed: "refresh_token"},
		{Table: TableStates, ID: "id", Sealed: "verifier"},
		{Table: TableRevocations, ID: "id", Sealed: "access_token"},
		{Table: TableRevocations, ID: "id", Sealed: "refresh_token"},
		{Table: TableRevocations, ID: "id", Sealed: "account_id_sealed",
			Binding: func(id string) vault.Binding { return vault.Binding{Record: id, Field: fieldAccountID} }},
	}
	for _, t := range []string{TableConnections, TableMedia, TableRawResponses} {
		for _, f := range sealedFields[t] {
			field := f.as
			out = append(out, vault.Column{Table: t, ID: "id", Sealed: f.column,
				Binding: func(id string) vault.Binding { return vault.Binding{Record: id, Field: field} }})
		}
	}
	return out
}

// Store holds the tenant's connections and runs the flows, token sources
// and disconnections over them. Create it with New; it is safe for
// concurrent use.
type Store struct {
	db            bun.IDB
	vault         *vault.Vault
	now           func() time.Time
	log           *slog.Logger
	onDisconnect  func(context.Context, Connection) error
	stateTTL      time.Duration
	refreshWindow time.Duration
	providers     map[string]Provider
}

// Option configures a Store.
type Option func(*Store) error

// WithClock sets the clock (default time.Now) for state expiry, token
// expiry and timestamps.
func WithClock(now func() time.Time) Option {
	return func(s *Store) error {
		if now == nil {
			return fmt.Errorf("%w: WithClock: nil clock", ErrConfig)
		}
		s.now = now
		return nil
	}
}

// WithLogger sets the logger (default: discard). It never receives tokens.
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) error {
		s.log = l
		return nil
	}
}

// WithDisconnectHook sets a function called after a connection was
// disconnected (by Disconnect), with the revoked connection, to hand its
// derived data to retention. Its error is returned by Disconnect, which has
// nevertheless completed.
func WithDisconnectHook(fn func(ctx context.Context, c Connection) error) Option {
	return func(s *Store) error {
		s.onDisconnect = fn
		return nil
	}
}

// WithRefreshWindow sets how long before its expiry an access token is
// refreshed (default DefaultRefreshWindow). A token is refreshed at most
// half its lifetime before it expires, whatever the window: with
// five-minute tokens and the default window, at 2m30s.
func WithRefreshWindow(d time.Duration) Option {
	return func(s *Store) error {
		if d < 0 {
			return fmt.Errorf("%w: WithRefreshWindow: negative", ErrConfig)
		}
		s.refreshWindow = d
		return nil
	}
}

// WithProviders registers the providers of the platforms the store's
// connections belong to, once: RetryRevocations and Maintain reach every
// platform through them, and Provider looks one up. Two providers of one
// platform are an ErrConfig.
func WithProviders(ps ...Provider) Option {
	return func(s *Store) error {
		for _, p := range ps {
			if p == nil {
				return fmt.Errorf("%w: WithProviders: nil provider", ErrConfig)
			}
			if _, dup := s.providers[p.Platform()]; dup {
				return fmt.Errorf("%w: WithProviders: two providers of %q", ErrConfig, p.Platform())
			}
			if s.providers == nil {
				s.providers = map[string]Provider{}
			}
			s.providers[p.Platform()] = p
		}
		return nil
	}
}

// Provider returns the registered provider of platform (WithProviders).
func (s *Store) Provider(platform string) (Provider, bool) {
	p, ok := s.providers[platform]
	return p, ok
}

// Defaults.
const (
	// StateLifetime is how long a flow's state can be completed.
	StateLifetime = 10 * time.Minute
	// DefaultRefreshWindow is how long before its expiry a token is
	// refreshed (at most half its lifetime).
	DefaultRefreshWindow = 5 * time.Minute
)

// New returns a Store over db (with the migrations of tenancy, vault and
// social applied) sealing tokens with v.
func New(db bun.IDB, v *vault.Vault, opts ...Option) (*Store, error) {
	if db == nil || v == nil {
		return nil, fmt.Errorf("%w: New: nil db or vault", ErrConfig)
	}
	s := &Store{db: db, vault: v, now: time.Now, stateTTL: StateLifetime, refreshWindow: DefaultRefreshWindow}
	for _, o := range opts {
		if o == nil {
			continue
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

// Using returns a copy of the store that works through db, such as a
// transaction the caller holds (Deliver's): its methods then run inside it
// (in savepoints where they open transactions of their own).
func (s *Store) Using(db bun.IDB) *Store {
	c := *s
	c.db = db
	return &c
}

func (s *Store) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func (s *Store) tx(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	return tenancy.RunInTx(ctx, s.db, nil, fn)
}

// Get returns the connection id of the context's tenant.
func (s *Store) Get(ctx context.Context, id string) (Connection, error) {
	if err := noClient(ctx); err != nil {
		return Connection{}, err
	}
	var c Connection
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		c, err = get(ctx, tx, id, false)
		return err
	})
	if err != nil {
		return Connection{}, err
	}
	if err := s.openProfile(ctx, &c); err != nil {
		return Connection{}, err
	}
	return c, nil
}

func get(ctx context.Context, tx bun.IDB, id string, lock bool) (Connection, error) {
	c := Connection{ID: id}
	q := tx.NewSelect().Model(&c).WherePK()
	if lock && tx.Dialect().Name() == dialect.PG {
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Connection{}, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return Connection{}, fmt.Errorf("social: get connection: %w", err)
	}
	return c, nil
}

// ConnectionFilter narrows List and All. The zero value keeps every
// connection.
type ConnectionFilter struct {
	// Platform, if set, keeps the connections of that platform.
	Platform string
	// Status, if set, keeps the connections in that status.
	Status Status
}

// List returns a page of the tenant's connections that f keeps, oldest
// first. A bad limit or cursor fails with an error matching
// ErrListOptions.
func (s *Store) List(ctx context.Context, f ConnectionFilter, o ListOptions) (Page[Connection], error) {
	if err := noClient(ctx); err != nil {
		return Page[Connection]{}, err
	}
	after, err := o.check()
	if err != nil {
		return Page[Connection]{}, err
	}
	var cs []Connection
	err = s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		q := tx.NewSelect().Model(&cs).
			OrderExpr("?TableAlias.created_at ASC").OrderExpr("?TableAlias.id ASC").Limit(int64(o.limit() + 1))
		if after != nil {
			q = q.Where("(?TableAlias.created_at, ?TableAlias.id) > (?, ?)", after.CreatedAt, after.ID)
		}
		if f.Platform != "" {
			q = q.Where("?TableAlias.platform = ?", f.Platform)
		}
		if f.Status != "" {
			q = q.Where("?TableAlias.status = ?", f.Status)
		}
		return q.Scan(ctx)
	})
	if err != nil {
		return Page[Connection]{}, fmt.Errorf("social: list connections: %w", err)
	}
	p := Page[Connection]{Items: cs}
	if len(cs) > o.limit() {
		p.Items = cs[:o.limit()]
		last := p.Items[len(p.Items)-1]
		if p.NextCursor, err = (connectionCursor{CreatedAt: last.CreatedAt, ID: last.ID}).encode(); err != nil {
			return Page[Connection]{}, err
		}
	}
	if p.Items == nil {
		p.Items = []Connection{}
	}
	for i := range p.Items {
		if err := s.openProfile(ctx, &p.Items[i]); err != nil {
			return Page[Connection]{}, err
		}
	}
	return p, nil
}

// All iterates over the connections List returns, from o.Cursor on,
// fetching a page of o.Limit at a time. A failed page yields its error
// once, last; breaking out early fetches nothing more.
func (s *Store) All(ctx context.Context, f ConnectionFilter, o ListOptions) iter.Seq2[Connection, error] {
	return func(yield func(Connection, error) bool) {
		for {
			p, err := s.List(ctx, f, o)
			if err != nil {
				yield(Connection{}, err)
				return
			}
			for _, c := range p.Items {
				if !yield(c, nil) {
					return
				}
			}
			if p.NextCursor == "" {
				return
			}
			o.Cursor = p.NextCursor
		}
	}
}

// Find returns the tenant's connection of the platform account.
func (s *Store) Find(ctx context.Context, platform, accountID string) (Connection, error) {
	if err := noClient(ctx); err != nil {
		return Connection{}, err
	}
	idx, err := s.connAccountIndex(ctx, accountID)
	if err != nil {
		return Connection{}, err
	}
	var c Connection
	err = s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		err := tx.NewSelect().Model(&c).Where("platform = ?", platform).Where("account_id = ?", idx).Scan(ctx)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %s account", ErrNotFound, platform)
		}
		return err
	})
	if err != nil {
		return Connection{}, err
	}
	if err := s.openProfile(ctx, &c); err != nil {
		return Connection{}, err
	}
	return c, nil
}

// MarkSynced records that the connection's data was pulled at the
// store's current time, with its display name and avatar (both sealed).
func (s *Store) MarkSynced(ctx context.Context, id, displayName, avatarURL string) error {
	if err := noClient(ctx); err != nil {
		return err
	}
	now := s.clock()
	p := Connection{ID: id, DisplayName: displayName, AvatarURL: avatarURL}
	if err := s.sealProfile(ctx, &p); err != nil {
		return fmt.Errorf("social: mark synced: %w", err)
	}
	return s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewUpdate().Model((*Connection)(nil)).
			Set("display_name_sealed = ?", p.DisplayNameSealed).Set("avatar_url_sealed = ?", p.AvatarURLSealed).
			Set("last_sync_at = ?", now).Set("updated_at = ?", now).
			Where("id = ?", id).Exec(ctx)
		return err
	})
}

// MarkNeedsReauth records that the platform refused the connection's
// tokens: it moves an active connection to needs_reauth and audits it.
// Typed clients call it when the platform answers that the access token
// is invalid.
func (s *Store) MarkNeedsReauth(ctx context.Context, id, reason string) error {
	if err := noClient(ctx); err != nil {
		return err
	}
	return s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return s.markNeedsReauth(ctx, tx, id, reason)
	})
}

func (s *Store) markNeedsReauth(ctx context.Context, tx bun.Tx, id, reason string) error {
	now := s.clock()
	res, err := tx.NewUpdate().Model((*Connection)(nil)).
		Set("status = ?", StatusNeedsReauth).Set("updated_at = ?", now).
		Where("id = ?", id).Where("status = ?", StatusActive).Exec(ctx)
	if err != nil {
		return fmt.Errorf("social: mark needs_reauth: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	s.log.InfoContext(ctx, "social: connection needs reauthorization", "connection", id, "reason", reason)
	return s.audit(ctx, tx, tenancy.AuditEvent{
		Action: "connection.needs_reauth", Target: "connection:" + id,
		Metadata: map[string]string{"reason": reason},
	})
}

func (s *Store) audit(ctx context.Context, tx bun.Tx, ev tenancy.AuditEvent) error {
	log, err := s.vault.AuditLog(ctx, tx, tenancy.WithClock(s.now))
	if err != nil {
		return err
	}
	_, err = log.Append(ctx, ev)
	return err
}

var _ bun.AfterScanRowHook = (*Connection)(nil)

// AfterScanRow returns the connection's times in UTC whatever the driver
// gave.
func (c *Connection) AfterScanRow(context.Context) error {
	for _, t := range []*time.Time{&c.TokenExpiry, &c.TokenIssuedAt, &c.RefreshExpiry, &c.LastSyncAt, &c.CreatedAt, &c.UpdatedAt, &c.RevokedAt} {
		if !t.IsZero() {
			*t = t.UTC()
		}
	}
	return nil
}

// noClient refuses a client member (tenancy.RoleClient, an agency's client
// on the portal) with tenancy.ErrForbidden: a client sees only the CRM
// records of its own client relationship, and the tenant's connected
// accounts are none of them — a client listed every creator's
// connection, read their insights, ran their syncs, connected accounts
// into the tenant and published through them.
func noClient(ctx context.Context) error {
	if p, ok := tenancy.FromContext(ctx); ok && p.Role == tenancy.RoleClient && !p.IsSystem() {
		return fmt.Errorf("%w: a client member does not reach the tenant's connections", tenancy.ErrForbidden)
	}
	return nil
}

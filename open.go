package socialcrm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/inbox"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// Config is what Open needs. DB and KEK are required; every other field has
// a documented default.
type Config struct {
	// DB is the database, from OpenDB or the host application's own bun.DB.
	// A SQLite handle of the host's must run every connection with
	// secure_delete on (the pragma secure_delete(ON) in its DSN, as OpenDB
	// does), so that erased rows do not linger in the file: Open refuses
	// one without it with ErrInsecureDelete.
	// On PostgreSQL it must connect as an application role that is not a
	// superuser, has no BYPASSRLS and owns no socialcrm table (Open
	// refuses it otherwise, with a *RoleError), holding the privileges
	// Grant gives.
	DB *bun.DB
	// Owner is the same database connected as the role that owns the
	// tables. When set, Open migrates through it and then grants DB's role
	// what it needs (Grant). Nil: Open migrates through DB, which on
	// PostgreSQL works only when the owner has already migrated the
	// database to this version (socialcrm.Migrate, then Grant), or with
	// AllowPrivilegedRole. On SQLite, which has no roles, leave it nil.
	Owner *bun.DB
	// AllowPrivilegedRole lets Open accept a DB whose role is a superuser,
	// has BYPASSRLS or owns the tables — for development only: such a role
	// can switch row-level security off for every tenant.
	AllowPrivilegedRole bool
	// KEK is the key-encryption key that wraps each tenant's data keys:
	// vault.KMS for a key-management service, insecurekeyfile.Open for a local
	// key file (which protects less: it lives beside the data).
	KEK tink.AEAD
	// Policy is the retention policy (default: DefaultPolicy of the
	// categories that are registered).
	Policy *retention.Policy
	// Models are the host application's tenant-owned models, for the Guard.
	Models []any
	// Categories are the host application's retention categories, declared
	// beside socialcrm's own.
	Categories []retention.Category
	// Attachments is where the CRM keeps the bytes of attachments (for
	// example a crm.DirStorage). Nil: the CRM keeps no files, and
	// Attachments.Attach fails with crm.ErrConfig. The SDK does not close
	// it.
	Attachments crm.Storage
	// PhoneRegion is the region ("US", "GB") in which the CRM reads phone
	// numbers written without a country code (crm.WithDefaultRegion).
	// Empty: only international numbers are accepted.
	PhoneRegion string
	// MaxAttachmentSize is the largest attachment accepted, in bytes
	// (0: crm.DefaultMaxAttachmentSize). Only used with Attachments.
	MaxAttachmentSize int64
	// Providers are the platforms' providers (tiktok.Provider,
	// meta.Provider, social.OAuth2Provider…), registered once with the
	// social store: Disconnect without a provider and Maintain's
	// revocation retries reach every platform through them.
	Providers []social.Provider
	// RefreshWindow is how long before its expiry an access token is
	// refreshed (0: social.DefaultRefreshWindow), at most half the
	// token's lifetime.
	RefreshWindow time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives socialcrm's logs (default: discard).
	Logger *slog.Logger
	// TracerProvider and MeterProvider switch OpenTelemetry on (see
	// Instrument): Open adds a span and a timing per query of DB. Nil, the
	// default: nothing is recorded, whatever the global providers.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// InsecurePasswordCost, when not 0, is the bcrypt cost of the passwords
	// the tenancy store hashes instead of tenancy.PasswordCost — for tests
	// only: outside a test binary Open fails with tenancy.ErrNotTesting
	// (see tenancy.WithInsecurePasswordCost).
	InsecurePasswordCost int
}

// SDK is socialcrm wired together: the tenancy store and audit log, the
// vault, the retention engine, the social store and the CRM records share
// one database and one clock, and the hooks between them are registered —
// a tenant's purge
// destroys its data key, and a disconnected or deauthorized connection
// starts its retention clock.
type SDK struct {
	DB        *bun.DB
	Guard     *tenancy.Guard
	Tenants   *tenancy.Store
	Audit     *tenancy.AuditLog
	Vault     *vault.Vault
	Retention *retention.Engine
	Social    *social.Store
	CRM       *crm.Store

	now func() time.Time
	log *slog.Logger
}

// Open checks cfg.DB's database role (see Config.DB), migrates (through
// cfg.Owner when set, then granting cfg.DB's role), installs the Guard,
// builds every component, checks that every tenant-owned table has a
// retention category whose columns exist, and seals any platform data an
// older version stored in clear (SealPlatformData; nothing to do on a new
// or already sealed database). It returns an error naming what is missing rather than an
// SDK that would keep data it does not know about.
func Open(ctx context.Context, cfg Config) (*SDK, error) {
	if cfg.DB == nil || cfg.KEK == nil {
		return nil, errors.New("socialcrm: Open: DB and KEK are required")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	Instrument(cfg.DB, cfg.TracerProvider, cfg.MeterProvider)
	if !cfg.AllowPrivilegedRole {
		if err := CheckRole(ctx, cfg.DB); err != nil {
			return nil, err
		}
	}
	if err := checkSecureDelete(ctx, cfg.DB); err != nil {
		return nil, err
	}
	if cfg.Owner != nil {
		if err := Migrate(ctx, cfg.Owner); err != nil {
			return nil, err
		}
		if cfg.DB.Dialect().Name() == dialect.PG {
			role, err := currentRole(ctx, cfg.DB)
			if err != nil {
				return nil, err
			}
			if err := Grant(ctx, cfg.Owner, role); err != nil {
				return nil, err
			}
		}
	}
	if err := Migrate(ctx, cfg.DB); err != nil {
		return nil, fmt.Errorf("socialcrm: Open: %w (on PostgreSQL, pass the owner role's handle as Config.Owner or run Migrate and Grant as the owner first)", err)
	}
	guard, err := Guard(cfg.DB, cfg.Models...)
	if err != nil {
		return nil, err
	}
	sdk := &SDK{DB: cfg.DB, Guard: guard, now: now, log: log}
	if sdk.Vault, err = vault.New(cfg.DB, cfg.KEK, vault.WithClock(now), vault.WithLogger(log),
		vault.WithColumns(SealedColumns()...)); err != nil {
		return nil, err
	}
	// The audit log is a keyed chain: its key is the vault's, wrapped by
	// the KEK, so a database writer cannot recompute it. Member names are
	// sealed by the vault (tenancy cannot import it).
	auditKeys, err := sdk.Vault.AuditKeys(ctx)
	if err != nil {
		return nil, err
	}
	tenancyOpts := []tenancy.Option{tenancy.WithClock(now), tenancy.WithLogger(log),
		tenancy.WithAuditKeys(auditKeys), tenancy.WithSealer(vaultSealer{sdk.Vault})}
	if cfg.InsecurePasswordCost != 0 {
		tenancyOpts = append(tenancyOpts, tenancy.WithInsecurePasswordCost(cfg.InsecurePasswordCost))
	}
	if sdk.Tenants, err = tenancy.NewStore(cfg.DB, tenancyOpts...); err != nil {
		return nil, err
	}
	sdk.Audit = sdk.Tenants.Audit()
	crmOpts := []crm.Option{crm.WithClock(now), crm.WithLogger(log)}
	if cfg.PhoneRegion != "" {
		crmOpts = append(crmOpts, crm.WithDefaultRegion(cfg.PhoneRegion))
	}
	if cfg.Attachments != nil {
		crmOpts = append(crmOpts, crm.WithStorage(cfg.Attachments, cfg.MaxAttachmentSize))
	}
	if sdk.CRM, err = crm.New(cfg.DB, sdk.Vault, crmOpts...); err != nil {
		return nil, err
	}
	// A disconnect revokes the authorization at the platform, and a
	// platform's deauthorization arrives through the same hook: either way
	// the connection's data starts its post-deauthorization period.
	socialOpts := []social.Option{social.WithClock(now), social.WithLogger(log),
		social.WithProviders(cfg.Providers...),
		social.WithDisconnectHook(func(ctx context.Context, c social.Connection) error {
			return sdk.Retention.RecordEvent(ctx, retention.EventDeauthorized, "connection_id", c.ID)
		})}
	if cfg.RefreshWindow != 0 {
		socialOpts = append(socialOpts, social.WithRefreshWindow(cfg.RefreshWindow))
	}
	if sdk.Social, err = social.New(cfg.DB, sdk.Vault, socialOpts...); err != nil {
		return nil, err
	}
	// Personal data that a database of an earlier version held in clear is
	// sealed before anything reads it (a no-op once done).
	sealing := sdk.CRM
	if cfg.Owner != nil {
		sealing = sdk.CRM.Using(cfg.Owner) // drops what it moved aside: the owner's right
	}
	if _, err := sealing.SealExisting(ctx, 0, nil); err != nil {
		return nil, err
	}
	if _, err := sdk.Tenants.SealNames(tenancy.System(ctx, "socialcrm-open")); err != nil {
		return nil, err
	}
	// The CRM's categories bound to this Store: erasing an attachment
	// deletes its bytes from cfg.Attachments. The social categories export
	// their sealed columns opened through the social store.
	cats := withStoreCategories(Categories(sdk.Audit), append(sdk.CRM.Categories(), memberCategory(Categories(sdk.Audit), sdk.Vault)))
	cats = withStoreCategories(cats, withThreads(sdk.Social.Categories(), sdk.Social))
	cats = append(cats, cfg.Categories...)
	policy := DefaultPolicy(cats)
	if cfg.Policy != nil {
		policy = *cfg.Policy
	}
	if sdk.Retention, err = retention.New(cfg.DB, retention.WithClock(now), retention.WithLogger(log),
		retention.WithStore(sdk.Tenants), retention.WithPolicy(policy),
		retention.WithTenantPurgeHook(sdk.Vault.DestroyKey),
		// The tenant's queued platform revokes are made when its purge
		// begins, outside any transaction (see social.Store.RetryRevocations).
		retention.WithTenantPurgeStartHook(func(ctx context.Context) error {
			_, err := sdk.Social.RetryRevocations(ctx)
			return err
		}),
		// So are, when a sweep begins, the queued revokes it is about to
		// erase (a policy with a rule for social.CategoryRevocation).
		retention.WithSweepStartHook(func(ctx context.Context) error {
			if _, ok := retention.SweepCutoff(ctx, social.CategoryRevocation); !ok {
				return nil
			}
			_, err := sdk.Social.RetryRevocations(ctx)
			return err
		}),
		retention.WithIdentifierProtection(requestProtection(sdk.Vault))); err != nil {
		return nil, err
	}
	if err := sdk.Retention.Register(cats...); err != nil {
		return nil, err
	}
	// One request by any identifier a person gives reaches all of their
	// data: e-mail and phone → contacts (duplicates included) → their
	// conversations; a PSID (or a guest's Messenger user_ref) → its
	// conversation's contact; a platform
	// account id or TikTok open_id → its connections → what was fetched;
	// an e-mail address → the member accounts signed in with it.
	for _, rs := range []map[string]retention.Resolver{sdk.CRM.Resolvers(), sdk.Social.Resolvers(), inbox.Resolvers(), retention.TenancyResolvers()} {
		for kind, r := range rs {
			if err := sdk.Retention.RegisterResolver(kind, r); err != nil {
				return nil, err
			}
		}
	}
	if err := sdk.Retention.Check(ctx); err != nil {
		return nil, err
	}
	uncovered, err := sdk.Retention.Uncovered(ctx)
	if err != nil {
		return nil, err
	}
	if len(uncovered) > 0 {
		return nil, fmt.Errorf("socialcrm: Open: tenant-owned tables without a retention category: %v", uncovered)
	}
	if _, err := sdk.SealPlatformData(ctx, nil); err != nil {
		return nil, err
	}
	return sdk, nil
}

// vaultSealer is the vault as a tenancy.Sealer.
type vaultSealer struct{ v *vault.Vault }

func (s vaultSealer) Seal(ctx context.Context, plaintext []byte, record, field string) ([]byte, error) {
	sealed, err := s.v.Seal(ctx, plaintext, vault.Binding{Record: record, Field: field})
	return sealed.Bytes(), err
}

func (s vaultSealer) Open(ctx context.Context, sealed []byte, record, field string) ([]byte, error) {
	v, err := vault.ParseSealed(sealed)
	if err != nil {
		return nil, err
	}
	sec, err := s.v.Open(ctx, v, vault.Binding{Record: record, Field: field})
	if err != nil {
		return nil, err
	}
	defer sec.Wipe()
	return append([]byte(nil), sec.Reveal()...), nil
}

var _ tenancy.Sealer = vaultSealer{}

// memberCategory returns the members' category of cats with their sealed
// name declared, opened with v, so that an export holds it in clear.
func memberCategory(cats []retention.Category, v *vault.Vault) retention.Category {
	var c retention.Category
	for _, x := range cats {
		if x.Table == tenancy.TableMembers {
			c = x
		}
	}
	s := vaultSealer{v}
	c.Omit = slices.DeleteFunc(slices.Clone(c.Omit), func(col string) bool { return col == "name_sealed" })
	c.Sealed = append(c.Sealed, retention.SealedColumn{Column: "name_sealed", As: "sealed_name",
		Open: func(ctx context.Context, tenantID, id string, sealed []byte) (string, error) {
			b, err := s.Open(ctx, sealed, id, "member_name")
			return string(b), err
		}})
	c.Clear = "ids, e-mail address (the sign-in name), role, client link, password hash, lockout state and times; the name is sealed"
	return c
}

// requestSubjectField is the vault field of a data-subject request's
// sealed identifiers (the column's name).
const requestSubjectField = "subject_sealed"

// requestProtection keeps the identifiers of data-subject requests sealed
// by the tenant's data key (bound to the request) beside the tenant's
// blind index of each, so that no e-mail address, phone number or PSID a
// person gave sits in clear in the request records for the years they are
// kept, and a tenant's purge shreds them with its key.
func requestProtection(v *vault.Vault) retention.IdentifierProtection {
	return retention.IdentifierProtection{
		Hash: func(ctx context.Context, kind, value string) (string, error) {
			return v.Index(ctx, strings.ToLower(value), "retention.request."+kind)
		},
		Seal: func(ctx context.Context, id string, plaintext []byte) ([]byte, error) {
			s, err := v.Seal(ctx, plaintext, vault.Binding{Record: id, Field: requestSubjectField})
			return s.Bytes(), err
		},
		Open: func(ctx context.Context, id string, sealed []byte) ([]byte, error) {
			s, err := vault.ParseSealed(sealed)
			if err != nil {
				return nil, err
			}
			sec, err := v.Open(ctx, s, vault.Binding{Record: id, Field: requestSubjectField})
			if err != nil {
				return nil, err
			}
			defer sec.Wipe()
			return slices.Clone(sec.Reveal()), nil
		},
	}
}

// withStoreCategories replaces the categories of cats that bound has a
// category of the same name for by bound's, keeping their order.
func withStoreCategories(cats, bound []retention.Category) []retention.Category {
	byName := make(map[string]retention.Category, len(bound))
	for _, c := range bound {
		byName[c.Name] = c
	}
	for i, c := range cats {
		if b, ok := byName[c.Name]; ok {
			cats[i] = b
		}
	}
	return cats
}

// MetaInbox returns the inbox that stores Messenger and Instagram
// messaging events as the SDK's crm conversations, routed through its
// social store, and sends replies it stores there, on the SDK's clock and
// logger (opts may override them). Use its Handle as the EventHandler of
// meta.NewWebhook, declared with meta.WithIdempotentHandler (it stores
// idempotently, so deliveries need no records and no transaction), its
// Send or Reply to answer.
func (s *SDK) MetaInbox(opts ...inbox.Option) (*inbox.Inbox, error) {
	return inbox.New(s.Social, s.CRM, append([]inbox.Option{inbox.WithClock(s.now), inbox.WithLogger(s.log)}, opts...)...)
}

// MetaCallbacks returns Meta's deauthorize and data deletion callbacks of
// app over the SDK's database, social store and retention engine, on its
// clock and logger (opts may override them). statusURL is the absolute URL
// where the returned Callbacks' DeletionStatusHandler is served.
func (s *SDK) MetaCallbacks(app meta.Config, statusURL string, opts ...meta.Option) (*meta.Callbacks, error) {
	return meta.NewCallbacks(app, meta.CallbackConfig{DB: s.DB, Social: s.Social, Retention: s.Retention, StatusURL: statusURL},
		append([]meta.Option{meta.WithClock(s.now), meta.WithLogger(s.log)}, opts...)...)
}

// DeletionRequestPeriod is how long the default policy keeps the record
// of a Meta data deletion callback (meta.CategoryDeletionRequest: its
// confirmation code and the erasure it started, no personal data): three
// years, like the retention requests it proves were answered.
const DeletionRequestPeriod = 3 * retention.Year

// MediaPeriod is how long the default policy keeps platform media after
// their last fetch: 24 months, like the aggregated metrics.
const MediaPeriod = 24 * retention.Month

// DefaultPolicy is the policy Open uses when Config.Policy is nil, with
// rules only for the categories in cats:
//
//   - raw platform API responses 90 days; aggregated metrics, and media
//     after their last fetch (MediaPeriod), 24 months;
//   - a connection, and what was fetched through it, erased 30 days after
//     the platform reports its deauthorization (event
//     retention.EventDeauthorized);
//   - expired OAuth states a day after they expired;
//   - invoices kept 7 years (a legal obligation: they survive subject
//     erasure and tenant purge, readable — a closed tenant with invoices
//     still in their period keeps its key, and is marked purged once the
//     sweep has erased the last of them (retention.Rule.Readable);
//     crm.CategoryInvoice belongs to a host that bills);
//   - the audit log and its checkpoints kept 12 months (kept through
//     erasure for the security obligation);
//   - answered data-subject requests and records of Meta deletion
//     callbacks kept 3 years as evidence; recorded trigger events at most
//     24 months;
//   - 30 days of grace after a tenant closes, then the purge.
//
// A host that adds rules of its own starts from it:
// DefaultPolicy(append(socialcrm.Categories(nil), mine...)).
func DefaultPolicy(cats []retention.Category) retention.Policy {
	p := retention.Policy{
		Name:         "example-2026",
		ClosureGrace: 30 * retention.Day,
		Rules: []retention.Rule{
			{Category: social.CategoryRawResponse, Period: 90 * retention.Day, Note: "raw platform responses at most 90 days"},
			{Category: social.CategoryMetrics, Period: 24 * retention.Month, Note: "aggregated metrics up to 24 months"},
			{Category: social.CategoryConnection, Period: 30 * retention.Day, Event: retention.EventDeauthorized, Note: "purged within 30 days of deauthorization"},
			{Category: crm.CategoryInvoice, Period: 7 * retention.Year, Keep: true, Readable: true, Note: "billing records kept 7 years"},
			{Category: retention.CategoryAudit, Period: 12 * retention.Month, Keep: true, Note: "security logs kept 12 months"},
			{Category: retention.CategoryAuditCheckpoint, Period: 12 * retention.Month, Keep: true, Note: "with the audit log"},
			{Category: retention.CategoryRequest, Period: 3 * retention.Year, Keep: true, Note: "evidence of how each request was answered"},
			{Category: retention.CategoryEvent, Period: 24 * retention.Month, Note: "triggers outliving every rule that uses them"},
			{Category: meta.CategoryDeletionRequest, Period: DeletionRequestPeriod, Keep: true,
				Note: "proof that each Meta data deletion request was carried out"},
			{Category: social.CategoryMedia, Period: MediaPeriod,
				Note: "posts and videos of connected accounts at most 24 months after they were last fetched"},
			{Category: social.CategoryOAuthState, Period: retention.Day,
				Note: "OAuth states deleted a day after they expired"},
		},
	}
	have := map[string]bool{}
	for _, c := range cats {
		have[c.Name] = true
	}
	rules := p.Rules[:0:0]
	for _, r := range p.Rules {
		if have[r.Category] {
			rules = append(rules, r)
		}
	}
	p.Rules = rules
	return p
}

// SealProgress reports the progress of SealPlatformData.
type SealProgress struct {
	// Tenant is the tenant being sealed ("" for the account index).
	Tenant string
	// Sealed counts the values sealed so far, over every tenant.
	Sealed int
}

// SealPlatformData seals the platform data that a database created by an
// older version kept in clear: the schema migration moved it aside
// (social.TableUnsealed), and this seals each value into its row, tenant by
// tenant, in batches that commit alone; then it replaces the platform
// account ids of the account index by their keyed hash. An interrupted run
// resumes where it stopped; a second run finds nothing to do. progress, if
// set, is called after each batch. Open calls it; it returns the number of
// values sealed (account index rows included).
//
// On SQLite, when it sealed anything, it then rewrites the database file
// (VACUUM) so that no copy of the plaintext lingers in free pages. On
// PostgreSQL the dropped columns' old values stay in dead row versions
// until the tables are rewritten: have the tables' owner run VACUUM FULL
// on socialcrm_social_connections, socialcrm_social_media and
// socialcrm_social_raw_responses after the first Open.
func (s *SDK) SealPlatformData(ctx context.Context, progress func(SealProgress)) (int, error) {
	sys := tenancy.System(ctx, "socialcrm.seal")
	tenants, err := s.Social.PendingTenants(sys)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, tid := range tenants {
		tctx, err := tenancy.AsTenant(sys, tid)
		if err != nil {
			return total, err
		}
		base := total
		n, err := s.Social.SealPending(tctx, 0, func(done int) {
			if progress != nil {
				progress(SealProgress{Tenant: tid, Sealed: base + done})
			}
		})
		total += n
		if err != nil {
			return total, err
		}
		s.log.InfoContext(ctx, "socialcrm: sealed platform data", "tenant", tid, "values", n)
	}
	n, err := s.Social.SealAccountIndex(sys)
	total += n
	if err != nil {
		return total, err
	}
	if n > 0 && progress != nil {
		progress(SealProgress{Sealed: total})
	}
	if total > 0 && s.DB.Dialect().Name() == dialect.SQLite {
		// The plaintext the migration moved aside and this pass deleted
		// stays in the file's free pages: rewrite the file without them.
		for _, q := range []string{"VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"} {
			if _, err := s.DB.ExecContext(ctx, q); err != nil {
				return total, fmt.Errorf("socialcrm: seal platform data: %s: %w", q, err)
			}
		}
	}
	return total, nil
}

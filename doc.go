// Package socialcrm is an embeddable Go SDK that lets a CRM hold customer and
// social-media data the way its privacy policy promises: isolated per
// tenant, encrypted, minimal, and deleted on time.
//
// It is a set of packages, each usable on its own, wired together here:
//
//   - tenancy keeps tenants apart. Every tenant-owned model embeds
//     tenancy.Owned; bun hooks scope every query to the tenant in the
//     context and fail closed without one, a query Guard refuses SQL that
//     escaped the hooks, and PostgreSQL row-level security holds behind
//     both. It also owns members and roles, credentials and the
//     tamper-evident audit log.
//   - vault encrypts tokens and identifiers with per-tenant keys (Tink
//     AES-256-GCM envelope encryption) and destroys a tenant's key to make
//     its data and its backups unreadable.
//   - crm holds the CRM records: contacts with consent, companies, deals,
//     activities, conversations, invoices…
//   - social, meta and tiktok connect Facebook Pages, Instagram Business
//     accounts, Messenger and TikTok through OAuth with the fewest scopes a
//     feature needs, and check scopes before any call.
//   - retention ages data out, answers data-subject requests (access,
//     export, erasure) and purges closed tenants. Open registers the crm's
//     and social's resolvers, so a request names the person by any
//     identifier she gives (e-mail, phone, Messenger PSID, TikTok open_id,
//     Meta app-scoped id, contact id) and reaches all of her data in one
//     step; the identifiers are stored sealed, with a keyed hash to match
//     a later request.
//
// A host application opens its database and the SDK once at start-up; Open
// migrates, installs the Guard, wires the vault, the retention engine and
// the social store together, and refuses to start while a tenant-owned
// table has no retention category:
//
//	db, err := socialcrm.OpenDB("socialcrm.db") // or a postgres:// URL
//	if err != nil { … }
//	kek, err := vault.OpenKeyFile("socialcrm.keyset.json") // or vault.KMS(uri)
//	if err != nil { … }
//	sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db, KEK: kek,
//		Models: []any{(*myapp.Order)(nil)}, Categories: myapp.Categories()})
//	if err != nil { … }
//
// On PostgreSQL, DB connects as an application role that owns nothing and
// Config.Owner as the role that owns the tables: Open migrates through the
// owner and grants the application role only row access (Grant), and it
// refuses a DB whose role is a superuser, has BYPASSRLS or owns a
// tenant-owned table (a *RoleError). Open also keys the audit log with the
// vault's audit key.
//
// The pieces are also usable alone: Migrate, Grant, CheckRole, Guard,
// Categories and SealedColumns are what Open is made of.
// Open also seals, once, the platform data that an older version kept in
// clear (SealPlatformData).
//
// DefaultPolicy is the retention policy Open applies: raw platform
// responses 90 days; platform media and aggregated metrics 24 months;
// connections 30 days after their deauthorization or disconnection, and
// with them their media, metrics, raw responses, account-index rows and,
// for a Facebook Page or Instagram account, its Messenger and Instagram
// threads; expired OAuth states a day after expiry; legal keeps for
// invoices, the audit log and the records of answered requests.
//
// Every request then carries its principal (tenancy.WithPrincipal) and
// reaches tenant-owned data inside tenancy.RunInTx.
//
// OpenTelemetry is off until a host passes providers: Config.TracerProvider
// and Config.MeterProvider (Instrument) trace and time every query through
// bun's instrumentation — the SQL text without its values; meta and tiktok
// take WithTelemetry, social.OAuth2Config its TracerProvider and
// MeterProvider, and retentionriver.Telemetry gives River's middleware.
// Platform calls are recorded without their query string (tokens,
// appsecret_proof, codes) and with ids in their paths replaced by ":id";
// no trace context is sent to the platforms. Nothing is recorded through
// the global providers. The tests run the main paths with an in-memory
// pipeline and find no planted personal data, token or secret in any span
// or metric.
//
// The example server in examples/server shows all of it working:
//
//	go run ./examples/server
//
// Tables carry the socialcrm_ prefix and migrations are recorded in
// socialcrm_migrations, so the SDK lives beside a host application's own
// schema without collisions. The packages import only downwards —
// tenancy at the bottom, then vault and retention, then crm and social,
// then meta and tiktok — and internal/ holds plumbing that is never public
// API.
package socialcrm

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
//   - inbox bridges Messenger and crm: webhook events stored as crm
//     conversations, replies sent within Meta's window and stored
//     (SDK.MetaInbox builds one). meta itself knows nothing of crm.
//   - retention ages data out, answers data-subject requests (access,
//     export, erasure) and purges closed tenants. Open registers the
//     resolvers of crm, social and inbox, so a request names the person by
//     any identifier she gives (e-mail, phone, Messenger PSID or a plugin
//     guest's user_ref, TikTok open_id,
//     Meta app-scoped id, contact id) and reaches all of her data in one
//     step — her member account by its e-mail address, invoices sent to
//     her address or number — and an erased platform connection is
//     revoked at its platform first (through Config.Providers); the
//     identifiers are stored sealed, with a keyed hash to match a later
//     request.
//
// A host application opens its database and the SDK once at start-up; Open
// migrates, installs the Guard, wires the vault, the retention engine and
// the social store together, and refuses to start while a tenant-owned
// table has no retention category:
//
//	db, err := socialcrm.OpenDB("socialcrm.db") // or a postgres:// URL
//	if err != nil { … }
//	kek, err := insecurekeyfile.Open("socialcrm.keyset.json") // or vault.KMS(uri)
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
// then meta and tiktok, then inbox over meta and crm — and internal/ holds
// plumbing that is never public API.
//
// # Conventions
//
// Every package follows the same rules, so that what is learnt in one
// holds in the others:
//
//   - Constructors take functional options of one type per package
//     (meta.Option configures the Client, the providers, the Webhook and
//     the Callbacks alike; each reads the options that concern it).
//     Options validate their arguments; a nil Option means the default, and
//     so does a nil logger (WithLogger(nil) discards). Declarations are
//     plain struct literals (retention.Category, retention.Policy).
//   - A list narrows with a filter named XFilter (crm.ContactFilter,
//     social.ConnectionFilter) and pages with ListOptions{Limit, Cursor},
//     answering a Page[T] (crm, social, retention; meta.ListOptions pages
//     the Graph API's cursors; TikTok's video list keeps its numeric
//     cursor). Its iterator, All or AllX, takes the same arguments as the
//     List it walks and is an iter.Seq2[T, error] that yields an error at
//     most once, last (social.Store.All, meta's Pages.All; crm.All walks
//     any of crm's lists). Whatever grows with the data pages, including
//     audiences (crm.Scheduler.Due). Only a lookup whose length the schema
//     bounds returns a plain slice, and says its bound: a thread id's
//     conversations (crm.Conversations.FindThread, one per connected
//     account), a contact's current consent (crm.Consents.Current, one per
//     channel and purpose).
//   - Webhook handlers are built as NewWebhook(cfg, store, handle, opts...)
//     by both platform clients; feature names of the OAuth catalogues are
//     constants (meta.FeaturePages, tiktok.FeaturePublish).
//   - Each package that owns tables exports its retention categories as
//     Categories() (and Store.Categories() bound to a store that opens the
//     sealed columns); this package only puts them together (Categories)
//     and owns the default policy (DefaultPolicy).
//   - A platform write whose answer was lost is never sent again: it fails
//     with an error matching social.ErrOutcomeUnknown, and the client's
//     Lookup (tiktok Posting.Lookup, meta Pages.Lookup and
//     Instagram.Lookup) finds out whether it took place.
//   - No package exports a mutable variable: defaults are constants or
//     functions (tenancy.DefaultLockout()).
//   - The emulators metatest and tiktoktest have one shape: New(opts...)
//     or Start(t, opts...), URLs as methods named like the client
//     configuration's fields (GraphURL(), BaseURL(), AuthorizeURL()),
//     Requests and ClearRequests with []byte bodies, InjectFault, and
//     SendWebhook returning the *Delivery made.
package socialcrm

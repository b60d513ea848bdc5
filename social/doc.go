// Package social holds what every connected platform shares: the Provider
// interface, connected accounts (Connection) kept per tenant with their
// tokens sealed by the vault, the OAuth flow with PKCE (Flow), features
// and their scopes, scope checks (ScopeError), a token source that
// refreshes and persists rotated tokens safely across processes, and
// disconnection.
//
//	store, err := social.New(db, v, social.WithDisconnectHook(handToRetention))
//	flow, err := store.NewFlow(provider, social.FlowConfig{
//		Features: []string{"profile", "stats", "video.read"},
//		ReadOnly: true, // never a write scope
//		Purposes: []string{"creator-analytics"},
//	})
//	consentURL, err := flow.Begin(ctx) // redirect the user there
//	// … on the callback:
//	conn, err := flow.Complete(ctx, r.URL.Query())
//	sess, err := store.Session(ctx, conn.ID, provider) // for a typed client
//	client, err := tiktok.New(cfg, tiktok.WithSession(sess))
//	…
//	conn, err = store.Disconnect(ctx, conn.ID, provider)
//
// Run Migrations with tenancy's and the vault's, register Models with the
// tenancy Guard, and pass SealedColumns to vault.WithColumns so that key
// rotation reseals the tokens.
//
// # Providers
//
// tiktok.Provider and meta.Provider adapt those platforms; OAuth2Provider
// serves any platform that speaks standard OAuth 2.0 (RFC 6749 code grant
// with RFC 7636 PKCE S256, rotating refresh tokens, RFC 7009 revocation)
// from an OAuth2Config alone: its endpoints, scopes per feature, auth
// style, and an optional user-info endpoint naming the account. Register
// the providers once with WithProviders: Disconnect without a provider and
// RetryRevocations reach every platform through them, and
// socialcrm.SDK.Maintain runs the revocation retries and the state and
// delivery pruning of every tenant in one call.
//
// # Scopes
//
// A Provider publishes a catalogue of Features, each naming the scopes it
// needs and whether it writes. A Flow requests exactly the union of the
// scopes of the features it is configured with; with ReadOnly it refuses
// any write feature, and any scope only write features need
// (ErrWriteScope). Users may grant fewer scopes than requested: the
// Connection keeps both (Scopes, Requested; Declined is the difference),
// and typed clients check Scopes before every call, failing with a
// *ScopeError and sending nothing.
//
// # Flow
//
// Begin stores the state (its SHA-256, not the value) with a PKCE verifier
// sealed by the vault and the redirect URI (FlowConfig.RedirectURL or the
// provider's), which the code exchange sends again, valid for StateLifetime (10 minutes) and usable
// once. Complete spends the state before anything else, so a replayed
// callback never reaches the platform; it exchanges the code with the
// verifier, seals the tokens, creates or updates the tenant's connection
// of the account, and appends "connection.connected" to the tenant's audit
// log, with the granted and declined scopes and the purposes. The state
// carries a tag derived from the tenant, so a callback completed by
// another tenant fails with ErrStateTenant without revealing anything.
//
// # Tokens
//
// Tokens are stored only as vault.Sealed, bound to tenant, connection and
// field. Store.Token (and the oauth2.TokenSource and Session built on it)
// opens the access token in memory for a call. When it expires within the
// refresh window (WithRefreshWindow, default five minutes, at most half
// the token's lifetime), the refresh runs — detached from the caller's
// cancellation under RefreshTimeout, with the tenant's key loaded first so
// that it holds one database connection — in a transaction holding the
// connection's row (SELECT … FOR UPDATE on
// PostgreSQL, the write lock on SQLite), re-checks whether another process
// refreshed meanwhile, and stores the rotated tokens with a
// compare-and-swap on TokenVersion: with single-use refresh tokens, two
// processes refreshing at once spend the refresh token once, and both end
// with the new tokens. If that transaction fails after the platform
// answered (its database connection broke), the rotated tokens are saved
// again in new transactions under the same compare-and-swap (a
// disconnect that took the connection meanwhile has them revoked; a
// connection marked needs_reauth meanwhile through the spent refresh
// token is active again with them, see Store.Token); only a
// process that dies between the platform's answer and the save loses
// them, and the connection then becomes needs_reauth at the next refresh. A refresh token the platform refuses marks the
// connection needs_reauth. An access token refused during a call
// (Session.Refused, called by the typed clients) first gives way to a
// newer stored token or a refresh (ErrTokenRenewed: the client sends the
// request again, once); only when neither exists does the connection
// become needs_reauth.
//
// # Disconnect
//
// Disconnect deletes the sealed tokens, queues their revoke (both tokens
// sealed apart), marks the connection revoked and audits it, in one
// transaction; then the disconnect hook hands the connection to
// retention, and the revoke is made at the platform, which empties the
// queue entry (audited as connection.revoked). The platform is asked only
// after the commits of the whole cascade, so a process killed (a test uses
// SIGKILL) or a context cancelled while it is asked leaves no token on any
// connection and the revoke queued; a connection the hook has not taken
// (its process died first, or the hook failed) stays marked, and
// RetryRevocations hands it over after RevocationLease. If the
// platform's revoke fails, the revoke stays queued for RetryRevocations, which retries
// every platform registered with WithProviders (socialcrm.SDK.Maintain
// calls it for every tenant); a retry is claimed with a lease, so two
// processes never both call the platform, and each failure doubles the
// delay, up to a day. A revoke the platform refuses for its token
// (expired or revoked already; the Provider's error wraps ErrInvalidToken,
// as TikTok's does for invalid_grant) is not retried: the grant can no
// longer be used through that token, so it counts as made, audited as
// connection.revoked with revoke "token_invalid". A revoke endpoint
// answers a token it no longer knows with success, which proves nothing:
// TikTok's Revoke refreshes first when the access token has expired
// (Tokens.AccessExpiry, kept with the queued revoke) and revokes the new
// one: the Store seals the new tokens into the queued revoke before the
// revoke is sent (Tokens.Rotated), so a process killed between TikTok's
// refresh and its revoke leaves the live tokens queued, not the spent
// ones, and a revoke that fails after such a refresh keeps them for its
// retry (RotatedError). Meta's Revoke takes a token Meta refuses
// as revoked, and revokes with the app token when the user token expired.
//
// A connection made from another by Session.ConnectDerived (a Facebook
// Page behind the user who connected it) names it as ParentID (Derived
// lists them). Disconnect, AccountRemoved and Session.Removed revoke the
// derived connections first, each through the disconnect hook, so their
// data starts its retention period with the parent's.
//
// # Platform data
//
// A typed client's Sync stores, through Session.SaveSync, the account's
// media (upserted, without expiring CDN URLs), one metric Snapshot per
// sync (Store.Snapshots is the follower trend, with an EngagementRate),
// and, only when the application asks, the raw API answers. Every row
// carries the connection's Purposes. A metric the platform did not give
// (followers behind a declined scope, a count a kind of account does not
// have, a media item's views or likes its answer left out) is an unknown
// Count: stored as NULL, printed "unknown", JSON null, never 0;
// EngagementRate leaves out media whose views are unknown. Categories declares every table of the package for the
// retention engine (Store.Categories with the sealed columns opened for
// exports); erasing a connection erases what was fetched through it. The
// periods are the policy's (socialcrm.DefaultPolicy).
//
// Personal data of the platforms is stored only sealed by the vault,
// bound to tenant|record|field: a connection's display name and avatar URL
// (Connection.DisplayName, AvatarURL), a media item's title, description
// and share URL, a raw response's whole body. Callers read and write
// plaintext; Store.Get, List, Find, Derived, Media and RawResponseBodies
// open what they return, and Store.OpenSealed opens one stored value for a
// data-subject export. What stays in clear, and why: ids (the
// connection's account id is its key on the platform; media and raw
// response ids), timestamps, platforms, kinds, scopes, purposes, statuses,
// the endpoints called, and the metric figures of media and snapshots,
// which name no one. The account index keeps only a keyed hash of each
// platform account id (under a vault key of its own, as it is looked up
// across tenants).
//
// A database written by an older version kept those fields in clear: its
// schema migration moves the values into TableUnsealed and drops the
// plaintext columns; SealPending then seals them into their rows in
// batches that commit alone, and SealAccountIndex hashes the account
// index. Both resume after an interruption and find nothing to do the
// second time (the root package's SDK.SealPlatformData runs them for every
// tenant). Until SealAccountIndex has hashed them, index rows that name an
// account in clear route nothing: a tenant's statements may write its own
// index rows, and such a row naming a Page's public id routed the Page's
// webhooks to that tenant.
//
// A data-subject erasure (or a sweep) that deletes a connection still
// holding tokens follows Disconnect's rule: in the erasure's transaction
// the tokens move to the revoke queue (sealed apart, due at once), audited
// as connection.revoked with revoke "queued" and the reason "erased"; the
// platform is asked only after the commit (Store.Categories declares the
// BeforeErase and AfterErase hooks), through the provider registered for
// its platform (WithProviders), and the outcome is recorded as
// RetryRevocations records it (connection.revoked, or the failure kept
// queued, which no data-subject request drops). No network call holds the
// erasure's transaction; a process killed before the commit leaves the
// erasure to resume, one killed after it leaves the tokens only in the
// queue, for RetryRevocations. A platform that fails does not fail the
// erasure. A tenant purge does the same: no platform call holds any of
// its transactions, so a slow platform holds no lock. Without a provider
// the tokens go with the row and the platform is not told (a warning is
// logged); RetryRevocations logs a warning for queued revokes of a
// platform without a provider, which it cannot make.
//
// A tenant purge, or a sweep of CategoryRevocation, makes the queued
// revokes before their tokens and the tenant's key go, outside its
// transactions: when it begins (RetryRevocations, its start hook — the
// root package registers it with retention.WithTenantPurgeStartHook and
// retention.WithSweepStartHook, and a host that registers
// Store.Categories with an engine of its own does the same: a purge,
// every queued revoke of the tenant, whatever its schedule; a sweep,
// those queued at or before its cutoff, whatever their schedule — each
// claimed so that it is made once across processes, the tokens a revoke
// by refresh rotated stored with it before the revoke is sent) and, in a
// purge, after the commit of the batch that erased the connections; what
// is still queued when it reaches CategoryRevocation failed, or is held
// by another process's claim (one killed while it asked the platform
// holds it for RevocationLease), and stops the operation (a purge before
// the key goes; the sweep's receipt of CategoryRevocation counts it as
// Pending). A revoke made this way leaves the queue with its audit entry,
// not in the sweep's count of erased rows. Each failure is recorded
// (Attempts, LastError, and the next RetryRevocations attempt pushed back
// by the growing delay), the revokes the platform made are erased and
// audited (so that no later run calls the platform for them again), and
// the operation stops with ErrRevokePending; the next run retries, keeping the
// key, but not for ever: once the purge is RevokeAbandonAfter
// (7 days) past its due time (the tenant's grace period end), or, in a
// sweep, once the revoke was queued that long ago, a revoke that fails
// once more is given up and audited as connection.revoke_abandoned with
// the reason and the attempts (every one made, the last one included).
// The platform then keeps the grant until it expires or the user removes
// the app. Store.Revocations lists a tenant's queued revokes with their
// attempts, last failure and next retry. A purge whose platform is down
// for less than the bound completes on the first run after it recovers.
//
// Resolvers lets a data-subject request name the account by its platform
// id (SubjectAccount: a Meta app-scoped user id, a TikTok open_id; or
// SubjectOpenID): it leads to the tenant's connections of the account
// (SubjectConnection), and so to everything fetched through them.
//
// # Webhooks
//
// Platforms notify by account, not by tenant, so each connection is also
// recorded in an account index (TableAccounts, not tenant-owned, holding
// a keyed hash of the platform's account id, never the id; a tenant
// registry to the Guard, so that under a tenant's principal a statement
// reaches only that tenant's rows; Routed counts an account's tenants
// through a view, socialcrm_social_account_routes, confined alike, so a
// tenant learns that count only for an account it connected itself).
// AccountRemoved revokes the
// account's connection (and those derived from it) in every tenant as the
// system principal. Deliveries come at least once: Deliver records a
// delivery's keys in the same transaction as the handler's writes, so a
// crash loses nothing and nothing is stored twice — on PostgreSQL in one
// statement that also reads the account index rows of the accounts the
// delivery addresses, from which AccountTenants answers within the
// delivery, so routing a delivery to its tenants costs no round trip of
// its own (a delivery declared Idempotent, whose handler stores
// idempotently, records no keys and runs without a transaction: one
// statement reads the account index, and each of the handler's commits on
// its own). The index also records whether each connection is live
// (AccountTenant.Live), so routing need not read the connections; Once claims a key,
// runs a handler whose effects reach beyond this database, and marks it
// processed (a claim left by a dead process is taken over after its
// lease). Keys are stored as keyed hashes under a vault key, never as
// given: a platform's event key may be a plain hash of the sender's id.
// PruneDeliveries forgets keys after the platform's retry window.
//
// # Concurrency
//
// Store, Flow and Session are safe for concurrent use, across goroutines
// and processes sharing the database. A TokenSource keeps the context it
// was built with (oauth2.TokenSource has no context parameter): build one
// per request or job.
//
// # Errors
//
// Conditions without data are sentinels (ErrNotFound, ErrNeedsReauth,
// ErrRevoked, ErrWriteScope, ErrInvalidGrant…); typed errors carry data and
// match a sentinel:
//
//	var se *social.ScopeError
//	if errors.As(err, &se) { askForConsent(se.Missing) }
//	var st *social.StateError // st.Reason: ErrStateUsed, ErrStateExpired, ErrStateTenant, ErrStateUnknown
//	if errors.Is(err, social.ErrNeedsReauth) { askToReconnect() }
//
// # Security
//
// A client member (tenancy.RoleClient: an agency's client on the portal)
// reaches no connection: every Store method that reads, uses or changes
// the tenant's connections, and a Flow's Begin and Complete, refuse it
// with tenancy.ErrForbidden.
//
// # Creators
//
// A creator member (tenancy.RoleCreator: an agency's creator who connects
// their own account through a link) reaches only the connections it
// connected and what was pulled through them. Flow.Complete records the
// acting member on a new connection (Connection.MemberID; connections
// derived from it, such as a Facebook user's Pages, get the same member),
// and Media, Snapshot and RawResponse carry their connection's member.
// All four embed tenancy.MemberOwned, so under a creator's principal
// every query is confined to member_id = <creator> by the hooks and the
// Guard (see tenancy's Creators section):
//
//	creator := tenancy.WithPrincipal(ctx, member.Principal()) // RoleCreator
//	c, err := flow.Complete(creator, callback.Query())       // c.MemberID == member.ID
//	page, err := store.List(creator, social.ConnectionFilter{}, social.ListOptions{}) // only c
//	_, err = store.Get(creator, othersID)                    // ErrNotFound
//
// List, All, Get, Find, Session and TokenSource (so no typed client, sync
// or publish), Derived, Disconnect, MarkSynced, MarkNeedsReauth, Media,
// Snapshots, RawResponses and RawResponseBodies see another member's
// connection as absent: ErrNotFound, an empty result, or a write of no
// row. A creator completing a flow for an account that the tenant already
// holds through someone else's connection gets ErrAccountTaken (which
// matches tenancy.ErrForbidden) and nothing is written: the creator does
// not take that connection over. Owners, admins, staff and the system
// reach every connection. Connections made before connections recorded
// their member have MemberID "", the tenant's own, which no creator
// reaches. On PostgreSQL, row-level security holds the member boundary
// too (tenancy.EnableMemberSecurity on the four tables).
//
// Tokens never appear in errors, logs, audit entries or JSON: Grant holds
// them as vault.Secret, Connection marshals without them, and the audit
// entries name connections, platforms and scopes only. Every query runs
// through tenancy.RunInTx, so connections are scoped to the context's
// tenant and, on PostgreSQL, to row-level security.
//
// # Testing
//
// There is no socialtest package: a Store over a test database and a
// platform emulator (tiktok/tiktoktest, meta/metatest) is the real thing.
// Share one fake clock (WithClock) between the store and the emulator to
// expire states and tokens without sleeping.
package social

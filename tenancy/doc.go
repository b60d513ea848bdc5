// Package tenancy keeps each tenant's data apart: it carries the acting
// principal in a context, scopes every query on a tenant-owned model to that
// principal's tenant, refuses queries that have no tenant, and backs all of
// this with PostgreSQL row-level security. It also owns what every tenant
// has: its lifecycle (active → closed → purged), members with roles,
// credentials (bcrypt passwords, hashed API keys, lockout), and a
// tamper-evident audit log.
//
//	type Contact struct {
//		bun.BaseModel `bun:"table:acme_contacts,alias:c"`
//		tenancy.Owned
//		ID   string `bun:"id,pk"`
//		Name string `bun:"name,notnull"`
//	}
//
//	guard, err := tenancy.InstallGuard(db, (*Contact)(nil)) // once, at start-up
//	ctx = tenancy.WithPrincipal(ctx, member.Principal())
//	err = tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
//		return tx.NewSelect().Model(&contacts).Scan(ctx) // only this tenant's rows
//	})
//
// # Scoping
//
// Three walls stand between tenants:
//
//  1. Owned's bun model hooks add "tenant_id = <tenant>" to every select,
//     update and delete bun runs with hooks on the model (Scan,
//     ScanAndCount, Exec of updates and deletes), stamp every insert, and
//     refuse a row that names another tenant (ErrTenantMismatch). Without a
//     tenant in the context they fail with ErrNoTenant before any SQL is
//     sent. A top-level OR in the WHERE (Where(a).WhereOr(b), which bun
//     renders without parentheses) is refused with ErrTopLevelOr, because
//     the appended predicate would bind only to b; group alternatives with
//     WhereGroup. bun does not run model hooks for a query it formats as a
//     subquery, union arm or CTE, nor for Count, Exists and Rows: Apply
//     Scope to those.
//  2. The Guard (InstallGuard) parses every statement and refuses one in
//     which any reference to a tenant-owned table — in a subquery, CTE,
//     union arm, join, RETURNING or upsert — is not confined to the
//     context's tenant in its own scope, any write that assigns tenant_id
//     another value, any ON CONFLICT whose target does not begin with
//     tenant_id, REPLACE and INSERT OR REPLACE, TRUNCATE, schema changes of
//     tenant-owned tables (ALTER, RENAME, DROP, triggers, unique indexes
//     not beginning with tenant_id; on SQLite the application's handle
//     owns every table) and, under a tenant's principal, of the tenant
//     registries and the migration tables, a temporary relation named
//     like any table the Guard or the DB knows (or any socialcrm_ table),
//     under a tenant's principal any schema, trigger, index or privilege
//     change (CREATE INDEX and DROP INDEX: on SQLite an index over an
//     expression that fails on a value told tenant B whether another
//     tenant's row held it, and B's unique index or dropped index failed
//     A's writes),
//     and any relation of such a name in any schema (PostgreSQL's default
//     search path puts a schema named like the role first), any statement that names a
//     full-text index (FullTextIndex), its shadow tables or its watermark
//     but the one
//     exact look-up it allows, SQLite's dbstat, sqlite_dbpage and sqlite_stat tables (their
//     samples held other tenants' ids), SQLite's last_insert_rowid(),
//     changes() and total_changes() (they answer about the statements the
//     pooled connection ran before, another tenant's) and a PRAGMA that sets
//     a value (it outlives the statement on a pooled connection: a
//     secure_delete turned off left another tenant's erased rows in the
//     file), VACUUM INTO and ATTACH, PostgreSQL's statistics (pg_stat_*,
//     pg_stats, the size functions, pg_class.reltuples: they count every
//     tenant's rows, and pg_stat_activity shows other tenants'
//     statements) and EXPLAIN ANALYZE, a SET without LOCAL, ALTER
//     ROLE/DATABASE/SYSTEM and session-level advisory locks under a
//     tenant's principal (each outlives the statement, on the pooled
//     connection or on the role every tenant shares), two-key advisory
//     locks (the system's purge and erasure claims) under a tenant's
//     principal, under a tenant's
//     principal any statement on the tenant registries (the tenants
//     table, the vault's key list) not confined to that tenant's own row,
//     text SQLite tokenizes otherwise than
//     the parser
//     (nested comments, E-prefixed strings, $a$, [x'] names), and anything that
//     could change app.* settings, switch row-level security or run SQL it
//     cannot see (set_config, SET, RESET, DO, function definitions,
//     policies) other than RunInTx's and EnableRowSecurity's own
//     statements, under a tenant's principal counters that every
//     tenant's work moves (SQLite's rowid, PostgreSQL's transaction ids,
//     xmin, ctid, the write-ahead log's position, sequences, EXPLAIN's
//     estimates; see Security), and statements that begin or end a
//     transaction (BEGIN,
//     START TRANSACTION, COMMIT, END, ROLLBACK, PREPARE TRANSACTION):
//     sent in RunInTx they ended its transaction early, so the rest of the
//     callback committed even when it failed, and sent in RunScoped on
//     SQLite they returned the pooled connection inside a transaction that
//     ran the next user's statements (SAVEPOINT, RELEASE and ROLLBACK TO
//     still run); the Guard's doc lists the rules. It refuses in its query
//     hook and again at the database driver, so no later hook can undo a
//     refusal. It also refuses bun relations between tenant-owned models
//     that do not join on tenant_id (ErrUnsafeRelation). Unique keys of
//     tenant-owned tables should start with tenant_id, so that upserts can
//     name them.
//  3. On PostgreSQL, every tenant-owned table has a forced row-level-security
//     policy comparing tenant_id with the transaction's app.tenant_id, which
//     RunInTx sets (and a nested RunInTx restores when it returns), and
//     RunScoped sets for each statement it runs. It holds against raw SQL
//     on a handle without the Guard, as long as that SQL does not set
//     app.tenant_id itself, which the Guard refuses on a guarded handle.
//     Outside RunInTx and RunScoped no tenant-owned row is visible at all,
//     so on PostgreSQL all tenant-owned access goes through them. On a
//     handle from socialcrm.OpenDB the setting costs no round trip of its
//     own: it travels with the statement it governs (see Security).
//     Migrations run as an owner role; the application connects as a role
//     that owns no table and holds only DML on them (socialcrm.Grant), so it
//     cannot ALTER a table's row security or CREATE, ALTER or DROP a policy
//     (PostgreSQL refuses it with insufficient_privilege, which a test
//     proves for each), and the Guard refuses those statements before they
//     are sent. socialcrm.Open refuses a connection whose role is a
//     superuser, has BYPASSRLS or owns a tenant-owned table.
//
// The tests prove each wall on its own: the isolation property test runs
// 10,000 random operations of three tenants on both databases, a third of
// them query shapes the hooks do not reach, and sees and writes no other
// tenant's row; each setting and row-security escape is refused by the
// Guard on both databases; a hook that tries to undo a refusal fails at the
// driver.
//
// Maintenance across tenants (retention sweeps, key rotation) runs as the
// system principal (System), which has no tenant of its own: it lists
// tenants with Store.Tenants and acts on each through AsTenant, so the walls
// stay up, and its name is recorded as the actor of what it does.
//
// # Creators
//
// Inside a tenant, the roles draw boundaries of their own. Owners, admins
// and staff act for the tenant and reach all of its rows. A client member
// (RoleClient) sees only its client relationship's records (package crm).
// A creator member (RoleCreator) is an external person — an agency's
// creator — who connects their own platform accounts and, with them,
// entrusts the tenant with what is pulled through them for the purposes
// they consented to; each creator's account is theirs alone, so a creator
// reaches only its own:
//
//   - rows of a MemberOwned model (social's connections, media, snapshots
//     and raw answers) whose member_id is the creator's. MemberOwned's
//     hooks add "member_id = <creator>" to every select, update and delete
//     next to the tenant predicate, Scope adds it for Count, Exists and
//     Rows, an insert is stamped with the creator and a row naming another
//     member is ErrForbidden; under a creator's principal the Guard holds
//     every reference to such a table — subquery, join, CTE, union arm,
//     raw SQL, RETURNING, the rows an INSERT writes, an UPDATE's SET, an
//     upsert's conflict target — to the creator's member_id as it holds
//     every reference to a tenant-owned table to tenant_id, and a
//     statement that names another member is ErrForbidden;
//     On PostgreSQL row-level security holds it too: each MemberOwned
//     table has a restrictive policy (EnableMemberSecurity) comparing
//     member_id with app.member_id, which RunInTx and RunScoped set with
//     app.tenant_id — to the creator's member under a creator's principal,
//     empty for everyone else, in the same round trip on a handle from
//     socialcrm.OpenDB — so raw SQL on a handle without the Guard sees
//     only the creator's rows; the Guard refuses any statement that
//     changes app.member_id as it does for app.tenant_id;
//   - nothing else of the tenant: CRM records, data-subject requests,
//     legal holds, exports, members and API keys refuse it with
//     ErrForbidden (their role checks do not list the creator role).
//
// A creator principal without a member (an API key given the creator role)
// reaches no MemberOwned row (ErrForbidden, and a member setting no row
// has). Rows with an empty member_id are the tenant's own — made by staff,
// an API key without a member, or before rows recorded their member — and
// no creator reaches them.
//
// Limits: a member whose role changes keeps the member_id of the rows it
// made: a staff member made a creator reaches the connections it made as
// staff. Tenant-owned tables that are not MemberOwned (social's flow states
// and revocation queue) are confined to the tenant only; no public path
// gives a creator their rows.
//
// # Concurrency
//
// Store, AuditLog and Guard are safe for concurrent use. Appends to one
// tenant's audit log from many goroutines or processes form one chain:
// they wait for each other (on PostgreSQL a transaction-level advisory
// lock per tenant, held until the appending transaction ends; SQLite has
// one writer at a time), so contention delays an append but does not fail
// it. An append inside a caller's transaction holds that tenant's chain
// until the transaction ends: keep such transactions short.
//
// # Errors
//
// Conditions without data are sentinels (ErrNoTenant, ErrUnscoped,
// ErrForbidden, ErrInvalidCredentials…); errors with data are types that
// also match a sentinel:
//
//	var locked *tenancy.LockedError
//	if errors.As(err, &locked) { retryAfter := locked.Until }
//	if errors.Is(err, tenancy.ErrTampered) { … }
//	var bad *tenancy.ValidationError // bad.Field, bad.Reason
//
// # Security
//
// On a PostgreSQL handle from socialcrm.OpenDB each connection keeps the
// tenant it last set in its session between statements
// (set_config('app.tenant_id', tenant, false)), so that a tenant's next
// statement on that connection is sent alone, with nothing for the
// setting: that is what makes a scoped read one plain query. A statement
// under another tenant, or under none — bun code without a principal,
// database/sql directly, a pinned connection, a prepared statement, a
// transaction without a tenant — sets its own value, or the empty one,
// in its own round trip first, so it never runs under the previous
// user's tenant and a statement without a tenant sees no tenant-owned row.
// The connection trusts what it set only once that is sure to stay (the
// statement's implicit transaction, or RunInTx's transaction, committed)
// and forgets it — sets it again — after anything that might have undone
// or changed it: an error, a cancellation, a rollback or rollback to a
// savepoint, a statement that leaves a transaction of its own open, or SQL
// that could set a setting or end a transaction (set_config, SET, RESET,
// DISCARD, pg_settings, transaction control, DO, CALL, several statements
// in one). Only a server function that sets app.tenant_id behind an
// innocent-looking call escapes that check; the application role cannot
// define one through a guarded handle. The driver's pgx connection is not
// reachable from the handle (sql.Conn.Raw gets a wrapper with unexported
// fields). The tests prove it on one shared connection: after tenant A's
// statements each of those users sees none of A's rows, and thousands of
// random operations of two tenants (reads, writes, refused and failing
// writes, commits, rollbacks, nested scopes, cancellations) never see each
// other's rows. Because the session is the connection's own, connect such
// a handle to PostgreSQL directly or through a session-pooling proxy; a
// transaction-pooling one would hand one session's tenant to another
// client's statements. Behind one, add socialcrm_settings=transaction to
// the DSN: every scoped statement then carries the tenant
// transaction-local in its round trip, and no session keeps it.
//
// What a tenant's statements still reach beyond its own rows, by design
// or as a known limit:
//
//   - Two tenants that connected the same platform account learn that
//     they share it, and how many tenants do: social.Store.Routed counts
//     the live routes of an account inside the writing tenant's own
//     statement (so that a webhook's write fails if a route changed since
//     it was looked up), through a view that answers a tenant only for the
//     accounts it connected itself. The account index is otherwise
//     confined to the tenant's own rows, like every registry.
//   - A statement without a principal is not a tenant's: sign-up,
//     migrations, webhooks and callbacks run so, and reach every row of
//     the registries (the list of tenants, the vault's key list, the
//     webhook deliveries); on PostgreSQL row-level security still hides
//     every tenant-owned row from it. The walls hold against code that
//     keeps the principal it was given, not against code that builds
//     another (WithPrincipal, System): a principal is not a credential.
//   - Counters of the whole server or file move with every tenant's
//     work. Under a tenant's principal the Guard refuses those a
//     statement names (counters.go, guard_xids.go): SQLite's rowid,
//     sqlite_sequence, a row's offset in the file (sqlite_offset) and
//     the write-ahead log's page count (PRAGMA wal_checkpoint answered 3
//     after one insert of another tenant's; the SDK's own checkpoint after
//     an erasure runs); PostgreSQL's transaction ids (the functions, and
//     the catalogues' columns that hold one: age(datfrozenxid) counted
//     every tenant's writing transactions), snapshots and their exported
//     names, commit times, a row's xmin, xmax, ctid, cmin and cmax, the
//     write-ahead log's position, sequences, the sizes of tables,
//     databases and tablespaces, and EXPLAIN's estimates (EXPLAIN (COSTS
//     false) runs; the plan it shows still follows statistics of every
//     tenant's rows).
//     What no statement can confine remains: a statement's time depends
//     on the load of every tenant, and a host table whose key comes from
//     a sequence or AUTOINCREMENT (filled in by the database, returned by
//     RETURNING) numbers every tenant's rows together — give tenant-owned
//     tables random keys, as socialcrm's (NewID) are.
//   - Transaction-level advisory locks of one bigint key share one space
//     across the database, and a tenant's statements may take them: the
//     SDK's own statements take them under the tenant's principal (the
//     audit chain, crm's contact identifiers), and crm's contact create
//     calls a server function that locks the keys it is given. So a
//     tenant blocks, or probes, another tenant's work wherever it can
//     compute the other's key. It cannot for crm's identifiers (their keys
//     hash per-tenant blind indexes) nor for a keyed audit log
//     (WithAuditKeys, which socialcrm.Open passes): its chain's key is a
//     MAC under the tenant's audit key. An unkeyed log's chain key is a
//     hash of the tenant's id: knowing tenant A's id, tenant B held it
//     with pg_advisory_xact_lock and every audited action of A waited
//     until B's transaction ended (a hold of 300 ms delayed A's append by
//     304 ms), and pg_try_advisory_xact_lock answered false exactly while
//     A held its chain — one bit of A's activity per probe
//     (TestS17AdvisoryLocksOfAnotherTenantLastTheTransaction). The wait
//     lasts no longer than B's transaction; bound transactions on the
//     application role (idle_in_transaction_session_timeout,
//     statement_timeout) to bound it. The same holds for the constant
//     key of the migrations: B's transaction holding it kept a replica's
//     migrations of a new release waiting until it ended
//     (TestS17TenantTransactionDelaysMigrations). Session-level locks, which outlive
//     the transaction, and two-key locks, the space of the system's purge
//     and erasure claims (B held A's purge claim, and purge runs skipped
//     A), are refused under a tenant's principal.
//
// Passwords are stored as bcrypt hashes of cost 12 (PasswordCost); an
// unknown email costs the same bcrypt time as a wrong password. API keys
// carry 256 random bits, are shown once, and are stored only as SHA-256
// hashes. Failed sign-ins (unknown e-mail, wrong password, lockouts,
// unknown or revoked API keys) are audited with their reason, never with
// the e-mail, password or key tried.
//
// The audit log chains each entry to the previous one. With audit keys
// (WithAuditKeys; socialcrm.Open uses the vault's) each entry is
// authenticated with HMAC-SHA-256 under a per-tenant key that the database
// holds only wrapped by the key-encryption key, so a database writer cannot
// recompute the chain: Verify finds an edited entry even with every later
// hash recomputed, an entry written without the key after a keyed one, a
// rewritten chain with no keyed entry, and the oldest entries deleted
// behind a forged truncation record. Checkpoint returns a signed
// AuditCheckpoint (head, entry count, time) to keep outside the database;
// handed back to Verify it also reveals forged appends and entries cut off
// or replaced after it. In the database the log is append-only: triggers
// abort UPDATE and DELETE on SQLite and PostgreSQL, and on PostgreSQL the
// application role holds no UPDATE or DELETE privilege; Truncate is the one
// way entries leave (see its documentation). Whoever holds the owner role
// or the SQLite file can still drop the triggers: the keyed chain is what
// shows it then.
//
// Existing chains migrate on their first keyed Append: it writes an
// "audit.rekeyed" entry linking to the last unkeyed entry, and from there
// the chain is keyed; the unkeyed entries before it are pinned by that
// link. Until a chain has a keyed entry, Verify with keys refuses it
// (ErrTampered, "no entry written with the audit key"): call Checkpoint
// once per tenant after upgrading to re-key every chain. Every writer of
// one database must then use the keyed log (Store.Audit, AuditLog.In,
// vault.Vault.AuditLog). Audit entries record actors, actions and targets,
// never secrets.
//
// With WithSealer (socialcrm.Open passes the vault) member names are
// stored only sealed, bound to the tenant, the member and the field, and
// opened by Members; the e-mail address, the sign-in name, stays in clear.
// Without a Sealer names are stored in clear.
//
// # Testing
//
// Tests run on SQLite and, when SOCIALCRM_TEST_POSTGRES names a server, on
// PostgreSQL too, as a role that row-level security binds (see the
// repository README).
//
// A cost-12 bcrypt hash takes a quarter of a second, and several seconds
// under the race detector. Tests that sign up and sign in often can pass
// WithInsecurePasswordCost(4) to NewStore (socialcrm.Config has the same
// field): passwords are then hashed, and unknown emails compared, at that
// cost. NewStore refuses the option with ErrNotTesting in a program that
// is not a test binary; tests of the default cost must leave it out.
package tenancy

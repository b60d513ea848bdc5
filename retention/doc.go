// Package retention is the generic retention, erasure and
// data-subject-request engine: packages declare their data as categories, a
// policy gives each category its period and trigger, and the engine sweeps
// what is due in bounded, crash-safe batches, honours legal holds, answers
// access, export and erasure requests with deadlines, purges closed tenants
// (then crypto-shreds their keys through a hook), writes a receipt of every
// erasure to the tenant's audit log, and renders the data map a privacy
// policy is written from.
//
// retention is a mechanism: it knows nothing of contacts or platforms. crm,
// social and tenancy declare their tables to it:
//
//	engine, err := retention.New(db,
//		retention.WithPolicy(retention.Policy{Name: "2026", Rules: []retention.Rule{
//			{Category: "social.raw_response", Period: 90 * retention.Day},
//		}}),
//		retention.WithTenantPurgeHook(v.DestroyKey)) // v is the *vault.Vault: crypto-shredding
//	err = engine.Register(retention.Category{
//		Name:       "social.raw_response",
//		Table:      "social_raw_responses",
//		Subject:    map[string]string{"account_id": "account_id"},
//		Time:       "fetched_at",
//		LegalBasis: "contract",
//		Purpose:    "raw platform API responses, for reprocessing",
//	})
//	err = engine.Check(ctx)                 // every named table and column exists
//	left, err := engine.Uncovered(ctx)      // tenant-owned tables without a category: want none
//
//	sys := tenancy.System(ctx, "retention") // maintenance runs as the system principal
//	report, err := engine.Sweep(sys, time.Now())
//	results, err := engine.PurgeTenants(sys, time.Now())
//
//	err = engine.RegisterResolver("email", crmStore.Resolvers()["email"]) // e-mail → contact ids
//	req, err := engine.Submit(ctx, retention.Request{Kind: retention.KindErasure,
//		Subject: map[string]string{"email": "ann@example.com"}})
//	_, err = engine.SetVerification(ctx, req.ID, retention.VerificationVerified)
//	receipt, err := engine.Erase(ctx, req.ID) // receipt.Outcome: data_found or no_data_found
//	receipts, err := engine.ResumeErasures(sys) // scheduled: finishes erasures cut short
//
// # Categories and policies
//
// A Category names a tenant-owned table, how a data subject's rows are found
// (identifier kinds mapped to columns, or to SQL conditions for joins), the
// column that ages a row, the erase action (delete, or anonymize named
// columns with stated values), the legal basis and purpose, an optional
// BeforeErase hook (revoke a token at the platform) and the columns an
// export leaves out. A Policy gives categories Rules: a period after the
// row's age, after a named event recorded for its subject (RecordEvent:
// "connection.deauthorized"), or a legal-obligation Keep that spares rows
// from erasure requests and tenant purges until the period ends (invoices,
// 7 years). The engine ships no policy of its own: socialcrm.DefaultPolicy
// is the SDK's. TenancyCategories and OwnCategories declare tenancy's and the engine's own
// tables; the audit log is truncated through tenancy.AuditLog.Truncate, never
// deleted row by row, so its hash chain still verifies.
//
// # Data subjects
//
// A request names the person by whatever identifiers she gives, by kind
// ("email", "phone", "thread_id", "open_id"). Packages register a Resolver
// per kind they can follow (RegisterResolver): an e-mail address leads to
// the ids of every contact holding it, a contact id to its conversations'
// thread ids, an account id to connection ids. Erase and Export first
// Resolve the identifiers to the full set of subject keys, following
// resolvers from one key to the next until nothing new turns up (bounded by
// WithResolutionLimits: past them, a *ResolutionError, never a partial
// answer), then visit every category that finds rows by any key. Submit
// refuses a kind that no resolver and no category knows with an
// *UnknownKindError listing the known kinds (Kinds). TenancyResolvers
// finds a tenant's member accounts by e-mail address in any case and
// spacing, as tenancy stores them.
//
// An erasure never leaves a tenant without an owner, as
// tenancy.Store.RemoveMember refuses to (ErrLastOwner): when the e-mail
// address is the tenant's last owner's, TenancyCategories' member category
// keeps her account whole (e-mail address, name, password hash) and the
// receipt counts it as Kept, its Rule ending "spared: " + SpareLastOwner;
// every other category is erased as usual, her API keys included. Once the
// tenant has another owner, a new request erases the account. A Category
// declares such exceptions with Spare.
//
// Receipts and export manifests list every category searched with its row
// counts and the kinds of keys searched with their numbers, never values.
// A request that found nothing has the outcome OutcomeNoDataFound: an
// erasure closes as StatusNoDataFound, and an export request completed by
// Close does too, never as a plain "completed". Each erasure batch adds its
// count to the request's Erased counts in its own transaction, so the final
// receipt and the completion audit entry count every run of an erasure
// that was interrupted and resumed; ResumeErasures, run on a schedule as
// the system, resumes every open verified erasure. Every export is written
// to the audit log (the actor, the request, counts).
//
// An erasure does not complete while it can still find rows about the
// person. Once a pass over the categories is done, Erase resolves the
// subject again, from every key it found (so a contact created meanwhile
// with her address is found too), and counts in every category the rows
// matching those keys that it would erase (not held, spared, kept or
// already anonymized). If there are any — a note written for her while
// the erasure was past the notes, a duplicate contact created during the
// run — it runs those categories again, in their order, their counts
// added to the same request and receipt. After ErasePasses passes that
// each left rows, Erase returns ErrSubjectChanging and the request stays
// open, counting what was erased; a later Erase (or ResumeErasures)
// finishes it (crm's TestS15EraseLeavesNothingAWriteAddedMidRun,
// TestS15EraseThatNeverCatchesUpStaysOpen). Limits: a row written after
// the last check, before the completion is recorded, comes after the
// erasure; and the check finds a contact only through the subject's keys
// as they resolve then — a contact created during the run that shares an
// address only with contacts named by id (crm's SubjectContact leads to
// duplicates through the stored contact) is not found once those are
// erased: name the person by her e-mail address or phone number as well.
//
// With WithIdentifierProtection (the root package wires the vault), the
// identifiers are stored only sealed, with a keyed hash per kind: Match
// finds a person's earlier requests by the hash, and ProtectIdentifiers
// seals requests stored in clear before. A subject hold's identifier is
// stored the same way; the engine opens the tenant's subject holds when
// an operation begins and excludes the rows they hold by the opened
// values.
//
// A category's Files hands Export the files its rows stand for (an
// attachment's bytes), streamed into the archive under the category's
// name; its AfterErase hook runs only after the batch that erased the rows
// commits (deleting those bytes), with the ids recorded in the batch's
// transaction so that the next run finishes what a crash interrupted. A
// package deleting rows itself records the same work in its transaction
// with RecordAfterErase, does it once committed and clears it with
// ClearAfterErase; what it could not do, the engine's next run in the
// tenant does (and a batch whose BeforeErase hook recorded work does it as
// soon as the batch commits).
//
// # Legal holds
//
// PlaceHold places a hold on the whole tenant (HoldTenant), on a data
// subject's rows — every row a request by her identifier would reach,
// resolved afresh by each operation as a request's identifiers are
// (HoldSubject) — or on one row of one category (HoldRecord); while it is
// active, sweeps, erasure requests and tenant purges leave the rows it
// covers and count them as Held in their receipts, and ReleaseHold lets
// the next run erase them. A category whose rows only exist with a row of
// another category declares it as Category.HeldWith (crm's name index
// rows, which triggers delete with their contact, are held with
// crm.contact): a record hold on the owner's row then holds the rows whose
// ID column holds that row's id too, and PlaceHold refuses a record hold
// on the dependent category itself with a *ValidationError naming the
// category to hold instead, since its rows would go with their owner
// anyway. A record hold placed on such a category before it declared
// HeldWith does not keep the owner's row (whose erasure may take the
// dependent rows with it): release it and hold the owner's row instead.
//
// # Tenant purges
//
// PurgeTenants erases a closed tenant once its grace period ended (the
// tenant's PurgeAfter), category by category, then runs the purge hooks
// (destroying the tenant's key) and marks it purged. Start hooks
// (WithTenantPurgeStartHook) run first, outside any transaction, for
// work outside the database that the categories then find done (social's
// queued platform revokes), so that no network call holds a batch; a
// sweep runs its own (WithSweepStartHook, which read the sweep's cutoffs
// with SweepCutoff) the same way. A BeforeErase hook
// that fails stops the tenant's purge before the hooks, its batch rolled
// back (or, when it returns an *UnfinishedError, committed without the
// rows it names), and the next run tries again; the tenant stays due. A hook that
// waits on something outside the database reads PurgeDue, the time the
// purge was due, which persists where the failed run's writes do not, and
// gives up once the purge is overdue by a bound it documents: social's
// queued platform revokes are given up, audited as
// connection.revoke_abandoned, RevokeAbandonAfter (7 days) past the due
// time, so a platform that keeps failing delays a purge by at most that
// (plus the interval between runs) and never keeps the tenant's key for
// ever.
//
// # Crash safety
//
// Every erasure runs in batches (WithBatchSize, default 1,000 rows): one
// short transaction selects a batch of due ids, runs the hook, deletes or
// anonymizes exactly those rows, and appends the receipt, so a batch and
// its receipt commit together or not at all. What is due is recomputed on
// every run, anonymized rows no longer match, and spent events are removed
// only after every rule has processed them: an interrupted Sweep, Erase or
// PurgeTenants is completed by running it again. The crash test kills a
// child process at dozens of points on SQLite and PostgreSQL and compares
// the end state with an uninterrupted run.
//
// # Concurrency
//
// An Engine is safe for concurrent use; Register may be called while other
// operations run. The operations are synchronous functions that start no
// goroutines, so any scheduler can call them (a cron job, a loop with a
// ticker, or River through retention/retentionriver, which makes them
// durable jobs; that is a module of its own, so only its users require
// River). Two sweeps running at once do no harm: each batch erases rows
// by id and its receipt counts the rows its statement affected, so a deleted
// row is counted once. Runs of one erasure request never overlap: a second
// Erase of it (another replica, ResumeErasures, a second click) waits for
// the run in progress — in the process, and on PostgreSQL across processes
// through a session advisory lock on a connection of its own — and then
// returns ErrClosed; Receipt answers what the completed request recorded.
// Two tenant purges meet the same way (the second skips the tenant).
// Returned slices belong to the caller.
//
// # Errors
//
// Conditions without data are sentinels (ErrNotVerified, ErrAlreadyExtended,
// ErrNotFound, ErrClosed, ErrNotCompleted, ErrUnknownCategory); bad declarations and input are
// typed errors:
//
//	var ce *retention.CategoryError   // ce.Category, ce.Field, ce.Reason
//	var pe *retention.PolicyError     // pe.Policy, pe.Category, pe.Reason
//	var ve *retention.ValidationError
//	var uk *retention.UnknownKindError // uk.Kind, uk.Known
//	var re *retention.ResolutionError  // re.Limit, re.Max
//	if errors.As(err, &ce) { … }
//
// tenancy's errors pass through: tenancy.ErrNotSystem when Sweep or
// PurgeTenants runs without the system principal, tenancy.ErrForbidden when a
// staff member tries to erase, export or verify a request's identity (a
// verified erasure runs by itself), or a client or creator member touches
// a request at all. Sweep and PurgeTenants carry on with
// the other tenants after an error in one and return the errors joined.
//
// # Security
//
// Every statement runs inside tenancy.RunInTx for one tenant at a time,
// through tenancy.AsTenant, with an explicit tenant_id predicate, so the
// Guard and PostgreSQL row-level security stay in force for the engine too.
// Table and column names in categories must be plain identifiers and subject
// conditions may only use the ?value and ?tenant placeholders: identifiers
// are never spliced in from request data. Receipts and logs carry counts,
// categories and identifier kinds, never identifier values or row contents.
// Exports leave out each category's Omit columns (password hashes, sealed
// tokens) and are streamed. In the CSV files, text that a spreadsheet
// would run as a formula (starting with '=', '@', or '+' or '-' and not a
// number) has an apostrophe in front; the JSON files hold every value
// exact. A category's Sealed columns hold the subject's
// own data encrypted by the package that declared them (a contact's e-mail
// address): Export asks that package's SealedColumn.Open for each row's
// plaintext and writes it in clear into the archive only — an access
// request returns all of the subject's data, and the engine itself never
// holds a key. A category's Derived columns are exported as the
// declaring package's own SQL expression gives them (a declaration, like
// its Subject conditions, with only the ?tenant placeholder), where the
// stored value may lag behind the data: crm's conversations on PostgreSQL
// export the exact last message time. The CSV file of the category being exported is
// spooled, compressed, to one temporary file (WithTempDir; mode 0600,
// unlinked at once where the system allows it, always removed before Export
// returns), because the zip format needs it whole after the JSON file that
// the same read of the rows feeds. The spool is sealed with a Tink
// streaming AEAD key (AES-256-GCM-HKDF, 4 KB segments) made for that
// export from the system's random source and never written anywhere: the
// file's bytes, read through its descriptor while the export runs or from
// the disk after a crash, hold no personal data one can read
// (TestExportSpoolLeaks). The archive Export writes to its writer is in
// clear: it is the answer to the person, and where the caller keeps it is
// the caller's to protect.
//
// Under WithIdentifierProtection the engine's own records keep no
// identifier a person gave in clear: a request's identifiers, a subject
// hold's and a recorded event's (RecordEvent) are stored sealed, bound
// to the record, beside the tenant's keyed hash of each; sweeps, holds
// and requests open or hash them in memory. ProtectIdentifiers seals
// those an older version stored in clear.
//
// On SQLite, once an erasure, a tenant purge or a sweep that erased rows
// has committed, the engine runs a TRUNCATE checkpoint: the pages it
// changed reach the database file (where secure_delete zeroes what was
// deleted) and the write-ahead log, which still held the frames that
// wrote the erased rows, is cut to nothing. When a reader holds an older
// snapshot the log cannot be cut at that moment; a warning (no personal
// data) is logged and the next such checkpoint cuts it. A contact merge
// and a contact delete (crm) run the same checkpoint after they delete a
// contact.
//
// On PostgreSQL, an erased or deleted row stays in its table's pages as a
// dead tuple until VACUUM reclaims it (later writes then reuse the space;
// VACUUM FULL rewrites the table), and in the write-ahead log — with its
// archives and the base backups taken before — until they rotate out.
// These copies hold what the row held: sealed values bound to
// tenant|record|field, keyed blind indexes, ids, timestamps and enums;
// no sealed field's value is in clear in any page of any relation (free
// space, dead tuples, indexes and TOAST included) or in the log (a test
// reads them raw). The application role owns no table, so it cannot
// VACUUM (PostgreSQL skips the table with a warning): keep autovacuum on,
// as PostgreSQL ships it, or run VACUUM as the owner role on a schedule.
// An erasure of one person destroys no key — the data key is the
// tenant's — so until the dead tuples are reclaimed and overwritten, and
// the log archives and backups taken before the erasure rotate out, her
// sealed values stay readable to whoever holds both the tenant's data key
// and the key-encryption key. Rotate backups and log archives within the
// period you promise data subjects (30 days for a deletion request); a
// tenant purge destroys the tenant's key, which puts all of these beyond
// use at once.
//
// # Speed
//
// On PostgreSQL a batch of a deleting category without a BeforeErase hook
// is one statement, DELETE … WHERE tenant_id = $1 AND id =
// ANY(ARRAY(SELECT id … LIMIT n FOR UPDATE SKIP LOCKED)): the array makes
// the planner fetch the batch's rows by the primary key, where the more
// common IN (SELECT …) form hash-joins the batch with every row the tenant
// still has, a scan per batch that grows with the tenant. Sweeping 50,000
// rows alternated in one database with a hand-written batched DELETE …
// IN (SELECT … LIMIT 1000), 1,000 rows a transaction
// (BenchmarkPostgresRetentionSweepPaired), the sweep took 0.89–0.97 s
// (receipts included) and the hand-written DELETE 0.93–1.11 s: a ratio of
// 0.78–0.88, against 1.53–1.56 with the IN form (three runs each, load
// about 3.5; under a load of 6–8: 0.69–0.85 against 1.46–1.87). A table
// with no index on its ID column declares Category.Lookup, an indexed
// column that tells its rows apart with ID: the batch's statement then
// selects the rows once (a materialized WITH) and deletes those whose
// pair it selected, found through Lookup's index (crm's name index rows,
// TestLookupErasesSelectedRows checks the plan); Category.SubjectIndex
// gives a request's selection an indexed condition in the same way.
//
// # Testing
//
// Tests run on SQLite and, when SOCIALCRM_TEST_POSTGRES names a server, on
// PostgreSQL too. An application should test that Uncovered returns nothing
// for its whole migrated schema, and compare its DataMap with a golden file.
package retention

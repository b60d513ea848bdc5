package crm

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/tenancy"
)

// Duplicates and merging. A contact's e-mail address and phone number
// identify the person: Contacts.Create refuses a second contact with
// either (a *DuplicateError naming the first) unless asked to allow it,
// ImportCSV updates the contact an e-mail address names instead of
// creating another, and Merge folds a duplicate into the contact kept.

// CreateOption changes how Contacts.Create treats the contact it stores.
type CreateOption func(*createOptions)

type createOptions struct{ allowDuplicate, claim bool }

// importClaim is AllowDuplicate for an import's creates, which the import
// checked under its locks: on PostgreSQL the contact is still marked as
// the holder of its identifiers (create_pgclaim.go), and the create fails
// with errClaimTaken when a create that took no lock got there first.
func importClaim() CreateOption {
	return func(o *createOptions) { o.allowDuplicate, o.claim = true, true }
}

// AllowDuplicate lets Contacts.Create store a contact whose e-mail
// address or phone number another contact of the tenant already has (two
// people sharing a family address, or a duplicate to merge later).
func AllowDuplicate() CreateOption {
	return func(o *createOptions) { o.allowDuplicate = true }
}

func createOptionsOf(opts []CreateOption) createOptions {
	var o createOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// checkDuplicate returns a *DuplicateError when another contact of the
// context's tenant has c's e-mail address or phone number, found by their
// blind indexes (computed by seal). It runs inside the transaction that
// inserts c: on PostgreSQL it first takes transaction-level advisory
// locks keyed by the tenant and each blind index, so that two concurrent
// creates (or imports) of one address queue and the second sees the first;
// SQLite's write transactions are serialized already (they begin
// IMMEDIATE).
func (s *Store) checkDuplicate(ctx context.Context, tx bun.IDB, c *Contact) error {
	if c.EmailIndex == "" && c.PhoneIndex == "" {
		return nil
	}
	if err := s.lockIdentifiers(ctx, tx, c); err != nil {
		return err
	}
	// One statement for both identifiers, each looked up through its own
	// index: the oldest other contact with the e-mail address, and the
	// oldest with the phone number.
	oldest := func(column, index string) *bun.SelectQuery {
		return tx.NewSelect().Model((*Contact)(nil)).Column("id").
			Where("?TableAlias.? = ?", bun.Ident(column), index).Where("?TableAlias.id <> ?", c.ID).
			Apply(tenancy.Scope(ctx)).OrderExpr("?TableAlias.id").Limit(1)
	}
	var byEmail, byPhone sql.NullString
	q := tx.NewSelect()
	if c.EmailIndex != "" {
		q = q.ColumnExpr("(?)", oldest("email_index", c.EmailIndex))
	} else {
		q = q.ColumnExpr("NULL")
	}
	if c.PhoneIndex != "" {
		q = q.ColumnExpr("(?)", oldest("phone_index", c.PhoneIndex))
	} else {
		q = q.ColumnExpr("NULL")
	}
	if err := q.Scan(ctx, &byEmail, &byPhone); err != nil {
		return fmt.Errorf("crm: check duplicate contact: %w", err)
	}
	switch {
	case byEmail.Valid:
		return &DuplicateError{ContactID: byEmail.String, Field: "email"}
	case byPhone.Valid:
		return &DuplicateError{ContactID: byPhone.String, Field: "phone"}
	}
	return nil
}

// lockIdentifiers takes the locks of lockIndexes for c's blind indexes.
func (s *Store) lockIdentifiers(ctx context.Context, tx bun.IDB, c *Contact) error {
	return s.lockIndexes(ctx, tx, [][2]string{{"email", c.EmailIndex}, {"phone", c.PhoneIndex}})
}

// lockIndexes takes, on PostgreSQL, a transaction-level advisory lock per
// (field, blind index) pair, in one sorted order, so that two transactions
// never wait on each other in a cycle. The key hashes the tenant, the
// field and the index: the blind index alone is already per tenant; the
// tenant keeps unrelated tenants from sharing a lock by a 64-bit collision
// more often than chance. Empty indexes are skipped.
func (s *Store) lockIndexes(ctx context.Context, tx bun.IDB, pairs [][2]string) error {
	if tx.Dialect().Name() != dialect.PG {
		return nil
	}
	keys, err := lockKeys(ctx, pairs)
	if err != nil || len(keys) == 0 {
		return err
	}
	// One statement: unnest returns the keys, and the locks are taken, in
	// the array's order.
	strs := make([]string, len(keys))
	for i, k := range keys {
		strs[i] = strconv.FormatInt(k, 10)
	}
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(k) FROM unnest(?::bigint[]) AS k", "{"+strings.Join(strs, ",")+"}"); err != nil {
		return fmt.Errorf("crm: lock contact identifiers: %w", err)
	}
	return nil
}

// lockKeys returns the advisory lock keys of lockIndexes for pairs,
// sorted, each once.
func lockKeys(ctx context.Context, pairs [][2]string) ([]int64, error) {
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return nil, err
	}
	return tenantLockKeys(tid, pairs), nil
}

// tenantLockKeys is lockKeys for the tenant tid.
func tenantLockKeys(tid string, pairs [][2]string) []int64 {
	var keys []int64
	for _, f := range pairs {
		if f[1] == "" {
			continue
		}
		h := sha256.Sum256([]byte("socialcrm.crm.contact\x00" + tid + "\x00" + f[0] + "\x00" + f[1]))
		keys = append(keys, int64(binary.BigEndian.Uint64(h[:8])))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// mergeMoves are the columns of other tables that hold a contact id and
// that Merge points at the kept contact as they are. The tables Merge
// treats otherwise are in mergeHandled; a test checks that every table
// the package declares to retention as holding a contact's rows is in one
// or the other.
var mergeMoves = []struct{ table, column string }{
	{TableConversations, "contact_id"},
	{TableConsentEvents, "contact_id"},
	{TableActivities, "contact_id"},
	{TableTasks, "contact_id"},
	{TableNotes, "contact_id"},
	{TableDeals, "contact_id"},
	{TableInvoiceRecipients, "contact_id"},
}

// mergeHandled are the tables whose contact rows Merge handles by a rule
// of their own, or that follow a record Merge moves.
var mergeHandled = map[string]string{
	TableContacts:      "the duplicate is deleted (Contacts.Delete, with its index rows), its data folded into the kept contact",
	TableContactTags:   "the kept contact's tags become the union of both; the duplicate's go with it",
	TableContactNames:  "the kept contact's name index stays (its name is kept); the duplicate's goes with its row (trigger)",
	TableConsents:      "per channel and purpose, the most recent word wins",
	TableNotifications: "per channel and occasion, the kept contact's record wins (it was notified once)",
	TableAttachments:   "attachments of the contact move to the kept contact",
	TableFieldValues:   "custom field values move; the kept contact's value wins for a field both have",
	TableMessages:      "follow their conversation",
	TableStageChanges:  "follow their deal",
	TableInvoices:      "follow their recipient row",
	TableContactMerges: "the duplicate's id is recorded as merged into the kept contact; ids merged into the duplicate before point at the kept contact",
}

// Merge folds contact dupID into contact keepID, in one transaction: every
// record about the duplicate — conversations, consent and its history,
// notifications sent, activities, tasks, notes, deals, invoice recipients,
// attachments, custom field values, tags — moves to the kept contact; the
// kept contact's empty fields (names, e-mail address, phone number,
// company, owner, birthday) are filled from the duplicate (its source and
// UTM, captured on creation, stay), its preferences gain the duplicate's keys it lacks
// and its tags the duplicate's; then the duplicate is deleted, and an
// audit entry "contact.merged" names both ids (no values). The tenant
// keeps the duplicate's id pointing at the kept contact (TableContactMerges,
// ids only; earlier merges into the duplicate are pointed on too), so
// that a data-subject request naming the duplicate's id reaches the kept
// contact (Store.Resolvers); deleting the kept contact (Contacts.Delete),
// erasing it (a request, a sweep) or purging the tenant removes that
// record.
//
// Where both have a record that may exist once: for a consent of the same
// channel and purpose, the more recent word wins (the kept contact's on a
// tie), while both histories are kept; for a notification of the same
// occasion, and for a custom field both have, the kept contact's wins.
//
// It returns the kept contact as stored. keepID equal to dupID is a
// *ValidationError; an unknown id is ErrNotFound; a contact changed
// meanwhile by someone else is a *ConflictError, and nothing is written.
//
// On SQLite, once the merge has committed, the write-ahead log is cut
// (a TRUNCATE checkpoint, as after an erasure), so that the deleted
// duplicate's row does not stay readable in the -wal file; should that
// checkpoint fail, Merge returns the merged contact with the error (the
// merge itself has committed). A Store bound to the caller's transaction
// (Using) leaves the checkpoint to the caller, after its commit.
func (r *Contacts) Merge(ctx context.Context, keepID, dupID string) (Contact, error) {
	if keepID == "" || dupID == "" {
		return Contact{}, invalid(kindContact, "id", "required", "both contact ids are required")
	}
	if keepID == dupID {
		return Contact{}, invalid(kindContact, "duplicate_id", "nefield", "must name another contact than the one kept")
	}
	keep, err := r.Get(ctx, keepID)
	if err != nil {
		return Contact{}, err
	}
	dup, err := r.Get(ctx, dupID)
	if err != nil {
		return Contact{}, err
	}
	merged := mergeFields(keep, dup)
	err = r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		in := r.s.Using(tx)
		var err error
		if merged, err = in.Contacts().Update(ctx, merged.ID, merged.Version, merged.ContactInput); err != nil {
			return err
		}
		tid, err := tenancy.TenantID(ctx)
		if err != nil {
			return err
		}
		if err := moveContactRows(ctx, tx, tid, keepID, dupID); err != nil {
			return err
		}
		// The duplicate goes as Delete removes a contact, with its index
		// rows, unless it changed since it was read.
		cur, err := get[Contact](ctx, tx, kindContact, dupID)
		if err != nil {
			return err
		}
		if cur.Version != dup.Version {
			return &ConflictError{Kind: kindContact, ID: dupID, Version: dup.Version, Current: cur.Version}
		}
		// The ids merged into the duplicate before point at the kept
		// contact before the duplicate goes: Delete drops the records
		// of ids merged into the contact it deletes.
		if err := repointMerges(ctx, tx, tid, keepID, dupID); err != nil {
			return err
		}
		if err := in.Contacts().Delete(ctx, dupID); err != nil {
			return err
		}
		if err := recordMerge(ctx, tx, keepID, dupID, r.s.clock()); err != nil {
			return err
		}
		return r.s.writeAudit(ctx, tx, tenancy.AuditEvent{Action: "contact.merged", Target: "contact:" + keepID,
			Metadata: map[string]string{"duplicate": "contact:" + dupID}})
	})
	if err != nil {
		return Contact{}, err
	}
	if err := r.s.cutLog(ctx); err != nil {
		return merged, fmt.Errorf("crm: merge contacts: committed, but %w", err)
	}
	return merged, nil
}

// repointMerges points, in tx, the contacts of tenant tid merged into dup
// before at keep.
func repointMerges(ctx context.Context, tx bun.Tx, tid, keep, dup string) error {
	if _, err := tx.ExecContext(ctx, "UPDATE "+TableContactMerges+" SET kept_id = ? WHERE tenant_id = ? AND kept_id = ?", keep, tid, dup); err != nil {
		return fmt.Errorf("crm: merge contacts: record: %w", err)
	}
	return nil
}

// recordMerge records, in tx, that contact dup was merged into keep.
func recordMerge(ctx context.Context, tx bun.Tx, keep, dup string, at time.Time) error {
	if _, err := tx.NewInsert().Model(&contactMerge{MergedID: dup, KeptID: keep, MergedAt: at}).Exec(ctx); err != nil {
		return fmt.Errorf("crm: merge contacts: record: %w", err)
	}
	return nil
}

// deleteMergesInto deletes, in tx, the records of the contacts merged
// into the context tenant's contact id (TableContactMerges), as that
// contact is deleted: ids only, but they tie a person's former ids
// together, and would point at nothing.
func deleteMergesInto(ctx context.Context, tx bun.IDB, id string) error {
	if _, err := tx.NewDelete().Model((*contactMerge)(nil)).Where("?TableAlias.kept_id = ?", id).Exec(ctx); err != nil {
		return fmt.Errorf("crm: delete contact: merge records: %w", err)
	}
	return nil
}

// eraseMerges is the part of crm.contact's retention.Category.BeforeErase
// hook that deletes, with a batch of contacts (a sweep's, a purge's), the
// records of the contacts merged into them, counting them as
// crm.contact_merge rows (an erasure request reaches them first, through
// their own category).
var eraseMerges = eraseRowsOf(contactMergeCategory().Name, TableContactMerges, "kept_id", "records of contacts merged into erased contacts")

// cutLog runs, on SQLite, once a transaction that deleted a contact has
// committed, the TRUNCATE checkpoint retention runs after an erasure
// (sqldb.TruncateLog): without it SQLite's write-ahead log keeps the
// frames that wrote the deleted row — its sealed profile, blind indexes
// and name index tokens — after the automatic checkpoint has zeroed it
// in the database file (TestMergeLeavesNoDuplicateInTheLog). A Store
// bound to the caller's transaction (Using) cannot cut the log before
// that transaction commits: it leaves the cut to the caller. When a
// reader holds an older snapshot, the log cannot be cut now; that is
// logged (no personal data) and the next TRUNCATE checkpoint cuts it.
func (s *Store) cutLog(ctx context.Context) error {
	db, ok := s.db.(*bun.DB)
	if !ok {
		return nil
	}
	busy, frames, done, err := sqldb.TruncateLog(ctx, db)
	if err != nil {
		return fmt.Errorf("truncate the write-ahead log: %w", err)
	}
	if busy {
		s.log.WarnContext(ctx, "crm: the write-ahead log could not be truncated after a contact was deleted or merged: a reader holds an older snapshot",
			"frames", frames, "checkpointed", done)
	}
	return nil
}

// mergeFields returns keep with its empty fields filled from dup.
func mergeFields(keep, dup Contact) Contact {
	fill := func(dst *string, src string) {
		if *dst == "" {
			*dst = src
		}
	}
	fill(&keep.FirstName, dup.FirstName)
	fill(&keep.LastName, dup.LastName)
	fill(&keep.Email, dup.Email)
	fill(&keep.Phone, dup.Phone)
	fill(&keep.CompanyID, dup.CompanyID)
	fill(&keep.OwnerID, dup.OwnerID)
	if keep.Birthday.IsZero() {
		keep.Birthday = dup.Birthday
	}
	prefs := maps.Clone(dup.Preferences)
	if prefs == nil {
		prefs = map[string]string{}
	}
	maps.Copy(prefs, keep.Preferences)
	keep.Preferences = prefs
	keep.Tags = append(slices.Clone(keep.Tags), dup.Tags...) // normalize keeps each once
	return keep
}

// moveContactRows points every record of contact dup at contact keep,
// applying the rules of Merge where a record may exist once per contact.
func moveContactRows(ctx context.Context, tx bun.Tx, tid, keep, dup string) error {
	run := func(what string, query string, args ...any) error {
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return fmt.Errorf("crm: merge contacts: %s: %w", what, err)
		}
		return nil
	}
	// Consent: per channel and purpose, the more recent word wins.
	if err := run("consents",
		"DELETE FROM "+TableConsents+" WHERE tenant_id = ? AND contact_id = ? AND EXISTS (SELECT 1 FROM "+TableConsents+
			" k WHERE k.tenant_id = ? AND k.contact_id = ? AND k.channel = "+TableConsents+".channel AND k.purpose = "+TableConsents+
			".purpose AND k.at >= "+TableConsents+".at)", tid, dup, tid, keep); err != nil {
		return err
	}
	if err := run("consents",
		"DELETE FROM "+TableConsents+" WHERE tenant_id = ? AND contact_id = ? AND EXISTS (SELECT 1 FROM "+TableConsents+
			" d WHERE d.tenant_id = ? AND d.contact_id = ? AND d.channel = "+TableConsents+".channel AND d.purpose = "+TableConsents+
			".purpose)", tid, keep, tid, dup); err != nil {
		return err
	}
	// Notifications: an occasion the kept contact was notified of stays once.
	if err := run("notifications",
		"DELETE FROM "+TableNotifications+" WHERE tenant_id = ? AND contact_id = ? AND EXISTS (SELECT 1 FROM "+TableNotifications+
			" k WHERE k.tenant_id = ? AND k.contact_id = ? AND k.channel = "+TableNotifications+".channel AND k.key = "+TableNotifications+
			".key)", tid, dup, tid, keep); err != nil {
		return err
	}
	// Custom field values: the kept contact's value wins.
	if err := run("custom field values",
		"DELETE FROM "+TableFieldValues+" WHERE tenant_id = ? AND record_kind = ? AND record_id = ? AND EXISTS (SELECT 1 FROM "+TableFieldValues+
			" k WHERE k.tenant_id = ? AND k.record_kind = ? AND k.record_id = ? AND k.field_id = "+TableFieldValues+".field_id)",
		tid, kindContact, dup, tid, kindContact, keep); err != nil {
		return err
	}
	for _, t := range []string{TableConsents, TableNotifications} {
		if err := run(t, "UPDATE "+t+" SET contact_id = ? WHERE tenant_id = ? AND contact_id = ?", keep, tid, dup); err != nil {
			return err
		}
	}
	for _, m := range mergeMoves {
		if err := run(m.table, "UPDATE "+m.table+" SET "+m.column+" = ? WHERE tenant_id = ? AND "+m.column+" = ?", keep, tid, dup); err != nil {
			return err
		}
	}
	if err := run("attachments", "UPDATE "+TableAttachments+" SET owner_id = ? WHERE tenant_id = ? AND owner_kind = ? AND owner_id = ?",
		keep, tid, kindContact, dup); err != nil {
		return err
	}
	return run("custom field values", "UPDATE "+TableFieldValues+" SET record_id = ? WHERE tenant_id = ? AND record_kind = ? AND record_id = ?",
		keep, tid, kindContact, dup)
}

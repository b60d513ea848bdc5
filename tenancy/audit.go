package tenancy

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dberr"
)

// AuditEntry is one line of a tenant's audit log. Entries form a hash chain:
// each Hash covers the entry's fields and the previous entry's Hash, so that
// changing, removing or reordering an entry is detected by Verify.
type AuditEntry struct {
	bun.BaseModel `bun:"table:socialcrm_audit_log,alias:al"`
	Owned

	Seq       int64             `bun:"seq,pk" json:"seq"`
	At        time.Time         `bun:"at,notnull" json:"at"`
	Actor     string            `bun:"actor,notnull" json:"actor"`
	Action    string            `bun:"action,notnull" json:"action"`
	Target    string            `bun:"target,notnull" json:"target"`
	IP        string            `bun:"ip,notnull" json:"ip,omitempty"`
	UserAgent string            `bun:"user_agent,notnull" json:"user_agent,omitempty"`
	Metadata  map[string]string `bun:"metadata,type:text,notnull" json:"metadata,omitempty"`
	PrevHash  string            `bun:"prev_hash,notnull" json:"prev_hash"`
	Hash      string            `bun:"hash,notnull" json:"hash"`
}

// AuditEvent is what a caller records. The actor is the context's principal.
// Never put secrets (tokens, passwords, keys) in Target or Metadata.
type AuditEvent struct {
	// Action names what happened, as "noun.verb": "tenant.closed",
	// "connection.revoked", "retention.swept".
	Action string
	// Target names what it happened to, as "kind:id".
	Target string
	// IP and UserAgent describe the request behind the action, if any.
	IP, UserAgent string
	// Metadata holds further facts (counts, policy names, reasons).
	Metadata map[string]string
}

// auditCheckpoint remembers the last entry removed by Truncate, so that
// Verify can still check the first remaining entry's link.
type auditCheckpoint struct {
	bun.BaseModel `bun:"table:socialcrm_audit_checkpoints,alias:ac"`
	Owned

	Seq  int64     `bun:"seq,notnull"`
	Hash string    `bun:"hash,notnull"`
	At   time.Time `bun:"at,notnull"`
}

// AuditLog is the append-only, tamper-evident audit log of each tenant.
// Create it with NewAuditLog; it is safe for concurrent use, and concurrent
// appends to one tenant are serialized into one chain.
type AuditLog struct {
	db  bun.IDB
	now func() time.Time
}

// NewAuditLog returns the audit log stored in db. It honours WithClock.
func NewAuditLog(db bun.IDB, opts ...Option) (*AuditLog, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return &AuditLog{db: db, now: o.now}, nil
}

// with returns a copy writing through db (a transaction of the caller).
func (a *AuditLog) with(db bun.IDB) *AuditLog { return &AuditLog{db: db, now: a.now} }

// Append writes ev to the context tenant's log as the next entry of its
// chain and returns the entry. Inside a transaction of the caller (pass a
// log built over the bun.Tx) the entry commits or rolls back with the
// action it records.
func (a *AuditLog) Append(ctx context.Context, ev AuditEvent) (AuditEntry, error) {
	if ev.Action == "" {
		return AuditEntry{}, &ValidationError{Field: "Action", Reason: "required"}
	}
	p, _ := FromContext(ctx)
	e := AuditEntry{
		At: normalize(a.now()), Actor: p.Actor(), Action: ev.Action, Target: ev.Target,
		IP: ev.IP, UserAgent: ev.UserAgent, Metadata: maps.Clone(ev.Metadata),
	}
	if e.Metadata == nil {
		e.Metadata = map[string]string{}
	}
	const attempts = 20
	var err error
	for range attempts {
		err = RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
			prevSeq, prevHash, err := head(ctx, tx)
			if err != nil {
				return err
			}
			e.Seq, e.PrevHash, e.TenantID = prevSeq+1, prevHash, mustTenant(ctx)
			e.Hash = e.computeHash()
			_, err = tx.NewInsert().Model(&e).Exec(ctx)
			return err
		})
		if err == nil {
			return e, nil
		}
		// Another appender took this sequence number: read the head again.
		if !dberr.IsUniqueViolation(err) && !dberr.IsSerialization(err) {
			break
		}
	}
	return AuditEntry{}, fmt.Errorf("tenancy: audit append: %w", err)
}

// head returns the last sequence number and hash of the tenant's chain,
// whether the last entry is still there or was truncated away.
func head(ctx context.Context, tx bun.IDB) (int64, string, error) {
	var last AuditEntry
	err := tx.NewSelect().Model(&last).Column("seq", "hash").Order("seq DESC").Limit(1).Scan(ctx)
	if err == nil {
		return last.Seq, last.Hash, nil
	}
	if !isNoRows(err) {
		return 0, "", fmt.Errorf("tenancy: audit head: %w", err)
	}
	var cp auditCheckpoint
	err = tx.NewSelect().Model(&cp).Scan(ctx)
	if isNoRows(err) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("tenancy: audit checkpoint: %w", err)
	}
	return cp.Seq, cp.Hash, nil
}

// computeHash hashes the previous hash and every field, each length-prefixed
// so that no two different entries encode alike.
func (e *AuditEntry) computeHash() string {
	h := sha256.New()
	var n [8]byte
	field := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(e.PrevHash)
	field(e.TenantID)
	binary.BigEndian.PutUint64(n[:], uint64(e.Seq))
	h.Write(n[:])
	field(e.At.UTC().Format(time.RFC3339Nano))
	field(e.Actor)
	field(e.Action)
	field(e.Target)
	field(e.IP)
	field(e.UserAgent)
	for _, k := range slices.Sorted(maps.Keys(e.Metadata)) {
		field(k)
		field(e.Metadata[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// AuditListOptions pages through List. The zero value lists from the start.
type AuditListOptions struct {
	// AfterSeq lists entries with a greater sequence number (a cursor).
	AfterSeq int64
	// Limit bounds the page (default 100, at most 1000).
	Limit int
}

// List returns the context tenant's entries in chain order. Owners, admins
// and the system may read the audit log.
func (a *AuditLog) List(ctx context.Context, o AuditListOptions) ([]AuditEntry, error) {
	if err := Require(ctx, RoleOwner, RoleAdmin); err != nil {
		return nil, err
	}
	if o.Limit <= 0 || o.Limit > 1000 {
		o.Limit = 100
	}
	var es []AuditEntry
	err := RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model(&es).Where("seq > ?", o.AfterSeq).Order("seq").Limit(int64(o.Limit)).Scan(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("tenancy: audit list: %w", err)
	}
	return es, nil
}

// AuditHead is the end of a verified chain. Keep it outside the database
// (a log line, a ticket): a later Verify that ends before it shows that
// entries were cut off the end, which the chain alone cannot show.
type AuditHead struct {
	Seq     int64  `json:"seq"`
	Hash    string `json:"hash"`
	Entries int64  `json:"entries"`
}

// TamperError reports the first entry of a chain that fails verification.
// It matches ErrTampered with errors.Is.
type TamperError struct {
	Seq    int64
	Reason string
}

func (e *TamperError) Error() string {
	return fmt.Sprintf("tenancy: audit log entry %d: %s", e.Seq, e.Reason)
}

// Is makes errors.Is(err, ErrTampered) true.
func (e *TamperError) Is(target error) bool { return target == ErrTampered }

// ErrTampered matches every *TamperError.
var ErrTampered = errors.New("tenancy: audit log tampered")

// Verify walks the context tenant's chain in batches and returns its head,
// or a *TamperError for the first entry that was changed, inserted, or
// whose predecessor is missing.
//
// Owners, admins and the system may verify the audit log.
func (a *AuditLog) Verify(ctx context.Context) (AuditHead, error) {
	if err := Require(ctx, RoleOwner, RoleAdmin); err != nil {
		return AuditHead{}, err
	}
	var (
		head     AuditHead
		prevSeq  int64
		prevHash string
		cut      *auditCheckpoint // a checkpoint still to be matched by its entry
	)
	err := RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
		var cp auditCheckpoint
		switch err := tx.NewSelect().Model(&cp).Scan(ctx); {
		case err == nil:
			prevSeq, prevHash, cut = cp.Seq, cp.Hash, &cp
		case !isNoRows(err):
			return fmt.Errorf("tenancy: audit checkpoint: %w", err)
		}
		for after := prevSeq; ; {
			var batch []AuditEntry
			if err := tx.NewSelect().Model(&batch).Where("seq > ?", after).Order("seq").Limit(500).Scan(ctx); err != nil {
				return fmt.Errorf("tenancy: audit verify: %w", err)
			}
			for i := range batch {
				e := &batch[i]
				if e.Metadata == nil {
					e.Metadata = map[string]string{}
				}
				switch {
				case e.Seq != prevSeq+1:
					return &TamperError{Seq: prevSeq + 1, Reason: "missing"}
				case e.PrevHash != prevHash:
					return &TamperError{Seq: e.Seq, Reason: "link to previous entry broken"}
				case e.computeHash() != e.Hash:
					return &TamperError{Seq: e.Seq, Reason: "content changed"}
				}
				if cut != nil && e.Action == actionTruncated &&
					e.Metadata["through_seq"] == strconv.FormatInt(cut.Seq, 10) && e.Metadata["through_hash"] == cut.Hash {
					cut = nil
				}
				prevSeq, prevHash = e.Seq, e.Hash
				head.Entries++
			}
			if len(batch) < 500 {
				break
			}
			after = prevSeq
		}
		if cut != nil {
			return &TamperError{Seq: cut.Seq, Reason: "entries removed without a truncation entry"}
		}
		head.Seq, head.Hash = prevSeq, prevHash
		return nil
	})
	if err != nil {
		return AuditHead{}, err
	}
	return head, nil
}

// Truncate removes the context tenant's entries older than before (the
// audit log's own retention) and keeps a checkpoint of the last removed
// entry, so that Verify still checks the rest of the chain, and records the
// cut as an "audit.truncated" entry. It returns how many entries it
// removed. Only the system principal may truncate.
func (a *AuditLog) Truncate(ctx context.Context, before time.Time) (int64, error) {
	if p, ok := FromContext(ctx); !ok || !p.IsSystem() {
		return 0, ErrNotSystem
	}
	var removed int64
	err := RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
		var last AuditEntry
		err := tx.NewSelect().Model(&last).Where("at < ?", normalize(before)).Order("seq DESC").Limit(1).Scan(ctx)
		if isNoRows(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tenancy: audit truncate: %w", err)
		}
		res, err := tx.NewDelete().Model((*AuditEntry)(nil)).Where("seq <= ?", last.Seq).Exec(ctx)
		if err != nil {
			return fmt.Errorf("tenancy: audit truncate: %w", err)
		}
		removed, _ = res.RowsAffected()
		cp := auditCheckpoint{Seq: last.Seq, Hash: last.Hash, At: last.At}
		if _, err := tx.NewDelete().Model((*auditCheckpoint)(nil)).Where("1 = 1").Exec(ctx); err != nil {
			return fmt.Errorf("tenancy: audit checkpoint: %w", err)
		}
		if _, err := tx.NewInsert().Model(&cp).Exec(ctx); err != nil {
			return fmt.Errorf("tenancy: audit checkpoint: %w", err)
		}
		// The cut itself goes into the chain: Verify accepts a checkpoint
		// only with a matching entry after it, so deleting the start of
		// the log and writing a checkpoint by hand is still found.
		_, err = a.with(tx).Append(ctx, AuditEvent{Action: actionTruncated, Target: "audit_log",
			Metadata: map[string]string{"through_seq": strconv.FormatInt(cp.Seq, 10), "through_hash": cp.Hash,
				"before": normalize(before).Format(time.RFC3339Nano), "removed": strconv.FormatInt(removed, 10)}})
		return err
	})
	return removed, err
}

// actionTruncated is the audit action Truncate records.
const actionTruncated = "audit.truncated"

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

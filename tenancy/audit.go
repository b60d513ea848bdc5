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
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/internal/dberr"
	"github.com/socialcrm/socialcrm/internal/sqldb"
)

// AuditEntry is one line of a tenant's audit log. Entries form a chain:
// each Hash covers the entry's fields and the previous entry's Hash, so that
// changing, removing or reordering an entry is detected by Verify. With
// audit keys (WithAuditKeys) Hash is "hmac:" and the hex HMAC-SHA-256 of
// the entry under the tenant's audit key, which no database writer can
// recompute; without, it is the hex SHA-256 of the entry.
type AuditEntry struct {
	bun.BaseModel `bun:"table:socialcrm_audit_log,alias:al"`
	Owned

	Seq    int64     `bun:"seq,pk" json:"seq"`
	At     time.Time `bun:"at,notnull" json:"at"`
	Actor  string    `bun:"actor,notnull" json:"actor"`
	Action string    `bun:"action,notnull" json:"action"`
	Target string    `bun:"target,notnull" json:"target"`
	// IP is the request's network, not its address (AuditIP): with audit
	// keys, a keyed hash of it ("ipk:"), which tells entries from one
	// network apart without naming it; without, the network in clear.
	IP string `bun:"ip,notnull" json:"ip,omitempty"`
	// UserAgent is empty: the log no longer keeps it (entries written
	// by older versions may hold one until truncated).
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
	// Neither is stored as given: the entry keeps IP's network only
	// (AuditIP), keyed when the log has keys, and no user agent.
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
	db   bun.IDB
	now  func() time.Time
	keys AuditKeys
}

// AuditKeys authenticates a tenant's audit log: AuditMAC returns the
// HMAC-SHA-256 of msg under tenantID's audit key. The vault implements it
// (vault.Vault.AuditKeys) with a key the database never holds in clear.
type AuditKeys interface {
	AuditMAC(ctx context.Context, tenantID string, msg []byte) ([]byte, error)
}

// NewAuditLog returns the audit log stored in db. It honours WithClock and
// WithAuditKeys. Every writer of one database must use the same keys (the
// SDK's log, or In of it): Verify refuses an unkeyed entry after a keyed
// one.
func NewAuditLog(db bun.IDB, opts ...Option) (*AuditLog, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return &AuditLog{db: db, now: o.now, keys: o.keys}, nil
}

// In returns a copy of the log writing through db, typically the caller's
// bun.Tx, so that an entry commits or rolls back with the action it
// records. It keeps the log's clock and keys.
func (a *AuditLog) In(db bun.IDB) *AuditLog { return &AuditLog{db: db, now: a.now, keys: a.keys} }

// Keys returns the log's audit keys, nil when it is unkeyed.
func (a *AuditLog) Keys() AuditKeys { return a.keys }

func (a *AuditLog) with(db bun.IDB) *AuditLog { return a.In(db) }

// Append writes ev to the context tenant's log as the next entry of its
// chain and returns the entry. Inside a transaction of the caller (pass a
// log built over the bun.Tx) the entry commits or rolls back with the
// action it records.
func (a *AuditLog) Append(ctx context.Context, ev AuditEvent) (AuditEntry, error) {
	if ev.Action == "" {
		return AuditEntry{}, &ValidationError{Field: "Action", Reason: "required"}
	}
	p, _ := FromContext(ctx)
	ip, err := a.protectIP(ctx, ev.IP)
	if err != nil {
		return AuditEntry{}, err
	}
	e := AuditEntry{
		At: normalize(a.now()), Actor: p.Actor(), Action: ev.Action, Target: ev.Target,
		IP: ip, Metadata: maps.Clone(ev.Metadata),
	}
	if e.Metadata == nil {
		e.Metadata = map[string]string{}
	}
	// Appends to one tenant's chain queue on the tenant's audit lock
	// (PostgreSQL; SQLite has one writer at a time), so that contention
	// only waits: racing for the next sequence number and retrying on
	// losing could fail a caller whose every attempt lost to another
	// appender. The retries are left for appenders that take no lock (a
	// host's own writes, an older SDK beside this one) and for
	// serialization failures and deadlocks.
	const attempts = 20
	var lockKey int64
	if a.db.Dialect().Name() == dialect.PG {
		if lockKey, err = a.chainLockKey(ctx); err != nil {
			return AuditEntry{}, fmt.Errorf("tenancy: audit append: %w", err)
		}
	}
	for range attempts {
		err = RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
			hctx, err := lockChain(ctx, tx, lockKey)
			if err != nil {
				return err
			}
			prevSeq, prevHash, err := head(hctx, tx)
			if err != nil {
				return err
			}
			if a.keys != nil && prevHash != "" && !isKeyed(prevHash) {
				// The first keyed entry of a chain that was unkeyed so
				// far: mark the point from which it is keyed.
				mark := AuditEntry{At: e.At, Actor: e.Actor, Action: actionRekeyed, Target: "audit_log",
					Metadata: map[string]string{"through_seq": strconv.FormatInt(prevSeq, 10), "through_hash": prevHash}}
				mark.Seq, mark.PrevHash, mark.TenantID = prevSeq+1, prevHash, mustTenant(ctx)
				if mark.Hash, err = a.seal(ctx, &mark); err != nil {
					return err
				}
				if _, err := tx.NewInsert().Model(&mark).Exec(ctx); err != nil {
					return err
				}
				prevSeq, prevHash = mark.Seq, mark.Hash
			}
			e.Seq, e.PrevHash, e.TenantID = prevSeq+1, prevHash, mustTenant(ctx)
			if e.Hash, err = a.seal(ctx, &e); err != nil {
				return err
			}
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

// chainLockKey returns the advisory lock key of the context tenant's
// audit chain (PostgreSQL). With audit keys it is derived from the
// tenant's audit key, which no other tenant can compute: derived from the
// tenant's id alone, tenant B held A's key with pg_advisory_xact_lock,
// which the Guard lets a tenant take, and A's appends waited for B's
// transaction (TestS17KeyedAuditChainLockIsNotTheTenantsID). Without
// keys it is derived from the id (see the package's Security section).
// Every writer of one database uses the same keys, so all agree on it.
func (a *AuditLog) chainLockKey(ctx context.Context) (int64, error) {
	tid, err := TenantID(ctx)
	if err != nil {
		return 0, err
	}
	if a.keys == nil {
		h := sha256.Sum256([]byte("socialcrm.tenancy.audit\x00" + tid))
		return int64(binary.BigEndian.Uint64(h[:8])), nil
	}
	m, err := a.keys.AuditMAC(ctx, tid, []byte(macLock))
	if err != nil {
		return 0, fmt.Errorf("tenancy: audit key: %w", err)
	}
	return int64(binary.BigEndian.Uint64(m[:8])), nil
}

// lockChain takes, on PostgreSQL, the transaction-level advisory lock of
// the context tenant's audit chain (key, from chainLockKey), held until
// tx ends. On a handle that
// folds (socialcrm.OpenDB's) it returns a context under which the next
// statement carries the lock in its round trip; on any other PostgreSQL
// handle it takes the lock in a statement of its own. Either way the
// statement after it reads what the previous holder committed (READ
// COMMITTED takes a statement's snapshot when it starts).
func lockChain(ctx context.Context, tx bun.Tx, key int64) (context.Context, error) {
	if tx.Dialect().Name() != dialect.PG {
		return ctx, nil
	}
	if folds(tx) {
		return sqldb.WithAdvisoryLocks(ctx, []int64{key}), nil
	}
	if _, err := tx.ExecContext(sqldb.WithOwnLock(ctx), "SELECT pg_advisory_xact_lock(?)", key); err != nil {
		return nil, fmt.Errorf("tenancy: audit lock: %w", err)
	}
	return ctx, nil
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

// encode returns the entry's fields and the previous hash, each
// length-prefixed so that no two different entries encode alike.
func (e *AuditEntry) encode() []byte {
	var b []byte
	field := func(s string) {
		b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
		b = append(b, s...)
	}
	field(e.PrevHash)
	field(e.TenantID)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Seq))
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
	return b
}

// keyedPrefix starts the Hash of every keyed entry.
const keyedPrefix = "hmac:"

func isKeyed(hash string) bool { return strings.HasPrefix(hash, keyedPrefix) }

// seal returns the entry's Hash: keyed when the log has keys.
func (a *AuditLog) seal(ctx context.Context, e *AuditEntry) (string, error) {
	if a.keys == nil {
		sum := sha256.Sum256(e.encode())
		return hex.EncodeToString(sum[:]), nil
	}
	return a.mac(ctx, e.TenantID, append([]byte(macEntry), e.encode()...))
}

// Domain separation of the two things the audit key authenticates.
const (
	macEntry      = "socialcrm/audit/entry/v1\x00"
	macCheckpoint = "socialcrm/audit/checkpoint/v1\x00"
	macLock       = "socialcrm/audit/lock/v1\x00" // the chain's advisory lock key
)

func (a *AuditLog) mac(ctx context.Context, tenantID string, msg []byte) (string, error) {
	m, err := a.keys.AuditMAC(ctx, tenantID, msg)
	if err != nil {
		return "", fmt.Errorf("tenancy: audit key: %w", err)
	}
	return keyedPrefix + hex.EncodeToString(m), nil
}

// check reports whether e's Hash is right. A keyed entry needs the log's
// keys (ErrNoAuditKeys without them).
func (a *AuditLog) check(ctx context.Context, e *AuditEntry) (bool, error) {
	if !isKeyed(e.Hash) {
		sum := sha256.Sum256(e.encode())
		return equalHashes(hex.EncodeToString(sum[:]), e.Hash), nil
	}
	if a.keys == nil {
		return false, ErrNoAuditKeys
	}
	want, err := a.mac(ctx, e.TenantID, append([]byte(macEntry), e.encode()...))
	if err != nil {
		return false, err
	}
	return equalHashes(want, e.Hash), nil
}

// ErrNoAuditKeys is returned by Verify for a keyed chain, and by
// Checkpoint, on a log built without WithAuditKeys.
var ErrNoAuditKeys = errors.New("tenancy: audit log is keyed but no audit keys are configured")

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
// entries were cut off the end, which the chain alone cannot show. A
// signed AuditCheckpoint is the stronger form of it.
type AuditHead struct {
	Seq     int64  `json:"seq"`
	Hash    string `json:"hash"`
	Entries int64  `json:"entries"`
	// KeyedFrom is the sequence number of the first keyed entry (0: the
	// chain has none). Entries before it were written unkeyed, by a
	// version without audit keys; the first keyed entry authenticates the
	// hash of the last of them, so they cannot change either.
	KeyedFrom int64 `json:"keyed_from,omitempty"`
}

// AuditCheckpoint is a signed statement of a tenant's chain head: entry Seq
// has hash Hash, and Entries entries were verified up to it, at time At. An
// operator keeps it outside the database (a ticket, a log archive, a
// second system) and hands it back to Verify, which then also detects the
// chain being cut off or replaced after Seq. MAC is keyed with the
// tenant's audit key, so a checkpoint cannot be forged or altered without
// it. It holds no personal data.
type AuditCheckpoint struct {
	TenantID string    `json:"tenant_id"`
	Seq      int64     `json:"seq"`
	Hash     string    `json:"hash"`
	Entries  int64     `json:"entries"`
	At       time.Time `json:"at"`
	MAC      string    `json:"mac"`
}

func (c *AuditCheckpoint) encode() []byte {
	b := []byte(macCheckpoint)
	for _, s := range []string{c.TenantID, strconv.FormatInt(c.Seq, 10), c.Hash,
		strconv.FormatInt(c.Entries, 10), c.At.UTC().Format(time.RFC3339Nano)} {
		b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// Checkpoint verifies the context tenant's chain, appends an
// "audit.checkpoint" entry (so the chain's head is a keyed entry written
// now) and returns a signed checkpoint of it. It needs audit keys
// (ErrNoAuditKeys). Owners, admins and the system may take checkpoints.
func (a *AuditLog) Checkpoint(ctx context.Context) (AuditCheckpoint, error) {
	if err := Require(ctx, RoleOwner, RoleAdmin); err != nil {
		return AuditCheckpoint{}, err
	}
	if a.keys == nil {
		return AuditCheckpoint{}, ErrNoAuditKeys
	}
	h, err := a.Verify(ctx)
	if err != nil {
		return AuditCheckpoint{}, err
	}
	e, err := a.Append(ctx, AuditEvent{Action: actionCheckpoint, Target: "audit_log",
		Metadata: map[string]string{"entries": strconv.FormatInt(h.Entries+1, 10)}})
	if err != nil {
		return AuditCheckpoint{}, err
	}
	cp := AuditCheckpoint{TenantID: e.TenantID, Seq: e.Seq, Hash: e.Hash, Entries: h.Entries + 1, At: e.At}
	if cp.MAC, err = a.mac(ctx, cp.TenantID, cp.encode()); err != nil {
		return AuditCheckpoint{}, err
	}
	return cp, nil
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
// whose predecessor is missing; an entry written without the audit key
// after a keyed one; a truncation without its keyed "audit.truncated"
// entry. Each checkpoint (from Checkpoint, kept outside the database) must
// carry a valid MAC for the context tenant and match the chain: its entry
// still has its hash (or was removed by a recorded truncation), and the
// chain reaches at least its Seq — so an edit, an append or a cut after it
// that rewrote the chain is found even where the chain was unkeyed.
//
// Owners, admins and the system may verify the audit log.
func (a *AuditLog) Verify(ctx context.Context, checkpoints ...AuditCheckpoint) (AuditHead, error) {
	if err := Require(ctx, RoleOwner, RoleAdmin); err != nil {
		return AuditHead{}, err
	}
	tid, err := TenantID(ctx)
	if err != nil {
		return AuditHead{}, err
	}
	want := map[int64]string{}
	var maxCP int64
	for _, cp := range checkpoints {
		if a.keys == nil {
			return AuditHead{}, ErrNoAuditKeys
		}
		mac, err := a.mac(ctx, tid, cp.encode())
		if err != nil {
			return AuditHead{}, err
		}
		if cp.TenantID != tid || !equalHashes(mac, cp.MAC) {
			return AuditHead{}, &TamperError{Seq: cp.Seq, Reason: "checkpoint signature invalid"}
		}
		want[cp.Seq] = cp.Hash
		maxCP = max(maxCP, cp.Seq)
	}
	var (
		head     AuditHead
		prevSeq  int64
		prevHash string
		cut      *auditCheckpoint // a checkpoint still to be matched by its entry
		through  int64            // entries up to here were removed by a recorded truncation
	)
	err = RunInTx(ctx, a.db, nil, func(ctx context.Context, tx bun.Tx) error {
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
				ok, err := a.check(ctx, e)
				switch {
				case err != nil:
					return err
				case e.Seq != prevSeq+1:
					return &TamperError{Seq: prevSeq + 1, Reason: "missing"}
				case e.PrevHash != prevHash:
					return &TamperError{Seq: e.Seq, Reason: "link to previous entry broken"}
				case !ok:
					return &TamperError{Seq: e.Seq, Reason: "content changed"}
				case head.KeyedFrom != 0 && !isKeyed(e.Hash):
					return &TamperError{Seq: e.Seq, Reason: "entry not written with the audit key"}
				case head.KeyedFrom == 0 && isKeyed(e.Hash) && prevHash != "" && !isKeyed(prevHash) && e.Action != actionRekeyed:
					return &TamperError{Seq: e.Seq, Reason: "keyed chain does not start with its re-keying entry"}
				}
				if h, ok := want[e.Seq]; ok && h != e.Hash {
					return &TamperError{Seq: e.Seq, Reason: "differs from checkpoint"}
				}
				if head.KeyedFrom == 0 && isKeyed(e.Hash) {
					head.KeyedFrom = e.Seq
				}
				if cut != nil && e.Action == actionTruncated &&
					e.Metadata["through_seq"] == strconv.FormatInt(cut.Seq, 10) && e.Metadata["through_hash"] == cut.Hash {
					through, cut = cut.Seq, nil
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
		if a.keys != nil && head.Entries > 0 && head.KeyedFrom == 0 {
			// Either a chain from before audit keys that no keyed Append
			// has re-keyed yet, or one rewritten without the key: Verify
			// cannot vouch for it.
			return &TamperError{Seq: prevSeq, Reason: "no entry written with the audit key"}
		}
		head.Seq, head.Hash = prevSeq, prevHash
		return nil
	})
	if err != nil {
		return AuditHead{}, err
	}
	if maxCP > head.Seq {
		return AuditHead{}, &TamperError{Seq: head.Seq + 1, Reason: "entries removed after a checkpoint"}
	}
	for seq := range want {
		if seq <= through {
			continue // removed by a recorded truncation
		}
		if seq < head.Seq-head.Entries+1 {
			return AuditHead{}, &TamperError{Seq: seq, Reason: "checkpointed entry missing"}
		}
	}
	return head, nil
}

// Truncate removes the context tenant's entries older than before (the
// audit log's own retention) and keeps a checkpoint of the last removed
// entry, so that Verify still checks the rest of the chain, and records the
// cut as an "audit.truncated" entry. It returns how many entries it
// removed. Only the system principal may truncate.
//
// It is the one way entries leave the log: the database refuses every
// UPDATE and every other DELETE of audit entries (a trigger on both
// databases; on PostgreSQL the application role also holds no UPDATE or
// DELETE privilege, and Truncate deletes through the owner's function
// socialcrm_audit_truncate). A DELETE passes the trigger only for entries
// at or before the tenant's truncation checkpoint, which Truncate writes
// first in the same transaction; a checkpoint written by anyone else is
// found by Verify, since only Truncate writes the keyed entry that vouches
// for it. A checkpoint only moves forward: a trigger refuses deleting it
// or lowering its seq, so entries removed behind a forged one stay found.
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
		cp := auditCheckpoint{Seq: last.Seq, Hash: last.Hash, At: last.At}
		// The checkpoint only moves forward (a trigger refuses deleting it).
		if _, err := tx.NewInsert().Model(&cp).On("CONFLICT (tenant_id) DO UPDATE").
			Set("seq = EXCLUDED.seq, hash = EXCLUDED.hash, at = EXCLUDED.at").Exec(ctx); err != nil {
			return fmt.Errorf("tenancy: audit checkpoint: %w", err)
		}
		if tx.Dialect().Name() == dialect.PG {
			err = tx.NewRaw("SELECT socialcrm_audit_truncate(?, ?)", mustTenant(ctx), last.Seq).Scan(ctx, &removed)
		} else {
			var res sql.Result
			if res, err = tx.NewDelete().Model((*AuditEntry)(nil)).Where("seq <= ?", last.Seq).Exec(ctx); err == nil {
				removed, _ = res.RowsAffected()
			}
		}
		if err != nil {
			return fmt.Errorf("tenancy: audit truncate: %w", err)
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

// Actions the audit log records about itself.
const (
	actionTruncated  = "audit.truncated"
	actionRekeyed    = "audit.rekeyed"
	actionCheckpoint = "audit.checkpoint"
)

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// AuditIP returns the network an audit entry keeps of a request's IP
// address: its /24 for IPv4 (IPv4-mapped addresses included), its /48 for
// IPv6, as a prefix ("203.0.113.0/24"); a value that is no address is
// kept as "invalid". A security review still sees where sign-ins came
// from, to the network, while the entry names no one's address.
func AuditIP(ip string) string {
	if ip == "" {
		return ""
	}
	addr, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil {
		return "invalid"
	}
	addr = addr.Unmap().WithZone("")
	bits := 48
	if addr.Is4() {
		bits = 24
	}
	pfx, err := addr.Prefix(bits)
	if err != nil {
		return "invalid"
	}
	return pfx.String()
}

// ipKeyedPrefix starts an entry's IP when the log has keys.
const ipKeyedPrefix = "ipk:"

// macIP separates the keyed hashes of networks from the entries' MACs.
const macIP = "socialcrm.audit.ip\x00"

// protectIP returns what an entry stores of ip: its network (AuditIP);
// with audit keys, a keyed hash of it under the context tenant's audit
// key (16 bytes, hex), so that the log (inside its hash chain, kept
// through a member's erasure for its retention period) names no network
// to a reader without the key. It is a pseudonym, not an anonymization:
// a holder of the key can test every network.
func (a *AuditLog) protectIP(ctx context.Context, ip string) (string, error) {
	nw := AuditIP(ip)
	if nw == "" || a.keys == nil {
		return nw, nil
	}
	tid, err := TenantID(ctx)
	if err != nil {
		return "", err
	}
	m, err := a.keys.AuditMAC(ctx, tid, []byte(macIP+nw))
	if err != nil {
		return "", fmt.Errorf("tenancy: audit key: %w", err)
	}
	return ipKeyedPrefix + hex.EncodeToString(m[:16]), nil
}

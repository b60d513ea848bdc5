package tenancy_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
	"github.com/socialcrm/socialcrm/vault/insecurekeyfile"
)

// keyedEnv is an audit log keyed with a real vault's audit keys, and the
// same log without keys: the writer who has database access but not the
// key-encryption key.
type keyedEnv struct {
	db      *dbtest.DB
	clk     *fakeclock.Clock
	log     *tenancy.AuditLog
	unkeyed *tenancy.AuditLog
}

func eachKeyed(t *testing.T, fn func(t *testing.T, e *keyedEnv)) {
	withVault := func(ctx context.Context, db *bun.DB) error {
		return migrations.Run(ctx, db, tenancy.Migrations(), vault.Migrations())
	}
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		kek, err := insecurekeyfile.Open(filepath.Join(t.TempDir(), "kek.json"))
		require.NoError(t, err)
		v, err := vault.New(db.DB, kek)
		require.NoError(t, err)
		keys, err := v.AuditKeys(context.Background())
		require.NoError(t, err)
		clk := newClock()
		log, err := tenancy.NewAuditLog(db, tenancy.WithClock(clk.Now), tenancy.WithAuditKeys(keys))
		require.NoError(t, err)
		unkeyed, err := tenancy.NewAuditLog(db, tenancy.WithClock(clk.Now))
		require.NoError(t, err)
		fn(t, &keyedEnv{db: db, clk: clk, log: log, unkeyed: unkeyed})
	}, withVault, setup)
}

// seed appends n entries to ctx's tenant and returns them.
func (e *keyedEnv) seed(t *testing.T, ctx context.Context, n int) []tenancy.AuditEntry {
	t.Helper()
	var out []tenancy.AuditEntry
	for i := range n {
		e.clk.Advance(time.Minute)
		en, err := e.log.Append(ctx, tenancy.AuditEvent{Action: "contact.updated", Target: "contact:" + strconv.Itoa(i)})
		require.NoError(t, err)
		out = append(out, en)
	}
	return out
}

func requireTamper(t *testing.T, err error, seq int64, reason string) {
	t.Helper()
	var te *tenancy.TamperError
	require.ErrorAs(t, err, &te)
	require.ErrorIs(t, err, tenancy.ErrTampered)
	require.Equal(t, reason, te.Reason)
	if seq != 0 {
		require.EqualValues(t, seq, te.Seq)
	}
}

// insertEntry writes e as it is, bypassing Append.
func insertEntry(e tenancy.AuditEntry) func(ctx context.Context, tx bun.Tx) error {
	return func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewInsert().Model(&e).Exec(ctx)
		return err
	}
}

// rewrite replaces the tenant's entries from entries[0].Seq on with
// entries, each re-linked and re-hashed without the key: what a tamperer
// who read the code computes.
func rewrite(prev string, entries []tenancy.AuditEntry) func(ctx context.Context, tx bun.Tx) error {
	return func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewDelete().Model((*tenancy.AuditEntry)(nil)).Where("seq >= ?", entries[0].Seq).Exec(ctx); err != nil {
			return err
		}
		for _, e := range entries {
			e.PrevHash = prev
			e.Hash = tenancy.UnkeyedHashForTest(e)
			prev = e.Hash
			if _, err := tx.NewInsert().Model(&e).Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestKeyedAuditFindsRecomputedEdits(t *testing.T) {
	eachKeyed(t, func(t *testing.T, e *keyedEnv) {
		a := tenancy.NewID()
		ctx := ownerOf(a)
		entries := e.seed(t, ctx, 8)
		require.Regexp(t, "^hmac:[0-9a-f]{64}$", entries[0].Hash)
		head, err := e.log.Verify(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 8, head.Entries)
		require.EqualValues(t, 1, head.KeyedFrom)

		// The unkeyed log cannot vouch for a keyed chain.
		_, err = e.unkeyed.Verify(ctx)
		require.ErrorIs(t, err, tenancy.ErrNoAuditKeys)

		// Entry 5 edited and the rest of the chain recomputed.
		forged := append([]tenancy.AuditEntry(nil), entries[4:]...)
		forged[0].Target = "contact:someone-else"
		tamper(t, e.db, ctx, rewrite(entries[3].Hash, forged))
		_, err = e.log.Verify(ctx)
		requireTamper(t, err, 5, "entry not written with the audit key")

		// The whole chain recomputed from the start.
		b := tenancy.NewID()
		ctxB := ownerOf(b)
		entries = e.seed(t, ctxB, 4)
		forged = append([]tenancy.AuditEntry(nil), entries...)
		forged[1].Target = "contact:someone-else"
		tamper(t, e.db, ctxB, rewrite("", forged))
		_, err = e.log.Verify(ctxB)
		requireTamper(t, err, 4, "no entry written with the audit key")

		// An edit with a made-up MAC.
		c := tenancy.NewID()
		ctxC := ownerOf(c)
		e.seed(t, ctxC, 3)
		tamper(t, e.db, ctxC, execSQL("UPDATE socialcrm_audit_log SET target = 'x', hash = ? WHERE seq = 2", "hmac:"+randomHex(32)))
		_, err = e.log.Verify(ctxC)
		requireTamper(t, err, 2, "content changed")

		// Another tenant's chain is untouched, and its MAC does not fit
		// here: keys are per tenant.
		d := tenancy.NewID()
		ctxD := ownerOf(d)
		dEntries := e.seed(t, ctxD, 1)
		_, err = e.log.Verify(ctxD)
		require.NoError(t, err)
		f := tenancy.NewID()
		ctxF := ownerOf(f)
		copied := dEntries[0]
		copied.TenantID = f
		tamper(t, e.db, ctxF, insertEntry(copied))
		_, err = e.log.Verify(ctxF)
		requireTamper(t, err, 1, "content changed")
	})
}

func TestKeyedAuditCheckpoints(t *testing.T) {
	eachKeyed(t, func(t *testing.T, e *keyedEnv) {
		a := tenancy.NewID()
		ctx := ownerOf(a)
		e.seed(t, ctx, 5)
		_, err := e.unkeyed.Checkpoint(ctx)
		require.ErrorIs(t, err, tenancy.ErrNoAuditKeys)
		_, err = e.log.Checkpoint(as(a))
		require.ErrorIs(t, err, tenancy.ErrForbidden, "staff take no checkpoints")
		cp, err := e.log.Checkpoint(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 6, cp.Seq, "the checkpoint entry is the head")
		require.EqualValues(t, 6, cp.Entries)
		require.Equal(t, a, cp.TenantID)
		e.seed(t, ctx, 2)
		head, err := e.log.Verify(ctx, cp)
		require.NoError(t, err)
		require.EqualValues(t, 8, head.Seq)

		// A checkpoint altered by hand, or shown to another tenant.
		bad := cp
		bad.Seq = 7
		_, err = e.log.Verify(ctx, bad)
		requireTamper(t, err, 7, "checkpoint signature invalid")
		_, err = e.log.Verify(ownerOf(tenancy.NewID()), cp)
		requireTamper(t, err, 6, "checkpoint signature invalid")

		// A forged append past the checkpoint, by a writer without the
		// key using the library itself.
		_, err = e.unkeyed.Append(ctx, tenancy.AuditEvent{Action: "member.role_changed", Target: "member:intruder"})
		require.NoError(t, err, "the database accepts the insert")
		_, err = e.log.Verify(ctx, cp)
		requireTamper(t, err, 9, "entry not written with the audit key")

		// The chain replaced after the checkpoint: everything from the
		// checkpoint on rewritten without the key.
		b := tenancy.NewID()
		ctxB := ownerOf(b)
		e.seed(t, ctxB, 3)
		cpB, err := e.log.Checkpoint(ctxB)
		require.NoError(t, err)
		list, err := e.log.List(ctxB, tenancy.AuditListOptions{})
		require.NoError(t, err)
		forged := append([]tenancy.AuditEntry(nil), list...)
		forged[1].Target = "contact:x"
		tamper(t, e.db, ctxB, rewrite("", forged))
		_, err = e.log.Verify(ctxB, cpB)
		requireTamper(t, err, 4, "differs from checkpoint")

		// The end cut off after the checkpoint.
		c := tenancy.NewID()
		ctxC := ownerOf(c)
		e.seed(t, ctxC, 2)
		cpC, err := e.log.Checkpoint(ctxC)
		require.NoError(t, err)
		tamper(t, e.db, ctxC, execSQL("DELETE FROM socialcrm_audit_log WHERE seq >= 3"))
		_, err = e.log.Verify(ctxC)
		require.NoError(t, err, "without the checkpoint the cut is invisible")
		_, err = e.log.Verify(ctxC, cpC)
		requireTamper(t, err, 3, "entries removed after a checkpoint")
	})
}

func TestKeyedAuditForgedTruncation(t *testing.T) {
	eachKeyed(t, func(t *testing.T, e *keyedEnv) {
		a := tenancy.NewID()
		ctx := ownerOf(a)
		entries := e.seed(t, ctx, 6)

		// The oldest three deleted, a checkpoint and a truncation entry
		// forged after the head.
		fake := tenancy.AuditEntry{Seq: 7, At: e.clk.Now(), Actor: "system:retention", Action: "audit.truncated", Target: "audit_log",
			Metadata: map[string]string{"through_seq": "3", "through_hash": entries[2].Hash, "removed": "3"}}
		fake.TenantID, fake.PrevHash = a, entries[5].Hash
		fake.Hash = tenancy.UnkeyedHashForTest(fake)
		tamper(t, e.db, ctx, func(ctx context.Context, tx bun.Tx) error {
			if err := execSQL("DELETE FROM socialcrm_audit_log WHERE seq <= 3")(ctx, tx); err != nil {
				return err
			}
			if err := execSQL("INSERT INTO socialcrm_audit_checkpoints (tenant_id, seq, hash, at) VALUES (?, 3, ?, ?)",
				a, entries[2].Hash, entries[2].At)(ctx, tx); err != nil {
				return err
			}
			return insertEntry(fake)(ctx, tx)
		})
		_, err := e.log.Verify(ctx)
		requireTamper(t, err, 7, "entry not written with the audit key")

		// With a made-up MAC instead.
		tamper(t, e.db, ctx, execSQL("UPDATE socialcrm_audit_log SET hash = ? WHERE seq = 7", "hmac:"+randomHex(32)))
		_, err = e.log.Verify(ctx)
		requireTamper(t, err, 7, "content changed")

		// The real Truncate, on another tenant, passes the database's
		// append-only rule and keeps the chain verifiable.
		b := tenancy.NewID()
		ctxB := ownerOf(b)
		e.seed(t, ctxB, 4)
		sysB, err := tenancy.AsTenant(tenancy.System(context.Background(), "retention"), b)
		require.NoError(t, err)
		n, err := e.log.Truncate(sysB, e.clk.Now().Add(-90*time.Second))
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
		head, err := e.log.Verify(ctxB)
		require.NoError(t, err)
		require.EqualValues(t, 3, head.Entries)
	})
}

// TestAuditLogIsAppendOnly: the application's handle, through bun, can
// neither change nor delete entries, on either database; only Truncate
// removes them.
func TestAuditLogIsAppendOnly(t *testing.T) {
	eachKeyed(t, func(t *testing.T, e *keyedEnv) {
		a := tenancy.NewID()
		ctx := ownerOf(a)
		e.seed(t, ctx, 3)
		sys, err := tenancy.AsTenant(tenancy.System(context.Background(), "test"), a)
		require.NoError(t, err)
		for name, fn := range map[string]func(ctx context.Context, tx bun.Tx) error{
			"update": func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.NewUpdate().Model((*tenancy.AuditEntry)(nil)).Set("target = ?", "x").Where("seq = 1").Exec(ctx)
				return err
			},
			"delete": func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.NewDelete().Model((*tenancy.AuditEntry)(nil)).Where("seq = 1").Exec(ctx)
				return err
			},
			"delete with a checkpoint written by hand": func(ctx context.Context, tx bun.Tx) error {
				if _, err := tx.ExecContext(ctx, "INSERT INTO socialcrm_audit_checkpoints (tenant_id, seq, hash, at) VALUES (?, 1, 'x', ?)", a, time.Now()); err != nil {
					return err
				}
				_, err := tx.NewDelete().Model((*tenancy.AuditEntry)(nil)).Where("seq = 1").Exec(ctx)
				if e.db.Name == "sqlite" && err == nil {
					// SQLite has no privileges: the trigger lets a
					// checkpointed entry go, and Verify finds the forgery.
					return errSQLiteAllowed
				}
				return err
			},
		} {
			err := tenancy.RunInTx(sys, e.db.DB, nil, fn)
			if err == errSQLiteAllowed {
				continue
			}
			require.Error(t, err, name)
		}
		head, err := e.log.Verify(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 3, head.Entries)
	})
}

var errSQLiteAllowed = errorString("rolled back: allowed on SQLite")

type errorString string

func (e errorString) Error() string { return string(e) }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestAuditChainMigratesToKeys: an unkeyed chain written before audit keys
// is continued by the keyed log from a marked point, and the link from
// that point pins the unkeyed entries before it.
func TestAuditChainMigratesToKeys(t *testing.T) {
	eachKeyed(t, func(t *testing.T, e *keyedEnv) {
		a := tenancy.NewID()
		ctx := ownerOf(a)
		var old []tenancy.AuditEntry
		for i := range 3 {
			en, err := e.unkeyed.Append(ctx, tenancy.AuditEvent{Action: "legacy", Target: strconv.Itoa(i)})
			require.NoError(t, err)
			old = append(old, en)
		}
		_, err := e.log.Verify(ctx)
		requireTamper(t, err, 3, "no entry written with the audit key")

		_, err = e.log.Append(ctx, tenancy.AuditEvent{Action: "contact.created"})
		require.NoError(t, err)
		list, err := e.log.List(ctx, tenancy.AuditListOptions{})
		require.NoError(t, err)
		require.Len(t, list, 5)
		require.Equal(t, "audit.rekeyed", list[3].Action)
		require.Equal(t, map[string]string{"through_seq": "3", "through_hash": old[2].Hash}, list[3].Metadata)
		head, err := e.log.Verify(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 4, head.KeyedFrom)

		// Rewriting the unkeyed part breaks the keyed link after it.
		forged := append([]tenancy.AuditEntry(nil), old[1:]...)
		forged[0].Target = "changed"
		tamper(t, e.db, ctx, func(ctx context.Context, tx bun.Tx) error {
			for i, en := range forged {
				if i == 0 {
					en.PrevHash = old[0].Hash
				} else {
					en.PrevHash = forged[i-1].Hash
				}
				en.Hash = tenancy.UnkeyedHashForTest(en)
				forged[i] = en
				if _, err := tx.NewUpdate().Model(&en).Column("target", "prev_hash", "hash").WherePK().Where("seq = ?", en.Seq).Exec(ctx); err != nil {
					return err
				}
			}
			return nil
		})
		_, err = e.log.Verify(ctx)
		requireTamper(t, err, 4, "link to previous entry broken")
	})
}

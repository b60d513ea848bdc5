package vault

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"
	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/tenancy"
)

// Table names.
const (
	// TableKeys holds each tenant's wrapped data keys, one row per tenant,
	// tenant-owned (row-level security on PostgreSQL). A destroyed tenant's
	// row stays as a tombstone without key material.
	TableKeys = "socialcrm_vault_keys"
	// TableKeyTenants lists the tenants that have a row in TableKeys. It is
	// not tenant-owned, so that RotateKEK can find every tenant through
	// row-level security; it holds tenant ids only.
	TableKeyTenants = "socialcrm_vault_tenants"
)

// keyRow is a tenant's data keys, wrapped by the key-encryption key.
type keyRow struct {
	bun.BaseModel `bun:"table:socialcrm_vault_keys,alias:vk"`
	tenancy.Owned

	// DataKeyset is the AES-256-GCM keyset, a Tink EncryptedKeyset whose
	// associated data binds it to the tenant; NULL once destroyed.
	DataKeyset []byte `bun:"data_keyset"`
	// IndexKeyset is the HMAC-SHA256 PRF keyset of blind indexes, wrapped
	// the same way; NULL once destroyed.
	IndexKeyset  []byte     `bun:"index_keyset"`
	PrimaryKeyID int64      `bun:"primary_key_id,notnull"`
	CreatedAt    time.Time  `bun:"created_at,notnull"`
	UpdatedAt    time.Time  `bun:"updated_at,notnull"`
	DestroyedAt  *time.Time `bun:"destroyed_at"`
}

// keyTenant records that a tenant has a row in TableKeys.
type keyTenant struct {
	bun.BaseModel `bun:"table:socialcrm_vault_tenants,alias:vt"`

	TenantID  string    `bun:"tenant_id,pk"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

// Migrations returns the versioned schema migrations of the vault tables.
// Run them after tenancy's.
func Migrations() *migrate.Migrations {
	ms := migrate.NewMigrations()
	migrations.Add(ms, "20261123000200", "vault_init", func(ctx context.Context, tx bun.Tx) error {
		if err := migrations.Exec(ctx, tx,
			`CREATE TABLE IF NOT EXISTS socialcrm_vault_keys (
				tenant_id TEXT NOT NULL PRIMARY KEY,
				data_keyset BLOB,
				index_keyset BLOB,
				primary_key_id BIGINT NOT NULL,
				created_at TIMESTAMP NOT NULL,
				updated_at TIMESTAMP NOT NULL,
				destroyed_at TIMESTAMP
			)`,
			`CREATE TABLE IF NOT EXISTS socialcrm_vault_tenants (
				tenant_id TEXT NOT NULL PRIMARY KEY,
				created_at TIMESTAMP NOT NULL
			)`,
		); err != nil {
			return err
		}
		return tenancy.EnableRowSecurity(ctx, tx, TableKeys)
	})
	addAuditKeyMigration(ms)
	return ms
}

// TenantRegistryKey makes the key list a tenant registry to the Guard:
// under a tenant's principal a statement on it must be confined to that
// tenant's row (see tenancy.InstallGuard).
func (*keyTenant) TenantRegistryKey() string { return "tenant_id" }

// Models returns the vault's tenant-owned models, its list of tenants and
// its audit key (tenant registries), for tenancy.InstallGuard at start-up.
func Models() []any { return []any{(*keyRow)(nil), (*keyTenant)(nil), (*auditKeyRow)(nil)} }

// errNoKey means the tenant has no data key yet.
var errNoKey = errors.New("vault: tenant has no data key")

func (v *Vault) clock() time.Time { return v.now().UTC().Truncate(time.Microsecond) }

func isPG(db bun.IDB) bool { return db.Dialect().Name() == dialect.PG }

// readRow reads the tenant's key row. On SQLite it reads outside a
// transaction, so that a cache miss inside a caller's write transaction
// does not wait for the write lock; on PostgreSQL row-level security needs
// the transaction.
func (v *Vault) readRow(ctx context.Context, tid string) (*keyRow, error) {
	var row keyRow
	read := func(ctx context.Context, db bun.IDB) error {
		return db.NewSelect().Model(&row).Where("?TableAlias.tenant_id = ?", tid).Scan(ctx)
	}
	var err error
	if isPG(v.db) {
		err = tenancy.RunInTx(ctx, v.db, &sql.TxOptions{ReadOnly: true}, func(ctx context.Context, tx bun.Tx) error {
			return read(ctx, tx)
		})
	} else {
		err = read(ctx, v.db)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoKey
	}
	if err != nil {
		return nil, fmt.Errorf("vault: read tenant key: %w", err)
	}
	return &row, nil
}

// createRow creates the tenant's data keys, or returns the ones another
// process created first.
func (v *Vault) createRow(ctx context.Context, tid string) (*keyRow, error) {
	row, err := v.newRow(tid)
	if err != nil {
		return nil, err
	}
	created := false
	err = tenancy.RunInTx(ctx, v.db, nil, func(ctx context.Context, tx bun.Tx) error {
		kt := keyTenant{TenantID: tid, CreatedAt: row.CreatedAt}
		if _, err := tx.NewInsert().Model(&kt).On("CONFLICT (tenant_id) DO NOTHING").Exec(ctx); err != nil {
			return err
		}
		res, err := tx.NewInsert().Model(row).On("CONFLICT (tenant_id) DO NOTHING").Exec(ctx)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			*row = keyRow{}
			return tx.NewSelect().Model(row).Where("?TableAlias.tenant_id = ?", tid).Scan(ctx)
		}
		created = true
		return v.audit(ctx, tx, tid, "vault.key_created", map[string]string{
			"primary_key_id": strconv.FormatInt(row.PrimaryKeyID, 10),
		})
	})
	if err != nil {
		return nil, fmt.Errorf("vault: create tenant key: %w", err)
	}
	if created {
		v.log.InfoContext(ctx, "vault: created tenant key", "tenant", tid, "primary_key_id", row.PrimaryKeyID)
	}
	return row, nil
}

// newRow returns fresh data and index keys for tid, wrapped by the current
// key-encryption key.
func (v *Vault) newRow(tid string) (*keyRow, error) {
	data, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("vault: new data key: %w", err)
	}
	idx, err := keyset.NewHandle(prf.HMACSHA256PRFKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("vault: new index key: %w", err)
	}
	kek := v.keks.Load().current
	wd, err := wrap(data, kek, lengthPrefixed(adDataKeyset, tid))
	if err != nil {
		return nil, err
	}
	wi, err := wrap(idx, kek, lengthPrefixed(adIndexKeyset, tid))
	if err != nil {
		return nil, err
	}
	now := v.clock()
	return &keyRow{
		Owned:      tenancy.Owned{TenantID: tid},
		DataKeyset: wd, IndexKeyset: wi,
		PrimaryKeyID: int64(data.KeysetInfo().GetPrimaryKeyId()),
		CreatedAt:    now, UpdatedAt: now,
	}, nil
}

func wrap(h *keyset.Handle, kek tink.AEAD, ad []byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := h.WriteWithAssociatedData(keyset.NewBinaryWriter(&buf), kek, ad); err != nil {
		return nil, fmt.Errorf("vault: wrap key: %w", err)
	}
	return buf.Bytes(), nil
}

// unwrapHandle unwraps a keyset with the current key-encryption key or,
// failing that, the one RotateKEK replaced.
func (v *Vault) unwrapHandle(tid string, wrapped, ad []byte) (*keyset.Handle, error) {
	kk := v.keks.Load()
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(wrapped)), kk.current, ad)
	if err != nil && kk.previous != nil {
		h, err = keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(wrapped)), kk.previous, ad)
	}
	if err != nil {
		v.log.Warn("vault: the key-encryption key cannot unwrap a tenant key", "tenant", tid)
		return nil, ErrKEK
	}
	return h, nil
}

// unwrap turns a key row into usable primitives.
func (v *Vault) unwrap(tid string, row *keyRow) (*tenantKeys, error) {
	k := &tenantKeys{loaded: v.now()}
	if row.DestroyedAt != nil {
		k.destroyed = true
		return k, nil
	}
	data, err := v.unwrapHandle(tid, row.DataKeyset, lengthPrefixed(adDataKeyset, tid))
	if err != nil {
		return nil, err
	}
	if k.aead, err = aead.New(data); err != nil {
		return nil, fmt.Errorf("vault: data key: %w", err)
	}
	info := data.KeysetInfo()
	k.primary = info.GetPrimaryKeyId()
	for _, ki := range info.GetKeyInfo() {
		k.keyIDs = append(k.keyIDs, ki.GetKeyId())
	}
	idx, err := v.unwrapHandle(tid, row.IndexKeyset, lengthPrefixed(adIndexKeyset, tid))
	if err != nil {
		return nil, err
	}
	set, err := prf.NewPRFSet(idx)
	if err != nil {
		return nil, fmt.Errorf("vault: index key: %w", err)
	}
	k.index = set.PRFs[set.PrimaryID]
	if k.index == nil {
		return nil, errors.New("vault: index key: no primary")
	}
	k.indexKey = newIndexKey(idx) // indexkey.go
	return k, nil
}

// modify runs fn on the tenant's key row, locked, in a transaction; found
// is false when the tenant has no row. The tenant's cached keys are
// dropped after the transaction, whatever its outcome.
func (v *Vault) modify(ctx context.Context, tid string, fn func(ctx context.Context, tx bun.Tx, row *keyRow, found bool) error) error {
	defer v.cache.invalidate(tid)
	return tenancy.RunInTx(ctx, v.db, nil, func(ctx context.Context, tx bun.Tx) error {
		var row keyRow
		q := tx.NewSelect().Model(&row).Where("?TableAlias.tenant_id = ?", tid)
		if isPG(tx) {
			q = q.For("UPDATE")
		}
		err := q.Scan(ctx)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("vault: read tenant key: %w", err)
		}
		return fn(ctx, tx, &row, err == nil)
	})
}

func (v *Vault) updateRow(ctx context.Context, tx bun.Tx, row *keyRow, cols ...string) error {
	row.UpdatedAt = v.clock()
	_, err := tx.NewUpdate().Model(row).Column(append(cols, "updated_at")...).
		Where("?TableAlias.tenant_id = ?", row.TenantID).Exec(ctx)
	if err != nil {
		return fmt.Errorf("vault: update tenant key: %w", err)
	}
	return nil
}

func (v *Vault) audit(ctx context.Context, tx bun.Tx, tid, action string, meta map[string]string) error {
	log, err := v.AuditLog(ctx, tx, tenancy.WithClock(v.now))
	if err != nil {
		return err
	}
	_, err = log.Append(ctx, tenancy.AuditEvent{Action: action, Target: "tenant:" + tid, Metadata: meta})
	return err
}

// RotateKey adds a new AES-256-GCM data key to the context tenant's keyset
// and makes it the primary: Seal uses it from now on, values sealed with
// older keys still open, and Reseal moves them to the new key. It returns
// the new primary key id, writes a "vault.key_rotated" audit entry, and
// drops the tenant's cached keys in this process at once (other processes
// pick the new key up within the cache's max age; until then they keep
// sealing with the previous key, which stays valid).
//
// Only an owner, an admin or the system may rotate (tenancy.ErrForbidden).
// A tenant without keys gets its first key and then a rotation.
func (v *Vault) RotateKey(ctx context.Context) (uint32, error) {
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return 0, err
	}
	if err := tenancy.Require(ctx, tenancy.RoleOwner, tenancy.RoleAdmin); err != nil {
		return 0, err
	}
	if _, err := v.EnsureKey(ctx); err != nil {
		return 0, err
	}
	var primary uint32
	err = v.modify(ctx, tid, func(ctx context.Context, tx bun.Tx, row *keyRow, found bool) error {
		if !found {
			return errNoKey // cannot happen after EnsureKey: tombstones stay
		}
		if row.DestroyedAt != nil {
			return ErrKeyDestroyed
		}
		h, err := v.unwrapHandle(tid, row.DataKeyset, lengthPrefixed(adDataKeyset, tid))
		if err != nil {
			return err
		}
		m := keyset.NewManagerFromHandle(h)
		id, err := m.Add(aead.AES256GCMKeyTemplate())
		if err != nil {
			return fmt.Errorf("vault: new data key: %w", err)
		}
		if err := m.SetPrimary(id); err != nil {
			return fmt.Errorf("vault: new data key: %w", err)
		}
		if h, err = m.Handle(); err != nil {
			return fmt.Errorf("vault: new data key: %w", err)
		}
		if row.DataKeyset, err = wrap(h, v.keks.Load().current, lengthPrefixed(adDataKeyset, tid)); err != nil {
			return err
		}
		row.PrimaryKeyID = int64(id)
		if err := v.updateRow(ctx, tx, row, "data_keyset", "primary_key_id"); err != nil {
			return err
		}
		primary = id
		return v.audit(ctx, tx, tid, "vault.key_rotated", map[string]string{
			"primary_key_id": strconv.FormatUint(uint64(id), 10),
			"keys":           strconv.Itoa(h.Len()),
		})
	})
	if err != nil {
		return 0, err
	}
	v.log.InfoContext(ctx, "vault: rotated tenant key", "tenant", tid, "primary_key_id", primary)
	return primary, nil
}

// DestroyKey crypto-shreds the context tenant: its wrapped data and index
// keys are removed from the database, leaving a tombstone, so that every
// value ever sealed for it fails to open with ErrKeyDestroyed, and Seal and
// Index fail the same way. It writes a "vault.key_destroyed" audit entry
// and drops the tenant's cached keys in this process at once; another
// process may keep its cached copy up to the cache's max age.
//
// Copies of the wrapped keys survive in backups (and in free pages of the
// database file) until the key-encryption key that wrapped them is retired:
// run RotateKEK and then retire the old key-encryption key version to put
// them beyond use.
//
// Destroying is irreversible. Only an owner or the system may destroy
// (tenancy.ErrForbidden); destroying a destroyed key does nothing.
func (v *Vault) DestroyKey(ctx context.Context) error {
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return err
	}
	if err := tenancy.Require(ctx, tenancy.RoleOwner); err != nil {
		return err
	}
	destroyed := false
	err = v.modify(ctx, tid, func(ctx context.Context, tx bun.Tx, row *keyRow, found bool) error {
		if found && row.DestroyedAt != nil {
			return nil
		}
		now := v.clock()
		shred := func(row *keyRow) error {
			clear(row.DataKeyset)
			clear(row.IndexKeyset)
			row.DataKeyset, row.IndexKeyset, row.PrimaryKeyID, row.DestroyedAt = nil, nil, 0, &now
			return v.updateRow(ctx, tx, row, "data_keyset", "index_keyset", "primary_key_id", "destroyed_at")
		}
		if !found {
			// A tombstone, so that the tenant never gets a fresh key.
			*row = keyRow{Owned: tenancy.Owned{TenantID: tid}, CreatedAt: now, UpdatedAt: now, DestroyedAt: &now}
			if _, err := tx.NewInsert().Model(&keyTenant{TenantID: tid, CreatedAt: now}).On("CONFLICT (tenant_id) DO NOTHING").Exec(ctx); err != nil {
				return fmt.Errorf("vault: destroy tenant key: %w", err)
			}
			res, err := tx.NewInsert().Model(row).On("CONFLICT (tenant_id) DO NOTHING").Exec(ctx)
			if err != nil {
				return fmt.Errorf("vault: destroy tenant key: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				// Another transaction inserted the row since ours looked
				// (a concurrent destruction's tombstone, or a first key):
				// read it, waiting for its lock, and destroy what is there.
				var got keyRow
				q := tx.NewSelect().Model(&got).Where("?TableAlias.tenant_id = ?", tid)
				if isPG(tx) {
					q = q.For("UPDATE")
				}
				if err := q.Scan(ctx); err != nil {
					return fmt.Errorf("vault: destroy tenant key: %w", err)
				}
				if got.DestroyedAt != nil {
					return nil
				}
				*row = got
				if err := shred(row); err != nil {
					return err
				}
			}
		} else if err := shred(row); err != nil {
			return err
		}
		destroyed = true
		return v.audit(ctx, tx, tid, "vault.key_destroyed", nil)
	})
	if err != nil {
		return err
	}
	if destroyed {
		v.log.InfoContext(ctx, "vault: destroyed tenant key", "tenant", tid)
	}
	return nil
}

// RotateKEK rewraps every tenant's data and index keys with next, a new
// key-encryption key (or a new version of it), without touching sealed
// values, and makes next the vault's key-encryption key. It returns how
// many tenants it rewrapped; destroyed tenants are skipped.
//
// Only the system principal may rotate the key-encryption key
// (tenancy.ErrNotSystem); it acts on each tenant through tenancy.AsTenant
// and writes a "vault.kek_rotated" audit entry per tenant.
//
// From the moment RotateKEK starts, this vault wraps new keys with next and
// unwraps with next or the key it replaces. It is idempotent: after an
// interruption, call it again with the same next (on a vault still built
// with the old key-encryption key, or with next if next can also decrypt
// under the old version, as a rotated insecurekeyfile.KeyFile can). Other processes must
// run with next (or a key that decrypts both versions) before the old
// version is retired, and every one of them must have stopped wrapping with
// the old version: run RotateKEK once more right before retiring to catch
// tenants they created in the meantime.
func (v *Vault) RotateKEK(ctx context.Context, next tink.AEAD) (int, error) {
	if p, ok := tenancy.FromContext(ctx); !ok || !p.IsSystem() {
		return 0, tenancy.ErrNotSystem
	}
	if next == nil {
		return 0, errors.New("vault: RotateKEK: nil key-encryption key")
	}
	for {
		cur := v.keks.Load()
		if cur.current == next {
			break
		}
		if v.keks.CompareAndSwap(cur, &keks{current: next, previous: cur.current}) {
			break
		}
	}
	n, after := 0, ""
	for {
		var batch []keyTenant
		if err := v.db.NewSelect().Model(&batch).Where("tenant_id > ?", after).
			Order("tenant_id").Limit(100).Scan(ctx); err != nil {
			return n, fmt.Errorf("vault: list tenants: %w", err)
		}
		for _, t := range batch {
			tctx, err := tenancy.AsTenant(ctx, t.TenantID)
			if err != nil {
				return n, err
			}
			done, err := v.rewrap(tctx, t.TenantID, next)
			if err != nil {
				return n, fmt.Errorf("vault: rewrap tenant %s: %w", t.TenantID, err)
			}
			if done {
				n++
			}
		}
		if len(batch) < 100 {
			break
		}
		after = batch[len(batch)-1].TenantID
	}
	if err := v.rewrapAuditKey(ctx, next); err != nil {
		return n, err
	}
	v.log.InfoContext(ctx, "vault: rotated key-encryption key", "tenants", n)
	return n, nil
}

// rewrap wraps one tenant's keys with next.
func (v *Vault) rewrap(ctx context.Context, tid string, next tink.AEAD) (bool, error) {
	done := false
	err := v.modify(ctx, tid, func(ctx context.Context, tx bun.Tx, row *keyRow, found bool) error {
		if !found || row.DestroyedAt != nil {
			return nil
		}
		for _, k := range []struct {
			b  *[]byte
			ad []byte
		}{
			{&row.DataKeyset, lengthPrefixed(adDataKeyset, tid)},
			{&row.IndexKeyset, lengthPrefixed(adIndexKeyset, tid)},
		} {
			h, err := v.unwrapHandle(tid, *k.b, k.ad)
			if err != nil {
				return err
			}
			if *k.b, err = wrap(h, next, k.ad); err != nil {
				return err
			}
		}
		if err := v.updateRow(ctx, tx, row, "data_keyset", "index_keyset"); err != nil {
			return err
		}
		done = true
		return v.audit(ctx, tx, tid, "vault.kek_rotated", nil)
	})
	return done, err
}

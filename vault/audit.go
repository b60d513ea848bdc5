package vault

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"
	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TableAuditKey holds the vault's audit key: one HMAC-SHA-256 PRF keyset,
// wrapped by the key-encryption key like the tenants' keys. It is not
// tenant-owned (it holds no tenant's data) and is never destroyed with a
// tenant, so that an audit log kept after its tenant's purge stays
// verifiable.
const TableAuditKey = "socialcrm_vault_audit_key"

// auditKeyRow is the wrapped audit keyset (a single row, id 1).
type auditKeyRow struct {
	bun.BaseModel `bun:"table:socialcrm_vault_audit_key,alias:vak"`

	ID        int64     `bun:"id,pk"`
	Keyset    []byte    `bun:"keyset,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

// TenantRegistryKey makes the audit key a table no tenant's statement may
// change or delete (see tenancy.InstallGuard): it is every tenant's, and
// deleting it made every tenant's audit log fail to verify.
func (*auditKeyRow) TenantRegistryKey() string { return "" }

func addAuditKeyMigration(ms *migrate.Migrations) {
	migrations.Add(ms, "20261206000200", "vault_audit_key", func(ctx context.Context, tx bun.Tx) error {
		return migrations.Exec(ctx, tx, `CREATE TABLE IF NOT EXISTS socialcrm_vault_audit_key (
			id BIGINT NOT NULL PRIMARY KEY,
			keyset BLOB NOT NULL,
			created_at TIMESTAMP NOT NULL
		)`)
	})
}

// Associated data of the wrapped audit keyset and domain of the derived
// per-tenant keys.
const (
	adAuditKeyset = "socialcrm/vault/audit-keyset/v1"
	adAuditTenant = "socialcrm/vault/audit-tenant-key/v1"
)

// AuditKeys authenticates tenants' audit logs (it implements
// tenancy.AuditKeys): each tenant's key is derived from the vault's audit
// key with Tink's HMAC-SHA-256 PRF, and each entry is authenticated with
// HMAC-SHA-256 under it. The audit key is stored only wrapped by the
// key-encryption key, so a database writer who lacks that key cannot
// compute a valid entry. Safe for concurrent use.
type AuditKeys struct {
	prf prf.PRF
}

var _ tenancy.AuditKeys = (*AuditKeys)(nil)

// AuditMAC returns the HMAC-SHA-256 of msg under tenantID's audit key.
func (k *AuditKeys) AuditMAC(_ context.Context, tenantID string, msg []byte) ([]byte, error) {
	key, err := k.prf.ComputePRF(lengthPrefixed(adAuditTenant, tenantID), 32)
	if err != nil {
		return nil, fmt.Errorf("vault: audit key: %w", err)
	}
	m := hmac.New(sha256.New, key)
	clear(key)
	m.Write(msg)
	return m.Sum(nil), nil
}

// AuditKeys returns the vault's audit-log keys, creating the audit key on
// the first call for a database. Pass them to tenancy.WithAuditKeys
// (socialcrm.Open does). Call it outside any transaction of the caller:
// the first call writes the key in a transaction of its own. Once loaded,
// the vault's own audit entries are keyed too.
func (v *Vault) AuditKeys(ctx context.Context) (*AuditKeys, error) {
	return v.auditKeys(ctx, true)
}

// AuditLog returns the tenancy audit log over db (a *bun.DB or the
// caller's bun.Tx) with opts, keyed with the vault's audit keys when the
// database has them (AuditKeys created them), unkeyed otherwise. It only
// reads the key, so it is safe inside the caller's transaction. Packages
// that hold a Vault write their audit entries through it, so that they
// join the same keyed chain as the SDK's log.
func (v *Vault) AuditLog(ctx context.Context, db bun.IDB, opts ...tenancy.Option) (*tenancy.AuditLog, error) {
	keys, err := v.auditKeys(ctx, false)
	if err != nil {
		return nil, err
	}
	if keys != nil {
		opts = append(opts, tenancy.WithAuditKeys(keys))
	}
	return tenancy.NewAuditLog(db, opts...)
}

// auditKeys loads (and with create, creates) the audit keys; nil, nil
// when there are none and create is false.
func (v *Vault) auditKeys(ctx context.Context, create bool) (*AuditKeys, error) {
	if k := v.auditKey.Load(); k != nil {
		return k, nil
	}
	var row auditKeyRow
	err := v.db.NewSelect().Model(&row).Where("id = 1").Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) && create {
		if err := v.createAuditKey(ctx); err != nil {
			return nil, err
		}
		err = v.db.NewSelect().Model(&row).Where("id = 1").Scan(ctx)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("vault: read audit key: %w", err)
	}
	h, err := v.unwrapHandle("", row.Keyset, []byte(adAuditKeyset))
	if err != nil {
		return nil, err
	}
	set, err := prf.NewPRFSet(h)
	if err != nil {
		return nil, fmt.Errorf("vault: audit key: %w", err)
	}
	k := &AuditKeys{prf: set.PRFs[set.PrimaryID]}
	if k.prf == nil {
		return nil, errors.New("vault: audit key: no primary")
	}
	v.auditKey.CompareAndSwap(nil, k)
	return v.auditKey.Load(), nil
}

// createAuditKey writes a fresh audit key unless one exists: two
// processes may race here, and the first key written wins.
func (v *Vault) createAuditKey(ctx context.Context) error {
	h, err := keyset.NewHandle(prf.HMACSHA256PRFKeyTemplate())
	if err != nil {
		return fmt.Errorf("vault: new audit key: %w", err)
	}
	wrapped, err := wrap(h, v.keks.Load().current, []byte(adAuditKeyset))
	if err != nil {
		return err
	}
	row := auditKeyRow{ID: 1, Keyset: wrapped, CreatedAt: v.clock()}
	if _, err := v.db.NewInsert().Model(&row).On("CONFLICT (id) DO NOTHING").Exec(ctx); err != nil {
		return fmt.Errorf("vault: store audit key: %w", err)
	}
	return nil
}

// rewrapAuditKey wraps the audit key with next (RotateKEK).
func (v *Vault) rewrapAuditKey(ctx context.Context, next tink.AEAD) error {
	var row auditKeyRow
	err := v.db.NewSelect().Model(&row).Where("id = 1").Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vault: read audit key: %w", err)
	}
	h, err := v.unwrapHandle("", row.Keyset, []byte(adAuditKeyset))
	if err != nil {
		return err
	}
	if row.Keyset, err = wrap(h, next, []byte(adAuditKeyset)); err != nil {
		return err
	}
	if _, err := v.db.NewUpdate().Model(&row).Column("keyset").WherePK().Exec(ctx); err != nil {
		return fmt.Errorf("vault: rewrap audit key: %w", err)
	}
	return nil
}

package social

import (
	"context"
	"errors"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// TableUnsealed holds, for a database created before platform data was
// sealed, the plaintext the schema migration moved out of the columns it
// dropped (profiles, media texts, raw bodies), until SealPending seals each
// value into its row and deletes it. It is empty on a new database and
// after SealPending; it is not under row-level security, so that the
// sealing pass can find the tenants with work left.
const TableUnsealed = "socialcrm_social_unsealed"

// unsealed is one plaintext value waiting to be sealed.
type unsealed struct {
	bun.BaseModel `bun:"table:socialcrm_social_unsealed,alias:sus"`

	TenantID string `bun:"tenant_id,pk"`
	Tbl      string `bun:"tbl,pk"`
	Record   string `bun:"record,pk"`
	Field    string `bun:"field,pk"`
	Value    string `bun:"value,notnull"`
}

// TenantRegistryKey makes the plaintext waiting to be sealed a tenant
// registry to the Guard (see tenancy.InstallGuard): under a tenant's
// principal a statement on it is confined to the tenant's own rows, as
// SealPending's are; PendingTenants, without a tenant, reaches every row.
// Tenant B's ordinary statements read tenant A's plaintext names, titles
// and raw responses in it, and could delete them before A sealed them.
func (*unsealed) TenantRegistryKey() string { return "tenant_id" }

// sealedPlatformData is the schema migration that moves platform data to
// sealed columns: it adds them, copies every plaintext value into
// TableUnsealed, drops the plaintext columns, gives media rows an id, and
// makes snapshot metrics nullable (unknown). Row-level security is lifted
// for the copy, inside the migration's transaction, and forced again.
func sealedPlatformData(ctx context.Context, tx bun.Tx) error {
	pg := tx.Dialect().Name() == dialect.PG
	tables := []string{TableConnections, TableMedia, TableRawResponses, TableSnapshots}
	if pg {
		for _, t := range tables {
			if _, err := tx.ExecContext(ctx, "ALTER TABLE ? NO FORCE ROW LEVEL SECURITY", bun.Ident(t)); err != nil {
				return err
			}
		}
	}
	if err := migrations.Exec(ctx, tx,
		`CREATE TABLE IF NOT EXISTS socialcrm_social_unsealed (
			tenant_id TEXT NOT NULL,
			tbl TEXT NOT NULL,
			record TEXT NOT NULL,
			field TEXT NOT NULL,
			value TEXT NOT NULL,
			PRIMARY KEY (tenant_id, tbl, record, field)
		)`,
		`ALTER TABLE socialcrm_social_media ADD COLUMN id TEXT NOT NULL DEFAULT ''`,
		`UPDATE socialcrm_social_media SET id = connection_id || ':' || external_id`,
		`CREATE UNIQUE INDEX IF NOT EXISTS socialcrm_social_media_id ON socialcrm_social_media (tenant_id, id)`,
		`ALTER TABLE socialcrm_social_media ADD COLUMN title_sealed BLOB`,
		`ALTER TABLE socialcrm_social_media ADD COLUMN description_sealed BLOB`,
		`ALTER TABLE socialcrm_social_media ADD COLUMN share_url_sealed BLOB`,
		`ALTER TABLE socialcrm_social_raw_responses ADD COLUMN body_sealed BLOB`,
		`ALTER TABLE socialcrm_social_connections ADD COLUMN display_name_sealed BLOB`,
		`ALTER TABLE socialcrm_social_connections ADD COLUMN avatar_url_sealed BLOB`,
	); err != nil {
		return err
	}
	moves := []struct{ table, column, field string }{
		{TableMedia, "title", fieldTitle}, {TableMedia, "description", fieldDescription}, {TableMedia, "share_url", fieldShareURL},
		{TableRawResponses, "body", fieldBody},
		{TableConnections, "display_name", fieldDisplayName}, {TableConnections, "avatar_url", fieldAvatarURL},
	}
	for _, m := range moves {
		if _, err := tx.ExecContext(ctx, `INSERT INTO socialcrm_social_unsealed (tenant_id, tbl, record, field, value)
			SELECT tenant_id, ?, id, ?, ? FROM ? WHERE ? <> ''`,
			m.table, m.field, bun.Ident(m.column), bun.Ident(m.table), bun.Ident(m.column)); err != nil {
			return fmt.Errorf("social: migrate %s.%s: %w", m.table, m.column, err)
		}
		if _, err := tx.ExecContext(ctx, "ALTER TABLE ? DROP COLUMN ?", bun.Ident(m.table), bun.Ident(m.column)); err != nil {
			return fmt.Errorf("social: migrate %s.%s: %w", m.table, m.column, err)
		}
	}
	metrics := []string{"followers", "following", "likes", "media_count", "views"}
	if pg {
		for _, c := range metrics {
			if _, err := tx.ExecContext(ctx, "ALTER TABLE socialcrm_social_snapshots ALTER COLUMN ? DROP NOT NULL", bun.Ident(c)); err != nil {
				return err
			}
		}
		for _, t := range tables {
			if _, err := tx.ExecContext(ctx, "ALTER TABLE ? FORCE ROW LEVEL SECURITY", bun.Ident(t)); err != nil {
				return err
			}
		}
		return nil
	}
	// SQLite cannot drop a NOT NULL constraint: rebuild the table.
	cols := "tenant_id, id, connection_id, platform, taken_at, followers, following, likes, media_count, views, engagement_rate, purposes, source, breakdowns"
	return migrations.Exec(ctx, tx,
		`CREATE TABLE socialcrm_social_snapshots_v2 (
			tenant_id TEXT NOT NULL,
			id TEXT NOT NULL,
			connection_id TEXT NOT NULL,
			platform TEXT NOT NULL,
			taken_at TIMESTAMP NOT NULL,
			followers BIGINT,
			following BIGINT,
			likes BIGINT,
			media_count BIGINT,
			views BIGINT,
			engagement_rate DOUBLE PRECISION NOT NULL,
			purposes TEXT NOT NULL,
			source TEXT NOT NULL DEFAULT '',
			breakdowns TEXT,
			PRIMARY KEY (tenant_id, id)
		)`,
		`INSERT INTO socialcrm_social_snapshots_v2 (`+cols+`) SELECT `+cols+` FROM socialcrm_social_snapshots`,
		`DROP TABLE socialcrm_social_snapshots`,
		`ALTER TABLE socialcrm_social_snapshots_v2 RENAME TO socialcrm_social_snapshots`,
		`CREATE INDEX IF NOT EXISTS socialcrm_social_snapshots_conn ON socialcrm_social_snapshots (tenant_id, connection_id, taken_at)`,
	)
}

// sealedAccountIDs is the schema migration that seals the platform
// account ids of the connections and of the revoke queue: it adds their
// sealed columns, moves every id into TableUnsealed (SealPending seals it
// and writes its blind index, connAccountIndex, in the account_id
// column), and leaves in account_id a placeholder that names nothing
// ("unsealed:" and the connection's id, unique as the connections'
// constraint wants; ” in the queue). Row-level security is lifted for
// the copy, inside the migration's transaction, and forced again.
func sealedAccountIDs(ctx context.Context, tx bun.Tx) error {
	pg := tx.Dialect().Name() == dialect.PG
	tables := []string{TableConnections, TableRevocations}
	if pg {
		for _, t := range tables {
			if _, err := tx.ExecContext(ctx, "ALTER TABLE ? NO FORCE ROW LEVEL SECURITY", bun.Ident(t)); err != nil {
				return err
			}
		}
	}
	if err := migrations.Exec(ctx, tx,
		`ALTER TABLE socialcrm_social_connections ADD COLUMN account_id_sealed BLOB`,
		`ALTER TABLE socialcrm_social_revocations ADD COLUMN account_id_sealed BLOB`,
		`INSERT INTO socialcrm_social_unsealed (tenant_id, tbl, record, field, value)
			SELECT tenant_id, 'socialcrm_social_connections', id, 'account_id', account_id
			FROM socialcrm_social_connections WHERE account_id <> ''`,
		`UPDATE socialcrm_social_connections SET account_id = 'unsealed:' || id`,
		`INSERT INTO socialcrm_social_unsealed (tenant_id, tbl, record, field, value)
			SELECT tenant_id, 'socialcrm_social_revocations', id, 'account_id', account_id
			FROM socialcrm_social_revocations WHERE account_id <> ''`,
		`UPDATE socialcrm_social_revocations SET account_id = ''`,
	); err != nil {
		return fmt.Errorf("social: migrate account ids: %w", err)
	}
	if pg {
		for _, t := range tables {
			if _, err := tx.ExecContext(ctx, "ALTER TABLE ? FORCE ROW LEVEL SECURITY", bun.Ident(t)); err != nil {
				return err
			}
		}
	}
	return nil
}

// sealTargets maps the tables of TableUnsealed to their sealed columns by
// field.
var sealTargets = map[string]map[string]string{
	TableMedia:        {fieldTitle: "title_sealed", fieldDescription: "description_sealed", fieldShareURL: "share_url_sealed"},
	TableRawResponses: {fieldBody: "body_sealed"},
	TableConnections:  {fieldDisplayName: "display_name_sealed", fieldAvatarURL: "avatar_url_sealed", fieldAccountID: "account_id_sealed"},
	TableRevocations:  {fieldAccountID: "account_id_sealed"},
}

// PendingTenants returns the tenants that still have plaintext waiting in
// TableUnsealed. It needs no tenant in ctx.
func (s *Store) PendingTenants(ctx context.Context) ([]string, error) {
	var ids []string
	if err := s.db.NewSelect().Model((*unsealed)(nil)).Distinct().Column("tenant_id").Order("tenant_id").Scan(ctx, &ids); err != nil {
		return nil, fmt.Errorf("social: pending tenants: %w", err)
	}
	return ids, nil
}

// SealPending seals the context tenant's plaintext left in TableUnsealed
// by the schema migration into the rows it came from, batch values at a
// time (default 500), and returns how many it sealed. Each batch commits
// alone (the sealed values written and their plaintext deleted together),
// so an interrupted run resumes where it stopped, and a second run finds
// nothing to do. progress, if set, is called after each batch with the
// values sealed so far. For a tenant whose key was destroyed the plaintext
// is deleted unsealed: nothing may read it any more.
func (s *Store) SealPending(ctx context.Context, batch int, progress func(sealed int)) (int, error) {
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return 0, err
	}
	if batch <= 0 {
		batch = 500
	}
	done := 0
	for {
		var rows []unsealed
		if err := s.db.NewSelect().Model(&rows).Where("tenant_id = ?", tid).
			Order("tbl", "record", "field").Limit(int64(batch)).Scan(ctx); err != nil {
			return done, fmt.Errorf("social: seal pending: %w", err)
		}
		if len(rows) == 0 {
			return done, nil
		}
		sealed := make([]vault.Sealed, len(rows))
		// The blind index of each account id (written with its seal).
		index := make([]string, len(rows))
		destroyed := false
		for i, r := range rows {
			if sealTargets[r.Tbl][r.Field] == "" {
				return done, fmt.Errorf("social: seal pending: unknown field %s.%s", r.Tbl, r.Field)
			}
			sealed[i], err = s.seal(ctx, r.Value, r.Record, r.Field)
			if err == nil && r.Field == fieldAccountID {
				index[i], err = s.connAccountIndex(ctx, r.Value)
			}
			if errors.Is(err, vault.ErrKeyDestroyed) {
				destroyed = true
				break
			}
			if err != nil {
				return done, fmt.Errorf("social: seal pending: %w", err)
			}
		}
		err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
			for i, r := range rows {
				if !destroyed {
					if _, err := tx.NewRaw("UPDATE ? SET ? = ? WHERE tenant_id = ? AND id = ?",
						bun.Ident(r.Tbl), bun.Ident(sealTargets[r.Tbl][r.Field]), sealed[i], tid, r.Record).Exec(ctx); err != nil {
						return err
					}
					if index[i] != "" {
						if _, err := tx.NewRaw("UPDATE ? SET account_id = ? WHERE tenant_id = ? AND id = ?",
							bun.Ident(r.Tbl), index[i], tid, r.Record).Exec(ctx); err != nil {
							return err
						}
					}
				}
				if _, err := tx.NewDelete().Model(&rows[i]).WherePK().Exec(ctx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return done, fmt.Errorf("social: seal pending: %w", err)
		}
		if !destroyed {
			done += len(rows)
		}
		if progress != nil {
			progress(done)
		}
	}
}

// accountIndexTenant owns the key of the account index: the index is
// looked up by account alone, across tenants, so its key cannot be one
// tenant's. It is no tenant's id (tenancy.NewID makes version 7 UUIDs).
const accountIndexTenant = "00000000-0000-0000-0000-000000000000"

// accountPrefix marks a blind index in the account index's account_id
// column (older rows held the id itself until SealAccountIndex).
const accountPrefix = "bi1:"

// accountIndex returns the blind index of a platform account: a keyed
// hash under a vault key of its own, so that the account index holds no
// platform id in clear.
func (s *Store) accountIndex(ctx context.Context, platform, accountID string) (string, error) {
	ictx, err := tenancy.AsTenant(tenancy.System(ctx, "social.accounts"), accountIndexTenant)
	if err != nil {
		return "", err
	}
	h, err := s.vault.Index(ictx, platform+"\x00"+accountID, "social.account")
	if err != nil {
		return "", fmt.Errorf("social: account index: %w", err)
	}
	return accountPrefix + h, nil
}

// deliveryPrefix marks a keyed delivery key (deliveryKeys) in the
// deliveries' key column.
const deliveryPrefix = "bi1:"

// deliveryKeys returns the keys under which the deliveries of platform
// identified by keys are recorded: keyed hashes, under the vault key of
// the account index, so that the deliveries table holds nothing a
// reader without the vault can match against a person's platform ids (a
// platform's event keys hash the sender's id with values as guessable as
// a timestamp).
func (s *Store) deliveryKeys(ctx context.Context, platform string, keys []string) ([]string, error) {
	ictx, err := tenancy.AsTenant(tenancy.System(ctx, "social.deliveries"), accountIndexTenant)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		h, err := s.vault.Index(ictx, platform+"\x00"+k, "social.delivery")
		if err != nil {
			return nil, fmt.Errorf("social: delivery key: %w", err)
		}
		out[i] = deliveryPrefix + h
	}
	return out, nil
}

// SealAccountIndex replaces the platform account ids that older versions
// stored in clear in the account index by their blind index, and returns
// how many rows it changed. Running it again changes nothing. It needs no
// tenant in ctx.
func (s *Store) SealAccountIndex(ctx context.Context) (int, error) {
	var rows []account
	if err := s.db.NewSelect().Model(&rows).Where("account_id NOT LIKE ?", accountPrefix+"%").Scan(ctx); err != nil {
		return 0, fmt.Errorf("social: seal account index: %w", err)
	}
	n := 0
	for _, a := range rows {
		idx, err := s.accountIndex(ctx, a.Platform, a.AccountID)
		if err != nil {
			return n, err
		}
		err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.NewDelete().Model(&a).WherePK().Exec(ctx); err != nil {
				return err
			}
			_, err := tx.NewInsert().Model(&account{Platform: a.Platform, AccountID: idx, TenantID: a.TenantID, ConnectionID: a.ConnectionID, Live: a.Live}).
				On("CONFLICT DO NOTHING").Exec(ctx)
			return err
		})
		if err != nil {
			return n, fmt.Errorf("social: seal account index: %w", err)
		}
		n++
	}
	return n, nil
}

// mediaUnknownMetrics makes the media metrics (views, likes, comments,
// shares) nullable, so that a metric the platform did not give is stored
// unknown rather than 0. Existing rows keep their values.
func mediaUnknownMetrics(ctx context.Context, tx bun.Tx) error {
	metrics := []string{"views", "likes", "comments", "shares"}
	if tx.Dialect().Name() == dialect.PG {
		for _, c := range metrics {
			if _, err := tx.ExecContext(ctx, "ALTER TABLE ? ALTER COLUMN ? DROP NOT NULL", bun.Ident(TableMedia), bun.Ident(c)); err != nil {
				return fmt.Errorf("social: migrate %s.%s: %w", TableMedia, c, err)
			}
		}
		return nil
	}
	// SQLite cannot drop a NOT NULL constraint: rebuild the table.
	cols := "tenant_id, id, connection_id, external_id, platform, kind, published_at, duration_sec, views, likes, comments, shares, purposes, fetched_at, title_sealed, description_sealed, share_url_sealed"
	return migrations.Exec(ctx, tx,
		`CREATE TABLE socialcrm_social_media_v2 (
			tenant_id TEXT NOT NULL,
			id TEXT NOT NULL DEFAULT '',
			connection_id TEXT NOT NULL,
			external_id TEXT NOT NULL,
			platform TEXT NOT NULL,
			kind TEXT NOT NULL,
			published_at TIMESTAMP,
			duration_sec INTEGER NOT NULL,
			views BIGINT,
			likes BIGINT,
			comments BIGINT,
			shares BIGINT,
			purposes TEXT NOT NULL,
			fetched_at TIMESTAMP NOT NULL,
			title_sealed BLOB,
			description_sealed BLOB,
			share_url_sealed BLOB,
			PRIMARY KEY (tenant_id, connection_id, external_id)
		)`,
		`INSERT INTO socialcrm_social_media_v2 (`+cols+`) SELECT `+cols+` FROM socialcrm_social_media`,
		`DROP TABLE socialcrm_social_media`,
		`ALTER TABLE socialcrm_social_media_v2 RENAME TO socialcrm_social_media`,
		`CREATE UNIQUE INDEX IF NOT EXISTS socialcrm_social_media_id ON socialcrm_social_media (tenant_id, id)`,
	)
}

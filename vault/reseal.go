package vault

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
)

// Column declares a column of a tenant-owned table that holds Sealed
// values, so that Reseal can re-encrypt it generically. The table must have
// a tenant_id column. Pass columns to New with WithColumns.
//
//	vault.Column{Table: "socialcrm_connections", ID: "id", Sealed: "access_token"}
type Column struct {
	// Table is the table name (unquoted, no schema).
	Table string
	// ID is the column identifying a row within the tenant, used for
	// paging in ID order and as the Binding's Record by default.
	ID string
	// Sealed is the column holding the Sealed value (NULL when empty).
	Sealed string
	// Binding returns the binding a row's value was sealed with, given the
	// row's ID. Nil means Binding{Record: id, Field: Sealed}.
	Binding func(id string) Binding
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c Column) validate() error {
	for _, s := range []string{c.Table, c.ID, c.Sealed} {
		if !identRE.MatchString(s) {
			return fmt.Errorf("vault: column %s.%s (id %s): names must be plain SQL identifiers", c.Table, c.Sealed, c.ID)
		}
	}
	return nil
}

func (c Column) binding(id string) Binding {
	if c.Binding != nil {
		return c.Binding(id)
	}
	return Binding{Record: id, Field: c.Sealed}
}

// ResealOptions tunes Reseal. The zero value is ready to use.
type ResealOptions struct {
	// BatchSize is how many rows each transaction reseals (default 500,
	// at most 10000).
	BatchSize int
	// Progress, if set, is called with the rows done (resealed, already
	// current, or failed) and the total after each batch, and once with
	// done=0 before the first.
	Progress func(done, total int64)
}

// ResealStats is what a Reseal did.
type ResealStats struct {
	// Total is the number of non-NULL sealed values of the tenant in the
	// declared columns when Reseal began.
	Total int64
	// Resealed is how many values were re-encrypted with the primary key.
	Resealed int64
	// Current is how many were already sealed with the primary key, or
	// changed by someone else while Reseal ran.
	Current int64
	// Failed is how many could not be opened (damaged, or declared with a
	// Binding that does not match how they were sealed); they are left as
	// they are.
	Failed int64
}

// Reseal re-encrypts the context tenant's sealed values in the declared
// columns (WithColumns) with the tenant's primary data key, in batches of
// one transaction each, after RotateKey. Values already sealed with the
// primary key are skipped: the key id inside every Sealed is the durable
// progress mark, so a Reseal interrupted at any point (a cancelled context,
// a crash) resumes by being run again, and a value written concurrently by
// another process is never overwritten (each update compares the old
// ciphertext).
//
// Processes that have not yet seen the rotation (see WithCacheMaxAge) may
// still seal with the previous key meanwhile; run Reseal again after that
// time to catch their values. Only an owner, an admin or the system may
// reseal. It fails with ErrKeyDestroyed for a destroyed tenant.
func (v *Vault) Reseal(ctx context.Context, o ResealOptions) (ResealStats, error) {
	var st ResealStats
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return st, err
	}
	if err := tenancy.Require(ctx, tenancy.RoleOwner, tenancy.RoleAdmin); err != nil {
		return st, err
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	o.BatchSize = min(o.BatchSize, 10000)
	progress := func(done int64) {
		if o.Progress != nil {
			o.Progress(done, st.Total)
		}
	}
	// The newest keys, not a cached copy: the rotation may be another
	// process's.
	k, err := v.reload(ctx, tid)
	if errors.Is(err, errNoKey) {
		progress(0)
		return st, nil // nothing can have been sealed
	}
	if err != nil {
		return st, err
	}
	if k.destroyed {
		return st, ErrKeyDestroyed
	}
	for _, c := range v.columns {
		n, err := v.countSealed(ctx, tid, c)
		if err != nil {
			return st, err
		}
		st.Total += n
	}
	progress(0)
	var done int64
	for _, c := range v.columns {
		after, first := "", true
		for {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			var n int
			err := tenancy.RunInTx(ctx, v.db, nil, func(ctx context.Context, tx bun.Tx) error {
				var err error
				n, after, err = v.resealBatch(ctx, tx, tid, c, k, after, first, o.BatchSize, &st)
				return err
			})
			if err != nil {
				return st, fmt.Errorf("vault: reseal %s.%s: %w", c.Table, c.Sealed, err)
			}
			first = false
			done += int64(n)
			progress(done)
			if n < o.BatchSize {
				break
			}
		}
	}
	v.log.InfoContext(ctx, "vault: resealed tenant values", "tenant", tid,
		"total", st.Total, "resealed", st.Resealed, "current", st.Current, "failed", st.Failed)
	return st, nil
}

func (v *Vault) countSealed(ctx context.Context, tid string, c Column) (int64, error) {
	var n int64
	err := tenancy.RunInTx(ctx, v.db, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewRaw("SELECT count(*) FROM ? WHERE tenant_id = ? AND ? IS NOT NULL",
			bun.Ident(c.Table), tid, bun.Ident(c.Sealed)).Scan(ctx, &n)
	})
	if err != nil {
		return 0, fmt.Errorf("vault: count %s.%s: %w", c.Table, c.Sealed, err)
	}
	return n, nil
}

// resealBatch reseals up to limit rows with ids after after and returns how
// many rows it saw and the last id.
func (v *Vault) resealBatch(ctx context.Context, tx bun.Tx, tid string, c Column, k *tenantKeys,
	after string, first bool, limit int, st *ResealStats) (int, string, error) {
	type row struct {
		ID     string
		Sealed Sealed
	}
	q := "SELECT ? AS id, ? AS sealed FROM ? WHERE tenant_id = ? AND ? IS NOT NULL"
	args := []any{bun.Ident(c.ID), bun.Ident(c.Sealed), bun.Ident(c.Table), tid, bun.Ident(c.Sealed)}
	if !first {
		q += " AND ? > ?"
		args = append(args, bun.Ident(c.ID), after)
	}
	q += " ORDER BY ? LIMIT ?"
	args = append(args, bun.Ident(c.ID), limit)
	var rows []row
	if err := tx.NewRaw(q, args...).Scan(ctx, &rows); err != nil {
		return 0, after, err
	}
	for _, r := range rows {
		after = r.ID
		if r.Sealed.KeyID() == k.primary {
			st.Current++
			continue
		}
		b := c.binding(r.ID)
		ad := lengthPrefixed(adSealed, tid, b.Record, b.Field)
		pt, err := k.aead.Decrypt(r.Sealed.ct, ad)
		if err != nil || b.validate() != nil {
			st.Failed++
			continue
		}
		ct, err := k.aead.Encrypt(pt, ad)
		clear(pt)
		if err != nil {
			return 0, after, err
		}
		res, err := tx.NewRaw("UPDATE ? SET ? = ? WHERE tenant_id = ? AND ? = ? AND ? = ?",
			bun.Ident(c.Table), bun.Ident(c.Sealed), Sealed{ct: ct}, tid,
			bun.Ident(c.ID), r.ID, bun.Ident(c.Sealed), r.Sealed).Exec(ctx)
		if err != nil {
			return 0, after, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			st.Current++
			continue
		}
		st.Resealed++
	}
	return len(rows), after, nil
}

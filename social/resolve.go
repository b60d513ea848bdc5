package social

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// Subject identifier kinds of platform accounts, for retention requests.
const (
	// SubjectAccount is a platform's id of an account (Connection.AccountID:
	// a Meta app-scoped user id, a Page id, a TikTok open_id).
	SubjectAccount = "account_id"
	// SubjectOpenID is a TikTok open_id, the name TikTok gives the
	// account id; it resolves as SubjectAccount does.
	SubjectOpenID = "open_id"
	// SubjectConnection is a connection's id: the subject of the
	// connection's media, metric snapshots and raw responses.
	SubjectConnection = "connection_id"
)

// Resolvers returns the store's resolvers of data subjects, for
// retention.Engine.RegisterResolver: an account id (or a TikTok open_id)
// leads, through the blind index of the sealed account ids, to the ids of
// the tenant's connections of that account, and so to everything fetched
// through them (media, metric snapshots, raw responses), and an open_id
// to the account id itself; a connection id leads to the connections
// derived from it (see Store.Derived), as Disconnect cascades to them.
func (s *Store) Resolvers() map[string]retention.Resolver {
	return map[string]retention.Resolver{
		SubjectAccount:    s.resolveAccount,
		SubjectConnection: resolveDerived,
		SubjectOpenID: func(ctx context.Context, db bun.IDB, openID string) (map[string][]string, error) {
			keys, err := s.resolveAccount(ctx, db, openID)
			if err != nil {
				return nil, err
			}
			if len(keys[SubjectConnection]) > 0 {
				keys[SubjectAccount] = []string{openID}
			}
			return keys, nil
		},
	}
}

// resolveAccount finds the connections of a platform account by the blind
// index of its id.
func (s *Store) resolveAccount(ctx context.Context, db bun.IDB, account string) (map[string][]string, error) {
	idx, err := s.connAccountIndex(ctx, account)
	if err != nil {
		return nil, fmt.Errorf("social: resolve account: %w", err)
	}
	var ids []string
	err = tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model((*Connection)(nil)).Column("id").Apply(tenancy.Scope(ctx)).
			Where("?TableAlias.account_id = ?", idx).Scan(ctx, &ids)
	})
	if err != nil {
		return nil, fmt.Errorf("social: resolve account: %w", err)
	}
	return map[string][]string{SubjectConnection: ids}, nil
}

// Accounts returns, read in db (a transaction of the context's tenant),
// the platform account ids of the tenant's connections ids of platform,
// opened: the connections store them only sealed. A caller that erases
// what it stored under a connection's account (the root package erases a
// Meta connection's Messenger threads so) reads them here. Connections
// whose id was never recorded are left out.
func (s *Store) Accounts(ctx context.Context, db bun.IDB, platform string, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var cs []Connection
	if err := db.NewSelect().Model(&cs).Column("id", "account_id_sealed").Apply(tenancy.Scope(ctx)).
		Where("?TableAlias.id IN (?)", bun.In(ids)).Where("?TableAlias.platform = ?", platform).Scan(ctx); err != nil {
		return nil, fmt.Errorf("social: accounts: %w", err)
	}
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		a, err := s.open(ctx, c.AccountIDSealed, c.ID, fieldAccountID)
		if err != nil {
			return nil, fmt.Errorf("social: accounts: %w", err)
		}
		if a != "" {
			out = append(out, a)
		}
	}
	return out, nil
}

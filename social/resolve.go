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

// Resolvers returns the package's resolvers of data subjects, for
// retention.Engine.RegisterResolver: an account id (or a TikTok open_id)
// leads to the ids of the tenant's connections of that account, and so to
// everything fetched through them (media, metric snapshots, raw
// responses), and an open_id to the account id itself; a connection id
// leads to the connections derived from it (see Store.Derived), as
// Disconnect cascades to them.
func Resolvers() map[string]retention.Resolver {
	return map[string]retention.Resolver{
		SubjectAccount:    resolveAccount,
		SubjectConnection: resolveDerived,
		SubjectOpenID: func(ctx context.Context, db bun.IDB, openID string) (map[string][]string, error) {
			keys, err := resolveAccount(ctx, db, openID)
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

// resolveAccount finds the connections of a platform account.
func resolveAccount(ctx context.Context, db bun.IDB, account string) (map[string][]string, error) {
	var ids []string
	err := tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
		return tx.NewSelect().Model((*Connection)(nil)).Column("id").Apply(tenancy.Scope(ctx)).
			Where("?TableAlias.account_id = ?", account).Scan(ctx, &ids)
	})
	if err != nil {
		return nil, fmt.Errorf("social: resolve account: %w", err)
	}
	return map[string][]string{SubjectConnection: ids}, nil
}

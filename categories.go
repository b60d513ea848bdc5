package socialcrm

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// Categories returns the retention categories of every tenant-owned table
// socialcrm creates, for retention.Engine.Register: what each holds, why,
// and how it is erased. audit is the log whose own retention truncates it.
// A host application registers its own tables' categories beside these;
// retention.Engine.Uncovered lists any tenant-owned table left without one.
func Categories(audit *tenancy.AuditLog) []retention.Category {
	cats := retention.TenancyCategories(audit)
	cats = append(cats, retention.OwnCategories()...)
	cats = append(cats, crm.Categories()...)
	cats = append(cats, meta.CallbackCategories()...)
	cats = append(cats, socialCategories(nil)...)
	return append(cats,
		retention.Category{Name: "vault.keys", Table: vault.TableKeys, ID: "tenant_id", Time: "created_at",
			Omit:       []string{"data_keyset", "index_keyset"},
			LegalBasis: "security of processing (GDPR art. 32)", Purpose: "the tenant's wrapped data keys; destroying them shreds its sealed data"},
		retention.Category{Name: "vault.tenants", Table: vault.TableKeyTenants, ID: "tenant_id", Time: "created_at",
			LegalBasis: "security of processing (GDPR art. 32)", Purpose: "which tenants have keys, for key-encryption-key rotation"},
	)
}

// Names of the social categories the default policy gives rules.
const (
	// CategoryMedia is the posts and videos fetched from connected accounts.
	CategoryMedia = "social.media"
	// CategoryOAuthState is the single-use states of connections in
	// progress; the default policy deletes them a day after they expire.
	CategoryOAuthState = "social.oauth_state"
)

// socialCategories declares the social tables. With st, the sealed
// columns (profiles, media texts, raw bodies) are exported opened through
// it; without, they are left out of exports.
func socialCategories(st *social.Store) []retention.Category {
	sealed := func(table string, fields []social.SealedField) ([]retention.SealedColumn, []string) {
		var cols []retention.SealedColumn
		var omit []string
		for _, f := range fields {
			if st == nil {
				omit = append(omit, f.Column)
				continue
			}
			column := f.Column
			cols = append(cols, retention.SealedColumn{Column: column, As: f.As,
				Open: func(ctx context.Context, tenantID, id string, b []byte) (string, error) {
					if tid, err := tenancy.TenantID(ctx); err != nil || tid != tenantID {
						return "", fmt.Errorf("socialcrm: open %s.%s: the context does not act on the export's tenant", table, column)
					}
					return st.OpenSealed(ctx, table, column, id, b)
				}})
		}
		return cols, omit
	}
	var cats []retention.Category
	for _, d := range social.DataCategories() {
		name := d.Name
		switch d.Table { // the names the retention policies speak of
		case social.TableRawResponses:
			name = retention.CategoryRawResponse
		case social.TableSnapshots:
			name = retention.CategoryMetrics
		}
		cols, omit := sealed(d.Table, d.Sealed)
		cats = append(cats, retention.Category{
			Name: name, Table: d.Table, Time: d.TimeColumn, ID: d.ID,
			Subject:    map[string]string{"connection_id": d.SubjectColumn},
			Sealed:     cols,
			Omit:       omit,
			LegalBasis: d.LegalBasis, Purpose: "data of a connected account, fetched for the purposes its owner authorized",
		})
	}
	cols, omit := sealed(social.TableConnections, social.ConnectionSealed())
	return append(cats,
		// Before the connections: a request reaches (and counts) the
		// index rows before their connection's erasure removes the rest.
		retention.Category{Name: "social.account_index", Table: social.TableAccounts, ID: "connection_id",
			Subject:    map[string]string{"connection_id": "connection_id"},
			LegalBasis: "consent of the account owner", Purpose: "which tenants connected a platform account (a keyed hash of its id), to route its webhooks; removed with the connection"},
		retention.Category{Name: retention.CategoryConnection, Table: social.TableConnections, Time: "created_at",
			Subject:     map[string]string{"connection_id": "id", "account_id": "account_id"},
			Omit:        append([]string{"access_token", "refresh_token"}, omit...),
			Sealed:      cols,
			BeforeErase: eraseDerived,
			LegalBasis:  "consent of the account owner", Purpose: "connected platform accounts (profile sealed) and their sealed tokens"},
		retention.Category{Name: CategoryOAuthState, Table: social.TableStates, Time: "expires_at",
			Omit:       []string{"verifier"},
			LegalBasis: "contract", Purpose: "single-use OAuth states of connections in progress (ten minutes)"},
		retention.Category{Name: "social.revocation", Table: social.TableRevocations, Time: "created_at",
			Subject:    map[string]string{"connection_id": "connection_id"},
			Omit:       []string{"access_token"},
			LegalBasis: "consent withdrawn", Purpose: "platform revocations still to be retried after a disconnect"},
		retention.Category{Name: "social.unsealed", Table: social.TableUnsealed, ID: "record",
			LegalBasis: "security of processing (GDPR art. 32)", Purpose: "platform data of an older database waiting to be sealed (SDK.SealPlatformData empties it)"},
	)
}

// eraseDerived erases what was fetched through connections that are being
// erased, in the same transaction: media, metric snapshots, raw responses,
// their rows in the account index and, for Meta connections, the Messenger
// and Instagram threads of their Pages and accounts with their messages.
// When a connection goes after its deauthorization period, all of it goes
// with it, whatever those categories' own periods say.
func eraseDerived(ctx context.Context, tx bun.Tx, ids []string) error {
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return err
	}
	var accounts []string
	if err := tx.NewSelect().TableExpr(social.TableConnections).Column("account_id").
		Where("tenant_id = ?", tid).Where("id IN (?)", bun.In(ids)).Where("platform = ?", meta.Platform).
		Scan(ctx, &accounts); err != nil {
		return fmt.Errorf("socialcrm: erase data of erased connections: %w", err)
	}
	if len(accounts) > 0 {
		threads := tx.NewSelect().TableExpr(crm.TableConversations).Column("id").
			Where("tenant_id = ?", tid).Where("account_id IN (?)", bun.In(accounts)).
			Where("channel IN (?)", bun.In([]crm.Channel{crm.ChannelMessenger, crm.ChannelInstagram}))
		if _, err := tx.NewDelete().TableExpr(crm.TableMessages).
			Where("tenant_id = ?", tid).Where("conversation_id IN (?)", threads).Exec(ctx); err != nil {
			return fmt.Errorf("socialcrm: erase threads of erased connections: %w", err)
		}
		if _, err := tx.NewDelete().TableExpr(crm.TableConversations).
			Where("tenant_id = ?", tid).Where("account_id IN (?)", bun.In(accounts)).
			Where("channel IN (?)", bun.In([]crm.Channel{crm.ChannelMessenger, crm.ChannelInstagram})).Exec(ctx); err != nil {
			return fmt.Errorf("socialcrm: erase threads of erased connections: %w", err)
		}
	}
	for _, table := range []string{social.TableMedia, social.TableSnapshots, social.TableRawResponses, social.TableAccounts} {
		if _, err := tx.NewDelete().TableExpr(table).
			Where("tenant_id = ?", tid).Where("connection_id IN (?)", bun.In(ids)).Exec(ctx); err != nil {
			return fmt.Errorf("socialcrm: erase data of erased connections: %w", err)
		}
	}
	return nil
}

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
	for _, d := range social.DataCategories() {
		id := "id"
		if d.Table == social.TableMedia {
			// Media rows are keyed by the platform's id; a batch that
			// names one erases that item for every connection of the
			// tenant that fetched it, which errs towards erasure.
			id = "external_id"
		}
		name := d.Name
		switch d.Table { // the names the retention policies speak of
		case social.TableRawResponses:
			name = retention.CategoryRawResponse
		case social.TableSnapshots:
			name = retention.CategoryMetrics
		}
		cats = append(cats, retention.Category{
			Name: name, Table: d.Table, Time: d.TimeColumn, ID: id,
			Subject:    map[string]string{"connection_id": d.SubjectColumn},
			LegalBasis: d.LegalBasis, Purpose: "data of a connected account, fetched for the purposes its owner authorized",
		})
	}
	return append(cats,
		retention.Category{Name: retention.CategoryConnection, Table: social.TableConnections, Time: "created_at",
			Subject:     map[string]string{"connection_id": "id", "account_id": "account_id"},
			Omit:        []string{"access_token", "refresh_token"},
			BeforeErase: eraseDerived,
			LegalBasis:  "consent of the account owner", Purpose: "connected platform accounts and their sealed tokens"},
		retention.Category{Name: "social.oauth_state", Table: social.TableStates, Time: "created_at",
			Omit:       []string{"verifier"},
			LegalBasis: "contract", Purpose: "single-use OAuth states of connections in progress (ten minutes)"},
		retention.Category{Name: "social.revocation", Table: social.TableRevocations, Time: "created_at",
			Subject:    map[string]string{"connection_id": "connection_id"},
			Omit:       []string{"access_token"},
			LegalBasis: "consent withdrawn", Purpose: "platform revocations still to be retried after a disconnect"},
		retention.Category{Name: "social.account_index", Table: social.TableAccounts, ID: "connection_id",
			Subject:    map[string]string{"connection_id": "connection_id", "account_id": "account_id"},
			LegalBasis: "consent of the account owner", Purpose: "which tenants connected a platform account, to route its webhooks"},
		retention.Category{Name: "vault.keys", Table: vault.TableKeys, ID: "tenant_id", Time: "created_at",
			Omit:       []string{"data_keyset", "index_keyset"},
			LegalBasis: "security of processing (GDPR art. 32)", Purpose: "the tenant's wrapped data keys; destroying them shreds its sealed data"},
		retention.Category{Name: "vault.tenants", Table: vault.TableKeyTenants, ID: "tenant_id", Time: "created_at",
			LegalBasis: "security of processing (GDPR art. 32)", Purpose: "which tenants have keys, for key-encryption-key rotation"},
	)
}

// eraseDerived erases what was fetched through connections that are being
// erased (media, metric snapshots, raw responses), in the same transaction:
// when a connection goes after its deauthorization period, its derived data
// goes with it, whatever those categories' own periods say (P6).
func eraseDerived(ctx context.Context, tx bun.Tx, ids []string) error {
	tid, err := tenancy.TenantID(ctx)
	if err != nil {
		return err
	}
	for _, table := range []string{social.TableMedia, social.TableSnapshots, social.TableRawResponses} {
		if _, err := tx.NewDelete().TableExpr(table).
			Where("tenant_id = ?", tid).Where("connection_id IN (?)", bun.In(ids)).Exec(ctx); err != nil {
			return fmt.Errorf("socialcrm: erase data of erased connections: %w", err)
		}
	}
	return nil
}

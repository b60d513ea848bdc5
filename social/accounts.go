package social

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"
)

// AccountTenant is one tenant's connection of a platform account, as the
// account index records it.
type AccountTenant struct {
	TenantID     string
	ConnectionID string
	// Live reports that the index knows the connection is not revoked:
	// the index records it when the connection is made or made again, and
	// clears it in the transaction that revokes the connection. It is
	// false for a revoked connection and for index rows written before the
	// index recorded it (social_account_index_live): check the
	// connection's status then.
	Live bool
}

// AccountTenants lists the tenants that connected the platform account,
// from the account index, so that a webhook or callback naming only the
// account (a Page id, an app-scoped user id) reaches each of them. It
// needs no tenant in ctx. The index holds a keyed hash of the account id,
// never the id. The connections may since have been revoked: act on one
// whose Live is set, or check its status in the tenant first. Within a Deliver, the
// accounts of the delivery are answered from the look-up Deliver made.
func (s *Store) AccountTenants(ctx context.Context, platform, accountID string) ([]AccountTenant, error) {
	if k, ok := ctx.Value(knownAccountsKey{}).(*knownAccounts); ok && k.platform == platform {
		if ts, ok := k.tenants[accountID]; ok {
			return slices.Clone(ts), nil
		}
	}
	idx, err := s.accountIndex(ctx, platform, accountID)
	if err != nil {
		return nil, err
	}
	var rows []account
	// Only rows under the blind index: a tenant's statements may write its
	// own rows of the index, and a row naming an account's id in clear (as
	// older versions wrote them, until SealAccountIndex, which Open runs,
	// hashes them) routed the account's webhooks — a Page's id is public —
	// to a tenant that never connected it (TestTenantCannotClaimAnAccount).
	if err := s.db.NewSelect().Model(&rows).Where("platform = ?", platform).Where("account_id = ?", idx).
		Scan(ctx); err != nil {
		return nil, fmt.Errorf("social: account tenants: %w", err)
	}
	return accountTenants(rows, idx), nil
}

// accountTenants returns the tenants of the account index rows of the
// account whose blind index is idx, one per tenant, in tenant order.
func accountTenants(rows []account, idx string) []AccountTenant {
	var mine []account
	for _, a := range rows {
		if a.AccountID == idx {
			mine = append(mine, a)
		}
	}
	slices.SortFunc(mine, func(a, b account) int { return strings.Compare(a.TenantID, b.TenantID) })
	out := make([]AccountTenant, 0, len(mine))
	for _, a := range mine {
		if len(out) > 0 && out[len(out)-1].TenantID == a.TenantID {
			continue
		}
		out = append(out, AccountTenant{TenantID: a.TenantID, ConnectionID: a.ConnectionID, Live: a.Live.Valid && a.Live.Bool})
	}
	return out
}

// Routed returns a condition, for a statement that writes what a
// webhook brought to one tenant (crm.Batch.Require), that the account's
// routes are still those a caller looked up before and kept: that the
// account index still records tenantID's connection connectionID of the
// account as live, and that the account still has as many tenants whose
// connection is live or not known to be revoked as routes has. A caller
// that keeps an account's routes between deliveries (inbox.Inbox does,
// to route a delivery without a statement of its own) sends the
// condition with the write: it holds in the write's own snapshot, so a
// revocation committed before the write stores nothing, and a tenant
// that connected the account since shows as a different count. When it
// does not hold, look the routes up again (AccountTenants). Keep only
// routes whose Live is set: one that is not cannot be checked so.
func (s *Store) Routed(ctx context.Context, platform, accountID string, routes []AccountTenant, tenantID string) (schema.QueryAppender, error) {
	conn := ""
	for _, r := range routes {
		if !r.Live {
			return nil, fmt.Errorf("social: routed: the route of tenant %s is not known live", r.TenantID)
		}
		if r.TenantID == tenantID {
			conn = r.ConnectionID
		}
	}
	if conn == "" {
		return nil, fmt.Errorf("social: routed: no route to tenant %s", tenantID)
	}
	idx, err := s.accountIndex(ctx, platform, accountID)
	if err != nil {
		return nil, err
	}
	// Only rows under the blind index count (see AccountTenants). The
	// statement reads only tenantID's rows of the routes view, so that it
	// runs under that tenant's principal.
	return bun.SafeQuery(`(SELECT COALESCE(MAX(CASE WHEN sar.connection_id = ? AND sar.live THEN 1 ELSE 0 END), 0) = 1
		AND COALESCE(MAX(sar.routes), 0) = ?
		FROM socialcrm_social_account_routes AS sar WHERE sar.tenant_id = ? AND sar.platform = ? AND sar.account_id = ?)`,
		conn, len(routes), tenantID, platform, idx), nil
}

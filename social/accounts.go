package social

import (
	"context"
	"fmt"
)

// AccountTenant is one tenant's connection of a platform account, as the
// account index records it.
type AccountTenant struct {
	TenantID     string
	ConnectionID string
}

// AccountTenants lists the tenants that connected the platform account,
// from the account index, so that a webhook or callback naming only the
// account (a Page id, an app-scoped user id) reaches each of them. It
// needs no tenant in ctx. The index holds a keyed hash of the account id,
// never the id. The connections may since have been revoked: check their
// status in the tenant before acting on them.
func (s *Store) AccountTenants(ctx context.Context, platform, accountID string) ([]AccountTenant, error) {
	idx, err := s.accountIndex(ctx, platform, accountID)
	if err != nil {
		return nil, err
	}
	var rows []account
	// Rows SealAccountIndex has not reached yet still name the account.
	if err := s.db.NewSelect().Model(&rows).Where("platform = ?", platform).Where("account_id IN (?, ?)", idx, accountID).
		Order("tenant_id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("social: account tenants: %w", err)
	}
	out := make([]AccountTenant, 0, len(rows))
	for _, a := range rows {
		if len(out) > 0 && out[len(out)-1].TenantID == a.TenantID {
			continue
		}
		out = append(out, AccountTenant{TenantID: a.TenantID, ConnectionID: a.ConnectionID})
	}
	return out, nil
}

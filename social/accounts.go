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
// needs no tenant in ctx. The connections may since have been revoked:
// check their status in the tenant before acting on them.
func (s *Store) AccountTenants(ctx context.Context, platform, accountID string) ([]AccountTenant, error) {
	var rows []account
	if err := s.db.NewSelect().Model(&rows).Where("platform = ?", platform).Where("account_id = ?", accountID).
		Order("tenant_id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("social: account tenants: %w", err)
	}
	out := make([]AccountTenant, len(rows))
	for i, a := range rows {
		out[i] = AccountTenant{TenantID: a.TenantID, ConnectionID: a.ConnectionID}
	}
	return out, nil
}

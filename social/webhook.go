package social

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dberr"
	"github.com/socialcrm/socialcrm/tenancy"
)

// account maps a platform account to a tenant's connection.
type account struct {
	bun.BaseModel `bun:"table:socialcrm_social_accounts,alias:sac"`

	Platform     string `bun:"platform,pk"`
	AccountID    string `bun:"account_id,pk"`
	TenantID     string `bun:"tenant_id,pk"`
	ConnectionID string `bun:"connection_id,notnull"`
}

// delivery is a webhook delivery already processed.
type delivery struct {
	bun.BaseModel `bun:"table:socialcrm_social_webhook_deliveries,alias:swd"`

	Platform   string    `bun:"platform,pk"`
	Key        string    `bun:"key,pk"`
	ReceivedAt time.Time `bun:"received_at,notnull"`
}

func mustTenant(ctx context.Context) string {
	tid, _ := tenancy.TenantID(ctx)
	return tid
}

// FirstDelivery records a webhook delivery of platform identified by key
// and reports whether it is the first: platforms deliver at least once, so
// a handler processes a delivery only when FirstDelivery says so. Keys are
// kept until PruneDeliveries removes them.
func (s *Store) FirstDelivery(ctx context.Context, platform, key string) (bool, error) {
	_, err := s.db.NewInsert().Model(&delivery{Platform: platform, Key: key, ReceivedAt: s.clock()}).Exec(ctx)
	if dberr.IsUniqueViolation(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("social: record delivery: %w", err)
	}
	return true, nil
}

// ForgetDelivery removes a delivery's key, so that a redelivery is
// processed again (for a delivery whose processing failed).
func (s *Store) ForgetDelivery(ctx context.Context, platform, key string) error {
	_, err := s.db.NewDelete().Model((*delivery)(nil)).Where("platform = ?", platform).Where("key = ?", key).Exec(ctx)
	return err
}

// PruneDeliveries forgets deliveries received before the store's time
// minus age (TikTok retries for up to 72 hours; keep at least that).
func (s *Store) PruneDeliveries(ctx context.Context, age time.Duration) (int64, error) {
	res, err := s.db.NewDelete().Model((*delivery)(nil)).Where("received_at < ?", s.clock().Add(-age)).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("social: prune deliveries: %w", err)
	}
	return res.RowsAffected()
}

// AccountRemoved handles the platform's notice that the user removed the
// app (TikTok's authorization.removed, Meta's Deauthorize Callback): in
// every tenant that connected the account, the connection and every
// connection derived from it (a Facebook user's Pages and Instagram
// accounts) have their sealed tokens deleted, are marked revoked with
// reason, audited as "connection.deauthorized" by the system principal
// "social-webhook", and handed to the disconnect hook. The platform has
// revoked the tokens already, so nothing is sent to it. It returns how
// many connections were revoked.
func (s *Store) AccountRemoved(ctx context.Context, platform, accountID, reason string) (int, error) {
	var rows []account
	if err := s.db.NewSelect().Model(&rows).Where("platform = ?", platform).Where("account_id = ?", accountID).Scan(ctx); err != nil {
		return 0, fmt.Errorf("social: account removed: %w", err)
	}
	sys := tenancy.System(ctx, "social-webhook")
	n := 0
	for _, a := range rows {
		tctx, err := tenancy.AsTenant(sys, a.TenantID)
		if err != nil {
			return n, err
		}
		derived, c, done, err := s.revokeTree(tctx, a.ConnectionID, nil, "connection.deauthorized", reason, 0)
		if err != nil {
			return n, fmt.Errorf("social: account removed: %w", err)
		}
		n += len(derived)
		if done {
			n++
		}
		if err := s.handOver(tctx, derived, c, done); err != nil {
			return n, err
		}
	}
	return n, nil
}

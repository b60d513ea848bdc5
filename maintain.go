package socialcrm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/socialcrm/socialcrm/tenancy"
)

// DeliveryRetention is how long Maintain remembers processed webhook
// deliveries: longer than Meta and TikTok retry a delivery.
const DeliveryRetention = 72 * time.Hour

// Maintenance is what one Maintain run did.
type Maintenance struct {
	// Revoked counts the queued platform revocations that succeeded.
	Revoked int
	// StatesPruned and DeliveriesPruned count the expired OAuth states and
	// the forgotten webhook deliveries.
	StatesPruned, DeliveriesPruned int64
	// Tenants counts the tenants visited.
	Tenants int
}

// Maintain runs the connections' maintenance for every platform, once:
// the queued revocations of every tenant that is not purged are retried
// through the registered providers (Config.Providers; a retry claimed by
// another process is left to it), every tenant's expired OAuth states are
// pruned, and webhook deliveries older than DeliveryRetention are
// forgotten. Each part is idempotent; a failure in one tenant does not stop
// the others and is returned, joined, at the end. Call it periodically
// (retentionriver.MaintenanceJobs runs it as a River job).
func (s *SDK) Maintain(ctx context.Context) (Maintenance, error) {
	var m Maintenance
	var errs []error
	sys := tenancy.System(ctx, "socialcrm-maintain")
	n, err := s.Social.PruneDeliveries(sys, DeliveryRetention)
	m.DeliveriesPruned = n
	if err != nil {
		errs = append(errs, err)
	}
	var tenants []tenancy.Tenant
	for _, st := range []tenancy.Status{tenancy.StatusActive, tenancy.StatusClosed} {
		ts, err := s.Tenants.Tenants(sys, tenancy.TenantFilter{Status: st})
		if err != nil {
			return m, errors.Join(append(errs, fmt.Errorf("socialcrm: maintain: %w", err))...)
		}
		tenants = append(tenants, ts...)
	}
	for _, t := range tenants {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		tctx, err := tenancy.AsTenant(sys, t.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.Tenants++
		pruned, err := s.Social.PruneStates(tctx)
		m.StatesPruned += pruned
		if err != nil {
			errs = append(errs, fmt.Errorf("socialcrm: maintain tenant %s: %w", t.ID, err))
		}
		done, err := s.Social.RetryRevocations(tctx)
		m.Revoked += done
		if err != nil {
			errs = append(errs, fmt.Errorf("socialcrm: maintain tenant %s: %w", t.ID, err))
		}
	}
	return m, errors.Join(errs...)
}

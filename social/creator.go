package social

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dberr"
	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/tenancy"
)

// connectingMember is the member a connection made under ctx belongs to:
// the acting member, "" for an API key without a member or the system.
func connectingMember(ctx context.Context) string {
	p, ok := tenancy.FromContext(ctx)
	if !ok || p.IsSystem() {
		return ""
	}
	return p.MemberID
}

// ErrAccountTaken is returned by Flow.Complete when a creator connects a
// platform account that the tenant already holds through a connection
// made by someone else (another creator, or the tenant's own people): the
// creator does not take that connection over, and nothing was written. It
// matches tenancy.ErrForbidden too.
var ErrAccountTaken = fmt.Errorf("%w: social: the account is connected by another member of the tenant", tenancy.ErrForbidden)

// takenByAnother turns the unique violation of a creator's insert of an
// account the tenant holds already (which the creator's scoped read did
// not see) into ErrAccountTaken; any other error is returned as it is.
func takenByAnother(ctx context.Context, err error) error {
	if _, confined, _ := tenancy.CreatorMember(ctx); confined && dberr.IsUniqueViolation(err) {
		return ErrAccountTaken
	}
	return err
}

// connectionMember adds the member who connected each connection, and the
// same member to what was pulled through it: existing rows get "", the
// tenant's own (no creator connected them). Media get a unique index that
// names the member, the conflict target of a sync's upsert, so that a
// creator's upsert can only ever meet its own rows.
func connectionMember(ctx context.Context, tx bun.Tx) error {
	if err := migrations.Exec(ctx, tx,
		`ALTER TABLE socialcrm_social_connections ADD COLUMN member_id TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE socialcrm_social_media ADD COLUMN member_id TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE socialcrm_social_snapshots ADD COLUMN member_id TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE socialcrm_social_raw_responses ADD COLUMN member_id TEXT NOT NULL DEFAULT ''`,
		`CREATE INDEX IF NOT EXISTS socialcrm_social_connections_member ON socialcrm_social_connections (tenant_id, member_id)`,
		`CREATE UNIQUE INDEX IF NOT EXISTS socialcrm_social_media_member ON socialcrm_social_media (tenant_id, member_id, connection_id, external_id)`,
		`CREATE INDEX IF NOT EXISTS socialcrm_social_snapshots_member ON socialcrm_social_snapshots (tenant_id, member_id, connection_id)`,
		`CREATE INDEX IF NOT EXISTS socialcrm_social_raw_responses_member ON socialcrm_social_raw_responses (tenant_id, member_id, connection_id)`,
	); err != nil {
		return err
	}
	// On PostgreSQL, a creator's transactions see only its member's rows
	// through row-level security too.
	for _, t := range []string{TableConnections, TableMedia, TableSnapshots, TableRawResponses} {
		if err := tenancy.EnableMemberSecurity(ctx, tx, t); err != nil {
			return err
		}
	}
	return nil
}

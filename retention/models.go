package retention

import (
	"context"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/tenancy"
)

// Table names of the engine's own tenant-owned tables.
const (
	TableHolds    = "socialcrm_retention_holds"
	TableRequests = "socialcrm_retention_requests"
	TableEvents   = "socialcrm_retention_events"
)

// HoldScope is what a legal hold covers.
type HoldScope string

// Hold scopes.
const (
	// HoldTenant holds all of the tenant's data.
	HoldTenant HoldScope = "tenant"
	// HoldSubject holds one data subject's rows (SubjectKind, SubjectValue):
	// every row a request by that identifier would reach, resolved as a
	// request's identifiers are (see PlaceHold).
	HoldSubject HoldScope = "subject"
	// HoldRecord holds one row (Category, RecordID), and the rows of the
	// categories declared HeldWith Category whose ID column holds RecordID.
	HoldRecord HoldScope = "record"
)

// Hold is a legal hold: while it is active (ReleasedAt nil) the rows it
// covers survive sweeps, erasure and purge, and receipts count them as held.
type Hold struct {
	bun.BaseModel `bun:"table:socialcrm_retention_holds,alias:h"`
	tenancy.Owned

	ID           string    `bun:"id,pk" json:"id"`
	Scope        HoldScope `bun:"scope,notnull" json:"scope"`
	Category     string    `bun:"category,notnull" json:"category,omitempty"`
	RecordID     string    `bun:"record_id,notnull" json:"record_id,omitempty"`
	SubjectKind  string    `bun:"subject_kind,notnull" json:"subject_kind,omitempty"`
	SubjectValue string    `bun:"subject_value,notnull" json:"subject_value,omitempty"`
	// SubjectSealed and SubjectHash are SubjectValue as stored under
	// WithIdentifierProtection (SubjectValue then stored empty): sealed,
	// and the tenant's keyed hash of it.
	SubjectSealed []byte `bun:"subject_sealed" json:"-"`
	SubjectHash   string `bun:"subject_hash,notnull" json:"-"`
	// Reason is stored sealed in ReasonSealed (bound to "hold-reason:"
	// and the hold's id, stored empty) under WithIdentifierProtection:
	// staff write free text, which may name people.
	Reason       string     `bun:"reason,notnull" json:"reason"`
	ReasonSealed []byte     `bun:"reason_sealed" json:"-"`
	CreatedAt    time.Time  `bun:"created_at,notnull" json:"created_at"`
	ReleasedAt   *time.Time `bun:"released_at" json:"released_at,omitempty"`
}

// event is a trigger recorded with RecordEvent. Under
// WithIdentifierProtection its SubjectValue is stored empty, the
// identifier sealed (bound to "event:" and the event's id) in
// SubjectSealed beside the tenant's keyed hash of it (SubjectHash), by
// which a data-subject request finds it (events.go).
type event struct {
	bun.BaseModel `bun:"table:socialcrm_retention_events,alias:ev"`
	tenancy.Owned

	ID            string    `bun:"id,pk"`
	Name          string    `bun:"name,notnull"`
	SubjectKind   string    `bun:"subject_kind,notnull"`
	SubjectValue  string    `bun:"subject_value,notnull"`
	SubjectSealed []byte    `bun:"subject_sealed"`
	SubjectHash   string    `bun:"subject_hash,notnull"`
	At            time.Time `bun:"at,notnull"`
}

// Models returns the engine's tenant-owned models, for tenancy.InstallGuard.
func Models() []any {
	return []any{(*Hold)(nil), (*Request)(nil), (*event)(nil), (*pending)(nil)}
}

// Migrations returns the schema migrations of the engine's tables.
func Migrations() *migrate.Migrations {
	ms := migrate.NewMigrations()
	migrations.Add(ms, "20261123000300", "retention_init", func(ctx context.Context, tx bun.Tx) error {
		if err := migrations.Exec(ctx, tx,
			`CREATE TABLE IF NOT EXISTS socialcrm_retention_holds (
				tenant_id TEXT NOT NULL,
				id TEXT NOT NULL,
				scope TEXT NOT NULL,
				category TEXT NOT NULL,
				record_id TEXT NOT NULL,
				subject_kind TEXT NOT NULL,
				subject_value TEXT NOT NULL,
				reason TEXT NOT NULL,
				created_at TIMESTAMP NOT NULL,
				released_at TIMESTAMP,
				PRIMARY KEY (tenant_id, id)
			)`,
			`CREATE INDEX IF NOT EXISTS socialcrm_retention_holds_active_idx ON socialcrm_retention_holds (tenant_id, scope, released_at)`,
			`CREATE TABLE IF NOT EXISTS socialcrm_retention_requests (
				tenant_id TEXT NOT NULL,
				id TEXT NOT NULL,
				kind TEXT NOT NULL,
				subject TEXT NOT NULL,
				received_at TIMESTAMP NOT NULL,
				due_at TIMESTAMP NOT NULL,
				extension_reason TEXT NOT NULL,
				verification TEXT NOT NULL,
				status TEXT NOT NULL,
				completed_at TIMESTAMP,
				PRIMARY KEY (tenant_id, id)
			)`,
			`CREATE INDEX IF NOT EXISTS socialcrm_retention_requests_due_idx ON socialcrm_retention_requests (tenant_id, status, due_at)`,
			`CREATE TABLE IF NOT EXISTS socialcrm_retention_events (
				tenant_id TEXT NOT NULL,
				id TEXT NOT NULL,
				name TEXT NOT NULL,
				subject_kind TEXT NOT NULL,
				subject_value TEXT NOT NULL,
				at TIMESTAMP NOT NULL,
				PRIMARY KEY (tenant_id, id)
			)`,
			`CREATE INDEX IF NOT EXISTS socialcrm_retention_events_name_idx ON socialcrm_retention_events (tenant_id, name, at)`,
		); err != nil {
			return err
		}
		for _, t := range []string{TableHolds, TableRequests, TableEvents} {
			if err := tenancy.EnableRowSecurity(ctx, tx, t); err != nil {
				return err
			}
		}
		return nil
	})
	migrations.Add(ms, "20261206023100", "retention_request_outcomes", func(ctx context.Context, tx bun.Tx) error {
		if err := migrations.Exec(ctx, tx,
			`ALTER TABLE socialcrm_retention_requests ADD COLUMN outcome TEXT NOT NULL DEFAULT ''`,
			`ALTER TABLE socialcrm_retention_requests ADD COLUMN erased TEXT NOT NULL DEFAULT '{}'`,
			`ALTER TABLE socialcrm_retention_requests ADD COLUMN subject_sealed BLOB`,
			`ALTER TABLE socialcrm_retention_requests ADD COLUMN subject_hashes TEXT NOT NULL DEFAULT '{}'`,
			`CREATE TABLE IF NOT EXISTS socialcrm_retention_pending (
				tenant_id TEXT NOT NULL,
				id TEXT NOT NULL,
				category TEXT NOT NULL,
				record_id TEXT NOT NULL,
				at TIMESTAMP NOT NULL,
				PRIMARY KEY (tenant_id, id)
			)`,
			`CREATE INDEX IF NOT EXISTS socialcrm_retention_pending_at_idx ON socialcrm_retention_pending (tenant_id, at)`); err != nil {
			return err
		}
		return tenancy.EnableRowSecurity(ctx, tx, TablePending)
	})
	addHoldMigrations(ms)
	addEventMigrations(ms)
	return ms
}

// OwnCategories declares the engine's own tables: data-subject requests
// (evidence of how each was answered), legal holds (a tenant purge erases
// only released ones), the after-erase work still due (ids only, removed
// once done) and recorded events, which a data-subject request finds by
// the identifier they were recorded for (Engine.Register binds the
// category to the engine: see RecordEvent).
// Register them so that Uncovered reports nothing for them.
func OwnCategories() []Category {
	return []Category{
		{Name: CategoryRequest, Table: TableRequests, Time: "received_at",
			LegalBasis: "legal obligation (GDPR art. 5(2), accountability)", Purpose: "evidence of answered data-subject requests"},
		{Name: CategoryHold, Table: TableHolds, Time: "created_at",
			LegalBasis: "legal obligation", Purpose: "legal holds that suspend erasure"},
		{Name: CategoryPending, Table: TablePending, Time: "at",
			LegalBasis: "legal obligation (erasure)", Purpose: "ids of erased rows whose side effects (deleting stored files) are still to run; removed once they ran"},
		{Name: CategoryEvent, Table: TableEvents, Time: "at",
			LegalBasis: "legitimate interest", Purpose: "triggers of retention periods (disconnections, deauthorizations)"},
	}
}

// SubjectMember is the identifier kind of a member of a tenant (a member's
// id) in the categories TenancyCategories declares.
const SubjectMember = "member_id"

// TenancyResolvers returns the resolvers of tenancy's data subjects, for
// Engine.RegisterResolver: an e-mail address, in any case and with the
// spaces a person types around it, leads to the member accounts signed in
// with it (member_id), as tenancy stores them (lower case).
func TenancyResolvers() map[string]Resolver {
	return map[string]Resolver{"email": resolveMember}
}

func resolveMember(ctx context.Context, db bun.IDB, email string) (map[string][]string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if addr, err := mail.ParseAddress(email); err == nil {
		email = strings.ToLower(addr.Address)
	}
	if email == "" {
		return nil, nil
	}
	var ids []string
	err := tenancy.RunInTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
		tid, err := tenancy.TenantID(ctx)
		if err != nil {
			return err
		}
		return tx.NewSelect().TableExpr(tenancy.TableMembers).Column("id").
			Where("tenant_id = ?", tid).Where("email = ?", email).Scan(ctx, &ids)
	})
	if err != nil {
		return nil, fmt.Errorf("retention: resolve member: %w", err)
	}
	return map[string][]string{SubjectMember: ids}, nil
}

// SpareLastOwner is the reason in an erasure receipt's Rule (after
// "spared: ") when the member account it found is the tenant's last owner:
// the account is kept, whole, and counted as Kept, until the tenant names
// another owner and the person asks again.
const SpareLastOwner = "the tenant's last owner"

// TenancyCategories declares tenancy's tables (tenancy sits below the
// engine and cannot name a Category itself): members and API keys
// (deleted with the member), and the audit log with its checkpoints, which
// is truncated through tenancy.AuditLog.Truncate (never deleted row by row:
// it is a hash chain).
func TenancyCategories(audit *tenancy.AuditLog) []Category {
	return []Category{
		{Name: "tenancy.member", Table: tenancy.TableMembers, Time: "created_at",
			Subject: map[string]string{"email": "email", SubjectMember: "id"},
			// name_sealed: the name sealed by the SDK's vault, which only
			// the SDK's own category (socialcrm.Open) can open.
			Omit: []string{"password_hash", "name_sealed"},
			// An erasure never leaves the tenant without an owner, as
			// tenancy.Store.RemoveMember refuses to (ErrLastOwner).
			Spare: Spare{Where: "r.role = 'owner' AND NOT EXISTS (SELECT 1 FROM " + tenancy.TableMembers +
				" o WHERE o.tenant_id = ?tenant AND o.role = 'owner' AND o.id <> r.id)",
				Reason: SpareLastOwner},
			LegalBasis: "contract", Purpose: "accounts of the tenant's staff, clients and creators"},
		{Name: "tenancy.api_key", Table: tenancy.TableAPIKeys, Time: "created_at",
			Subject:    map[string]string{SubjectMember: "member_id"},
			Omit:       []string{"hash"},
			LegalBasis: "contract", Purpose: "API access for the tenant's integrations"},
		{Name: CategoryAudit, Table: tenancy.TableAuditLog, ID: "seq", Time: "at",
			LegalBasis: "legal obligation and legitimate interest: security", Purpose: "tamper-evident log of sensitive actions; " +
				"a data-subject erasure does not reach its entries, which the hash chain keeps for the log's period: entries written now hold " +
				"no user agent and no address, only the request's network (/24, /48) as a keyed hash under the tenant's audit key (a pseudonym: the key's holder can test networks); older entries keep what they held until truncated",
			Clear:    "sequence, times, actor and target ids, actions, metadata; the network only as a keyed hash",
			Truncate: audit.Truncate},
		{Name: CategoryAuditCheckpoint, Table: tenancy.TableAuditCheckpoints, ID: "seq", Time: "at",
			LegalBasis: "legal obligation and legitimate interest: security", Purpose: "verification anchor of the truncated audit log",
			Truncate: func(context.Context, time.Time) (int64, error) { return 0, nil }},
	}
}

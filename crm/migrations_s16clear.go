package crm

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/migrations"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

// TableContactMerges records, for each contact Merge folded into another,
// the merged contact's id and the id of the contact kept (ids only), so
// that a data-subject request naming the merged id still reaches the
// person's data.
const TableContactMerges = TablePrefix + "contact_merges"

// contactMerge is one row of TableContactMerges.
type contactMerge struct {
	bun.BaseModel `bun:"table:socialcrm_crm_contact_merges,alias:cm"`
	tenancy.Owned

	MergedID string    `bun:"merged_id,pk"`
	KeptID   string    `bun:"kept_id,notnull"`
	MergedAt time.Time `bun:"merged_at,notnull"`
}

// clearMigrations are the migrations that keep data out of clear: the
// attachments' unkeyed content digest goes (anyone holding a copy of a
// file could confirm it against a backup; nothing read it), and merged
// contacts' ids are recorded.
func clearMigrations() []migration {
	return []migration{
		{"20261213080100", "crm_attachments_drop_sha256", func(ctx context.Context, tx bun.Tx) error {
			ok, err := hasColumn(ctx, tx, TableAttachments, "sha256")
			if err != nil || !ok {
				return err
			}
			return migrations.Exec(ctx, tx, `ALTER TABLE `+TableAttachments+` DROP COLUMN sha256`)
		}},
		{"20261213080200", "crm_contact_merges", func(ctx context.Context, tx bun.Tx) error {
			return ownedTables(ctx, tx, []string{TableContactMerges},
				`CREATE TABLE IF NOT EXISTS `+TableContactMerges+` (
					tenant_id TEXT NOT NULL,
					merged_id TEXT NOT NULL,
					kept_id TEXT NOT NULL,
					merged_at TIMESTAMP NOT NULL,
					PRIMARY KEY (tenant_id, merged_id)
				)`,
				`CREATE INDEX IF NOT EXISTS `+TableContactMerges+`_kept_idx ON `+TableContactMerges+` (tenant_id, kept_id)`)
		}},
	}
}

// contactMergeCategory declares TableContactMerges: a request by either
// id finds the row, and erasing the kept contact (or purging the tenant)
// erases it.
func contactMergeCategory() retention.Category {
	return retention.Category{Name: "crm.contact_merge", Table: TableContactMerges, ID: "merged_id", Time: "merged_at",
		Subject:    map[string]string{SubjectContact: "r.kept_id = ?value OR r.merged_id = ?value"},
		LegalBasis: "contract or legitimate interest (customer relationship)",
		Purpose:    "ids of contacts merged into another (ids only), so that a request by a merged contact's id reaches the contact kept"}
}

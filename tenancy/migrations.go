package tenancy

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"

	"github.com/socialcrm/socialcrm/internal/migrations"
)

// Table names. Every socialcrm table starts with socialcrm_ so that it never
// collides with a table of the host application.
const (
	TableTenants          = "socialcrm_tenants"
	TableMembers          = "socialcrm_members"
	TableAPIKeys          = "socialcrm_api_keys"
	TableAuditLog         = "socialcrm_audit_log"
	TableAuditCheckpoints = "socialcrm_audit_checkpoints"
)

// Migrations returns the versioned schema migrations of the tenancy tables.
// socialcrm.Migrate runs them with every other package's.
func Migrations() *migrate.Migrations {
	ms := migrate.NewMigrations()
	migrations.Add(ms, "20261123000100", "tenancy_init", func(ctx context.Context, tx bun.Tx) error {
		if err := migrations.Exec(ctx, tx,
			`CREATE TABLE IF NOT EXISTS socialcrm_tenants (
				id TEXT PRIMARY KEY,
				name TEXT NOT NULL,
				status TEXT NOT NULL,
				created_at TIMESTAMP NOT NULL,
				closed_at TIMESTAMP,
				purge_after TIMESTAMP,
				purged_at TIMESTAMP
			)`,
			`CREATE INDEX IF NOT EXISTS socialcrm_tenants_status_idx ON socialcrm_tenants (status, purge_after)`,
			`CREATE TABLE IF NOT EXISTS socialcrm_members (
				tenant_id TEXT NOT NULL,
				id TEXT NOT NULL,
				email TEXT NOT NULL,
				name TEXT NOT NULL,
				role TEXT NOT NULL,
				client_id TEXT,
				password_hash TEXT,
				failed_logins INTEGER NOT NULL DEFAULT 0,
				first_failed_at TIMESTAMP,
				locked_until TIMESTAMP,
				created_at TIMESTAMP NOT NULL,
				PRIMARY KEY (tenant_id, id),
				UNIQUE (tenant_id, email)
			)`,
			`CREATE TABLE IF NOT EXISTS socialcrm_api_keys (
				tenant_id TEXT NOT NULL,
				id TEXT NOT NULL,
				name TEXT NOT NULL,
				hint TEXT NOT NULL,
				hash TEXT NOT NULL,
				role TEXT NOT NULL,
				member_id TEXT,
				created_at TIMESTAMP NOT NULL,
				last_used_at TIMESTAMP,
				revoked_at TIMESTAMP,
				PRIMARY KEY (tenant_id, id),
				UNIQUE (hash)
			)`,
			`CREATE TABLE IF NOT EXISTS socialcrm_audit_log (
				tenant_id TEXT NOT NULL,
				seq BIGINT NOT NULL,
				at TIMESTAMP NOT NULL,
				actor TEXT NOT NULL,
				action TEXT NOT NULL,
				target TEXT NOT NULL,
				ip TEXT NOT NULL,
				user_agent TEXT NOT NULL,
				metadata TEXT NOT NULL,
				prev_hash TEXT NOT NULL,
				hash TEXT NOT NULL,
				PRIMARY KEY (tenant_id, seq)
			)`,
			`CREATE INDEX IF NOT EXISTS socialcrm_audit_log_at_idx ON socialcrm_audit_log (tenant_id, at)`,
			`CREATE TABLE IF NOT EXISTS socialcrm_audit_checkpoints (
				tenant_id TEXT NOT NULL PRIMARY KEY,
				seq BIGINT NOT NULL,
				hash TEXT NOT NULL,
				at TIMESTAMP NOT NULL
			)`,
		); err != nil {
			return err
		}
		for _, t := range []string{TableMembers, TableAPIKeys, TableAuditLog, TableAuditCheckpoints} {
			if err := EnableRowSecurity(ctx, tx, t); err != nil {
				return err
			}
		}
		return nil
	})
	migrations.Add(ms, "20261123000177", "tenancy_member_name_sealed", func(ctx context.Context, tx bun.Tx) error {
		var n int
		var err error
		if tx.Dialect().Name() == dialect.PG {
			err = tx.NewRaw("SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? AND column_name = 'name_sealed'", TableMembers).Scan(ctx, &n)
		} else {
			err = tx.NewRaw("SELECT count(*) FROM pragma_table_info(?) WHERE name = 'name_sealed'", TableMembers).Scan(ctx, &n)
		}
		if err != nil || n > 0 {
			return err
		}
		return migrations.Exec(ctx, tx, "ALTER TABLE "+TableMembers+" ADD COLUMN name_sealed BLOB")
	})
	migrations.Add(ms, "20261206000100", "tenancy_audit_append_only", auditAppendOnly)
	migrations.Add(ms, "20261206100000", "tenancy_audit_checkpoints_forward", auditCheckpointsForward)
	return ms
}

// auditCheckpointsForward makes a tenant's truncation checkpoint move only
// forward: its row can be neither deleted nor moved back. Otherwise a
// writer could write a checkpoint past the head, delete the entries the
// checkpoint then covers (the append-only trigger lets them go), and
// delete the checkpoint again: an empty chain that Verify accepts.
func auditCheckpointsForward(ctx context.Context, tx bun.Tx) error {
	if tx.Dialect().Name() != dialect.PG {
		return migrations.Exec(ctx, tx,
			`CREATE TRIGGER IF NOT EXISTS socialcrm_audit_checkpoints_no_delete BEFORE DELETE ON socialcrm_audit_checkpoints
			BEGIN SELECT RAISE(ABORT, 'socialcrm_audit_checkpoints only moves forward'); END`,
			`CREATE TRIGGER IF NOT EXISTS socialcrm_audit_checkpoints_forward BEFORE UPDATE ON socialcrm_audit_checkpoints
			WHEN NEW.tenant_id <> OLD.tenant_id OR NEW.seq < OLD.seq
			BEGIN SELECT RAISE(ABORT, 'socialcrm_audit_checkpoints only moves forward'); END`,
		)
	}
	return migrations.Exec(ctx, tx,
		`CREATE OR REPLACE FUNCTION socialcrm_audit_checkpoint_forward() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF TG_OP = 'UPDATE' AND NEW.tenant_id = OLD.tenant_id AND NEW.seq >= OLD.seq THEN
				RETURN NEW;
			END IF;
			RAISE EXCEPTION 'socialcrm_audit_checkpoints only moves forward' USING ERRCODE = 'insufficient_privilege';
		END $$`,
		`DROP TRIGGER IF EXISTS socialcrm_audit_checkpoints_forward ON socialcrm_audit_checkpoints`,
		`CREATE TRIGGER socialcrm_audit_checkpoints_forward BEFORE UPDATE OR DELETE ON socialcrm_audit_checkpoints
			FOR EACH ROW EXECUTE FUNCTION socialcrm_audit_checkpoint_forward()`,
		`DROP TRIGGER IF EXISTS socialcrm_audit_checkpoints_no_truncate ON socialcrm_audit_checkpoints`,
		`CREATE TRIGGER socialcrm_audit_checkpoints_no_truncate BEFORE TRUNCATE ON socialcrm_audit_checkpoints
			FOR EACH STATEMENT EXECUTE FUNCTION socialcrm_audit_checkpoint_forward()`,
	)
}

// auditAppendOnly makes the audit log append-only in the database: every
// UPDATE, and every DELETE of an entry after its tenant's truncation
// checkpoint, aborts. On PostgreSQL the trigger also refuses TRUNCATE, and
// socialcrm_audit_truncate (SECURITY DEFINER, owned by the migrating role)
// is how AuditLog.Truncate deletes, since the application role holds no
// DELETE privilege on the table (socialcrm.Grant).
func auditAppendOnly(ctx context.Context, tx bun.Tx) error {
	if tx.Dialect().Name() != dialect.PG {
		return migrations.Exec(ctx, tx,
			`CREATE TRIGGER IF NOT EXISTS socialcrm_audit_log_no_update BEFORE UPDATE ON socialcrm_audit_log
			BEGIN SELECT RAISE(ABORT, 'socialcrm_audit_log is append-only'); END`,
			`CREATE TRIGGER IF NOT EXISTS socialcrm_audit_log_no_delete BEFORE DELETE ON socialcrm_audit_log
			WHEN NOT EXISTS (SELECT 1 FROM socialcrm_audit_checkpoints c WHERE c.tenant_id = OLD.tenant_id AND OLD.seq <= c.seq)
			BEGIN SELECT RAISE(ABORT, 'socialcrm_audit_log is append-only: entries leave it only through AuditLog.Truncate'); END`,
		)
	}
	var schema string
	if err := tx.NewRaw("SELECT quote_ident(current_schema())").Scan(ctx, &schema); err != nil {
		return fmt.Errorf("tenancy: audit migration: %w", err)
	}
	return migrations.Exec(ctx, tx,
		`CREATE OR REPLACE FUNCTION socialcrm_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM socialcrm_audit_checkpoints c
					WHERE c.tenant_id = OLD.tenant_id AND OLD.seq <= c.seq) THEN
				RETURN OLD;
			END IF;
			RAISE EXCEPTION 'socialcrm_audit_log is append-only: entries leave it only through AuditLog.Truncate'
				USING ERRCODE = 'insufficient_privilege';
		END $$`,
		`DROP TRIGGER IF EXISTS `+migrations.AppendOnlyTrigger+` ON socialcrm_audit_log`,
		`CREATE TRIGGER `+migrations.AppendOnlyTrigger+` BEFORE UPDATE OR DELETE ON socialcrm_audit_log
			FOR EACH ROW EXECUTE FUNCTION socialcrm_audit_append_only()`,
		`DROP TRIGGER IF EXISTS socialcrm_append_only_truncate ON socialcrm_audit_log`,
		`CREATE TRIGGER socialcrm_append_only_truncate BEFORE TRUNCATE ON socialcrm_audit_log
			FOR EACH STATEMENT EXECUTE FUNCTION socialcrm_audit_append_only()`,
		`CREATE OR REPLACE FUNCTION socialcrm_audit_truncate(p_tenant TEXT, p_through BIGINT) RETURNS BIGINT
		LANGUAGE plpgsql SECURITY DEFINER SET search_path = `+schema+`, pg_temp AS $$
		DECLARE n BIGINT;
		BEGIN
			DELETE FROM socialcrm_audit_log a WHERE a.tenant_id = p_tenant AND a.seq <= p_through
				AND EXISTS (SELECT 1 FROM socialcrm_audit_checkpoints c WHERE c.tenant_id = a.tenant_id AND a.seq <= c.seq);
			GET DIAGNOSTICS n = ROW_COUNT;
			RETURN n;
		END $$`,
	)
}

// Models returns a pointer to each tenant-owned model of this package, for
// InstallGuard.
func Models() []any {
	return []any{(*Member)(nil), (*APIKey)(nil), (*AuditEntry)(nil), (*auditCheckpoint)(nil)}
}

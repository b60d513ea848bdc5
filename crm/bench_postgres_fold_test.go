package crm_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

// BenchmarkPostgresGetServerSide measures, with raw pgx as the
// application role (no SDK code on the client), what the server costs
// for a tenant-scoped contact get, each sub-benchmark paired with the same
// one raw query of bench_plain_contacts (ratio:<name>):
//
//   - held: the query alone on a connection whose session holds the
//     tenant already (set_config(…, false) once) — what the SDK sends
//     while a connection keeps serving one tenant: row-level security and
//     the sealed row, without a setting;
//   - batch_local: set_config(…, true) and the query as one pgx batch
//     (one round trip, one implicit transaction: the setting ends with
//     it) — what a handle opened with socialcrm_settings=transaction
//     sends, and what a connection changing tenants sends (with false);
//   - statement_local: set_config(…, true) in the statement itself, in a
//     materialized CTE joined to the query.
//
// Each checks that the row comes back and, after it, that the
// connection's session holds no tenant where the setting was local.
func BenchmarkPostgresGetServerSide(b *testing.B) {
	w := newPGBench(b)
	ctx := context.Background()
	c, base := pgGetFixture(b, w)
	tid, _ := tenancy.TenantID(w.e.A)
	// The statement Get sends, as internal/sqldb parameterizes it.
	cols := `"ct"."id", "ct"."created_at", "ct"."updated_at", "ct"."version", "ct"."stage", "ct"."source", "ct"."company_id", "ct"."owner_id", "ct"."profile_sealed"`
	get := "SELECT " + cols + ` FROM "` + crm.TableContacts + `" AS "ct" WHERE ("ct".id = $1) AND ("ct".tenant_id = $2)`
	scan := func(r pgx.Row) {
		var id, stage, source string
		var company, owner *string
		var version int64
		var created, updated any
		var profile []byte
		if err := r.Scan(&id, &created, &updated, &version, &stage, &source, &company, &owner, &profile); err != nil {
			b.Fatal(err)
		}
		if id != c.ID || len(profile) == 0 {
			b.Fatal("wrong row")
		}
	}
	conn := func(b *testing.B) *pgx.Conn {
		pc, err := pgx.Connect(ctx, w.db.DSN())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { pc.Close(ctx) })
		return pc
	}
	noTenantLeft := func(b *testing.B, pc *pgx.Conn) {
		var v *string
		if err := pc.QueryRow(ctx, "SELECT current_setting('app.tenant_id', true)").Scan(&v); err != nil {
			b.Fatal(err)
		}
		if v != nil && *v != "" {
			b.Fatalf("the session kept tenant %q after the statement", *v)
		}
	}
	b.Run("held", func(b *testing.B) {
		pc := conn(b)
		if _, err := pc.Exec(ctx, "SELECT set_config('app.tenant_id', $1, false)", tid); err != nil {
			b.Fatal(err)
		}
		sdk := func() { scan(pc.QueryRow(ctx, get, c.ID, tid)) }
		sdk()
		base()
		b.ReportMetric(interleave(b, sdk, base), "ratio:pg_get_held_vs_pgx_query")
	})
	b.Run("batch_local", func(b *testing.B) {
		pc := conn(b)
		sdk := func() {
			var bt pgx.Batch
			bt.Queue("SELECT set_config('app.tenant_id', $1, true)", tid)
			bt.Queue(get, c.ID, tid)
			br := pc.SendBatch(ctx, &bt)
			if _, err := br.Exec(); err != nil {
				b.Fatal(err)
			}
			scan(br.QueryRow())
			if err := br.Close(); err != nil {
				b.Fatal(err)
			}
		}
		sdk()
		noTenantLeft(b, pc)
		base()
		b.ReportMetric(interleave(b, sdk, base), "ratio:pg_get_batch_local_vs_pgx_query")
		noTenantLeft(b, pc)
	})
	b.Run("statement_local", func(b *testing.B) {
		pc := conn(b)
		q := "WITH s AS MATERIALIZED (SELECT set_config('app.tenant_id', $2, true) AS t) SELECT " + cols + " FROM s, " +
			crm.TableContacts + " AS ct WHERE (ct.id = $1) AND ct.tenant_id = s.t"
		sdk := func() { scan(pc.QueryRow(ctx, q, c.ID, tid)) }
		sdk()
		noTenantLeft(b, pc)
		base()
		b.ReportMetric(interleave(b, sdk, base), "ratio:pg_get_statement_local_vs_pgx_query")
		noTenantLeft(b, pc)
	})
}

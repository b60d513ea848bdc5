package crm_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// pgListFixture fills w with BenchmarkPostgresContactList's contacts (3,000
// in each of tenants A and B, every third a customer, and their unsealed
// twins in bench_plain_contacts) and returns the filter of the page and
// the baseline: one raw pgx query of the same page of the twins.
func pgListFixture(b *testing.B, w *pgBench) (crm.ContactFilter, func()) {
	ctx := context.Background()
	var batch pgx.Batch
	for _, tctx := range []context.Context{w.e.A, w.e.B} {
		for i := range 3000 {
			c := benchContact(i)
			r := plainOf(tctx, i)
			if i%3 == 0 {
				c.Stage, r.Stage = crm.StageCustomer, string(crm.StageCustomer)
			}
			if _, err := w.e.store.Contacts().Create(tctx, c, crm.AllowDuplicate()); err != nil {
				b.Fatal(err)
			}
			batch.Queue("INSERT INTO bench_plain_contacts ("+plainColumns+") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23)",
				r.TenantID, r.ID, r.CreatedAt, r.UpdatedAt, r.Version, r.FirstName, r.LastName, r.Email, r.Phone, r.Stage, r.Source,
				r.UTMSource, r.UTMMedium, r.UTMCampaign, r.UTMTerm, r.UTMContent, r.BirthYear, r.BirthMonth, r.BirthDay, `{"lang":"en"}`, nil, nil, "[]")
		}
	}
	if err := w.raw.SendBatch(ctx, &batch).Close(); err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{"ANALYZE bench_plain_contacts", "ANALYZE socialcrm_crm_contacts"} {
		if _, err := w.db.Owner.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	tid, _ := tenancy.TenantID(w.e.A)
	q := "SELECT " + plainColumns + " FROM bench_plain_contacts WHERE tenant_id = $1 AND stage = $2 ORDER BY id LIMIT 101"
	return crm.ContactFilter{Stage: crm.StageCustomer}, func() {
		rows, err := w.raw.Query(ctx, q, tid, string(crm.StageCustomer))
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var r plainContact
			if err := scanPlain(rows, &r); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if rows.Err() != nil || n != 101 {
			b.Fatal(rows.Err(), n)
		}
	}
}

// BenchmarkPostgresListParts takes BenchmarkPostgresContactList's page
// apart, each part against the same raw pgx query of the unsealed page
// (ratio:<part>_vs_pgx_query):
//
//   - pgx_held: the SDK's statement and columns sent by raw pgx as the
//     application role on a connection holding the tenant — what the
//     server and the sealed rows add;
//   - pgx_held_open: the same, each profile opened by the vault — what
//     the decryptions add;
//   - database_sql: the SDK's statement as bun writes it, through
//     database/sql over the SDK's handle (its Guard, its literals made
//     parameters, the setting held) — what database/sql adds;
//   - sdk: Contacts.List.
func BenchmarkPostgresListParts(b *testing.B) {
	w := newPGBench(b)
	ctx := context.Background()
	f, base := pgListFixture(b, w)
	tid, _ := tenancy.TenantID(w.e.A)
	cols := `"ct"."id", "ct"."created_at", "ct"."updated_at", "ct"."version", "ct"."stage", "ct"."source", "ct"."company_id", "ct"."owner_id", "ct"."profile_sealed"`
	stmt := "SELECT " + cols + ` FROM "` + crm.TableContacts + `" AS "ct" WHERE ("ct"."stage" = $1) AND ("ct".tenant_id = $2) ORDER BY "ct"."id" ASC LIMIT 101`
	type row struct {
		id, stage, source string
		company, owner    *string
		created, updated  time.Time
		version           int64
		profile           []byte
	}
	rows := make([]row, 0, 101)
	pc, err := pgx.Connect(ctx, w.db.DSN())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pc.Close(ctx) })
	if _, err := pc.Exec(ctx, "SELECT set_config('app.tenant_id', $1, false)", tid); err != nil {
		b.Fatal(err)
	}
	pgxRead := func() {
		rows = rows[:0]
		rs, err := pc.Query(ctx, stmt, string(crm.StageCustomer), tid)
		if err != nil {
			b.Fatal(err)
		}
		for rs.Next() {
			rows = append(rows, row{})
			r := &rows[len(rows)-1]
			if err := rs.Scan(&r.id, &r.created, &r.updated, &r.version, &r.stage, &r.source, &r.company, &r.owner, &r.profile); err != nil {
				b.Fatal(err)
			}
		}
		if rs.Err() != nil || len(rows) != 101 {
			b.Fatal(rs.Err(), len(rows))
		}
	}
	open := func() {
		op := w.e.vault.Opener(w.e.A)
		for i := range rows[:100] {
			var s vault.Sealed
			if err := s.Scan(rows[i].profile); err != nil {
				b.Fatal(err)
			}
			sec, err := op.Open(s, vault.Binding{Record: rows[i].id, Field: "profile"})
			if err != nil {
				b.Fatal(err)
			}
			sec.Wipe()
		}
	}
	bunStmt := "SELECT " + cols + ` FROM "` + crm.TableContacts + `" AS "ct" WHERE ("ct"."stage" = 'customer') AND ("ct".tenant_id = '` + tid + `') ORDER BY "ct"."id" ASC LIMIT 101`
	sctx := sqldb.WithSetting(w.e.A, "app.tenant_id", tid)
	contacts := w.sdk.Contacts()
	parts := []struct {
		name string
		run  func()
	}{
		{"pgx_held", pgxRead},
		{"pgx_held_open", func() { pgxRead(); open() }},
		{"database_sql", func() {
			rows = rows[:0]
			rs, err := w.h.DB.QueryContext(sctx, bunStmt)
			if err != nil {
				b.Fatal(err)
			}
			defer rs.Close()
			for rs.Next() {
				rows = append(rows, row{})
				r := &rows[len(rows)-1]
				if err := rs.Scan(&r.id, &r.created, &r.updated, &r.version, &r.stage, &r.source, &r.company, &r.owner, &r.profile); err != nil {
					b.Fatal(err)
				}
			}
			if rs.Err() != nil || len(rows) != 101 {
				b.Fatal(rs.Err(), len(rows))
			}
		}},
		{"sdk", func() {
			if p, err := contacts.List(w.e.A, f, crm.ListOptions{Limit: 100}); err != nil || len(p.Items) != 100 {
				b.Fatal(err)
			}
		}},
	}
	for _, p := range parts {
		b.Run(p.name, func(b *testing.B) {
			p.run()
			base()
			b.ReportMetric(interleave(b, p.run, base), "ratio:"+p.name+"_vs_pgx_query")
		})
	}
}

package crm_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// plainContact is a contact as a hand-written application would store it
// without the SDK: the same columns, every value in clear, in a table of
// its own (benchPlainTable) with the contacts table's keys and indexes.
type plainContact struct {
	bun.BaseModel `bun:"table:bench_plain_contacts,alias:ct"`
	TenantID      string            `bun:"tenant_id"`
	ID            string            `bun:"id,pk"`
	CreatedAt     time.Time         `bun:"created_at"`
	UpdatedAt     time.Time         `bun:"updated_at"`
	Version       int64             `bun:"version"`
	FirstName     string            `bun:"first_name"`
	LastName      string            `bun:"last_name"`
	Email         string            `bun:"email,nullzero"`
	Phone         string            `bun:"phone,nullzero"`
	Stage         string            `bun:"stage"`
	Source        string            `bun:"source"`
	UTMSource     string            `bun:"utm_source"`
	UTMMedium     string            `bun:"utm_medium"`
	UTMCampaign   string            `bun:"utm_campaign"`
	UTMTerm       string            `bun:"utm_term"`
	UTMContent    string            `bun:"utm_content"`
	BirthYear     int               `bun:"birth_year"`
	BirthMonth    int               `bun:"birth_month"`
	BirthDay      int               `bun:"birth_day"`
	Preferences   map[string]string `bun:"preferences,type:text"`
	CompanyID     string            `bun:"company_id,nullzero"`
	OwnerID       string            `bun:"owner_id,nullzero"`
	Tags          []string          `bun:"tags,type:text"`
}

// benchPlainTable creates the baseline's table on db.
func benchPlainTable(b testing.TB, db bun.IDB) {
	for _, q := range []string{`CREATE TABLE IF NOT EXISTS bench_plain_contacts (
			tenant_id TEXT NOT NULL, id TEXT NOT NULL, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL, version BIGINT NOT NULL,
			first_name TEXT NOT NULL, last_name TEXT NOT NULL, email TEXT, phone TEXT, stage TEXT NOT NULL, source TEXT NOT NULL,
			utm_source TEXT NOT NULL, utm_medium TEXT NOT NULL, utm_campaign TEXT NOT NULL, utm_term TEXT NOT NULL, utm_content TEXT NOT NULL,
			birth_year INTEGER NOT NULL, birth_month INTEGER NOT NULL, birth_day INTEGER NOT NULL, preferences TEXT NOT NULL,
			company_id TEXT, owner_id TEXT, tags TEXT NOT NULL, PRIMARY KEY (tenant_id, id))`,
		`CREATE INDEX IF NOT EXISTS bench_plain_contacts_stage ON bench_plain_contacts (tenant_id, stage, id)`,
		`CREATE INDEX IF NOT EXISTS bench_plain_contacts_email ON bench_plain_contacts (tenant_id, email, id)`,
		`CREATE INDEX IF NOT EXISTS bench_plain_contacts_phone ON bench_plain_contacts (tenant_id, phone, id)`,
		`CREATE INDEX IF NOT EXISTS bench_plain_contacts_name ON bench_plain_contacts (tenant_id, last_name)`,
	} {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			b.Fatal(err)
		}
	}
}

// freshStore returns a Store on a new handle on e's database, with the
// Guard installed as the SDK installs it: the same fresh connection pool
// the baselines get from Reopen, so that neither side inherits the idle
// connections (and their stale SQLite page caches) that setting the
// database up left behind.
func freshStore(b testing.TB, e *env) *crm.Store {
	h := e.db.Reopen(b)
	models := append(tenancy.Models(), vault.Models()...)
	if _, err := tenancy.InstallGuard(h, append(models, crm.Models()...)...); err != nil {
		b.Fatal(err)
	}
	s, err := crm.New(h, e.vault)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchContact(i int) crm.ContactInput {
	return crm.ContactInput{FirstName: "Ada", LastName: fmt.Sprintf("Lovelace %d", i), Email: fmt.Sprintf("ada%d@example.com", i),
		Phone: fmt.Sprintf("+1415%07d", i), Source: "web", UTM: crm.UTM{Source: "ig", Campaign: "spring"},
		Birthday: crm.Birthday{Month: 12, Day: 10}, Preferences: map[string]string{"lang": "en"}}
}

// plainOf is the unsealed row of benchContact(i) in the tenant of ctx.
func plainOf(ctx context.Context, i int) plainContact {
	tid, _ := tenancy.TenantID(ctx)
	c := benchContact(i)
	now := time.Now().UTC()
	return plainContact{TenantID: tid, ID: tenancy.NewID(), CreatedAt: now, UpdatedAt: now, Version: 1, FirstName: c.FirstName, LastName: c.LastName,
		Email: c.Email, Phone: c.Phone, Stage: string(crm.StageLead), Source: c.Source, UTMSource: c.UTM.Source, UTMCampaign: c.UTM.Campaign,
		BirthMonth: 12, BirthDay: 10, Preferences: c.Preferences, Tags: []string{}}
}

// BenchmarkCRMContactCreate creates a contact through the SDK: validation,
// sealing every personal field, blind indexes of the e-mail address, phone
// number, birthday and name-word prefixes, one statement writing the
// contact after the duplicate check and (by trigger) its name index rows,
// the hooks and the Guard. SQLite.
func BenchmarkCRMContactCreate(b *testing.B) {
	e := newEnv(b, dbtest.SQLite(b, setup))
	contacts := freshStore(b, e).Contacts()
	n := 0
	b.ResetTimer()
	for b.Loop() {
		n++ // a new address each time: the same one would be a duplicate
		if _, err := contacts.Create(e.A, benchContact(n)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCRMBaselineBunInsert writes the same columns unsealed by hand
// with bun, on a handle with no hooks: no validation, nothing sealed. Each
// row is the one the SDK side creates (a new address, number and name
// each time), so that both sides' indexes take the same values.
func BenchmarkCRMBaselineBunInsert(b *testing.B) {
	e := newEnv(b, dbtest.SQLite(b, setup))
	raw := e.db.Reopen(b)
	benchPlainTable(b, raw)
	ctx := context.Background()
	n := 0
	b.ResetTimer()
	for b.Loop() {
		n++
		row := plainOf(e.A, n)
		if _, err := raw.NewInsert().Model(&row).Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// benchListEnv holds 3,000 contacts in each of two tenants, a third of
// them customers, created through the SDK, and the same contacts unsealed
// in the baseline's table.
func benchListEnv(b testing.TB) *env {
	e := newEnv(b, dbtest.SQLite(b, setup))
	raw := e.db.Reopen(b)
	benchPlainTable(b, raw)
	for _, ctx := range []context.Context{e.A, e.B} {
		rows := make([]plainContact, 0, 3000)
		for i := range 3000 {
			c := benchContact(i)
			r := plainOf(ctx, i)
			if i%3 == 0 {
				c.Stage, r.Stage = crm.StageCustomer, string(crm.StageCustomer)
			}
			if _, err := e.store.Contacts().Create(ctx, c); err != nil {
				b.Fatal(err)
			}
			rows = append(rows, r)
		}
		if _, err := raw.NewInsert().Model(&rows).Exec(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	return e
}

// BenchmarkCRMContactList reads a page of 100 customers through the SDK,
// every sealed field opened. SQLite.
func BenchmarkCRMContactList(b *testing.B) {
	e := benchListEnv(b)
	contacts := freshStore(b, e).Contacts()
	f := crm.ContactFilter{Stage: crm.StageCustomer}
	b.ResetTimer()
	for b.Loop() {
		p, err := contacts.List(e.A, f, crm.ListOptions{Limit: 100})
		if err != nil || len(p.Items) != 100 {
			b.Fatal(err, len(p.Items))
		}
	}
}

// BenchmarkCRMBaselineBunSelect reads the same page of the same columns
// unsealed by hand with bun: the same filter, order and limit, an explicit
// tenant_id, no hooks.
func BenchmarkCRMBaselineBunSelect(b *testing.B) {
	e := benchListEnv(b)
	tid, _ := tenancy.TenantID(e.A)
	raw := e.db.Reopen(b)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		var rows []plainContact
		if err := raw.NewSelect().Model(&rows).Where("ct.tenant_id = ?", tid).Where("ct.stage = ?", crm.StageCustomer).
			OrderExpr("ct.id ASC").Limit(101).Scan(ctx); err != nil || len(rows) != 101 {
			b.Fatal(err, len(rows))
		}
	}
}

// BenchmarkCRMInterleavedList and BenchmarkCRMInterleavedCreate run the
// SDK operation and its baseline alternately in one loop — which goes first
// alternating too, so that neither always finds the caches the other left —
// and report the median of the per-pair time ratios as the metrics
// ratio:crm_contact_list_vs_bun_select and
// ratio:crm_contact_create_vs_bun_insert, the named ratios scripts/bench
// prints. On a machine shared with other work, load then weighs on both
// sides alike, where the separate benchmarks above (kept as figures) may
// each catch a different load.
func BenchmarkCRMInterleavedList(b *testing.B) {
	e := benchListEnv(b)
	tid, _ := tenancy.TenantID(e.A)
	raw := e.db.Reopen(b)
	ctx := context.Background()
	contacts := freshStore(b, e).Contacts()
	f := crm.ContactFilter{Stage: crm.StageCustomer}
	sdk := func() {
		if p, err := contacts.List(e.A, f, crm.ListOptions{Limit: 100}); err != nil || len(p.Items) != 100 {
			b.Fatal(err)
		}
	}
	base := func() {
		var rows []plainContact
		if err := raw.NewSelect().Model(&rows).Where("ct.tenant_id = ?", tid).Where("ct.stage = ?", crm.StageCustomer).
			OrderExpr("ct.id ASC").Limit(101).Scan(ctx); err != nil || len(rows) != 101 {
			b.Fatal(err, len(rows))
		}
	}
	b.ReportMetric(interleave(b, sdk, base), "ratio:crm_contact_list_vs_bun_select")
}

// BenchmarkCRMInterleavedCreate: see BenchmarkCRMInterleavedList.
func BenchmarkCRMInterleavedCreate(b *testing.B) {
	e := newEnv(b, dbtest.SQLite(b, setup))
	raw := e.db.Reopen(b)
	ctx := context.Background()
	benchPlainTable(b, raw)
	contacts := freshStore(b, e).Contacts()
	n := 0
	sdk := func() {
		n++ // a new address each time: the same one would be a duplicate
		if _, err := contacts.Create(e.A, benchContact(n)); err != nil {
			b.Fatal(err)
		}
	}
	base := func() { // the same contact's row (see BenchmarkCRMBaselineBunInsert)
		row := plainOf(e.A, n)
		if _, err := raw.NewInsert().Model(&row).Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(interleave(b, sdk, base), "ratio:crm_contact_create_vs_bun_insert")
}

// BenchmarkCRMInterleavedCreateWithoutNameIndex is
// BenchmarkCRMInterleavedCreate with the FTS5 name index's insert trigger
// dropped from its database: what a create costs against the raw insert
// without the name index's writes (see "What a contact create costs" in
// doc.go), printed by scripts/bench as a figure, not a target. A
// diagnostic: such a database finds no contact by name.
func BenchmarkCRMInterleavedCreateWithoutNameIndex(b *testing.B) {
	e := newEnv(b, dbtest.SQLite(b, setup))
	raw := e.db.Reopen(b)
	ctx := context.Background()
	benchPlainTable(b, raw)
	if _, err := raw.ExecContext(ctx, "DROP TRIGGER socialcrm_crm_contact_name_fts_insert"); err != nil {
		b.Fatal(err)
	}
	contacts := freshStore(b, e).Contacts()
	n := 0
	sdk := func() {
		n++
		if _, err := contacts.Create(e.A, benchContact(n)); err != nil {
			b.Fatal(err)
		}
	}
	base := func() {
		row := plainOf(e.A, n)
		if _, err := raw.NewInsert().Model(&row).Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(interleave(b, sdk, base), "create_without_name_index_vs_bun_insert-figure")
}

// interleave runs sdk and base once each per iteration of b's loop, in
// alternating order, and returns the median of the ratios of their times.
func interleave(b *testing.B, sdk, base func()) float64 {
	var ratios []float64
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		var ts, tb time.Duration
		if i%2 == 0 {
			t0 := time.Now()
			sdk()
			t1 := time.Now()
			base()
			ts, tb = t1.Sub(t0), time.Since(t1)
		} else {
			t0 := time.Now()
			base()
			t1 := time.Now()
			sdk()
			tb, ts = t1.Sub(t0), time.Since(t1)
		}
		ratios = append(ratios, float64(ts)/float64(tb))
	}
	return median(ratios)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

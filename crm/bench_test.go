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

// plainContact is the contacts row without the SDK: what a hand-written
// bun query reads and writes.
type plainContact struct {
	bun.BaseModel `bun:"table:socialcrm_crm_contacts,alias:ct"`
	TenantID      string            `bun:"tenant_id"`
	ID            string            `bun:"id,pk"`
	CreatedAt     time.Time         `bun:"created_at"`
	UpdatedAt     time.Time         `bun:"updated_at"`
	Version       int64             `bun:"version"`
	FirstName     string            `bun:"first_name"`
	LastName      string            `bun:"last_name"`
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
	EmailSealed   []byte            `bun:"email_sealed"`
	EmailIndex    string            `bun:"email_index,nullzero"`
	PhoneSealed   []byte            `bun:"phone_sealed"`
	PhoneIndex    string            `bun:"phone_index,nullzero"`
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

func benchContact(i int) crm.Contact {
	return crm.Contact{FirstName: "Ada", LastName: fmt.Sprintf("Lovelace %d", i), Email: fmt.Sprintf("ada%d@example.com", i),
		Phone: "+14155550100", Source: "web", UTM: crm.UTM{Source: "ig", Campaign: "spring"},
		Birthday: crm.Birthday{Month: 12, Day: 10}, Preferences: map[string]string{"lang": "en"}}
}

// plainOf is the row benchContact(i) becomes, sealed values included
// (sealed once, outside the timed loop).
func plainOf(b testing.TB, e *env, ctx context.Context, i int) plainContact {
	tid, _ := tenancy.TenantID(ctx)
	c, err := e.store.Contacts().Create(ctx, benchContact(i))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	return plainContact{TenantID: tid, ID: c.ID, CreatedAt: now, UpdatedAt: now, Version: 1, FirstName: c.FirstName, LastName: c.LastName,
		Stage: string(c.Stage), Source: c.Source, UTMSource: c.UTM.Source, UTMCampaign: c.UTM.Campaign, BirthMonth: 12, BirthDay: 10,
		Preferences: c.Preferences, Tags: []string{}, EmailSealed: c.EmailSealed.Bytes(), EmailIndex: c.EmailIndex,
		PhoneSealed: c.PhoneSealed.Bytes(), PhoneIndex: c.PhoneIndex}
}

// BenchmarkCRMContactCreate creates a contact through the SDK: validation,
// sealing and blind-indexing the e-mail address and phone number, a
// tenant-scoped transaction, the hooks and the Guard. SQLite.
func BenchmarkCRMContactCreate(b *testing.B) {
	e := newEnv(b, dbtest.SQLite(b, setup))
	contacts := freshStore(b, e).Contacts()
	in := benchContact(0)
	b.ResetTimer()
	for b.Loop() {
		if _, err := contacts.Create(e.A, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCRMBaselineBunInsert writes the same row by hand with bun, on a
// handle with no hooks: no validation, the sealed values computed once.
func BenchmarkCRMBaselineBunInsert(b *testing.B) {
	e := newEnv(b, dbtest.SQLite(b, setup))
	row := plainOf(b, e, e.A, 0)
	raw := e.db.Reopen(b)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		row.ID = tenancy.NewID()
		if _, err := raw.NewInsert().Model(&row).Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// benchListEnv holds 3,000 contacts in each of two tenants, a third of
// them customers.
func benchListEnv(b testing.TB) *env {
	e := newEnv(b, dbtest.SQLite(b, setup))
	for _, ctx := range []context.Context{e.A, e.B} {
		tid, _ := tenancy.TenantID(ctx)
		rows := make([]plainContact, 0, 3000)
		base := plainOf(b, e, ctx, 0)
		for i := range 3000 {
			r := base
			r.ID, r.LastName = tenancy.NewID(), fmt.Sprintf("Lovelace %d", i)
			r.TenantID = tid
			if i%3 == 0 {
				r.Stage = string(crm.StageCustomer)
			}
			// Each row's values are sealed for its own id.
			c := benchContact(i)
			em, err := e.vault.Seal(ctx, []byte(c.Email), vault.Binding{Record: r.ID, Field: "email"})
			if err != nil {
				b.Fatal(err)
			}
			ph, err := e.vault.Seal(ctx, []byte(c.Phone), vault.Binding{Record: r.ID, Field: "phone"})
			if err != nil {
				b.Fatal(err)
			}
			r.EmailSealed, r.PhoneSealed = em.Bytes(), ph.Bytes()
			rows = append(rows, r)
		}
		raw := e.db.Reopen(b)
		if _, err := raw.NewInsert().Model(&rows).Exec(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	return e
}

// BenchmarkCRMContactList reads a page of 100 customers through the SDK,
// e-mail addresses and phone numbers opened. SQLite.
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

// BenchmarkCRMBaselineBunSelect reads the same page by hand with bun: the
// same filter, order and limit, an explicit tenant_id, no hooks, nothing
// opened.
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
	row := plainOf(b, e, e.A, 0)
	in := benchContact(0)
	contacts := freshStore(b, e).Contacts()
	sdk := func() {
		if _, err := contacts.Create(e.A, in); err != nil {
			b.Fatal(err)
		}
	}
	base := func() {
		row.ID = tenancy.NewID()
		if _, err := raw.NewInsert().Model(&row).Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(interleave(b, sdk, base), "ratio:crm_contact_create_vs_bun_insert")
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

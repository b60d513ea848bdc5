package crm_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/tenancy"
)

// plainInvoice and plainRecipient are the invoice rows without the SDK:
// the same columns, every value in clear, in tables of their own
// (benchPlainInvoiceTables).
type plainInvoice struct {
	bun.BaseModel `bun:"table:bench_plain_invoices,alias:inv"`
	TenantID      string         `bun:"tenant_id"`
	ID            string         `bun:"id,pk"`
	CreatedAt     time.Time      `bun:"created_at"`
	UpdatedAt     time.Time      `bun:"updated_at"`
	Version       int64          `bun:"version"`
	Number        string         `bun:"number"`
	ClientID      string         `bun:"client_id"`
	CampaignID    string         `bun:"campaign_id,nullzero"`
	Currency      string         `bun:"currency"`
	Status        string         `bun:"status"`
	Lines         []crm.LineItem `bun:"lines"`
	Subtotal      int64          `bun:"subtotal"`
	Tax           int64          `bun:"tax"`
	Total         int64          `bun:"total"`
	Paid          int64          `bun:"paid"`
	IssuedAt      *time.Time     `bun:"issued_at"`
	DueAt         *time.Time     `bun:"due_at"`
	DatedAt       time.Time      `bun:"dated_at"`
	BillToName    string         `bun:"bill_to_name"`
	BillToAddress string         `bun:"bill_to_address"`
	BillToTaxID   string         `bun:"bill_to_tax_id"`
}

type plainRecipient struct {
	bun.BaseModel `bun:"table:bench_plain_invoice_recipients,alias:ivr"`
	TenantID      string    `bun:"tenant_id"`
	InvoiceID     string    `bun:"invoice_id,pk"`
	ContactID     string    `bun:"contact_id,nullzero"`
	Email         string    `bun:"email,nullzero"`
	Phone         string    `bun:"phone,nullzero"`
	CreatedAt     time.Time `bun:"created_at"`
}

// benchPlainInvoiceTables creates the baseline's tables on db, with the
// keys and indexes of the SDK's.
func benchPlainInvoiceTables(b testing.TB, db bun.IDB) {
	for _, q := range []string{`CREATE TABLE IF NOT EXISTS bench_plain_invoices (
			tenant_id TEXT NOT NULL, id TEXT NOT NULL, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL, version BIGINT NOT NULL,
			number TEXT NOT NULL, client_id TEXT NOT NULL, campaign_id TEXT, currency TEXT NOT NULL, status TEXT NOT NULL,
			lines TEXT NOT NULL, subtotal BIGINT NOT NULL, tax BIGINT NOT NULL, total BIGINT NOT NULL,
			paid BIGINT NOT NULL, issued_at TIMESTAMP, due_at TIMESTAMP, dated_at TIMESTAMP NOT NULL,
			bill_to_name TEXT NOT NULL, bill_to_address TEXT NOT NULL, bill_to_tax_id TEXT NOT NULL,
			PRIMARY KEY (tenant_id, id), UNIQUE (tenant_id, number))`,
		`CREATE INDEX IF NOT EXISTS bench_plain_invoices_client ON bench_plain_invoices (tenant_id, client_id, id)`,
		`CREATE INDEX IF NOT EXISTS bench_plain_invoices_dated ON bench_plain_invoices (tenant_id, dated_at)`,
		`CREATE TABLE IF NOT EXISTS bench_plain_invoice_recipients (
			tenant_id TEXT NOT NULL, invoice_id TEXT NOT NULL,
			contact_id TEXT, email TEXT, phone TEXT, created_at TIMESTAMP NOT NULL,
			PRIMARY KEY (tenant_id, invoice_id))`,
	} {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			b.Fatal(err)
		}
	}
}

// plainInvoiceOf is the row an SDK invoice becomes (totals computed once,
// outside the timed loop).
func plainInvoiceOf(inv crm.Invoice) plainInvoice {
	return plainInvoice{TenantID: inv.TenantID, ClientID: inv.ClientID, Currency: inv.Currency, Status: string(inv.Status),
		Lines: inv.Lines, Subtotal: inv.Subtotal, Tax: inv.Tax, Total: inv.Total, DatedAt: inv.DatedAt, Version: 1,
		BillToName: inv.BillTo.Name, BillToAddress: inv.BillTo.Address, BillToTaxID: inv.BillTo.TaxID}
}

// BenchmarkCRMInterleavedInvoiceCreate creates an invoice with two lines
// and a recipient through the SDK (validation, ISO 4217, totals, the
// client's existence, portal access, invoice and recipient in one
// tenant-scoped transaction) and, alternately, writes the same two rows by
// hand with bun in a transaction; it reports the median per-pair ratio
// (metric ratio:crm_invoice_create_vs_bun_insert_interleaved). SQLite.
func BenchmarkCRMInterleavedInvoiceCreate(b *testing.B) {
	e := newEnv(b, dbtest.SQLite(b, setup))
	cl, err := e.store.Clients().Create(e.A, crm.ClientInput{Name: "Acme"})
	if err != nil {
		b.Fatal(err)
	}
	first, err := e.store.Invoices().Create(e.A, invoiceInput(cl.ID, "seed"))
	if err != nil {
		b.Fatal(err)
	}
	row := plainInvoiceOf(first)
	raw := e.db.Reopen(b)
	benchPlainInvoiceTables(b, raw)
	ctx := context.Background()
	invoices := freshStore(b, e).Invoices()
	var ratios []float64
	n := 0
	b.ResetTimer()
	for b.Loop() {
		n++
		t0 := time.Now()
		if _, err := invoices.Create(e.A, invoiceInput(cl.ID, fmt.Sprintf("S-%d", n))); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		err := raw.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			now := time.Now().UTC()
			row.ID, row.Number, row.CreatedAt, row.UpdatedAt = tenancy.NewID(), fmt.Sprintf("B-%d", n), now, now
			if _, err := tx.NewInsert().Model(&row).Exec(ctx); err != nil {
				return err
			}
			rc := plainRecipient{TenantID: row.TenantID, InvoiceID: row.ID, Email: "ap@brand.example", Phone: "+4930123456", CreatedAt: now}
			_, err := tx.NewInsert().Model(&rc).Exec(ctx)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		ratios = append(ratios, float64(t1.Sub(t0))/float64(time.Since(t1)))
	}
	b.ReportMetric(median(ratios), "ratio:crm_invoice_create_vs_bun_insert_interleaved")
}

// BenchmarkCRMInterleavedPortalList lists a page of 100 invoices as a
// client-portal member (the link looked up, the list scoped to its client)
// and, alternately, reads the same page by hand with bun (tenant and
// client given, drafts left out, no hooks); it reports the median per-pair ratio (metric
// ratio:crm_portal_invoice_list_vs_bun_select_interleaved). 1,000 invoices
// of each of two clients. SQLite.
func BenchmarkCRMInterleavedPortalList(b *testing.B) {
	e := newEnv(b, dbtest.SQLite(b, setup))
	raw := e.db.Reopen(b)
	benchPlainInvoiceTables(b, raw)
	ctx := context.Background()
	var mine crm.Client
	for c := range 2 {
		cl, err := e.store.Clients().Create(e.A, crm.ClientInput{Name: fmt.Sprint("client ", c)})
		if err != nil {
			b.Fatal(err)
		}
		if c == 0 {
			mine = cl
		}
		inv, err := e.store.Invoices().Create(e.A, invoiceInput(cl.ID, fmt.Sprint("seed-", c)))
		if err != nil {
			b.Fatal(err)
		}
		rows := make([]plainInvoice, 1000)
		for i := range rows {
			rows[i] = plainInvoiceOf(inv)
			rows[i].ID, rows[i].Number = tenancy.NewID(), fmt.Sprintf("%d-%d", c, i)
			rows[i].CreatedAt, rows[i].UpdatedAt = inv.CreatedAt, inv.UpdatedAt
			rows[i].Status = string(crm.InvoiceIssued)
		}
		if _, err := raw.NewInsert().Model(&rows).Exec(ctx); err != nil {
			b.Fatal(err)
		}
		// The SDK's side: the same invoices, sealed, issued.
		for i := range 1000 {
			inv, err := e.store.Invoices().Create(e.A, invoiceInput(cl.ID, fmt.Sprintf("%d-%d", c, i)))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := e.store.Invoices().Issue(e.A, inv.ID, inv.Version); err != nil {
				b.Fatal(err)
			}
		}
	}
	_, portal := portalMember(b, e, e.A, mine.ID, "buyer@client.example")
	tid := principal(e.A).TenantID
	invoices := freshStore(b, e).Invoices()
	var ratios []float64
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if p, err := invoices.List(portal, crm.InvoiceFilter{}, crm.ListOptions{Limit: 100}); err != nil || len(p.Items) != 100 {
			b.Fatal(err)
		}
		t1 := time.Now()
		var rows []plainInvoice
		if err := raw.NewSelect().Model(&rows).Where("inv.tenant_id = ?", tid).Where("inv.client_id = ?", mine.ID).
			Where("inv.status <> ?", "draft").OrderExpr("inv.id ASC").Limit(101).Scan(ctx); err != nil || len(rows) != 101 {
			b.Fatal(err, len(rows))
		}
		ratios = append(ratios, float64(t1.Sub(t0))/float64(time.Since(t1)))
	}
	b.ReportMetric(median(ratios), "ratio:crm_portal_invoice_list_vs_bun_select_interleaved")
}

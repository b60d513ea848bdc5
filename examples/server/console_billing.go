package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/socialcrm/socialcrm/crm"
)

// boardLimit bounds the deals a board shows per pipeline.
const boardLimit = 500

// consoleBillingRoutes registers the deals board and the invoices list.
func (a *app) consoleBillingRoutes() {
	a.page("GET /console/deals", member, "deals", a.consoleDeals)
	a.page("POST /console/deals", member, "deals", a.consoleCreateDeal)
	a.page("POST /console/deals/{id}/stage", member, "deals", a.consoleMoveDeal)
	a.page("POST /console/pipelines", member, "deals", a.consoleCreatePipeline)
	a.page("GET /console/invoices", member, "invoices", a.consoleInvoices)
}

// boardColumn is one stage of the deals board.
type boardColumn struct {
	Stage string
	Deals []crm.Deal
	// Totals sums the deals' amounts per currency ("1,200.00 EUR").
	Totals []string
}

type boardView struct {
	Pipelines []crm.Pipeline
	Pipeline  crm.Pipeline
	Columns   []boardColumn
	Truncated bool
}

// consoleDeals renders a pipeline's deals as a board: one column per stage.
func (a *app) consoleDeals(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Deals"
	p.Flash = r.URL.Query().Get("flash")
	v := &boardView{}
	p.Data = v
	ctx := r.Context()
	for pl, err := range crm.All(ctx, crm.ListOptions{Limit: 100}, func(ctx context.Context, o crm.ListOptions) (crm.Page[crm.Pipeline], error) {
		return a.sdk.CRM.Pipelines().List(ctx, crm.PipelineFilter{}, o)
	}) {
		if err != nil {
			return err
		}
		v.Pipelines = append(v.Pipelines, pl)
		if pl.ID == r.URL.Query().Get("pipeline") || v.Pipeline.ID == "" {
			v.Pipeline = pl
		}
	}
	if v.Pipeline.ID == "" {
		return nil
	}
	cols := map[string]*boardColumn{}
	sums := map[string]map[string]int64{}
	for _, s := range v.Pipeline.Stages {
		v.Columns = append(v.Columns, boardColumn{Stage: s})
	}
	for i := range v.Columns {
		cols[v.Columns[i].Stage] = &v.Columns[i]
		sums[v.Columns[i].Stage] = map[string]int64{}
	}
	n := 0
	for d, err := range crm.All(ctx, crm.ListOptions{Limit: 200}, func(ctx context.Context, o crm.ListOptions) (crm.Page[crm.Deal], error) {
		return a.sdk.CRM.Deals().List(ctx, crm.DealFilter{PipelineID: v.Pipeline.ID}, o)
	}) {
		if err != nil {
			return err
		}
		if n++; n > boardLimit {
			v.Truncated = true
			break
		}
		if c := cols[d.Stage]; c != nil {
			c.Deals = append(c.Deals, d)
			if d.Currency != "" {
				sums[d.Stage][d.Currency] += d.Amount
			}
		}
	}
	for i := range v.Columns {
		for cur, amt := range sums[v.Columns[i].Stage] {
			v.Columns[i].Totals = append(v.Columns[i].Totals, money(amt, cur))
		}
	}
	return nil
}

func (a *app) consoleCreatePipeline(w http.ResponseWriter, r *http.Request, p *page) error {
	if err := a.consoleDeals(w, r, p); err != nil {
		return err
	}
	var stages []string
	for s := range strings.SplitSeq(r.FormValue("stages"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			stages = append(stages, s)
		}
	}
	pl, err := a.sdk.CRM.Pipelines().Create(r.Context(), crm.PipelineInput{Name: strings.TrimSpace(r.FormValue("name")), Stages: stages})
	if err != nil {
		return err
	}
	return seeOther(w, r, "/console/deals?pipeline="+pl.ID, "Pipeline created.")
}

func (a *app) consoleCreateDeal(w http.ResponseWriter, r *http.Request, p *page) error {
	if err := a.consoleDeals(w, r, p); err != nil {
		return err
	}
	amount, err := parseMoney(r.FormValue("amount"))
	if err != nil {
		return errInvalid(fieldProblem{Field: "amount", Problem: "a number such as 1200 or 1200.50"})
	}
	cur := strings.ToUpper(strings.TrimSpace(r.FormValue("currency")))
	if amount == 0 {
		cur = ""
	}
	d, err := a.sdk.CRM.Deals().Create(r.Context(), crm.DealInput{PipelineID: r.FormValue("pipeline_id"),
		Title: strings.TrimSpace(r.FormValue("title")), Amount: amount, Currency: cur})
	if err != nil {
		return err
	}
	return seeOther(w, r, "/console/deals?pipeline="+d.PipelineID, "Deal created.")
}

// consoleMoveDeal moves a deal to another stage; the version read guards
// against a move made meanwhile.
func (a *app) consoleMoveDeal(w http.ResponseWriter, r *http.Request, p *page) error {
	if err := a.consoleDeals(w, r, p); err != nil {
		return err
	}
	id, err := pathID(r, "deal")
	if err != nil {
		return err
	}
	ver, err := strconv.ParseInt(r.FormValue("version"), 10, 64)
	if err != nil || ver < 1 {
		return errInvalid(fieldProblem{Field: "version", Problem: "required"})
	}
	d, err := a.sdk.CRM.Deals().Move(r.Context(), id, ver, r.FormValue("stage"))
	if err != nil {
		return err
	}
	return seeOther(w, r, "/console/deals?pipeline="+d.PipelineID, "Moved “"+d.Title+"” to "+d.Stage+".")
}

type invoiceRow struct {
	crm.Invoice
	Client string
}

// consoleInvoices lists invoices with their totals and status.
func (a *app) consoleInvoices(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Invoices"
	o, err := listOptions(r)
	if err != nil {
		return err
	}
	status := crm.InvoiceStatus(r.URL.Query().Get("status"))
	list, err := a.sdk.CRM.Invoices().List(r.Context(), crm.InvoiceFilter{Status: status}, o)
	if err != nil {
		return err
	}
	names := map[string]string{}
	rows := make([]invoiceRow, 0, len(list.Items))
	for _, inv := range list.Items {
		if _, ok := names[inv.ClientID]; !ok {
			c, err := a.sdk.CRM.Clients().Get(r.Context(), inv.ClientID)
			if err == nil {
				names[inv.ClientID] = c.Name
			}
		}
		rows = append(rows, invoiceRow{Invoice: inv, Client: names[inv.ClientID]})
	}
	p.Data = map[string]any{"Invoices": rows, "Next": list.NextCursor, "Status": string(status),
		"Statuses": []crm.InvoiceStatus{crm.InvoiceDraft, crm.InvoiceIssued, crm.InvoicePartiallyPaid, crm.InvoiceOverdue, crm.InvoicePaid, crm.InvoiceVoid}}
	return nil
}

// zeroDecimal are the ISO 4217 currencies without minor units that the
// console is likely to meet.
var zeroDecimal = map[string]bool{"JPY": true, "KRW": true, "VND": true, "CLP": true, "ISK": true, "UGX": true, "XOF": true, "XAF": true}

// money formats an amount in minor units: "1,234.50 EUR".
func money(amount int64, currency string) string {
	neg := amount < 0
	u := uint64(amount)
	if neg {
		u = -u
	}
	var whole, frac string
	if zeroDecimal[currency] {
		whole = strconv.FormatUint(u, 10)
	} else {
		whole, frac = strconv.FormatUint(u/100, 10), fmt.Sprintf(".%02d", u%100)
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return strings.TrimSpace(b.String() + frac + " " + currency)
}

// parseMoney reads "1200" or "1200.5" as minor units (two decimals).
func parseMoney(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 2 || strings.HasPrefix(whole, "-") || strings.HasPrefix(whole, "+") {
		return 0, strconv.ErrSyntax
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > (1<<62)/100 {
		return 0, strconv.ErrSyntax
	}
	frac += strings.Repeat("0", 2-len(frac))
	f, err := strconv.ParseInt(frac, 10, 64)
	if err != nil || strings.HasPrefix(frac, "-") || strings.HasPrefix(frac, "+") {
		return 0, strconv.ErrSyntax
	}
	return w*100 + f, nil
}

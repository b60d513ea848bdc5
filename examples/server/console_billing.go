package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/socialcrm/socialcrm/crm"
)

// boardLimit bounds the deals a board shows per pipeline.
const boardLimit = 500

// consoleBillingRoutes registers the deals board and the invoices list.
func (a *app) consoleBillingRoutes() {
	a.page("GET /console/deals", member, "deals", a.consoleDeals)
	a.form("POST /console/deals", member, "deals", "/console/deals", a.consoleCreateDeal)
	a.form("POST /console/deals/{id}/stage", member, "deals", "/console/deals", a.consoleMoveDeal)
	a.form("POST /console/pipelines", member, "deals", "/console/deals", a.consoleCreatePipeline)
	a.page("GET /console/invoices", member, "invoices", a.consoleInvoices)
	a.form("POST /console/invoices", member, "invoices", "/console/invoices", a.consoleCreateInvoice)
	a.form("POST /console/invoices/{id}/issue", member, "invoices", "/console/invoices", a.consoleIssueInvoice)
	a.form("POST /console/invoices/{id}/pay", member, "invoices", "/console/invoices", a.consolePayInvoice)
	a.page("GET /console/proposals", member, "proposals", a.consoleProposals)
	a.form("POST /console/proposals", member, "proposals", "/console/proposals", a.consoleCreateProposal)
	a.form("POST /console/proposals/{id}/status", member, "proposals", "/console/proposals", a.consoleMoveProposal)
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
	return a.seeOther(w, r, "/console/deals?pipeline="+pl.ID, "Pipeline created.")
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
	return a.seeOther(w, r, "/console/deals?pipeline="+d.PipelineID, "Deal created.")
}

// consoleMoveDeal moves a deal to another stage; the version read guards
// against a move made meanwhile.
func (a *app) consoleMoveDeal(w http.ResponseWriter, r *http.Request, p *page) error {
	id, ver, err := a.recordForm(w, r, p, a.consoleDeals, "deal")
	if err != nil {
		return err
	}
	d, err := a.sdk.CRM.Deals().Move(r.Context(), id, ver, r.FormValue("stage"))
	if err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/deals?pipeline="+d.PipelineID, "Moved “"+d.Title+"” to "+d.Stage+".")
}

type invoiceRow struct {
	crm.Invoice
	Client string
}

type invoicesView struct {
	Invoices   []invoiceRow
	Next       string
	Status     string
	Statuses   []crm.InvoiceStatus
	Clients    []crm.Client
	NextNumber string
}

// clients returns the first clients by name, for the forms' pickers.
func (a *app) clients(ctx context.Context) ([]crm.Client, error) {
	list, err := a.sdk.CRM.Clients().List(ctx, crm.ClientFilter{}, crm.ListOptions{Limit: 200})
	return list.Items, err
}

// clientNames names the clients of ids.
func (a *app) clientName(ctx context.Context, names map[string]string, id string) string {
	if n, ok := names[id]; ok {
		return n
	}
	c, err := a.sdk.CRM.Clients().Get(ctx, id)
	if err == nil {
		names[id] = c.Name
	}
	return names[id]
}

// consoleInvoices lists invoices with their totals and status.
func (a *app) consoleInvoices(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Invoices"
	o, err := listOptions(r)
	if err != nil {
		return err
	}
	status := crm.InvoiceStatus(r.URL.Query().Get("status"))
	v := &invoicesView{Status: string(status),
		Statuses: []crm.InvoiceStatus{crm.InvoiceDraft, crm.InvoiceIssued, crm.InvoicePartiallyPaid, crm.InvoiceOverdue, crm.InvoicePaid, crm.InvoiceVoid}}
	p.Data = v
	list, err := a.sdk.CRM.Invoices().List(r.Context(), crm.InvoiceFilter{Status: status}, o)
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, inv := range list.Items {
		v.Invoices = append(v.Invoices, invoiceRow{Invoice: inv, Client: a.clientName(r.Context(), names, inv.ClientID)})
	}
	v.Next = list.NextCursor
	v.NextNumber = fmt.Sprintf("%d-%03d", a.now().Year(), len(list.Items)+1)
	if !p.Staff() {
		return nil // a client's member reads; the forms are the team's
	}
	v.Clients, err = a.clients(r.Context())
	return err
}

// parseRate reads a percentage ("20", "5.5") as basis points.
func parseRate(s string) (int64, error) {
	bp, err := parseMoney(s) // two decimals: percent × 100 = basis points
	if err != nil || bp > 10000 {
		return 0, strconv.ErrSyntax
	}
	return bp, nil
}

// consoleCreateInvoice creates a draft invoice of one line, for a client
// picked or a new one named.
func (a *app) consoleCreateInvoice(w http.ResponseWriter, r *http.Request, p *page) error {
	if err := a.consoleInvoices(w, r, p); err != nil {
		return err
	}
	in := crm.InvoiceInput{Number: strings.TrimSpace(r.FormValue("number")), ClientID: r.FormValue("client_id"),
		Currency: strings.ToUpper(strings.TrimSpace(r.FormValue("currency")))}
	line := crm.LineItem{Description: strings.TrimSpace(r.FormValue("description"))}
	var v validator
	qty, err := strconv.ParseInt(strings.TrimSpace(r.FormValue("quantity")), 10, 64)
	v.check(err == nil && qty >= 1, "quantity", "a whole number, at least 1")
	price, err := parseMoney(r.FormValue("unit_price"))
	v.check(err == nil, "unit_price", "a number such as 120 or 120.50")
	rate, err := parseRate(r.FormValue("tax_rate"))
	v.check(err == nil, "tax_rate", "a percentage from 0 to 100, such as 20 or 5.5")
	v.check(line.Description != "", "description", "required")
	newClient := strings.TrimSpace(r.FormValue("client_name"))
	v.check(in.ClientID != "" || newClient != "", "client_name", "pick a client, or name a new one")
	if d := r.FormValue("due"); d != "" {
		day, err := time.Parse("2006-01-02", d)
		v.check(err == nil, "due", "a date such as 2026-12-24")
		in.DueAt = &day
	}
	if err := v.err(); err != nil {
		return err
	}
	line.Quantity, line.UnitPrice, line.TaxRate = qty, price, rate
	in.Lines = []crm.LineItem{line}
	created := false
	if in.ClientID == "" {
		c, err := a.sdk.CRM.Clients().Create(r.Context(), crm.ClientInput{Name: newClient})
		if err != nil {
			return err
		}
		in.ClientID, created = c.ID, true
	}
	in.BillTo.Name = a.clientName(r.Context(), map[string]string{}, in.ClientID)
	inv, err := a.sdk.CRM.Invoices().Create(r.Context(), in)
	if err != nil {
		// A refused invoice (a number taken, a bad currency) leaves no
		// client behind that the form named for it.
		if created {
			if derr := a.sdk.CRM.Clients().Delete(context.WithoutCancel(r.Context()), in.ClientID); derr != nil {
				err = errors.Join(err, derr)
			}
		}
		return err
	}
	return a.seeOther(w, r, "/console/invoices", "Invoice "+inv.Number+" created as a draft: "+money(inv.Total, inv.Currency)+".")
}

func (a *app) consoleIssueInvoice(w http.ResponseWriter, r *http.Request, p *page) error {
	id, ver, err := a.recordForm(w, r, p, a.consoleInvoices, "invoice")
	if err != nil {
		return err
	}
	inv, err := a.sdk.CRM.Invoices().Issue(r.Context(), id, ver)
	if err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/invoices", "Invoice "+inv.Number+" issued.")
}

func (a *app) consolePayInvoice(w http.ResponseWriter, r *http.Request, p *page) error {
	id, ver, err := a.recordForm(w, r, p, a.consoleInvoices, "invoice")
	if err != nil {
		return err
	}
	amount, err := parseMoney(r.FormValue("amount"))
	if err != nil || amount <= 0 {
		return errInvalid(fieldProblem{Field: "amount", Problem: "a positive amount such as 120.50"})
	}
	inv, err := a.sdk.CRM.Invoices().RecordPayment(r.Context(), id, ver, amount)
	if err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/invoices", "Payment recorded: invoice "+inv.Number+" is "+string(inv.Status)+".")
}

// recordForm begins a form posted on one record: it prepares view's page
// first, so that a refused change shows the page again with its problem,
// then reads the record's id from the path (what names its kind) and the
// version the form was rendered with.
func (a *app) recordForm(w http.ResponseWriter, r *http.Request, p *page, view consoleHandler, what string) (string, int64, error) {
	if err := view(w, r, p); err != nil {
		return "", 0, err
	}
	id, err := pathID(r, what)
	if err != nil {
		return "", 0, err
	}
	ver, err := formVersion(r)
	if err != nil {
		return "", 0, err
	}
	return id, ver, nil
}

// proposalMove is a button of a proposal's row.
type proposalMove struct {
	To    crm.ProposalStatus
	Label string
	// Final moves (rejected, withdrawn) end the proposal: their form asks
	// for a ticked confirmation first.
	Final bool
}

var proposalMoves = map[crm.ProposalStatus][]proposalMove{
	crm.ProposalDraft: {{To: crm.ProposalSent, Label: "Mark sent"}},
	crm.ProposalSent: {{To: crm.ProposalAccepted, Label: "Accepted"}, {To: crm.ProposalRejected, Label: "Rejected", Final: true},
		{To: crm.ProposalWithdrawn, Label: "Withdraw", Final: true}},
}

type proposalRow struct {
	Proposal crm.Proposal
	Client   string
	Next     []proposalMove
}

type proposalsView struct {
	Proposals []proposalRow
	Clients   []crm.Client
}

func (a *app) consoleProposals(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Proposals"
	v := &proposalsView{}
	p.Data = v
	list, err := a.sdk.CRM.Proposals().List(r.Context(), crm.ProposalFilter{}, crm.ListOptions{Limit: 200})
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, pr := range list.Items {
		v.Proposals = append(v.Proposals, proposalRow{Proposal: pr, Client: a.clientName(r.Context(), names, pr.ClientID), Next: proposalMoves[pr.Status]})
	}
	if !p.Staff() {
		return nil // a client's member reads; the forms are the team's
	}
	v.Clients, err = a.clients(r.Context())
	return err
}

func (a *app) consoleCreateProposal(w http.ResponseWriter, r *http.Request, p *page) error {
	if err := a.consoleProposals(w, r, p); err != nil {
		return err
	}
	amount, err := parseMoney(r.FormValue("amount"))
	if err != nil {
		return errInvalid(fieldProblem{Field: "amount", Problem: "a number such as 1200 or 1200.50"})
	}
	in := crm.ProposalInput{ClientID: r.FormValue("client_id"), ProposalContent: crm.ProposalContent{
		Title: strings.TrimSpace(r.FormValue("title")), Body: strings.TrimSpace(r.FormValue("body")),
		Amount: amount, Currency: strings.ToUpper(strings.TrimSpace(r.FormValue("currency")))}}
	// A first proposal names its client: a new one is created with it.
	newClient := strings.TrimSpace(r.FormValue("client_name"))
	if in.ClientID == "" && newClient == "" {
		return errInvalid(fieldProblem{Field: "client_name", Problem: "pick a client, or name a new one"})
	}
	created := false
	if in.ClientID == "" {
		c, err := a.sdk.CRM.Clients().Create(r.Context(), crm.ClientInput{Name: newClient})
		if err != nil {
			return err
		}
		in.ClientID, created = c.ID, true
	}
	if _, err := a.sdk.CRM.Proposals().Create(r.Context(), in); err != nil {
		// A refused proposal leaves no client behind that it named.
		if created {
			if derr := a.sdk.CRM.Clients().Delete(context.WithoutCancel(r.Context()), in.ClientID); derr != nil {
				err = errors.Join(err, derr)
			}
		}
		return err
	}
	return a.seeOther(w, r, "/console/proposals", "Proposal created as a draft.")
}

func (a *app) consoleMoveProposal(w http.ResponseWriter, r *http.Request, p *page) error {
	id, ver, err := a.recordForm(w, r, p, a.consoleProposals, "proposal")
	if err != nil {
		return err
	}
	to := crm.ProposalStatus(r.FormValue("to"))
	if to == crm.ProposalRejected || to == crm.ProposalWithdrawn {
		if err := confirmed(r); err != nil {
			return err
		}
	}
	pr, err := a.sdk.CRM.Proposals().Transition(r.Context(), id, ver, to, "")
	if err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/proposals", "Proposal “"+pr.Title+"” is "+string(pr.Status)+".")
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

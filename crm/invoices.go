package crm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dberr"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// InvoiceStatus is an invoice's payment status:
//
//	draft          → issued, void
//	issued         → partially_paid, paid, overdue, void
//	partially_paid → paid, overdue, void
//	overdue        → partially_paid, paid, void
//
// Paid and void are final. Only a draft can be edited or deleted.
type InvoiceStatus string

// Invoice statuses.
const (
	InvoiceDraft         InvoiceStatus = "draft"
	InvoiceIssued        InvoiceStatus = "issued"
	InvoicePartiallyPaid InvoiceStatus = "partially_paid"
	InvoicePaid          InvoiceStatus = "paid"
	InvoiceOverdue       InvoiceStatus = "overdue"
	InvoiceVoid          InvoiceStatus = "void"
)

var invoiceMoves = map[InvoiceStatus][]InvoiceStatus{
	InvoiceDraft:         {InvoiceIssued, InvoiceVoid},
	InvoiceIssued:        {InvoicePartiallyPaid, InvoicePaid, InvoiceOverdue, InvoiceVoid},
	InvoicePartiallyPaid: {InvoicePaid, InvoiceOverdue, InvoiceVoid},
	InvoiceOverdue:       {InvoicePartiallyPaid, InvoicePaid, InvoiceVoid},
}

// Invoice is a bill to a client, with its line items and totals computed
// by the Store. Amounts are integers in the minor unit of Currency.
//
// An invoice is a billing record the law requires to be kept (retention
// category "billing.invoice", 7 years under socialcrm.DefaultPolicy): an
// erasure request does not delete it. What identifies the customer and is
// required on an invoice — BillTo (name, address, tax id) — stays with it;
// what the law does not require — the recipient's e-mail, phone and link
// to a contact (Recipient, category "billing.invoice_recipient") — is
// erased on request.
type Invoice struct {
	bun.BaseModel `bun:"table:socialcrm_crm_invoices,alias:inv"`
	Record
	// Number is unique in the tenant.
	Number     string        `bun:"number,notnull" json:"number"`
	ClientID   string        `bun:"client_id,notnull" json:"client_id"`
	CampaignID string        `bun:"campaign_id,nullzero" json:"campaign_id,omitempty"`
	Currency   string        `bun:"currency,notnull" json:"currency"`
	Status     InvoiceStatus `bun:"status,notnull" json:"status"`
	Lines      []LineItem    `bun:"-" json:"lines"`
	Subtotal   int64         `bun:"subtotal,notnull" json:"subtotal"`
	Tax        int64         `bun:"tax,notnull" json:"tax"`
	Total      int64         `bun:"total,notnull" json:"total"`
	// Paid is the sum of the payments recorded.
	Paid     int64      `bun:"paid,notnull" json:"paid"`
	IssuedAt *time.Time `bun:"issued_at" json:"issued_at,omitempty"`
	DueAt    *time.Time `bun:"due_at" json:"due_at,omitempty"`
	// DatedAt is the invoice's date: its creation, then its issue. The
	// legal-obligation period runs from it.
	DatedAt time.Time `bun:"dated_at,notnull" json:"dated_at"`
	BillTo
	// Recipient is nil when there is none or it was erased.
	Recipient *Recipient `bun:"-" json:"recipient,omitempty"`

	// The lines and the customer's name, address and tax id are stored
	// sealed; numbers, dates, amounts, currency and status in clear.
	LinesSealed   vault.Sealed `bun:"lines_sealed" json:"-"`
	NameSealed    vault.Sealed `bun:"bill_to_name_sealed" json:"-"`
	AddressSealed vault.Sealed `bun:"bill_to_address_sealed" json:"-"`
	TaxIDSealed   vault.Sealed `bun:"bill_to_tax_id_sealed" json:"-"`
}

func (inv *Invoice) sealedFields() []sealedField {
	return []sealedField{
		{name: "lines", sealed: &inv.LinesSealed, value: &inv.Lines},
		{name: "bill_to_name", sealed: &inv.NameSealed, text: &inv.BillTo.Name},
		{name: "bill_to_address", sealed: &inv.AddressSealed, text: &inv.BillTo.Address},
		{name: "bill_to_tax_id", sealed: &inv.TaxIDSealed, text: &inv.BillTo.TaxID},
	}
}

// invoiceSealedColumns are the sealed columns Update writes.
var invoiceSealedColumns = []string{"lines_sealed", "bill_to_name_sealed", "bill_to_address_sealed", "bill_to_tax_id_sealed"}

// BillTo is the customer as an invoice must name it.
type BillTo struct {
	Name    string `bun:"-" json:"bill_to_name" validate:"required,max=200"`
	Address string `bun:"-" json:"bill_to_address" validate:"max=1000"`
	TaxID   string `bun:"-" json:"bill_to_tax_id" validate:"max=50"`
}

// Recipient is where an invoice is sent: personal data that is not part of
// the billing record, erased on request while the invoice is kept.
type Recipient struct {
	// ContactID optionally links the recipient to a CRM contact.
	ContactID string `bun:"contact_id,nullzero" json:"contact_id,omitempty" validate:"omitempty,uuid"`
	Email     string `bun:"-" json:"email,omitempty" validate:"omitempty,email,max=254"`
	// Phone is read as a contact's is (national in the Store's default
	// region, WithDefaultRegion) and kept in E.164 form.
	Phone string `bun:"-" json:"phone,omitempty" validate:"omitempty,e164"`
}

// invoiceRecipient is the stored Recipient of an invoice.
type invoiceRecipient struct {
	bun.BaseModel `bun:"table:socialcrm_crm_invoice_recipients,alias:ivr"`
	tenancy.Owned
	InvoiceID string `bun:"invoice_id,pk"`
	Recipient
	// The e-mail address and phone number are sealed, bound to the
	// invoice, beside blind indexes (those of contacts).
	EmailSealed vault.Sealed `bun:"email_sealed"`
	EmailIndex  string       `bun:"email_index,nullzero"`
	PhoneSealed vault.Sealed `bun:"phone_sealed"`
	PhoneIndex  string       `bun:"phone_index,nullzero"`
	CreatedAt   time.Time    `bun:"created_at,notnull"`
}

func (rc *invoiceRecipient) sealedFields() []sealedField {
	return []sealedField{{name: "recipient_email", sealed: &rc.EmailSealed, text: &rc.Email}, {name: "recipient_phone", sealed: &rc.PhoneSealed, text: &rc.Phone}}
}

// InvoiceInput is what Create and Update take. Totals are computed from
// Lines; an amount that does not fit int64 is a *ValidationError (rule
// "overflow").
type InvoiceInput struct {
	Number     string     `json:"number" validate:"required,max=64"`
	ClientID   string     `json:"client_id" validate:"required,uuid"`
	CampaignID string     `json:"campaign_id,omitempty" validate:"omitempty,uuid"`
	Currency   string     `json:"currency" validate:"required,iso4217"`
	Lines      []LineItem `json:"lines" validate:"required,min=1,max=1000,dive"`
	DueAt      *time.Time `json:"due_at,omitempty"`
	BillTo     BillTo     `json:"bill_to"`
	Recipient  *Recipient `json:"recipient,omitempty"`
}

// InvoiceFilter narrows a list of invoices; zero fields do not filter.
type InvoiceFilter struct {
	ClientID string
	Status   InvoiceStatus
}

// Invoices is the repository of invoices.
type Invoices struct{ s *Store }

// Invoices returns the repository of invoices.
func (s *Store) Invoices() *Invoices { return &Invoices{s} }

var invoiceKeys = keyset{name: "invoices", cols: []string{"id"}}

// overflow is the validation error of an amount outside int64.
func overflow(field string) error {
	return invalid(KindInvoice, field, "overflow", "overflows a 64-bit amount in minor units")
}

// prepare validates in and computes its totals into inv.
func (r *Invoices) prepare(in *InvoiceInput, inv *Invoice) error {
	in.Currency = strings.ToUpper(in.Currency)
	in.Number = strings.TrimSpace(in.Number)
	if in.Recipient != nil {
		rc := *in.Recipient // the caller's stays as given
		rc.Phone = r.s.normalizePhone(rc.Phone)
		in.Recipient = &rc
	}
	if err := r.s.check(KindInvoice, in); err != nil {
		return err
	}
	lines := slices.Clone(in.Lines)
	t, err := computeTotals(lines)
	if err != nil {
		return err
	}
	if in.DueAt != nil {
		d := in.DueAt.UTC().Truncate(time.Microsecond)
		in.DueAt = &d
	}
	inv.Number, inv.ClientID, inv.CampaignID, inv.Currency = in.Number, in.ClientID, in.CampaignID, in.Currency
	inv.Lines, inv.Subtotal, inv.Tax, inv.Total = lines, t.Subtotal, t.Tax, t.Total
	inv.DueAt, inv.BillTo = in.DueAt, in.BillTo
	return nil
}

// references checks that the invoice's client (and campaign, of the same
// client) exist.
func (r *Invoices) references(ctx context.Context, tx bun.IDB, in *InvoiceInput) error {
	if _, err := getReferenced[Client](ctx, tx, KindClient, in.ClientID); err != nil {
		return err
	}
	if in.CampaignID != "" {
		c, err := getReferenced[Campaign](ctx, tx, KindCampaign, in.CampaignID)
		if err != nil {
			return err
		}
		if c.ClientID != in.ClientID {
			return invalid(KindInvoice, "campaign_id", "client", "must be a campaign of the same client")
		}
	}
	return nil
}

// writeRecipient stores the invoice's recipient, replacing any (replace
// false: a new invoice, which has none).
func (r *Invoices) writeRecipient(ctx context.Context, tx bun.IDB, id string, rc *Recipient, replace bool) error {
	if replace {
		if _, err := tx.NewDelete().Model((*invoiceRecipient)(nil)).Where("?TableAlias.invoice_id = ?", id).Exec(ctx); err != nil {
			return fmt.Errorf("crm: invoice recipient: %w", err)
		}
	}
	if rc == nil || *rc == (Recipient{}) {
		return nil
	}
	row := invoiceRecipient{InvoiceID: id, Recipient: *rc, CreatedAt: r.s.clock()}
	if err := r.s.sealFields(ctx, KindInvoice, id, row.sealedFields()); err != nil {
		return err
	}
	var err error
	if row.Email != "" {
		if row.EmailIndex, err = r.s.vault.Index(ctx, normalizeEmail(row.Email), indexEmail); err != nil {
			return fmt.Errorf("crm: invoice recipient: %w", err)
		}
	}
	if row.Phone != "" {
		if row.PhoneIndex, err = r.s.vault.Index(ctx, row.Phone, indexPhone); err != nil {
			return fmt.Errorf("crm: invoice recipient: %w", err)
		}
	}
	if _, err := tx.NewInsert().Model(&row).Exec(ctx); err != nil {
		return fmt.Errorf("crm: invoice recipient: %w", err)
	}
	return nil
}

func duplicateNumber(err error, number string) error {
	if dberr.IsUniqueViolation(err) {
		return invalid(KindInvoice, "number", "unique", fmt.Sprintf("%q is already used by another invoice", number))
	}
	return err
}

// Create adds a draft invoice. Its number must be unique in the tenant
// (else a *ValidationError with rule "unique").
func (r *Invoices) Create(ctx context.Context, in InvoiceInput) (Invoice, error) {
	s := r.s
	inv := Invoice{Status: InvoiceDraft}
	if err := r.prepare(&in, &inv); err != nil {
		return Invoice{}, err
	}
	inv.Recipient = in.Recipient // its phone number normalized by prepare
	inv.ID = tenancy.NewID()
	if err := s.sealFields(ctx, KindInvoice, inv.ID, inv.sealedFields()); err != nil {
		return Invoice{}, err
	}
	err := s.run(ctx, writeOf(KindInvoice), func(ctx context.Context, tx bun.Tx, _ access) error {
		if err := r.references(ctx, tx, &in); err != nil {
			return err
		}
		now := s.clock()
		inv.DatedAt = now
		if err := insert(ctx, tx, now, &inv); err != nil {
			return duplicateNumber(fmt.Errorf("crm: create invoice: %w", err), in.Number)
		}
		return r.writeRecipient(ctx, tx, inv.ID, in.Recipient, false)
	})
	if err != nil {
		return Invoice{}, err
	}
	return inv, nil
}

// Get returns an invoice with its recipient; a client-portal member gets
// only its client's.
func (r *Invoices) Get(ctx context.Context, id string) (Invoice, error) {
	var inv Invoice
	err := r.s.run(ctx, readOf(KindInvoice), func(ctx context.Context, tx bun.Tx, a access) error {
		var err error
		if inv, err = getFor[Invoice](ctx, tx, a, KindInvoice, id); err != nil {
			return err
		}
		if err := openRecord(ctx, r.s, KindInvoice, &inv, inv.ID); err != nil {
			return err
		}
		return r.loadRecipient(ctx, tx, &inv)
	})
	return inv, err
}

func (r *Invoices) loadRecipient(ctx context.Context, tx bun.IDB, inv *Invoice) error {
	var row invoiceRecipient
	err := tx.NewSelect().Model(&row).Where("?TableAlias.invoice_id = ?", inv.ID).Scan(ctx)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		inv.Recipient = nil
	case err != nil:
		return fmt.Errorf("crm: invoice recipient: %w", err)
	default:
		if err := r.s.openFields(ctx, KindInvoice, inv.ID, row.sealedFields()); err != nil {
			return err
		}
		inv.Recipient = &row.Recipient
	}
	return nil
}

// Update replaces a draft invoice's number, client, lines, due date and
// parties, if its stored version is still version. An invoice that is no
// longer a draft cannot change (*TransitionError to "draft").
func (r *Invoices) Update(ctx context.Context, id string, version int64, in InvoiceInput) (Invoice, error) {
	return r.write(ctx, id, version, func(ctx context.Context, tx bun.Tx, inv *Invoice) error {
		if inv.Status != InvoiceDraft {
			return &TransitionError{Kind: KindInvoice, ID: id, From: string(inv.Status), To: string(InvoiceDraft)}
		}
		if err := r.prepare(&in, inv); err != nil {
			return err
		}
		if err := r.references(ctx, tx, &in); err != nil {
			return err
		}
		if err := r.s.sealFields(ctx, KindInvoice, inv.ID, inv.sealedFields()); err != nil {
			return err
		}
		if err := update(ctx, r.s, tx, r.s.clock(), KindInvoice, inv, append([]string{"number", "client_id", "campaign_id", "currency",
			"subtotal", "tax", "total", "due_at"}, invoiceSealedColumns...)...); err != nil {
			return duplicateNumber(err, in.Number)
		}
		if err := reassignAttachments(ctx, tx, KindInvoice, id, in.ClientID); err != nil {
			return err
		}
		inv.Recipient = in.Recipient
		return r.writeRecipient(ctx, tx, id, in.Recipient, true)
	})
}

// write reads the invoice id for a change by the tenant's people, fails
// with a *ConflictError unless its stored version is still version, and
// runs change on it, all in one transaction.
func (r *Invoices) write(ctx context.Context, id string, version int64, change func(ctx context.Context, tx bun.Tx, inv *Invoice) error) (Invoice, error) {
	s := r.s
	if err := checkVersion(KindInvoice, version); err != nil {
		return Invoice{}, err
	}
	if err := s.ensureKeys(ctx); err != nil {
		return Invoice{}, err
	}
	var inv Invoice
	err := s.run(ctx, writeOf(KindInvoice), func(ctx context.Context, tx bun.Tx, _ access) error {
		var err error
		if inv, err = get[Invoice](ctx, tx, KindInvoice, id); err != nil {
			return err
		}
		if err := openRecord(ctx, s, KindInvoice, &inv, inv.ID); err != nil {
			return err
		}
		if inv.Version != version {
			return &ConflictError{Kind: KindInvoice, ID: id, Version: version, Current: inv.Version}
		}
		return change(ctx, tx, &inv)
	})
	if err != nil {
		return Invoice{}, err
	}
	return inv, nil
}

// move applies change to the invoice id at version, after checking that
// its status may become to.
func (r *Invoices) move(ctx context.Context, id string, version int64, to InvoiceStatus, change func(inv *Invoice, now time.Time) ([]string, error)) (Invoice, error) {
	return r.write(ctx, id, version, func(ctx context.Context, tx bun.Tx, inv *Invoice) error {
		from := inv.Status
		now := r.s.clock()
		cols, err := change(inv, now)
		if err != nil {
			return err
		}
		again := from == InvoicePartiallyPaid && inv.Status == from // another partial payment
		if !again && !slices.Contains(invoiceMoves[from], inv.Status) {
			return &TransitionError{Kind: KindInvoice, ID: id, From: string(from), To: string(to)}
		}
		if err := update(ctx, r.s, tx, now, KindInvoice, inv, append(cols, "status")...); err != nil {
			return err
		}
		return r.loadRecipient(ctx, tx, inv)
	})
}

// Issue issues a draft invoice: it is dated now (the legal-obligation
// period runs from then) and can no longer change.
func (r *Invoices) Issue(ctx context.Context, id string, version int64) (Invoice, error) {
	return r.move(ctx, id, version, InvoiceIssued, func(inv *Invoice, now time.Time) ([]string, error) {
		inv.Status, inv.IssuedAt, inv.DatedAt = InvoiceIssued, &now, now
		return []string{"issued_at", "dated_at"}, nil
	})
}

// RecordPayment adds a payment of amount (minor units, positive, at most
// what is still owed) to an issued, partially paid or overdue invoice, which
// becomes partially_paid or paid.
func (r *Invoices) RecordPayment(ctx context.Context, id string, version int64, amount int64) (Invoice, error) {
	if amount <= 0 {
		return Invoice{}, invalid(KindInvoice, "amount", "gt", "must be > 0")
	}
	return r.move(ctx, id, version, InvoicePaid, func(inv *Invoice, _ time.Time) ([]string, error) {
		if inv.Status == InvoiceDraft || inv.Status == InvoiceVoid || inv.Status == InvoicePaid {
			return nil, &TransitionError{Kind: KindInvoice, ID: inv.ID, From: string(inv.Status), To: string(InvoicePaid)}
		}
		if amount > inv.Total-inv.Paid {
			return nil, invalid(KindInvoice, "amount", "lte", fmt.Sprintf("must be at most the %d still owed", inv.Total-inv.Paid))
		}
		inv.Paid += amount
		inv.Status = InvoicePartiallyPaid
		if inv.Paid == inv.Total {
			inv.Status = InvoicePaid
		}
		return []string{"paid"}, nil
	})
}

// Void cancels an invoice that is not paid. A voided invoice is kept like
// any other billing record.
func (r *Invoices) Void(ctx context.Context, id string, version int64) (Invoice, error) {
	return r.move(ctx, id, version, InvoiceVoid, func(inv *Invoice, _ time.Time) ([]string, error) {
		inv.Status = InvoiceVoid
		return nil, nil
	})
}

// MarkOverdue marks every issued or partially paid invoice of the context's
// tenant whose due date is before now as overdue, and returns how many it
// marked. It is a plain function for any scheduler to call.
func (r *Invoices) MarkOverdue(ctx context.Context, now time.Time) (int64, error) {
	s := r.s
	var n int64
	err := s.run(ctx, writeOf(KindInvoice), func(ctx context.Context, tx bun.Tx, _ access) error {
		res, err := tx.NewUpdate().Model((*Invoice)(nil)).
			Set("status = ?", InvoiceOverdue).Set("version = version + 1").Set("updated_at = ?", s.clock()).
			Where("?TableAlias.status IN (?)", bun.In([]InvoiceStatus{InvoiceIssued, InvoicePartiallyPaid})).
			Where("?TableAlias.due_at < ?", now.UTC()).Exec(ctx)
		if err != nil {
			return fmt.Errorf("crm: mark overdue: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// Delete removes a draft invoice; any other is a billing record and cannot
// be deleted (ErrInUse): void it instead.
func (r *Invoices) Delete(ctx context.Context, id string) error {
	s := r.s
	var gone []string
	err := s.run(ctx, writeOf(KindInvoice), func(ctx context.Context, tx bun.Tx, _ access) error {
		inv, err := get[Invoice](ctx, tx, KindInvoice, id)
		if err != nil {
			return err
		}
		if inv.Status != InvoiceDraft {
			return fmt.Errorf("%w: invoice %s is %s; void it instead", ErrInUse, id, inv.Status)
		}
		if err := r.writeRecipient(ctx, tx, id, nil, true); err != nil {
			return err
		}
		if err := deleteIn[Invoice](ctx, s, tx, KindInvoice, id); err != nil {
			return err
		}
		gone, err = s.deleteDependents(ctx, tx, KindInvoice, []string{id})
		return err
	})
	if err != nil {
		return err
	}
	return s.dropBytes(ctx, gone)
}

// List returns a page of invoices in creation order, without recipients; a
// client-portal member sees only its client's.
func (r *Invoices) List(ctx context.Context, f InvoiceFilter, o ListOptions) (Page[Invoice], error) {
	return listShared[Invoice](ctx, r.s, KindInvoice, invoiceKeys, o, f.ClientID, string(f.Status))
}

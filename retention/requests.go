package retention

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/tenancy"
)

// RequestKind is the right a data subject exercises.
type RequestKind string

// Request kinds (GDPR articles 15–21).
const (
	KindAccess        RequestKind = "access"
	KindExport        RequestKind = "export"
	KindErasure       RequestKind = "erasure"
	KindRectification RequestKind = "rectification"
	KindRestriction   RequestKind = "restriction"
	KindObjection     RequestKind = "objection"
)

func (k RequestKind) valid() bool {
	switch k {
	case KindAccess, KindExport, KindErasure, KindRectification, KindRestriction, KindObjection:
		return true
	}
	return false
}

// Verification is the state of the check of a requester's identity.
type Verification string

// Verification states.
const (
	VerificationPending  Verification = "pending"
	VerificationVerified Verification = "verified"
	VerificationFailed   Verification = "failed"
)

// RequestStatus is where a request is.
type RequestStatus string

// Request statuses.
const (
	StatusOpen      RequestStatus = "open"
	StatusCompleted RequestStatus = "completed"
	StatusRejected  RequestStatus = "rejected"
	// StatusNoDataFound closes a request whose identifiers, resolved,
	// found no data of the subject: nothing was erased or exported, and
	// the requester should be told so (it may be the wrong identifier).
	StatusNoDataFound RequestStatus = "no_data_found"
)

func (s RequestStatus) valid() bool {
	switch s {
	case StatusOpen, StatusCompleted, StatusRejected, StatusNoDataFound:
		return true
	}
	return false
}

// Outcome is what carrying a request out found.
type Outcome string

// Outcomes. The zero value means the request was not carried out yet.
const (
	// OutcomeDataFound: the resolved identifiers reached rows of the
	// subject in at least one category.
	OutcomeDataFound Outcome = "data_found"
	// OutcomeNoDataFound: no category held a row of the subject.
	OutcomeNoDataFound Outcome = "no_data_found"
)

// Request is a data-subject request. Submit creates it; its Subject maps
// identifier kinds (as used in Category.Subject and by resolvers: "email",
// "contact_id") to the subject's identifiers. With WithIdentifierProtection
// the identifiers are stored only sealed, beside a keyed hash of each
// (for Match); Get, Erase and Export open them, and a plain read of the
// table sees an empty Subject and the kinds (IdentifierKinds).
type Request struct {
	bun.BaseModel `bun:"table:socialcrm_retention_requests,alias:rq"`
	tenancy.Owned

	ID         string            `bun:"id,pk" json:"id"`
	Kind       RequestKind       `bun:"kind,notnull" json:"kind"`
	Subject    map[string]string `bun:"subject,type:text,notnull" json:"subject"`
	ReceivedAt time.Time         `bun:"received_at,notnull" json:"received_at"`
	DueAt      time.Time         `bun:"due_at,notnull" json:"due_at"`
	// ExtensionReason is set when the deadline was extended (once). Under
	// WithIdentifierProtection it is stored sealed in
	// ExtensionReasonSealed (bound to "request-extension:" and the
	// request's id), and stored empty: staff write free text, which may
	// name people.
	ExtensionReason       string        `bun:"extension_reason,notnull" json:"extension_reason,omitempty"`
	ExtensionReasonSealed []byte        `bun:"extension_reason_sealed" json:"-"`
	Verification          Verification  `bun:"verification,notnull" json:"verification"`
	Status                RequestStatus `bun:"status,notnull" json:"status"`
	CompletedAt           *time.Time    `bun:"completed_at" json:"completed_at,omitempty"`
	// Outcome is set by Erase and Export: whether the subject's data was
	// found.
	Outcome Outcome `bun:"outcome,notnull" json:"outcome,omitempty"`
	// Erased counts, per category, the rows erased for this request over
	// every run of Erase (an interrupted erasure resumed counts whole).
	// Each batch adds to it in its own transaction.
	Erased map[string]int64 `bun:"erased,type:text,notnull" json:"erased,omitempty"`
	// SubjectSealed is Subject sealed, and SubjectHashes a keyed hash of
	// each identifier by kind, when the engine protects identifiers.
	SubjectSealed []byte            `bun:"subject_sealed" json:"-"`
	SubjectHashes map[string]string `bun:"subject_hashes,type:text,notnull" json:"-"`
	// IdentifierKinds are the kinds of the request's identifiers, sorted
	// (filled when the request is read).
	IdentifierKinds []string `bun:"-" json:"identifier_kinds"`
}

var _ bun.AfterScanRowHook = (*Request)(nil)

// AfterScanRow fills IdentifierKinds.
func (r *Request) AfterScanRow(context.Context) error {
	r.IdentifierKinds = r.kinds()
	return nil
}

// kinds returns the kinds of the request's identifiers.
func (r *Request) kinds() []string {
	if len(r.Subject) > 0 {
		return sortedKeys(r.Subject)
	}
	return sortedKeys(r.SubjectHashes)
}

// Submit records a request received now in the context's tenant. Kind and
// a non-empty Subject are required; an identifier kind that no resolver
// and no category knows is refused with an *UnknownKindError listing the
// known kinds; ReceivedAt defaults to now, DueAt to
// ReceivedAt plus the engine's request deadline (30 days by default);
// Verification starts pending and Status open. Owners, admins and staff
// may record requests (tenancy.ErrForbidden otherwise).
func (e *Engine) Submit(ctx context.Context, r Request) (Request, error) {
	if err := requestStaff(ctx); err != nil {
		return Request{}, err
	}
	if !r.Kind.valid() {
		return Request{}, &ValidationError{Field: "Kind", Reason: fmt.Sprintf("unknown kind %q", r.Kind)}
	}
	if len(r.Subject) == 0 {
		return Request{}, &ValidationError{Field: "Subject", Reason: "at least one identifier required"}
	}
	for k, v := range r.Subject {
		if k == "" || strings.TrimSpace(v) == "" {
			return Request{}, &ValidationError{Field: "Subject", Reason: "empty identifier"}
		}
	}
	if err := e.checkKinds(r.Subject); err != nil {
		return Request{}, err
	}
	r.ID = tenancy.NewID()
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = e.clock()
	}
	r.ReceivedAt = r.ReceivedAt.UTC().Truncate(time.Microsecond)
	r.DueAt = r.ReceivedAt.Add(e.requestDue)
	r.ExtensionReason, r.Verification, r.Status, r.CompletedAt = "", VerificationPending, StatusOpen, nil
	r.Outcome, r.Erased = "", map[string]int64{}
	stored, err := e.protect(ctx, r)
	if err != nil {
		return Request{}, err
	}
	r.SubjectSealed, r.SubjectHashes, r.IdentifierKinds = stored.SubjectSealed, stored.SubjectHashes, r.kinds()
	err = tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(&stored).Exec(ctx); err != nil {
			return fmt.Errorf("retention: submit request: %w", err)
		}
		r.TenantID = stored.TenantID // set by the insert
		return e.auditTx(ctx, tx, "retention.request_received", r, nil)
	})
	if err != nil {
		return Request{}, err
	}
	return r, nil
}

func (e *Engine) auditTx(ctx context.Context, tx bun.IDB, action string, r Request, md map[string]string) error {
	log, err := tenancy.NewAuditLog(tx, tenancy.WithClock(e.now), tenancy.WithAuditKeys(e.audit.Keys()))
	if err != nil {
		return err
	}
	if md == nil {
		md = map[string]string{}
	}
	md["kind"] = string(r.Kind)
	md["due"] = window(r.DueAt)
	// The subject's identifiers are not copied into the log, only their kinds.
	md["identifiers"] = strings.Join(r.kinds(), ",")
	_, err = log.Append(ctx, tenancy.AuditEvent{Action: action, Target: "request:" + r.ID, Metadata: md})
	return err
}

// RequestFilter selects the requests Requests lists; its zero value
// selects every request.
type RequestFilter struct {
	// Status, when set, lists only the requests in that status.
	Status RequestStatus `json:"status,omitempty"`
	// Kind, when set, lists only the requests of that kind.
	Kind RequestKind `json:"kind,omitempty"`
}

// requestCursor is the sort key of the last request of a page: open
// requests rank 0, the others 1, then the deadline and the id.
type requestCursor struct {
	Rank  int       `json:"r"`
	DueAt time.Time `json:"d"`
	ID    string    `json:"i"`
}

// requestRank orders open requests before the others.
const requestRank = "CASE WHEN ?TableAlias.status = 'open' THEN 0 ELSE 1 END"

// Requests lists a page of the context tenant's requests matching f: the
// open ones first, each group by deadline (then id). The identifiers are
// not opened: IdentifierKinds names their kinds, and with
// WithIdentifierProtection Subject is empty (Get opens them). Owners,
// admins and staff may list requests; a malformed or foreign cursor, a
// limit outside 0..MaxLimit or an unknown status or kind is a
// *ValidationError.
func (e *Engine) Requests(ctx context.Context, f RequestFilter, o ListOptions) (Page[Request], error) {
	if err := tenancy.Require(ctx, tenancy.RoleOwner, tenancy.RoleAdmin, tenancy.RoleStaff); err != nil {
		return Page[Request]{}, err
	}
	switch {
	case o.Limit < 0 || o.Limit > MaxLimit:
		return Page[Request]{}, &ValidationError{Field: "Limit", Reason: fmt.Sprintf("must be between 0 and %d", MaxLimit)}
	case f.Kind != "" && !f.Kind.valid():
		return Page[Request]{}, &ValidationError{Field: "Kind", Reason: fmt.Sprintf("unknown kind %q", f.Kind)}
	case f.Status != "" && !f.Status.valid():
		return Page[Request]{}, &ValidationError{Field: "Status", Reason: fmt.Sprintf("unknown status %q", f.Status)}
	}
	var after *requestCursor
	if o.Cursor != "" {
		c, err := decodeRequestCursor(o.Cursor)
		if err != nil {
			return Page[Request]{}, err
		}
		after = &c
	}
	items := []Request{}
	err := tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		q := tx.NewSelect().Model(&items)
		if f.Status != "" {
			q = q.Where("?TableAlias.status = ?", f.Status)
		}
		if f.Kind != "" {
			q = q.Where("?TableAlias.kind = ?", f.Kind)
		}
		if after != nil {
			// A row-value comparison, on both databases.
			q = q.Where("("+requestRank+", ?TableAlias.due_at, ?TableAlias.id) > (?, ?, ?)", after.Rank, after.DueAt, after.ID)
		}
		return q.OrderExpr(requestRank).OrderExpr("?TableAlias.due_at").OrderExpr("?TableAlias.id").
			Limit(int64(o.limit() + 1)).Scan(ctx)
	})
	if err != nil {
		return Page[Request]{}, fmt.Errorf("retention: list requests: %w", err)
	}
	p := Page[Request]{Items: items}
	if len(items) > o.limit() {
		p.Items = items[:o.limit()]
		last := p.Items[len(p.Items)-1]
		c := requestCursor{Rank: 1, DueAt: last.DueAt.UTC(), ID: last.ID}
		if last.Status == StatusOpen {
			c.Rank = 0
		}
		if p.NextCursor, err = encodeRequestCursor(c); err != nil {
			return Page[Request]{}, err
		}
	}
	for i := range p.Items {
		p.Items[i].utc()
		if err := e.revealExtension(ctx, &p.Items[i]); err != nil {
			return Page[Request]{}, err
		}
	}
	return p, nil
}

func encodeRequestCursor(c requestCursor) (string, error) {
	raw, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("retention: cursor: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

func decodeRequestCursor(s string) (requestCursor, error) {
	bad := &ValidationError{Field: "Cursor", Reason: "is not a cursor of this list"}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return requestCursor{}, bad
	}
	var c requestCursor
	if err := json.Unmarshal(raw, &c); err != nil || c.ID == "" || c.DueAt.IsZero() || (c.Rank != 0 && c.Rank != 1) {
		return requestCursor{}, bad
	}
	c.DueAt = c.DueAt.UTC()
	return c, nil
}

// Get returns the context tenant's request id, its identifiers opened.
// Owners, admins and staff may read requests.
func (e *Engine) Get(ctx context.Context, id string) (Request, error) {
	if err := requestStaff(ctx); err != nil {
		return Request{}, err
	}
	var r Request
	err := tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		return e.get(ctx, tx, id, &r)
	})
	if err != nil {
		return r, err
	}
	// Outside the transaction: opening may load the tenant's keys.
	return r, e.reveal(ctx, &r)
}

func (e *Engine) get(ctx context.Context, tx bun.IDB, id string, r *Request) error {
	err := tx.NewSelect().Model(r).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: request %s", ErrNotFound, id)
	}
	if err != nil {
		return fmt.Errorf("retention: get request: %w", err)
	}
	r.utc()
	return nil
}

// utc reports times in UTC whatever zone the driver read them in.
func (r *Request) utc() {
	r.ReceivedAt, r.DueAt = r.ReceivedAt.UTC(), r.DueAt.UTC()
	if r.CompletedAt != nil {
		t := r.CompletedAt.UTC()
		r.CompletedAt = &t
	}
}

// update loads open request id, lets change modify it, and saves it with
// an audit entry, in one transaction.
func (e *Engine) update(ctx context.Context, id, action string, change func(r *Request) (map[string]string, error)) (Request, error) {
	return e.updateOpen(ctx, id, action, true, change)
}

// updateOpen is update; mustBeOpen false also changes a closed request.
func (e *Engine) updateOpen(ctx context.Context, id, action string, mustBeOpen bool, change func(r *Request) (map[string]string, error)) (Request, error) {
	var r Request
	err := tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := e.get(ctx, tx, id, &r); err != nil {
			return err
		}
		if mustBeOpen && r.Status != StatusOpen {
			return ErrClosed
		}
		md, err := change(&r)
		if err != nil {
			return err
		}
		// Every column but the identifiers, which Submit (or
		// ProtectIdentifiers) wrote as they are to be kept.
		q := tx.NewUpdate().Model(&r).ExcludeColumn("subject", "subject_sealed", "subject_hashes").WherePK()
		if mustBeOpen {
			// The read above takes no lock: two runs of one request
			// (an erasure asked of two replicas at once, or with a
			// resumption job) both read it open. The update finds it
			// open only for the first; PostgreSQL re-reads the row the
			// other committed, and the second gets ErrClosed, so a
			// request completes (and is audited) once.
			q = q.Where("status = ?", StatusOpen)
		}
		res, err := q.Exec(ctx)
		if err != nil {
			return fmt.Errorf("retention: update request: %w", err)
		}
		if mustBeOpen {
			if n, err := res.RowsAffected(); err == nil && n != 1 {
				return ErrClosed
			}
		}
		return e.auditTx(ctx, tx, action, r, md)
	})
	if err != nil {
		return r, err
	}
	return r, e.reveal(ctx, &r)
}

// Extend moves an open request's deadline by d, once, for a stated reason
// (GDPR allows two further months for complex requests). A second
// extension fails with ErrAlreadyExtended.
func (e *Engine) Extend(ctx context.Context, id string, d time.Duration, reason string) (Request, error) {
	if err := requestStaff(ctx); err != nil {
		return Request{}, err
	}
	if d <= 0 {
		return Request{}, &ValidationError{Field: "extension", Reason: "must be positive"}
	}
	if strings.TrimSpace(reason) == "" {
		return Request{}, &ValidationError{Field: "reason", Reason: "required"}
	}
	// Sealed outside the engine's transaction (opening may load keys).
	var sealed []byte
	if e.protection != nil {
		var err error
		if sealed, err = e.protection.Seal(ctx, extensionRecord(id), []byte(reason)); err != nil {
			return Request{}, fmt.Errorf("retention: seal extension reason: %w", err)
		}
	}
	// The audit entry says the deadline moved, not why: the reason is
	// free text, kept (sealed) with the request only.
	return e.update(ctx, id, "retention.request_extended", func(r *Request) (map[string]string, error) {
		if r.ExtensionReason != "" || len(r.ExtensionReasonSealed) > 0 {
			return nil, ErrAlreadyExtended
		}
		r.DueAt = r.DueAt.Add(d)
		if sealed != nil {
			r.ExtensionReasonSealed = sealed
		} else {
			r.ExtensionReason = reason
		}
		return map[string]string{"extension": d.String()}, nil
	})
}

// extensionRecord is the record a request's sealed extension reason is
// bound to.
func extensionRecord(id string) string { return "request-extension:" + id }

// revealExtension opens r's sealed extension reason into its
// ExtensionReason.
func (e *Engine) revealExtension(ctx context.Context, r *Request) error {
	if len(r.ExtensionReasonSealed) == 0 {
		return nil
	}
	if e.protection == nil {
		return fmt.Errorf("retention: request %s: its extension reason is sealed and the engine has no IdentifierProtection", r.ID)
	}
	plain, err := e.protection.Open(ctx, extensionRecord(r.ID), r.ExtensionReasonSealed)
	if err != nil {
		return fmt.Errorf("retention: open extension reason of request %s: %w", r.ID, err)
	}
	r.ExtensionReason = string(plain)
	return nil
}

// SetVerification records the outcome of the identity check. A verified
// erasure runs by itself (ResumeErasures), so only an owner or admin (or
// the system) may record it, as only they may Erase.
func (e *Engine) SetVerification(ctx context.Context, id string, v Verification) (Request, error) {
	if err := tenancy.Require(ctx, tenancy.RoleOwner, tenancy.RoleAdmin); err != nil {
		return Request{}, err
	}
	switch v {
	case VerificationPending, VerificationVerified, VerificationFailed:
	default:
		return Request{}, &ValidationError{Field: "Verification", Reason: fmt.Sprintf("unknown state %q", v)}
	}
	return e.update(ctx, id, "retention.request_verification", func(r *Request) (map[string]string, error) {
		r.Verification = v
		return map[string]string{"verification": string(v)}, nil
	})
}

// requestStaff refuses, with tenancy.ErrForbidden, a principal that may
// not handle data-subject requests: only owners, admins and staff (and
// the system) may; a client or creator member sees none.
func requestStaff(ctx context.Context) error {
	return tenancy.Require(ctx, tenancy.RoleOwner, tenancy.RoleAdmin, tenancy.RoleStaff)
}

// Close completes or rejects an open request (for kinds the engine does
// not carry out itself: rectification, restriction, objection; and for
// access and export once the export was delivered). Completing a request
// whose export found no data closes it as StatusNoDataFound.
func (e *Engine) Close(ctx context.Context, id string, s RequestStatus) (Request, error) {
	if err := requestStaff(ctx); err != nil {
		return Request{}, err
	}
	if s != StatusCompleted && s != StatusRejected {
		return Request{}, &ValidationError{Field: "Status", Reason: "must be completed or rejected"}
	}
	return e.update(ctx, id, "retention.request_"+string(s), func(r *Request) (map[string]string, error) {
		now := e.clock()
		r.Status, r.CompletedAt = s, &now
		if s == StatusCompleted && r.Outcome == OutcomeNoDataFound {
			r.Status = StatusNoDataFound
		}
		return nil, nil
	})
}

// Overdue lists open requests due before now, oldest deadline first: the
// context tenant's, or every tenant's when called by the system principal
// without a tenant.
func (e *Engine) Overdue(ctx context.Context, now time.Time) ([]Request, error) {
	now = now.UTC().Truncate(time.Microsecond)
	list := func(ctx context.Context) ([]Request, error) {
		var rs []Request
		err := tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
			return tx.NewSelect().Model(&rs).Where("status = ?", StatusOpen).Where("due_at < ?", now).Order("due_at", "id").Scan(ctx)
		})
		if err != nil {
			return nil, fmt.Errorf("retention: overdue requests: %w", err)
		}
		for i := range rs {
			rs[i].utc()
		}
		return rs, nil
	}
	if p, ok := tenancy.FromContext(ctx); ok && p.IsSystem() && p.TenantID == "" {
		tenants, err := e.store.Tenants(ctx, tenancy.TenantFilter{})
		if err != nil {
			return nil, err
		}
		var all []Request
		for _, t := range tenants {
			tctx, err := tenancy.AsTenant(ctx, t.ID)
			if err != nil {
				return nil, err
			}
			rs, err := list(tctx)
			if err != nil {
				return nil, err
			}
			all = append(all, rs...)
		}
		return all, nil
	}
	return list(ctx)
}

// Receipt is what Erase did for one request.
type Receipt struct {
	RequestID string    `json:"request_id"`
	Tenant    string    `json:"tenant"`
	At        time.Time `json:"at"`
	// Searched counts the subject keys searched by kind, after resolution
	// (the identifiers given and what they led to); never their values.
	Searched map[string]int `json:"searched"`
	// Outcome says whether any row of the subject was found.
	Outcome Outcome `json:"outcome"`
	// Categories lists every category searched, in erasure order, with
	// the rows erased in it over every run of the request's erasure, and
	// the rows still held or kept.
	Categories []CategoryReceipt `json:"categories"`
}

// Erased returns the rows erased in every category.
func (r Receipt) Erased() int64 {
	var n int64
	for _, c := range r.Categories {
		n += c.Erased
	}
	return n
}

// ErrSubjectChanging is returned by Erase when rows about the subject kept
// appearing while it ran: every pass over the categories, up to
// ErasePasses, found new ones once it was done (an application still
// writing about the person). The request stays open, counting what was
// erased; call Erase again once the writes stopped.
var ErrSubjectChanging = errors.New("retention: rows about the subject kept appearing during the erasure")

// Erase carries out an erasure request. It resolves the request's
// identifiers to the subject's keys (Resolve: an e-mail address leads to
// every contact holding it, their conversations, and so on), then in every
// category that can find the subject by one of those keys it runs the
// category's BeforeErase hook and erase action in batches, sparing rows
// under a legal hold and rows a legal-obligation rule still keeps, writes
// a receipt per batch to the audit log (action "retention.erased") and adds
// the batch's count to the request's Erased counts, in the batch's
// transaction. It then resolves the subject again from every key found and
// runs once more the categories where rows it would erase are left
// (written during the run), until a check finds none; after ErasePasses
// passes that each left rows it returns ErrSubjectChanging, the request
// still open. The check searches by every key found so far (an e-mail
// address keeps finding contacts created with it after the contact the
// request named is gone); a row committed after the last check (a message
// the person sends once the erasure is done) is not the erasure's: a new
// request reaches it. When everything is done the request is completed — or
// closed as StatusNoDataFound when no run of it found a row — with an
// audit entry carrying the totals of every run. The request must be open
// and verified (ErrNotVerified); its kind must be erasure. The principal
// must be an owner or admin of the tenant, or the system acting on it.
// Erase is idempotent: after an interruption, call it again (or let
// ResumeErasures do it); the receipt then counts every run. Runs of one
// request do not overlap, in one process or across replicas on
// PostgreSQL: a second Erase waits for the run in progress and then, like
// any Erase of a closed request, returns ErrClosed; Receipt gives what
// the completed request records.
func (e *Engine) Erase(ctx context.Context, id string) (Receipt, error) {
	if err := tenancy.Require(ctx, tenancy.RoleOwner, tenancy.RoleAdmin); err != nil {
		return Receipt{}, err
	}
	r, err := e.Get(ctx, id)
	if err != nil {
		return Receipt{}, err
	}
	switch {
	case r.Kind != KindErasure:
		return Receipt{}, &ValidationError{Field: "Kind", Reason: "Erase needs an erasure request"}
	case r.Status != StatusOpen:
		return Receipt{}, ErrClosed
	case r.Verification != VerificationVerified:
		return Receipt{}, ErrNotVerified
	}
	// One run of a request at a time, across replicas: two runs that met
	// (an erasure asked of two replicas, or while ResumeErasures carries
	// it out) deleted the same rows at once — on PostgreSQL the two could
	// deadlock, and one failed. The second waits for the first and then
	// finds the request closed.
	release, err := e.claimRequest(ctx, id)
	if err != nil {
		return Receipt{}, err
	}
	defer release()
	if r, err = e.Get(ctx, id); err != nil {
		return Receipt{}, err
	}
	if r.Status != StatusOpen {
		return Receipt{}, ErrClosed
	}
	if err := e.drainPending(ctx); err != nil {
		return Receipt{}, err
	}
	keys, err := e.Resolve(ctx, r.Subject)
	if err != nil {
		return Receipt{}, err
	}
	subj, err := e.subjectOf(ctx, keys)
	if err != nil {
		return Receipt{}, err
	}
	now := e.clock()
	rcpt := Receipt{RequestID: r.ID, Tenant: r.TenantID, At: now, Searched: keyCounts(keys)}
	hs, err := e.holds(ctx, r.TenantID)
	if err != nil {
		return rcpt, err
	}
	// Pass after pass: rows written about the subject while a pass ran
	// (in a category it had done, or a new contact with her address) are
	// found by the check that ends it, and erased by the next pass.
	cats := e.Categories()
	rcs := map[string]CategoryReceipt{}
	todo := cats
	for pass := 1; ; pass++ {
		for _, c := range todo {
			j, ok, err := e.erasureJob(ctx, c, subj, r.ID, r.TenantID, now, true)
			if err != nil {
				return rcpt.ordered(cats, rcs), err
			}
			if !ok {
				continue
			}
			if err := e.run(ctx, j, hs); err != nil {
				return rcpt.ordered(cats, rcs), err
			}
			// A later pass searches by every key an earlier one did, and
			// counts every row still held or kept: its counts replace
			// those of the pass before; the rows erased add up.
			rc := *j.rc
			rc.Erased += rcs[c.Name].Erased
			rcs[c.Name] = rc
		}
		if keys, err = e.resolveFrom(ctx, keys); err != nil {
			return rcpt.ordered(cats, rcs), err
		}
		rcpt.Searched = keyCounts(keys)
		if subj, err = e.subjectOf(ctx, keys); err != nil {
			return rcpt.ordered(cats, rcs), err
		}
		if hs, err = e.holds(ctx, r.TenantID); err != nil {
			return rcpt.ordered(cats, rcs), err
		}
		if todo, err = e.eraseLeft(ctx, cats, subj, r.ID, r.TenantID, now, hs); err != nil {
			return rcpt.ordered(cats, rcs), err
		}
		if len(todo) == 0 {
			break
		}
		if pass == ErasePasses {
			return rcpt.ordered(cats, rcs), fmt.Errorf("%w: %d passes, rows left in %s", ErrSubjectChanging, pass, categoryNames(todo))
		}
	}
	// What outlives the erasure (Category.Pending) is said, not hidden.
	if err := e.pending(ctx, cats, keys, r.TenantID, rcs); err != nil {
		return rcpt.ordered(cats, rcs), err
	}
	rcpt = rcpt.ordered(cats, rcs)
	_, err = e.update(ctx, r.ID, "retention.request_completed", func(r *Request) (map[string]string, error) {
		// The counts of every run, persisted batch by batch — with those
		// of categories only a hook reached (CountErased).
		searched := map[string]bool{}
		for _, rc := range rcpt.Categories {
			searched[rc.Category] = true
		}
		for _, c := range cats {
			if n := r.Erased[c.Name]; n > 0 && !searched[c.Name] {
				rcs[c.Name] = CategoryReceipt{Tenant: r.TenantID, Category: c.Name, Policy: e.policy.Name, Rule: "erasure request"}
			}
		}
		rcpt = rcpt.ordered(cats, rcs)
		var erased, held, kept, pending int64
		for i := range rcpt.Categories {
			rc := &rcpt.Categories[i]
			rc.Erased = r.Erased[rc.Category]
			erased, held, kept, pending = erased+rc.Erased, held+rc.Held, kept+rc.Kept, pending+rc.Pending
		}
		r.Status, r.CompletedAt, r.Outcome = StatusCompleted, &now, OutcomeDataFound
		if erased+held+kept == 0 {
			r.Status, r.Outcome = StatusNoDataFound, OutcomeNoDataFound
		}
		rcpt.Outcome = r.Outcome
		meta := map[string]string{"erased": fmt.Sprint(erased), "held": fmt.Sprint(held), "kept": fmt.Sprint(kept),
			"outcome": string(r.Outcome), "searched": searchedKinds(keys)}
		if pending > 0 {
			meta["pending"] = fmt.Sprint(pending)
		}
		return meta, nil
	})
	if err == nil {
		err = e.flushLog(ctx) // walflush.go
	}
	return rcpt, err
}

// pending sets, in rcs, the Pending count of each category of cats that
// still holds work about the subject of keys (Category.Pending), adding a
// receipt for a category that has none.
func (e *Engine) pending(ctx context.Context, cats []Category, keys Keys, tid string, rcs map[string]CategoryReceipt) error {
	for _, c := range cats {
		if c.Pending == nil {
			continue
		}
		n, err := c.Pending(ctx, keys)
		if err != nil {
			return fmt.Errorf("retention: pending work of %s: %w", c.Name, err)
		}
		rc, ok := rcs[c.Name]
		if n == 0 {
			if ok {
				rc.Pending = 0
				rcs[c.Name] = rc
			}
			continue
		}
		if !ok {
			rc = CategoryReceipt{Tenant: tid, Category: c.Name, Policy: e.policy.Name, Rule: "erasure request"}
		}
		rc.Pending = n
		rcs[c.Name] = rc
	}
	return nil
}

// ErasePasses bounds the passes of one Erase over the categories: a pass
// that leaves rows about the subject (written while it ran) is followed
// by another, and after this many Erase stops with ErrSubjectChanging.
const ErasePasses = 3

// erasureJob is the erasure of the subject (by keys) in category c for
// request id of tenant tid at now: the rows matching a key, less those
// the category spares and, under a keep rule, those still within its
// period. With count, its receipt counts the rows so spared and kept. ok
// is false when no key can find the subject in c.
func (e *Engine) erasureJob(ctx context.Context, c Category, keys subjectKeys, id, tid string, now time.Time, count bool) (j *job, ok bool, err error) {
	cond, args, ok := subjectMatch(e.db.Dialect().Name(), c, keys, tid)
	if !ok {
		return nil, false, nil
	}
	if ok, err := e.hasEvents(ctx, c, tid, cond, args); err != nil || !ok {
		return nil, false, err
	}
	rule, _ := e.policy.rule(c.Name)
	rc := &CategoryReceipt{Tenant: tid, Category: c.Name, Policy: e.policy.Name, Rule: "erasure request"}
	j = &job{cat: c, tid: tid, action: "retention.erased", rc: rc, meta: map[string]string{"request": id}, request: id}
	j.where(cond, args...)
	// counted counts j's rows when count is set.
	counted := func() (int64, error) {
		if !count {
			return 0, nil
		}
		return e.count(ctx, c, tid, j.conds, j.args)
	}
	if c.Spare.Where != "" {
		found, err := counted()
		if err != nil {
			return nil, false, err
		}
		spare, sargs := bind(c.Spare.Where, "", tid)
		j.where("NOT ("+spare+")", sargs...)
		left, err := counted()
		if err != nil {
			return nil, false, err
		}
		if found > left {
			rc.Kept, rc.Rule = found-left, "erasure request; spared: "+c.Spare.Reason
		}
	}
	if rule.Keep {
		cutoff := now.Add(-rule.Period)
		total, err := counted()
		if err != nil {
			return nil, false, err
		}
		j.where("r."+c.Time+" <= ?", cutoff)
		free, err := counted()
		if err != nil {
			return nil, false, err
		}
		rc.Kept, rc.Window, rc.Rule = rc.Kept+total-free, window(cutoff), rc.Rule+"; "+rule.String()
	}
	return j, true, nil
}

// eraseLeft returns the categories of cats, in their order, that still
// hold rows of the subject (by keys) that the erasure would erase: not
// spared, kept, held (under hs) or already anonymized.
func (e *Engine) eraseLeft(ctx context.Context, cats []Category, keys subjectKeys, id, tid string, now time.Time, hs holdState) ([]Category, error) {
	if hs.tenant {
		return nil, nil // everything is held
	}
	var left []Category
	for _, c := range cats {
		j, ok, err := e.erasureJob(ctx, c, keys, id, tid, now, false)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if n, a := notAnonymized(c); n != "" {
			j.where(n, a...)
		}
		if hs.any {
			ex, exArgs := exclusions(e.db.Dialect().Name(), c, tid, hs)
			j.where(ex, exArgs...)
		}
		n, err := e.count(ctx, c, tid, j.conds, j.args)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			left = append(left, c)
		}
	}
	return left, nil
}

// ordered returns r with the receipts of rcs as its categories, in the
// order of cats.
func (r Receipt) ordered(cats []Category, rcs map[string]CategoryReceipt) Receipt {
	r.Categories = nil
	for _, c := range cats {
		if rc, ok := rcs[c.Name]; ok {
			r.Categories = append(r.Categories, rc)
		}
	}
	return r
}

// categoryNames joins the names of cats.
func categoryNames(cats []Category) string {
	names := make([]string, len(cats))
	for i, c := range cats {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// keyCounts counts keys by kind.
func keyCounts(keys Keys) map[string]int {
	out := make(map[string]int, len(keys))
	for k, vs := range keys {
		out[k] = len(vs)
	}
	return out
}

// searchedKinds names the kinds of keys, with their counts, for an audit
// entry: "contact_id:2,email:1".
func searchedKinds(keys Keys) string {
	var parts []string
	for _, k := range keys.Kinds() {
		parts = append(parts, fmt.Sprintf("%s:%d", k, len(keys[k])))
	}
	return strings.Join(parts, ",")
}

// addErased adds n rows erased in category cat to request id's counts,
// inside the transaction of the batch that erased them.
func (e *Engine) addErased(ctx context.Context, tx bun.Tx, id, cat string, n int64) error {
	var r Request
	q := tx.NewSelect().Model(&r).Where("id = ?", id)
	if tx.Dialect().Name() == dialect.PG {
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx); err != nil {
		return fmt.Errorf("retention: count erased rows: %w", err)
	}
	if r.Erased == nil {
		r.Erased = map[string]int64{}
	}
	r.Erased[cat] += n
	if _, err := tx.NewUpdate().Model(&r).Column("erased").WherePK().Exec(ctx); err != nil {
		return fmt.Errorf("retention: count erased rows: %w", err)
	}
	return nil
}

// subjectMatch returns the condition finding the subject's rows in c by any
// of the identifiers of s on a database of dialect d, or false when c
// cannot find them.
func subjectMatch(d dialect.Name, c Category, s subjectKeys, tid string) (string, []any, bool) {
	if isEventTable(c) {
		return eventMatch(s) // events.go
	}
	keys := s.keys
	var conds []string
	var args []any
	for _, kind := range keys.Kinds() {
		tmpl, ok := c.subjectCond(d, kind)
		if !ok {
			continue
		}
		for _, v := range keys[kind] {
			cond, a := bind(tmpl, v, tid)
			conds = append(conds, "("+cond+")")
			args = append(args, a...)
		}
	}
	if len(conds) == 0 {
		return "", nil, false
	}
	return strings.Join(conds, " OR "), args, true
}

// Receipt returns the receipt of a completed erasure request (closed as
// StatusCompleted or StatusNoDataFound) from what the request records:
// the rows erased in each category over every run, in the engine's
// category order, its outcome and completion time — and, counted now,
// what the categories still hold about the subject (Category.Pending: a
// platform revoke still queued until the platform accepts it), found by
// the keys the request's identifiers resolve to now, so that a receipt
// asked for after the queue emptied no longer reports it, and one asked
// for while it waits does. Searched, Held and
// Kept are counted by the run that completed it (Erase's return value and
// the completion's audit entry) and not recorded on the request: they are
// empty here. It is how a caller whose Erase found the request completed
// by another run (ErrClosed) answers with the result. An open request, or
// a request of another kind, fails with ErrNotCompleted; the principal
// must be staff of the tenant, as for Get.
func (e *Engine) Receipt(ctx context.Context, id string) (Receipt, error) {
	r, err := e.Get(ctx, id)
	if err != nil {
		return Receipt{}, err
	}
	if r.Kind != KindErasure || (r.Status != StatusCompleted && r.Status != StatusNoDataFound) || r.CompletedAt == nil {
		return Receipt{}, ErrNotCompleted
	}
	rcpt := Receipt{RequestID: r.ID, Tenant: r.TenantID, At: *r.CompletedAt, Searched: map[string]int{}, Outcome: r.Outcome, Categories: []CategoryReceipt{}}
	cats := e.Categories()
	rcs := map[string]CategoryReceipt{}
	for _, c := range cats {
		if n, ok := r.Erased[c.Name]; ok {
			rcs[c.Name] = CategoryReceipt{Tenant: r.TenantID, Category: c.Name, Erased: n, Policy: e.policy.Name, Rule: "erasure request"}
		}
	}
	if r.Status == StatusCompleted && len(r.Subject) > 0 {
		// The erased records no longer lead anywhere: what pending work
		// is found by is what the identifiers themselves name (a
		// platform account id, a connection id).
		// Without Resolve's check of kinds: a kind the engine no longer
		// knows still names itself.
		seeds := Keys{}
		for kind, v := range r.Subject {
			seeds[kind] = []string{v}
		}
		keys, err := e.resolveFrom(ctx, seeds)
		if err != nil {
			return Receipt{}, err
		}
		if err := e.pending(ctx, cats, keys, r.TenantID, rcs); err != nil {
			return Receipt{}, err
		}
	}
	if o := rcpt.ordered(cats, rcs); len(o.Categories) > 0 {
		rcpt.Categories = o.Categories
	}
	return rcpt, nil
}

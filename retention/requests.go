package retention

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

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
)

// Request is a data-subject request. Submit creates it; its Subject maps
// identifier kinds (as used in Category.Subject: "email", "contact_id") to
// the subject's identifiers.
type Request struct {
	bun.BaseModel `bun:"table:socialcrm_retention_requests,alias:rq"`
	tenancy.Owned

	ID         string            `bun:"id,pk" json:"id"`
	Kind       RequestKind       `bun:"kind,notnull" json:"kind"`
	Subject    map[string]string `bun:"subject,type:text,notnull" json:"subject"`
	ReceivedAt time.Time         `bun:"received_at,notnull" json:"received_at"`
	DueAt      time.Time         `bun:"due_at,notnull" json:"due_at"`
	// ExtensionReason is set when the deadline was extended (once).
	ExtensionReason string        `bun:"extension_reason,notnull" json:"extension_reason,omitempty"`
	Verification    Verification  `bun:"verification,notnull" json:"verification"`
	Status          RequestStatus `bun:"status,notnull" json:"status"`
	CompletedAt     *time.Time    `bun:"completed_at" json:"completed_at,omitempty"`
}

// Submit records a request received now in the context's tenant. Kind and
// a non-empty Subject are required; ReceivedAt defaults to now, DueAt to
// ReceivedAt plus the engine's request deadline (30 days by default);
// Verification starts pending and Status open.
func (e *Engine) Submit(ctx context.Context, r Request) (Request, error) {
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
	r.ID = tenancy.NewID()
	if r.ReceivedAt.IsZero() {
		r.ReceivedAt = e.clock()
	}
	r.ReceivedAt = r.ReceivedAt.UTC().Truncate(time.Microsecond)
	r.DueAt = r.ReceivedAt.Add(e.requestDue)
	r.ExtensionReason, r.Verification, r.Status, r.CompletedAt = "", VerificationPending, StatusOpen, nil
	err := tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(&r).Exec(ctx); err != nil {
			return fmt.Errorf("retention: submit request: %w", err)
		}
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
	md["identifiers"] = strings.Join(sortedKeys(r.Subject), ",")
	_, err = log.Append(ctx, tenancy.AuditEvent{Action: action, Target: "request:" + r.ID, Metadata: md})
	return err
}

// Get returns the context tenant's request id.
func (e *Engine) Get(ctx context.Context, id string) (Request, error) {
	var r Request
	err := tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		return e.get(ctx, tx, id, &r)
	})
	return r, err
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

// update loads request id, lets change modify it, and saves it with an
// audit entry, in one transaction.
func (e *Engine) update(ctx context.Context, id, action string, change func(r *Request) (map[string]string, error)) (Request, error) {
	var r Request
	err := tenancy.RunInTx(ctx, e.db, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := e.get(ctx, tx, id, &r); err != nil {
			return err
		}
		if r.Status != StatusOpen {
			return ErrClosed
		}
		md, err := change(&r)
		if err != nil {
			return err
		}
		if _, err := tx.NewUpdate().Model(&r).WherePK().Exec(ctx); err != nil {
			return fmt.Errorf("retention: update request: %w", err)
		}
		return e.auditTx(ctx, tx, action, r, md)
	})
	return r, err
}

// Extend moves an open request's deadline by d, once, for a stated reason
// (GDPR allows two further months for complex requests). A second
// extension fails with ErrAlreadyExtended.
func (e *Engine) Extend(ctx context.Context, id string, d time.Duration, reason string) (Request, error) {
	if d <= 0 {
		return Request{}, &ValidationError{Field: "extension", Reason: "must be positive"}
	}
	if strings.TrimSpace(reason) == "" {
		return Request{}, &ValidationError{Field: "reason", Reason: "required"}
	}
	return e.update(ctx, id, "retention.request_extended", func(r *Request) (map[string]string, error) {
		if r.ExtensionReason != "" {
			return nil, ErrAlreadyExtended
		}
		r.DueAt, r.ExtensionReason = r.DueAt.Add(d), reason
		return map[string]string{"reason": reason}, nil
	})
}

// SetVerification records the outcome of the identity check.
func (e *Engine) SetVerification(ctx context.Context, id string, v Verification) (Request, error) {
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

// Close completes or rejects an open request (for kinds the engine does
// not carry out itself: rectification, restriction, objection; and for
// access and export once the export was delivered).
func (e *Engine) Close(ctx context.Context, id string, s RequestStatus) (Request, error) {
	if s != StatusCompleted && s != StatusRejected {
		return Request{}, &ValidationError{Field: "Status", Reason: "must be completed or rejected"}
	}
	return e.update(ctx, id, "retention.request_"+string(s), func(r *Request) (map[string]string, error) {
		now := e.clock()
		r.Status, r.CompletedAt = s, &now
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
	RequestID  string            `json:"request_id"`
	Tenant     string            `json:"tenant"`
	At         time.Time         `json:"at"`
	Categories []CategoryReceipt `json:"categories"`
}

// Erase carries out an erasure request: in every category that can find
// the subject by one of the request's identifiers it runs the category's
// BeforeErase hook and erase action in batches, sparing rows under a legal
// hold and rows a legal-obligation rule still keeps, and writes a receipt
// per batch to the audit log (action "retention.erased"). When everything
// is done the request is completed. The request must be open and verified
// (ErrNotVerified); its kind must be erasure. The principal must be an
// owner or admin of the tenant, or the system acting on it. Erase is
// idempotent: after an interruption, call it again.
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
	now := e.clock()
	rcpt := Receipt{RequestID: r.ID, Tenant: r.TenantID, At: now}
	hs, err := e.holds(ctx, r.TenantID)
	if err != nil {
		return rcpt, err
	}
	for _, c := range e.Categories() {
		cond, args, ok := subjectMatch(c, r.Subject, r.TenantID)
		if !ok {
			continue
		}
		rule, _ := e.policy.rule(c.Name)
		rc := CategoryReceipt{Tenant: r.TenantID, Category: c.Name, Policy: e.policy.Name, Rule: "erasure request"}
		j := &job{cat: c, tid: r.TenantID, action: "retention.erased", rc: &rc, meta: map[string]string{"request": r.ID}}
		j.where(cond, args...)
		if rule.Keep {
			cutoff := now.Add(-rule.Period)
			total, err := e.count(ctx, c, r.TenantID, j.conds, j.args)
			if err != nil {
				return rcpt, err
			}
			j.where("r."+c.Time+" <= ?", cutoff)
			free, err := e.count(ctx, c, r.TenantID, j.conds, j.args)
			if err != nil {
				return rcpt, err
			}
			rc.Kept, rc.Window, rc.Rule = total-free, window(cutoff), "erasure request; "+rule.String()
		}
		if err := e.run(ctx, j, hs); err != nil {
			return rcpt, err
		}
		if rc.Erased != 0 || rc.Held != 0 || rc.Kept != 0 {
			rcpt.Categories = append(rcpt.Categories, rc)
		}
	}
	_, err = e.update(ctx, r.ID, "retention.request_completed", func(r *Request) (map[string]string, error) {
		r.Status, r.CompletedAt = StatusCompleted, &now
		var erased, held, kept int64
		for _, rc := range rcpt.Categories {
			erased, held, kept = erased+rc.Erased, held+rc.Held, kept+rc.Kept
		}
		return map[string]string{"erased": fmt.Sprint(erased), "held": fmt.Sprint(held), "kept": fmt.Sprint(kept)}, nil
	})
	return rcpt, err
}

// subjectMatch returns the condition finding the subject's rows in c by any
// of the identifiers, or false when c cannot find them.
func subjectMatch(c Category, ids map[string]string, tid string) (string, []any, bool) {
	var conds []string
	var args []any
	for _, kind := range sortedKeys(ids) {
		tmpl, ok := c.subjectCond(kind)
		if !ok {
			continue
		}
		cond, a := bind(tmpl, ids[kind], tid)
		conds = append(conds, "("+cond+")")
		args = append(args, a...)
	}
	if len(conds) == 0 {
		return "", nil, false
	}
	return strings.Join(conds, " OR "), args, true
}

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

// Record kinds of the commerce records, as they appear in errors,
// attachments (OwnerKind) and custom fields (RecordKind).
const (
	KindClient     = "client"
	KindCampaign   = "campaign"
	KindProposal   = "proposal"
	KindInvoice    = "invoice"
	KindAttachment = "attachment"
	KindField      = "custom field"
)

// ErrForbidden matches every *ForbiddenError; so does tenancy.ErrForbidden.
var ErrForbidden = errors.New("crm: forbidden")

// ErrInUse is returned when a record cannot be deleted because other
// records still refer to it (a client with campaigns, proposals or
// invoices; an issued invoice). Nothing was deleted.
var ErrInUse = errors.New("crm: record is in use")

// ForbiddenError is returned when the acting principal's role does not
// allow an operation: a client-portal principal writing a record (other than
// answering a proposal sent to its client), or reading a kind of record that
// is not shared with clients (contacts, notes, deals…); a creator touching
// CRM records at all. Nothing was read or written.
//
//	var fe *crm.ForbiddenError
//	if errors.As(err, &fe) { … fe.Kind, fe.Op, fe.Role … }
type ForbiddenError struct {
	// Kind is the record kind, Op the operation ("read", "write").
	Kind, Op string
	// Role is the acting principal's role.
	Role tenancy.Role
	// Reason says why, without naming any record that was not visible.
	Reason string
}

func (e *ForbiddenError) Error() string {
	return fmt.Sprintf("crm: forbidden: %s may not %s %s records: %s", e.Role, e.Op, e.Kind, e.Reason)
}

// Is makes errors.Is(err, ErrForbidden) and errors.Is(err,
// tenancy.ErrForbidden) hold.
func (e *ForbiddenError) Is(target error) bool {
	return target == ErrForbidden || target == tenancy.ErrForbidden
}

// access is what the acting principal may see of the client-shared kinds.
type access struct {
	// client is the client a client-portal principal is bound to; empty
	// for the tenant's own people (owner, admin, staff) and the system.
	client string
	role   tenancy.Role
}

// portal reports whether the principal is a client-portal user.
func (a access) portal() bool { return a.client != "" }

// scope limits a select of a client-shared kind to what the principal may
// see: for a client-portal member, its client's records, and of proposals
// and invoices only those that left draft (drafts are the tenant's work in
// progress).
func (a access) scope(q *bun.SelectQuery, kind string) *bun.SelectQuery {
	if !a.portal() {
		return q
	}
	q = q.Where("?TableAlias.client_id = ?", a.client)
	if kind == KindProposal || kind == KindInvoice {
		q = q.Where("?TableAlias.status <> ?", "draft")
	}
	return q
}

// staffRole reports whether p acts for the tenant itself.
func staffRole(p tenancy.Principal) bool {
	if p.IsSystem() {
		return true
	}
	switch p.Role {
	case tenancy.RoleOwner, tenancy.RoleAdmin, tenancy.RoleStaff:
		return true
	}
	return false
}

// perm is what a repository method asks of the acting principal: to read
// or write records of kind, which the client portal may or may not read.
type perm struct {
	// kind names the record kind in a refusal ("" for any of the kinds
	// not shared with the client portal).
	kind string
	// shared is set for the records a client-portal member may read: the
	// client-shared kinds (clients, campaigns, proposals, invoices) and
	// the files and custom field values of their records.
	shared bool
	write  bool
	// admin restricts the tenant's people to owners and admins (linking
	// members to the client portal).
	admin bool
}

// staffOnly is the perm of the kinds not shared with the client portal
// (contacts, companies, deals, activities, tasks, notes, consent,
// conversations, custom field definitions).
func staffOnly(kind string) perm { return perm{kind: kind} }

// readOf and writeOf are the perms of reading and writing a client-shared
// kind.
func readOf(kind string) perm  { return perm{kind: kind, shared: true} }
func writeOf(kind string) perm { return perm{kind: kind, shared: true, write: true} }

// sharedKind reports whether records of kind are shared with the client
// portal.
func sharedKind(kind string) bool {
	switch kind {
	case KindClient, KindCampaign, KindProposal, KindInvoice:
		return true
	}
	return false
}

// access is the package's one role check: every repository method passes
// through it — through Store.run (and Store.tx, Store.one, which call it)
// — before it reads or writes a record. Owners, admins, staff and the
// system pass. A client-portal principal may read the records p marks as
// shared, of its own client only (the returned access scopes the reads),
// and write none; it must be a member linked to a client by a ClientMember
// link (read in db, which may be nil when p is not shared), and a
// principal bound by tenancy to another client than the link names is
// refused. A creator, and any other role, gets a *ForbiddenError; a
// context without a tenant gets tenancy.ErrNoTenant.
func (s *Store) access(ctx context.Context, db bun.IDB, p perm) (access, error) {
	if _, err := tenancy.TenantID(ctx); err != nil {
		return access{}, err
	}
	pr, _ := tenancy.FromContext(ctx)
	kind, op := p.kind, "read"
	if p.write {
		op = "write"
	}
	deny := func(reason string) (access, error) {
		return access{}, &ForbiddenError{Kind: kind, Op: op, Role: pr.Role, Reason: reason}
	}
	if p.admin && !pr.IsSystem() && pr.Role != tenancy.RoleOwner && pr.Role != tenancy.RoleAdmin {
		return deny("only owners and admins may")
	}
	if staffRole(pr) {
		return access{role: pr.Role}, nil
	}
	if !p.shared {
		if kind == "" {
			kind = "non-portal"
		}
		op = "access"
	}
	if pr.Role != tenancy.RoleClient {
		return deny("no access to CRM records")
	}
	if !p.shared {
		return deny("only campaigns, proposals and invoices are shared with the client portal")
	}
	if p.write {
		return deny("the client portal is read-only")
	}
	if pr.MemberID == "" {
		return deny("a client-portal principal must be a member")
	}
	var link ClientMember
	err := db.NewSelect().Model(&link).Where("?TableAlias.member_id = ?", pr.MemberID).Scan(ctx)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return deny("member is not linked to a client")
	case err != nil:
		return access{}, fmt.Errorf("crm: read client link: %w", err)
	case pr.ClientID != "" && pr.ClientID != link.ClientID:
		return deny("member's client differs from its link")
	}
	return access{client: link.ClientID, role: pr.Role}, nil
}

// run runs fn in one transaction scoped to the context's tenant, after
// access has granted p; fn gets what the principal may see. The audit
// entries fn records are appended after its work (auditLast). A refusal of a
// kind the portal does not share costs no transaction.
func (s *Store) run(ctx context.Context, p perm, fn func(ctx context.Context, tx bun.Tx, a access) error) error {
	if !p.shared {
		a, err := s.access(ctx, nil, p)
		if err != nil {
			return err
		}
		return tenancy.RunInTx(ctx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
			return s.auditLast(ctx, tx, func(ctx context.Context, tx bun.Tx) error { return fn(ctx, tx, a) })
		})
	}
	return tenancy.RunInTx(ctx, s.db, nil, func(ctx context.Context, tx bun.Tx) error {
		a, err := s.access(ctx, tx, p)
		if err != nil {
			return err
		}
		return s.auditLast(ctx, tx, func(ctx context.Context, tx bun.Tx) error { return fn(ctx, tx, a) })
	})
}

// Client is a customer organization of the tenant (a brand, an agency's
// customer): campaigns, proposals and invoices belong to one, and members
// with the client role are linked to one (ClientMember) to see exactly
// those records through the client portal.
type Client struct {
	bun.BaseModel `bun:"table:socialcrm_crm_clients,alias:cl"`
	Record
	ClientInput

	// Name, Email and Phone are stored sealed (a client may be a person).
	NameSealed  vault.Sealed `bun:"name_sealed" json:"-"`
	EmailSealed vault.Sealed `bun:"email_sealed" json:"-"`
	PhoneSealed vault.Sealed `bun:"phone_sealed" json:"-"`
}

func (c *Client) sealedFields() []sealedField {
	return []sealedField{{name: "name", sealed: &c.NameSealed, text: &c.Name}, {name: "email", sealed: &c.EmailSealed, text: &c.Email},
		{name: "phone", sealed: &c.PhoneSealed, text: &c.Phone}}
}

// ClientInput is what Create and Update take.
type ClientInput struct {
	Name string `bun:"-" json:"name" validate:"required,max=200"`
	// Email and Phone are the client's billing contact details (optional).
	// Phone is read as a contact's is (national in the Store's default
	// region, WithDefaultRegion) and kept in E.164 form.
	Email string `bun:"-" json:"email,omitempty" validate:"omitempty,email,max=254"`
	Phone string `bun:"-" json:"phone,omitempty" validate:"omitempty,e164"`
}

// ClientMember links a tenancy member with the client role to the client
// whose records it may see. A member is linked to at most one client.
type ClientMember struct {
	bun.BaseModel `bun:"table:socialcrm_crm_client_members,alias:clm"`
	tenancy.Owned
	MemberID  string    `bun:"member_id,pk" json:"member_id"`
	ClientID  string    `bun:"client_id,notnull" json:"client_id"`
	CreatedAt time.Time `bun:"created_at,notnull" json:"created_at"`
}

// Clients is the repository of clients and their portal members.
type Clients struct{ s *Store }

// Clients returns the repository of clients.
func (s *Store) Clients() *Clients { return &Clients{s} }

var clientKeys = keyset{name: "clients", cols: []string{"id"}}

// Create adds a client. Owners, admins and staff may.
func (r *Clients) Create(ctx context.Context, in ClientInput) (Client, error) {
	s := r.s
	in.Phone = s.normalizePhone(in.Phone) // as a contact's (phone.go)
	if err := s.check(KindClient, in); err != nil {
		return Client{}, err
	}
	c := Client{ClientInput: in}
	c.ID = tenancy.NewID()
	if err := sealRecord(ctx, s, KindClient, &c, c.ID); err != nil {
		return Client{}, err
	}
	err := s.run(ctx, writeOf(KindClient), func(ctx context.Context, tx bun.Tx, _ access) error {
		if err := insert(ctx, tx, s.clock(), &c); err != nil {
			return fmt.Errorf("crm: create client: %w", err)
		}
		return nil
	})
	if err != nil {
		return Client{}, err
	}
	return c, nil
}

// Get returns a client. A client-portal member sees only its own client.
func (r *Clients) Get(ctx context.Context, id string) (Client, error) {
	var c Client
	err := r.s.run(ctx, readOf(KindClient), func(ctx context.Context, tx bun.Tx, a access) error {
		var err error
		if a.portal() && a.client != id {
			return notFound(KindClient, id)
		}
		c, err = get[Client](ctx, tx, KindClient, id)
		return err
	})
	if err != nil {
		return Client{}, err
	}
	return c, openRecord(ctx, r.s, KindClient, &c, c.ID)
}

// Update replaces a client's fields if its stored version is still version
// (else a *ConflictError).
func (r *Clients) Update(ctx context.Context, id string, version int64, in ClientInput) (Client, error) {
	s := r.s
	in.Phone = s.normalizePhone(in.Phone) // as a contact's (phone.go)
	if err := s.checkUpdate(KindClient, id, version, in); err != nil {
		return Client{}, err
	}
	c := Client{Record: Record{ID: id, Version: version}, ClientInput: in}
	if err := sealRecord(ctx, s, KindClient, &c, c.ID); err != nil {
		return Client{}, err
	}
	err := s.run(ctx, writeOf(KindClient), func(ctx context.Context, tx bun.Tx, _ access) error {
		if err := update(ctx, s, tx, s.clock(), KindClient, &c, "name_sealed", "email_sealed", "phone_sealed"); err != nil {
			return err
		}
		var err error
		c, err = get[Client](ctx, tx, KindClient, id)
		return err
	})
	if err != nil {
		return Client{}, err
	}
	return c, openRecord(ctx, s, KindClient, &c, c.ID)
}

// Delete removes a client with no campaigns, proposals or invoices (else
// ErrInUse), its attachments and custom field values, and unlinks its
// portal members.
func (r *Clients) Delete(ctx context.Context, id string) error {
	s := r.s
	var gone []string
	err := s.run(ctx, writeOf(KindClient), func(ctx context.Context, tx bun.Tx, _ access) error {
		// Taken before the checks below: a write that refers to the
		// client holds its row (lockRecord) until it commits.
		if err := lockRecordFor(ctx, tx, KindClient, id, "UPDATE"); err != nil {
			return err
		}
		if _, err := get[Client](ctx, tx, KindClient, id); err != nil {
			return err
		}
		for _, m := range []any{(*Campaign)(nil), (*Proposal)(nil), (*Invoice)(nil)} {
			used, err := tx.NewSelect().Model(m).Apply(tenancy.Scope(ctx)).Where("?TableAlias.client_id = ?", id).Exists(ctx)
			if err != nil {
				return fmt.Errorf("crm: delete client: %w", err)
			}
			if used {
				return fmt.Errorf("%w: client %s has campaigns, proposals or invoices", ErrInUse, id)
			}
		}
		if _, err := tx.NewDelete().Model((*ClientMember)(nil)).Where("?TableAlias.client_id = ?", id).Exec(ctx); err != nil {
			return fmt.Errorf("crm: delete client: %w", err)
		}
		var err error
		if gone, err = s.deleteDependents(ctx, tx, KindClient, []string{id}); err != nil {
			return err
		}
		return deleteIn[Client](ctx, s, tx, KindClient, id) // with its audit entry
	})
	if err != nil {
		return err
	}
	return s.dropBytes(ctx, gone)
}

// ClientFilter narrows Clients.List. It has no fields yet (a client's name
// and contact details are sealed, without blind indexes): the zero value
// lists every client. It keeps Clients.List in the shape of every list of
// the package.
type ClientFilter struct{}

// List returns a page of clients in creation order. A client-portal member
// sees only its own.
func (r *Clients) List(ctx context.Context, _ ClientFilter, o ListOptions) (Page[Client], error) {
	var items []Client
	err := r.s.run(ctx, readOf(KindClient), func(ctx context.Context, tx bun.Tx, a access) error {
		var err error
		q := tx.NewSelect().Model(&items)
		if a.portal() {
			q = q.Where("?TableAlias.id = ?", a.client)
		}
		if q, err = clientKeys.apply(q, KindClient, o); err != nil {
			return err
		}
		return q.Scan(ctx)
	})
	if err != nil {
		return Page[Client]{}, fmt.Errorf("crm: list clients: %w", err)
	}
	p, err := page(clientKeys, o, items, func(c *Client) []any { return []any{c.ID} })
	if err != nil {
		return p, err
	}
	for i := range p.Items {
		if err := openRecord(ctx, r.s, KindClient, &p.Items[i], p.Items[i].ID); err != nil {
			return Page[Client]{}, err
		}
	}
	return p, nil
}

// Link binds the member memberID, who must hold the client role, to the
// client clientID for the client portal. Owners and admins may link. A
// member whose tenancy record names another client cannot be linked
// (*ValidationError); linking a member again moves it.
func (r *Clients) Link(ctx context.Context, clientID, memberID string) (ClientMember, error) {
	s := r.s
	link := ClientMember{MemberID: memberID, ClientID: clientID, CreatedAt: s.clock()}
	err := s.run(ctx, perm{kind: KindClient, write: true, admin: true}, func(ctx context.Context, tx bun.Tx, _ access) error {
		if _, err := getReferenced[Client](ctx, tx, KindClient, clientID); err != nil {
			return err
		}
		var m tenancy.Member
		err := tx.NewSelect().Model(&m).Where("?TableAlias.id = ?", memberID).Scan(ctx)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return notFound("member", memberID)
		case err != nil:
			return fmt.Errorf("crm: link member: %w", err)
		case m.Role != tenancy.RoleClient:
			return invalid(KindClient, "member_id", "role", "must be a member with the client role")
		case m.ClientID != "" && m.ClientID != clientID:
			return invalid(KindClient, "member_id", "client", "member is bound to another client")
		}
		if _, err := tx.NewDelete().Model((*ClientMember)(nil)).Where("?TableAlias.member_id = ?", memberID).Exec(ctx); err != nil {
			return fmt.Errorf("crm: link member: %w", err)
		}
		if _, err := tx.NewInsert().Model(&link).Exec(ctx); err != nil {
			if dberr.IsUniqueViolation(err) {
				return &ConflictError{Kind: "client member", ID: memberID}
			}
			return fmt.Errorf("crm: link member: %w", err)
		}
		// A grant of access: in the audit log, as its removal is.
		return s.writeAudit(ctx, tx, tenancy.AuditEvent{Action: "crm.client.member_linked", Target: "member:" + memberID,
			Metadata: map[string]string{"client": clientID}})
	})
	if err != nil {
		return ClientMember{}, err
	}
	return link, nil
}

// Unlink removes a member's client-portal link; the member then sees
// nothing. The audit log records it ("crm.client.member_unlinked"), as it
// records Link ("crm.client.member_linked").
func (r *Clients) Unlink(ctx context.Context, memberID string) error {
	return r.s.run(ctx, perm{kind: KindClient, write: true, admin: true}, func(ctx context.Context, tx bun.Tx, _ access) error {
		res, err := tx.NewDelete().Model((*ClientMember)(nil)).Where("?TableAlias.member_id = ?", memberID).Exec(ctx)
		if err != nil {
			return fmt.Errorf("crm: unlink member: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("client member", memberID)
		}
		return r.s.writeAudit(ctx, tx, tenancy.AuditEvent{Action: "crm.client.member_unlinked", Target: "member:" + memberID})
	})
}

var clientMemberKeys = keyset{name: "client members", cols: []string{"member_id"}}

// Members returns a page of the client-portal links of client clientID,
// by member id. Owners, admins and staff may list them.
func (r *Clients) Members(ctx context.Context, clientID string, o ListOptions) (Page[ClientMember], error) {
	var links []ClientMember
	err := r.s.run(ctx, staffOnly(KindClient), func(ctx context.Context, tx bun.Tx, _ access) error {
		q := tx.NewSelect().Model(&links).Where("?TableAlias.client_id = ?", clientID)
		q, err := clientMemberKeys.apply(q, KindClient, o)
		if err != nil {
			return err
		}
		if err := q.Scan(ctx); err != nil {
			return fmt.Errorf("crm: list client members: %w", err)
		}
		return nil
	})
	if err != nil {
		return Page[ClientMember]{}, err
	}
	return page(clientMemberKeys, o, links, func(m *ClientMember) []any { return []any{m.MemberID} })
}

// clientHistory keeps, of a proposal's history, what the client saw
// happen: every move to a status other than draft (the sends and what
// followed them), not the creation or the revisions made in draft. The
// note of a move stays only when one of the client's own members made it
// (its answer); the notes of the tenant's people are internal.
func clientHistory(ctx context.Context, tx bun.IDB, a access, events []ProposalEvent) ([]ProposalEvent, error) {
	var members []string
	if err := tx.NewSelect().Model((*ClientMember)(nil)).Column("member_id").
		Where("?TableAlias.client_id = ?", a.client).Scan(ctx, &members); err != nil {
		return nil, err
	}
	out := events[:0]
	for _, ev := range events {
		if ev.To == ProposalDraft {
			continue
		}
		member, ok := strings.CutPrefix(ev.Actor, "member:")
		if !ok || !slices.Contains(members, member) {
			ev.Note, ev.NoteSealed = "", vault.Sealed{} // not opened later either
		}
		out = append(out, ev)
	}
	return out, nil
}

// visible checks that the record id of a client-shared kind exists and
// that the principal may see it (ErrNotFound otherwise).
func visible(ctx context.Context, tx bun.IDB, a access, kind, id string) error {
	var err error
	switch kind {
	case KindClient:
		if a.portal() && a.client != id {
			return notFound(kind, id)
		}
		_, err = get[Client](ctx, tx, kind, id)
	case KindCampaign:
		_, err = getFor[Campaign](ctx, tx, a, kind, id)
	case KindProposal:
		_, err = getFor[Proposal](ctx, tx, a, kind, id)
	case KindInvoice:
		_, err = getFor[Invoice](ctx, tx, a, kind, id)
	default:
		return invalid("record", "record_kind", "oneof", "is not shared with the client portal")
	}
	return err
}

// getFor reads the record id of a client-shared kind, as the principal
// may see it: ErrNotFound for a record of another client.
func getFor[T any, PT interface {
	*T
	record
}](ctx context.Context, tx bun.IDB, a access, kind, id string) (T, error) {
	var rec T
	PT(&rec).base().ID = id
	q := a.scope(tx.NewSelect().Model(PT(&rec)).WherePK(), kind)
	if err := q.Scan(ctx); err != nil {
		var zero T
		if errors.Is(err, sql.ErrNoRows) {
			return zero, notFound(kind, id)
		}
		return zero, fmt.Errorf("crm: get %s: %w", kind, err)
	}
	return rec, nil
}

// checkAll validates each of vs and returns one *ValidationError listing
// the failed fields of all of them.
func (s *Store) checkAll(kind string, vs ...any) error {
	var all *ValidationError
	for _, v := range vs {
		err := s.check(kind, v)
		var ve *ValidationError
		switch {
		case err == nil:
		case errors.As(err, &ve) && all == nil:
			all = ve
		case errors.As(err, &ve):
			all.Fields = append(all.Fields, ve.Fields...)
		default:
			return err
		}
	}
	if all == nil {
		return nil
	}
	return all
}

package crm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// ProposalStatus is where a proposal is. A proposal starts as a draft, is
// sent to its client, and ends accepted, rejected or withdrawn:
//
//	draft → sent, withdrawn
//	sent  → accepted, rejected, withdrawn, draft (by a revision)
//
// Accepted, rejected and withdrawn are final.
type ProposalStatus string

// Proposal statuses.
const (
	ProposalDraft     ProposalStatus = "draft"
	ProposalSent      ProposalStatus = "sent"
	ProposalAccepted  ProposalStatus = "accepted"
	ProposalRejected  ProposalStatus = "rejected"
	ProposalWithdrawn ProposalStatus = "withdrawn"
)

var proposalMoves = map[ProposalStatus][]ProposalStatus{
	ProposalDraft: {ProposalSent, ProposalWithdrawn},
	ProposalSent:  {ProposalAccepted, ProposalRejected, ProposalWithdrawn, ProposalDraft},
}

// ErrTransition matches every *TransitionError.
var ErrTransition = errors.New("crm: illegal status transition")

// TransitionError is returned when a proposal or invoice is asked to move
// to a status it cannot reach from its current one. Nothing was written.
type TransitionError struct {
	Kind, ID string
	From, To string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("crm: %s %s cannot go from %s to %s", e.Kind, e.ID, e.From, e.To)
}

// Is makes errors.Is(err, ErrTransition) hold.
func (e *TransitionError) Is(target error) bool { return target == ErrTransition }

// ProposalContent is what each revision of a proposal snapshots. Amount is
// an integer in the minor unit of Currency.
type ProposalContent struct {
	Title    string `bun:"-" json:"title" validate:"required,max=200"`
	Body     string `bun:"-" json:"body" validate:"max=100000"`
	Amount   int64  `bun:"amount,notnull" json:"amount" validate:"gte=0"`
	Currency string `bun:"currency,notnull" json:"currency" validate:"required,iso4217"`

	// Title and Body are stored sealed (free text that may name people),
	// bound to the proposal or revision; amount and currency in clear.
	TitleSealed vault.Sealed `bun:"title_sealed" json:"-" validate:"-"`
	BodySealed  vault.Sealed `bun:"body_sealed" json:"-" validate:"-"`
}

func (c *ProposalContent) sealedFields() []sealedField {
	return []sealedField{{name: "title", sealed: &c.TitleSealed, text: &c.Title}, {name: "body", sealed: &c.BodySealed, text: &c.Body}}
}

// Proposal is an offer to a client. Its content is that of its latest
// revision (Revision); every revision is kept (Proposals.Revisions), and
// every status change is recorded with who made it and when
// (Proposals.History).
type Proposal struct {
	bun.BaseModel `bun:"table:socialcrm_crm_proposals,alias:pr"`
	Record
	ClientID   string         `bun:"client_id,notnull" json:"client_id"`
	CampaignID string         `bun:"campaign_id,nullzero" json:"campaign_id,omitempty"`
	Status     ProposalStatus `bun:"status,notnull" json:"status"`
	Revision   int64          `bun:"revision,notnull" json:"revision"`
	ProposalContent
}

// ProposalInput is what Create takes.
type ProposalInput struct {
	ClientID string `json:"client_id" validate:"required,uuid"`
	// CampaignID optionally names a campaign of the same client.
	CampaignID      string `json:"campaign_id,omitempty" validate:"omitempty,uuid"`
	ProposalContent `validate:"-"`
}

// ProposalRevision is a snapshot of a proposal's content.
type ProposalRevision struct {
	bun.BaseModel `bun:"table:socialcrm_crm_proposal_revisions,alias:prr"`
	tenancy.Owned
	ID         string `bun:"id,pk" json:"id"`
	ProposalID string `bun:"proposal_id,notnull" json:"proposal_id"`
	// Number counts from 1.
	Number int64 `bun:"number,notnull" json:"number"`
	ProposalContent
	// Author is the actor who wrote it (tenancy.Principal.Actor).
	Author    string    `bun:"author,notnull" json:"author"`
	CreatedAt time.Time `bun:"created_at,notnull" json:"created_at"`
}

// ProposalEvent is one status change of a proposal.
type ProposalEvent struct {
	bun.BaseModel `bun:"table:socialcrm_crm_proposal_events,alias:pre"`
	tenancy.Owned
	ID         string `bun:"id,pk" json:"id"`
	ProposalID string `bun:"proposal_id,notnull" json:"proposal_id"`
	// From is empty for the creation.
	From ProposalStatus `bun:"from_status,notnull" json:"from"`
	To   ProposalStatus `bun:"to_status,notnull" json:"to"`
	// Revision is the revision current at the change.
	Revision int64 `bun:"revision,notnull" json:"revision"`
	// Actor is who made the change (tenancy.Principal.Actor).
	Actor string    `bun:"actor,notnull" json:"actor"`
	Note  string    `bun:"-" json:"note,omitempty"`
	At    time.Time `bun:"at,notnull" json:"at"`

	NoteSealed vault.Sealed `bun:"note_sealed" json:"-"`
}

func (e *ProposalEvent) sealedFields() []sealedField {
	return []sealedField{{name: "note", sealed: &e.NoteSealed, text: &e.Note}}
}

// ProposalFilter narrows a list of proposals; zero fields do not filter.
type ProposalFilter struct {
	ClientID string
	Status   ProposalStatus
}

// Proposals is the repository of proposals.
type Proposals struct{ s *Store }

// Proposals returns the repository of proposals.
func (s *Store) Proposals() *Proposals { return &Proposals{s} }

var proposalKeys = keyset{name: "proposals", cols: []string{"id"}}

func actor(ctx context.Context) string {
	p, _ := tenancy.FromContext(ctx)
	return p.Actor()
}

func (r *Proposals) checkContent(c *ProposalContent) error {
	c.Currency = strings.ToUpper(c.Currency)
	return r.s.check(KindProposal, c)
}

// Create adds a draft proposal with its first revision and records the
// creation in its history.
func (r *Proposals) Create(ctx context.Context, in ProposalInput) (Proposal, error) {
	s := r.s
	in.Currency = strings.ToUpper(in.Currency)
	if err := s.checkAll(KindProposal, in, in.ProposalContent); err != nil {
		return Proposal{}, err
	}
	p := Proposal{ClientID: in.ClientID, CampaignID: in.CampaignID, Status: ProposalDraft, Revision: 1, ProposalContent: in.ProposalContent}
	p.ID = tenancy.NewID()
	if err := sealRecord(ctx, s, KindProposal, &p, p.ID); err != nil {
		return Proposal{}, err
	}
	err := s.run(ctx, writeOf(KindProposal), func(ctx context.Context, tx bun.Tx, _ access) error {
		if _, err := getReferenced[Client](ctx, tx, KindClient, in.ClientID); err != nil {
			return err
		}
		if in.CampaignID != "" {
			c, err := getReferenced[Campaign](ctx, tx, KindCampaign, in.CampaignID)
			if err != nil {
				return err
			}
			if c.ClientID != in.ClientID {
				return invalid(KindProposal, "campaign_id", "client", "must be a campaign of the same client")
			}
		}
		now := s.clock()
		if err := insert(ctx, tx, now, &p); err != nil {
			return fmt.Errorf("crm: create proposal: %w", err)
		}
		return r.record(ctx, tx, &p, "", "created", now)
	})
	if err != nil {
		return Proposal{}, err
	}
	return p, nil
}

// record writes the current revision snapshot (on creation and revision,
// when from is "" or the content changed) and the status event.
func (r *Proposals) record(ctx context.Context, tx bun.IDB, p *Proposal, from ProposalStatus, note string, now time.Time) error {
	if from == "" || note == "revised" {
		rev := ProposalRevision{ID: tenancy.NewID(), ProposalID: p.ID, Number: p.Revision,
			ProposalContent: p.ProposalContent, Author: actor(ctx), CreatedAt: now}
		if err := sealRecord(ctx, r.s, KindProposal, &rev, rev.ID); err != nil {
			return err
		}
		if _, err := tx.NewInsert().Model(&rev).Exec(ctx); err != nil {
			return fmt.Errorf("crm: proposal revision: %w", err)
		}
	}
	if from == p.Status && from != "" {
		return nil
	}
	ev := ProposalEvent{ID: tenancy.NewID(), ProposalID: p.ID, From: from, To: p.Status,
		Revision: p.Revision, Actor: actor(ctx), Note: note, At: now}
	if err := sealRecord(ctx, r.s, KindProposal, &ev, ev.ID); err != nil {
		return err
	}
	if _, err := tx.NewInsert().Model(&ev).Exec(ctx); err != nil {
		return fmt.Errorf("crm: proposal history: %w", err)
	}
	return nil
}

// Get returns a proposal; a client-portal member gets only its client's.
func (r *Proposals) Get(ctx context.Context, id string) (Proposal, error) {
	var p Proposal
	err := r.s.run(ctx, readOf(KindProposal), func(ctx context.Context, tx bun.Tx, a access) error {
		var err error
		p, err = getFor[Proposal](ctx, tx, a, KindProposal, id)
		return err
	})
	if err != nil {
		return Proposal{}, err
	}
	return p, openRecord(ctx, r.s, KindProposal, &p, p.ID)
}

// Revise replaces the proposal's content with a new revision, if its stored
// version is still version. A draft stays a draft; a sent proposal goes back
// to draft (recorded in its history) and must be sent again. A final
// proposal cannot be revised (*TransitionError).
func (r *Proposals) Revise(ctx context.Context, id string, version int64, c ProposalContent) (Proposal, error) {
	s := r.s
	if err := checkVersion(KindProposal, version); err != nil {
		return Proposal{}, err
	}
	if err := r.checkContent(&c); err != nil {
		return Proposal{}, err
	}
	if err := s.ensureKeys(ctx); err != nil {
		return Proposal{}, err
	}
	var p Proposal
	err := s.run(ctx, writeOf(KindProposal), func(ctx context.Context, tx bun.Tx, _ access) error {
		var err error
		if p, err = get[Proposal](ctx, tx, KindProposal, id); err != nil {
			return err
		}
		from := p.Status
		if from != ProposalDraft && from != ProposalSent {
			return &TransitionError{Kind: KindProposal, ID: id, From: string(from), To: string(ProposalDraft)}
		}
		p.Version, p.Status, p.Revision, p.ProposalContent = version, ProposalDraft, p.Revision+1, c
		if err := sealRecord(ctx, s, KindProposal, &p, p.ID); err != nil {
			return err
		}
		now := s.clock()
		if err := update(ctx, s, tx, now, KindProposal, &p, "status", "revision", "title_sealed", "body_sealed", "amount", "currency"); err != nil {
			return err
		}
		return r.record(ctx, tx, &p, from, "revised", now)
	})
	if err != nil {
		return Proposal{}, err
	}
	return p, nil
}

// Transition moves a proposal to status to, if its stored version is still
// version, and records who did it, when, and note in its history. An
// illegal move fails with a *TransitionError. A client-portal member may
// only accept or reject a sent proposal of its own client; any other
// change, or a proposal it cannot see, is a *ForbiddenError.
func (r *Proposals) Transition(ctx context.Context, id string, version int64, to ProposalStatus, note string) (Proposal, error) {
	s := r.s
	if err := checkVersion(KindProposal, version); err != nil {
		return Proposal{}, err
	}
	if len(note) > 2000 {
		return Proposal{}, invalid(KindProposal, "note", "max", "must be at most 2000 long")
	}
	if err := s.ensureKeys(ctx); err != nil {
		return Proposal{}, err
	}
	var p Proposal
	err := s.run(ctx, readOf(KindProposal), func(ctx context.Context, tx bun.Tx, a access) error {
		var err error
		p, err = getFor[Proposal](ctx, tx, a, KindProposal, id)
		if a.portal() {
			if errors.Is(err, ErrNotFound) || to != ProposalAccepted && to != ProposalRejected {
				return &ForbiddenError{Kind: KindProposal, Op: "write", Role: a.role,
					Reason: "a client may only accept or reject a proposal sent to it"}
			}
		}
		if err != nil {
			return err
		}
		if err := openRecord(ctx, s, KindProposal, &p, p.ID); err != nil {
			return err
		}
		from := p.Status
		if !slices.Contains(proposalMoves[from], to) || to == ProposalDraft {
			// Back to draft happens only through Revise.
			return &TransitionError{Kind: KindProposal, ID: id, From: string(from), To: string(to)}
		}
		p.Version, p.Status = version, to
		now := s.clock()
		if err := update(ctx, s, tx, now, KindProposal, &p, "status"); err != nil {
			return err
		}
		return r.record(ctx, tx, &p, from, note, now)
	})
	if err != nil {
		return Proposal{}, err
	}
	return p, nil
}

// Delete removes a proposal with its revisions and history.
func (r *Proposals) Delete(ctx context.Context, id string) error {
	s := r.s
	var gone []string
	err := s.run(ctx, writeOf(KindProposal), func(ctx context.Context, tx bun.Tx, _ access) error {
		if err := deleteIn[Proposal](ctx, s, tx, KindProposal, id); err != nil {
			return err
		}
		var err error
		if gone, err = s.deleteDependents(ctx, tx, KindProposal, []string{id}); err != nil {
			return err
		}
		return deleteProposalChildren(ctx, tx, []string{id})
	})
	if err != nil {
		return err
	}
	return s.dropBytes(ctx, gone)
}

func deleteProposalChildren(ctx context.Context, tx bun.IDB, ids []string) error {
	for _, m := range []any{(*ProposalRevision)(nil), (*ProposalEvent)(nil)} {
		if _, err := tx.NewDelete().Model(m).Where("?TableAlias.proposal_id IN (?)", bun.In(ids)).Exec(ctx); err != nil {
			return fmt.Errorf("crm: delete proposal: %w", err)
		}
	}
	return nil
}

// List returns a page of proposals in creation order; a client-portal
// member sees only its client's.
func (r *Proposals) List(ctx context.Context, f ProposalFilter, o ListOptions) (Page[Proposal], error) {
	return listShared[Proposal](ctx, r.s, KindProposal, proposalKeys, o, f.ClientID, string(f.Status))
}

var (
	revisionOrder      = keyset{name: "proposal revisions", cols: []string{"number"}}
	proposalEventOrder = keyset{name: "proposal history", cols: []string{"at", "id"}}
)

// Revisions returns a page of a proposal's revisions, oldest first. A
// client-portal member gets only the revisions that were sent to its
// client: the revision current at each move to sent.
func (r *Proposals) Revisions(ctx context.Context, id string, o ListOptions) (Page[ProposalRevision], error) {
	var out []ProposalRevision
	err := r.children(ctx, id, func(ctx context.Context, tx bun.Tx, a access) error {
		q := tx.NewSelect().Model(&out).Where("?TableAlias.proposal_id = ?", id)
		if a.portal() {
			sent := tx.NewSelect().Model((*ProposalEvent)(nil)).Column("pre.revision").Apply(tenancy.Scope(ctx)).
				Where("pre.proposal_id = ?", id).Where("pre.to_status = ?", ProposalSent)
			q = q.Where("prr.number IN (?)", sent) // ?TableAlias here would take the subquery's alias
		}
		q, err := revisionOrder.apply(q, KindProposal, o)
		if err != nil {
			return err
		}
		return q.Scan(ctx)
	})
	if err != nil {
		return Page[ProposalRevision]{}, err
	}
	p, err := page(revisionOrder, o, out, func(r *ProposalRevision) []any { return []any{r.Number} })
	if err != nil {
		return p, err
	}
	for i := range p.Items {
		if err := openRecord(ctx, r.s, KindProposal, &p.Items[i], p.Items[i].ID); err != nil {
			return Page[ProposalRevision]{}, err
		}
	}
	return p, nil
}

// History returns a page of a proposal's status changes, oldest first. A
// client-portal member gets only what its client saw happen (see
// clientHistory).
func (r *Proposals) History(ctx context.Context, id string, o ListOptions) (Page[ProposalEvent], error) {
	var out []ProposalEvent
	err := r.children(ctx, id, func(ctx context.Context, tx bun.Tx, a access) error {
		q := tx.NewSelect().Model(&out).Where("?TableAlias.proposal_id = ?", id)
		if a.portal() {
			q = q.Where("?TableAlias.to_status <> ?", ProposalDraft) // the tenant's work in progress
		}
		q, err := proposalEventOrder.apply(q, KindProposal, o)
		if err != nil {
			return err
		}
		if err := q.Scan(ctx); err != nil {
			return err
		}
		if a.portal() {
			out, err = clientHistory(ctx, tx, a, out)
		}
		return err
	})
	if err != nil {
		return Page[ProposalEvent]{}, err
	}
	p, err := page(proposalEventOrder, o, out, func(e *ProposalEvent) []any { return []any{e.At, e.ID} })
	if err != nil {
		return p, err
	}
	for i := range p.Items {
		if err := openRecord(ctx, r.s, KindProposal, &p.Items[i], p.Items[i].ID); err != nil {
			return Page[ProposalEvent]{}, err
		}
	}
	return p, nil
}

// children runs read after checking that the principal sees the proposal.
func (r *Proposals) children(ctx context.Context, id string, read func(ctx context.Context, tx bun.Tx, a access) error) error {
	return r.s.run(ctx, readOf(KindProposal), func(ctx context.Context, tx bun.Tx, a access) error {
		if _, err := getFor[Proposal](ctx, tx, a, KindProposal, id); err != nil {
			return err
		}
		if err := read(ctx, tx, a); err != nil {
			return fmt.Errorf("crm: read proposal %s: %w", id, err)
		}
		return nil
	})
}

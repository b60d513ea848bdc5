package crm

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// CampaignStatus is where a campaign is.
type CampaignStatus string

// Campaign statuses.
const (
	CampaignPlanned   CampaignStatus = "planned"
	CampaignActive    CampaignStatus = "active"
	CampaignPaused    CampaignStatus = "paused"
	CampaignCompleted CampaignStatus = "completed"
	CampaignCancelled CampaignStatus = "cancelled"
)

// Campaign is a piece of work for a client (an influencer campaign, a
// launch), with its dates and budget.
type Campaign struct {
	bun.BaseModel `bun:"table:socialcrm_crm_campaigns,alias:cp"`
	Record
	CampaignInput
}

// CampaignInput is what Create and Update take. The budget is an integer in
// the minor unit of Currency (cents for EUR).
type CampaignInput struct {
	ClientID string         `bun:"client_id,notnull" json:"client_id" validate:"required,uuid"`
	Name     string         `bun:"name,notnull" json:"name" validate:"required,max=200"`
	Status   CampaignStatus `bun:"status,notnull" json:"status" validate:"required,oneof=planned active paused completed cancelled"`
	StartsAt *time.Time     `bun:"starts_at" json:"starts_at,omitempty"`
	EndsAt   *time.Time     `bun:"ends_at" json:"ends_at,omitempty"`
	Budget   int64          `bun:"budget,notnull" json:"budget" validate:"gte=0"`
	Currency string         `bun:"currency,notnull" json:"currency" validate:"required,iso4217"`
}

// CampaignFilter narrows a list of campaigns; zero fields do not filter.
type CampaignFilter struct {
	ClientID string
	Status   CampaignStatus
}

// Campaigns is the repository of campaigns.
type Campaigns struct{ s *Store }

// Campaigns returns the repository of campaigns.
func (s *Store) Campaigns() *Campaigns { return &Campaigns{s} }

var campaignKeys = keyset{name: "campaigns", cols: []string{"id"}}

func (r *Campaigns) check(in *CampaignInput, id string, version int64) error {
	in.Currency = strings.ToUpper(in.Currency)
	if version < 0 { // Create: no id or version
		if err := r.s.check(KindCampaign, in); err != nil {
			return err
		}
	} else if err := r.s.checkUpdate(KindCampaign, id, version, in); err != nil {
		return err
	}
	if in.StartsAt != nil && in.EndsAt != nil && in.EndsAt.Before(*in.StartsAt) {
		return invalid(KindCampaign, "ends_at", "gtefield", "must not be before starts_at")
	}
	for _, t := range []**time.Time{&in.StartsAt, &in.EndsAt} {
		if *t != nil {
			u := (*t).UTC().Truncate(time.Microsecond)
			*t = &u
		}
	}
	return nil
}

// Create adds a campaign for an existing client.
func (r *Campaigns) Create(ctx context.Context, in CampaignInput) (Campaign, error) {
	s := r.s
	if err := r.check(&in, "", -1); err != nil {
		return Campaign{}, err
	}
	c := Campaign{CampaignInput: in}
	err := s.run(ctx, writeOf(KindCampaign), func(ctx context.Context, tx bun.Tx, _ access) error {
		if _, err := getReferenced[Client](ctx, tx, KindClient, in.ClientID); err != nil {
			return err
		}
		if err := insert(ctx, tx, s.clock(), &c); err != nil {
			return fmt.Errorf("crm: create campaign: %w", err)
		}
		return nil
	})
	if err != nil {
		return Campaign{}, err
	}
	return c, nil
}

// Get returns a campaign; a client-portal member gets only its client's.
func (r *Campaigns) Get(ctx context.Context, id string) (Campaign, error) {
	var c Campaign
	err := r.s.run(ctx, readOf(KindCampaign), func(ctx context.Context, tx bun.Tx, a access) error {
		var err error
		c, err = getFor[Campaign](ctx, tx, a, KindCampaign, id)
		return err
	})
	return c, err
}

// Update replaces a campaign's fields if its stored version is still
// version (else a *ConflictError).
func (r *Campaigns) Update(ctx context.Context, id string, version int64, in CampaignInput) (Campaign, error) {
	s := r.s
	if err := r.check(&in, id, version); err != nil {
		return Campaign{}, err
	}
	c := Campaign{Record: Record{ID: id, Version: version}, CampaignInput: in}
	err := s.run(ctx, writeOf(KindCampaign), func(ctx context.Context, tx bun.Tx, _ access) error {
		if _, err := getReferenced[Client](ctx, tx, KindClient, in.ClientID); err != nil {
			return err
		}
		if err := update(ctx, s, tx, s.clock(), KindCampaign, &c,
			"client_id", "name", "status", "starts_at", "ends_at", "budget", "currency"); err != nil {
			return err
		}
		if err := reassignAttachments(ctx, tx, KindCampaign, id, in.ClientID); err != nil {
			return err
		}
		var err error
		c, err = get[Campaign](ctx, tx, KindCampaign, id)
		return err
	})
	if err != nil {
		return Campaign{}, err
	}
	return c, nil
}

// Delete removes a campaign.
func (r *Campaigns) Delete(ctx context.Context, id string) error {
	s := r.s
	var gone []string
	err := s.run(ctx, writeOf(KindCampaign), func(ctx context.Context, tx bun.Tx, _ access) error {
		if err := deleteIn[Campaign](ctx, s, tx, KindCampaign, id); err != nil {
			return err
		}
		var err error
		gone, err = s.deleteDependents(ctx, tx, KindCampaign, []string{id})
		return err
	})
	if err != nil {
		return err
	}
	return s.dropBytes(ctx, gone)
}

// List returns a page of campaigns in creation order; a client-portal
// member sees only its client's.
func (r *Campaigns) List(ctx context.Context, f CampaignFilter, o ListOptions) (Page[Campaign], error) {
	return listShared[Campaign](ctx, r.s, KindCampaign, campaignKeys, o, f.ClientID, string(f.Status))
}

// deleteIn deletes the record id of kind, ErrNotFound when there is
// none in the context's tenant, and records it in the audit log.
func deleteIn[T any, PT interface {
	*T
	record
}](ctx context.Context, s *Store, tx bun.IDB, kind, id string) error {
	res, err := tx.NewDelete().Model(PT(new(T))).Where("?TableAlias.id = ?", id).Exec(ctx)
	if err != nil {
		return fmt.Errorf("crm: delete %s: %w", kind, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound(kind, id)
	}
	return s.audit(ctx, tx, kind, "deleted", id)
}

// wrapList wraps a list's database error, passing typed errors through.
func wrapList(kind string, err error) error {
	return fmt.Errorf("crm: list %s: %w", kind, err)
}

// listShared returns a page of a client-shared kind in creation order,
// filtered by client and status when they are not empty; a client-portal
// member sees only its client's records.
func listShared[T any, PT recordPtr[T]](ctx context.Context, s *Store, kind string, ks keyset, o ListOptions, clientID, status string) (Page[T], error) {
	var items []T
	err := s.run(ctx, readOf(kind), func(ctx context.Context, tx bun.Tx, a access) error {
		var err error
		q := whereEq(a.scope(tx.NewSelect().Model(&items), kind), "client_id", clientID, "status", status)
		if q, err = ks.apply(q, kind, o); err != nil {
			return err
		}
		return q.Scan(ctx)
	})
	if err != nil {
		return Page[T]{}, wrapList(kind, err)
	}
	p, err := page(ks, o, items, byID[T, PT])
	if err != nil {
		return p, err
	}
	for i := range p.Items {
		if err := openRecord(ctx, s, kind, PT(&p.Items[i]), PT(&p.Items[i]).base().ID); err != nil {
			return Page[T]{}, err
		}
	}
	return p, nil
}

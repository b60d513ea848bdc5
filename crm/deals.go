package crm

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/vault"
)

// Table names of pipelines and deals.
const (
	TablePipelines    = TablePrefix + "pipelines"
	TableDeals        = TablePrefix + "deals"
	TableStageChanges = TablePrefix + "deal_stage_changes"
)

// Pipeline is a sales process: an ordered list of stages a deal moves
// through.
type Pipeline struct {
	bun.BaseModel `bun:"table:socialcrm_crm_pipelines,alias:pl"`
	Record

	Name string `bun:"name,notnull" json:"name" validate:"required,max=200"`
	// Stages are the stage names in order; each at most 100 bytes, no
	// two alike.
	Stages []string `bun:"stages,type:text,notnull" json:"stages" validate:"required,min=1,max=50,unique,dive,required,max=100"`
}

// DealStatus says whether a deal is still open.
type DealStatus string

// Deal statuses.
const (
	DealOpen DealStatus = "open"
	DealWon  DealStatus = "won"
	DealLost DealStatus = "lost"
)

// Deal is a sale in progress, at one stage of its pipeline.
type Deal struct {
	bun.BaseModel `bun:"table:socialcrm_crm_deals,alias:dl"`
	Record

	PipelineID string `bun:"pipeline_id,notnull" json:"pipeline_id" validate:"required"`
	// Stage is one of the pipeline's stages (default: the first).
	Stage  string     `bun:"stage,notnull" json:"stage" validate:"max=100"`
	Status DealStatus `bun:"status,notnull" json:"status" validate:"omitempty,oneof=open won lost"`
	Title  string     `bun:"-" json:"title" validate:"required,max=200"`
	// Amount is in minor units of Currency (cents for USD).
	Amount        int64     `bun:"amount,notnull" json:"amount" validate:"gte=0"`
	Currency      string    `bun:"currency,notnull" json:"currency,omitempty" validate:"required_with=Amount,omitempty,iso4217"`
	ContactID     string    `bun:"contact_id,nullzero" json:"contact_id,omitempty"`
	CompanyID     string    `bun:"company_id,nullzero" json:"company_id,omitempty"`
	OwnerID       string    `bun:"owner_id,nullzero" json:"owner_id,omitempty" validate:"omitempty,uuid"`
	ExpectedClose time.Time `bun:"expected_close,nullzero" json:"expected_close,omitzero"`

	TitleSealed vault.Sealed `bun:"title_sealed" json:"-"`
}

func (d *Deal) sealedFields() []sealedField {
	return []sealedField{{name: "title", sealed: &d.TitleSealed, text: &d.Title}}
}

// StageChange is one entry of a deal's stage history.
type StageChange struct {
	bun.BaseModel `bun:"table:socialcrm_crm_deal_stage_changes,alias:dsc"`
	Record

	DealID string `bun:"deal_id,notnull" json:"deal_id"`
	// From is empty for the deal's creation.
	From string `bun:"from_stage,notnull" json:"from"`
	To   string `bun:"to_stage,notnull" json:"to"`
	// Actor is who moved the deal (tenancy.Principal.Actor).
	Actor     string    `bun:"actor,notnull" json:"actor"`
	ChangedAt time.Time `bun:"changed_at,notnull" json:"changed_at"`
}

// DealFilter narrows Deals.List; the zero value lists every deal.
type DealFilter struct {
	PipelineID string     `json:"pipeline_id,omitempty"`
	Stage      string     `json:"stage,omitempty"`
	Status     DealStatus `json:"status,omitempty"`
	OwnerID    string     `json:"owner_id,omitempty"`
	ContactID  string     `json:"contact_id,omitempty"`
	CompanyID  string     `json:"company_id,omitempty"`
}

// Pipelines is the repository of pipelines, reached with Store.Pipelines.
type Pipelines struct{ s *Store }

// Pipelines returns the repository of pipelines.
func (s *Store) Pipelines() *Pipelines { return &Pipelines{s: s} }

// Deals is the repository of deals and their stage history, reached with
// Store.Deals.
type Deals struct{ s *Store }

// Deals returns the repository of deals.
func (s *Store) Deals() *Deals { return &Deals{s: s} }

const (
	kindPipeline = "pipeline"
	kindDeal     = "deal"
)

var (
	pipelineOrder = keyset{name: "pipelines", cols: []string{"id"}}
	dealOrder     = keyset{name: "deals", cols: []string{"id"}}
)

func (p *Pipeline) normalize() {
	p.Name = strings.TrimSpace(p.Name)
	for i, s := range p.Stages {
		p.Stages[i] = strings.TrimSpace(s)
	}
}

// Create validates p and stores it as a new pipeline.
func (r *Pipelines) Create(ctx context.Context, p Pipeline) (Pipeline, error) {
	p.Stages = slices.Clone(p.Stages)
	p.normalize()
	return createRecord(ctx, r.s, kindPipeline, &p, nil, nil)
}

// Get returns pipeline id.
func (r *Pipelines) Get(ctx context.Context, id string) (Pipeline, error) {
	return getRecord[Pipeline](ctx, r.s, kindPipeline, id)
}

// Update writes p over pipeline p.ID if its Version is current. A stage
// that open deals are at cannot be removed (*ValidationError on stages).
func (r *Pipelines) Update(ctx context.Context, p Pipeline) (Pipeline, error) {
	p.Stages = slices.Clone(p.Stages)
	p.normalize()
	return updateRecord(ctx, r.s, kindPipeline, &p, nil, func(ctx context.Context, tx bun.Tx, cur *Pipeline) error {
		var used []string
		if err := tx.NewSelect().Model((*Deal)(nil)).ColumnExpr("DISTINCT dl.stage").
			Where("dl.pipeline_id = ?", p.ID).Apply(tenancy.Scope(ctx)).Scan(ctx, &used); err != nil {
			return fmt.Errorf("crm: update pipeline: %w", err)
		}
		for _, s := range used {
			if !slices.Contains(p.Stages, s) {
				return invalid(kindPipeline, "stages", "in_use", fmt.Sprintf("stage %q still has deals", s))
			}
		}
		return nil
	})
}

// List returns a page of the pipelines, oldest first.
func (r *Pipelines) List(ctx context.Context, o ListOptions) (Page[Pipeline], error) {
	return listRecords(ctx, r.s, kindPipeline, pipelineOrder, o, nil, byID[Pipeline])
}

// Create validates d and stores it as a new deal at d.Stage (default the
// pipeline's first stage), recording the first entry of its stage history.
func (r *Deals) Create(ctx context.Context, d Deal) (Deal, error) {
	d.normalize()
	return createRecord(ctx, r.s, kindDeal, &d, d.refs(), func(ctx context.Context, tx bun.Tx) error {
		if err := r.checkStage(ctx, tx, &d); err != nil {
			return err
		}
		return r.recordChange(ctx, tx, &d, "")
	})
}

func (d *Deal) normalize() {
	d.Title, d.Stage, d.Currency = strings.TrimSpace(d.Title), strings.TrimSpace(d.Stage), strings.ToUpper(strings.TrimSpace(d.Currency))
	if d.Status == "" {
		d.Status = DealOpen
	}
	d.ExpectedClose = d.ExpectedClose.UTC().Truncate(time.Microsecond)
}

func (d *Deal) refs() []ref {
	return []ref{{"contact_id", (*Contact)(nil), d.ContactID}, {"company_id", (*Company)(nil), d.CompanyID}}
}

// checkStage checks that d's pipeline exists and has d.Stage, defaulting
// an empty Stage to the first.
func (r *Deals) checkStage(ctx context.Context, tx bun.IDB, d *Deal) error {
	p, err := get[Pipeline](ctx, tx, kindPipeline, d.PipelineID)
	if err != nil {
		return invalid(kindDeal, "pipeline_id", "exists", "names no pipeline of this tenant")
	}
	if d.Stage == "" {
		d.Stage = p.Stages[0]
	}
	if !slices.Contains(p.Stages, d.Stage) {
		return invalid(kindDeal, "stage", "oneof", "must be one of the pipeline's stages: "+strings.Join(p.Stages, ", "))
	}
	return nil
}

func (r *Deals) recordChange(ctx context.Context, tx bun.IDB, d *Deal, from string) error {
	now := r.s.clock()
	actor := "unknown"
	if p, ok := principal(ctx); ok {
		actor = p
	}
	c := StageChange{DealID: d.ID, From: from, To: d.Stage, Actor: actor, ChangedAt: now}
	c.stamp(now)
	if _, err := tx.NewInsert().Model(&c).Exec(ctx); err != nil {
		return fmt.Errorf("crm: record stage change: %w", err)
	}
	return nil
}

// Get returns deal id.
func (r *Deals) Get(ctx context.Context, id string) (Deal, error) {
	return getRecord[Deal](ctx, r.s, kindDeal, id)
}

// Update writes d over deal d.ID if its Version is current. A new Stage
// must belong to the deal's pipeline and is recorded in the stage history;
// moving a deal to another pipeline is allowed the same way.
func (r *Deals) Update(ctx context.Context, d Deal) (Deal, error) {
	d.normalize()
	return updateRecord(ctx, r.s, kindDeal, &d, d.refs(), func(ctx context.Context, tx bun.Tx, cur *Deal) error {
		if err := r.checkStage(ctx, tx, &d); err != nil {
			return err
		}
		if d.Stage != cur.Stage || d.PipelineID != cur.PipelineID {
			return r.recordChange(ctx, tx, &d, cur.Stage)
		}
		return nil
	})
}

// Delete removes deal id and its stage history.
func (r *Deals) Delete(ctx context.Context, id string) error {
	return deleteRecord[Deal](ctx, r.s, kindDeal, id, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewDelete().Model((*StageChange)(nil)).Where("?TableAlias.deal_id = ?", id).Exec(ctx)
		return err
	})
}

// List returns a page of the deals matching f, oldest first.
func (r *Deals) List(ctx context.Context, f DealFilter, o ListOptions) (Page[Deal], error) {
	return listRecords(ctx, r.s, kindDeal, dealOrder, o, func(q *bun.SelectQuery) *bun.SelectQuery {
		return whereEq(q, "pipeline_id", f.PipelineID, "stage", f.Stage, "status", string(f.Status),
			"owner_id", f.OwnerID, "contact_id", f.ContactID, "company_id", f.CompanyID)
	}, byID[Deal])
}

// History returns deal id's stage changes, oldest first.
func (r *Deals) History(ctx context.Context, id string) ([]StageChange, error) {
	var cs []StageChange
	err := r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := mustExist(ctx, tx, (*Deal)(nil), kindDeal, "id", id); err != nil {
			return notFound(kindDeal, id)
		}
		return tx.NewSelect().Model(&cs).Where("?TableAlias.deal_id = ?", id).Order("changed_at", "id").Scan(ctx)
	})
	if err != nil {
		return nil, err
	}
	return cs, nil
}

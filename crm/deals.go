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
	PipelineInput
}

// PipelineInput is what Pipelines.Create and Pipelines.Update take.
type PipelineInput struct {
	Name string `bun:"name,notnull" json:"name" validate:"required,max=200"`
	// Stages are the stage names in order; each at most 100 bytes, no
	// two alike.
	Stages []string `bun:"stages,type:text,notnull" json:"stages" validate:"required,min=1,max=50,unique,dive,required,max=100"`
	// WonStage and LostStage name the stages that close a deal: a deal
	// moved to WonStage is won (Deal.Status DealWon), one moved to
	// LostStage is lost, and one moved back to any other stage is open
	// again. Each must be one of Stages, and they differ. Left empty, each
	// defaults to the stage named "won" (or "lost"), ignoring case, if
	// there is one; a pipeline with neither closes no deal.
	WonStage  string `bun:"won_stage,notnull" json:"won_stage,omitempty" validate:"max=100"`
	LostStage string `bun:"lost_stage,notnull" json:"lost_stage,omitempty" validate:"max=100"`
}

// DealStatus says whether a deal is still open. The server sets it from
// the deal's stage (see PipelineInput.WonStage).
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
	DealInput
	// Status follows the stage: won at the pipeline's WonStage, lost at
	// its LostStage, open anywhere else.
	Status DealStatus `bun:"status,notnull" json:"status"`

	TitleSealed vault.Sealed `bun:"title_sealed" json:"-"`
}

// DealInput is what Deals.Create and Deals.Update take. Amount is money
// as the package keeps it: an integer count of Currency's minor unit.
type DealInput struct {
	PipelineID string `bun:"pipeline_id,notnull" json:"pipeline_id" validate:"required"`
	// Stage is one of the pipeline's stages (default: the first).
	Stage string `bun:"stage,notnull" json:"stage" validate:"max=100"`
	Title string `bun:"-" json:"title" validate:"required,max=200"`
	// Amount is in minor units of Currency (cents for USD).
	Amount        int64     `bun:"amount,notnull" json:"amount" validate:"gte=0"`
	Currency      string    `bun:"currency,notnull" json:"currency,omitempty" validate:"required_with=Amount,omitempty,iso4217"`
	ContactID     string    `bun:"contact_id,nullzero" json:"contact_id,omitempty" validate:"omitempty,max=64"`
	CompanyID     string    `bun:"company_id,nullzero" json:"company_id,omitempty" validate:"omitempty,max=64"`
	OwnerID       string    `bun:"owner_id,nullzero" json:"owner_id,omitempty" validate:"omitempty,uuid"`
	ExpectedClose time.Time `bun:"expected_close,nullzero" json:"expected_close,omitzero"`
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

// normalize trims the pipeline's names and defaults WonStage and
// LostStage to the stages named "won" and "lost".
func (in *PipelineInput) normalize() {
	in.Stages = slices.Clone(in.Stages)
	in.Name = strings.TrimSpace(in.Name)
	for i, s := range in.Stages {
		in.Stages[i] = strings.TrimSpace(s)
	}
	in.WonStage, in.LostStage = strings.TrimSpace(in.WonStage), strings.TrimSpace(in.LostStage)
	if in.WonStage == "" {
		in.WonStage = stageNamed(in.Stages, "won", in.LostStage)
	}
	if in.LostStage == "" {
		in.LostStage = stageNamed(in.Stages, "lost", in.WonStage)
	}
}

// stageNamed returns the stage of stages named name, ignoring case, unless
// it is taken; else "".
func stageNamed(stages []string, name, taken string) string {
	for _, s := range stages {
		if strings.EqualFold(s, name) && s != taken {
			return s
		}
	}
	return ""
}

// check validates a normalized pipeline input.
func (in *PipelineInput) check(s *Store) error {
	var verr *ValidationError
	if err := s.check(kindPipeline, in); err != nil && !errors.As(err, &verr) {
		return err
	}
	add := func(field, rule, msg string) {
		if verr == nil {
			verr = &ValidationError{Kind: kindPipeline}
		}
		verr.Fields = append(verr.Fields, FieldError{Field: field, Rule: rule, Message: msg})
	}
	if in.WonStage != "" && !slices.Contains(in.Stages, in.WonStage) {
		add("won_stage", "oneof", "must be one of the stages")
	}
	if in.LostStage != "" && !slices.Contains(in.Stages, in.LostStage) {
		add("lost_stage", "oneof", "must be one of the stages")
	}
	if in.WonStage != "" && in.WonStage == in.LostStage {
		add("lost_stage", "nefield", "must differ from won_stage")
	}
	if verr != nil {
		return verr
	}
	return nil
}

// statusAt returns the status of a deal at stage of p.
func (p *Pipeline) statusAt(stage string) DealStatus {
	won, lost := p.WonStage, p.LostStage
	if won == "" && lost == "" { // a pipeline from before the stages were named
		won, lost = stageNamed(p.Stages, "won", ""), stageNamed(p.Stages, "lost", "")
	}
	switch {
	case stage != "" && stage == won:
		return DealWon
	case stage != "" && stage == lost:
		return DealLost
	}
	return DealOpen
}

// Create validates in and stores it as a new pipeline.
func (r *Pipelines) Create(ctx context.Context, in PipelineInput) (Pipeline, error) {
	in.normalize()
	if err := in.check(r.s); err != nil {
		return Pipeline{}, err
	}
	p := Pipeline{PipelineInput: in}
	return createRecord(ctx, r.s, kindPipeline, &p.PipelineInput, &p, nil, nil)
}

// Get returns pipeline id.
func (r *Pipelines) Get(ctx context.Context, id string) (Pipeline, error) {
	return getRecord[Pipeline](ctx, r.s, kindPipeline, id)
}

// Update writes in over pipeline id if its stored version is still
// version (else a *ConflictError). A stage that deals are at cannot be
// removed (*ValidationError on stages). Deals keep the status they had: a
// change of WonStage or LostStage applies to the deals moved after it.
func (r *Pipelines) Update(ctx context.Context, id string, version int64, in PipelineInput) (Pipeline, error) {
	in.normalize()
	if err := in.check(r.s); err != nil {
		return Pipeline{}, err
	}
	p := Pipeline{PipelineInput: in}
	return updateRecord(ctx, r.s, kindPipeline, id, version, &p.PipelineInput, &p, nil, func(ctx context.Context, tx bun.Tx, cur *Pipeline) error {
		var used []string
		if err := tx.NewSelect().Model((*Deal)(nil)).ColumnExpr("DISTINCT dl.stage").
			Where("dl.pipeline_id = ?", id).Apply(tenancy.Scope(ctx)).Scan(ctx, &used); err != nil {
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

// PipelineFilter narrows Pipelines.List; the zero value lists every
// pipeline.
type PipelineFilter struct {
	// NamePrefix keeps pipelines whose name starts with it, ignoring case.
	NamePrefix string `json:"name_prefix,omitempty" validate:"max=200"`
}

// List returns a page of the pipelines matching f, oldest first.
func (r *Pipelines) List(ctx context.Context, f PipelineFilter, o ListOptions) (Page[Pipeline], error) {
	if err := r.s.check(kindPipeline, f); err != nil {
		return Page[Pipeline]{}, err
	}
	return listRecords(ctx, r.s, kindPipeline, pipelineOrder, o, func(q *bun.SelectQuery) *bun.SelectQuery {
		if p := strings.TrimSpace(f.NamePrefix); p != "" {
			q = q.Where(`lower(?TableAlias.name) LIKE ? ESCAPE '\'`, escapeLike(strings.ToLower(p))+"%")
		}
		return q
	}, byID[Pipeline])
}

// Create validates in and stores it as a new deal at in.Stage (default the
// pipeline's first stage), with the status of that stage, recording the
// first entry of its stage history.
func (r *Deals) Create(ctx context.Context, in DealInput) (Deal, error) {
	in.normalize()
	d := Deal{DealInput: in}
	return createRecord(ctx, r.s, kindDeal, &d.DealInput, &d, in.refs(), func(ctx context.Context, tx bun.Tx) error {
		if err := r.checkStage(ctx, tx, &d); err != nil {
			return err
		}
		return r.recordChange(ctx, tx, &d, "")
	})
}

func (in *DealInput) normalize() {
	in.Title, in.Stage, in.Currency = strings.TrimSpace(in.Title), strings.TrimSpace(in.Stage), strings.ToUpper(strings.TrimSpace(in.Currency))
	in.ExpectedClose = in.ExpectedClose.UTC().Truncate(time.Microsecond)
}

func (in *DealInput) refs() []ref {
	return []ref{{"contact_id", (*Contact)(nil), in.ContactID}, {"company_id", (*Company)(nil), in.CompanyID}}
}

// checkStage checks that d's pipeline exists and has d.Stage, defaulting
// an empty Stage to the first, and sets d.Status from the stage.
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
	d.Status = p.statusAt(d.Stage)
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

// Update writes in over deal id if its stored version is still version
// (else a *ConflictError). A new Stage must belong to the deal's pipeline
// and is recorded in the stage history; the deal's status follows it (a
// deal moved to the pipeline's WonStage is won, back to another stage it
// is open again). Moving a deal to another pipeline is allowed the same
// way.
func (r *Deals) Update(ctx context.Context, id string, version int64, in DealInput) (Deal, error) {
	in.normalize()
	d := Deal{DealInput: in}
	return updateRecord(ctx, r.s, kindDeal, id, version, &d.DealInput, &d, in.refs(), func(ctx context.Context, tx bun.Tx, cur *Deal) error {
		if err := r.checkStage(ctx, tx, &d); err != nil {
			return err
		}
		if d.Stage != cur.Stage || d.PipelineID != cur.PipelineID {
			return r.recordChange(ctx, tx, &d, cur.Stage)
		}
		return nil
	})
}

// Move moves deal id to stage of its pipeline if its stored version is
// still version: Update with the stage alone changed.
func (r *Deals) Move(ctx context.Context, id string, version int64, stage string) (Deal, error) {
	if err := checkVersion(kindDeal, version); err != nil {
		return Deal{}, err
	}
	if strings.TrimSpace(stage) == "" {
		return Deal{}, invalid(kindDeal, "stage", "required", "is required")
	}
	cur, err := r.Get(ctx, id)
	if err != nil {
		return Deal{}, err
	}
	in := cur.DealInput
	in.Stage = stage
	return r.Update(ctx, id, version, in)
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

var stageChangeOrder = keyset{name: "stage changes", cols: []string{"changed_at", "id"}}

// History returns a page of deal id's stage changes, oldest first.
func (r *Deals) History(ctx context.Context, id string, o ListOptions) (Page[StageChange], error) {
	var cs []StageChange
	err := r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if ok, err := readable(ctx, tx, (*Deal)(nil), id); err != nil || !ok { // a read: no lock (repo.go)
			return notFound(kindDeal, id)
		}
		q, err := stageChangeOrder.apply(tx.NewSelect().Model(&cs).Where("?TableAlias.deal_id = ?", id), kindDeal, o)
		if err != nil {
			return err
		}
		return q.Scan(ctx)
	})
	if err != nil {
		return Page[StageChange]{}, err
	}
	return page(stageChangeOrder, o, cs, func(c *StageChange) []any { return []any{c.ChangedAt, c.ID} })
}

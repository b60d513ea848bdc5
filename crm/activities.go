package crm

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/internal/dberr"
	"github.com/socialcrm/socialcrm/vault"
)

// Table names of activities, tasks and notes.
const (
	TableActivities = TablePrefix + "activities"
	TableTasks      = TablePrefix + "tasks"
	TableNotes      = TablePrefix + "notes"
)

// ActivityKind is what kind of interaction an activity was.
type ActivityKind string

// Activity kinds.
const (
	ActivityCall     ActivityKind = "call"
	ActivityEmail    ActivityKind = "email"
	ActivitySMS      ActivityKind = "sms"
	ActivityWhatsApp ActivityKind = "whatsapp"
	ActivityRCS      ActivityKind = "rcs"
	ActivityMeeting  ActivityKind = "meeting"
)

// Activity is an interaction with a contact on its timeline: a call, an
// e-mail, an SMS, WhatsApp or RCS message, a meeting.
type Activity struct {
	bun.BaseModel `bun:"table:socialcrm_crm_activities,alias:ac"`
	Record
	ActivityInput

	SubjectSealed vault.Sealed `bun:"subject_sealed" json:"-"`
	BodySealed    vault.Sealed `bun:"body_sealed" json:"-"`
}

// ActivityInput is what Activities.Create and Activities.Update take.
type ActivityInput struct {
	Kind ActivityKind `bun:"kind,notnull" json:"kind" validate:"required,oneof=call email sms whatsapp rcs meeting"`
	// Direction is in or out; empty for a meeting.
	Direction Direction `bun:"direction,notnull" json:"direction,omitempty" validate:"omitempty,oneof=in out"`
	// ExternalID is the provider's id (an e-mail Message-ID, an SMS id);
	// an activity is recorded once per kind and external id.
	ExternalID string    `bun:"external_id,nullzero" json:"external_id,omitempty" validate:"max=255"`
	ContactID  string    `bun:"contact_id,nullzero" json:"contact_id,omitempty" validate:"max=64"`
	CompanyID  string    `bun:"company_id,nullzero" json:"company_id,omitempty" validate:"max=64"`
	DealID     string    `bun:"deal_id,nullzero" json:"deal_id,omitempty" validate:"max=64"`
	Subject    string    `bun:"-" json:"subject,omitempty" validate:"max=500"`
	Body       string    `bun:"-" json:"body,omitempty" validate:"max=100000"`
	OccurredAt time.Time `bun:"occurred_at,notnull" json:"occurred_at" validate:"required"`
	// Duration of a call or meeting, in seconds.
	DurationSec int64  `bun:"duration_sec,notnull" json:"duration_sec,omitempty" validate:"gte=0"`
	OwnerID     string `bun:"owner_id,nullzero" json:"owner_id,omitempty" validate:"omitempty,uuid"`
}

func (a *Activity) sealedFields() []sealedField {
	return []sealedField{{name: "subject", sealed: &a.SubjectSealed, text: &a.Subject}, {name: "body", sealed: &a.BodySealed, text: &a.Body}}
}

// ActivityFilter narrows Activities.List; the zero value lists every
// activity.
type ActivityFilter struct {
	ContactID string       `json:"contact_id,omitempty"`
	CompanyID string       `json:"company_id,omitempty"`
	DealID    string       `json:"deal_id,omitempty"`
	Kind      ActivityKind `json:"kind,omitempty"`
}

// Activities is the repository of activities, reached with
// Store.Activities.
type Activities struct{ s *Store }

// Activities returns the repository of activities.
func (s *Store) Activities() *Activities { return &Activities{s: s} }

const kindActivity = "activity"

var activityOrder = keyset{name: "activities", cols: []string{"occurred_at", "id"}, desc: true}

func (in *ActivityInput) normalize() {
	in.OccurredAt = in.OccurredAt.UTC().Truncate(time.Microsecond)
	in.Subject = strings.TrimSpace(in.Subject)
}

func (in *ActivityInput) refs() []ref {
	return []ref{{"contact_id", (*Contact)(nil), in.ContactID}, {"company_id", (*Company)(nil), in.CompanyID}, {"deal_id", (*Deal)(nil), in.DealID}}
}

// Create validates in and stores it on the timeline. An activity whose
// kind and ExternalID are already recorded is not stored again: Create
// returns the stored one.
func (r *Activities) Create(ctx context.Context, in ActivityInput) (Activity, error) {
	in.normalize()
	if in.ExternalID != "" && cleanText(in.ExternalID) { // else refused below (validate_values.go)
		if found, ok, err := r.byExternalID(ctx, in.Kind, in.ExternalID); err != nil || ok {
			return found, err
		}
	}
	a := Activity{ActivityInput: in}
	rec, err := createRecord(ctx, r.s, kindActivity, &a.ActivityInput, &a, in.refs(), nil)
	if err != nil && in.ExternalID != "" && dberr.IsUniqueViolation(err) {
		// Recorded meanwhile by a concurrent call.
		if found, ok, ferr := r.byExternalID(ctx, in.Kind, in.ExternalID); ferr == nil && ok {
			return found, nil
		}
	}
	return rec, err
}

func (r *Activities) byExternalID(ctx context.Context, kind ActivityKind, externalID string) (Activity, bool, error) {
	var found []Activity
	err := r.s.one(ctx, func(ctx context.Context, db bun.IDB) error {
		return db.NewSelect().Model(&found).Where("?TableAlias.kind = ?", kind).
			Where("?TableAlias.external_id = ?", externalID).Limit(1).Scan(ctx)
	})
	if err != nil {
		return Activity{}, false, fmt.Errorf("crm: record activity: %w", err)
	}
	if len(found) == 0 {
		return Activity{}, false, nil
	}
	if err := openRecord(ctx, r.s, kindActivity, &found[0], found[0].ID); err != nil {
		return Activity{}, false, err
	}
	return found[0], true, nil
}

// Get returns activity id.
func (r *Activities) Get(ctx context.Context, id string) (Activity, error) {
	return getRecord[Activity](ctx, r.s, kindActivity, id)
}

// Update writes in over activity id if its stored version is still
// version (else a *ConflictError).
func (r *Activities) Update(ctx context.Context, id string, version int64, in ActivityInput) (Activity, error) {
	in.normalize()
	a := Activity{ActivityInput: in}
	return updateRecord(ctx, r.s, kindActivity, id, version, &a.ActivityInput, &a, in.refs(), nil)
}

// Delete removes activity id.
func (r *Activities) Delete(ctx context.Context, id string) error {
	return deleteRecord[Activity](ctx, r.s, kindActivity, id, nil)
}

// List returns a page of the timeline matching f, the latest first.
func (r *Activities) List(ctx context.Context, f ActivityFilter, o ListOptions) (Page[Activity], error) {
	return listRecords(ctx, r.s, kindActivity, activityOrder, o, func(q *bun.SelectQuery) *bun.SelectQuery {
		return whereEq(q, "contact_id", f.ContactID, "company_id", f.CompanyID, "deal_id", f.DealID, "kind", string(f.Kind))
	}, func(a *Activity) []any { return []any{a.OccurredAt, a.ID} })
}

// TaskStatus is where a task stands.
type TaskStatus string

// Task statuses.
const (
	TaskOpen       TaskStatus = "open"
	TaskInProgress TaskStatus = "in_progress"
	TaskDone       TaskStatus = "done"
	TaskCancelled  TaskStatus = "cancelled"
)

// Task is something a member has to do, possibly about a contact or deal.
type Task struct {
	bun.BaseModel `bun:"table:socialcrm_crm_tasks,alias:tk"`
	Record
	TaskInput
	// CompletedAt is set when the status becomes done, and cleared when it
	// leaves done.
	CompletedAt time.Time `bun:"completed_at,nullzero" json:"completed_at,omitzero"`

	TitleSealed       vault.Sealed `bun:"title_sealed" json:"-"`
	DescriptionSealed vault.Sealed `bun:"description_sealed" json:"-"`
}

// TaskInput is what Tasks.Create and Tasks.Update take.
type TaskInput struct {
	Title       string     `bun:"-" json:"title" validate:"required,max=200"`
	Description string     `bun:"-" json:"description,omitempty" validate:"max=10000"`
	Status      TaskStatus `bun:"status,notnull" json:"status" validate:"omitempty,oneof=open in_progress done cancelled"`
	// DueAt is when the task is due; zero for no due date.
	DueAt time.Time `bun:"due_at,nullzero" json:"due_at,omitzero"`
	// AssigneeID is the member who should do it.
	AssigneeID string `bun:"assignee_id,nullzero" json:"assignee_id,omitempty" validate:"omitempty,uuid"`
	ContactID  string `bun:"contact_id,nullzero" json:"contact_id,omitempty" validate:"max=64"`
	DealID     string `bun:"deal_id,nullzero" json:"deal_id,omitempty" validate:"max=64"`
}

func (t *Task) sealedFields() []sealedField {
	return []sealedField{{name: "title", sealed: &t.TitleSealed, text: &t.Title}, {name: "description", sealed: &t.DescriptionSealed, text: &t.Description}}
}

// TaskFilter narrows Tasks.List; the zero value lists every task.
type TaskFilter struct {
	AssigneeID string     `json:"assignee_id,omitempty"`
	Status     TaskStatus `json:"status,omitempty"`
	ContactID  string     `json:"contact_id,omitempty"`
	DealID     string     `json:"deal_id,omitempty"`
	// DueBefore keeps tasks due before it.
	DueBefore time.Time `json:"due_before,omitzero"`
}

// Tasks is the repository of tasks, reached with Store.Tasks.
type Tasks struct{ s *Store }

// Tasks returns the repository of tasks.
func (s *Store) Tasks() *Tasks { return &Tasks{s: s} }

const kindTask = "task"

var taskOrder = keyset{name: "tasks", cols: []string{"id"}}

func (in *TaskInput) normalize() {
	in.Title = strings.TrimSpace(in.Title)
	if in.Status == "" {
		in.Status = TaskOpen
	}
	in.DueAt = in.DueAt.UTC().Truncate(time.Microsecond)
}

func (in *TaskInput) refs() []ref {
	return []ref{{"contact_id", (*Contact)(nil), in.ContactID}, {"deal_id", (*Deal)(nil), in.DealID}}
}

// Create validates in and stores it as a new task (status open by
// default; one created done is completed now).
func (r *Tasks) Create(ctx context.Context, in TaskInput) (Task, error) {
	in.normalize()
	t := Task{TaskInput: in}
	if t.Status == TaskDone {
		t.CompletedAt = r.s.clock()
	}
	return createRecord(ctx, r.s, kindTask, &t.TaskInput, &t, in.refs(), nil)
}

// Get returns task id.
func (r *Tasks) Get(ctx context.Context, id string) (Task, error) {
	return getRecord[Task](ctx, r.s, kindTask, id)
}

// Update writes in over task id if its stored version is still version
// (else a *ConflictError). A task that becomes done gets its CompletedAt;
// one that stays done keeps it; one that leaves done loses it.
func (r *Tasks) Update(ctx context.Context, id string, version int64, in TaskInput) (Task, error) {
	in.normalize()
	t := Task{TaskInput: in}
	return updateRecord(ctx, r.s, kindTask, id, version, &t.TaskInput, &t, in.refs(), func(_ context.Context, _ bun.Tx, cur *Task) error {
		switch {
		case t.Status != TaskDone:
			t.CompletedAt = time.Time{}
		case cur.Status == TaskDone && !cur.CompletedAt.IsZero():
			t.CompletedAt = cur.CompletedAt
		default:
			t.CompletedAt = r.s.clock()
		}
		return nil
	})
}

// Delete removes task id.
func (r *Tasks) Delete(ctx context.Context, id string) error {
	return deleteRecord[Task](ctx, r.s, kindTask, id, nil)
}

// List returns a page of the tasks matching f, oldest first.
func (r *Tasks) List(ctx context.Context, f TaskFilter, o ListOptions) (Page[Task], error) {
	return listRecords(ctx, r.s, kindTask, taskOrder, o, func(q *bun.SelectQuery) *bun.SelectQuery {
		q = whereEq(q, "assignee_id", f.AssigneeID, "status", string(f.Status), "contact_id", f.ContactID, "deal_id", f.DealID)
		if !f.DueBefore.IsZero() {
			q = q.Where("?TableAlias.due_at < ?", f.DueBefore.UTC())
		}
		return q
	}, byID[Task])
}

// Note is free text about a contact, company or deal.
type Note struct {
	bun.BaseModel `bun:"table:socialcrm_crm_notes,alias:nt"`
	Record
	NoteInput
	// AuthorID is the member who wrote it (taken from the context's
	// principal on creation).
	AuthorID string `bun:"author_id,nullzero" json:"author_id,omitempty"`

	BodySealed vault.Sealed `bun:"body_sealed" json:"-"`
}

// NoteInput is what Notes.Create and Notes.Update take.
type NoteInput struct {
	Body      string `bun:"-" json:"body" validate:"required,max=100000"`
	ContactID string `bun:"contact_id,nullzero" json:"contact_id,omitempty" validate:"max=64"`
	CompanyID string `bun:"company_id,nullzero" json:"company_id,omitempty" validate:"max=64"`
	DealID    string `bun:"deal_id,nullzero" json:"deal_id,omitempty" validate:"max=64"`
}

func (n *Note) sealedFields() []sealedField {
	return []sealedField{{name: "body", sealed: &n.BodySealed, text: &n.Body}}
}

// NoteFilter narrows Notes.List; the zero value lists every note.
type NoteFilter struct {
	ContactID string `json:"contact_id,omitempty"`
	CompanyID string `json:"company_id,omitempty"`
	DealID    string `json:"deal_id,omitempty"`
}

// Notes is the repository of notes, reached with Store.Notes.
type Notes struct{ s *Store }

// Notes returns the repository of notes.
func (s *Store) Notes() *Notes { return &Notes{s: s} }

const kindNote = "note"

var noteOrder = keyset{name: "notes", cols: []string{"id"}, desc: true}

func (in *NoteInput) refs() []ref {
	return []ref{{"contact_id", (*Contact)(nil), in.ContactID}, {"company_id", (*Company)(nil), in.CompanyID}, {"deal_id", (*Deal)(nil), in.DealID}}
}

// Create validates in and stores it, with the acting member as author.
func (r *Notes) Create(ctx context.Context, in NoteInput) (Note, error) {
	n := Note{NoteInput: in, AuthorID: memberID(ctx)}
	return createRecord(ctx, r.s, kindNote, &n.NoteInput, &n, in.refs(), nil)
}

// Get returns note id.
func (r *Notes) Get(ctx context.Context, id string) (Note, error) {
	return getRecord[Note](ctx, r.s, kindNote, id)
}

// Update writes in over note id if its stored version is still version
// (else a *ConflictError); the author stays.
func (r *Notes) Update(ctx context.Context, id string, version int64, in NoteInput) (Note, error) {
	n := Note{NoteInput: in}
	return updateRecord(ctx, r.s, kindNote, id, version, &n.NoteInput, &n, in.refs(), func(_ context.Context, _ bun.Tx, cur *Note) error {
		n.AuthorID = cur.AuthorID
		return nil
	})
}

// Delete removes note id.
func (r *Notes) Delete(ctx context.Context, id string) error {
	return deleteRecord[Note](ctx, r.s, kindNote, id, nil)
}

// List returns a page of the notes matching f, the newest first.
func (r *Notes) List(ctx context.Context, f NoteFilter, o ListOptions) (Page[Note], error) {
	return listRecords(ctx, r.s, kindNote, noteOrder, o, func(q *bun.SelectQuery) *bun.SelectQuery {
		return whereEq(q, "contact_id", f.ContactID, "company_id", f.CompanyID, "deal_id", f.DealID)
	}, byID[Note])
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

// query reads filter parameters, collecting a problem per bad one.
type query struct {
	r *http.Request
	v validator
}

// id returns parameter name, which must be a UUID when present.
func (q *query) id(name string) string {
	s := q.r.URL.Query().Get(name)
	q.v.check(s == "" || tenancy.ValidateID(s) == nil, name, "must be a UUID")
	return s
}

// text returns parameter name, at most n bytes.
func (q *query) text(name string, n int) string {
	s := q.r.URL.Query().Get(name)
	q.v.check(len(s) <= n, name, "too long")
	return s
}

// time returns parameter name, an RFC 3339 time when present.
func (q *query) time(name string) time.Time {
	s := q.r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	q.v.check(err == nil, name, "must be an RFC 3339 time")
	return t
}

// version is the body of a write that names the version it read.
type version struct {
	Version int64 `json:"version"`
}

func (v version) check() error {
	if v.Version < 1 {
		return errInvalid(fieldProblem{Field: "version", Problem: "required: the version you read"})
	}
	return nil
}

// handle registers a member route that answers out (or an error) with
// status.
func (a *app) handle(pattern string, status int, fn func(r *http.Request) (any, error)) {
	a.api(pattern, member, func(w http.ResponseWriter, r *http.Request) error {
		out, err := fn(r)
		if err != nil {
			return err
		}
		if status == http.StatusNoContent {
			w.WriteHeader(status)
			return nil
		}
		writeJSON(w, status, out)
		return nil
	})
}

// withID registers a route on /{id}: the id must be a UUID (else 404).
func (a *app) withID(pattern, what string, status int, fn func(r *http.Request, id string) (any, error)) {
	a.handle(pattern, status, func(r *http.Request) (any, error) {
		id, err := pathID(r, what)
		if err != nil {
			return nil, err
		}
		return fn(r, id)
	})
}

// one wraps a record under its kind's name: one("deal")(deals.Get(ctx, id)).
func one(name string) func(v any, err error) (any, error) {
	return func(v any, err error) (any, error) {
		if err != nil {
			return nil, err
		}
		return map[string]any{name: v}, nil
	}
}

// parts registers a route on /{id} that answers a page of the record's
// parts (a history, revisions), with ?limit and ?cursor.
func parts[T any](a *app, pattern, what string, list func(ctx context.Context, id string, o crm.ListOptions) (crm.Page[T], error)) {
	a.withID(pattern, what, http.StatusOK, func(r *http.Request, id string) (any, error) {
		o, err := listOptions(r)
		if err != nil {
			return nil, err
		}
		return list(r.Context(), id, o)
	})
}

// items wraps a list that is not paged.
func items[T any](v []T, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	if v == nil {
		v = []T{}
	}
	return map[string]any{"items": v}, nil
}

// readVersioned reads {"version": n, …fields of In}: the version read and
// the input, each bad field named as readJSON names it. A missing version
// is left 0, for crm to report beside the input's other faults. The
// server-owned fields of the record T (its id, times, computed status …),
// which a client that read the record may send back, are ignored: they are
// not the client's to set. Any other unknown field is refused.
func readVersioned[T, In any](r *http.Request) (int64, In, error) {
	var in In
	var doc map[string]json.RawMessage
	if err := readJSON(r, &doc); err != nil {
		return 0, in, err
	}
	if doc == nil {
		return 0, in, errInvalid(fieldProblem{Field: "body", Problem: "must be a JSON object"})
	}
	var version int64
	if raw, ok := doc["version"]; ok {
		if json.Unmarshal(raw, &version) != nil {
			return 0, in, errInvalid(fieldProblem{Field: "version", Problem: "must be an int64"})
		}
		delete(doc, "version")
	}
	settable := jsonFields(reflect.TypeFor[In]())
	for name := range jsonFields(reflect.TypeFor[T]()) {
		if !settable[name] {
			delete(doc, name)
		}
	}
	rest, err := json.Marshal(doc)
	if err != nil {
		return 0, in, err
	}
	if err := decodeJSON(rest, &in); err != nil {
		return 0, in, err
	}
	return version, in, nil
}

// jsonFields returns the JSON names of t's fields, those of embedded
// structs included, as encoding/json names them.
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			for n := range jsonFields(f.Type) {
				out[n] = true
			}
		case !f.IsExported():
		case name == "":
			out[f.Name] = true
		default:
			out[name] = true
		}
	}
	return out
}

// recordRoutes registers the CRM records beyond contacts and companies:
// pipelines and deals, activities, tasks, notes, consent, clients with
// their portal members, campaigns, proposals, invoices, contacts CSV and
// custom fields.
func (a *app) recordRoutes() {
	s := a.sdk.CRM
	pipelines := s.Pipelines()
	registerCRUD(a, "/v1/pipelines", crud[crm.Pipeline, crm.PipelineInput]{name: "pipeline",
		create: pipelines.Create, get: pipelines.Get, update: pipelines.Update,
		list: func(r *http.Request, o crm.ListOptions) (any, error) {
			q := query{r: r}
			f := crm.PipelineFilter{NamePrefix: q.text("name_prefix", 200)}
			if err := q.v.err(); err != nil {
				return nil, err
			}
			return pipelines.List(r.Context(), f, o)
		}})

	deals := s.Deals()
	registerCRUD(a, "/v1/deals", crud[crm.Deal, crm.DealInput]{name: "deal",
		create: deals.Create, get: deals.Get, update: deals.Update, delete: deals.Delete,
		list: func(r *http.Request, o crm.ListOptions) (any, error) {
			q := query{r: r}
			f := crm.DealFilter{PipelineID: q.id("pipeline_id"), Stage: q.text("stage", 100),
				Status: crm.DealStatus(q.text("status", 20)), OwnerID: q.id("owner_id"),
				ContactID: q.id("contact_id"), CompanyID: q.id("company_id")}
			if err := q.v.err(); err != nil {
				return nil, err
			}
			return deals.List(r.Context(), f, o)
		}})
	// A stage move is an update of the stage alone; the history records it
	// and the status follows the stage.
	a.withID("POST /v1/deals/{id}/stage", "deal", http.StatusOK, func(r *http.Request, id string) (any, error) {
		var in struct {
			Version int64  `json:"version"`
			Stage   string `json:"stage"`
		}
		if err := readJSON(r, &in); err != nil {
			return nil, err
		}
		return one("deal")(deals.Move(r.Context(), id, in.Version, in.Stage))
	})
	parts(a, "GET /v1/deals/{id}/history", "deal", deals.History)

	activities := s.Activities()
	registerCRUD(a, "/v1/activities", crud[crm.Activity, crm.ActivityInput]{name: "activity",
		create: activities.Create, get: activities.Get, update: activities.Update, delete: activities.Delete,
		list: func(r *http.Request, o crm.ListOptions) (any, error) {
			q := query{r: r}
			f := crm.ActivityFilter{ContactID: q.id("contact_id"), CompanyID: q.id("company_id"), DealID: q.id("deal_id"),
				Kind: crm.ActivityKind(q.text("kind", 20))}
			if err := q.v.err(); err != nil {
				return nil, err
			}
			return activities.List(r.Context(), f, o)
		}})
	tasks := s.Tasks()
	registerCRUD(a, "/v1/tasks", crud[crm.Task, crm.TaskInput]{name: "task",
		create: tasks.Create, get: tasks.Get, update: tasks.Update, delete: tasks.Delete,
		list: func(r *http.Request, o crm.ListOptions) (any, error) {
			q := query{r: r}
			f := crm.TaskFilter{AssigneeID: q.id("assignee_id"), Status: crm.TaskStatus(q.text("status", 20)),
				ContactID: q.id("contact_id"), DealID: q.id("deal_id"), DueBefore: q.time("due_before")}
			if err := q.v.err(); err != nil {
				return nil, err
			}
			return tasks.List(r.Context(), f, o)
		}})
	notes := s.Notes()
	registerCRUD(a, "/v1/notes", crud[crm.Note, crm.NoteInput]{name: "note",
		create: notes.Create, get: notes.Get, update: notes.Update, delete: notes.Delete,
		list: func(r *http.Request, o crm.ListOptions) (any, error) {
			q := query{r: r}
			f := crm.NoteFilter{ContactID: q.id("contact_id"), CompanyID: q.id("company_id"), DealID: q.id("deal_id")}
			if err := q.v.err(); err != nil {
				return nil, err
			}
			return notes.List(r.Context(), f, o)
		}})

	a.consentRoutes()
	a.clientRoutes()
	a.billingRoutes()
	a.csvRoutes()
	a.fieldRoutes()
}

// consentRoutes: the current consent of a contact, its history, and
// grant/withdraw.
func (a *app) consentRoutes() {
	consents := a.sdk.CRM.Consents()
	a.withID("GET /v1/contacts/{id}/consent", "contact", http.StatusOK, func(r *http.Request, id string) (any, error) {
		return items(consents.Current(r.Context(), id))
	})
	parts(a, "GET /v1/contacts/{id}/consent/history", "contact", consents.History)
	change := func(grant bool) func(r *http.Request, id string) (any, error) {
		return func(r *http.Request, id string) (any, error) {
			var in struct {
				Channel crm.Channel `json:"channel"`
				Purpose crm.Purpose `json:"purpose"`
				Source  string      `json:"source"`
			}
			if err := readJSON(r, &in); err != nil {
				return nil, err
			}
			ch := crm.ConsentChange{ContactID: id, Channel: in.Channel, Purpose: in.Purpose, Source: in.Source}
			var c crm.Consent
			var err error
			if grant {
				c, err = consents.Grant(r.Context(), ch)
			} else {
				c, err = consents.Withdraw(r.Context(), ch)
			}
			// The contact is the path's: an unknown one is a 404.
			var verr *crm.ValidationError
			if errors.As(err, &verr) {
				for _, f := range verr.Fields {
					if f.Field == "contact_id" {
						return nil, errNotFound("contact")
					}
				}
			}
			return one("consent")(c, err)
		}
	}
	a.withID("POST /v1/contacts/{id}/consent/grant", "contact", http.StatusOK, change(true))
	a.withID("POST /v1/contacts/{id}/consent/withdraw", "contact", http.StatusOK, change(false))
}

// clientRoutes: the tenant's clients, the members who may see them (the
// client portal), and the members themselves.
func (a *app) clientRoutes() {
	clients := a.sdk.CRM.Clients()
	registerCRUD(a, "/v1/clients", crud[crm.Client, crm.ClientInput]{name: "client",
		create: clients.Create, get: clients.Get, update: clients.Update, delete: clients.Delete,
		list: func(r *http.Request, o crm.ListOptions) (any, error) {
			return clients.List(r.Context(), crm.ClientFilter{}, o)
		}})
	a.withID("GET /v1/clients/{id}/members", "client", http.StatusOK, func(r *http.Request, id string) (any, error) {
		o, err := listOptions(r)
		if err != nil {
			return nil, err
		}
		return clients.Members(r.Context(), id, o)
	})
	a.withID("POST /v1/clients/{id}/members", "client", http.StatusCreated, func(r *http.Request, id string) (any, error) {
		var in struct {
			MemberID string `json:"member_id"`
		}
		if err := readJSON(r, &in); err != nil {
			return nil, err
		}
		if tenancy.ValidateID(in.MemberID) != nil {
			return nil, errInvalid(fieldProblem{Field: "member_id", Problem: "must be a UUID"})
		}
		return one("link")(clients.Link(r.Context(), id, in.MemberID))
	})
	a.handle("DELETE /v1/clients/{id}/members/{member_id}", http.StatusNoContent, func(r *http.Request) (any, error) {
		if _, err := pathID(r, "client"); err != nil {
			return nil, err
		}
		m := r.PathValue("member_id")
		if tenancy.ValidateID(m) != nil {
			return nil, errNotFound("member")
		}
		return nil, clients.Unlink(r.Context(), m)
	})

	// Members: owners and admins add them (a client-role member names its
	// client); the tenant's people list them.
	a.handle("GET /v1/members", http.StatusOK, func(r *http.Request) (any, error) {
		return items(a.sdk.Tenants.Members(r.Context()))
	})
	a.handle("POST /v1/members", http.StatusCreated, func(r *http.Request) (any, error) {
		var in struct {
			Email    string       `json:"email"`
			Name     string       `json:"name"`
			Role     tenancy.Role `json:"role"`
			ClientID string       `json:"client_id"`
			Password string       `json:"password"`
		}
		if err := readJSON(r, &in); err != nil {
			return nil, err
		}
		var v validator
		v.check(in.Email != "", "email", "required")
		v.check(strings.TrimSpace(in.Name) != "", "name", "required")
		v.check(in.Role != "", "role", "required")
		v.check(in.ClientID == "" || tenancy.ValidateID(in.ClientID) == nil, "client_id", "must be a UUID")
		v.check(passwordProblem(in.Password) == "", "password", passwordProblem(in.Password))
		if err := v.err(); err != nil {
			return nil, err
		}
		m, err := a.sdk.Tenants.AddMember(r.Context(), tenancy.NewMember{Email: in.Email, Name: strings.TrimSpace(in.Name),
			Role: in.Role, ClientID: in.ClientID, Password: in.Password})
		return one("member")(m, err)
	})
}

// billingRoutes: campaigns, proposals (revisions, status moves, history)
// and invoices (line items, computed totals, payment status moves).
func (a *app) billingRoutes() {
	s := a.sdk.CRM
	campaigns := s.Campaigns()
	registerCRUD(a, "/v1/campaigns", crud[crm.Campaign, crm.CampaignInput]{name: "campaign",
		create: campaigns.Create, get: campaigns.Get, update: campaigns.Update, delete: campaigns.Delete,
		list: func(r *http.Request, o crm.ListOptions) (any, error) {
			q := query{r: r}
			f := crm.CampaignFilter{ClientID: q.id("client_id"), Status: crm.CampaignStatus(q.text("status", 20))}
			if err := q.v.err(); err != nil {
				return nil, err
			}
			return campaigns.List(r.Context(), f, o)
		}})

	proposals := s.Proposals()
	a.handle("GET /v1/proposals", http.StatusOK, func(r *http.Request) (any, error) {
		o, err := listOptions(r)
		if err != nil {
			return nil, err
		}
		q := query{r: r}
		f := crm.ProposalFilter{ClientID: q.id("client_id"), Status: crm.ProposalStatus(q.text("status", 20))}
		if err := q.v.err(); err != nil {
			return nil, err
		}
		return proposals.List(r.Context(), f, o)
	})
	a.handle("POST /v1/proposals", http.StatusCreated, func(r *http.Request) (any, error) {
		var in crm.ProposalInput
		if err := readJSON(r, &in); err != nil {
			return nil, err
		}
		return one("proposal")(proposals.Create(r.Context(), in))
	})
	a.withID("GET /v1/proposals/{id}", "proposal", http.StatusOK, func(r *http.Request, id string) (any, error) {
		return one("proposal")(proposals.Get(r.Context(), id))
	})
	a.withID("DELETE /v1/proposals/{id}", "proposal", http.StatusNoContent, func(r *http.Request, id string) (any, error) {
		return nil, proposals.Delete(r.Context(), id)
	})
	a.withID("POST /v1/proposals/{id}/revisions", "proposal", http.StatusOK, func(r *http.Request, id string) (any, error) {
		var in struct {
			version
			crm.ProposalContent
		}
		if err := readJSON(r, &in); err != nil {
			return nil, err
		}
		if err := in.check(); err != nil {
			return nil, err
		}
		return one("proposal")(proposals.Revise(r.Context(), id, in.Version, in.ProposalContent))
	})
	parts(a, "GET /v1/proposals/{id}/revisions", "proposal", proposals.Revisions)
	a.withID("POST /v1/proposals/{id}/status", "proposal", http.StatusOK, func(r *http.Request, id string) (any, error) {
		var in struct {
			version
			Status crm.ProposalStatus `json:"status"`
			Note   string             `json:"note"`
		}
		if err := readJSON(r, &in); err != nil {
			return nil, err
		}
		if err := in.check(); err != nil {
			return nil, err
		}
		return one("proposal")(proposals.Transition(r.Context(), id, in.Version, in.Status, in.Note))
	})
	parts(a, "GET /v1/proposals/{id}/history", "proposal", proposals.History)

	invoices := s.Invoices()
	registerCRUD(a, "/v1/invoices", crud[crm.Invoice, crm.InvoiceInput]{name: "invoice",
		create: invoices.Create, get: invoices.Get, update: invoices.Update, delete: invoices.Delete,
		list: func(r *http.Request, o crm.ListOptions) (any, error) {
			q := query{r: r}
			f := crm.InvoiceFilter{ClientID: q.id("client_id"), Status: crm.InvoiceStatus(q.text("status", 20))}
			if err := q.v.err(); err != nil {
				return nil, err
			}
			return invoices.List(r.Context(), f, o)
		}})
	move := func(fn func(ctx context.Context, id string, in invoiceMove) (crm.Invoice, error)) func(r *http.Request, id string) (any, error) {
		return func(r *http.Request, id string) (any, error) {
			var in invoiceMove
			if err := readJSON(r, &in); err != nil {
				return nil, err
			}
			if err := in.check(); err != nil {
				return nil, err
			}
			return one("invoice")(fn(r.Context(), id, in))
		}
	}
	a.withID("POST /v1/invoices/{id}/issue", "invoice", http.StatusOK, move(func(ctx context.Context, id string, in invoiceMove) (crm.Invoice, error) {
		return invoices.Issue(ctx, id, in.Version)
	}))
	a.withID("POST /v1/invoices/{id}/payments", "invoice", http.StatusOK, move(func(ctx context.Context, id string, in invoiceMove) (crm.Invoice, error) {
		if in.Amount <= 0 {
			return crm.Invoice{}, errInvalid(fieldProblem{Field: "amount", Problem: "must be a positive amount in minor units"})
		}
		return invoices.RecordPayment(ctx, id, in.Version, in.Amount)
	}))
	a.withID("POST /v1/invoices/{id}/void", "invoice", http.StatusOK, move(func(ctx context.Context, id string, in invoiceMove) (crm.Invoice, error) {
		return invoices.Void(ctx, id, in.Version)
	}))
}

// invoiceMove is the body of an invoice's status move.
type invoiceMove struct {
	version
	// Amount is a payment, in minor units (payments only).
	Amount int64 `json:"amount,omitempty"`
}

// maxCSV bounds an import's body.
const maxCSV = 10 << 20

// csvRoutes: contacts exported and imported as CSV.
func (a *app) csvRoutes() {
	contacts := a.sdk.CRM.Contacts()
	a.api("GET /v1/contacts/export", member, func(w http.ResponseWriter, r *http.Request) error {
		q := query{r: r}
		f := crm.ContactFilter{Stage: crm.Stage(q.text("stage", 20)), Tag: q.text("tag", 50)}
		if err := q.v.err(); err != nil {
			return err
		}
		// Check access before the header goes out: a refusal must still be
		// an error answer.
		if _, err := contacts.List(r.Context(), f, crm.ListOptions{Limit: 1}); err != nil {
			return err
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="contacts.csv"`)
		w.Header().Set("Cache-Control", "no-store")
		if _, err := contacts.ExportCSV(r.Context(), w, f); err != nil {
			a.log.ErrorContext(r.Context(), "contacts export failed midway", "err", err)
		}
		return nil
	})
	a.api("POST /v1/contacts/import", member, func(w http.ResponseWriter, r *http.Request) error {
		if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "text/csv") {
			return &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "send text/csv"}
		}
		src := r.URL.Query().Get("source")
		if len(src) > 200 {
			return errInvalid(fieldProblem{Field: "source", Problem: "at most 200 characters"})
		}
		onMatch := crm.ImportMatch(r.URL.Query().Get("on_match"))
		if onMatch != "" && onMatch != crm.ImportUpdate && onMatch != crm.ImportSkip {
			return errInvalid(fieldProblem{Field: "on_match", Problem: "must be update or skip"})
		}
		rep, err := contacts.ImportCSV(r.Context(), http.MaxBytesReader(w, r.Body, maxCSV), crm.ImportOptions{Source: src, OnMatch: onMatch})
		if err != nil {
			var maxBytes *http.MaxBytesError
			if errors.As(err, &maxBytes) || errors.Is(err, crm.ErrInvalid) || errors.Is(err, tenancy.ErrForbidden) {
				return err
			}
			if errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "header") || strings.Contains(err.Error(), "csv") {
				return errInvalid(fieldProblem{Field: "body", Problem: "not a CSV file with a header row: " + err.Error()})
			}
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"report": rep})
		return nil
	})
}

// fieldRoutes: custom field definitions per record kind, and the values
// of a record.
func (a *app) fieldRoutes() {
	fields := a.sdk.CRM.Fields()
	kindOK := func(kind string) bool {
		for _, k := range crm.RecordKinds() {
			if k == kind {
				return true
			}
		}
		return false
	}
	a.handle("GET /v1/fields", http.StatusOK, func(r *http.Request) (any, error) {
		kind := r.URL.Query().Get("record_kind")
		if !kindOK(kind) {
			return nil, errInvalid(fieldProblem{Field: "record_kind", Problem: "must be one of " + strings.Join(crm.RecordKinds(), ", ")})
		}
		o, err := listOptions(r)
		if err != nil {
			return nil, err
		}
		return fields.List(r.Context(), crm.FieldDefFilter{RecordKind: kind}, o)
	})
	a.handle("POST /v1/fields", http.StatusCreated, func(r *http.Request) (any, error) {
		var in crm.FieldDefInput
		if err := readJSON(r, &in); err != nil {
			return nil, err
		}
		return one("field")(fields.Define(r.Context(), in))
	})
	a.withID("DELETE /v1/fields/{id}", "field", http.StatusNoContent, func(r *http.Request, id string) (any, error) {
		return nil, fields.Delete(r.Context(), id)
	})
	recordPath := func(r *http.Request) (string, string, error) {
		kind := r.PathValue("kind")
		if !kindOK(kind) {
			return "", "", errNotFound("record kind")
		}
		id, err := pathID(r, kind)
		return kind, id, err
	}
	a.handle("GET /v1/records/{kind}/{id}/fields", http.StatusOK, func(r *http.Request) (any, error) {
		kind, id, err := recordPath(r)
		if err != nil {
			return nil, err
		}
		return one("values")(fields.Values(r.Context(), kind, id))
	})
	a.handle("PUT /v1/records/{kind}/{id}/fields", http.StatusOK, func(r *http.Request) (any, error) {
		kind, id, err := recordPath(r)
		if err != nil {
			return nil, err
		}
		var in struct {
			Values map[string]any `json:"values"`
		}
		if err := readJSON(r, &in); err != nil {
			return nil, err
		}
		out, err := fields.Set(r.Context(), kind, id, in.Values)
		var verr *crm.ValidationError
		if errors.As(err, &verr) {
			// Name each field as the body did: values.<name>.
			ae, _ := crmError(err)
			for i := range ae.Fields {
				if f, ok := strings.CutPrefix(ae.Fields[i].Field, "fields."); ok {
					ae.Fields[i].Field = "values." + f
				}
			}
			return nil, ae
		}
		return one("values")(out, err)
	})
}

package main

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/tenancy"
)

// crmError maps crm's typed errors to the API's shape.
func crmError(err error) (*apiError, bool) {
	var verr *crm.ValidationError
	var conflict *crm.ConflictError
	var transition *crm.TransitionError
	var dup *crm.DuplicateError
	switch {
	case errors.As(err, &dup):
		return &apiError{Status: http.StatusConflict, Code: "duplicate", ContactID: dup.ContactID,
			Message: "contact " + dup.ContactID + " has the same " + dup.Field + ": merge into it, or create with ?allow_duplicate=true"}, true
	case errors.As(err, &verr):
		ae := errInvalid()
		for _, f := range verr.Fields {
			ae.Fields = append(ae.Fields, fieldProblem{Field: f.Field, Problem: f.Message})
		}
		return ae, true
	case errors.As(err, &conflict):
		return &apiError{Status: http.StatusConflict, Code: "version_conflict",
			Message: "the record changed since version " + strconv.FormatInt(conflict.Version, 10) + "; it is at " + strconv.FormatInt(conflict.Current, 10) + ": re-read and reapply"}, true
	case errors.As(err, &transition):
		return &apiError{Status: http.StatusConflict, Code: "invalid_transition",
			Message: "a " + transition.Kind + " cannot go from " + transition.From + " to " + transition.To}, true
	case errors.Is(err, crm.ErrInUse):
		return &apiError{Status: http.StatusConflict, Code: "in_use", Message: "the record is in use or past its draft: " +
			"void an issued invoice, remove what refers to the record first"}, true
	case errors.Is(err, crm.ErrNotFound):
		return errNotFound("record"), true
	case errors.Is(err, crm.ErrInvalid):
		return errInvalid(fieldProblem{Field: "body", Problem: "invalid input"}), true
	}
	return nil, false
}

// listOptions reads ?limit and ?cursor.
func listOptions(r *http.Request) (crm.ListOptions, error) {
	o := crm.ListOptions{Cursor: r.URL.Query().Get("cursor")}
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 || n > crm.MaxLimit {
			return o, errInvalid(fieldProblem{Field: "limit", Problem: "must be an integer from 0 to 1000"})
		}
		o.Limit = n
	}
	return o, nil
}

// pathID returns the path's {id}, a UUID, or a 404.
func pathID(r *http.Request, what string) (string, error) {
	id := r.PathValue("id")
	if tenancy.ValidateID(id) != nil {
		return "", errNotFound(what)
	}
	return id, nil
}

// crud serves one CRM record kind whose repository takes an input type In
// and returns records T: list, create (a body of In), get, update (a body
// of In with "version", the version read: optimistic concurrency), delete.
// A nil update or delete is not served.
type crud[T, In any] struct {
	name   string
	list   func(*http.Request, crm.ListOptions) (any, error)
	create func(context.Context, In) (T, error)
	// createFrom, when set, is create with the request (its query).
	createFrom func(*http.Request, In) (T, error)
	get        func(context.Context, string) (T, error)
	update     func(ctx context.Context, id string, version int64, in In) (T, error)
	delete     func(context.Context, string) error
}

func registerCRUD[T, In any](a *app, base string, k crud[T, In]) {
	a.handle("GET "+base, http.StatusOK, func(r *http.Request) (any, error) {
		o, err := listOptions(r)
		if err != nil {
			return nil, err
		}
		return k.list(r, o)
	})
	a.handle("POST "+base, http.StatusCreated, func(r *http.Request) (any, error) {
		var in In
		if err := readJSON(r, &in); err != nil {
			return nil, err
		}
		if k.createFrom != nil {
			return one(k.name)(k.createFrom(r, in))
		}
		return one(k.name)(k.create(r.Context(), in))
	})
	a.withID("GET "+base+"/{id}", k.name, http.StatusOK, func(r *http.Request, id string) (any, error) {
		return one(k.name)(k.get(r.Context(), id))
	})
	if k.update != nil {
		a.withID("PUT "+base+"/{id}", k.name, http.StatusOK, func(r *http.Request, id string) (any, error) {
			v, in, err := readVersioned[T, In](r)
			if err != nil {
				return nil, err
			}
			return one(k.name)(k.update(r.Context(), id, v, in))
		})
	}
	if k.delete != nil {
		a.withID("DELETE "+base+"/{id}", k.name, http.StatusNoContent, func(r *http.Request, id string) (any, error) {
			return nil, k.delete(r.Context(), id)
		})
	}
}

// crmRoutes registers the CRM records' API.
func (a *app) crmRoutes() {
	contacts := a.sdk.CRM.Contacts()
	registerCRUD(a, "/v1/contacts", crud[crm.Contact, crm.ContactInput]{name: "contact",
		createFrom: func(r *http.Request, in crm.ContactInput) (crm.Contact, error) {
			var opts []crm.CreateOption
			switch r.URL.Query().Get("allow_duplicate") {
			case "", "false":
			case "true":
				opts = append(opts, crm.AllowDuplicate())
			default:
				return crm.Contact{}, errInvalid(fieldProblem{Field: "allow_duplicate", Problem: "must be true or false"})
			}
			return contacts.Create(r.Context(), in, opts...)
		},
		get: contacts.Get, update: contacts.Update, delete: contacts.Delete,
		list: func(r *http.Request, o crm.ListOptions) (any, error) {
			q := r.URL.Query()
			return contacts.List(r.Context(), crm.ContactFilter{Stage: crm.Stage(q.Get("stage")), Tag: q.Get("tag"),
				Email: q.Get("email"), Phone: q.Get("phone"), NamePrefix: q.Get("name_prefix")}, o)
		}})
	a.api("POST /v1/contacts/{id}/merge", member, func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r, "contact")
		if err != nil {
			return err
		}
		var in struct {
			DuplicateID string `json:"duplicate_id"`
		}
		if err := readJSON(r, &in); err != nil {
			return err
		}
		if tenancy.ValidateID(in.DuplicateID) != nil {
			return errInvalid(fieldProblem{Field: "duplicate_id", Problem: "must be the id of the contact to merge into this one"})
		}
		kept, err := contacts.Merge(r.Context(), id, in.DuplicateID)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"contact": kept})
		return nil
	})
	companies := a.sdk.CRM.Companies()
	registerCRUD(a, "/v1/companies", crud[crm.Company, crm.CompanyInput]{name: "company",
		create: companies.Create, get: companies.Get, update: companies.Update, delete: companies.Delete,
		list: func(r *http.Request, o crm.ListOptions) (any, error) {
			return companies.List(r.Context(), crm.CompanyFilter{}, o)
		}})
	a.recordRoutes()
}

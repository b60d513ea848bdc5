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

// crud serves one CRM record kind: list, create, get, update (with its
// version: optimistic concurrency), delete. A nil update or delete is not
// served.
type crud[T any] struct {
	name   string
	create func(context.Context, T) (T, error)
	// createFrom, when set, is create with the request (its query).
	createFrom func(*http.Request, T) (T, error)
	get        func(context.Context, string) (T, error)
	update     func(context.Context, T) (T, error)
	delete     func(context.Context, string) error
	list       func(*http.Request, crm.ListOptions) (any, error)
	setID      func(*T, string)
}

func registerCRUD[T any](a *app, base string, c crud[T]) {
	a.api("GET "+base, member, func(w http.ResponseWriter, r *http.Request) error {
		o, err := listOptions(r)
		if err != nil {
			return err
		}
		page, err := c.list(r, o)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, page)
		return nil
	})
	a.api("POST "+base, member, func(w http.ResponseWriter, r *http.Request) error {
		var in T
		if err := readJSON(r, &in); err != nil {
			return err
		}
		c.setID(&in, "")
		create := c.create
		if c.createFrom != nil {
			create = func(_ context.Context, in T) (T, error) { return c.createFrom(r, in) }
		}
		out, err := create(r.Context(), in)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, map[string]any{c.name: out})
		return nil
	})
	a.api("GET "+base+"/{id}", member, func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r, c.name)
		if err != nil {
			return err
		}
		out, err := c.get(r.Context(), id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{c.name: out})
		return nil
	})
	if c.update == nil {
		return
	}
	a.api("PUT "+base+"/{id}", member, func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r, c.name)
		if err != nil {
			return err
		}
		var in T
		if err := readJSON(r, &in); err != nil {
			return err
		}
		c.setID(&in, id)
		out, err := c.update(r.Context(), in)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{c.name: out})
		return nil
	})
	if c.delete == nil {
		return
	}
	a.api("DELETE "+base+"/{id}", member, func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r, c.name)
		if err != nil {
			return err
		}
		if err := c.delete(r.Context(), id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// crmRoutes registers the CRM records' API.
func (a *app) crmRoutes() {
	contacts := a.sdk.CRM.Contacts()
	registerCRUD(a, "/v1/contacts", crud[crm.Contact]{name: "contact",
		createFrom: func(r *http.Request, c crm.Contact) (crm.Contact, error) {
			var opts []crm.CreateOption
			switch r.URL.Query().Get("allow_duplicate") {
			case "", "false":
			case "true":
				opts = append(opts, crm.AllowDuplicate())
			default:
				return crm.Contact{}, errInvalid(fieldProblem{Field: "allow_duplicate", Problem: "must be true or false"})
			}
			return contacts.Create(r.Context(), c, opts...)
		},
		get: contacts.Get, update: contacts.Update, delete: contacts.Delete,
		setID: func(c *crm.Contact, id string) { c.ID, c.TenantID = id, "" },
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
	registerCRUD(a, "/v1/companies", crud[crm.Company]{name: "company",
		create: companies.Create, get: companies.Get, update: companies.Update, delete: companies.Delete,
		setID: func(c *crm.Company, id string) { c.ID, c.TenantID = id, "" },
		list: func(r *http.Request, o crm.ListOptions) (any, error) {
			return companies.List(r.Context(), crm.CompanyFilter{}, o)
		}})
	a.recordRoutes()
}

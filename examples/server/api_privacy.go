package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"slices"
	"strings"

	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/tenancy"
)

var requestKinds = []retention.RequestKind{retention.KindAccess, retention.KindExport, retention.KindErasure,
	retention.KindRectification, retention.KindRestriction, retention.KindObjection}

// subjectKinds lists the identifier kinds a request may name ("email",
// "phone", "thread_id", "open_id"…): the engine resolves each to the
// person's full set of keys, so one identifier finds all of her data.
func (a *app) subjectKinds() []string { return a.sdk.Retention.Kinds() }

type requestInput struct {
	Kind    retention.RequestKind `json:"kind"`
	Subject map[string]string     `json:"subject"`
}

func (a *app) submitRequest(ctx context.Context, in requestInput) (retention.Request, error) {
	var v validator
	v.check(slices.Contains(requestKinds, in.Kind), "kind", "must be one of access, export, erasure, rectification, restriction, objection")
	v.check(len(in.Subject) > 0, "subject", "name at least one identifier, e.g. {\"email\": \"ann@example.com\"}")
	kinds := a.subjectKinds()
	for k, val := range in.Subject {
		v.check(slices.Contains(kinds, k), "subject."+k, "unknown identifier kind; known: "+strings.Join(kinds, ", "))
		v.check(strings.TrimSpace(val) != "" && len(val) <= 320, "subject."+k, "must be 1 to 320 characters")
		// An identifier that cannot name anyone would only ever find no
		// data: refuse it instead of recording a request nobody can answer.
		switch val = strings.TrimSpace(val); {
		case val == "":
		case k == "email":
			addr, err := mail.ParseAddress(val)
			v.check(err == nil && addr.Address == val, "subject.email", "must be an e-mail address such as ann@example.com")
		case k == "phone":
			v.check(looksLikePhone(val), "subject.phone", "must be a phone number: digits, with +, spaces, dashes or brackets")
		}
	}
	if err := v.err(); err != nil {
		return retention.Request{}, err
	}
	return a.sdk.Retention.Submit(ctx, retention.Request{Kind: in.Kind, Subject: in.Subject})
}

func (a *app) createRequest(w http.ResponseWriter, r *http.Request) error {
	var in requestInput
	if err := readJSON(r, &in); err != nil {
		return err
	}
	req, err := a.submitRequest(r.Context(), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"request": req})
	return nil
}

// requests lists the tenant's data-subject requests for the console, open
// ones first by deadline (the first 500).
func (a *app) requests(ctx context.Context) ([]retention.Request, error) {
	p, err := a.sdk.Retention.Requests(ctx, retention.RequestFilter{}, retention.ListOptions{Limit: 500})
	return p.Items, err
}

// listRequests pages through the tenant's data-subject requests, open
// ones first by deadline (limit, cursor; status and kind filter).
func (a *app) listRequests(w http.ResponseWriter, r *http.Request) error {
	o, err := listOptions(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := retention.RequestFilter{Status: retention.RequestStatus(q.Get("status")), Kind: retention.RequestKind(q.Get("kind"))}
	p, err := a.sdk.Retention.Requests(r.Context(), f, retention.ListOptions{Limit: o.Limit, Cursor: o.Cursor})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"requests": p.Items, "next_cursor": p.NextCursor})
	return nil
}

func (a *app) request(r *http.Request) (retention.Request, error) {
	id := r.PathValue("id")
	if tenancy.ValidateID(id) != nil {
		return retention.Request{}, errNotFound("request")
	}
	return a.sdk.Retention.Get(r.Context(), id)
}

func (a *app) getRequest(w http.ResponseWriter, r *http.Request) error {
	req, err := a.request(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"request": req})
	return nil
}

func (a *app) verifyRequest(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Outcome retention.Verification `json:"outcome"`
	}
	if err := readJSON(r, &in); err != nil {
		return err
	}
	if in.Outcome != retention.VerificationVerified && in.Outcome != retention.VerificationFailed {
		return errInvalid(fieldProblem{Field: "outcome", Problem: "must be verified or failed"})
	}
	req, err := a.request(r)
	if err != nil {
		return err
	}
	req, err = a.sdk.Retention.SetVerification(r.Context(), req.ID, in.Outcome)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"request": req})
	return nil
}

// exportRequest streams the subject's data as a zip of JSON and CSV per
// category. Preconditions are checked before the first byte, so a
// refusal is a clean 4xx.
func (a *app) exportRequest(w http.ResponseWriter, r *http.Request) error {
	req, err := a.request(r)
	if err != nil {
		return err
	}
	if req.Kind != retention.KindAccess && req.Kind != retention.KindExport {
		return &apiError{Status: http.StatusConflict, Code: "wrong_kind", Message: "only access and export requests have an export"}
	}
	if req.Verification != retention.VerificationVerified {
		return &apiError{Status: http.StatusConflict, Code: "not_verified", Message: "the requester's identity is not verified yet"}
	}
	if err := tenancy.Require(r.Context(), tenancy.RoleOwner, tenancy.RoleAdmin); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="export-%s.zip"`, req.ID))
	w.Header().Set("Cache-Control", "no-store") // personal data: no cache keeps a copy
	if _, err := a.sdk.Retention.Export(r.Context(), req.ID, w); err != nil {
		// Headers are gone: the truncated zip fails to open; log it. The
		// request stays open: nothing was delivered.
		a.log.ErrorContext(r.Context(), "export failed midway", "request", req.ID, "err", err)
		return nil
	}
	// Delivered whole: the request is answered, so it is closed (its
	// deadline no longer counts as pending). The export stays available
	// to the tenant's owners and admins if the person needs it again.
	if req.Status == retention.StatusOpen {
		if _, err := a.sdk.Retention.Close(r.Context(), req.ID, retention.StatusCompleted); err != nil {
			a.log.ErrorContext(r.Context(), "closing a delivered request failed", "request", req.ID, "err", err)
		}
	}
	return nil
}

// erase carries out the path's erasure request.
func (a *app) erase(r *http.Request) (retention.Receipt, error) {
	req, err := a.request(r)
	if err != nil {
		return retention.Receipt{}, err
	}
	if req.Kind != retention.KindErasure {
		return retention.Receipt{}, &apiError{Status: http.StatusConflict, Code: "wrong_kind", Message: "only erasure requests erase"}
	}
	rcpt, err := a.sdk.Retention.Erase(r.Context(), req.ID)
	if errors.Is(err, retention.ErrClosed) {
		// Completed already — by the scheduled job that carries out
		// verified erasures, another replica, or an earlier click: the
		// person's data is erased either way, and the answer says what
		// the request recorded. A rejected request stays a conflict.
		if done, rerr := a.sdk.Retention.Receipt(r.Context(), req.ID); rerr == nil {
			return done, nil
		}
	}
	return rcpt, err
}

func (a *app) eraseRequest(w http.ResponseWriter, r *http.Request) error {
	receipt, err := a.erase(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"receipt": receipt})
	return nil
}

// dataMap renders the record of processing: Markdown with ?format=md (or
// Accept: text/markdown), JSON otherwise.
func (a *app) dataMap(w http.ResponseWriter, r *http.Request) error {
	dm := a.sdk.Retention.DataMap()
	format := r.URL.Query().Get("format")
	switch {
	case format == "md" || format == "markdown" || (format == "" && strings.Contains(r.Header.Get("Accept"), "text/markdown")):
		w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
		return dm.WriteMarkdown(w)
	case format == "" || format == "json":
		w.Header().Set("Content-Type", "application/json")
		return dm.WriteJSON(w)
	}
	return errInvalid(fieldProblem{Field: "format", Problem: "must be json or md"})
}

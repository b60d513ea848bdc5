package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
)

// apiError is the one error shape of the JSON API:
//
//	{"error": {"code": "invalid", "message": "…", "fields": [{"field": "email", "problem": "required"}], "request_id": "…"}}
type apiError struct {
	Status  int            `json:"-"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Fields  []fieldProblem `json:"fields,omitempty"`
	// ContactID names the existing contact of a "duplicate" answer.
	ContactID string `json:"contact_id,omitempty"`
	// RequestID is the request's id (X-Request-Id), to quote when asking
	// about a failure: the server's log lines about it carry the same id.
	RequestID string `json:"request_id,omitempty"`
}

// fieldProblem names one bad input field and what is wrong with it.
type fieldProblem struct {
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errInvalid(fields ...fieldProblem) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "invalid", Message: "the request has invalid fields", Fields: fields}
}

func errNotFound(what string) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: what + " not found"}
}

var (
	errUnauthorized = &apiError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "missing or invalid credentials"}
	errForbidden    = &apiError{Status: http.StatusForbidden, Code: "forbidden", Message: "your role does not allow this"}
	errRateLimited  = &apiError{Status: http.StatusTooManyRequests, Code: "rate_limited", Message: "too many attempts from this address; try again later"}
)

// validator collects field problems.
type validator []fieldProblem

func (v *validator) check(ok bool, field, problem string) {
	if !ok {
		*v = append(*v, fieldProblem{Field: field, Problem: problem})
	}
}

func (v validator) err() error {
	if len(v) == 0 {
		return nil
	}
	return errInvalid(v...)
}

// errBadCredentials answers a failed login, whatever the reason.
var errBadCredentials = &apiError{Status: http.StatusUnauthorized, Code: "invalid_credentials",
	Message: "invalid credentials, or too many failed attempts: try again later"}

// toAPIError maps an SDK error to the API's shape. Unknown errors become a
// 500 without detail (the detail goes to the log).
func toAPIError(err error) (*apiError, bool) {
	var ae *apiError
	var tv *tenancy.ValidationError
	var rv *retention.ValidationError
	var locked *tenancy.LockedError
	var scope *social.ScopeError
	var state *social.StateError
	var consent *social.ConsentError
	var maxBytes *http.MaxBytesError
	var metaErr *meta.APIError
	var ttErr *tiktok.APIError
	var window *meta.WindowError
	if ae, ok := crmError(err); ok {
		return ae, true
	}
	switch {
	case errors.As(err, &ae):
		return ae, true
	case errors.As(err, &maxBytes):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: fmt.Sprintf("the body exceeds %d bytes", maxBytes.Limit)}, true
	case errors.As(err, &tv):
		return errInvalid(fieldProblem{Field: jsonField(tv.Field), Problem: tv.Reason}), true
	case errors.As(err, &rv):
		return errInvalid(fieldProblem{Field: jsonField(rv.Field), Problem: rv.Reason}), true
	case errors.As(err, &locked), errors.Is(err, tenancy.ErrInvalidCredentials):
		// A locked member gets the answer a wrong password gets: a
		// different one would tell a stranger which emails have accounts
		// (unknown emails never lock).
		return errBadCredentials, true
	case errors.Is(err, tenancy.ErrLastOwner):
		return &apiError{Status: http.StatusConflict, Code: "last_owner", Message: "the organization's last owner can be neither demoted nor removed"}, true
	case errors.Is(err, tenancy.ErrDuplicate):
		return &apiError{Status: http.StatusConflict, Code: "duplicate", Message: "already exists"}, true
	case errors.Is(err, tenancy.ErrForbidden), errors.Is(err, tenancy.ErrNotSystem):
		return errForbidden, true
	case errors.Is(err, tenancy.ErrTenantMismatch):
		return errInvalid(fieldProblem{Field: "tenant_id", Problem: "must be left out: records belong to your tenant"}), true
	case errors.Is(err, tenancy.ErrInvalidTenant):
		return errInvalid(fieldProblem{Field: "tenant_id", Problem: "must be a UUID"}), true
	case errors.Is(err, tenancy.ErrNotFound), errors.Is(err, retention.ErrNotFound), errors.Is(err, social.ErrNotFound):
		return errNotFound("record"), true
	case errors.Is(err, retention.ErrNotVerified):
		return &apiError{Status: http.StatusConflict, Code: "not_verified", Message: "the requester's identity is not verified yet"}, true
	case errors.Is(err, retention.ErrClosed):
		return &apiError{Status: http.StatusConflict, Code: "closed", Message: "the request is closed"}, true
	case errors.Is(err, retention.ErrAlreadyExtended):
		return &apiError{Status: http.StatusConflict, Code: "already_extended", Message: "the deadline was extended already"}, true
	case errors.As(err, &scope):
		return &apiError{Status: http.StatusForbidden, Code: "missing_scope", Message: "the connection lacks scopes: " + scope.Missing.Join(", ")}, true
	case errors.As(err, &state):
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_state", Message: "the authorization link is unknown, used, expired or not yours; start again"}, true
	case errors.Is(err, social.ErrInvalidGrant):
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_grant", Message: "the platform refused the authorization code or token (expired, used or revoked); start again"}, true
	case errors.As(err, &consent):
		return &apiError{Status: http.StatusBadRequest, Code: "consent_refused", Message: "the account owner did not grant access"}, true
	case errors.Is(err, social.ErrNeedsReauth), errors.Is(err, social.ErrRevoked):
		return &apiError{Status: http.StatusConflict, Code: "needs_reauth", Message: "the connection must be authorized again"}, true
	case errors.Is(err, social.ErrInvalidGrant):
		// The platform refused the authorization code or refresh token
		// (used, expired, revoked, or another replica's emulator): the
		// client starts again, it is not the server's fault.
		return &apiError{Status: http.StatusBadRequest, Code: "invalid_grant", Message: "the platform refused the authorization: start the connection again"}, true
	case errors.Is(err, social.ErrWriteScope):
		return &apiError{Status: http.StatusBadRequest, Code: "write_scope", Message: "a read-only connection cannot request write features"}, true
	case errors.Is(err, tiktok.ErrInvalidParams):
		return &apiError{Status: http.StatusBadRequest, Code: "platform_invalid_params", Message: "TikTok refused the parameters"}, true
	case errors.Is(err, tiktok.ErrRateLimited), tiktok.IsPostingLimit(err):
		return &apiError{Status: http.StatusTooManyRequests, Code: "platform_limit", Message: "TikTok's rate or posting limit is reached"}, true
	case errors.As(err, &window):
		return &apiError{Status: http.StatusConflict, Code: "outside_window", Message: "Messenger allows a reply only within 24 hours of the person's last message"}, true
	case errors.Is(err, meta.ErrRateLimited):
		return &apiError{Status: http.StatusTooManyRequests, Code: "platform_limit", Message: "Meta's rate limit is reached"}, true
	case errors.Is(err, meta.ErrInvalidParameter):
		return &apiError{Status: http.StatusBadRequest, Code: "platform_invalid_params", Message: "Meta refused the parameters"}, true
	case errors.As(err, &metaErr):
		return &apiError{Status: http.StatusBadGateway, Code: "platform_error", Message: fmt.Sprintf("Meta refused the call (code %d): %s", metaErr.Code, metaErr.Message)}, true
	case errors.As(err, &ttErr):
		return &apiError{Status: http.StatusBadGateway, Code: "platform_error", Message: "TikTok refused the call: " + ttErr.Code}, true
	}
	return nil, false
}

// jsonField turns an SDK field name (TenantName) into the API's (tenant_name).
func jsonField(f string) string {
	var b strings.Builder
	for i, r := range f {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// writeError answers err in the API's shape; unexpected errors are logged
// and answered 500 without detail.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	ae, ok := toAPIError(err)
	if !ok {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
	}
	writeAPIError(w, r, ae)
}

// writeAPIError answers ae with the request's id; a 401 names the scheme
// (WWW-Authenticate), a 429 when to come back.
func writeAPIError(w http.ResponseWriter, r *http.Request, ae *apiError) {
	out := *ae // the shared sentinels stay as they are
	out.RequestID = requestID(r.Context())
	switch out.Status {
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "60")
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="socialcrm"`)
	}
	writeJSON(w, out.Status, map[string]any{"error": &out})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// maxJSON is the largest JSON body the API reads.
const maxJSON = 1 << 20

// readJSON decodes the request body into v, refusing unknown fields,
// trailing data, NUL characters and bodies over 1 MiB, with a 4xx naming
// every problem at once.
func readJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "send application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxJSON))
	if err != nil {
		return err
	}
	return decodeJSON(body, v)
}

// decodeJSON decodes body into v (a pointer), listing every bad field:
// each member of an object is decoded on its own, so that one type error
// does not hide the next.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		return errInvalid(fieldProblem{Field: "body", Problem: "trailing data after the JSON value"})
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(body, &members) != nil {
		// Not an object: the one error is the whole answer.
		if err != nil {
			return decodeError(err)
		}
		if hasNUL(body) {
			return errInvalid(fieldProblem{Field: "body", Problem: nulProblem})
		}
		return nil
	}
	var v2 validator
	for _, k := range slices.Sorted(maps.Keys(members)) {
		raw := members[k]
		if hasNUL(raw) {
			v2 = append(v2, fieldProblem{Field: k, Problem: nulProblem})
			continue
		}
		if err == nil {
			continue
		}
		one, _ := json.Marshal(map[string]json.RawMessage{k: raw})
		d := json.NewDecoder(bytes.NewReader(one))
		d.DisallowUnknownFields()
		if ferr := d.Decode(reflect.New(reflect.TypeOf(v).Elem()).Interface()); ferr != nil {
			var ae *apiError
			if errors.As(decodeError(ferr), &ae) {
				v2 = append(v2, ae.Fields...)
			}
		}
	}
	if len(v2) == 0 && err != nil {
		return decodeError(err)
	}
	return v2.err()
}

const nulProblem = "must not contain a NUL character"

// hasNUL reports whether a JSON text holds a NUL character in a string
// (or a key): PostgreSQL refuses them in text, and no field needs one.
func hasNUL(raw []byte) bool {
	if !bytes.Contains(raw, []byte(`\u0000`)) && bytes.IndexByte(raw, 0) < 0 {
		return false
	}
	var x any
	if json.Unmarshal(raw, &x) != nil {
		return bytes.IndexByte(raw, 0) >= 0
	}
	var walk func(any) bool
	walk = func(x any) bool {
		switch x := x.(type) {
		case string:
			return strings.IndexByte(x, 0) >= 0
		case []any:
			return slices.ContainsFunc(x, walk)
		case map[string]any:
			for k, e := range x {
				if strings.IndexByte(k, 0) >= 0 || walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(x)
}

// decodeError turns a JSON decoding error into a 4xx naming the problem.
func decodeError(err error) error {
	if err == nil {
		return nil
	}
	var maxBytes *http.MaxBytesError
	if errors.As(err, &maxBytes) {
		return err
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return errInvalid(fieldProblem{Field: typeErr.Field, Problem: "must be a " + jsonType(typeErr.Type)})
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return errInvalid(fieldProblem{Field: strings.Trim(f, `"`), Problem: "unknown field"})
	}
	return errInvalid(fieldProblem{Field: "body", Problem: "invalid JSON: " + err.Error()})
}

// jsonType names a Go type as JSON would.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return t.String()
}

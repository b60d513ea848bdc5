package crm

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-playground/validator/v10"
)

// Errors returned by crm. Match them with errors.Is; the typed errors
// (*ValidationError, *ConflictError) match the sentinel named on them and
// carry their data for errors.As.
var (
	// ErrNotFound is returned (wrapped, naming the kind and id) when a
	// record does not exist in the context's tenant — including a record
	// of another tenant, which is indistinguishable from none.
	ErrNotFound = errors.New("crm: not found")
	// ErrInvalid matches every *ValidationError.
	ErrInvalid = errors.New("crm: invalid input")
	// ErrConflict matches every *ConflictError.
	ErrConflict = errors.New("crm: conflict")
	// ErrConfig is returned by New and the constructors of the package for
	// an invalid option or argument.
	ErrConfig = errors.New("crm: invalid configuration")
)

// FieldError is one failed rule of a *ValidationError.
type FieldError struct {
	// Field is the path of the field as a client sent it, by JSON names
	// ("email", "utm.source", "lines[2].amount").
	Field string `json:"field"`
	// Rule is the rule that failed, as validator/v10 names it ("required",
	// "email", "max", "oneof") or as crm names its own ("cursor",
	// "unique").
	Rule string `json:"rule"`
	// Param is the rule's parameter ("120" for max=120), if any.
	Param string `json:"param,omitempty"`
	// Message says in English what is wrong.
	Message string `json:"message"`
}

// ValidationError is returned by a create or update whose input breaks
// one or more rules; nothing was written. It lists every failed field:
//
//	var verr *crm.ValidationError
//	if errors.As(err, &verr) {
//		for _, f := range verr.Fields { … f.Field, f.Rule … }
//	}
type ValidationError struct {
	// Kind is the record kind ("contact").
	Kind   string       `json:"kind"`
	Fields []FieldError `json:"fields"`
}

// Error lists the failed fields: "crm: invalid contact: email: must be an
// e-mail address; …".
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("crm: invalid ")
	if e.Kind != "" {
		b.WriteString(e.Kind)
	} else {
		b.WriteString("input")
	}
	for i, f := range e.Fields {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.Field + ": " + f.Message)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) hold.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Has reports whether field failed rule (any rule when rule is empty).
func (e *ValidationError) Has(field, rule string) bool {
	for _, f := range e.Fields {
		if f.Field == field && (rule == "" || f.Rule == rule) {
			return true
		}
	}
	return false
}

// invalid returns a *ValidationError of kind with one field error.
func invalid(kind, field, rule, message string) *ValidationError {
	return &ValidationError{Kind: kind, Fields: []FieldError{{Field: field, Rule: rule, Message: message}}}
}

// validationErrorFrom converts validator/v10's errors, whose namespaces
// start with the struct's name, into a *ValidationError.
func validationErrorFrom(kind string, ves validator.ValidationErrors) *ValidationError {
	e := &ValidationError{Kind: kind, Fields: make([]FieldError, 0, len(ves))}
	for _, fe := range ves {
		field := fe.Namespace()
		if _, rest, ok := strings.Cut(field, "."); ok {
			field = rest
		}
		e.Fields = append(e.Fields, FieldError{Field: field, Rule: fe.Tag(), Param: fe.Param(), Message: ruleMessage(fe)})
	}
	return e
}

func ruleMessage(fe validator.FieldError) string {
	switch fe.Tag() {
	case "required", "required_with", "required_without", "required_if":
		return "is required"
	case "email":
		return "must be an e-mail address"
	case "e164":
		return "must be a phone number in E.164 form (+14155550100)"
	case "max":
		return "must be at most " + fe.Param() + " long or large"
	case "min":
		return "must be at least " + fe.Param() + " long or large"
	case "oneof":
		return "must be one of: " + fe.Param()
	case "url", "http_url":
		return "must be a URL"
	case "iso4217":
		return "must be an ISO 4217 currency code"
	case "gte", "gt", "lte", "lt":
		return fmt.Sprintf("must be %s %s", map[string]string{"gte": ">=", "gt": ">", "lte": "<=", "lt": "<"}[fe.Tag()], fe.Param())
	case "uuid", "uuid7":
		return "must be an id"
	}
	if fe.Param() != "" {
		return "fails rule " + fe.Tag() + "=" + fe.Param()
	}
	return "fails rule " + fe.Tag()
}

// ConflictError is returned by an update that named a stale Version: the
// record was changed by someone else since it was read. Nothing was
// written; read the record again and reapply the change.
type ConflictError struct {
	// Kind and ID name the record.
	Kind, ID string
	// Version is the version the update named; Current the stored one.
	Version, Current int64
}

// Error names the record and both versions.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("crm: %s %s changed concurrently: update named version %d, stored version is %d", e.Kind, e.ID, e.Version, e.Current)
}

// Is makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// notFound returns ErrNotFound wrapped with the kind and id.
func notFound(kind, id string) error {
	return fmt.Errorf("%w: %s %s", ErrNotFound, kind, id)
}

// ErrDuplicate matches every *DuplicateError.
var ErrDuplicate = errors.New("crm: duplicate")

// DuplicateError is returned by Contacts.Create (without AllowDuplicate)
// for a contact whose e-mail address or phone number another contact of
// the tenant already has; nothing was written. It names the contact found
// and the field that matched, never the value.
//
//	var dup *crm.DuplicateError
//	if errors.As(err, &dup) {
//		… dup.ContactID, dup.Field …
//	}
type DuplicateError struct {
	// ContactID is the id of the existing contact.
	ContactID string `json:"contact_id"`
	// Field is "email" or "phone".
	Field string `json:"field"`
}

// Error names the field and the existing contact's id.
func (e *DuplicateError) Error() string {
	return fmt.Sprintf("crm: duplicate contact: contact %s has the same %s", e.ContactID, e.Field)
}

// Is makes errors.Is(err, ErrDuplicate) hold.
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicate }

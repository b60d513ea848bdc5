package retention

import (
	"errors"
	"fmt"
)

// Errors returned by retention. Match them with errors.Is.
var (
	// ErrUnknownCategory is returned for a category name that is not
	// registered.
	ErrUnknownCategory = errors.New("retention: unknown category")
	// ErrNotVerified is returned by Erase and Export for a request whose
	// subject's identity is not verified.
	ErrNotVerified = errors.New("retention: request identity not verified")
	// ErrAlreadyExtended is returned when a request's deadline is extended
	// a second time.
	ErrAlreadyExtended = errors.New("retention: request deadline already extended")
	// ErrNotFound is returned for a request or hold that does not exist in
	// the tenant.
	ErrNotFound = errors.New("retention: not found")
	// ErrClosed is returned for a change to a completed or rejected request.
	ErrClosed = errors.New("retention: request is closed")
	// ErrNotCompleted is returned by Receipt for a request that is not a
	// completed erasure request.
	ErrNotCompleted = errors.New("retention: not a completed erasure request")
)

// CategoryError reports a bad category declaration. Match it with
// errors.As.
type CategoryError struct {
	Category, Field, Reason string
}

func (e *CategoryError) Error() string {
	return fmt.Sprintf("retention: category %q: %s: %s", e.Category, e.Field, e.Reason)
}

// PolicyError reports a bad policy rule. Match it with errors.As.
type PolicyError struct {
	Policy, Category, Reason string
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("retention: policy %q, category %q: %s", e.Policy, e.Category, e.Reason)
}

// ValidationError reports bad input to a request or hold. Match it with
// errors.As.
type ValidationError struct {
	Field, Reason string
}

func (e *ValidationError) Error() string {
	return "retention: invalid " + e.Field + ": " + e.Reason
}

// UnfinishedError is returned by a Category's BeforeErase hook that did
// its work for part of a batch only, such as a platform revoke that
// failed for IDs while the others were made. The batch then erases every
// row but IDs and commits, so that what the hook did outside the database
// for the other rows is recorded with their erasure and not done again;
// the operation then stops with Err (wrapped), and a later run finds the
// rows IDs again. Match Err with errors.Is; the engine's error unwraps to
// it.
type UnfinishedError struct {
	// IDs are the rows of the batch the hook did not finish: kept as they
	// are.
	IDs []string
	// Err is why; not nil.
	Err error
}

func (e *UnfinishedError) Error() string {
	return fmt.Sprintf("retention: %d rows unfinished: %v", len(e.IDs), e.Err)
}

// Unwrap returns Err.
func (e *UnfinishedError) Unwrap() error { return e.Err }

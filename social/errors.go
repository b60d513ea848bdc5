package social

import "errors"

// Errors returned by social. Match them with errors.Is; the typed errors
// (*ScopeError, *StateError, *ConsentError) match the sentinel named on
// them.
var (
	// ErrScope matches every *ScopeError.
	ErrScope = errors.New("social: missing scope")
	// ErrWriteScope is returned when a read-only configuration would
	// request a write feature or scope.
	ErrWriteScope = errors.New("social: write scope requested in read-only mode")
	// ErrConfig is returned for an invalid configuration.
	ErrConfig = errors.New("social: invalid configuration")
	// ErrNotFound is returned when a connection does not exist in the
	// context's tenant.
	ErrNotFound = errors.New("social: connection not found")
	// ErrNeedsReauth is returned when a connection's tokens no longer work
	// (the platform refused them); the user must connect again.
	ErrNeedsReauth = errors.New("social: connection needs to be authorized again")
	// ErrRevoked is returned for a disconnected connection.
	ErrRevoked = errors.New("social: connection was disconnected")

	// ErrInvalidGrant is what a Provider's Exchange and Refresh wrap when the
	// platform refuses the code or refresh token for good (OAuth
	// invalid_grant).
	ErrInvalidGrant = errors.New("social: invalid grant")
	// ErrInvalidToken is what a client wraps when the platform refuses an
	// access token; the connection is then marked needs_reauth.
	ErrInvalidToken = errors.New("social: access token refused by the platform")

	// ErrTokenRenewed is what Session.Refused wraps when the refused
	// access token was replaced (by another process, or by a refresh): the
	// refused request may be sent again, once, with a new token.
	ErrTokenRenewed = errors.New("social: refused access token renewed")

	// ErrOutcomeUnknown is matched by the typed clients' errors for a
	// write the platform may or may not have carried out (its answer was
	// lost or was a server error): it is never sent again automatically;
	// check its effect before deciding.
	ErrOutcomeUnknown = errors.New("social: outcome of the write unknown")

	// ErrStateUnknown, ErrStateUsed, ErrStateExpired and ErrStateTenant are
	// the reasons of a *StateError.
	ErrStateUnknown = errors.New("social: unknown oauth state")
	ErrStateUsed    = errors.New("social: oauth state already used")
	ErrStateExpired = errors.New("social: oauth state expired")
	ErrStateTenant  = errors.New("social: oauth state belongs to another tenant")

	// ErrConsent matches every *ConsentError.
	ErrConsent = errors.New("social: consent refused")

	// ErrListOptions is returned by a list given a limit out of range or
	// a cursor it did not issue.
	ErrListOptions = errors.New("social: invalid list options")
)

// StateError is returned by Flow.Complete for a callback whose state cannot
// be used: unknown, replayed, expired, or begun by another tenant. Reason is
// one of ErrStateUnknown, ErrStateUsed, ErrStateExpired and ErrStateTenant,
// which errors.Is matches.
type StateError struct {
	Reason error
}

func (e *StateError) Error() string { return e.Reason.Error() }

// Unwrap returns Reason.
func (e *StateError) Unwrap() error { return e.Reason }

// ConsentError is returned by Flow.Complete when the platform redirected
// with an error (the user denied the request, for example). Code and
// Description are the platform's error and error_description.
type ConsentError struct {
	Code        string
	Description string
}

func (e *ConsentError) Error() string {
	return "social: consent failed: " + e.Code + ": " + e.Description
}

// Is makes errors.Is(err, ErrConsent) hold.
func (e *ConsentError) Is(target error) bool { return target == ErrConsent }

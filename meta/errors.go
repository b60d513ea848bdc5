package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/vault"
)

// Graph error codes the client classifies
// (https://developers.facebook.com/docs/graph-api/guides/error-handling).
// Errors are classified by code and subcode only, never by HTTP status or
// message text.
const (
	CodeUnknown            = 1   // API Unknown: temporary, retry later
	CodeService            = 2   // API Service: temporary, retry later
	CodeTooManyCalls       = 4   // app rate limit
	CodePermissionDenied   = 10  // API permission denied
	CodeUserRateLimit      = 17  // user rate limit
	CodePageRateLimit      = 32  // Pages API rate limit (user or app token)
	CodeInvalidParameter   = 100 // invalid parameter (retired metric or tag, unknown field…)
	CodeTokenInvalidLegacy = 102 // login status or token invalid (older code)
	CodeInvalidToken       = 190 // access token invalid or expired
	CodeAppLimit           = 341 // application limit reached
	CodePolicyBlock        = 368 // temporarily blocked for policy violations
	CodeDuplicatePost      = 506 // duplicate post
	CodeCustomRateLimit    = 613 // custom rate limit
	CodePermissionMin      = 200 // first of the permission codes 200–299
	CodePermissionMax      = 299 // last of the permission codes 200–299
	// Business use case rate limits: 80001 Pages, 80002 Instagram, 80006
	// Messenger, and the other 800xx families (Ads, LeadGen, Catalog…).
	CodeBUCPages     = 80001
	CodeBUCInstagram = 80002
	CodeBUCMessenger = 80006
)

// Subcodes of code 190.
const (
	SubcodeAppNotInstalled = 458 // the user removed the app
	SubcodeCheckpointed    = 459 // the user must log in at facebook.com
	SubcodePasswordChanged = 460 // the session ended: log in again
	SubcodeExpired         = 463 // the token expired
	SubcodeUnconfirmed     = 464 // the user must confirm their account
	SubcodeInvalidToken    = 467 // the token is invalid
	// SubcodeNoPageRole: the user behind a Page token lost their role on
	// the Page. No new token fixes it; the role must be restored.
	SubcodeNoPageRole = 492
)

// Sentinels matched by *APIError (errors.Is). A *RateLimitError matches
// ErrRateLimited; a *APIError of code 190 matches social.ErrInvalidToken.
var (
	// ErrConfig is returned for an invalid Config, Option or argument.
	ErrConfig = errors.New("meta: invalid configuration")
	// ErrRateLimited matches rate-limit errors: codes 4, 17, 32, 341, 613
	// and 80000–80099.
	ErrRateLimited = errors.New("meta: rate limited")
	// ErrPermission matches permission errors: codes 10 and 200–299.
	ErrPermission = errors.New("meta: permission denied")
	// ErrInvalidParameter matches code 100.
	ErrInvalidParameter = errors.New("meta: invalid parameter")
	// ErrAppRemoved matches 190/458: the user removed the app. A Client
	// that gets it revokes the user's connection and those derived from
	// it (social.Session.Removed; the error wraps social.ErrRevoked).
	ErrAppRemoved = errors.New("meta: the user removed the app")
	// ErrNoPageRole matches 190/492: the person behind the Page token lost
	// their role on the Page. A new token does not fix it.
	ErrNoPageRole = errors.New("meta: no role on the Page")
	// ErrTransient matches errors Meta flags is_transient, and codes 1 and 2.
	ErrTransient = errors.New("meta: transient error")
	// ErrMalformed matches answers that are not Graph JSON.
	ErrMalformed = errors.New("meta: malformed answer")
)

// APIError is Graph's error envelope,
// {"error":{"message","type","code","error_subcode","is_transient","fbtrace_id"}},
// whatever the HTTP status. Match families with errors.Is (ErrRateLimited,
// ErrPermission, ErrInvalidParameter, ErrAppRemoved, ErrNoPageRole,
// ErrTransient, social.ErrInvalidToken) and, for a permission code,
// errors.As with *social.ScopeError naming the permissions the call needed.
type APIError struct {
	// Message, Type, Code and Subcode are the envelope's message, type,
	// code and error_subcode.
	Message string
	Type    string
	Code    int
	Subcode int
	// UserTitle and UserMessage are error_user_title and error_user_msg,
	// meant for the end user, when Meta sends them.
	UserTitle, UserMessage string
	// TraceID is fbtrace_id: keep it for Meta support.
	TraceID string
	// Transient is is_transient: retrying later may succeed.
	Transient bool
	// StatusCode is the HTTP status, for information only.
	StatusCode int
	// Method and Path are the call's, without query (no token or proof).
	Method, Path string

	need social.Scopes // permissions the call needed
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("meta: ")
	if e.Method != "" {
		b.WriteString(e.Method + " " + e.Path + ": ")
	}
	if e.Subcode != 0 {
		fmt.Fprintf(&b, "code %d/%d", e.Code, e.Subcode)
	} else {
		fmt.Fprintf(&b, "code %d", e.Code)
	}
	if e.Type != "" {
		b.WriteString(" " + e.Type)
	}
	b.WriteString(": " + e.Message)
	if e.TraceID != "" {
		b.WriteString(" [fbtrace_id " + e.TraceID + "]")
	}
	return b.String()
}

// IsRateLimit reports whether the code is a rate-limit code.
func (e *APIError) IsRateLimit() bool {
	switch e.Code {
	case CodeTooManyCalls, CodeUserRateLimit, CodePageRateLimit, CodeAppLimit, CodeCustomRateLimit:
		return true
	}
	return e.Code >= 80000 && e.Code <= 80099
}

// IsPermission reports whether the code is a permission code (10, 200–299).
func (e *APIError) IsPermission() bool {
	return e.Code == CodePermissionDenied || (e.Code >= CodePermissionMin && e.Code <= CodePermissionMax)
}

// Is matches the sentinels by code and subcode.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrRateLimited:
		return e.IsRateLimit()
	case ErrPermission:
		return e.IsPermission()
	case ErrInvalidParameter:
		return e.Code == CodeInvalidParameter
	case ErrAppRemoved:
		return e.Code == CodeInvalidToken && e.Subcode == SubcodeAppNotInstalled
	case ErrNoPageRole:
		return e.Code == CodeInvalidToken && e.Subcode == SubcodeNoPageRole
	case ErrTransient:
		return e.Transient || e.Code == CodeUnknown || e.Code == CodeService
	case social.ErrInvalidToken:
		return (e.Code == CodeInvalidToken && e.Subcode != SubcodeNoPageRole) || e.Code == CodeTokenInvalidLegacy
	case ErrMalformed:
		return e.Code == 0 && e.StatusCode != 0
	}
	return false
}

// As fills a **social.ScopeError for a permission code, naming the
// permissions the call needed (when the call named any).
func (e *APIError) As(target any) bool {
	if t, ok := target.(**social.ScopeError); ok && e.IsPermission() && len(e.need) > 0 {
		*t = &social.ScopeError{Missing: append(social.Scopes(nil), e.need...)}
		return true
	}
	return false
}

// Unwrap returns nil: an APIError is the root cause. It exists so that
// wrappers compose uniformly.
func (e *APIError) Unwrap() error { return nil }

// RateLimitError is a rate-limit answer (codes 4, 17, 32, 341, 613,
// 800xx) with the usage headers that came with it, or the refusal to call
// while a previous one asked to wait: Meta extends the block for every
// call made during it. errors.Is(err, ErrRateLimited) holds.
type RateLimitError struct {
	*APIError
	// Usage holds the parsed X-App-Usage, X-Page-Usage and
	// X-Business-Use-Case-Usage of the answer.
	Usage Usage
	// RetryAfter is the longest estimated_time_to_regain_access (zero when
	// Meta gave none).
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	s := e.APIError.Error()
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// Is makes errors.Is(err, ErrRateLimited) hold.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// Unwrap returns the APIError.
func (e *RateLimitError) Unwrap() error { return e.APIError }

// envelope is Graph's error answer.
type envelope struct {
	Error *struct {
		Message   string `json:"message"`
		Type      string `json:"type"`
		Code      Int    `json:"code"`
		Subcode   Int    `json:"error_subcode"`
		UserTitle string `json:"error_user_title"`
		UserMsg   string `json:"error_user_msg"`
		Transient Bool   `json:"is_transient"`
		TraceID   string `json:"fbtrace_id"`
	} `json:"error"`
}

// DecodeError returns the *APIError of a Graph answer body, or nil when
// the body holds no error envelope. status is the HTTP status; a status of
// 400 or more without an envelope is an *APIError matching ErrMalformed.
func DecodeError(status int, body []byte) *APIError {
	var env envelope
	err := json.Unmarshal(body, &env)
	if err == nil && env.Error != nil {
		e := env.Error
		return &APIError{
			Message: e.Message, Type: e.Type, Code: int(e.Code), Subcode: int(e.Subcode),
			UserTitle: e.UserTitle, UserMessage: e.UserMsg, TraceID: e.TraceID,
			Transient: bool(e.Transient), StatusCode: status,
		}
	}
	if status >= 400 {
		return &APIError{StatusCode: status, Message: fmt.Sprintf("HTTP %d with %d bytes that are not a Graph error", status, len(body))}
	}
	return nil
}

// parseError decodes an error answer of r, with the secrets of the call
// removed from its text.
func parseError(resp *Response, body []byte, r request, token string) *APIError {
	e := DecodeError(resp.StatusCode, body)
	if e == nil {
		return nil
	}
	e.Method, e.Path, e.need = r.method, r.path, social.NewScopes(r.need...)
	if e.TraceID == "" {
		e.TraceID = resp.TraceID
	}
	for _, s := range []*string{&e.Message, &e.UserTitle, &e.UserMessage} {
		*s = redactString(*s, token)
	}
	return e
}

// redactString removes secret from s.
func redactString(s, secret string) string {
	if secret == "" || !strings.Contains(s, secret) {
		return s
	}
	return strings.ReplaceAll(s, secret, vault.Redacted)
}

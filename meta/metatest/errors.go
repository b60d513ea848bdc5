package metatest

import (
	"fmt"
	"net/http"
	"time"
)

const (
	typeOAuth        = "OAuthException"
	typeGraphMethod  = "GraphMethodException"
	typeInvalidParam = "OAuthException"
)

// graphError is the object inside Meta's {"error": …} envelope.
type graphError struct {
	Message     string `json:"message"`
	Type        string `json:"type"`
	Code        int    `json:"code"`
	Subcode     int    `json:"error_subcode,omitempty"`
	IsTransient bool   `json:"is_transient"`
	UserTitle   string `json:"error_user_title,omitempty"`
	UserMsg     string `json:"error_user_msg,omitempty"`
	TraceID     string `json:"fbtrace_id"`

	status int
}

func (e *graphError) httpStatus() int {
	if e.status != 0 {
		return e.status
	}
	switch {
	case e.Code == 1 || e.Code == 2 || e.Code == 1200:
		return http.StatusInternalServerError
	case e.Code == 10 || (e.Code >= 200 && e.Code <= 299):
		return http.StatusForbidden
	default:
		return http.StatusBadRequest
	}
}

func (e *graphError) wwwAuthKind() string {
	switch e.Code {
	case 190, 102, 104:
		return "invalid_token"
	case 100:
		if e.Subcode >= 36007 && e.Subcode <= 36009 {
			return "invalid_code"
		}
	}
	return "invalid_request"
}

func newErr(typ string, code, subcode int, msg string) *graphError {
	return &graphError{Message: msg, Type: typ, Code: code, Subcode: subcode}
}

// errParam is code 100, invalid parameter.
func errParam(msg string) *graphError { return newErr(typeInvalidParam, 100, 0, msg) }

func errUnknownPath(p string) *graphError {
	return newErr(typeOAuth, 2500, 0, "Unknown path components: "+p)
}

func errNoObject(method, id string) *graphError {
	return newErr(typeGraphMethod, 100, 33, fmt.Sprintf(
		"Unsupported %s request. Object with ID '%s' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
		method, id))
}

func errNoField(field, nodeType string) *graphError {
	return errParam(fmt.Sprintf("(#100) Tried accessing nonexisting field (%s) on node type (%s)", field, nodeType))
}

func errTokenRequired() *graphError {
	return newErr(typeOAuth, 104, 0, "An access token is required to request this resource.")
}

func errBadToken() *graphError {
	return newErr(typeOAuth, 190, 0, "Invalid OAuth access token - Cannot parse access token")
}

func errTokenOtherApp() *graphError {
	return newErr(typeOAuth, 190, 467, "Error validating access token: the token was not issued for this app.")
}

func errExpired(expired, now time.Time) *graphError {
	const layout = "Monday, 02-Jan-06 15:04:05 MST"
	return newErr(typeOAuth, 190, 463, fmt.Sprintf(
		"Error validating access token: Session has expired on %s. The current time is %s.",
		expired.UTC().Format(layout), now.UTC().Format(layout)))
}

func errNotAuthorized(appID string) *graphError {
	return newErr(typeOAuth, 190, 458, fmt.Sprintf(
		"Error validating access token: The user has not authorized application %s.", appID))
}

func errPasswordChanged() *graphError {
	return newErr(typeOAuth, 190, 460,
		"Error validating access token: The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons.")
}

func errInvalidSession() *graphError {
	return newErr(typeOAuth, 190, 492,
		"Error validating access token: The session is invalid because the user no longer has a role on the Page.")
}

func errPageTokenRequired190() *graphError {
	return newErr(typeOAuth, 190, 0, "(#190) This method must be called with a Page Access Token")
}

func errPageTokenRequired210() *graphError {
	return newErr(typeOAuth, 210, 0, "(#210) A page access token is required to request this resource.")
}

func errPermission(code int, msg string) *graphError { return newErr(typeOAuth, code, 0, msg) }

func errProofMissing() *graphError {
	return newErr(typeGraphMethod, 100, 0, "API calls from the server require an appsecret_proof argument")
}

func errProofInvalid() *graphError {
	return newErr(typeGraphMethod, 100, 0, "Invalid appsecret_proof provided in the API argument")
}

func errProofTime() *graphError {
	return newErr(typeGraphMethod, 100, 0, "Invalid appsecret_time provided in the API argument")
}

func errInvalidMetric() *graphError {
	return errParam("(#100) The value must be a valid insights metric")
}

// standardMessage is the message Meta uses for a code when a fault names
// none.
func standardMessage(code int) string {
	switch code {
	case 1:
		return "An unknown error occurred"
	case 2:
		return "An unexpected error has occurred. Please retry your request later."
	case 4:
		return "(#4) Application request limit reached"
	case 10:
		return "(#10) Application does not have permission for this action"
	case 17:
		return "(#17) User request limit reached"
	case 32:
		return "(#32) Page request limit reached"
	case 100:
		return "(#100) Invalid parameter"
	case 190:
		return "Invalid OAuth access token."
	case 200:
		return "(#200) Permissions error"
	case 341:
		return "(#341) Application limit reached"
	case 1200:
		return "(#1200) Temporary send message failure. Please try again later"
	case 368:
		return "(#368) The action attempted has been deemed abusive or is otherwise disallowed"
	case 613:
		return "(#613) Calls to this api have exceeded the rate limit."
	case 80001:
		return "(#80001) There have been too many calls to this Page account. Wait a bit and try again."
	case 80002:
		return "(#80002) There have been too many calls to this Instagram account. Wait a bit and try again."
	case 80006:
		return "(#80006) There have been too many messenger api calls to this Page account. Wait a bit and try again."
	}
	if code >= 200 && code <= 299 {
		return fmt.Sprintf("(#%d) Permissions error", code)
	}
	return fmt.Sprintf("(#%d) An error occurred", code)
}

func transientCode(code int) bool {
	switch code {
	case 1, 2, 4, 17, 32, 341, 613, 1200, 80001, 80002, 80006:
		return true
	}
	return false
}

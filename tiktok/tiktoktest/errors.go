package tiktoktest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// Sentinel errors returned by the registration and control methods.
var (
	ErrUnknownApp     = errors.New("tiktoktest: unknown client_key")
	ErrUnknownUser    = errors.New("tiktoktest: unknown open_id")
	ErrUnknownPublish = errors.New("tiktoktest: unknown publish_id")
)

// AuthorizeError is returned by Server.Consent when TikTok would show an
// error page instead of redirecting (unknown client_key, unregistered
// redirect_uri, bad PKCE parameters). Code is an OAuth error name.
type AuthorizeError struct {
	Code        string
	Description string
}

func (e *AuthorizeError) Error() string {
	return "tiktoktest: authorize: " + e.Code + ": " + e.Description
}

// Data API error codes (https://developers.tiktok.com/doc/tiktok-api-v2-error-handling
// and the Content Posting reference pages).
const (
	codeOK                    = "ok"
	codeAccessTokenInvalid    = "access_token_invalid"
	codeScopeNotAuthorized    = "scope_not_authorized"
	codeInvalidParams         = "invalid_params"
	codeRateLimitExceeded     = "rate_limit_exceeded"
	codeInternalError         = "internal_error"
	codeInvalidPublishID      = "invalid_publish_id"
	codeTokenNotAuthorizedPub = "token_not_authorized_for_specified_publish_id"
	codePublishNotCancellable = "publish_not_cancellable"
	codePrivacyMismatch       = "privacy_level_option_mismatch"
	codeUnauditedPrivateOnly  = "unaudited_client_can_only_post_to_private_accounts"
	codeURLOwnership          = "url_ownership_unverified"
	codeTooManyPendingShare   = "spam_risk_too_many_pending_share"
)

// Posting error codes a User can carry in PostingError.
const (
	PostingTooManyPosts     = "spam_risk_too_many_posts"
	PostingUserBanned       = "spam_risk_user_banned_from_posting"
	PostingActiveUserCapHit = "reached_active_user_cap"
)

// OAuth error names (https://developers.tiktok.com/doc/oauth-error-handling).
const (
	oauthAccessDenied           = "access_denied"
	oauthInvalidClient          = "invalid_client"
	oauthInvalidGrant           = "invalid_grant"
	oauthInvalidRequest         = "invalid_request"
	oauthInvalidScope           = "invalid_scope"
	oauthUnsupportedGrantType   = "unsupported_grant_type"
	oauthUnsupportedResponse    = "unsupported_response_type"
	oauthServerError            = "server_error"
	oauthTemporarilyUnavailable = "temporarily_unavailable"
)

// newLogID makes a log_id shaped like TikTok's: a UTC timestamp followed by
// 20 upper-case hex digits.
func (s *Server) newLogID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return s.Now().UTC().Format("20060102150405") + strings.ToUpper(hex.EncodeToString(b[:]))
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	LogID   string `json:"log_id"`
}

type envelope struct {
	Data  any      `json:"data,omitempty"`
	Error apiError `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeAPIData writes a success envelope. A nil data omits the field.
func (s *Server) writeAPIData(w http.ResponseWriter, data any) {
	writeJSON(w, http.StatusOK, envelope{Data: data, Error: apiError{Code: codeOK, LogID: s.newLogID()}})
}

// writeAPIError writes an error envelope with an empty data object.
func (s *Server) writeAPIError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, envelope{Data: struct{}{}, Error: apiError{Code: code, Message: msg, LogID: s.newLogID()}})
}

type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	LogID       string `json:"log_id"`
}

func (s *Server) writeOAuthError(w http.ResponseWriter, code, desc string) {
	status := s.cfg.oauthErrStatus
	if status == 0 {
		switch code {
		case oauthInvalidClient:
			status = http.StatusUnauthorized
		case oauthServerError:
			status = http.StatusInternalServerError
		case oauthTemporarilyUnavailable:
			status = http.StatusServiceUnavailable
		default:
			status = http.StatusBadRequest
		}
	}
	writeJSON(w, status, oauthError{Error: code, Description: desc, LogID: s.newLogID()})
}

// methodNotAllowed answers a request with the wrong method in the shape of
// the endpoint's family.
func (s *Server) methodNotAllowed(w http.ResponseWriter, allow string, oauth bool) {
	w.Header().Set("Allow", allow)
	if oauth {
		status := s.cfg.oauthErrStatus
		if status == 0 {
			status = http.StatusMethodNotAllowed
		}
		writeJSON(w, status, oauthError{Error: oauthInvalidRequest, Description: "The HTTP method must be " + allow + ".", LogID: s.newLogID()})
		return
	}
	s.writeAPIError(w, http.StatusMethodNotAllowed, codeInvalidParams, "The HTTP method must be "+allow+".")
}

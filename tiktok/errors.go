package tiktok

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/socialcrm/socialcrm/internal/httpx"
	"github.com/socialcrm/socialcrm/social"
)

// Error codes of the data APIs (https://developers.tiktok.com/doc/tiktok-api-v2-error-handling
// and the Content Posting reference pages).
const (
	CodeOK                     = "ok"
	CodeAccessTokenInvalid     = "access_token_invalid"
	CodeScopeNotAuthorized     = "scope_not_authorized"
	CodeScopePermissionMissed  = "scope_permission_missed"
	CodeInvalidParams          = "invalid_params"
	CodeInvalidParam           = "invalid_param" // the Content Posting pages' spelling
	CodeRateLimitExceeded      = "rate_limit_exceeded"
	CodeInternalError          = "internal_error"
	CodeSpamRiskTooManyPosts   = "spam_risk_too_many_posts"
	CodeSpamRiskUserBanned     = "spam_risk_user_banned_from_posting"
	CodeReachedActiveUserCap   = "reached_active_user_cap"
	CodeUnauditedPrivateOnly   = "unaudited_client_can_only_post_to_private_accounts"
	CodeURLOwnershipUnverified = "url_ownership_unverified"
	CodePrivacyLevelMismatch   = "privacy_level_option_mismatch"
)

// APIError is an answer of a data API whose error.code is not "ok",
// whatever its HTTP status (some refusals come with 200).
type APIError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Code, Message and LogID are the envelope's error fields; keep LogID
	// for TikTok support.
	Code, Message, LogID string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("tiktok: %s (HTTP %d): %s [log_id %s]", e.Code, e.StatusCode, e.Message, e.LogID)
}

// Is makes errors.Is(err, social.ErrInvalidToken) hold for
// access_token_invalid, and errors.Is(err, ErrInvalidParams) for both
// spellings of invalid_param(s).
func (e *APIError) Is(target error) bool {
	switch target {
	case social.ErrInvalidToken:
		return e.Code == CodeAccessTokenInvalid
	case ErrInvalidParams:
		return e.Code == CodeInvalidParams || e.Code == CodeInvalidParam
	case ErrRateLimited:
		return e.Code == CodeRateLimitExceeded
	}
	return false
}

// OAuthError is a refusal of the OAuth endpoints, whose body is flat
// {error, error_description, log_id} with any HTTP status.
type OAuthError struct {
	StatusCode               int
	Code, Description, LogID string
}

func (e *OAuthError) Error() string {
	return fmt.Sprintf("tiktok: oauth %s (HTTP %d): %s [log_id %s]", e.Code, e.StatusCode, e.Description, e.LogID)
}

// Is makes errors.Is(err, social.ErrInvalidGrant) hold for invalid_grant.
func (e *OAuthError) Is(target error) bool {
	return target == social.ErrInvalidGrant && e.Code == "invalid_grant"
}

// RateLimitError is returned without a request while TikTok's last 429
// asked to wait longer than the client retries: the limit is spent.
// errors.Is(err, ErrRateLimited) holds for it.
type RateLimitError struct {
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("tiktok: rate limit spent, retry after %s", e.RetryAfter)
}

// Is makes errors.Is(err, ErrRateLimited) hold.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// transportError converts the retrier's fail-fast error.
func transportError(path string, err error) error {
	var rl *httpx.RateLimitedError
	if errors.As(err, &rl) {
		return &RateLimitError{RetryAfter: rl.RetryAfter}
	}
	return fmt.Errorf("tiktok: %s: %w", path, err)
}

// Sentinels matched by *APIError.
var (
	ErrInvalidParams = errors.New("tiktok: invalid params")
	ErrRateLimited   = errors.New("tiktok: rate limit exceeded")
)

// envelope is the data APIs' answer.
type envelope struct {
	Data  json.RawMessage `json:"data"`
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		LogID   string `json:"log_id"`
	} `json:"error"`
}

// maxBody bounds what is read of an answer.
const maxBody = 8 << 20

// decodeEnvelope reads a data API answer into data (may be nil) and
// returns the log id, or an *APIError.
func decodeEnvelope(resp *http.Response, data any, keep *[]byte) (string, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return "", fmt.Errorf("tiktok: read answer: %w", err)
	}
	if keep != nil {
		*keep = body
	}
	return parseEnvelope(resp.StatusCode, body, data)
}

func parseEnvelope(status int, body []byte, data any) (string, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil || env.Error.Code == "" {
		return "", &APIError{StatusCode: status, Code: "malformed_response", Message: fmt.Sprintf("unexpected answer of %d bytes", len(body))}
	}
	if env.Error.Code != CodeOK {
		return env.Error.LogID, &APIError{StatusCode: status, Code: env.Error.Code, Message: env.Error.Message, LogID: env.Error.LogID}
	}
	if data != nil && len(env.Data) > 0 {
		if err := json.Unmarshal(env.Data, data); err != nil {
			return env.Error.LogID, fmt.Errorf("tiktok: decode data: %w", httpx.ScrubJSONError(err))
		}
	}
	return env.Error.LogID, nil
}

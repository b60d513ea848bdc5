// Package tiktoktest is an in-process emulator of the TikTok for Developers
// v2 APIs — Login Kit, OAuth token management, the Display API, the Content
// Posting API and webhooks — served by real httptest listeners, so the
// TikTok client can be tested end to end without network or credentials.
//
// It behaves as TikTok documents: same paths, parameters, field names,
// error shapes, error codes and HTTP statuses, scope checks per endpoint and
// per field, token expiry and refresh rotation on an injectable clock.
//
// # Usage
//
//	srv := tiktoktest.Start(t,
//		tiktoktest.WithApp(tiktoktest.App{
//			ClientKey:    "ck",
//			ClientSecret: "cs",
//			RedirectURIs: []string{"https://crm.example/callback/"},
//			Scopes:       []string{"user.info.basic", "video.list"},
//		}),
//		tiktoktest.WithUser(tiktoktest.User{OpenID: "u1", DisplayName: "Ana"}),
//	)
//	// Point the client at srv.BaseURL() (instead of https://open.tiktokapis.com)
//	// and srv.AuthorizeURL (instead of https://www.tiktok.com/v2/auth/authorize/).
//	authURL := client.AuthCodeURL(state, verifier)
//	callback, err := srv.Consent(authURL, "u1", tiktoktest.ConsentOptions{Decline: []string{"video.list"}})
//	// callback is the redirect_uri with code, scopes and state; hand it to
//	// the client's callback handler, which exchanges the code.
//	srv.Advance(2 * time.Hour) // the access token has now expired
//
// Tests that start from a connected account skip the flow with
// Server.IssueToken.
//
// # Endpoints
//
// On Server.BaseURL():
//
//   - GET and POST /v2/auth/authorize/: a minimal HTML consent page (pick an
//     account, untick scopes, approve or deny) for browser tests; Consent
//     does the same programmatically.
//   - POST /v2/oauth/token/: grant types authorization_code (codes are
//     single use, expire after WithCodeLifetime, contain characters that
//     must be URL-decoded, and need a matching code_verifier when the
//     authorization carried a code_challenge), refresh_token (rotation per
//     WithRotation) and client_credentials.
//   - POST /v2/oauth/revoke/: revokes every token of the user for the app,
//     given one of its access tokens that has not expired.
//   - GET /v2/user/info/, POST /v2/video/list/, POST /v2/video/query/.
//   - POST /v2/post/publish/creator_info/query/, /video/init/,
//     /inbox/video/init/, /status/fetch/ and /cancel/.
//
// On Server.UploadURL, the upload_url returned by the init endpoints takes
// PUT chunks with Content-Range, checked against the declared chunking, and
// answers 206, 201, 400, 403 (expired), 404, or 416 with a Content-Range
// header giving the progress.
//
// # Documented behaviour and the choices made where docs are silent
//
// Sources: https://developers.tiktok.com/doc/login-kit-web,
// /doc/login-kit-desktop, /doc/oauth-user-access-token-management,
// /docs/en/oauth-refresh-a-user-access-token (Nov 2026),
// /docs/en/oauth-revoke-a-user-access-token, /doc/oauth-error-handling,
// /doc/tiktok-api-v2-error-handling, /doc/tiktok-api-v2-get-user-info,
// /doc/tiktok-api-v2-video-list, /doc/tiktok-api-v2-video-query,
// /doc/content-posting-api-reference-*, /doc/content-posting-api-media-transfer-guide,
// /doc/webhooks-events and /doc/webhooks-verification.
//
//   - Lifetimes default to the November 2026 revision: access tokens 2
//     hours, refresh tokens 180 days, each refresh token counted from its own
//     issuance. Refresh tokens are single use by default: a reused one fails
//     with invalid_grant. Earlier access tokens stay valid until they expire.
//   - OAuth errors are flat {error, error_description, log_id}. TikTok
//     documents no status for them; the emulator uses RFC 6749's (401 for
//     invalid_client, 400 otherwise) unless WithOAuthErrorStatus says
//     otherwise. Revoking an unknown token succeeds (RFC 7009); so does
//     revoking with an expired access token, which revokes nothing (the
//     documentation does not say that an expired token still stands for
//     the grant, so the emulator takes the side that a client cannot
//     misread: the grant and its refresh tokens stay).
//   - PKCE is required unless App.PKCEOptional, with S256 only; the
//     challenge is lower-case hex unless App.Challenge is
//     ChallengeBase64URL. A code is spent once its client presents it, even
//     if the exchange then fails.
//   - Data endpoints answer {data, error{code, message, log_id}}. A
//     user-info field whose scope was not granted fails the whole call with
//     401 scope_not_authorized, as developers observe; unknown fields,
//     max_count outside 1–20 and more than 20 video_ids are 400
//     invalid_params.
//   - Publishing moves on the server clock (PublishTimings); FailPublish and
//     PostFromInbox play TikTok's checks and the creator. The upload
//     progress header is "bytes 0-<bytes received>/<total>", literally as
//     documented.
//
// # Faults, limits and the request log
//
// InjectFault makes the next requests to a path fail with a chosen status
// and error code; WithRateLimit and WithDocumentedRateLimits count requests
// per access token on the server clock. Requests returns every request
// received, with secrets replaced by Redact(secret), so tests can assert
// what a client sent, which token it used, and that it sent nothing at all.
// A fault may also carry the request out first and lose or replace its
// answer (Processed, Drop), or hold it — before or after it is carried
// out — until the test lets it go (Hold, and Pass to answer normally
// then): a platform that acted and is slow to answer. Authorized reports
// whether an app still holds a usable grant of a user, whichever token a
// revoke went through.
//
// # Concurrency
//
// A Server and all its methods are safe for concurrent use; requests are
// serialized on one lock, so two refreshes racing with the same single-use
// refresh token see exactly one success. Returned slices and snapshots are
// copies owned by the caller.
//
// # Errors
//
// Registration and control methods return ErrUnknownApp, ErrUnknownUser or
// ErrUnknownPublish wrapped with the id, and Consent returns an
// *AuthorizeError where TikTok shows an error page; use errors.Is and
// errors.As. Messages never contain secrets.
//
// # Testing
//
// Start registers Close with t.Cleanup. The clock is time.Now plus
// whatever Advance added; WithClock replaces time.Now, so the client under
// test and the emulator can share one fake clock. Nothing in the emulator
// sleeps or runs in the background.
package tiktoktest

// Package tiktok is the typed TikTok client: Login Kit v2 with PKCE
// (Provider, for social.Flow), the Display API (user info with fields
// mapped to scopes, video list and query), revocation, and scope checks
// before every call.
//
//	cfg := tiktok.Config{ClientKey: key, ClientSecret: secret, RedirectURL: "https://crm.example/callback/"}
//	provider, err := tiktok.NewProvider(cfg)
//	flow, err := store.NewFlow(provider, social.FlowConfig{Features: []string{"profile", "video.read"}, ReadOnly: true})
//	// … flow.Begin, consent, flow.Complete (see package social)
//	sess, err := store.Session(ctx, conn.ID, provider)
//	client, err := tiktok.New(cfg, tiktok.WithSession(sess))
//	user, resp, err := client.User.Info(ctx, tiktok.UserInfoOptions{}) // fields the user granted
//	for video, err := range client.Videos.All(ctx, tiktok.VideoListOptions{}) { … }
//
// # TikTok's quirks
//
// The app is identified by client_key, never client_id; scopes are
// comma-separated; the PKCE challenge is the lower-case hex SHA-256 of the
// verifier for desktop and mobile apps (Config.Challenge selects base64url
// for web apps, where TikTok's behaviour is undocumented); the token
// response's open_id identifies the account, and its scope lists the
// scopes granted, which may be fewer than requested. Lifetimes come from
// expires_in and refresh_expires_in, never constants, and refresh tokens
// rotate (the old one stops working): the social token source persists
// each new one before using the new access token. OAuth endpoints answer
// a flat {error, error_description, log_id} with any status; data
// endpoints the {data, error{code, message, log_id}} envelope, where only
// code "ok" is success, whatever the status.
//
// # Scopes
//
// Every method declares the scopes it needs and fails with a
// *social.ScopeError, sending nothing, when the connection lacks one.
// User.Info with no Fields requests exactly the fields whose scopes were
// granted (user.info.basic, user.info.profile, user.info.stats); naming a
// field whose scope was not granted is a ScopeError, since TikTok would
// fail the whole call. Features returns the feature catalogue for
// social.FlowConfig: profile, stats, video.read, and the write features
// publish and upload, which a read-only flow refuses.
//
// # Concurrency
//
// Provider and Client are safe for concurrent use.
//
// # Errors
//
// Data API refusals are *APIError{StatusCode, Code, Message, LogID}, OAuth
// refusals *OAuthError{StatusCode, Code, Description, LogID}:
//
//	var apiErr *tiktok.APIError
//	if errors.As(err, &apiErr) { log.Print(apiErr.Code, apiErr.LogID) }
//	errors.Is(err, social.ErrNeedsReauth)  // access_token_invalid or invalid_grant: reconnect
//	errors.Is(err, tiktok.ErrRateLimited)  // rate_limit_exceeded after the retries
//	errors.Is(err, tiktok.ErrInvalidParams) // invalid_params or invalid_param
//
// Requests are retried on 429 and 5xx with jittered backoff honouring
// Retry-After, at most four attempts (WithRetry), never beyond the
// context's deadline; token grants are retried only on 429, because a
// refresh the server processed cannot be repeated.
//
// # Security
//
// Tokens are opened in memory for each call and never appear in errors or
// logs; transport errors have secret query parameters removed. Avatar and
// cover URLs are signed and expire within hours: do not keep them.
//
// # Testing
//
// tiktok/tiktoktest is an in-process emulator of the APIs; point
// Config.BaseURL and Config.AuthorizeURL at its URL and AuthorizeURL.
package tiktok

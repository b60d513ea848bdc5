// Package tiktok is the typed TikTok client: Login Kit v2 with PKCE
// (Provider, for social.Flow), the Display API (user info with fields
// mapped to scopes, video list and query, Sync), the Content Posting API
// (creator info, Direct Post and inbox video init, photo posts, chunked
// upload, status, cancel), revocation, webhooks (Webhook), and scope checks before every
// call.
//
//	cfg := tiktok.Config{ClientKey: key, ClientSecret: secret, RedirectURL: "https://crm.example/callback/"}
//	provider, err := tiktok.NewProvider(cfg)
//	flow, err := store.NewFlow(provider, social.FlowConfig{Features: []string{"profile", "video.read"}, ReadOnly: true})
//	// … flow.Begin, consent, flow.Complete (see package social)
//	sess, err := store.Session(ctx, conn.ID, provider)
//	client, err := tiktok.New(cfg, tiktok.WithSession(sess))
//	user, resp, err := client.User.Info(ctx, tiktok.UserInfoOptions{}) // fields the user granted
//	for video, err := range client.Videos.All(ctx, tiktok.VideoListOptions{}) { … }
//	res, stats, err := client.Sync(ctx) // snapshot + media stored through the session
//
// Sync stores what the granted scopes reach: without user.info.stats the
// follower, following, likes and video counts are unknown
// (social.Count), not 0. Profile texts, video texts and raw answers are
// stored sealed (see package social).
//
//	mux.Handle("POST /webhooks/tiktok", must(tiktok.NewWebhook(cfg, store, nil)))
//
// # Publishing
//
// Posting calls are made only at the user's instruction: the package never
// posts in the background, and every init is appended to the tenant's
// audit log twice, both entries naming the same attempt (an id):
// "tiktok.publish_sending" (mode, path, sent_at) before it is sent, then
// one closing entry — "tiktok.publish_started" (publish_id) after TikTok
// accepted it, "tiktok.publish_outcome_unknown" when its answer was lost
// or a server error, or "tiktok.publish_refused" (reason: TikTok's error
// code, or needs_reauth, revoked, cancelled, not_sent) when TikTok
// refused it or it was never sent. A sending entry that no entry of its
// attempt closes is a publish whose process died mid-call (a test kills
// one with SIGKILL after TikTok acted): look it up with Posting.Lookup
// before sending it again. Call Posting.CreatorInfo each time
// the post form renders and offer only its PrivacyLevelOptions. For
// FILE_UPLOAD, PlanChunks applies the media transfer guide's chunk rules
// (5–64 MB chunks, the last one absorbing the remainder up to 128 MB, at
// most 1,000) and Upload sends the chunks in order with Content-Range to
// the returned upload URL, which carries its own credential (no bearer
// token goes to the upload host). Poll Posting.Status until Done; for inbox
// uploads SEND_TO_USER_INBOX is terminal. Posting caps (spam_risk_*,
// reached_active_user_cap, sometimes with HTTP 200) satisfy IsPostingLimit.
//
// # Webhooks
//
// Webhook verifies TikTok-Signature (HMAC-SHA256 with the client secret
// over "<t>.<raw body>", constant-time, timestamp within WithTolerance,
// default five minutes), reads at most MaxWebhookBody bytes, decodes the
// content string a second time, and processes each delivery once (TikTok
// delivers at least once and documents no event id, so the key is event,
// user, time and content). authorization.removed disconnects the account's
// connection in every tenant (social.Store.AccountRemoved) and starts its
// purge through the disconnect hook; other events reach the handler given to NewWebhook.
// The misspelled post.publish.no_longer_publicaly_available is matched
// under both spellings.
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
// each new one before using the new access token, and takes a refresh
// answer that leaves out open_id rather than lose the new refresh token
// with it. OAuth endpoints answer
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
//	errors.Is(err, social.ErrNeedsReauth)  // access_token_invalid with no working refresh token, or invalid_grant: reconnect
//	errors.Is(err, tiktok.ErrRateLimited)  // rate_limit_exceeded after the retries
//	errors.Is(err, tiktok.ErrInvalidParams) // invalid_params or invalid_param
//	var ou *tiktok.OutcomeUnknownError     // a publish init or cancel whose answer was lost
//	if errors.As(err, &ou) { found, err := c.Posting.Lookup(ctx, ou, title) } // errors.Is(err, social.ErrOutcomeUnknown)
//
// Reads are retried on 429 and 5xx with jittered backoff honouring
// Retry-After, at most four attempts (WithRetry), never beyond the
// context's deadline. The writes (the publish inits and cancel) are
// declared non-idempotent: they are resent only after a 429, and a 5xx or
// a lost answer comes back as an *OutcomeUnknownError, audited as
// tiktok.publish_outcome_unknown, for the caller to check with
// Posting.Status or the creator's video list. Token grants are retried
// only on 429, because a refresh the server processed cannot be repeated.
// An access_token_invalid answer ("refresh token and retry") first tries
// the stored token, if another process renewed it, or a refresh, and sends
// the call again once; only then is the connection needs_reauth.
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

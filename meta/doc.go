// Package meta is the typed Graph API client for Facebook Login, Facebook
// Pages and the Instagram professional accounts behind them, with
// permission checks before every call.
//
// Connect a Facebook user through social.Flow, store a connection per Page
// (and per linked Instagram account) holding the Page's never-expiring
// token, then act for a Page with a client built on its connection:
//
//	cfg := meta.Config{AppID: "1001", AppSecret: vault.NewSecret(secret),
//		RedirectURL: "https://crm.example/meta/callback", Version: "v26.0"}
//	provider, err := meta.NewProvider(cfg)
//	flow, err := store.NewFlow(provider, social.FlowConfig{
//		Features: []string{meta.FeaturePagesPublish, meta.FeaturePagesInsights, meta.FeatureInstagramPublish}})
//	// … flow.Begin, the Login dialog, flow.Complete (see package social)
//	user, err := flow.Complete(ctx, callbackQuery)
//	pages, err := provider.ConnectPages(ctx, userSession) // one connection per Page and IG account
//	sess, err := store.Session(ctx, pages[0].Connection.ID, provider)
//	client, err := meta.New(cfg, meta.WithSession(sess))
//	post, resp, err := client.Pages.Publish(ctx, pageID, meta.PostRequest{Message: "Fresh bread"})
//	in, resp, err := client.Pages.Insights(ctx, pageID, meta.InsightsOptions{})
//
// # Login and tokens
//
// Provider implements social.Provider for Facebook Login's manual flow.
// Exchange trades the code for a short-lived user token and that at once
// for a long-lived one (about 60 days), which is the only one stored; the
// granted permissions come from /me/permissions, so declined ones are not
// granted. Meta has no refresh grant: when the user token expires the
// connection needs a new login (Refresh fails with social.ErrInvalidGrant).
// ConnectPages reads /me/accounts and stores each Page token — sealed, as
// a connection of its own — only when debug_token shows it never expires,
// which holds for Page tokens taken with a long-lived user token; the
// Instagram account linked to a Page gets a connection holding the Page's
// token. Verify re-checks a connection's token with debug_token (Meta asks
// for a daily check) and moves a refused one to needs_reauth; DebugToken
// inspects any token.
// ConnectPages links each Page and Instagram connection to the user's
// (social.Connection.ParentID), and social.Store.Disconnect of the user's
// connection follows that link: it removes the Page and Instagram
// connections, then revokes the app at Meta (DELETE /me/permissions) —
// without asking Meta which Pages the user had, so it works after the
// user token died. A 190/458 answer (the user
// removed the app) revokes the user's connection and those derived from
// it as the Deauthorize Callback does (social.Session.Removed).
//
// # Instagram Login
//
// Creators without a Facebook Page connect with Business Login for
// Instagram (the Instagram API with Instagram Login): InstagramProvider
// implements social.Provider for it, with the feature catalogue
// InstagramFeatures (the instagram_business_* permissions, under the same
// feature names as the Instagram features of Features).
//
//	igProv, err := meta.NewInstagramProvider(cfg) // the Instagram app's id and secret
//	flow, err := store.NewFlow(igProv, social.FlowConfig{
//		Features: []string{meta.FeatureInstagram, meta.FeatureInstagramInsights}})
//	// … flow.Begin, the authorization window, flow.Complete
//	sess, err := store.Session(ctx, conn.ID, igProv)
//	client, err := meta.New(cfg, meta.WithSession(sess)) // calls graph.instagram.com
//
// Exchange trades the code at api.instagram.com for a short-lived token
// and that at once for a long-lived one (ig_exchange_token, about 60
// days), the only one stored; the long-lived token is its own refresh
// token, and Refresh extends it (ig_refresh_token) when the social store's
// token source finds it near its end (social.WithRefreshSkew sets how
// near). Its connections have PlatformInstagram; a connection's flavour
// (FlavourOf, Client.Flavour) is FacebookLogin or InstagramLogin. The
// same typed calls (Instagram.Profile, ListMedia, Publish, MediaInsights,
// AccountInsights, Demographics, InstagramComments) work on both flavours, each checking the
// flavour's permission names; a call the flavour lacks (Pages, Messenger,
// resumable uploads on Instagram Login) fails with a *FlavourError
// (ErrFlavour) before any request. NewCallbacks with
// CallbackConfig.Platform = PlatformInstagram serves the deauthorize and
// data deletion callbacks of the Instagram Login settings.
//
// # Audience demographics
//
// Instagram.Demographics reads follower_demographics or
// engaged_audience_demographics (period lifetime, metric_type
// total_value, timeframe this_week or this_month) by age, gender, country
// and city, one request per breakdown; Meta returns the top 45 values and
// nothing for accounts under 100 followers (*DemographicsError,
// ErrNoDemographics). Instagram.SnapshotDemographics stores them with the
// follower counts as one social.Snapshot (Snapshot.Breakdowns, Source
// naming the API version, metric, timeframe and breakdowns), under the
// aggregated metrics' retention.
//
// # Video upload
//
// Instagram.PublishVideo publishes a local video file as a reel or story:
// a container with upload_type=resumable, the file sent to the upload
// host with the offset and file_size headers (VideoUpload.Progress reports
// each chunk), resumed from the offset Meta holds after a dropped
// connection (up to VideoUpload.MaxResumes), the container polled, then
// published once: a publish whose answer is lost fails with
// *OutcomeUnknownError (ErrOutcomeUnknown) carrying the container id, and
// is never resent. Meta offers it to Facebook Login apps only.
//
// # Comments
//
// Client.InstagramComments and Client.PageComments list a media object's
// or Page post's comments (List, All, Replies), reply, hide, unhide and
// delete them (features instagram.comments and pages.comments). Comments
// are personal data of their authors: the SDK returns them and stores
// none; replies, hides and deletions are audited without their text.
//
// Every call carries the time-stamped appsecret_proof,
// HMAC-SHA256(app secret, token + "|" + unix time), with appsecret_time
// (Config.LegacyProof sends the older untimestamped form), and names the
// Graph API version, Config.Version (default DefaultVersion).
//
// # Publishing
//
// Publishing happens only at the user's instruction: Pages.Publish and
// Instagram.Publish are synchronous and each successful publish is
// appended to the tenant's audit log (meta.page.publish,
// meta.instagram.publish). Each is also recorded before it is sent
// (meta.page.publish_sending, meta.instagram.publish_sending: method,
// path, sent_at, container_id), a write whose answer was lost, cut short
// or a server error as meta.write_outcome_unknown, and one Meta refused,
// or that was never sent, as meta.write_refused (reason: Meta's code, or
// rate_limited, needs_reauth, revoked, cancelled, not_sent). The sending
// entry and the one that closes it (the publish's own entry, or one of
// those two) name the same attempt, so that a publish in doubt — its
// answer lost, or its process killed before reading it, leaving its
// sending entry open — is in the log to look up (Pages.Lookup,
// Instagram.Lookup) before sending again. Messenger.Send is recorded the
// same way. Instagram.Publish reads
// content_publishing_limit first (Meta's documents disagree on the cap),
// creates the containers, polls status_code on the client's clock until
// FINISHED (ERROR, EXPIRED or the timeout fail with *ContainerError and
// publish nothing), then publishes.
//
// # Insights
//
// Metric names churn (impressions gave way to views in 2025 and 2026) and
// one invalid name fails a whole insights call with code 100. Metric names
// are configuration (Config.Metrics, default DefaultMetrics) with
// fallbacks: names Meta retired are skipped without a request, a metric
// with no current name fails with *DeprecatedMetricError before any
// request, and when Meta refuses a batch each metric is retried alone
// through its fallbacks (*MetricError when none is taken). Insights and
// the snapshots stored by Pages.Snapshot and Instagram.Snapshot record the
// API version and the metric names that produced them
// (social.Snapshot.Source); with WithRawResponses the raw answers are kept
// too, in their own 90-day retention category.
//
// # Sync
//
// Client.Sync stores what the client's connection holds, as the TikTok
// client's Sync does: for a Page, a snapshot and its latest published
// posts (up to MaxSyncPosts) with each post's insights (Pages.Snapshot);
// for an Instagram account, a snapshot and its latest media with their
// insights (Instagram.Snapshot); for the Facebook user connection, the
// user's name only — a user has no metrics or posts the application may
// read. Figures Meta does not report for a kind of account (a Page's
// following count) are unknown, not 0; post texts and permalinks are
// stored sealed.
//
// # Messenger and callbacks
//
// A real Page sends the app no webhook event until the app is subscribed
// to it: Pages.Subscribe(ctx, pageID, MessengerFields()) on the Page's
// client (pages_manage_metadata, pages_messaging) does it when the Page
// connects; Pages.SubscribedApps lists and Pages.Unsubscribe removes the
// subscription.
//
// Messenger events arrive at the Webhook, an http.Handler for the app's
// callback URL. NewWebhook takes the app secret and verify token
// (WebhookConfig), the social store and an EventHandler, which receives
// the typed events inside the delivery's transaction. The inbox package
// provides one that stores them as crm conversations (socialcrm.SDK.MetaInbox
// builds it; declare it with WithIdempotentHandler); a host with a CRM of
// its own writes its own:
//
//	wh, err := meta.NewWebhook(meta.WebhookConfig{AppSecret: secret, VerifyToken: verify}, socialStore, handle)
//	mux.Handle("/meta/webhook", wh)
//
// GET answers the hub.challenge handshake; POST checks X-Hub-Signature-256
// over the raw body (bounded by WithMaxWebhookBody; ErrSignature, 401),
// decodes the typed events (ParseWebhook: message, echo, delivery, read,
// postback) and hands each entry's new ones to the handler in timestamp
// order. A delivery of messages, echoes and watermarks, as Meta sends
// them, is decoded by a hand-written scanner in one pass, anything else
// by encoding/json with the same result (FuzzWebhookScan compares the
// two): BenchmarkParseWebhook, 100 events, takes a median of 0.14 ms
// (runs 0.10 to 0.21) instead of 0.34 (0.31 to 0.55), five alternated
// runs each on a loaded 2-core host. Each event is deduplicated by its DedupeKey in the same
// transaction as the handler's writes (social.Store.Deliver; the handler
// gets the transaction as its bun.IDB), so a crash or a failed handler
// stores nothing and records nothing, and Meta's redelivery is processed
// once; concurrent redeliveries are serialized by the database. A handler
// that stores idempotently by itself (WithIdempotentHandler, as the
// inbox's does: messages once per mid) needs neither: the webhook then
// records no keys and opens no transaction, and hands it every event of
// every delivery with the database as its bun.IDB.
//
// Client.Messenger.Send replies as a Page. The caller tells it when the
// person last wrote (SendRequest.LastInbound, as its inbox knows it), and
// it refuses locally, sending nothing: ErrInvalidMessage for a request
// Meta would refuse, a *RetiredTagError (ErrRetiredTag) for a retired
// message tag, and a *WindowError (ErrWindowClosed) outside 24 hours after
// the person's last message (7 days with HUMAN_AGENT); Messenger.Check
// returns the same refusals without sending. Every send is audited
// before it is sent (meta.messenger.send_sending: method, path, sent_at)
// and once Meta accepted it (meta.messenger.send); a send whose answer is
// lost or is a server error fails with *OutcomeUnknownError, is not sent
// again and is recorded as meta.write_outcome_unknown. No entry holds the
// text or the recipient. A person Meta names by sender.user_ref (a
// checkbox plugin opt-in, a chat plugin guest) has no PSID: the event
// carries Event.UserRef, and SendRequest.UserRef answers with
// recipient.user_ref.
//
// NewCallbacks serves Meta's Deauthorize Callback (DeauthorizeHandler: the
// user's connections and every Page and Instagram connection made from
// them are revoked in each tenant, tokens deleted, and their purge
// scheduled through the social store's disconnect hook), the Data
// Deletion Request Callback (DataDeletionHandler: a verified retention
// erasure of the user per tenant, answered with {"url", "confirmation_code"})
// and the status page of deletion requests (DeletionStatusHandler, or
// DeletionStatus). socialcrm.SDK.MetaCallbacks builds them over the SDK.
// The signed_request is checked with ParseSignedRequest: HMAC-SHA256 of
// the payload as received, base64url, fresh within
// WithSignedRequestMaxAge; failures match ErrSignedRequest (and
// ErrSignedRequestExpired) and answer 401. ResumeDeletions finishes
// erasures a callback started but could not complete; call it from a
// scheduler. The deletion records (TableDeletions, category
// meta.deletion_request) hold no personal data and are kept three years
// as proof by socialcrm's default policy.
//
// # Concurrency
//
// Provider and Client are safe for concurrent use. Returned values are
// owned by the caller. Iterators (Pages.All, Instagram.AllMedia) fetch
// pages lazily and must not be shared between goroutines.
//
// # Errors
//
// Graph errors are *APIError{Message, Type, Code, Subcode, TraceID,
// Transient}, classified by code and subcode only, never by HTTP status
// or message text:
//
//	var apiErr *meta.APIError
//	if errors.As(err, &apiErr) { log.Print(apiErr.Code, apiErr.Subcode, apiErr.TraceID) }
//	errors.Is(err, social.ErrNeedsReauth) // 190: the connection became needs_reauth
//	errors.Is(err, meta.ErrAppRemoved)    // 190/458: the user removed the app
//	errors.Is(err, meta.ErrNoPageRole)    // 190/492: restore the Page role; a new login does not help
//	errors.Is(err, meta.ErrRateLimited)   // 4, 17, 32, 341, 613, 800xx: *RateLimitError with Usage
//	var se *social.ScopeError
//	errors.As(err, &se)                   // missing permission, locally or Meta's 10 and 200–299
//	errors.Is(err, meta.ErrInvalidParameter) // 100
//	errors.Is(err, meta.ErrFlavour)          // not offered to the connection's login flavour
//	errors.Is(err, meta.ErrOutcomeUnknown)   // a publish was sent, its answer lost
//
// A *social.ScopeError from a method means nothing was sent. After a rate
// limit the client makes no call until Meta's
// estimated_time_to_regain_access (or DefaultRateLimitWait) has passed:
// calls made during a block extend it. Share one Limits (WithLimits)
// between an app's clients so that a block holds for all of them: the
// app limits (4, 341) block every connection, the others the connection's
// account. Reads are retried on 5xx and
// transport errors (bounded, jittered, never past the context); writes
// only after a 429: a write answered with a 5xx or not at all is an
// *OutcomeUnknownError (errors.Is(err, social.ErrOutcomeUnknown)) naming
// the call and when it was sent: Pages.Lookup and Instagram.Lookup find
// out whether the post was made, without posting again. A
// 190 for a token the user replaced meanwhile by logging in again sends
// the call again, once, with the stored token. Every Response carries the parsed X-App-Usage,
// X-Page-Usage and X-Business-Use-Case-Usage headers (Response.Usage).
//
// # Security
//
// The app secret is a vault.Secret and prints as [REDACTED]. Tokens are
// opened in memory for each call and sent only in the Authorization
// header; the token exchanges send the secret in the request body. URLs in
// errors have access_token, appsecret_proof, client_secret and similar
// parameters removed, and Meta's own error text is scrubbed of the token
// used. The debug log (WithLogger) holds method, path, status, fbtrace_id
// and usage, never a token or proof.
//
// # Testing
//
// meta/metatest is an in-process emulator of the Graph API (Login dialog
// and consent, token lifetimes on an injectable clock, Page tokens,
// containers, insights, rate limits and injected faults). For Messenger
// it sends signed webhook deliveries (Server.SendWebhook with events
// such as TextMessage, Delivery.Resend for Meta's retries,
// Server.VerifyWebhook for the handshake, SignPayload) and records the
// Send API's messages (Server.SentMessages); for the callbacks it posts
// signed requests (Server.Deauthorize, Server.RequestDataDeletion,
// Server.SignedRequest, EncodeSignedRequest). It serves Instagram Login
// (Server.InstagramGraphURL, InstagramLoginURL, InstagramConsent,
// DeauthorizeInstagram), demographics (SetDemographics), resumable
// uploads (UploadURL, DropUpload), comments (AddComment) and lost answers
// (DropAnswer). Point
// Config.GraphURL and Config.DialogURL at its GraphURL and DialogURL, pass
// its Client with WithHTTPClient, and drive time with WithClock and
// WithRetry's wait instead of sleeping.
package meta

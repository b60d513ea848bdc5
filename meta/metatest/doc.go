// Package metatest is an in-process emulator of Meta's Graph API — Facebook
// Login, Pages, Instagram professional accounts and Messenger — served by a
// real httptest server, so the Meta client can be tested over HTTP against
// the behaviour Meta documents: status codes, the error envelope, token
// lifetimes, permission checks, rate-limit headers and signed callbacks.
//
// Point a client at GraphURL instead of https://graph.facebook.com and at
// DialogURL instead of https://www.facebook.com/{version}/dialog/oauth:
//
//	srv := metatest.Start(t,
//		metatest.WithApp(metatest.App{ID: "1001", Secret: "s3cret",
//			RedirectURIs: []string{"https://crm.example/callback"}}),
//		metatest.WithUser(metatest.User{ID: "2001", Name: "Ada"}),
//		metatest.WithPage(metatest.Page{ID: "3001", Name: "Ada's Bakery",
//			Tasks: map[string][]string{"2001": metatest.AllTasks()}}),
//	)
//	conf := &oauth2.Config{ClientID: "1001", ClientSecret: "s3cret",
//		Endpoint: srv.Endpoint(), RedirectURL: "https://crm.example/callback",
//		Scopes: []string{"pages_show_list", "pages_manage_posts"}}
//	redirect, _ := srv.Consent(conf.AuthCodeURL("state"), metatest.Consent{UserID: "2001"})
//	tok, _ := conf.Exchange(ctx, redirect.Query().Get("code"))
//	// GET srv.GraphURL()+"/"+srv.Version()+"/me/accounts" with tok …
//
// # What it emulates
//
// Facebook Login: the OAuth dialog (GET renders a consent page, POST
// decides) and its programmatic twin Consent, which grants, declines or
// denies; single-use codes at /oauth/access_token; the long-lived exchange
// (grant_type=fb_exchange_token) and client credentials; /debug_token;
// /me/permissions (GET, DELETE for one permission or all of them) and
// /me/accounts with Page tokens that never expire when derived from a
// long-lived user token. Token errors use code 190 with the documented
// subcodes: 463 expired, 460 password changed (ChangePassword), 458 app not
// authorized (DELETE /me/permissions, Deauthorize), 492 Page role removed
// (RemovePageRole). Apps with RequireAppSecretProof reject calls without a
// valid appsecret_proof (plain or time-stamped with appsecret_time, see
// AppSecretProof).
//
// Pages: /{page}/feed (text, link), /photos, /videos, post reads and
// deletes, /{page}/insights and /{post}/insights with the metric names in use
// in 2026. Deprecated metrics fail the whole request with "(#100) The value
// must be a valid insights metric" once the clock passes their retirement
// date; RetireMetric retires more.
//
// Instagram: the account behind a Page (?fields=instagram_business_account),
// profile fields, containers for images, REELS, STORIES, carousel items and
// CAROUSEL whose status_code moves IN_PROGRESS → FINISHED with the clock
// (WithContainerProcessing, FinishContainer) or to ERROR (FailContainer,
// FailMediaURL) and EXPIRED after 24 hours; /media_publish (9007/2207027
// before FINISHED; 9/2207042 past the publishing limit);
// /content_publishing_limit; media lists and media insights.
//
// Instagram Login: the hosts graph.instagram.com, api.instagram.com and
// rupload.facebook.com are served under InstagramGraphURL,
// InstagramLoginURL and UploadURL. InstagramConsent plays the creator in
// the authorization window (scope must include instagram_business_basic;
// the redirect carries code and state, with "#_" appended); POST
// /oauth/access_token answers {"data":[{access_token, user_id,
// permissions}]} or api.instagram.com's {"error_type","code",
// "error_message"}; /access_token (ig_exchange_token) and
// /refresh_access_token (ig_refresh_token, tokens at least 24 hours old)
// answer {access_token, token_type, expires_in}. graph.instagram.com takes
// only Instagram Login tokens (InstagramToken), graph.facebook.com only
// Facebook ones (190 otherwise); accounts need no Page
// (InstagramAccount.PageID may be empty). DeauthorizeInstagram removes the
// app (190/458) and posts the callback.
//
// Account insights: /{ig-user}/insights serves follower_demographics and
// engaged_audience_demographics (SetDemographics) with period=lifetime,
// metric_type=total_value, one breakdown of age, city, country, gender and
// timeframe this_week or this_month (the retired last_* timeframes fail
// with code 100), as total_value.breakdowns[].results[]{dimension_values,
// value}, the top 45 values; accounts under DemographicsMinFollowers get
// an empty data set, as Meta answers for unavailable insights. Other
// metrics set with SetMetric answer total_value.value.
//
// Resumable uploads (Facebook Login only): POST /{ig-user}/media with
// upload_type=resumable answers {id, uri}; POST uri with Authorization:
// OAuth, offset and file_size sends bytes (an offset other than the bytes
// held fails), GET uri answers {id, offset, file_size} — how an
// interrupted upload resumes here; the container is IN_PROGRESS until the
// file is complete. DropUpload breaks the next upload request mid-body;
// UploadedBytes reports what arrived. DropAnswer carries out requests but
// closes the connection instead of answering (a lost publish answer).
//
// Comments: AddComment registers comments on media or Page posts;
// /{media}/comments, /{comment}/replies (POST replies go to the top-level
// comment, not to hidden ones), POST /{comment}?hide=, DELETE /{comment}
// on Instagram; /{post}/comments, /{comment}/comments, ?is_hidden= on
// Pages, with Page tokens holding pages_read_user_engagement and
// pages_manage_engagement. Comments lists what is left.
//
// Messenger: VerifyWebhook performs the hub.challenge handshake against an
// endpoint; SendWebhook POSTs signed entry[].messaging[] events (messages
// with text and attachments, echoes, deliveries, reads, postbacks) with
// X-Hub-Signature-256, escaping the payload as Meta does, and
// Delivery.Resend repeats one. The Send API (POST /{page}/messages) enforces
// the 24-hour standard window (10/2018278 outside it), the 7-day HUMAN_AGENT
// tag for apps with the feature and the tags retired on April 27, 2026.
//
// Callbacks: SignedRequest and EncodeSignedRequest build signed_request
// values; Deauthorize and RequestDataDeletion POST them to an app's
// callback URL and check the answers.
//
// Limits: every authenticated call is metered and answered with X-App-Usage
// (user and app tokens), X-Page-Usage (Page tokens) and
// X-Business-Use-Case-Usage (Pages, Instagram accounts, Messenger) as JSON
// percentages; past a budget (WithRateLimit) calls fail with code 4, 17, 32,
// 80001, 80002 or 613. InjectFault makes the next N calls to a path fail
// with any Graph error — before anything is carried out, or after
// (Fault.Acted: a message delivered, then answered with code 1200
// "Temporary send message failure" or a 5xx, as the Send API documents);
// DropAnswer carries the next N calls out and closes the connection
// without answering.
//
// Versions: the emulator serves one version (WithVersion). Unversioned calls
// and calls to older versions are answered as that version, as Meta upgrades
// calls to retired versions; newer versions fail with code 2500 "Unknown
// path components". WithStrictVersion rejects everything but the served
// version.
//
// # Errors
//
// Over HTTP, errors are Meta's envelope {"error":{"message","type","code",
// "error_subcode","is_transient","fbtrace_id"}} with mostly HTTP 400, 403
// for permission codes (10, 200–299) and 500 for codes 1 and 2. Go helpers
// return ErrInvalid, ErrNotFound or ErrDuplicate (wrapped; test with
// errors.Is) and *CallbackError when an endpoint under test rejects a
// delivery:
//
//	var cbErr *metatest.CallbackError
//	if errors.As(err, &cbErr) { … cbErr.StatusCode … }
//
// # Security
//
// Secrets never appear in the request log, in error messages or in the
// callback errors the emulator produces: Requests redacts tokens, codes,
// proofs and client secrets (see Request), and CallbackError never carries
// the verify token. Pagination links carry the caller's own query, as
// Meta's do.
//
// # Concurrency
//
// A Server is safe for concurrent use; every request and helper runs under
// one mutex, released while the emulator waits on outbound deliveries.
// Slices returned by Requests, Posts and SentMessages are copies owned by the
// caller.
//
// # Testing
//
// Use Start in tests: it fails the test on a bad option and closes the
// server in t.Cleanup. Drive time with WithClock and Advance instead of
// sleeping; assert what was sent with Requests (and that nothing was sent
// with an empty log), Posts and SentMessages.
package metatest

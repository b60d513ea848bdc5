// Package inbox connects the Messenger and Instagram inboxes of connected
// Pages to crm: webhook events in as crm conversations and messages,
// replies out through the Send API and kept beside them. It is the bridge
// between meta, which knows nothing of crm, and crm, which knows nothing
// of Meta; a host with a CRM of its own uses meta alone and implements a
// meta.EventHandler of its own instead.
//
//	in, err := inbox.New(socialStore, crmStore, inbox.WithLogger(log))
//	wh, err := meta.NewWebhook(meta.WebhookConfig{AppSecret: secret, VerifyToken: verify}, socialStore, in.Handle,
//		meta.WithIdempotentHandler())
//	mux.Handle("/meta/webhook", wh)
//	…
//	sent, _, err := in.Send(ctx, pageClient, pageID, meta.SendRequest{PSID: psid,
//		MessagingType: meta.MessagingResponse, Text: "Yes, fresh at 9."})
//
// socialcrm.SDK.MetaInbox builds one over the SDK's stores.
//
// # Events in
//
// Handle is the webhook's meta.EventHandler. It stores idempotently —
// each message once per conversation and mid, watermarks only moved
// forward — so declare it with meta.WithIdempotentHandler: the webhook
// then keeps no delivery records and opens no transaction, each tenant's
// events are stored by one statement that commits on its own, and a
// redelivery (or the same delivery reaching two replicas at once) stores
// nothing twice; a delivery that failed half-way keeps what it stored, and
// its redelivery adds the rest. Without the option, each delivery's events
// are stored in the delivery's transaction with its records
// (social.Store.Deliver). Pages are routed to tenants through social's
// account index (a Page connection made by meta.Provider.ConnectPages),
// which also says whether each connection is live: the events are stored
// in every tenant that connected the Page, and a tenant whose Page
// connection was disconnected receives nothing more; events of Pages no
// tenant connected are dropped. An Inbox keeps the routes of each Page
// whose tenants the index knows all live (up to 4,096 Pages) and routes
// the Page's next deliveries by them without a statement of its own: each
// tenant's Ingest carries the condition that the routes still hold
// (social.Store.Routed, checked by the write itself, in its snapshot), so
// a revocation committed before the write stores nothing, and a tenant
// that connected the Page since makes the condition fail; the delivery is
// then routed again from the index and stored again (idempotently).
//
// A conversation is keyed by channel messenger, the Page id and the
// person's PSID (Key); Instagram messaging by channel instagram, the
// Instagram account's id and the person's Instagram-scoped id. A person
// Meta names by sender.user_ref (a checkbox plugin opt-in, a chat plugin
// guest) has no PSID: their conversation's thread id is "user_ref:"
// followed by the reference (UserRefKey), never mistaken for a PSID. A
// person's message or postback is stored inbound (delivered); an echo —
// the Page's own message, sent through the Send API or from the Page
// inbox — outbound and sent; a delivery or read watermark moves the
// Page's outbound messages up to it to delivered or read. Messages are
// stored once per mid, so an echo of a message Send stored already, or a
// repeated event, adds nothing. A delivery's messages and watermarks are
// stored per tenant with one crm Ingest. An event crm refuses as invalid
// (a text over its limit) is logged and dropped rather than failed, since
// Meta would redeliver it forever.
//
// # Replies out
//
// Send replies to a person as the Page through a meta.Client acting for
// the Page's connection; Reply answers a stored conversation. The window
// (24 hours after the person's last message, 7 days with HUMAN_AGENT) is
// read from crm and handed to meta as SendRequest.LastInbound. What
// meta's Messenger.Check refuses is refused before anything is stored or
// sent; otherwise the reply is stored as an outbound message (pending),
// then marked sent with its mid, or failed when Meta refuses it. A
// user_ref conversation is answered with recipient.user_ref.
//
// # Data subjects
//
// Resolvers adds the identifier kind SubjectUserRef to the retention
// engine: a request naming a guest by the user_ref the website gave the
// plugin reaches their conversations, their messages and the contact
// linked to them, through crm's resolvers (socialcrm.Open registers it).
//
// # Performance
//
// A delivery costs a fixed number of statements, not a number per event.
// On PostgreSQL, with the inbox declared idempotent, a delivery of 100
// events from a Page one tenant connected makes one round trip once the
// Page's routes are kept: crm's Ingest, one statement for every
// conversation, message and watermark of the tenant, which also checks
// the routes, committed on its own (TestRoutedDeliveryIsOneRoundTrip
// counts it). It made two before (the select of the Page's tenants from
// the account index, then Ingest), four before that. The driver's counter
// (BenchmarkPostgresMessengerInterleaved in meta) shows 0.0094 to 0.0102
// per event: about one per delivery of 100 (the statement's parameters,
// about 20 KB, are written in parts, which the counter may take for more
// than one; a delivery of one message counts exactly one).
//
// The delivery's rows travel as the statement's parameters (see
// crm.Conversations.Ingest): its text, about 5 KB, is the same for every
// delivery of a Page to a tenant, so it is written, checked by the
// tenancy Guard (from its cache of statement shapes) and parsed by the
// server once per connection, and the server plans it once for all after
// its first runs. Before, bun wrote the rows into the text as quoted
// array literals (about 25 KB), which the driver then scanned for literals
// and the Guard for its cache key, with every delivery.
//
// The server writes less than it used to, too: no delivery record per
// event (a row and two index entries each), and crm no longer writes a
// row version of every conversation a delivery brings a message to: it
// locks the existing ones against removal and writes a conversation only
// when it is new, a watermark moves, or its first message of a later hour
// arrives (see crm.Conversations.Ingest; reads derive the exact last
// message time). EXPLAIN (ANALYZE, BUFFERS, WAL) of the 40th delivery of
// the benchmark below (80 messages in 80 existing conversations, 20
// watermarks), as the application role on a loaded host: the statement
// took 3.4 ms and 910 WAL records (157 KB, full-page images included),
// 1.3 ms and 448 records of them the conversations' upsert; now 3.1 ms
// and 484 records (84 KB), 0.4 to 0.6 ms and 80 records the conversations'
// locks. What remains beyond the raw handler's work is the messages'
// insert (sealed, wider rows and index entries: ids of 36 characters where
// the raw table has conversation ids of 11), which alone takes about what
// the raw insert takes, and the statement's own joins.
//
// The Go side — decoding the delivery into typed events, validating,
// sealing, blind indexes, the driver sending the statement, and the
// garbage collector's share — took a median 3.0 ms of the process's CPU
// per delivery (2.7 to 3.5) before the rows travelled as parameters and
// 2.4 ms (2.0 to 3.7) after, where the raw handler took 1.1 ms (0.7 to
// 1.4) in both (getrusage around each delivery in
// BenchmarkPostgresMessengerInterleaved, 5 runs of 200 deliveries each,
// alternating the two builds on a 2-core host at load average 12 to 19);
// it allocates 0.80 MB in 3,630 allocations per delivery where it
// allocated 1.34 MB in 4,180, the raw handler 0.40 MB in 2,440. What is
// left is shared about evenly by the JSON decoding into typed events,
// crm's preparation of the batch (validation, sealing, ids, blind
// indexes), the driver, and the garbage collector.
//
// The ratio of the benchmark — the median of per-delivery ratios to a
// handler storing the same messages with one raw pgx INSERT, unsealed,
// without conversations — alternating three builds (before; with the
// conversations' locks; with the locks and crm's remembered
// conversations, which spare sealing their thread ids), 6 runs of 200
// deliveries each at load average 8 to 9: 2.33 (runs 1.87 to 3.09), 1.84
// (1.74 to 2.09) and 1.93 (1.55 to 1.99), with the process's CPU per
// delivery at 2.52, 2.39 and 2.20 ms against the raw handler's 1.0. The
// aim, 1.5, is not reached: the messages' insert and the Go side's CPU
// remain.
//
// # Concurrency
//
// An Inbox is safe for concurrent use. Concurrent deliveries of one event
// store it once: declared idempotent, by crm's unique keys (a message per
// conversation and mid, a conversation per key), else serialized by the
// delivery records (social.Store.Deliver).
//
// # Errors
//
// New fails with ErrConfig. Send returns meta's errors as they are
// (errors.Is(err, meta.ErrWindowClosed), errors.As(err, &windowErr) with a
// *meta.WindowError, a *social.ScopeError, a *meta.APIError) and crm's
// when storing fails (crm.ErrInvalid, crm.ErrNotFound).
//
// # Security
//
// The logger receives ids and event kinds, never message text. Thread ids
// and message texts are stored sealed by crm.
//
// # Testing
//
// meta/metatest emulates the Graph API, the Send API and signed webhook
// deliveries (a user_ref sender included); the package's tests run the
// inbox against it on SQLite and PostgreSQL.
package inbox

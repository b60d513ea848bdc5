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
// Handle is the webhook's meta.EventHandler. Each delivery's events are
// stored in the delivery's transaction (social.Store.Deliver), so a crash
// loses nothing and a redelivery stores nothing twice. Pages are routed to
// tenants through social's account index (a Page connection made by
// meta.Provider.ConnectPages): the events are stored in every tenant that
// connected the Page, and a tenant whose Page connection was disconnected
// receives nothing more; events of Pages no tenant connected are dropped.
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
// On PostgreSQL a delivery of 100 events from a Page one tenant connected
// makes four dependent round trips: the statement that records the
// delivery's events and reads the Page's tenants from the account index
// (social.Store.Deliver), the tenant's Page connection (a disconnected
// one receives nothing), crm's Ingest — one statement for every
// conversation, message and watermark of the tenant, prepared once per
// connection and tenant — and the commit. The driver's counter
// (BenchmarkPostgresMessengerWebhook in meta) shows 0.044 to 0.048 per
// event, 4.4 to 4.8 per delivery (from 8.2 before these statements were
// folded): Ingest's statement, about 25 KB for 80 messages, is written in
// parts while the replies to what precedes it already arrive, which the
// counter takes for more round trips than the client waits for. A
// hand-written handler that inserts the same messages with one statement,
// unsealed, without conversations or deduplication, makes one.
//
// What remains is the server's work that handler does not do: each
// delivery records its 100 events (the deduplication), and each message
// moves its conversation's last message time — an update of an indexed
// column, so every index of the conversation gets a new entry, on a row
// the person's next message updates again; until vacuum runs, those
// versions lengthen every look-up of the conversation. In one traced run
// of the benchmark (500 people), Ingest's statement and the commit each
// took about 40% of a delivery's time, and the conversation updates most
// of the statement's. Measured side by side on a 2-core host other work
// kept busy (load average 12 to 13; BenchmarkPostgresMessengerInterleaved,
// the median of per-delivery ratios, medians of 5 runs alternating with
// the code before): 4.7 times that insert (runs 4.6 to 9.8), from 7.2
// (3.6 to 8.6) before; 10,000 events took 3.2 s instead of 4.5 s. With the
// host quieter (load average 3), 4.6 to 5.0 times, 10,000 events in about
// a second: the ratio follows the server's work, not the load.
//
// # Concurrency
//
// An Inbox is safe for concurrent use; concurrent deliveries of one event
// are serialized by the database (social.Store.Deliver).
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

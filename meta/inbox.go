package meta

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
)

// Inbox stores Messenger events as crm conversations and messages, in
// every tenant that connected the event's Page. Use its Handle as the
// Webhook's EventHandler:
//
//	inbox, err := meta.NewInbox(db, socialStore, crmStore)
//	wh, err := meta.NewWebhook(whCfg, socialStore, inbox.Handle)
//
// Each delivery's events are recorded as processed and stored in one
// transaction (social.Store.Deliver), so a crash loses nothing and a
// redelivery stores nothing twice.
//
// A conversation is keyed by channel messenger, the Page id and the
// person's PSID (Instagram messaging: channel instagram, the Instagram
// account's id and the person's IGSID). A person's message or postback is stored inbound
// (delivered); an echo — the Page's own message, sent through the Send
// API or from the Page inbox — outbound and sent; a delivery or read
// watermark moves the Page's outbound messages up to it to delivered or
// read. Messages are stored once per mid, so an echo of a message the
// Send API stored already, or a repeated event, adds nothing.
//
// Pages are routed to tenants through social's account index (a Page
// connection made by Provider.ConnectPages); a tenant whose Page
// connection was disconnected receives nothing more. Events of Pages no
// tenant connected are dropped. An event crm refuses as invalid (a text
// over its limit) is logged and dropped rather than failed, since Meta
// would redeliver it forever. An Inbox is safe for concurrent use.
type Inbox struct {
	db     bun.IDB
	social *social.Store
	crm    *crm.Store
	now    func() time.Time
	log    *slog.Logger
}

// InboxOption configures an Inbox.
type InboxOption func(*Inbox) error

// WithInboxLogger sets the logger (default: discard). It receives ids and
// event kinds, never message text.
func WithInboxLogger(l *slog.Logger) InboxOption {
	return func(in *Inbox) error {
		in.log = l
		return nil
	}
}

// WithInboxClock sets the clock used for events without a timestamp
// (default time.Now).
func WithInboxClock(now func() time.Time) InboxOption {
	return func(in *Inbox) error {
		if now == nil {
			return fmt.Errorf("%w: WithInboxClock: nil clock", ErrConfig)
		}
		in.now = now
		return nil
	}
}

// NewInbox returns an inbox routing through store and storing into
// conversations, over db (the database of both). Handle works inside the
// transaction it is given; db is kept for the callers that build it.
func NewInbox(db bun.IDB, store *social.Store, conversations *crm.Store, opts ...InboxOption) (*Inbox, error) {
	if db == nil || store == nil || conversations == nil {
		return nil, fmt.Errorf("%w: NewInbox: nil db or store", ErrConfig)
	}
	in := &Inbox{db: db, social: store, crm: conversations, now: time.Now}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(in); err != nil {
			return nil, err
		}
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	return in, nil
}

// ConversationKey returns the crm key of the conversation between a Page
// and a person.
func ConversationKey(pageID, psid string) crm.ConversationKey {
	return crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: pageID, ThreadID: psid}
}

// UserRefConversationKey returns the crm key of the conversation between
// a Page and a person Meta names by a user_ref (a checkbox plugin opt-in,
// a chat plugin guest), who has no PSID: its thread id is "user_ref:"
// followed by the reference, never mistaken for a PSID.
func UserRefConversationKey(pageID, userRef string) crm.ConversationKey {
	return crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: pageID, ThreadID: "user_ref:" + userRef}
}

// key returns the conversation key of the event's person.
func (e *Event) key() crm.ConversationKey {
	if e.PSID == "" && e.UserRef != "" {
		return UserRefConversationKey(e.PageID, e.UserRef)
	}
	return ConversationKey(e.PageID, e.PSID)
}

// Handle stores events in every tenant that connected their Page, inside
// tx (the webhook's delivery transaction; see EventHandler), with a few
// statements per tenant for the whole batch (crm's RecordAll and MarkAll):
// messages, echoes and postbacks are recorded, and the latest delivery
// and read watermark of each conversation applied. The Page's tenants are
// looked up once per batch and Page, through tx.
func (in *Inbox) Handle(ctx context.Context, tx bun.Tx, events []*Event) error {
	store := in.social.Using(tx)
	routes := map[string][]context.Context{}
	var tenants []string                      // in first-seen order
	perTenant := map[string][]*Event{}        // tenant id -> its events
	tenantCtx := map[string]context.Context{} // tenant id -> context acting on it
	for _, ev := range events {
		if ev.Kind == EventOther || ev.PageID == "" || ev.PSID == "" && ev.UserRef == "" {
			continue
		}
		ctxs, seen := routes[ev.PageID]
		if !seen {
			var err error
			if ctxs, err = in.route(ctx, store, ev.PageID); err != nil {
				return err
			}
			routes[ev.PageID] = ctxs
		}
		for _, tctx := range ctxs {
			tid, _ := tenancy.TenantID(tctx)
			if _, ok := tenantCtx[tid]; !ok {
				tenantCtx[tid] = tctx
				tenants = append(tenants, tid)
			}
			perTenant[tid] = append(perTenant[tid], ev)
		}
	}
	convs := in.crm.Using(tx).Conversations()
	for _, tid := range tenants {
		if err := in.store(tenantCtx[tid], convs, perTenant[tid]); err != nil {
			return err
		}
	}
	return nil
}

// route returns a context acting on each tenant whose connection of the
// Page is not revoked.
func (in *Inbox) route(ctx context.Context, store *social.Store, pageID string) ([]context.Context, error) {
	routes, err := store.AccountTenants(ctx, Platform, pageID)
	if err != nil {
		return nil, err
	}
	sys := tenancy.System(ctx, "meta-webhook")
	var out []context.Context
	for _, rt := range routes {
		tctx, err := tenancy.AsTenant(sys, rt.TenantID)
		if err != nil {
			return nil, err
		}
		conn, err := store.Get(tctx, rt.ConnectionID)
		if errors.Is(err, social.ErrNotFound) || (err == nil && conn.Status == social.StatusRevoked) {
			continue // disconnected: collect nothing more
		}
		if err != nil {
			return nil, err
		}
		out = append(out, tctx)
	}
	return out, nil
}

// store records one tenant's events: the messages with one RecordAll, then
// the latest watermarks of each conversation with one MarkAll.
func (in *Inbox) store(ctx context.Context, convs *crm.Conversations, events []*Event) error {
	var msgs []crm.NewMessage
	var kinds []EventKind
	var marks []crm.Watermarks
	for _, ev := range events {
		key := ev.key()
		if ev.Object == "instagram" {
			key.Channel = crm.ChannelInstagram
		}
		at := ev.Time
		if at.IsZero() {
			at = in.now()
		}
		switch ev.Kind {
		case EventMessage, EventEcho:
			m := crm.NewMessage{Conversation: key, Direction: crm.Inbound, ExternalID: ev.Message.MID, Text: ev.Message.Text, SentAt: at}
			if ev.Kind == EventEcho {
				m.Direction = crm.Outbound
			}
			for _, a := range ev.Message.Attachments {
				if a.URL == "" {
					if m.Text == "" {
						m.Text = "[" + a.Type + "]"
					}
					continue
				}
				m.Attachments = append(m.Attachments, crm.MessageAttachment{Type: a.Type, URL: a.URL})
			}
			if m.Text == "" && len(m.Attachments) == 0 {
				m.Text = "[message]"
			}
			msgs, kinds = append(msgs, m), append(kinds, ev.Kind)
		case EventPostback:
			text := ev.Postback.Title
			if text == "" {
				text = ev.Postback.Payload
			}
			if text == "" {
				text = "[postback]"
			}
			mid := ev.Postback.MID
			if mid == "" {
				mid = "postback:" + ev.DedupeKey()
			}
			msgs = append(msgs, crm.NewMessage{Conversation: key, Direction: crm.Inbound, ExternalID: mid, Text: text, SentAt: at})
			kinds = append(kinds, ev.Kind)
		case EventDelivery:
			marks = append(marks, crm.Watermarks{Conversation: key, Delivered: ev.Delivery.Watermark})
		case EventRead:
			marks = append(marks, crm.Watermarks{Conversation: key, Read: ev.Read.Watermark})
		}
	}
	if len(msgs) > 0 {
		rejected, err := convs.RecordAll(ctx, msgs)
		if err != nil {
			return err
		}
		for i, rerr := range rejected {
			if rerr != nil {
				// Meta would redeliver it forever: log and drop it.
				in.log.WarnContext(ctx, "meta: inbox dropped an invalid event", "kind", kinds[i], "page", msgs[i].Conversation.AccountID, "error", rerr)
			}
		}
	}
	if len(marks) > 0 {
		_, err := convs.MarkAll(ctx, marks)
		if errors.Is(err, crm.ErrInvalid) {
			in.log.WarnContext(ctx, "meta: inbox dropped invalid watermarks", "error", err)
			return nil
		}
		return err
	}
	return nil
}

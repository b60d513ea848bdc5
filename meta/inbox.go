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
// conversations, over db (the database of both): each batch of events is
// stored in one transaction per tenant.
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

// Handle stores events in every tenant that connected their Page, in
// order, in one transaction per tenant. It is an EventHandler; the Page's
// tenants are looked up once per batch and Page.
func (in *Inbox) Handle(ctx context.Context, events []*Event) error {
	routes := map[string][]context.Context{}
	var tenants []string                      // in first-seen order
	perTenant := map[string][]*Event{}        // tenant id -> its events
	tenantCtx := map[string]context.Context{} // tenant id -> context acting on it
	for _, ev := range events {
		if ev.Kind == EventOther || ev.PageID == "" || ev.PSID == "" {
			continue
		}
		ctxs, seen := routes[ev.PageID]
		if !seen {
			var err error
			if ctxs, err = in.route(ctx, ev.PageID); err != nil {
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
	for _, tid := range tenants {
		err := tenancy.RunInTx(tenantCtx[tid], in.db, nil, func(ctx context.Context, tx bun.Tx) error {
			cs := in.crm.Using(tx)
			for _, ev := range perTenant[tid] {
				err := in.store(ctx, cs, ev)
				if errors.Is(err, crm.ErrInvalid) {
					in.log.WarnContext(ctx, "meta: inbox dropped an invalid event", "kind", ev.Kind, "page", ev.PageID, "error", err)
					continue
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// route returns a context acting on each tenant whose connection of the
// Page is not revoked.
func (in *Inbox) route(ctx context.Context, pageID string) ([]context.Context, error) {
	routes, err := in.social.AccountTenants(ctx, Platform, pageID)
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
		conn, err := in.social.Get(tctx, rt.ConnectionID)
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

func (in *Inbox) store(ctx context.Context, cs *crm.Store, ev *Event) error {
	conv := cs.Conversations()
	key := ConversationKey(ev.PageID, ev.PSID)
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
		_, err := conv.Record(ctx, m)
		return err
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
		_, err := conv.Record(ctx, crm.NewMessage{Conversation: key, Direction: crm.Inbound, ExternalID: mid, Text: text, SentAt: at})
		return err
	case EventDelivery, EventRead:
		var err error
		if ev.Kind == EventDelivery {
			_, err = conv.MarkDelivered(ctx, key, ev.Delivery.Watermark)
		} else {
			_, err = conv.MarkRead(ctx, key, ev.Read.Watermark)
		}
		if errors.Is(err, crm.ErrNotFound) {
			return nil // a watermark for a conversation never stored here
		}
		return err
	}
	return nil
}

package inbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
)

// ErrConfig is returned by New for a missing store or an invalid option.
var ErrConfig = errors.New("inbox: invalid configuration")

// Inbox stores Messenger and Instagram messaging events as crm
// conversations and messages, in every tenant that connected the event's
// Page, and sends replies that it stores there too. See the package
// documentation. An Inbox is safe for concurrent use.
type Inbox struct {
	social *social.Store
	crm    *crm.Store
	now    func() time.Time
	log    *slog.Logger
	// routes are the kept routes of Pages (see Handle).
	routes routeCache
}

// Option configures an Inbox.
type Option func(*Inbox) error

// WithLogger sets the logger (default: discard). It receives ids and
// event kinds, never message text.
func WithLogger(l *slog.Logger) Option {
	return func(in *Inbox) error {
		in.log = l
		return nil
	}
}

// WithClock sets the clock (default time.Now) used for events without a
// timestamp and for the time of a stored reply.
func WithClock(now func() time.Time) Option {
	return func(in *Inbox) error {
		if now == nil {
			return fmt.Errorf("%w: WithClock: nil clock", ErrConfig)
		}
		in.now = now
		return nil
	}
}

// New returns an inbox that routes events to tenants through store (the
// Pages' connections) and keeps the conversations in conversations. A nil
// option is skipped.
func New(store *social.Store, conversations *crm.Store, opts ...Option) (*Inbox, error) {
	if store == nil || conversations == nil {
		return nil, fmt.Errorf("%w: New: nil social or crm store", ErrConfig)
	}
	in := &Inbox{social: store, crm: conversations, now: time.Now}
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

// userRefPrefix starts the thread id of a person Meta names by a
// user_ref.
const userRefPrefix = "user_ref:"

// Key returns the crm key of the Messenger conversation between a Page
// and a person, by the person's Page-scoped id.
func Key(pageID, psid string) crm.ConversationKey {
	return crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: pageID, ThreadID: psid}
}

// UserRefKey returns the crm key of the Messenger conversation between a
// Page and a person Meta names by a user_ref (a checkbox plugin opt-in, a
// chat plugin guest), who has no PSID: its thread id is "user_ref:"
// followed by the reference, never mistaken for a PSID.
func UserRefKey(pageID, userRef string) crm.ConversationKey {
	return crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: pageID, ThreadID: userRefPrefix + userRef}
}

// eventKey returns the conversation key of the event's person.
func eventKey(e *meta.Event) crm.ConversationKey {
	key := Key(e.PageID, e.PSID)
	if e.PSID == "" && e.UserRef != "" {
		key = UserRefKey(e.PageID, e.UserRef)
	}
	if e.Object == "instagram" {
		key.Channel = crm.ChannelInstagram
	}
	return key
}

// Handle is a meta.EventHandler: it stores events in every tenant that
// connected their Page, through db (the webhook's delivery transaction,
// or its database), with one crm Ingest per tenant for the whole batch:
// messages, echoes and postbacks are recorded, and the latest delivery
// and read watermark of each conversation applied. It is idempotent — a
// message is stored once per conversation and mid (one without a mid by
// its meta.Event.DedupeKey), watermarks only move forward — so declare
// it with meta.WithIdempotentHandler, which spares each delivery the
// records of its events.
//
// The Page's tenants are looked up once (social.Store.AccountTenants)
// and kept while the account index knows every one of them live; each
// later delivery to the Page is then routed without a statement of its
// own: its Ingest carries the condition that the routes still hold
// (social.Store.Routed, crm.Batch.Require), checked in the write's own
// round trip, so a delivery of a routed Page costs one round trip per
// tenant. When they no longer hold — a tenant revoked its connection or
// another connected the Page — that Ingest stores nothing, and the
// delivery is routed again from the index and stored again (idempotent,
// so what a tenant whose routes held stored is not stored twice).
func (in *Inbox) Handle(ctx context.Context, db bun.IDB, events []*meta.Event) error {
	err := in.handle(ctx, db, events, true)
	if errors.Is(err, errRerouted) {
		err = in.handle(ctx, db, events, false)
	}
	return err
}

// errRerouted reports a delivery whose kept routes no longer held.
var errRerouted = errors.New("inbox: routes changed")

// handle stores events, routing each Page by its kept routes when kept
// is set and they are kept, else from the account index; it fails with
// errRerouted (after forgetting the Pages' routes) when a tenant's kept
// routes no longer held.
func (in *Inbox) handle(ctx context.Context, db bun.IDB, events []*meta.Event, useKept bool) error {
	store := in.social.Using(db)
	routes := map[string][]context.Context{}
	var tenants []string                        // in first-seen order
	perTenant := map[string][]*meta.Event{}     // tenant id -> its events
	tenantCtx := map[string]context.Context{}   // tenant id -> context acting on it
	pages := map[string][]string{}              // tenant id -> the Pages routed by kept routes
	kept := map[string][]social.AccountTenant{} // Page -> the kept routes it was routed by
	var pageIDs []string
	for _, ev := range events {
		if ev.Kind == meta.EventOther || ev.PageID == "" || ev.PSID == "" && ev.UserRef == "" {
			continue
		}
		ctxs, seen := routes[ev.PageID]
		if !seen {
			pageIDs = append(pageIDs, ev.PageID)
			var rts []social.AccountTenant
			var err error
			if ctxs, rts, err = in.route(ctx, store, ev.PageID, useKept); err != nil {
				return err
			}
			routes[ev.PageID] = ctxs
			if rts != nil {
				kept[ev.PageID] = rts
				for _, tctx := range ctxs {
					tid, _ := tenancy.TenantID(tctx)
					pages[tid] = append(pages[tid], ev.PageID)
				}
			}
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
	convs := in.crm.Using(db).Conversations()
	for _, tid := range tenants {
		require, err := require(ctx, store, tid, pages[tid], kept)
		if err != nil {
			return err
		}
		met, err := in.store(tenantCtx[tid], convs, perTenant[tid], require)
		if err != nil {
			return err
		}
		if !met {
			for _, p := range pageIDs {
				in.routes.forget(p)
			}
			return errRerouted
		}
	}
	return nil
}

// require returns the condition that the kept routes of pageIDs to tenant
// tid still hold (nil for none).
func require(ctx context.Context, store *social.Store, tid string, pageIDs []string, kept map[string][]social.AccountTenant) (schema.QueryAppender, error) {
	var conds []schema.QueryAppender
	for _, p := range pageIDs {
		c, err := store.Routed(ctx, meta.Platform, p, kept[p], tid)
		if err != nil {
			return nil, err
		}
		conds = append(conds, c)
	}
	switch len(conds) {
	case 0:
		return nil, nil
	case 1:
		return conds[0], nil
	}
	q := "?"
	for range conds[1:] {
		q += " AND ?"
	}
	args := make([]any, len(conds))
	for i, c := range conds {
		args[i] = c
	}
	return bun.SafeQuery(q, args...), nil
}

// route returns a context acting on each tenant whose connection of the
// Page is not revoked and, when they come from the Page's kept routes
// (with useKept set, when there are some), those routes. Otherwise they
// are looked up: as the account index says (AccountTenant.Live), or where
// it does not know, as the connection's status says; and kept when the
// index knows them all live.
func (in *Inbox) route(ctx context.Context, store *social.Store, pageID string, useKept bool) ([]context.Context, []social.AccountTenant, error) {
	sys := tenancy.System(ctx, "meta-webhook")
	if rts, ok := in.routes.get(pageID); ok && useKept {
		out := make([]context.Context, 0, len(rts))
		for _, rt := range rts {
			tctx, err := tenancy.AsTenant(sys, rt.TenantID)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, tctx)
		}
		return out, rts, nil
	}
	routes, err := store.AccountTenants(ctx, meta.Platform, pageID)
	if err != nil {
		return nil, nil, err
	}
	var out []context.Context
	live := len(routes) > 0
	for _, rt := range routes {
		tctx, err := tenancy.AsTenant(sys, rt.TenantID)
		if err != nil {
			return nil, nil, err
		}
		if rt.Live {
			out = append(out, tctx)
			continue
		}
		live = false
		conn, err := store.Get(tctx, rt.ConnectionID)
		if errors.Is(err, social.ErrNotFound) || (err == nil && conn.Status == social.StatusRevoked) {
			continue // disconnected: collect nothing more
		}
		if err != nil {
			return nil, nil, err
		}
		out = append(out, tctx)
	}
	if live {
		in.routes.keep(pageID, routes)
	}
	return out, nil, nil
}

// maxRoutes bounds the Pages whose routes an Inbox keeps.
const maxRoutes = 4096

// routeCache keeps the routes of Pages whose tenants the account index
// knows all live. It is safe for concurrent use.
type routeCache struct {
	mu sync.Mutex
	m  map[string][]social.AccountTenant
}

func (c *routeCache) get(pageID string) ([]social.AccountTenant, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rts, ok := c.m[pageID]
	return rts, ok
}

func (c *routeCache) keep(pageID string, rts []social.AccountTenant) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxRoutes {
		c.m = make(map[string][]social.AccountTenant)
	}
	c.m[pageID] = rts
}

func (c *routeCache) forget(pageID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, pageID)
}

// store records one tenant's events, messages and watermarks, with one
// crm Ingest whose batch requires require (none when nil), and reports
// whether it held.
func (in *Inbox) store(ctx context.Context, convs *crm.Conversations, events []*meta.Event, require schema.QueryAppender) (bool, error) {
	msgs := make([]crm.NewMessage, 0, len(events))
	kinds := make([]meta.EventKind, 0, len(events))
	var marks []crm.Watermarks
	for _, ev := range events {
		key := eventKey(ev)
		at := ev.Time
		if at.IsZero() {
			at = in.now()
		}
		switch ev.Kind {
		case meta.EventMessage, meta.EventEcho:
			mid := ev.Message.MID
			if mid == "" { // stored once all the same (Handle is idempotent)
				mid = "event:" + ev.DedupeKey()
			}
			m := crm.NewMessage{Conversation: key, Direction: crm.Inbound, ExternalID: mid, Text: ev.Message.Text, SentAt: at}
			if ev.Kind == meta.EventEcho {
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
		case meta.EventPostback:
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
		case meta.EventDelivery:
			marks = append(marks, crm.Watermarks{Conversation: key, Delivered: ev.Delivery.Watermark})
		case meta.EventRead:
			marks = append(marks, crm.Watermarks{Conversation: key, Read: ev.Read.Watermark})
		}
	}
	if len(msgs) == 0 && len(marks) == 0 {
		return true, nil
	}
	res, err := convs.Ingest(ctx, crm.Batch{Messages: msgs, Watermarks: marks, Require: require})
	if err != nil {
		return false, err
	}
	if res.Unmet {
		return false, nil
	}
	// Meta would redeliver an event crm refuses forever: log and drop it.
	for i, rerr := range res.Rejected {
		if rerr != nil {
			in.log.WarnContext(ctx, "inbox: dropped an invalid event", "kind", kinds[i], "page", msgs[i].Conversation.AccountID, "error", rerr)
		}
	}
	for i, rerr := range res.RejectedWatermarks {
		if rerr != nil {
			in.log.WarnContext(ctx, "inbox: dropped invalid watermarks", "page", marks[i].Conversation.AccountID, "error", rerr)
		}
	}
	return true, nil
}

package crm

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/vault"
)

// Channel is the medium of a conversation or an activity.
type Channel string

// Channels of conversations.
const (
	ChannelMessenger Channel = "messenger"
	ChannelInstagram Channel = "instagram"
	ChannelEmail     Channel = "email"
	ChannelSMS       Channel = "sms"
	ChannelWhatsApp  Channel = "whatsapp"
	ChannelRCS       Channel = "rcs"
)

// Direction says who sent a message or started an activity.
type Direction string

// Directions.
const (
	// Inbound messages came from the contact.
	Inbound Direction = "in"
	// Outbound messages went to the contact.
	Outbound Direction = "out"
)

// DeliveryStatus is how far an outbound message got. It only moves
// forward: pending → sent → delivered → read; failed is final.
type DeliveryStatus string

// Delivery statuses.
const (
	StatusPending   DeliveryStatus = "pending"
	StatusSent      DeliveryStatus = "sent"
	StatusDelivered DeliveryStatus = "delivered"
	StatusRead      DeliveryStatus = "read"
	StatusFailed    DeliveryStatus = "failed"
)

// Table names of the conversations.
const (
	TableConversations = TablePrefix + "conversations"
	TableMessages      = TablePrefix + "messages"
)

// ConversationKey identifies a conversation the way a platform does: the
// channel, the account of the tenant on it (a Facebook Page id, a sending
// phone number, a mailbox) and the thread with the other party (a
// Messenger PSID, the contact's number or address).
type ConversationKey struct {
	Channel   Channel `json:"channel" validate:"required,oneof=messenger instagram email sms whatsapp rcs"`
	AccountID string  `json:"account_id" validate:"required,max=255"`
	ThreadID  string  `json:"thread_id" validate:"required,max=255"`
}

// Conversation is a thread of messages with one party on one channel.
type Conversation struct {
	bun.BaseModel `bun:"table:socialcrm_crm_conversations,alias:cv"`
	Record

	Channel   Channel `bun:"channel,notnull" json:"channel"`
	AccountID string  `bun:"account_id,notnull" json:"account_id"`
	// ThreadID is stored sealed, beside a blind index that finds it.
	ThreadID string `bun:"-" json:"thread_id"`
	// ContactID links the conversation to a contact, when known.
	ContactID string `bun:"contact_id,nullzero" json:"contact_id,omitempty"`
	// LastMessageAt is the sent time of the latest message, or the
	// creation time while there is none; lists are ordered by it.
	LastMessageAt time.Time `bun:"last_message_at,notnull" json:"last_message_at"`
	// DeliveredUntil and ReadUntil are the latest watermarks received:
	// every outbound message sent until then was delivered, or read.
	DeliveredUntil time.Time `bun:"delivered_until,nullzero" json:"delivered_until,omitzero"`
	ReadUntil      time.Time `bun:"read_until,nullzero" json:"read_until,omitzero"`

	ThreadIndex  string       `bun:"thread_index,notnull" json:"-"`
	ThreadSealed vault.Sealed `bun:"thread_sealed" json:"-"`
}

func (c *Conversation) sealedFields() []sealedField {
	return []sealedField{{name: "thread_id", sealed: &c.ThreadSealed, text: &c.ThreadID}}
}

// Key returns the conversation's key.
func (c Conversation) Key() ConversationKey {
	return ConversationKey{Channel: c.Channel, AccountID: c.AccountID, ThreadID: c.ThreadID}
}

// MessageAttachment is a file sent with a message, by reference.
type MessageAttachment struct {
	// Type is the platform's kind: image, video, audio, file, …
	Type string `json:"type" validate:"required,max=32"`
	URL  string `json:"url" validate:"required,url,max=2048"`
}

// Message is one message of a conversation.
type Message struct {
	bun.BaseModel `bun:"table:socialcrm_crm_messages,alias:msg"`
	Record

	ConversationID string    `bun:"conversation_id,notnull" json:"conversation_id"`
	Direction      Direction `bun:"direction,notnull" json:"direction"`
	// ExternalID is the platform's message id (Messenger's mid); a
	// message is recorded once per external id and conversation. Empty
	// for an outbound message not yet accepted by the platform.
	ExternalID  string              `bun:"external_id,nullzero" json:"external_id,omitempty"`
	Text        string              `bun:"-" json:"text"`
	Attachments []MessageAttachment `bun:"-" json:"attachments"`
	SentAt      time.Time           `bun:"sent_at,notnull" json:"sent_at"`
	Status      DeliveryStatus      `bun:"status,notnull" json:"status"`

	TextSealed        vault.Sealed `bun:"text_sealed" json:"-"`
	AttachmentsSealed vault.Sealed `bun:"attachments_sealed" json:"-"`
}

func (m *Message) sealedFields() []sealedField {
	return []sealedField{{name: "text", sealed: &m.TextSealed, text: &m.Text}, {name: "attachments", sealed: &m.AttachmentsSealed, value: &m.Attachments}}
}

// openMessage opens m's sealed fields.
func (r *Conversations) openMessage(ctx context.Context, m *Message) error {
	m.Attachments = nil
	if err := r.s.openFields(ctx, kindMessage, m.ID, m.sealedFields()); err != nil {
		return err
	}
	if m.Attachments == nil {
		m.Attachments = []MessageAttachment{}
	}
	return nil
}

// threadIndex returns the blind index of a thread id.
func (r *Conversations) threadIndex(ctx context.Context, threadID string) (string, error) {
	idx, err := r.s.vault.Index(ctx, threadID, indexThread)
	if err != nil {
		return "", fmt.Errorf("crm: conversation thread index: %w", err)
	}
	return idx, nil
}

// ensureKeys creates the tenant's vault keys if needed (Store.ensureKeys).
func (r *Conversations) ensureKeys(ctx context.Context) error { return r.s.ensureKeys(ctx) }

// NewMessage is what Record stores.
type NewMessage struct {
	// Conversation is opened (created) if it does not exist yet.
	Conversation ConversationKey `json:"conversation"`
	Direction    Direction       `json:"direction" validate:"required,oneof=in out"`
	ExternalID   string          `json:"external_id,omitempty" validate:"max=255"`
	Text         string          `json:"text" validate:"max=20000"`
	// Attachments may stand alone; a message needs text or an attachment.
	Attachments []MessageAttachment `json:"attachments,omitempty" validate:"max=20,dive"`
	// SentAt is when the platform says the message was sent.
	SentAt time.Time `json:"sent_at" validate:"required"`
	// Status is the delivery status. The zero value means delivered for
	// an inbound message; for an outbound one, sent when ExternalID is set
	// and pending otherwise.
	Status DeliveryStatus `json:"status,omitempty" validate:"omitempty,oneof=pending sent delivered read failed"`
}

// ConversationFilter narrows Conversations.List. The zero value lists
// every conversation.
type ConversationFilter struct {
	Channel   Channel `json:"channel,omitempty" validate:"omitempty,oneof=messenger instagram email sms whatsapp rcs"`
	AccountID string  `json:"account_id,omitempty"`
	ContactID string  `json:"contact_id,omitempty"`
}

// Conversations is the repository of conversations and their messages,
// reached with Store.Conversations.
type Conversations struct{ s *Store }

// Conversations returns the repository of conversations and messages.
func (s *Store) Conversations() *Conversations { return &Conversations{s: s} }

const (
	kindConversation = "conversation"
	kindMessage      = "message"
)

var (
	conversationOrder = keyset{name: "conversations", cols: []string{"last_message_at", "id"}, desc: true}
	messageOrder      = keyset{name: "messages", cols: []string{"sent_at", "id"}, desc: true}
)

// Open returns the conversation with key, creating it if there is none.
// Two calls racing for the same new key get the same conversation.
func (r *Conversations) Open(ctx context.Context, key ConversationKey) (Conversation, error) {
	if err := r.s.check(kindConversation, key); err != nil {
		return Conversation{}, err
	}
	if err := r.ensureKeys(ctx); err != nil {
		return Conversation{}, err
	}
	var c Conversation
	err := r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		c, err = r.open(ctx, tx, key)
		return err
	})
	return c, err
}

func (r *Conversations) open(ctx context.Context, tx bun.IDB, key ConversationKey) (Conversation, error) {
	now := r.s.clock()
	c := Conversation{Channel: key.Channel, AccountID: key.AccountID, ThreadID: key.ThreadID, LastMessageAt: now}
	c.stamp(now)
	if err := r.sealConversation(ctx, &c); err != nil {
		return Conversation{}, err
	}
	if _, err := tx.NewInsert().Model(&c).On("CONFLICT (tenant_id, channel, account_id, thread_index) DO NOTHING").Exec(ctx); err != nil {
		return Conversation{}, fmt.Errorf("crm: open conversation: %w", err)
	}
	return r.find(ctx, tx, key)
}

// sealConversation seals c's thread id and computes its blind index.
func (r *Conversations) sealConversation(ctx context.Context, c *Conversation) error {
	var err error
	if c.ThreadIndex, err = r.threadIndex(ctx, c.ThreadID); err != nil {
		return err
	}
	return r.s.sealFields(ctx, kindConversation, c.ID, c.sealedFields())
}

// Find returns the conversation with key, ErrNotFound if there is none.
func (r *Conversations) Find(ctx context.Context, key ConversationKey) (Conversation, error) {
	if err := r.s.check(kindConversation, key); err != nil {
		return Conversation{}, err
	}
	if err := r.ensureKeys(ctx); err != nil {
		return Conversation{}, err
	}
	var c Conversation
	err := r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		c, err = r.find(ctx, tx, key)
		return err
	})
	return c, err
}

// find returns the conversation with key, by the blind index of its thread
// id. The error of a key not found names the channel and account, not the
// thread id (personal data).
func (r *Conversations) find(ctx context.Context, tx bun.IDB, key ConversationKey) (Conversation, error) {
	idx, err := r.threadIndex(ctx, key.ThreadID)
	if err != nil {
		return Conversation{}, err
	}
	var cs []Conversation
	if err := tx.NewSelect().Model(&cs).
		Where("?TableAlias.channel = ?", key.Channel).
		Where("?TableAlias.account_id = ?", key.AccountID).
		Where("?TableAlias.thread_index = ?", idx).Limit(1).Scan(ctx); err != nil {
		return Conversation{}, fmt.Errorf("crm: find conversation: %w", err)
	}
	if len(cs) == 0 {
		return Conversation{}, notFound(kindConversation, string(key.Channel)+"/"+key.AccountID+"/(thread)")
	}
	cs[0].ThreadID = key.ThreadID
	return cs[0], nil
}

// FindThread returns the tenant's conversations whose thread id is
// threadID (a Messenger PSID or Instagram-scoped id), on any channel and
// account, oldest first: thread ids are sealed, and found by their blind
// index. It is how a data subject known only by a thread id is resolved
// (SubjectThread to SubjectConversation).
//
// It is a lookup, not a list, so it returns a slice rather than a Page: a
// thread id is unique per channel and account (the table's unique key),
// so the slice holds at most one conversation per connected account — in
// practice one, as platforms scope a PSID to one Page.
func (r *Conversations) FindThread(ctx context.Context, threadID string) ([]Conversation, error) {
	if threadID == "" || len(threadID) > 255 {
		return nil, invalid(kindConversation, "thread_id", "required", "is required (at most 255 bytes)")
	}
	idx, err := r.threadIndex(ctx, threadID)
	if err != nil {
		return nil, err
	}
	var cs []Conversation
	err = r.s.one(ctx, func(ctx context.Context, db bun.IDB) error {
		return db.NewSelect().Model(&cs).Where("?TableAlias.thread_index = ?", idx).OrderExpr("?TableAlias.id").Scan(ctx)
	})
	if err != nil {
		return nil, fmt.Errorf("crm: find thread: %w", err)
	}
	for i := range cs {
		cs[i].ThreadID = threadID
	}
	return cs, nil
}

// Get returns the conversation id.
func (r *Conversations) Get(ctx context.Context, id string) (Conversation, error) {
	var c Conversation
	err := r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		c, err = get[Conversation](ctx, tx, kindConversation, id)
		return err
	})
	if err != nil {
		return Conversation{}, err
	}
	return c, openRecord(ctx, r.s, kindConversation, &c, c.ID)
}

// LinkContact links conversation id to contact contactID (which must
// exist), or unlinks it when contactID is empty. version is the
// conversation's Version as last read; a stale one fails with a
// *ConflictError.
func (r *Conversations) LinkContact(ctx context.Context, id, contactID string, version int64) (Conversation, error) {
	if err := checkVersion(kindConversation, version); err != nil {
		return Conversation{}, err
	}
	var c Conversation
	err := r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if c, err = get[Conversation](ctx, tx, kindConversation, id); err != nil {
			return err
		}
		if err := r.s.checkContact(ctx, tx, kindConversation, contactID); err != nil {
			return err
		}
		c.ContactID, c.Version = contactID, version
		return update(ctx, r.s, tx, r.s.clock(), kindConversation, &c, "contact_id")
	})
	if err != nil {
		return Conversation{}, err
	}
	return c, openRecord(ctx, r.s, kindConversation, &c, c.ID)
}

// List returns a page of the conversations matching f, the latest message
// first.
func (r *Conversations) List(ctx context.Context, f ConversationFilter, o ListOptions) (Page[Conversation], error) {
	if err := r.s.check(kindConversation, f); err != nil {
		return Page[Conversation]{}, err
	}
	var p Page[Conversation]
	err := r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var cs []Conversation
		q := tx.NewSelect().Model(&cs)
		if f.Channel != "" {
			q = q.Where("?TableAlias.channel = ?", f.Channel)
		}
		if f.AccountID != "" {
			q = q.Where("?TableAlias.account_id = ?", f.AccountID)
		}
		if f.ContactID != "" {
			q = q.Where("?TableAlias.contact_id = ?", f.ContactID)
		}
		q, err := conversationOrder.apply(q, kindConversation, o)
		if err != nil {
			return err
		}
		if err := q.Scan(ctx); err != nil {
			return fmt.Errorf("crm: list conversations: %w", err)
		}
		p, err = page(conversationOrder, o, cs, func(c *Conversation) []any { return []any{c.LastMessageAt, c.ID} })
		return err
	})
	if err != nil {
		return p, err
	}
	for i := range p.Items {
		if err := openRecord(ctx, r.s, kindConversation, &p.Items[i], p.Items[i].ID); err != nil {
			return Page[Conversation]{}, err
		}
	}
	return p, nil
}

// Record stores a message, opening its conversation if needed, and moves
// the conversation's LastMessageAt forward. Recording a message whose
// ExternalID the conversation already holds stores nothing and returns the
// stored message, so webhook deliveries that repeat are harmless. An
// outbound message sent before a delivery or read watermark already
// received gets that status.
func (r *Conversations) Record(ctx context.Context, in NewMessage) (Message, error) {
	if err := r.s.check(kindMessage, in); err != nil {
		return Message{}, err
	}
	if in.Text == "" && len(in.Attachments) == 0 {
		return Message{}, invalid(kindMessage, "text", "required_without", "is required without attachments")
	}
	sentAt := in.SentAt.UTC().Truncate(time.Microsecond)
	if err := r.ensureKeys(ctx); err != nil {
		return Message{}, err
	}
	var m Message
	err := r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		c, err := r.open(ctx, tx, in.Conversation)
		if err != nil {
			return err
		}
		m = Message{ConversationID: c.ID, Direction: in.Direction, ExternalID: in.ExternalID, Text: in.Text,
			Attachments: in.Attachments, SentAt: sentAt, Status: in.Status}
		r.initial(&m, c)
		m.stamp(r.s.clock())
		if err := r.s.sealFields(ctx, kindMessage, m.ID, m.sealedFields()); err != nil {
			return err
		}
		res, err := tx.NewInsert().Model(&m).On("CONFLICT (tenant_id, conversation_id, external_id) DO NOTHING").Exec(ctx)
		if err != nil {
			return fmt.Errorf("crm: record message: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("crm: record message: %w", err)
		} else if n == 0 {
			// Already recorded.
			var ms []Message
			if err := tx.NewSelect().Model(&ms).Where("?TableAlias.conversation_id = ?", c.ID).
				Where("?TableAlias.external_id = ?", in.ExternalID).Limit(1).Scan(ctx); err != nil {
				return fmt.Errorf("crm: record message: %w", err)
			}
			if len(ms) == 0 {
				return fmt.Errorf("crm: record message: conflict without a stored message")
			}
			m = ms[0]
			return r.openMessage(ctx, &m)
		}
		if sentAt.After(c.LastMessageAt) {
			if _, err := tx.NewUpdate().Model((*Conversation)(nil)).
				Set("last_message_at = ?", sentAt).
				Where("?TableAlias.id = ?", c.ID).
				Where("?TableAlias.last_message_at < ?", sentAt).Exec(ctx); err != nil {
				return fmt.Errorf("crm: record message: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return Message{}, err
	}
	return m, nil
}

// Messages returns a page of conversation id's messages, the latest first.
// An unknown conversation yields ErrNotFound.
func (r *Conversations) Messages(ctx context.Context, id string, o ListOptions) (Page[Message], error) {
	var p Page[Message]
	err := r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := mustExist(ctx, tx, (*Conversation)(nil), kindMessage, "conversation_id", id); err != nil {
			return notFound(kindConversation, id)
		}
		var ms []Message
		q, err := messageOrder.apply(tx.NewSelect().Model(&ms).Where("?TableAlias.conversation_id = ?", id), kindMessage, o)
		if err != nil {
			return err
		}
		if err := q.Scan(ctx); err != nil {
			return fmt.Errorf("crm: list messages: %w", err)
		}
		p, err = page(messageOrder, o, ms, func(m *Message) []any { return []any{m.SentAt, m.ID} })
		return err
	})
	if err != nil {
		return p, err
	}
	for i := range p.Items {
		if err := r.openMessage(ctx, &p.Items[i]); err != nil {
			return Page[Message]{}, err
		}
	}
	return p, nil
}

// MarkSent records that the platform accepted outbound message id under
// externalID (a pending message becomes sent).
func (r *Conversations) MarkSent(ctx context.Context, id, externalID string) (Message, error) {
	if externalID == "" || len(externalID) > 255 {
		return Message{}, invalid(kindMessage, "external_id", "required", "is required (at most 255 bytes)")
	}
	return r.setStatus(ctx, id, func(m *Message) error {
		if m.Direction != Outbound {
			return invalid(kindMessage, "direction", "eq", "must be outbound")
		}
		m.ExternalID = externalID
		if m.Status == StatusPending {
			m.Status = StatusSent
		}
		return nil
	})
}

// MarkFailed records that outbound message id could not be delivered.
func (r *Conversations) MarkFailed(ctx context.Context, id string) (Message, error) {
	return r.setStatus(ctx, id, func(m *Message) error {
		if m.Direction != Outbound {
			return invalid(kindMessage, "direction", "eq", "must be outbound")
		}
		m.Status = StatusFailed
		return nil
	})
}

func (r *Conversations) setStatus(ctx context.Context, id string, fn func(*Message) error) (Message, error) {
	var m Message
	err := r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if m, err = get[Message](ctx, tx, kindMessage, id); err != nil {
			return err
		}
		if err := fn(&m); err != nil {
			return err
		}
		return update(ctx, r.s, tx, r.s.clock(), kindMessage, &m, "external_id", "status")
	})
	if err != nil {
		return Message{}, err
	}
	return m, r.openMessage(ctx, &m)
}

// MarkDelivered records a delivery watermark of the conversation with key,
// as Messenger sends them: every outbound message sent until watermark that
// was pending or sent is now delivered. It returns how many messages
// changed. A watermark older than one already received changes nothing.
func (r *Conversations) MarkDelivered(ctx context.Context, key ConversationKey, watermark time.Time) (int64, error) {
	return r.mark(ctx, key, watermark, "delivered_until", StatusDelivered, StatusPending, StatusSent)
}

// MarkRead records a read watermark of the conversation with key: every
// outbound message sent until watermark that was not failed is now read.
// It returns how many messages changed.
func (r *Conversations) MarkRead(ctx context.Context, key ConversationKey, watermark time.Time) (int64, error) {
	return r.mark(ctx, key, watermark, "read_until", StatusRead, StatusPending, StatusSent, StatusDelivered)
}

func (r *Conversations) mark(ctx context.Context, key ConversationKey, watermark time.Time, column string, to DeliveryStatus, from ...DeliveryStatus) (int64, error) {
	if err := r.s.check(kindConversation, key); err != nil {
		return 0, err
	}
	if watermark.IsZero() {
		return 0, invalid(kindConversation, "watermark", "required", "is required")
	}
	watermark = watermark.UTC().Truncate(time.Microsecond)
	if err := r.ensureKeys(ctx); err != nil {
		return 0, err
	}
	var n int64
	err := r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		c, err := r.find(ctx, tx, key)
		if err != nil {
			return err
		}
		if _, err := tx.NewUpdate().Model((*Conversation)(nil)).
			Set("? = ?", bun.Ident(column), watermark).
			Where("?TableAlias.id = ?", c.ID).
			WhereGroup(" AND ", func(q *bun.UpdateQuery) *bun.UpdateQuery {
				return q.Where("? IS NULL", bun.Ident(column)).WhereOr("? < ?", bun.Ident(column), watermark)
			}).Exec(ctx); err != nil {
			return fmt.Errorf("crm: mark conversation: %w", err)
		}
		res, err := tx.NewUpdate().Model((*Message)(nil)).
			Set("status = ?", to).
			Set("version = version + 1").
			Set("updated_at = ?", r.s.clock()).
			Where("?TableAlias.conversation_id = ?", c.ID).
			Where("?TableAlias.direction = ?", Outbound).
			Where("?TableAlias.sent_at <= ?", watermark).
			Where("?TableAlias.status IN (?)", bun.In(from)).Exec(ctx)
		if err != nil {
			return fmt.Errorf("crm: mark messages: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// batchRows bounds the rows of one multi-row statement of RecordAll.
const batchRows = 500

// RecordAll stores messages as Record does, in one transaction and with a
// few statements for the whole batch rather than several per message:
// the conversations of the batch are read at once, the missing ones
// created with one insert, the messages inserted with one multi-row
// insert that skips those already recorded (same ExternalID in the same
// conversation), and each conversation's LastMessageAt moved forward by
// one update. It suits webhook deliveries of many messages.
//
// A message crm refuses (a *ValidationError, matching ErrInvalid) is not
// stored: rejected holds its error at its index (nil for every message
// stored or already stored); the other messages are stored all the same.
// err is for a failure of the database, which stores nothing.
func (r *Conversations) RecordAll(ctx context.Context, ms []NewMessage) (rejected []error, err error) {
	rejected = make([]error, len(ms))
	type thread struct {
		key     ConversationKey
		maxSent time.Time
	}
	var keys []ConversationKey
	threads := map[ConversationKey]*thread{}
	ok := make([]bool, len(ms))
	for i, in := range ms {
		if err := r.s.check(kindMessage, in); err != nil {
			rejected[i] = err
			continue
		}
		if in.Text == "" && len(in.Attachments) == 0 {
			rejected[i] = invalid(kindMessage, "text", "required_without", "is required without attachments")
			continue
		}
		ok[i] = true
		sent := in.SentAt.UTC().Truncate(time.Microsecond)
		th := threads[in.Conversation]
		if th == nil {
			th = &thread{key: in.Conversation}
			threads[in.Conversation] = th
			keys = append(keys, in.Conversation)
		}
		if sent.After(th.maxSent) {
			th.maxSent = sent
		}
	}
	if len(keys) == 0 {
		return rejected, nil
	}
	// Conversations are opened and updated in key order, so concurrent
	// batches wait for each other in one order, never deadlock.
	slices.SortFunc(keys, func(a, b ConversationKey) int {
		return strings.Compare(string(a.Channel)+"\x00"+a.AccountID+"\x00"+a.ThreadID, string(b.Channel)+"\x00"+b.AccountID+"\x00"+b.ThreadID)
	})
	if err := r.ensureKeys(ctx); err != nil {
		return nil, err
	}
	err = r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		now := r.s.clock()
		convs, err := r.findAll(ctx, tx, keys)
		if err != nil {
			return err
		}
		// One insert opens the missing conversations, with LastMessageAt
		// the later of now and their latest message, as Record leaves it
		// (a conversation another transaction opened meanwhile has it
		// moved forward).
		var opened []Conversation
		var later []string // existing conversations whose LastMessageAt moves
		for _, k := range keys {
			c, have := convs[k]
			sent := threads[k].maxSent
			if have {
				if sent.After(c.LastMessageAt) {
					later = append(later, c.ID)
				}
				continue
			}
			if now.After(sent) {
				sent = now
			}
			o := Conversation{Channel: k.Channel, AccountID: k.AccountID, ThreadID: k.ThreadID, LastMessageAt: sent}
			o.stamp(now)
			if err := r.sealConversation(ctx, &o); err != nil {
				return err
			}
			opened = append(opened, o)
		}
		for chunk := range slices.Chunk(opened, batchRows) {
			if _, err := tx.NewInsert().Model(&chunk).
				On("CONFLICT (tenant_id, channel, account_id, thread_index) DO UPDATE").
				Set("last_message_at = EXCLUDED.last_message_at").
				Where("?TableAlias.last_message_at < EXCLUDED.last_message_at").Exec(ctx); err != nil {
				return fmt.Errorf("crm: open conversations: %w", err)
			}
		}
		if len(opened) > 0 {
			if convs, err = r.findAll(ctx, tx, keys); err != nil {
				return err
			}
		}
		rows := make([]Message, 0, len(ms))
		for i, in := range ms {
			if !ok[i] {
				continue
			}
			c, have := convs[in.Conversation]
			if !have {
				return fmt.Errorf("crm: record messages: conversation not opened")
			}
			m := Message{ConversationID: c.ID, Direction: in.Direction, ExternalID: in.ExternalID, Text: in.Text,
				Attachments: in.Attachments, SentAt: in.SentAt.UTC().Truncate(time.Microsecond), Status: in.Status}
			r.initial(&m, c)
			m.stamp(now)
			if err := r.s.sealFields(ctx, kindMessage, m.ID, m.sealedFields()); err != nil {
				return err
			}
			rows = append(rows, m)
		}
		for chunk := range slices.Chunk(rows, batchRows) {
			if _, err := tx.NewInsert().Model(&chunk).On("CONFLICT (tenant_id, conversation_id, external_id) DO NOTHING").Exec(ctx); err != nil {
				return fmt.Errorf("crm: record messages: %w", err)
			}
		}
		// The other conversations' LastMessageAt moves forward to their
		// latest message, never back; a message already recorded had
		// moved it past its own time.
		for chunk := range slices.Chunk(later, batchRows) {
			latest := tx.NewSelect().Model((*Message)(nil)).ColumnExpr("max(msg.sent_at)").
				Where("msg.tenant_id = cv.tenant_id").Where("msg.conversation_id = cv.id")
			if _, err := tx.NewUpdate().Model((*Conversation)(nil)).
				Set("last_message_at = (?)", latest).
				Where("cv.id IN (?)", bun.In(chunk)).
				Where("cv.last_message_at < (?)", latest).Exec(ctx); err != nil {
				return fmt.Errorf("crm: record messages: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rejected, nil
}

// initial sets a new message's status from its direction and external id
// and from the watermarks its conversation c received already.
func (r *Conversations) initial(m *Message, c Conversation) {
	if m.Attachments == nil {
		m.Attachments = []MessageAttachment{}
	}
	if m.Status == "" {
		switch {
		case m.Direction == Inbound:
			m.Status = StatusDelivered
		case m.ExternalID != "":
			m.Status = StatusSent
		default:
			m.Status = StatusPending
		}
	}
	if m.Direction == Outbound && m.Status != StatusFailed {
		if !c.ReadUntil.IsZero() && !m.SentAt.After(c.ReadUntil) {
			m.Status = StatusRead
		} else if !c.DeliveredUntil.IsZero() && !m.SentAt.After(c.DeliveredUntil) && m.Status != StatusRead {
			m.Status = StatusDelivered
		}
	}
}

// forward moves column (a time) of the conversations ids forward to the
// times in pairs (id, time, id, time, …), in one statement; a time at or
// before the stored one changes nothing.
func (r *Conversations) forward(ctx context.Context, tx bun.IDB, column string, ids []string, pairs []any) error {
	var sb strings.Builder
	sb.WriteString("CASE")
	for range ids {
		sb.WriteString(" WHEN ?TableAlias.id = ? AND (? IS NULL OR ? < ?) THEN ?")
	}
	sb.WriteString(" ELSE ? END")
	args := make([]any, 0, 6*len(ids)+1)
	col := bun.Ident(column)
	for i := range ids {
		id, at := pairs[2*i], pairs[2*i+1]
		args = append(args, id, col, col, at, at)
	}
	args = append(args, col)
	_, err := tx.NewUpdate().Model((*Conversation)(nil)).
		Set("? = "+sb.String(), append([]any{col}, args...)...).
		Where("?TableAlias.id IN (?)", bun.In(ids)).Exec(ctx)
	return err
}

// findAll returns the conversations with keys that exist, by key.
func (r *Conversations) findAll(ctx context.Context, tx bun.IDB, keys []ConversationKey) (map[ConversationKey]Conversation, error) {
	type group struct {
		channel Channel
		account string
	}
	threads := map[group][]string{}
	byIndex := map[string]string{} // blind index → thread id
	var groups []group
	for _, k := range keys {
		g := group{k.Channel, k.AccountID}
		if _, seen := threads[g]; !seen {
			groups = append(groups, g)
		}
		idx, err := r.threadIndex(ctx, k.ThreadID)
		if err != nil {
			return nil, err
		}
		byIndex[idx] = k.ThreadID
		threads[g] = append(threads[g], idx)
	}
	out := make(map[ConversationKey]Conversation, len(keys))
	for _, g := range groups {
		for chunk := range slices.Chunk(threads[g], batchRows) {
			var cs []Conversation
			if err := tx.NewSelect().Model(&cs).
				Where("?TableAlias.channel = ?", g.channel).
				Where("?TableAlias.account_id = ?", g.account).
				Where("?TableAlias.thread_index IN (?)", bun.In(chunk)).Scan(ctx); err != nil {
				return nil, fmt.Errorf("crm: find conversations: %w", err)
			}
			for _, c := range cs {
				c.ThreadID = byIndex[c.ThreadIndex]
				out[c.Key()] = c
			}
		}
	}
	return out, nil
}

// Watermarks are the latest delivery and read watermarks of one
// conversation received in a batch (zero: none of that kind).
type Watermarks struct {
	Conversation    ConversationKey
	Delivered, Read time.Time
}

// MarkAll records the watermarks of several conversations as MarkDelivered
// and MarkRead do, in one transaction and a few statements for the whole
// batch. Watermarks of conversations never stored are ignored. It returns
// how many messages changed.
func (r *Conversations) MarkAll(ctx context.Context, ws []Watermarks) (int64, error) {
	keys := make([]ConversationKey, 0, len(ws))
	for _, w := range ws {
		if err := r.s.check(kindConversation, w.Conversation); err != nil {
			return 0, err
		}
		keys = append(keys, w.Conversation)
	}
	if len(keys) == 0 {
		return 0, nil
	}
	if err := r.ensureKeys(ctx); err != nil {
		return 0, err
	}
	var n int64
	err := r.s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		convs, err := r.findAll(ctx, tx, keys)
		if err != nil {
			return err
		}
		for _, kind := range []struct {
			column string
			to     DeliveryStatus
			from   []DeliveryStatus
			at     func(Watermarks) time.Time
		}{
			{"delivered_until", StatusDelivered, []DeliveryStatus{StatusPending, StatusSent}, func(w Watermarks) time.Time { return w.Delivered }},
			{"read_until", StatusRead, []DeliveryStatus{StatusPending, StatusSent, StatusDelivered}, func(w Watermarks) time.Time { return w.Read }},
		} {
			latest := map[string]time.Time{}
			var ids []string
			for _, w := range ws {
				c, have := convs[w.Conversation]
				at := kind.at(w).UTC().Truncate(time.Microsecond)
				if !have || at.IsZero() {
					continue
				}
				if prev, seen := latest[c.ID]; !seen {
					ids = append(ids, c.ID)
					latest[c.ID] = at
				} else if at.After(prev) {
					latest[c.ID] = at
				}
			}
			for chunk := range slices.Chunk(ids, batchRows) {
				pairs := make([]any, 0, 2*len(chunk))
				for _, id := range chunk {
					pairs = append(pairs, id, latest[id])
				}
				if err := r.forward(ctx, tx, kind.column, chunk, pairs); err != nil {
					return fmt.Errorf("crm: mark conversations: %w", err)
				}
				res, err := tx.NewUpdate().Model((*Message)(nil)).
					Set("status = ?", kind.to).
					Set("version = version + 1").
					Set("updated_at = ?", r.s.clock()).
					Where("?TableAlias.direction = ?", Outbound).
					Where("?TableAlias.status IN (?)", bun.In(kind.from)).
					WhereGroup(" AND ", func(q *bun.UpdateQuery) *bun.UpdateQuery {
						for _, id := range chunk {
							q = q.WhereOr("(?TableAlias.conversation_id = ? AND ?TableAlias.sent_at <= ?)", id, latest[id])
						}
						return q
					}).Exec(ctx)
				if err != nil {
					return fmt.Errorf("crm: mark messages: %w", err)
				}
				k, err := res.RowsAffected()
				if err != nil {
					return err
				}
				n += k
			}
		}
		return nil
	})
	return n, err
}

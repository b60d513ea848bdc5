package crm

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/socialcrm/socialcrm/tenancy"
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
	// Text may hold any valid UTF-8, NUL included: it is stored only
	// sealed (validate_values.go).
	Text string `json:"text" validate:"max=20000" crm:"sealed"`
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

// pgConversations is the table PostgreSQL reads conversations from: the
// table itself, with last_message_at the latest of the stored time and of
// the conversation's messages' (the messages' index by conversation and
// sent time gives it in one probe). Ingest writes a conversation's time
// only when its hour changes (see ingestSQL), so the stored one may lag
// behind its messages within the hour; every read of a conversation sees
// the exact time all the same. The day of the stored time is exact, which
// List's order by day relies on.
var pgConversations = `(SELECT c.tenant_id, c.id, c.created_at, c.updated_at, c.version, c.channel, c.account_id, c.contact_id,
	` + pgLastMessageAt("c", "?") + ` AS last_message_at,
	c.last_message_day, c.delivered_until, c.read_until, c.thread_index, c.thread_sealed
	FROM socialcrm_crm_conversations AS c WHERE c.tenant_id = ?) AS cv`

// pgLastMessageAt is the exact last message time of the conversation
// row alias on PostgreSQL: the later of its stored time and its messages'
// latest (tenant is the placeholder of the tenant id). Reads
// (pgConversations) and the data-subject export (conversationExact) share
// it.
func pgLastMessageAt(alias, tenant string) string {
	return "GREATEST(" + alias + ".last_message_at, (SELECT max(m.sent_at) FROM " + TableMessages +
		" AS m WHERE m.tenant_id = " + tenant + " AND m.conversation_id = " + alias + ".id))"
}

// selectConversations starts a select of ctx's tenant's conversations
// into dest, which reads pgConversations on PostgreSQL.
func selectConversations(ctx context.Context, db bun.IDB, dest any) *bun.SelectQuery {
	q := db.NewSelect().Model(dest)
	if tid, err := tenancy.TenantID(ctx); err == nil && db.Dialect().Name() == dialect.PG {
		// (Without a tenant the model's scope refuses the query.)
		q = q.ModelTableExpr(pgConversations, tid, tid)
	}
	return q
}

// getConversation returns the conversation id (get, with its exact last
// message time).
func getConversation(ctx context.Context, db bun.IDB, id string) (Conversation, error) {
	var cs []Conversation
	if err := selectConversations(ctx, db, &cs).Where("?TableAlias.id = ?", id).Limit(1).Scan(ctx); err != nil {
		return Conversation{}, fmt.Errorf("crm: get %s: %w", kindConversation, err)
	}
	if len(cs) == 0 {
		return Conversation{}, notFound(kindConversation, id)
	}
	return cs[0], nil
}

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
		c, err = r.open(ctx, tx, key, time.Time{})
		return err
	})
	return c, err
}

// open returns the conversation with key, creating it if there is none,
// with LastMessageAt at (the time of the message that opens it), or now
// when at is zero.
func (r *Conversations) open(ctx context.Context, tx bun.IDB, key ConversationKey, at time.Time) (Conversation, error) {
	now := r.s.clock()
	if at.IsZero() {
		at = now
	}
	c := Conversation{Channel: key.Channel, AccountID: key.AccountID, ThreadID: key.ThreadID, LastMessageAt: at}
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
	if err := selectConversations(ctx, tx, &cs).
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
		return selectConversations(ctx, db, &cs).Where("?TableAlias.thread_index = ?", idx).OrderExpr("?TableAlias.id").Scan(ctx)
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
		c, err = getConversation(ctx, tx, id)
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
		if c, err = getConversation(ctx, tx, id); err != nil {
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
		q := selectConversations(ctx, tx, &cs)
		if f.Channel != "" {
			q = q.Where("?TableAlias.channel = ?", f.Channel)
		}
		if f.AccountID != "" {
			q = q.Where("?TableAlias.account_id = ?", f.AccountID)
		}
		if f.ContactID != "" {
			q = q.Where("?TableAlias.contact_id = ?", f.ContactID)
		}
		if tx.Dialect().Name() == dialect.PG {
			var err error
			if q, err = byDay(q, o); err != nil {
				return err
			}
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

// byDay orders q, a PostgreSQL list of conversations, by last_message_day
// first (see conversationsDayMigration) and, after a cursor, starts it at
// the cursor's day: the order and the rows are those of conversationOrder
// alone (the day grows with the time), but the planner can read them
// along the index by day, sorting each day's by the exact time, and start
// at the cursor's day.
func byDay(q *bun.SelectQuery, o ListOptions) (*bun.SelectQuery, error) {
	if o.Cursor != "" {
		vals, err := conversationOrder.decodeCursor(kindConversation, o.Cursor)
		if err != nil {
			return nil, err
		}
		at, ok := vals[0].(time.Time)
		if !ok {
			return nil, invalid(kindConversation, "cursor", "cursor", "is not a cursor of this list")
		}
		q = q.Where("?TableAlias.last_message_day <= ?", unixDay(at))
	}
	return q.OrderExpr("?TableAlias.last_message_day DESC"), nil
}

// unixDay returns the whole days from 1970-01-01 UTC to t, rounded down:
// the last_message_day of a conversation whose last message time is t.
func unixDay(t time.Time) int64 {
	const day = 86400
	s := t.Unix()
	d := s / day
	if s%day < 0 {
		d--
	}
	return d
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
		c, err := r.open(ctx, tx, in.Conversation, sentAt)
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
		if ok, err := readable(ctx, tx, (*Conversation)(nil), id); err != nil || !ok { // a read: no lock (repo.go)
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
	if !storableTime(watermark) { // validate_values.go
		return 0, invalid(kindConversation, "watermark", "time_range", timeRangeMessage)
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

// initial sets a new message's status from its direction and external id
// and from the watermarks its conversation c received already.
func (r *Conversations) initial(m *Message, c Conversation) {
	if m.Attachments == nil {
		m.Attachments = []MessageAttachment{}
	}
	if m.Status == "" {
		m.Status = defaultStatus(m.Direction, m.ExternalID)
	}
	if m.Direction == Outbound && m.Status != StatusFailed {
		if !c.ReadUntil.IsZero() && !m.SentAt.After(c.ReadUntil) {
			m.Status = StatusRead
		} else if !c.DeliveredUntil.IsZero() && !m.SentAt.After(c.DeliveredUntil) && m.Status != StatusRead {
			m.Status = StatusDelivered
		}
	}
}

// defaultStatus is the status of a new message given none: delivered for
// an inbound one; for an outbound one, sent once the platform gave it an
// external id, pending before.
func defaultStatus(d Direction, externalID string) DeliveryStatus {
	switch {
	case d == Inbound:
		return StatusDelivered
	case externalID != "":
		return StatusSent
	}
	return StatusPending
}

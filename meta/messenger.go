package meta

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/socialcrm/socialcrm/crm"
)

// MessagingType is the Send API's messaging_type.
type MessagingType string

// Messaging types.
const (
	// MessagingResponse answers a person's message within the standard
	// window.
	MessagingResponse MessagingType = "RESPONSE"
	// MessagingUpdate is a proactive message within the standard window.
	MessagingUpdate MessagingType = "UPDATE"
	// MessagingTag sends outside the standard window under a message tag.
	MessagingTag MessagingType = "MESSAGE_TAG"
)

// MessageTag is a Send API message tag.
type MessageTag string

// Message tags. TagHumanAgent lets a person (never a bot) answer within
// seven days of the last message; the app needs Meta's Human Agent
// feature. The other three were retired on April 27, 2026: Meta fails
// requests that carry them with code 100, so Send refuses them locally.
const (
	TagHumanAgent           MessageTag = "HUMAN_AGENT"
	TagConfirmedEventUpdate MessageTag = "CONFIRMED_EVENT_UPDATE"
	TagAccountUpdate        MessageTag = "ACCOUNT_UPDATE"
	TagPostPurchaseUpdate   MessageTag = "POST_PURCHASE_UPDATE"
)

// Messaging windows and limits.
const (
	// StandardWindow is how long after a person's last message the Page
	// may answer (RESPONSE) or update them (UPDATE).
	StandardWindow = 24 * time.Hour
	// HumanAgentWindow is how long after it a person may answer with
	// TagHumanAgent.
	HumanAgentWindow = 7 * 24 * time.Hour
	// MaxMessageText is the Send API's limit on a text, in characters.
	MaxMessageText = 2000
)

// TagsRetiredAt returns when CONFIRMED_EVENT_UPDATE, ACCOUNT_UPDATE and
// POST_PURCHASE_UPDATE stopped working.
func TagsRetiredAt() time.Time { return time.Date(2026, time.April, 27, 0, 0, 0, 0, time.UTC) }

var retiredTags = []MessageTag{TagConfirmedEventUpdate, TagAccountUpdate, TagPostPurchaseUpdate}

// Errors of Send refused locally, before any request.
var (
	// ErrInvalidMessage is returned for a SendRequest Meta would refuse:
	// no recipient or content, a text over MaxMessageText, an unknown
	// messaging type or tag, a tag without MESSAGE_TAG or the reverse.
	ErrInvalidMessage = errors.New("meta: invalid message")
	// ErrWindowClosed matches every *WindowError.
	ErrWindowClosed = errors.New("meta: outside the messaging window")
	// ErrRetiredTag matches every *RetiredTagError.
	ErrRetiredTag = errors.New("meta: message tag retired")
	// ErrNoConversations is returned by Send on a client built without
	// WithConversations: the window cannot be checked without them.
	ErrNoConversations = errors.New("meta: Messenger needs WithConversations")
)

// WindowError refuses a send outside the messaging window: the person's
// last message (LastInbound; zero when they never wrote) is older than
// Window.
type WindowError struct {
	LastInbound time.Time
	Window      time.Duration
}

func (e *WindowError) Error() string {
	if e.LastInbound.IsZero() {
		return "meta: outside the messaging window: the person never messaged the Page"
	}
	return fmt.Sprintf("meta: outside the %s messaging window: the person last wrote at %s",
		e.Window, e.LastInbound.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrWindowClosed) hold.
func (e *WindowError) Is(target error) bool { return target == ErrWindowClosed }

// RetiredTagError refuses a message tag Meta retired.
type RetiredTagError struct {
	Tag   MessageTag
	Since time.Time
}

func (e *RetiredTagError) Error() string {
	return fmt.Sprintf("meta: message tag %s was retired on %s; use HUMAN_AGENT (a person, within 7 days) or a marketing or utility message",
		e.Tag, e.Since.Format("January 2, 2006"))
}

// Is makes errors.Is(err, ErrRetiredTag) hold.
func (e *RetiredTagError) Is(target error) bool { return target == ErrRetiredTag }

// WithConversations gives the client the crm store where Messenger
// conversations live (the Inbox's): Send reads the window from it and
// stores each reply there.
func WithConversations(s *crm.Store) Option {
	return func(o *options) error {
		if s == nil {
			return fmt.Errorf("%w: WithConversations: nil store", ErrConfig)
		}
		o.conversations = s
		return nil
	}
}

// MessengerService sends messages as a Page through the Send API.
type MessengerService struct{ c *Client }

// SendRequest is a message to a person.
type SendRequest struct {
	// PSID is the person's Page-scoped id; UserRef instead names a person
	// who has none (Event.UserRef: a checkbox plugin opt-in, a chat plugin
	// guest), sent as recipient.user_ref. Exactly one is required.
	PSID    string
	UserRef string
	// MessagingType is required; MessagingTag needs Tag.
	MessagingType MessagingType
	Tag           MessageTag
	// Text, Attachment or both (sent as two messages by Meta's rules is
	// not done here: set one). Text is at most MaxMessageText characters.
	Text       string
	Attachment *SendAttachment
}

// SendAttachment is a file sent by URL: Type is image, audio, video or
// file.
type SendAttachment struct {
	Type string
	URL  string
}

// SentMessage is what Send did.
type SentMessage struct {
	// RecipientID is Meta's recipient_id (empty for a UserRef
	// recipient: Meta does not name the PSID then); MessageID the mid.
	RecipientID, MessageID string
	// Stored is the reply as stored in crm: outbound, sent.
	Stored crm.Message
}

func (r SendRequest) check() error {
	bad := func(reason string) error { return fmt.Errorf("%w: %s", ErrInvalidMessage, reason) }
	switch {
	case r.PSID != "" && r.UserRef != "":
		return bad("PSID or UserRef, not both")
	case r.UserRef != "" && strings.TrimSpace(r.UserRef) != r.UserRef:
		return bad("malformed UserRef")
	case r.UserRef == "" && (r.PSID == "" || checkID(r.PSID) != nil):
		return bad("PSID or UserRef required")
	case r.Text == "" && r.Attachment == nil:
		return bad("text or an attachment required")
	case r.Text != "" && r.Attachment != nil:
		return bad("send text and attachment as two messages")
	case utf8.RuneCountInString(r.Text) > MaxMessageText:
		return bad(fmt.Sprintf("text over %d characters", MaxMessageText))
	}
	if a := r.Attachment; a != nil {
		if !slices.Contains([]string{"image", "audio", "video", "file"}, a.Type) || a.URL == "" {
			return bad("attachment needs a type image, audio, video or file and a URL")
		}
	}
	switch r.MessagingType {
	case MessagingResponse, MessagingUpdate:
		if r.Tag != "" {
			return bad("a tag needs messaging type MESSAGE_TAG")
		}
	case MessagingTag:
		if r.Tag == "" {
			return bad("MESSAGE_TAG needs a tag")
		}
	default:
		return bad(fmt.Sprintf("messaging type %q", r.MessagingType))
	}
	return nil
}

// window returns how long after the person's last message req may be
// sent, refusing retired and unknown tags.
func (r SendRequest) window(now time.Time) (time.Duration, error) {
	switch {
	case r.Tag == "":
		return StandardWindow, nil
	case r.Tag == TagHumanAgent:
		return HumanAgentWindow, nil
	case slices.Contains(retiredTags, r.Tag) && !now.Before(TagsRetiredAt()):
		return 0, &RetiredTagError{Tag: r.Tag, Since: TagsRetiredAt()}
	case slices.Contains(retiredTags, r.Tag):
		return StandardWindow, nil
	}
	return 0, fmt.Errorf("%w: unknown tag %q", ErrInvalidMessage, r.Tag)
}

// lastInbound returns when the person last wrote in the conversation
// (zero when never).
func lastInbound(ctx context.Context, conv *crm.Conversations, key crm.ConversationKey) (crm.Conversation, time.Time, error) {
	c, err := conv.Find(ctx, key)
	if errors.Is(err, crm.ErrNotFound) {
		return crm.Conversation{}, time.Time{}, nil
	}
	if err != nil {
		return crm.Conversation{}, time.Time{}, err
	}
	list := func(ctx context.Context, o crm.ListOptions) (crm.Page[crm.Message], error) {
		return conv.Messages(ctx, c.ID, o)
	}
	for m, err := range crm.All(ctx, crm.ListOptions{Limit: 50}, list) {
		if err != nil {
			return c, time.Time{}, err
		}
		if m.Direction == crm.Inbound {
			return c, m.SentAt, nil
		}
	}
	return c, time.Time{}, nil
}

// Send sends req to a person as the Page, at the user's instruction. It
// needs pages_messaging and a client acting for the Page's connection
// with WithConversations, and it refuses locally, sending nothing: a
// request Meta would refuse (ErrInvalidMessage), a retired tag
// (*RetiredTagError), and a send outside the window from the person's
// last message stored in crm — 24 hours, or 7 days with HUMAN_AGENT
// (*WindowError). The reply is stored as an outbound crm message before
// the call (pending), marked sent with its mid or failed after it, and
// every send is written to the tenant's audit log (action
// meta.messenger.send). The Page's echo of the message, delivered by the
// webhook, adds nothing to crm.
func (s *MessengerService) Send(ctx context.Context, pageID string, req SendRequest) (*SentMessage, *Response, error) {
	c := s.c
	if err := c.require(PermPagesMessaging); err != nil {
		return nil, nil, err
	}
	if err := c.requirePage(pageID); err != nil {
		return nil, nil, err
	}
	if err := req.check(); err != nil {
		return nil, nil, err
	}
	now := c.opts.now()
	window, err := req.window(now)
	if err != nil {
		return nil, nil, err
	}
	if c.opts.conversations == nil {
		return nil, nil, ErrNoConversations
	}
	conv := c.opts.conversations.Conversations()
	key, recipient := ConversationKey(pageID, req.PSID), map[string]string{"id": req.PSID}
	if req.UserRef != "" {
		key, recipient = UserRefConversationKey(pageID, req.UserRef), map[string]string{"user_ref": req.UserRef}
	}
	_, last, err := lastInbound(ctx, conv, key)
	if err != nil {
		return nil, nil, fmt.Errorf("meta: send: %w", err)
	}
	if last.IsZero() || now.Sub(last) > window {
		return nil, nil, &WindowError{LastInbound: last, Window: window}
	}

	nm := crm.NewMessage{Conversation: key, Direction: crm.Outbound, Text: req.Text, SentAt: now, Status: crm.StatusPending}
	message := map[string]any{}
	if req.Text != "" {
		message["text"] = req.Text
	} else {
		nm.Attachments = []crm.MessageAttachment{{Type: req.Attachment.Type, URL: req.Attachment.URL}}
		message["attachment"] = map[string]any{"type": req.Attachment.Type, "payload": map[string]any{"url": req.Attachment.URL}}
	}
	stored, err := conv.Record(ctx, nm)
	if err != nil {
		return nil, nil, fmt.Errorf("meta: send: store reply: %w", err)
	}
	body := map[string]any{
		"recipient":      recipient,
		"messaging_type": string(req.MessagingType),
		"message":        message,
	}
	if req.Tag != "" {
		body["tag"] = string(req.Tag)
	}
	var ans struct {
		RecipientID ID `json:"recipient_id"`
		MessageID   ID `json:"message_id"`
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/" + pageID + "/messages", json: body,
		need: []string{PermPagesMessaging}}, &ans)
	if err != nil {
		if _, ferr := conv.MarkFailed(ctx, stored.ID); ferr != nil {
			err = errors.Join(err, ferr)
		}
		return nil, resp, err
	}
	out := &SentMessage{RecipientID: string(ans.RecipientID), MessageID: string(ans.MessageID), Stored: stored}
	if out.MessageID != "" {
		if out.Stored, err = conv.MarkSent(ctx, stored.ID, out.MessageID); err != nil {
			return out, resp, fmt.Errorf("meta: send: mark sent: %w", err)
		}
	}
	md := map[string]string{"page_id": pageID, "message_id": out.MessageID, "conversation_id": stored.ConversationID,
		"messaging_type": string(req.MessagingType)}
	if req.Tag != "" {
		md["tag"] = string(req.Tag)
	}
	if err := c.session.Audit(ctx, "meta.messenger.send", md); err != nil {
		return out, resp, fmt.Errorf("meta: audit send: %w", err)
	}
	return out, resp, nil
}

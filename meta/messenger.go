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

	"github.com/socialcrm/socialcrm/tenancy"
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
	// LastInbound is when the person last wrote to the Page (zero: never),
	// as the caller's inbox knows it: Send refuses a message outside the
	// window that follows it. The inbox package keeps it for conversations
	// stored in crm (inbox.Inbox.Send fills it in).
	LastInbound time.Time
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

// Check returns the error Send would return for req without sending
// anything: a *social.ScopeError without pages_messaging, an error for a
// Page the client does not act for, ErrInvalidMessage, a
// *RetiredTagError, or a *WindowError when req.LastInbound is zero or
// older than the window (24 hours, 7 days with HUMAN_AGENT) at the
// client's clock. It returns nil when Send would make the request.
func (s *MessengerService) Check(pageID string, req SendRequest) error {
	c := s.c
	if err := c.require(PermPagesMessaging); err != nil {
		return err
	}
	if err := c.requirePage(pageID); err != nil {
		return err
	}
	if err := req.check(); err != nil {
		return err
	}
	now := c.opts.now()
	window, err := req.window(now)
	if err != nil {
		return err
	}
	if req.LastInbound.IsZero() || now.Sub(req.LastInbound) > window {
		return &WindowError{LastInbound: req.LastInbound, Window: window}
	}
	return nil
}

// Send sends req to a person as the Page, at the user's instruction. It
// needs pages_messaging and a client acting for the Page's connection,
// and it refuses locally, sending nothing, what Check refuses: a request
// Meta would refuse (ErrInvalidMessage), a retired tag
// (*RetiredTagError), and a send outside the window after
// req.LastInbound — 24 hours, or 7 days with HUMAN_AGENT (*WindowError).
// Every send is written to the tenant's audit log twice: before the
// request is sent (meta.messenger.send_sending: method, path, sent_at),
// so that a process killed before it read the answer leaves the message
// in doubt in the log, and once Meta accepted it (meta.messenger.send,
// with the Page and message ids). A send whose answer is lost, or is a
// server error, is not sent again: it fails with *OutcomeUnknownError
// (ErrOutcomeUnknown), recorded as meta.write_outcome_unknown even when
// the caller's context has ended. No entry holds the text or the
// recipient. Send stores nothing: inbox.Inbox.Send sends through it and
// keeps the reply in crm.
func (s *MessengerService) Send(ctx context.Context, pageID string, req SendRequest) (*SentMessage, *Response, error) {
	c := s.c
	if err := s.Check(pageID, req); err != nil {
		return nil, nil, err
	}
	recipient := map[string]string{"id": req.PSID}
	if req.UserRef != "" {
		recipient = map[string]string{"user_ref": req.UserRef}
	}
	message := map[string]any{}
	if req.Text != "" {
		message["text"] = req.Text
	} else {
		message["attachment"] = map[string]any{"type": req.Attachment.Type, "payload": map[string]any{"url": req.Attachment.URL}}
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
	attempt := tenancy.NewID()
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/" + pageID + "/messages", json: body,
		need: []string{PermPagesMessaging}, intent: "meta.messenger.send_sending", attempt: attempt}, &ans)
	if err != nil {
		return nil, resp, err
	}
	out := &SentMessage{RecipientID: string(ans.RecipientID), MessageID: string(ans.MessageID)}
	md := map[string]string{"page_id": pageID, "message_id": out.MessageID, "messaging_type": string(req.MessagingType), "attempt": attempt}
	if req.Tag != "" {
		md["tag"] = string(req.Tag)
	}
	if err := c.session.Audit(ctx, "meta.messenger.send", md); err != nil {
		return out, resp, fmt.Errorf("meta: audit send: %w", err)
	}
	return out, resp, nil
}

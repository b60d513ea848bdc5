package inbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/meta"
)

// Sent is what Send did: Meta's answer and the reply as stored.
type Sent struct {
	// SentMessage is Meta's answer: the recipient id (empty for a
	// user_ref recipient) and the mid.
	meta.SentMessage
	// Stored is the reply as stored in crm: outbound, sent.
	Stored crm.Message
}

// LastInbound returns when the person of the conversation with key last
// wrote (zero when never, or when there is no such conversation): the
// start of Meta's messaging window.
func (in *Inbox) LastInbound(ctx context.Context, key crm.ConversationKey) (time.Time, error) {
	conv := in.crm.Conversations()
	c, err := conv.Find(ctx, key)
	if errors.Is(err, crm.ErrNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	list := func(ctx context.Context, o crm.ListOptions) (crm.Page[crm.Message], error) {
		return conv.Messages(ctx, c.ID, o)
	}
	for m, err := range crm.All(ctx, crm.ListOptions{Limit: 50}, list) {
		if err != nil {
			return time.Time{}, err
		}
		if m.Direction == crm.Inbound {
			return m.SentAt, nil
		}
	}
	return time.Time{}, nil
}

// Send sends req to a person as the Page through client (a client acting
// for the Page's connection, with pages_messaging) and stores the reply
// in the person's conversation. The window is read from crm:
// req.LastInbound is set to the person's last message there. What
// client.Messenger.Check refuses is refused before anything is stored or
// sent (ErrInvalidMessage, *meta.RetiredTagError, *meta.WindowError, a
// *social.ScopeError); otherwise the reply is stored as an outbound
// message before the call (pending), then marked sent with its mid, or
// failed when Meta refuses it. The Page's echo of the message, delivered
// by the webhook, adds nothing to crm. req names the person by PSID, or by
// UserRef for a person Meta names by a user_ref.
func (in *Inbox) Send(ctx context.Context, client *meta.Client, pageID string, req meta.SendRequest) (*Sent, *meta.Response, error) {
	if client == nil {
		return nil, nil, fmt.Errorf("%w: Send: nil client", ErrConfig)
	}
	key := Key(pageID, req.PSID)
	if req.UserRef != "" {
		key = UserRefKey(pageID, req.UserRef)
	}
	last, err := in.LastInbound(ctx, key)
	if err != nil {
		return nil, nil, fmt.Errorf("inbox: send: %w", err)
	}
	req.LastInbound = last
	if err := client.Messenger.Check(pageID, req); err != nil {
		return nil, nil, err
	}
	conv := in.crm.Conversations()
	nm := crm.NewMessage{Conversation: key, Direction: crm.Outbound, Text: req.Text, SentAt: in.now(), Status: crm.StatusPending}
	if req.Attachment != nil {
		nm.Attachments = []crm.MessageAttachment{{Type: req.Attachment.Type, URL: req.Attachment.URL}}
	}
	stored, err := conv.Record(ctx, nm)
	if err != nil {
		return nil, nil, fmt.Errorf("inbox: send: store reply: %w", err)
	}
	sent, resp, err := client.Messenger.Send(ctx, pageID, req)
	if sent == nil {
		if _, ferr := conv.MarkFailed(ctx, stored.ID); ferr != nil {
			err = errors.Join(err, ferr)
		}
		return nil, resp, err
	}
	out := &Sent{SentMessage: *sent, Stored: stored}
	if sent.MessageID != "" {
		var merr error
		if out.Stored, merr = conv.MarkSent(ctx, stored.ID, sent.MessageID); merr != nil {
			return out, resp, errors.Join(err, fmt.Errorf("inbox: send: mark sent: %w", merr))
		}
	}
	return out, resp, err
}

// Reply answers the Messenger conversation conv as its Page through
// client: req's recipient is the conversation's person (by PSID, or by
// user_ref for a conversation keyed by UserRefKey); the rest is Send.
func (in *Inbox) Reply(ctx context.Context, client *meta.Client, conv crm.Conversation, req meta.SendRequest) (*Sent, *meta.Response, error) {
	if conv.Channel != crm.ChannelMessenger {
		return nil, nil, fmt.Errorf("%w: only Messenger conversations can be answered (channel %q)", meta.ErrInvalidMessage, conv.Channel)
	}
	req.PSID, req.UserRef = conv.ThreadID, ""
	if ref, ok := strings.CutPrefix(conv.ThreadID, userRefPrefix); ok {
		req.PSID, req.UserRef = "", ref
	}
	return in.Send(ctx, client, conv.AccountID, req)
}

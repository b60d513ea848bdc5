package meta

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrPayload is returned by ParseWebhook for a body that is not a
// Messenger webhook payload.
var ErrPayload = errors.New("meta: malformed webhook payload")

// EventKind says what a Messenger webhook event reports.
type EventKind string

// Event kinds. EventOther is any event this package does not type
// (reactions, opt-ins, referrals, handovers, …): its Raw JSON is kept.
const (
	EventMessage  EventKind = "message"
	EventEcho     EventKind = "echo"
	EventDelivery EventKind = "delivery"
	EventRead     EventKind = "read"
	EventPostback EventKind = "postback"
	EventOther    EventKind = "other"
)

// Payload is a decoded Messenger webhook delivery:
// {"object":"page","entry":[{"id","time","messaging":[…]}]}.
type Payload struct {
	// Object is "page" (Messenger) or "instagram".
	Object  string
	Entries []Entry
}

// Entry is one Page's part of a delivery. Its Events are ordered by
// timestamp (stable, so events with equal timestamps keep Meta's order).
type Entry struct {
	PageID string
	Time   time.Time
	Events []Event
}

// Event is one element of entry[].messaging[]. PSID is the person (the
// sender of a message, the recipient of an echo), PageID the Page; a
// person Meta names by sender.user_ref instead (a checkbox plugin opt-in,
// a chat plugin guest) has UserRef set and PSID empty, and is answered
// with SendRequest.UserRef.
// Exactly one of Message, Delivery, Read and Postback is set, as Kind
// says; none for EventOther.
type Event struct {
	Kind EventKind
	// Object is the payload's object: "page" for Messenger, "instagram"
	// for Instagram messaging (where PageID is the Instagram account's id).
	Object  string
	PageID  string
	PSID    string
	UserRef string
	// Time is the event's timestamp; events without one (Meta's
	// message_deliveries sample has none) take their entry's time.
	Time time.Time

	Message  *Message
	Delivery *Delivery
	Read     *Read
	Postback *Postback

	// Raw is the event's JSON as received. It is owned by the event.
	Raw json.RawMessage
}

// Message is a message event: from the person, or, for an echo
// (Kind EventEcho), the Page's own message sent to the person.
type Message struct {
	MID               string
	Text              string
	Attachments       []Attachment
	QuickReplyPayload string
	ReplyToMID        string
	// AppID is, on echoes, the app that sent the message ("" when a
	// person sent it from the Page inbox).
	AppID string
}

// Attachment is a message attachment. Type is image, audio, video, file,
// fallback, reel, ig_reel, post, ig_post, template, sticker, …; unknown
// types are kept as they come. URL is payload.url when there is one;
// Payload is the whole payload object.
type Attachment struct {
	Type    string
	URL     string
	Payload json.RawMessage
}

// Delivery reports that the Page's messages up to Watermark (and the
// listed MIDs, when Meta lists them) reached the person.
type Delivery struct {
	MIDs      []string
	Watermark time.Time
}

// Read reports that the person read the Page's messages up to Watermark.
type Read struct {
	Watermark time.Time
}

// Postback is a tap on a button.
type Postback struct {
	MID     string
	Title   string
	Payload string
}

// DedupeKey identifies the event across redeliveries: by mid for messages,
// echoes and postbacks, by watermark for deliveries and reads, by content
// for the rest.
func (e *Event) DedupeKey() string {
	var id string
	switch {
	case e.Message != nil && e.Message.MID != "":
		id = e.Message.MID
	case e.Postback != nil && e.Postback.MID != "":
		id = e.Postback.MID
	case e.Delivery != nil:
		id = strconv.FormatInt(e.Delivery.Watermark.UnixMilli(), 10) + "|" + strings.Join(e.Delivery.MIDs, ",")
	case e.Read != nil:
		id = strconv.FormatInt(e.Read.Watermark.UnixMilli(), 10)
	default:
		sum := sha256.Sum256(e.Raw)
		id = hex.EncodeToString(sum[:])
	}
	sum := sha256.Sum256([]byte(string(e.Kind) + "\x00" + e.PageID + "\x00" + e.PSID + "\x00" + id))
	return hex.EncodeToString(sum[:])
}

// ParseWebhook decodes a delivery body leniently: ids as strings or
// numbers, timestamps in milliseconds (or seconds, or either as a string),
// booleans as true or "true"; unknown fields, event kinds and attachment
// types are tolerated. It fails with ErrPayload for a body that is not a
// page or instagram webhook. It does not check the signature
// (VerifySignature), which must be done first, on the same bytes.
func ParseWebhook(body []byte) (*Payload, error) {
	var w struct {
		Object string `json:"object"`
		Entry  []struct {
			ID        ID                `json:"id"`
			Time      Timestamp         `json:"time"`
			Messaging []json.RawMessage `json:"messaging"`
			Standby   []json.RawMessage `json:"standby"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPayload, err)
	}
	if w.Object != "page" && w.Object != "instagram" {
		return nil, fmt.Errorf("%w: object %q", ErrPayload, w.Object)
	}
	p := &Payload{Object: w.Object, Entries: make([]Entry, 0, len(w.Entry))}
	for _, we := range w.Entry {
		en := Entry{PageID: string(we.ID), Time: we.Time.Time}
		en.Events = make([]Event, 0, len(we.Messaging))
		for _, raw := range we.Messaging {
			ev, err := parseEvent(raw, en, w.Object)
			if err != nil {
				return nil, err
			}
			en.Events = append(en.Events, ev)
		}
		slices.SortStableFunc(en.Events, func(a, b Event) int { return a.Time.Compare(b.Time) })
		p.Entries = append(p.Entries, en)
	}
	return p, nil
}

type wireEvent struct {
	Sender struct {
		ID      ID `json:"id"`
		UserRef ID `json:"user_ref"`
	} `json:"sender"`
	Recipient struct {
		ID ID `json:"id"`
	} `json:"recipient"`
	Timestamp Timestamp `json:"timestamp"`
	Message   *struct {
		MID        ID     `json:"mid"`
		Text       string `json:"text"`
		IsEcho     Bool   `json:"is_echo"`
		AppID      ID     `json:"app_id"`
		QuickReply *struct {
			Payload string `json:"payload"`
		} `json:"quick_reply"`
		ReplyTo *struct {
			MID ID `json:"mid"`
		} `json:"reply_to"`
		Attachments []struct {
			Type    string          `json:"type"`
			Payload json.RawMessage `json:"payload"`
		} `json:"attachments"`
	} `json:"message"`
	Delivery *struct {
		MIDs      []ID      `json:"mids"`
		Watermark Timestamp `json:"watermark"`
	} `json:"delivery"`
	Read *struct {
		Watermark Timestamp `json:"watermark"`
	} `json:"read"`
	Postback *struct {
		MID     ID     `json:"mid"`
		Title   string `json:"title"`
		Payload string `json:"payload"`
	} `json:"postback"`
}

func parseEvent(raw json.RawMessage, en Entry, object string) (Event, error) {
	var w wireEvent
	if err := json.Unmarshal(raw, &w); err != nil {
		return Event{}, fmt.Errorf("%w: event: %w", ErrPayload, err)
	}
	// raw is json.RawMessage's own copy of the event (ParseWebhook's
	// decode made it, and keeps nothing else of it): the event takes it
	// as it is.
	ev := Event{Kind: EventOther, Object: object, PageID: en.PageID, Time: w.Timestamp.Time, Raw: raw}
	if ev.Time.IsZero() {
		ev.Time = en.Time
	}
	sender := string(w.Sender.ID)
	recipient := string(w.Recipient.ID)
	ev.PSID = sender
	if sender == "" {
		ev.UserRef = string(w.Sender.UserRef)
	}
	switch {
	case w.Message != nil:
		m := &Message{MID: string(w.Message.MID), Text: w.Message.Text, AppID: string(w.Message.AppID)}
		if w.Message.QuickReply != nil {
			m.QuickReplyPayload = w.Message.QuickReply.Payload
		}
		if w.Message.ReplyTo != nil {
			m.ReplyToMID = string(w.Message.ReplyTo.MID)
		}
		for _, a := range w.Message.Attachments {
			att := Attachment{Type: a.Type, Payload: slices.Clone(a.Payload)}
			var pl struct {
				URL string `json:"url"`
			}
			if len(a.Payload) > 0 && a.Payload[0] == '{' {
				_ = json.Unmarshal(a.Payload, &pl) // a payload without a url is fine
			}
			att.URL = pl.URL
			m.Attachments = append(m.Attachments, att)
		}
		ev.Kind, ev.Message = EventMessage, m
		if w.Message.IsEcho {
			ev.Kind, ev.PSID = EventEcho, recipient
			if ev.PageID == "" {
				ev.PageID = sender
			}
		}
	case w.Delivery != nil:
		d := &Delivery{Watermark: w.Delivery.Watermark.Time}
		for _, id := range w.Delivery.MIDs {
			d.MIDs = append(d.MIDs, string(id))
		}
		ev.Kind, ev.Delivery = EventDelivery, d
	case w.Read != nil:
		ev.Kind, ev.Read = EventRead, &Read{Watermark: w.Read.Watermark.Time}
	case w.Postback != nil:
		ev.Kind, ev.Postback = EventPostback, &Postback{MID: string(w.Postback.MID), Title: w.Postback.Title, Payload: w.Postback.Payload}
	}
	if ev.PageID == "" && ev.Kind != EventEcho {
		ev.PageID = recipient
	}
	return ev, nil
}

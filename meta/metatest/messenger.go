package metatest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Messenger limits and dates.
const (
	// StandardWindow is the standard messaging window after a person's last
	// message.
	StandardWindow = 24 * time.Hour
	// HumanAgentWindow is how long the HUMAN_AGENT tag allows a human to
	// reply.
	HumanAgentWindow = 7 * 24 * time.Hour
)

// retiredTagsDate is when CONFIRMED_EVENT_UPDATE, ACCOUNT_UPDATE and
// POST_PURCHASE_UPDATE started failing with code 100.
var retiredTagsDate = date(2026, time.April, 27)

var retiredTags = []string{"CONFIRMED_EVENT_UPDATE", "ACCOUNT_UPDATE", "POST_PURCHASE_UPDATE"}

// SentMessage is a message a Page sent through the Send API.
type SentMessage struct {
	PageID        string
	RecipientID   string // PSID ("" when sent to a UserRef)
	UserRef       string // recipient.user_ref (checkbox and chat plugin guests)
	MessageID     string // "" for sender actions
	MessagingType string
	Tag           string
	Text          string
	SenderAction  string
	Message       json.RawMessage // the message object as sent
	Time          time.Time
}

// SentMessages returns the Send API messages accepted so far, oldest first.
func (s *Server) SentMessages() []SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.sent)
	for i := range out {
		out[i].Message = slices.Clone(out[i].Message)
	}
	return out
}

func windowClosed() *graphError {
	return newErr(typeOAuth, 10, 2018278,
		"(#10) This message is sent outside of allowed window. Learn more about the new policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview")
}

// jsonParam decodes a parameter that holds a JSON object.
func jsonParam(c *call, name string) (map[string]any, bool) {
	raw := c.param(name)
	if raw == "" {
		return nil, false
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, false
	}
	return m, true
}

// sendMessage serves POST /{page-id}/messages.
func (s *Server) sendMessage(c *call, p *page) result {
	if c.tok.kind != kindPage || c.tok.pageID != p.ID {
		return fail(errPageTokenRequired210())
	}
	if !c.grant.has("pages_messaging") || !hasTask(p, c.tok.userID, TaskMessaging, TaskManage) {
		return fail(errPermission(230, "(#230) Requires pages_messaging permission to manage the object"))
	}
	recipient, good := jsonParam(c, "recipient")
	if !good {
		return fail(errParam("(#100) The parameter recipient is required"))
	}
	psid, _ := recipient["id"].(string)
	userRef, _ := recipient["user_ref"].(string)
	if (psid == "") == (userRef == "") {
		return fail(errParam("(#100) recipient needs exactly one of id and user_ref"))
	}
	action := c.param("sender_action")
	rawMessage := c.param("message")
	if action != "" && rawMessage != "" {
		return fail(errParam("(#100) Cannot send both message and state at the same time."))
	}
	var message map[string]any
	text := ""
	if action == "" {
		var ok bool
		message, ok = jsonParam(c, "message")
		if !ok {
			return fail(errParam("(#100) The parameter message is required"))
		}
		text, _ = message["text"].(string)
		_, hasAttachment := message["attachment"]
		_, hasAttachments := message["attachments"]
		if text == "" && !hasAttachment && !hasAttachments {
			return fail(errParam("(#100) The message must have text or an attachment"))
		}
		if utf8.RuneCountInString(text) > 2000 {
			return fail(errParam("(#100) Length of param message[text] must be less than or equal to 2000"))
		}
	} else if !slices.Contains([]string{"typing_on", "typing_off", "mark_seen"}, action) {
		return fail(errParam("(#100) Param sender_action must be one of {typing_on, typing_off, mark_seen}"))
	}
	mt := c.param("messaging_type")
	tag := c.param("tag")
	if action == "" || mt != "" {
		switch mt {
		case "RESPONSE", "UPDATE", "MESSAGE_TAG":
		case "":
			return fail(errParam("(#100) The parameter messaging_type is required"))
		default:
			return fail(errParam("(#100) Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}"))
		}
	}
	conv := s.conversations[convKey{p.ID, personKey(psid, userRef)}]
	if conv == nil {
		return fail(newErr(typeOAuth, 100, 2018001, "(#100) No matching user found"))
	}
	now := s.nowLocked()
	since := now.Sub(conv.LastUserMessage)
	inWindow := !conv.LastUserMessage.IsZero() && since <= StandardWindow
	switch {
	case mt == "MESSAGE_TAG":
		switch {
		case tag == "":
			return fail(errParam("(#100) Param tag is required when messaging_type is MESSAGE_TAG"))
		case tag == "HUMAN_AGENT":
			if !c.app.HumanAgent {
				return fail(errPermission(10, "(#10) This app has not been approved for the Human Agent feature"))
			}
			if conv.LastUserMessage.IsZero() || since > HumanAgentWindow {
				return fail(windowClosed())
			}
		case slices.Contains(retiredTags, tag):
			if !now.Before(retiredTagsDate) {
				return fail(errParam("(#100) The message tag " + tag + " is no longer supported"))
			}
		default:
			return fail(errParam("(#100) Param tag must be one of {HUMAN_AGENT}"))
		}
	case !inWindow:
		return fail(windowClosed())
	}
	sm := SentMessage{
		PageID: p.ID, RecipientID: psid, UserRef: userRef, MessagingType: mt, Tag: tag, Text: text,
		SenderAction: action, Time: now,
	}
	resp := map[string]any{}
	if psid != "" {
		// Meta answers without recipient_id for a user_ref recipient.
		resp["recipient_id"] = psid
	}
	if action == "" {
		sm.MessageID = "m_" + randomString("")
		sm.Message = json.RawMessage(c.param("message"))
		resp["message_id"] = sm.MessageID
	}
	s.sent = append(s.sent, sm)
	return ok(resp)
}

// Event is one Messenger webhook event, an element of entry[].messaging[].
// Set exactly one of Message, Delivery, Read and Postback.
type Event struct {
	PageID string
	PSID   string // the person
	// UserRef names the person instead of PSID (sender.user_ref): a
	// checkbox plugin opt-in or a chat plugin guest, who has no PSID.
	UserRef string
	Time    time.Time // zero: the emulator's now

	Message  *EventMessage
	Delivery *EventDelivery
	Read     *EventRead
	Postback *EventPostback
}

// EventMessage is a message event. With IsEcho it is the Page's own message
// echoed back: sender and recipient swap.
type EventMessage struct {
	MID               string // "" gets a generated mid, written back here by SendWebhook
	Text              string
	Attachments       []Attachment
	QuickReplyPayload string
	IsEcho            bool
	AppID             string // echoes: the app that sent the message
}

// Attachment is a message attachment: Type is image, audio, video, file,
// fallback, reel, ig_reel, post, ig_post, template, sticker, …
type Attachment struct {
	Type string
	URL  string
}

// EventDelivery reports that messages up to Watermark were delivered.
type EventDelivery struct {
	MIDs      []string
	Watermark time.Time
}

// EventRead reports that messages up to Watermark were read.
type EventRead struct {
	Watermark time.Time
}

// EventPostback is a button tap.
type EventPostback struct {
	MID     string // "" gets a generated mid, written back here by SendWebhook
	Title   string
	Payload string
}

// TextMessage is a message event from psid to the Page.
func TextMessage(pageID, psid, text string) Event {
	return Event{PageID: pageID, PSID: psid, Message: &EventMessage{Text: text}}
}

func millis(t time.Time) int64 { return t.UnixMilli() }

func (s *Server) eventJSON(e *Event, now time.Time) (map[string]any, error) {
	if e.PageID == "" || (e.PSID == "") == (e.UserRef == "") {
		return nil, invalid("event: PageID and one of PSID and UserRef are required")
	}
	set := 0
	for _, present := range []bool{e.Message != nil, e.Delivery != nil, e.Read != nil, e.Postback != nil} {
		if present {
			set++
		}
	}
	if set != 1 {
		return nil, invalid("event: set exactly one of Message, Delivery, Read, Postback")
	}
	at := e.Time
	if at.IsZero() {
		at = now
	}
	sender := map[string]any{"id": e.PSID}
	if e.UserRef != "" {
		sender = map[string]any{"user_ref": e.UserRef}
	}
	out := map[string]any{
		"sender":    sender,
		"recipient": map[string]any{"id": e.PageID},
		"timestamp": millis(at),
	}
	switch {
	case e.Message != nil:
		m := e.Message
		if m.MID == "" {
			m.MID = "m_" + randomString("")
		}
		msg := map[string]any{"mid": m.MID}
		if m.Text != "" {
			msg["text"] = m.Text
		}
		if m.QuickReplyPayload != "" {
			msg["quick_reply"] = map[string]any{"payload": m.QuickReplyPayload}
		}
		if len(m.Attachments) > 0 {
			var atts []map[string]any
			for _, a := range m.Attachments {
				atts = append(atts, map[string]any{"type": a.Type, "payload": map[string]any{"url": a.URL}})
			}
			msg["attachments"] = atts
		}
		if m.IsEcho {
			msg["is_echo"] = true
			if m.AppID != "" {
				msg["app_id"] = appIDJSON(m.AppID)
			}
			out["sender"], out["recipient"] = out["recipient"], out["sender"]
		}
		out["message"] = msg
	case e.Delivery != nil:
		out["delivery"] = map[string]any{"mids": e.Delivery.MIDs, "watermark": millis(e.Delivery.Watermark)}
	case e.Read != nil:
		out["read"] = map[string]any{"watermark": millis(e.Read.Watermark)}
	case e.Postback != nil:
		pb := e.Postback
		if pb.MID == "" {
			pb.MID = "m_" + randomString("")
		}
		out["postback"] = map[string]any{"mid": pb.MID, "title": pb.Title, "payload": pb.Payload}
	}
	return out, nil
}

// personKey is how conversations name their person: the PSID, or the
// user_ref of a person without one.
func personKey(psid, userRef string) string {
	if userRef != "" {
		return "user_ref:" + userRef
	}
	return psid
}

// opensWindow tells whether the event is a person's action that starts the
// standard messaging window.
func (e *Event) opensWindow() bool {
	return (e.Message != nil && !e.Message.IsEcho) || e.Postback != nil
}

// escapeLikeMeta renders JSON the way Meta's payloads look: non-ASCII
// characters as lowercase \uXXXX escapes and "/" as "\/". Signatures are
// computed over these exact bytes.
func escapeLikeMeta(b []byte) []byte {
	var out bytes.Buffer
	for _, r := range string(b) {
		switch {
		case r == '/':
			out.WriteString(`\/`)
		case r < 0x80:
			out.WriteRune(r)
		case r > 0xFFFF:
			r -= 0x10000
			fmt.Fprintf(&out, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
		default:
			fmt.Fprintf(&out, `\u%04x`, r)
		}
	}
	return out.Bytes()
}

func marshalLikeMeta(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return escapeLikeMeta(bytes.TrimRight(buf.Bytes(), "\n")), nil
}

// SignPayload computes the X-Hub-Signature-256 header value for body:
// "sha256=" and the lowercase hex HMAC-SHA256 of the raw bytes keyed with the
// app secret.
func SignPayload(appSecret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func signSHA1(appSecret string, body []byte) string {
	m := hmac.New(sha1.New, []byte(appSecret))
	m.Write(body)
	return "sha1=" + hex.EncodeToString(m.Sum(nil))
}

// CallbackError reports an outbound delivery (webhook, verification,
// deauthorize or data deletion callback) that the receiver did not accept.
type CallbackError struct {
	Kind       string // "webhook", "verification", "deauthorize", "data deletion"
	URL        string // the callback URL, without the query the emulator added
	StatusCode int    // 0 when the request failed before a response
	Reason     string
	Err        error // the transport error, if any
}

func (e *CallbackError) Error() string {
	msg := fmt.Sprintf("metatest: %s callback %s", e.Kind, e.URL)
	if e.StatusCode != 0 {
		msg += fmt.Sprintf(": status %d", e.StatusCode)
	}
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *CallbackError) Unwrap() error { return e.Err }

// Delivery is a webhook POST the emulator made. Resend delivers the same
// bytes again, as Meta does when it retries.
type Delivery struct {
	URL        string
	Body       []byte // the exact payload
	Signature  string // X-Hub-Signature-256
	StatusCode int

	s    *Server
	sha1 string
}

// SendWebhook signs events with the app secret and POSTs them to
// callbackURL as Messenger does: {"object":"page","entry":[{"id","time",
// "messaging":[…]}]}, one entry per Page, with X-Hub-Signature-256 (and the
// legacy X-Hub-Signature). A person's message or postback opens the standard
// messaging window of their conversation. A non-2xx answer is reported as a
// *CallbackError along with the Delivery.
func (s *Server) SendWebhook(ctx context.Context, appID, callbackURL string, events ...Event) (*Delivery, error) {
	if len(events) == 0 {
		return nil, invalid("SendWebhook: no events")
	}
	s.mu.Lock()
	a := s.apps[appID]
	if a == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("metatest: SendWebhook: app %q: %w", appID, ErrNotFound)
	}
	secret := a.Secret
	now := s.nowLocked()
	type entry struct {
		ID        string           `json:"id"`
		Time      int64            `json:"time"`
		Messaging []map[string]any `json:"messaging"`
	}
	var entries []*entry
	byPage := map[string]*entry{}
	for i := range events {
		e := &events[i]
		if s.pages[e.PageID] == nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("metatest: SendWebhook: page %q: %w", e.PageID, ErrNotFound)
		}
		ev, err := s.eventJSON(e, now)
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		en := byPage[e.PageID]
		if en == nil {
			en = &entry{ID: e.PageID, Time: millis(now)}
			byPage[e.PageID] = en
			entries = append(entries, en)
		}
		en.Messaging = append(en.Messaging, ev)
		if e.opensWindow() {
			at := e.Time
			if at.IsZero() {
				at = now
			}
			k := convKey{e.PageID, personKey(e.PSID, e.UserRef)}
			cv := s.conversations[k]
			if cv == nil {
				cv = &Conversation{PageID: e.PageID, PSID: e.PSID}
				s.conversations[k] = cv
			}
			if at.After(cv.LastUserMessage) {
				cv.LastUserMessage = at
			}
		}
	}
	s.mu.Unlock()
	body, err := marshalLikeMeta(map[string]any{"object": "page", "entry": entries})
	if err != nil {
		return nil, fmt.Errorf("metatest: SendWebhook: %w", err)
	}
	d := &Delivery{
		URL: callbackURL, Body: body, Signature: SignPayload(secret, body),
		s: s, sha1: signSHA1(secret, body),
	}
	return d, d.Resend(ctx)
}

// Resend POSTs the same payload and signature again (a duplicate delivery).
func (d *Delivery) Resend(ctx context.Context) error {
	if d == nil || d.s == nil {
		return invalid("Resend: not a Delivery from SendWebhook")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return &CallbackError{Kind: "webhook", URL: d.URL, Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", d.Signature)
	req.Header.Set("X-Hub-Signature", d.sha1)
	req.Header.Set("User-Agent", "facebookexternalua")
	resp, err := d.s.client.Do(req)
	if err != nil {
		return &CallbackError{Kind: "webhook", URL: d.URL, Err: err}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	d.StatusCode = resp.StatusCode
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &CallbackError{Kind: "webhook", URL: d.URL, StatusCode: resp.StatusCode, Reason: "not acknowledged"}
	}
	return nil
}

// VerifyWebhook performs Meta's verification request against callbackURL:
// GET with hub.mode=subscribe, the app's hub.verify_token and a random
// hub.challenge. The endpoint passes when it answers 200 with the challenge
// as the whole body; otherwise a *CallbackError says what was wrong.
func (s *Server) VerifyWebhook(ctx context.Context, appID, callbackURL string) error {
	s.mu.Lock()
	a := s.apps[appID]
	s.mu.Unlock()
	if a == nil {
		return fmt.Errorf("metatest: VerifyWebhook: app %q: %w", appID, ErrNotFound)
	}
	u, err := url.Parse(callbackURL)
	if err != nil {
		return invalid("VerifyWebhook: %v", err)
	}
	challenge := strconv.FormatInt(rand.Int64N(1<<31-1)+1, 10)
	q := u.Query()
	q.Set("hub.mode", "subscribe")
	q.Set("hub.challenge", challenge)
	q.Set("hub.verify_token", a.VerifyToken)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return &CallbackError{Kind: "verification", URL: callbackURL, Err: err}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return &CallbackError{Kind: "verification", URL: callbackURL, Err: scrubURLError(err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return &CallbackError{Kind: "verification", URL: callbackURL, StatusCode: resp.StatusCode, Reason: "want status 200"}
	}
	if string(body) != challenge {
		return &CallbackError{Kind: "verification", URL: callbackURL, StatusCode: resp.StatusCode,
			Reason: "the body must be exactly the hub.challenge value"}
	}
	return nil
}

// scrubURLError drops the URL (which carries the verify token) from a
// transport error.
func scrubURLError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

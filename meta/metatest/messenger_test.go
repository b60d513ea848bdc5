package metatest_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socialcrm/socialcrm/meta/metatest"
)

// receiver is a webhook endpoint written the way the SDK should: it answers
// the verification handshake and checks X-Hub-Signature-256 over the raw
// body before decoding.
type receiver struct {
	secret, verifyToken string

	mu     sync.Mutex
	bodies [][]byte
	status int // answer to POSTs; 0 means 200
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		q := r.URL.Query()
		if q.Get("hub.mode") != "subscribe" || q.Get("hub.verify_token") != rc.verifyToken {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		_, _ = io.WriteString(w, q.Get("hub.challenge"))
		return
	}
	body, _ := io.ReadAll(r.Body)
	mac := hmac.New(sha256.New, []byte(rc.secret))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(r.Header.Get("X-Hub-Signature-256"))) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.bodies = append(rc.bodies, body)
	if rc.status != 0 {
		w.WriteHeader(rc.status)
	}
}

func (rc *receiver) received() [][]byte {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([][]byte(nil), rc.bodies...)
}

func newReceiver(t *testing.T, secret, verifyToken string) (*receiver, string) {
	rc := &receiver{secret: secret, verifyToken: verifyToken}
	ts := httptest.NewServer(rc)
	t.Cleanup(ts.Close)
	return rc, ts.URL + "/webhooks/meta"
}

func TestWebhookVerification(t *testing.T) {
	srv := fixture(t)
	_, good := newReceiver(t, appSecret, "verify-me")
	if err := srv.VerifyWebhook(context.Background(), appID, good); err != nil {
		t.Fatalf("VerifyWebhook on a correct endpoint returned %v", err)
	}
	_, wrong := newReceiver(t, appSecret, "another-token")
	err := srv.VerifyWebhook(context.Background(), appID, wrong)
	var cbErr *metatest.CallbackError
	if !errors.As(err, &cbErr) || cbErr.StatusCode != http.StatusForbidden || cbErr.Kind != "verification" {
		t.Fatalf("VerifyWebhook on an endpoint expecting another token returned %v", err)
	}
	if strings.Contains(err.Error(), "verify-me") {
		t.Errorf("error leaks the verify token: %v", err)
	}
	echoJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"challenge": r.URL.Query().Get("hub.challenge")})
	}))
	defer echoJSON.Close()
	if err := srv.VerifyWebhook(context.Background(), appID, echoJSON.URL); !errors.As(err, &cbErr) || !strings.Contains(cbErr.Reason, "exactly") {
		t.Fatalf("VerifyWebhook on an endpoint wrapping the challenge returned %v", err)
	}
}

func TestSendWebhookSigned(t *testing.T) {
	srv := fixture(t)
	rc, hook := newReceiver(t, appSecret, "verify-me")
	at := t0.Add(-time.Minute)
	events := []metatest.Event{
		metatest.TextMessage(pageID, "7002", "Grüße äöå — is the shop open?"),
		{PageID: pageID, PSID: "7002", Time: at, Message: &metatest.EventMessage{
			Attachments: []metatest.Attachment{{Type: "image", URL: "https://cdn.example/a/b.jpg"}},
		}},
		{PageID: pageID, PSID: "7002", Message: &metatest.EventMessage{Text: "Yes!", IsEcho: true, AppID: appID}},
		{PageID: pageID, PSID: "7002", Delivery: &metatest.EventDelivery{MIDs: []string{"m_1"}, Watermark: at}},
		{PageID: pageID, PSID: "7002", Read: &metatest.EventRead{Watermark: at}},
		{PageID: page2ID, PSID: "7003", Postback: &metatest.EventPostback{Title: "Start", Payload: "GET_STARTED"}},
	}
	d, err := srv.SendWebhook(context.Background(), appID, hook, events...)
	if err != nil {
		t.Fatalf("SendWebhook returned %v", err)
	}
	if d.StatusCode != http.StatusOK || !strings.HasPrefix(d.Signature, "sha256=") {
		t.Fatalf("delivery = %+v", d)
	}
	bodies := rc.received()
	if len(bodies) != 1 || !bytes.Equal(bodies[0], d.Body) {
		t.Fatalf("receiver got %d bodies", len(bodies))
	}
	raw := string(bodies[0])
	// Meta escapes non-ASCII and slashes; re-serialising the JSON breaks the signature.
	if !strings.Contains(raw, `Gr\u00fc\u00dfe \u00e4\u00f6\u00e5 \u2014`) || !strings.Contains(raw, `https:\/\/cdn.example\/a\/b.jpg`) {
		t.Fatalf("payload not escaped like Meta's: %s", raw)
	}
	var payload struct {
		Object string `json:"object"`
		Entry  []struct {
			ID        string           `json:"id"`
			Time      int64            `json:"time"`
			Messaging []map[string]any `json:"messaging"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(bodies[0], &payload); err != nil {
		t.Fatal(err)
	}
	if payload.Object != "page" || len(payload.Entry) != 2 || payload.Entry[0].ID != pageID || len(payload.Entry[0].Messaging) != 5 {
		t.Fatalf("payload shape = %+v", payload)
	}
	first := payload.Entry[0].Messaging[0]
	msg := first["message"].(map[string]any)
	if msg["text"] != "Grüße äöå — is the shop open?" || !strings.HasPrefix(msg["mid"].(string), "m_") ||
		first["sender"].(map[string]any)["id"] != "7002" || first["timestamp"] != float64(t0.UnixMilli()) {
		t.Errorf("first event = %v", first)
	}
	echo := payload.Entry[0].Messaging[2]
	if echo["sender"].(map[string]any)["id"] != pageID || echo["message"].(map[string]any)["is_echo"] != true {
		t.Errorf("echo = %v", echo)
	}
	if del := payload.Entry[0].Messaging[3]["delivery"].(map[string]any); del["watermark"] != float64(at.UnixMilli()) {
		t.Errorf("delivery = %v", del)
	}
	if pb := payload.Entry[1].Messaging[0]["postback"].(map[string]any); pb["payload"] != "GET_STARTED" {
		t.Errorf("postback = %v", pb)
	}

	// Duplicate delivery: the same bytes and signature again.
	if err := d.Resend(context.Background()); err != nil {
		t.Fatal(err)
	}
	if bodies := rc.received(); len(bodies) != 2 || !bytes.Equal(bodies[0], bodies[1]) {
		t.Fatalf("duplicate delivery differs")
	}

	// The messages opened the window: the Page can answer both people.
	page := pageToken(t, srv, userID, pageID)
	wantOK(t, sendText(t, srv, page, pageID, "7002", "RESPONSE", "", "We open at 7"))

	// An endpoint that does not acknowledge is reported.
	rc.status = http.StatusInternalServerError
	_, err = srv.SendWebhook(context.Background(), appID, hook, metatest.TextMessage(pageID, "7002", "again"))
	var cbErr *metatest.CallbackError
	if !errors.As(err, &cbErr) || cbErr.StatusCode != 500 {
		t.Fatalf("SendWebhook to a failing endpoint returned %v", err)
	}
	// A receiver with the wrong secret rejects the signature.
	_, strict := newReceiver(t, "not-the-secret", "")
	if _, err := srv.SendWebhook(context.Background(), appID, strict, metatest.TextMessage(pageID, "7002", "x")); !errors.As(err, &cbErr) || cbErr.StatusCode != 401 {
		t.Fatalf("signature checked with another secret: %v", err)
	}
	if _, err := srv.SendWebhook(context.Background(), appID, hook, metatest.Event{PageID: pageID, PSID: "1"}); !errors.Is(err, metatest.ErrInvalid) {
		t.Errorf("event without a kind: %v", err)
	}
}

func sendText(t *testing.T, srv *metatest.Server, token, page, to, messagingType, tag, text string) response {
	t.Helper()
	body := map[string]any{"recipient": map[string]string{"id": to}, "message": map[string]string{"text": text}}
	if messagingType != "" {
		body["messaging_type"] = messagingType
	}
	if tag != "" {
		body["tag"] = tag
	}
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, srv.GraphURL()+"/"+srv.Version()+"/"+page+"/messages?access_token="+url.QueryEscape(token), bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	return send(t, req)
}

func TestSendAPIWindow(t *testing.T) {
	srv := fixture(t, metatest.WithApp(metatest.App{ID: "1003", Secret: "agent-secret", HumanAgent: true}))
	page := pageToken(t, srv, userID, pageID)

	// Carol wrote an hour ago.
	r := sendText(t, srv, page, pageID, psid, "RESPONSE", "", "Thanks for your message")
	wantOK(t, r)
	if r.str("recipient_id") != psid || !strings.HasPrefix(r.str("message_id"), "m_") {
		t.Fatalf("send = %s", r.raw)
	}
	wantOK(t, sendText(t, srv, page, pageID, psid, "UPDATE", "", "Your order shipped"))

	srv.Advance(23*time.Hour + time.Minute) // 24h01m after her message
	r = sendText(t, srv, page, pageID, psid, "RESPONSE", "", "Still there?")
	wantError(t, r, 10, 2018278)
	if !strings.Contains(r.errMessage(), "outside of allowed window") || r.status != http.StatusForbidden {
		t.Errorf("window error = %d %q", r.status, r.errMessage())
	}
	wantError(t, sendText(t, srv, page, pageID, psid, "MESSAGE_TAG", "", "no tag"), 100, 0)
	wantError(t, sendText(t, srv, page, pageID, psid, "MESSAGE_TAG", "PROMOTION", "buy"), 100, 0)
	// Retired tags fail since April 27, 2026.
	wantError(t, sendText(t, srv, page, pageID, psid, "MESSAGE_TAG", "ACCOUNT_UPDATE", "update"), 100, 0)
	// HUMAN_AGENT needs the feature...
	wantError(t, sendText(t, srv, page, pageID, psid, "MESSAGE_TAG", "HUMAN_AGENT", "hi"), 10, 0)
	// ...and then works for 7 days.
	if err := srv.AddPage(metatest.Page{ID: "3030", Tasks: map[string][]string{userID: {metatest.TaskMessaging}}}); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddConversation(metatest.Conversation{PageID: "3030", PSID: psid, LastUserMessage: srv.Now().Add(-3 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	agent, err := srv.PageToken("1003", userID, "3030", metatest.LongLived)
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, sendText(t, srv, agent, "3030", psid, "MESSAGE_TAG", "HUMAN_AGENT", "A human here"))
	srv.Advance(4*24*time.Hour + time.Second)
	wantError(t, sendText(t, srv, agent, "3030", psid, "MESSAGE_TAG", "HUMAN_AGENT", "Too late"), 10, 2018278)

	sent := srv.SentMessages()
	if len(sent) != 3 || sent[2].Tag != "HUMAN_AGENT" || sent[0].Text != "Thanks for your message" || sent[1].MessagingType != "UPDATE" {
		t.Fatalf("SentMessages = %+v", sent)
	}
}

func TestRetiredTagsBeforeCutoff(t *testing.T) {
	srv := fixture(t, metatest.WithClock(func() time.Time { return time.Date(2026, time.April, 1, 0, 0, 0, 0, time.UTC) }))
	page := pageToken(t, srv, userID, pageID)
	srv.Advance(48 * time.Hour)
	wantOK(t, sendText(t, srv, page, pageID, psid, "MESSAGE_TAG", "POST_PURCHASE_UPDATE", "Shipped"))
	srv.Advance(26 * 24 * time.Hour)
	wantError(t, sendText(t, srv, page, pageID, psid, "MESSAGE_TAG", "POST_PURCHASE_UPDATE", "Shipped"), 100, 0)
}

func TestSendAPIValidation(t *testing.T) {
	srv := fixture(t)
	page := pageToken(t, srv, userID, pageID)
	wantError(t, sendText(t, srv, page, pageID, psid, "", "", "no type"), 100, 0)
	wantError(t, sendText(t, srv, page, pageID, psid, "SOMETIMES", "", "bad type"), 100, 0)
	wantError(t, sendText(t, srv, page, pageID, "9999", "RESPONSE", "", "who?"), 100, 2018001)
	wantError(t, sendText(t, srv, page, pageID, psid, "RESPONSE", "", strings.Repeat("a", 2001)), 100, 0)
	wantError(t, sendText(t, srv, userToken(t, srv, userID, metatest.LongLived), pageID, psid, "RESPONSE", "", "hi"), 210, 0)
	// Bob's Page token lacks pages_messaging.
	wantError(t, sendText(t, srv, pageToken(t, srv, user2ID, pageID), pageID, psid, "RESPONSE", "", "hi"), 230, 0)

	// Form-encoded with JSON-valued fields and a sender action.
	r := post(t, srv, "/me/messages", page, "recipient", `{"id":"`+psid+`"}`, "sender_action", "typing_on")
	wantOK(t, r)
	if r.str("recipient_id") != psid || r.body["message_id"] != nil {
		t.Fatalf("sender action = %s", r.raw)
	}
	wantError(t, post(t, srv, "/me/messages", page, "recipient", `{"id":"`+psid+`"}`, "sender_action", "typing_on",
		"message", `{"text":"x"}`, "messaging_type", "RESPONSE"), 100, 0)
}

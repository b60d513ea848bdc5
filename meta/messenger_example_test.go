package meta_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/vault"
)

// Receive Messenger events: the webhook verifies the signature over the
// raw body, decodes typed events and hands each new one over once, however
// often Meta delivers it. In an application the handler is an Inbox's
// Handle, which stores the events as crm conversations.
func ExampleNewWebhook() {
	w := newExampleWorld()
	defer w.close()
	handle := func(_ context.Context, _ bun.IDB, events []*meta.Event) error {
		for _, ev := range events {
			fmt.Printf("%s from %s to page %s: %q\n", ev.Kind, ev.PSID, ev.PageID, ev.Message.Text)
		}
		return nil
	}
	wh, err := meta.NewWebhook(meta.WebhookConfig{AppSecret: vault.NewSecret([]byte("s3cret")),
		VerifyToken: vault.NewSecret([]byte("verify-me"))}, w.store, handle)
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(wh)
	defer srv.Close()

	d, err := w.srv.SendWebhook(context.Background(), "1001", srv.URL, metatest.TextMessage("3001", "9001", "Grüße!"))
	if err != nil {
		panic(err)
	}
	_ = d.Resend(context.Background()) // Meta retries: handled once
	// Output:
	// message from 9001 to page 3001: "Grüße!"
}

// Verify the signed_request Meta posts to the deauthorize and data
// deletion callbacks (Callbacks does this for you).
func ExampleParseSignedRequest() {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	signed, _ := metatest.EncodeSignedRequest("s3cret", metatest.SignedRequestPayload{
		Algorithm: "HMAC-SHA256", IssuedAt: now.Unix(), UserID: "2001"})
	sr, err := meta.ParseSignedRequest(signed, vault.NewSecret([]byte("s3cret")), now, 0)
	fmt.Println(sr.UserID, err)
	_, err = meta.ParseSignedRequest(signed, vault.NewSecret([]byte("s3cret")), now.Add(2*time.Hour), 0)
	fmt.Println(err)
	// Output:
	// 2001 <nil>
	// meta: invalid signed_request: meta: signed_request expired
}

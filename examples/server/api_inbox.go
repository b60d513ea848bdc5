package main

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/inbox"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/vault"
)

// metaWebhook is Messenger's webhook: GET answers Meta's verification,
// POST stores each new, verified event in the crm conversations of every
// tenant that connected the Page (the SDK's inbox).
func (a *app) metaWebhook() (http.Handler, error) {
	in, err := a.sdk.MetaInbox(inbox.WithLogger(a.log))
	if err != nil {
		return nil, err
	}
	return meta.NewWebhook(meta.WebhookConfig{AppSecret: a.plat.metaCfg.AppSecret,
		VerifyToken: vault.NewSecret([]byte(a.plat.metaVerify))},
		a.sdk.Social, in.Handle, meta.WithLogger(a.log), meta.WithIdempotentHandler())
}

func (a *app) listConversations(w http.ResponseWriter, r *http.Request) error {
	o, err := listOptions(r)
	if err != nil {
		return err
	}
	page, err := a.sdk.CRM.Conversations().List(r.Context(), crm.ConversationFilter{
		Channel: crm.Channel(r.URL.Query().Get("channel")), ContactID: r.URL.Query().Get("contact_id")}, o)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

func (a *app) conversationMessages(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "conversation")
	if err != nil {
		return err
	}
	o, err := listOptions(r)
	if err != nil {
		return err
	}
	conv, err := a.sdk.CRM.Conversations().Get(r.Context(), id)
	if err != nil {
		return err
	}
	page, err := a.sdk.CRM.Conversations().Messages(r.Context(), id, o)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversation": conv, "items": page.Items, "next_cursor": page.NextCursor})
	return nil
}

// reply answers a Messenger conversation as its Page through the Send API
// (a plugin guest by user_ref), within Meta's 24-hour window; the reply is
// stored in the conversation.
func (a *app) reply(ctx context.Context, convID, text string) (*inbox.Sent, error) {
	text = strings.TrimSpace(text)
	if text == "" || len(text) > 2000 {
		return nil, errInvalid(fieldProblem{Field: "text", Problem: "1 to 2000 characters"})
	}
	conv, err := a.sdk.CRM.Conversations().Get(ctx, convID)
	if err != nil {
		return nil, err
	}
	if conv.Channel != crm.ChannelMessenger {
		return nil, errInvalid(fieldProblem{Field: "id", Problem: "only Messenger conversations can be answered here"})
	}
	page, err := a.sdk.Social.Find(ctx, meta.Platform, conv.AccountID)
	if err != nil {
		return nil, &apiError{Status: http.StatusConflict, Code: "page_not_connected", Message: "connect the conversation's Facebook Page to answer"}
	}
	client, err := a.plat.metaClient(ctx, a.sdk.Social, page.ID)
	if err != nil {
		return nil, err
	}
	in, err := a.sdk.MetaInbox(inbox.WithLogger(a.log))
	if err != nil {
		return nil, err
	}
	sent, _, err := in.Reply(ctx, client, conv, meta.SendRequest{MessagingType: meta.MessagingResponse, Text: text})
	return sent, err
}

func (a *app) replyConversation(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "conversation")
	if err != nil {
		return err
	}
	var in struct {
		Text string `json:"text"`
	}
	if err := readJSON(r, &in); err != nil {
		return err
	}
	sent, err := a.reply(r.Context(), id, in.Text)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"message": sent.Stored, "message_id": sent.MessageID})
	return nil
}

// sandboxMetaMessage plays, in sandbox mode, a person writing to the
// sandbox Page on Messenger: the emulator delivers the signed webhook to
// /webhooks/meta.
func (a *app) sandboxMetaMessage(w http.ResponseWriter, r *http.Request) error {
	if !a.plat.metaSandbox {
		return errNotFound("sandbox")
	}
	var in struct {
		PSID string `json:"psid"`
		Text string `json:"text"`
	}
	if err := readJSON(r, &in); err != nil {
		return err
	}
	var v validator
	v.check(in.PSID == "" || (len(in.PSID) <= 64 && !strings.ContainsAny(in.PSID, " /?#")), "psid", "at most 64 characters, no spaces")
	v.check(strings.TrimSpace(in.Text) != "" && len(in.Text) <= 2000, "text", "1 to 2000 characters")
	if err := v.err(); err != nil {
		return err
	}
	if err := a.deliverSandboxMessage(r.Context(), in.PSID, in.Text); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deliverSandboxMessage has the emulator deliver a person's message to the
// sandbox Page through the signed webhook.
func (a *app) deliverSandboxMessage(ctx context.Context, psid, text string) error {
	if !a.plat.metaSandbox {
		return errNotFound("sandbox")
	}
	if psid == "" {
		psid = "sandbox-psid-1"
	}
	// Only a tenant that connected the sandbox Page may have it write: the
	// message reaches every tenant that did, and no other tenant's inbox
	// is this caller's to write to.
	if c, err := a.sdk.Social.Find(ctx, meta.Platform, sandboxPage); errors.Is(err, social.ErrNotFound) || err == nil && c.Status == social.StatusRevoked {
		return &apiError{Status: http.StatusConflict, Code: "page_not_connected",
			Message: "this organization has not connected the sandbox Page: connect it with the messaging permissions first"}
	} else if err != nil {
		return err
	}
	// As at Meta, a Page that did not subscribe the app to its webhooks
	// (metaConnect does when the Page connects) sends nothing.
	if ok, err := subscribed(ctx, a.plat.sandbox, a.plat.metaCfg.AppID, sandboxPage, "messages"); err != nil {
		return err
	} else if !ok {
		return &apiError{Status: http.StatusConflict, Code: "page_not_subscribed",
			Message: "the sandbox Page is not subscribed to the app's webhooks: connect it with the messaging permissions first"}
	}
	return a.plat.sandbox.deliverMessage(ctx, a.plat.metaCfg.AppID, a.publicURL+"/webhooks/meta", sandboxPage, psid, text)
}

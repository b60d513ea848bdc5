package main

import (
	"errors"
	"net/http"
	"strings"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/retention"
)

// consoleCRMRoutes registers the console's contacts and inbox pages.
func (a *app) consoleCRMRoutes() {
	a.page("GET /console/contacts", member, "contacts", a.consoleContacts)
	a.page("POST /console/contacts", member, "contacts", a.consoleCreateContact)
	a.page("GET /console/contacts/{id}", member, "contact", a.consoleContact)
	a.page("POST /console/contacts/{id}/request", member, "contact", a.consoleContactRequest)
	a.page("GET /console/inbox", member, "inbox", a.consoleInbox)
	a.page("GET /console/inbox/{id}", member, "conversation", a.consoleConversation)
	a.page("POST /console/inbox/{id}/reply", member, "conversation", a.consoleReply)
	a.page("POST /console/sandbox/message", member, "inbox", a.consoleSandboxMessage)
}

func (a *app) consoleContacts(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Contacts"
	p.Flash = r.URL.Query().Get("flash")
	o, err := listOptions(r)
	if err != nil {
		return err
	}
	list, err := a.sdk.CRM.Contacts().List(r.Context(), crm.ContactFilter{NamePrefix: r.URL.Query().Get("q")}, o)
	p.Data = map[string]any{"Contacts": list.Items, "Next": list.NextCursor, "Q": r.URL.Query().Get("q")}
	return err
}

func (a *app) consoleCreateContact(w http.ResponseWriter, r *http.Request, p *page) error {
	if err := a.consoleContacts(w, r, p); err != nil {
		return err
	}
	in := crm.ContactInput{FirstName: strings.TrimSpace(r.FormValue("first_name")), LastName: strings.TrimSpace(r.FormValue("last_name")),
		Email: strings.TrimSpace(r.FormValue("email")), Phone: strings.TrimSpace(r.FormValue("phone")),
		Stage: crm.Stage(r.FormValue("stage")), Source: "console"}
	c, err := a.sdk.CRM.Contacts().Create(r.Context(), in)
	if dup := (*crm.DuplicateError)(nil); errors.As(err, &dup) {
		return seeOther(w, r, "/console/contacts/"+dup.ContactID, "Not created: this contact has the same "+dup.Field+".")
	}
	if err != nil {
		return err
	}
	return seeOther(w, r, "/console/contacts/"+c.ID, "Contact created.")
}

type contactView struct {
	Contact       crm.Contact
	Conversations []crm.Conversation
}

func (a *app) loadContact(r *http.Request, p *page) (*contactView, error) {
	id, err := pathID(r, "contact")
	if err != nil {
		return nil, err
	}
	c, err := a.sdk.CRM.Contacts().Get(r.Context(), id)
	if err != nil {
		return nil, err
	}
	v := &contactView{Contact: c}
	p.Title, p.Data = strings.TrimSpace(c.FirstName+" "+c.LastName), v
	convs, err := a.sdk.CRM.Conversations().List(r.Context(), crm.ConversationFilter{ContactID: c.ID}, crm.ListOptions{})
	v.Conversations = convs.Items
	return v, err
}

func (a *app) consoleContact(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Flash = r.URL.Query().Get("flash")
	_, err := a.loadContact(r, p)
	return err
}

// consoleContactRequest records an export or erasure request for the
// contact; it is verified and carried out on the privacy page.
func (a *app) consoleContactRequest(w http.ResponseWriter, r *http.Request, p *page) error {
	v, err := a.loadContact(r, p)
	if err != nil {
		return err
	}
	kind := retention.RequestKind(r.FormValue("kind"))
	if kind != retention.KindExport && kind != retention.KindErasure {
		return errInvalid(fieldProblem{Field: "kind", Problem: "must be export or erasure"})
	}
	req, err := a.submitRequest(r.Context(), requestInput{Kind: kind, Subject: map[string]string{"contact_id": v.Contact.ID}})
	if err != nil {
		return err
	}
	return seeOther(w, r, "/console/privacy", "Recorded the "+string(kind)+" request for "+p.Title+", due "+req.DueAt.UTC().Format("2006-01-02")+": verify the person's identity to go on.")
}

func (a *app) consoleInbox(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Inbox"
	p.Flash = r.URL.Query().Get("flash")
	o, err := listOptions(r)
	if err != nil {
		return err
	}
	list, err := a.sdk.CRM.Conversations().List(r.Context(), crm.ConversationFilter{}, o)
	p.Data = map[string]any{"Conversations": list.Items, "Next": list.NextCursor}
	return err
}

type conversationView struct {
	Conversation crm.Conversation
	Messages     []crm.Message
}

func (a *app) loadConversation(r *http.Request, p *page) (*conversationView, error) {
	id, err := pathID(r, "conversation")
	if err != nil {
		return nil, err
	}
	conv, err := a.sdk.CRM.Conversations().Get(r.Context(), id)
	if err != nil {
		return nil, err
	}
	v := &conversationView{Conversation: conv}
	p.Title, p.Data = "Conversation", v
	msgs, err := a.sdk.CRM.Conversations().Messages(r.Context(), id, crm.ListOptions{Limit: 100})
	// Oldest first on the page, like a chat.
	for i := len(msgs.Items) - 1; i >= 0; i-- {
		v.Messages = append(v.Messages, msgs.Items[i])
	}
	return v, err
}

func (a *app) consoleConversation(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Flash = r.URL.Query().Get("flash")
	_, err := a.loadConversation(r, p)
	return err
}

func (a *app) consoleReply(w http.ResponseWriter, r *http.Request, p *page) error {
	v, err := a.loadConversation(r, p)
	if err != nil {
		return err
	}
	if _, err := a.reply(r.Context(), v.Conversation.ID, r.FormValue("text")); err != nil {
		return err
	}
	return seeOther(w, r, "/console/inbox/"+v.Conversation.ID, "Sent.")
}

// consoleSandboxMessage has a person write to the sandbox Page.
func (a *app) consoleSandboxMessage(w http.ResponseWriter, r *http.Request, p *page) error {
	if err := a.consoleInbox(w, r, p); err != nil {
		return err
	}
	text := strings.TrimSpace(r.FormValue("text"))
	if text == "" || len(text) > 2000 {
		return errInvalid(fieldProblem{Field: "text", Problem: "1 to 2000 characters"})
	}
	if err := a.deliverSandboxMessage(r.Context(), "", text); err != nil {
		return err
	}
	return seeOther(w, r, "/console/inbox", "A message arrived from the sandbox.")
}

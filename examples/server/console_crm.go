package main

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
)

// consoleCRMRoutes registers the console's contacts, tasks and inbox pages.
func (a *app) consoleCRMRoutes() {
	a.page("GET /console/contacts", member, "contacts", a.consoleContacts)
	a.form("POST /console/contacts", member, "contacts", "/console/contacts", a.consoleCreateContact)
	a.page("POST /console/contacts/search", member, "contacts", a.consoleSearchContacts)
	a.form("POST /console/contacts/import", member, "contacts", "/console/contacts", a.consoleImportContacts)
	a.page("GET /console/contacts/export", member, "contacts", a.consoleExportContacts)
	a.page("GET /console/contacts/{id}", member, "contact", a.consoleContact)
	a.form("POST /console/contacts/{id}/edit", member, "contact", "/console/contacts/{id}", a.consoleEditContact)
	a.form("POST /console/contacts/{id}/delete", member, "contact", "/console/contacts", a.consoleDeleteContact)
	a.form("POST /console/contacts/{id}/merge", member, "contact", "/console/contacts/{id}", a.consoleMergeContact)
	a.form("POST /console/contacts/{id}/notes", member, "contact", "/console/contacts/{id}", a.consoleAddNote)
	a.form("POST /console/contacts/{id}/tasks", member, "contact", "/console/contacts/{id}", a.consoleAddContactTask)
	a.form("POST /console/contacts/{id}/activities", member, "contact", "/console/contacts/{id}", a.consoleLogActivity)
	a.form("POST /console/contacts/{id}/consent", member, "contact", "/console/contacts/{id}", a.consoleConsent)
	a.form("POST /console/contacts/{id}/request", member, "contact", "/console/privacy", a.consoleContactRequest)
	a.page("GET /console/tasks", member, "tasks", a.consoleTasks)
	a.form("POST /console/tasks", member, "tasks", "/console/tasks", a.consoleCreateTask)
	a.form("POST /console/tasks/{id}/done", member, "tasks", "/console/tasks", a.consoleTaskDone)
	a.page("GET /console/inbox", member, "inbox", a.consoleInbox)
	a.page("GET /console/inbox/{id}", member, "conversation", a.consoleConversation)
	a.form("POST /console/inbox/{id}/reply", member, "conversation", "/console/inbox/{id}", a.consoleReply)
	a.form("POST /console/inbox/{id}/link", member, "conversation", "/console/inbox/{id}", a.consoleLinkConversation)
	a.form("POST /console/sandbox/message", member, "inbox", "/console/inbox", a.consoleSandboxMessage)
}

// contactName is how the console names a contact: the name, else the
// e-mail or phone number, else "Unnamed contact".
func contactName(c crm.Contact) string {
	if n := strings.TrimSpace(c.FirstName + " " + c.LastName); n != "" {
		return n
	}
	return cmp.Or(c.Email, c.Phone, "Unnamed contact")
}

// contactFilter reads the search box: an e-mail address or a phone number
// (international, or national in the server's phone region) is matched
// exactly (they are found by their blind index), anything else by name
// prefixes.
func contactFilter(q string) crm.ContactFilter {
	q = strings.TrimSpace(q)
	switch {
	case strings.Contains(q, "@"):
		return crm.ContactFilter{Email: q}
	case looksLikePhone(q):
		return crm.ContactFilter{Phone: q}
	}
	return crm.ContactFilter{NamePrefix: q}
}

// looksLikePhone reports whether q is written as a phone number: digits
// (at least five), spaces and + - . ( ) only.
func looksLikePhone(q string) bool {
	digits := 0
	for _, c := range q {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case strings.ContainsRune("+-.() ", c):
		default:
			return false
		}
	}
	return digits >= 5
}

type contactsView struct {
	Contacts []crm.Contact
	Next     string
	// Q is the search, Searching whether one is shown: the search box
	// posts its query, which travels in a cookie, never in the URL (an
	// e-mail address, a phone number or a name is personal data that
	// browser history, proxies and logs keep).
	Q         string
	Searching bool
}

// cookieSearch holds the contacts search of the browser that typed it,
// signed, for an hour.
const cookieSearch = "sc_search"

func (a *app) consoleContacts(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Contacts"
	o, err := listOptions(r)
	if err != nil {
		return err
	}
	v := &contactsView{}
	if r.URL.Query().Get("search") != "" {
		v.Q, v.Searching = a.readSearch(r), true
	}
	p.Data = v
	list, err := a.sdk.CRM.Contacts().List(r.Context(), contactFilter(v.Q), o)
	v.Contacts, v.Next = list.Items, list.NextCursor
	return err
}

// readSearch returns the search the search cookie holds, or "".
func (a *app) readSearch(r *http.Request) string {
	c, err := r.Cookie(cookieSearch)
	if err != nil {
		return ""
	}
	v, mac, ok := strings.Cut(c.Value, ".")
	if !ok || subtle.ConstantTimeCompare([]byte(mac), []byte(a.tokens.mac("search."+v))) != 1 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// consoleSearchContacts keeps the query in the search cookie and shows
// the results at /console/contacts?search=1: reload, back and the next
// page work, and the query stays out of the URL.
func (a *app) consoleSearchContacts(w http.ResponseWriter, r *http.Request, p *page) error {
	q := strings.TrimSpace(r.FormValue("q"))
	if q == "" {
		a.setCookie(w, r, cookieSearch, "", -1)
		return a.seeOther(w, r, "/console/contacts", "")
	}
	if len(q) > 100 {
		if err := a.consoleContacts(w, r, p); err != nil {
			return err
		}
		return errInvalid(fieldProblem{Field: "q", Problem: "at most 100 characters"})
	}
	v := base64.RawURLEncoding.EncodeToString([]byte(q))
	a.setCookie(w, r, cookieSearch, v+"."+a.tokens.mac("search."+v), time.Hour)
	return a.seeOther(w, r, "/console/contacts?search=1", "")
}

// consoleImportContacts imports the contacts of an uploaded CSV file and
// says what it did with each row (counts, and the problems of rejected
// rows by line number; never a value of the file).
func (a *app) consoleImportContacts(w http.ResponseWriter, r *http.Request, p *page) error {
	if err := a.consoleContacts(w, r, p); err != nil {
		return err
	}
	var fh *multipart.FileHeader
	if r.MultipartForm != nil && len(r.MultipartForm.File["file"]) > 0 {
		fh = r.MultipartForm.File["file"][0]
	}
	switch {
	case fh == nil || fh.Size == 0:
		return errInvalid(fieldProblem{Field: "file", Problem: "choose a CSV file to import"})
	case fh.Size > maxCSV:
		return errInvalid(fieldProblem{Field: "file", Problem: "the file is over 10 MiB: split it"})
	}
	onMatch := crm.ImportMatch(r.FormValue("on_match"))
	if onMatch != "" && onMatch != crm.ImportUpdate && onMatch != crm.ImportSkip {
		return errInvalid(fieldProblem{Field: "on_match", Problem: "must be update or skip"})
	}
	f, err := fh.Open()
	if err != nil {
		return err
	}
	defer f.Close()
	rep, err := a.sdk.CRM.Contacts().ImportCSV(r.Context(), f, crm.ImportOptions{Source: "console import", OnMatch: onMatch})
	if errors.Is(err, crm.ErrInvalid) && rep.Rows == 0 {
		return errInvalid(fieldProblem{Field: "file", Problem: "not a CSV file with a header row"})
	}
	if err != nil {
		return err
	}
	if rep.Rows == 0 {
		return errInvalid(fieldProblem{Field: "file", Problem: "the file has a header row but no contacts"})
	}
	return a.seeOther(w, r, "/console/contacts", importSummary(rep))
}

// importSummary says what an import did in one message: the counts, then
// the first problems (row numbers and columns, never values).
func importSummary(rep crm.ImportReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Imported %d rows: %d created, %d updated, %d unchanged, %d skipped, %d rejected.",
		rep.Rows, rep.Created, rep.Updated, rep.Unchanged, rep.Skipped, rep.Rejected)
	for i, e := range rep.Errors {
		if i == 5 {
			fmt.Fprintf(&b, " And %d more problems.", len(rep.Errors)-i)
			break
		}
		if e.Row == 1 {
			fmt.Fprintf(&b, " Column %q: %s.", e.Field, e.Problem)
			continue
		}
		fmt.Fprintf(&b, " Row %d", e.Row)
		if e.Field != "" {
			fmt.Fprintf(&b, ", %s", e.Field)
		}
		fmt.Fprintf(&b, ": %s.", e.Problem)
	}
	return b.String()
}

// consoleExportContacts downloads every contact as CSV (the columns an
// import reads back).
func (a *app) consoleExportContacts(w http.ResponseWriter, r *http.Request, p *page) error {
	contacts := a.sdk.CRM.Contacts()
	// Check access before the header goes out: a refusal renders a page.
	if _, err := contacts.List(r.Context(), crm.ContactFilter{}, crm.ListOptions{Limit: 1}); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="contacts.csv"`)
	if _, err := contacts.ExportCSV(r.Context(), w, crm.ContactFilter{}); err != nil {
		a.log.ErrorContext(r.Context(), "contacts export failed midway", "err", err)
	}
	return nil
}

// contactForm reads the contact fields of a console form.
func contactForm(r *http.Request) crm.ContactInput {
	var tags []string
	for t := range strings.SplitSeq(r.FormValue("tags"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return crm.ContactInput{FirstName: strings.TrimSpace(r.FormValue("first_name")), LastName: strings.TrimSpace(r.FormValue("last_name")),
		Email: strings.TrimSpace(r.FormValue("email")), Phone: strings.TrimSpace(r.FormValue("phone")),
		Stage: crm.Stage(r.FormValue("stage")), Tags: tags}
}

func (a *app) consoleCreateContact(w http.ResponseWriter, r *http.Request, p *page) error {
	if err := a.consoleContacts(w, r, p); err != nil {
		return err
	}
	in := contactForm(r)
	in.Source = "console"
	c, err := a.sdk.CRM.Contacts().Create(r.Context(), in)
	if dup := (*crm.DuplicateError)(nil); errors.As(err, &dup) {
		return a.seeOther(w, r, "/console/contacts/"+dup.ContactID, "Not created: this contact has the same "+dup.Field+".")
	}
	if err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/contacts/"+c.ID, "Contact created.")
}

// timelineEntry is one thing that happened with a contact.
type timelineEntry struct {
	At   time.Time
	Kind string
	Text string
	Link string
}

type contactView struct {
	Contact       crm.Contact
	Conversations []crm.Conversation
	Consents      []crm.Consent
	Timeline      []timelineEntry
	// Others are the contacts a duplicate may be picked from.
	Others []crm.Contact
	// Edit holds the edit form's values: the contact's, or what was typed.
	Edit struct{ Form url.Values }
}

// timelineLimit bounds the records of each kind a timeline reads.
const timelineLimit = 50

func (a *app) loadContact(r *http.Request, p *page) (*contactView, error) {
	id, err := pathID(r, "contact")
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	c, err := a.sdk.CRM.Contacts().Get(ctx, id)
	if err != nil {
		return nil, err
	}
	v := &contactView{Contact: c}
	p.Title, p.Data = contactName(c), v
	v.Edit.Form = url.Values{"first_name": {c.FirstName}, "last_name": {c.LastName}, "email": {c.Email}, "phone": {c.Phone},
		"stage": {string(c.Stage)}, "tags": {strings.Join(c.Tags, ", ")}}
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/edit") {
		v.Edit.Form = p.Form
	}
	o := crm.ListOptions{Limit: timelineLimit}
	convs, err := a.sdk.CRM.Conversations().List(ctx, crm.ConversationFilter{ContactID: c.ID}, o)
	if err != nil {
		return v, err
	}
	v.Conversations = convs.Items
	add := func(at time.Time, kind, text, link string) {
		v.Timeline = append(v.Timeline, timelineEntry{At: at, Kind: kind, Text: text, Link: link})
	}
	for _, cv := range convs.Items {
		msgs, err := a.sdk.CRM.Conversations().Messages(ctx, cv.ID, crm.ListOptions{Limit: 10})
		if err != nil {
			return v, err
		}
		for _, m := range msgs.Items {
			kind := "message received"
			if m.Direction == crm.Outbound {
				kind = "message sent"
			}
			add(m.SentAt, kind+" ("+string(cv.Channel)+")", m.Text, "/console/inbox/"+cv.ID)
		}
	}
	notes, err := a.sdk.CRM.Notes().List(ctx, crm.NoteFilter{ContactID: c.ID}, o)
	if err != nil {
		return v, err
	}
	for _, n := range notes.Items {
		add(n.CreatedAt, "note", n.Body, "")
	}
	tasks, err := a.sdk.CRM.Tasks().List(ctx, crm.TaskFilter{ContactID: c.ID}, o)
	if err != nil {
		return v, err
	}
	for _, t := range tasks.Items {
		text := t.Title
		if !t.DueAt.IsZero() {
			text += " — due " + t.DueAt.UTC().Format("2006-01-02")
		}
		add(t.CreatedAt, "task ("+string(t.Status)+")", text, "/console/tasks")
	}
	acts, err := a.sdk.CRM.Activities().List(ctx, crm.ActivityFilter{ContactID: c.ID}, o)
	if err != nil {
		return v, err
	}
	for _, ac := range acts.Items {
		add(ac.OccurredAt, string(ac.Kind), ac.Subject, "")
	}
	deals, err := a.sdk.CRM.Deals().List(ctx, crm.DealFilter{ContactID: c.ID}, o)
	if err != nil {
		return v, err
	}
	for _, d := range deals.Items {
		text := d.Title + " — " + d.Stage + ", " + string(d.Status)
		if d.Currency != "" {
			text += ", " + money(d.Amount, d.Currency)
		}
		add(d.CreatedAt, "deal", text, "/console/deals?pipeline="+d.PipelineID)
	}
	if v.Consents, err = a.sdk.CRM.Consents().Current(ctx, c.ID); err != nil {
		return v, err
	}
	hist, err := a.sdk.CRM.Consents().History(ctx, c.ID, o)
	if err != nil {
		return v, err
	}
	for _, e := range hist.Items {
		add(e.At, "consent "+e.Action, string(e.Channel)+" · "+string(e.Purpose)+" — "+e.Source, "")
	}
	if canSeeRequests(p) {
		reqs, err := a.sdk.Retention.Match(ctx, "contact_id", c.ID)
		if err != nil && !errors.As(err, new(*retention.ValidationError)) {
			return v, err
		}
		for _, q := range reqs {
			add(q.ReceivedAt, "privacy request", string(q.Kind)+" — "+string(q.Status)+", due "+q.DueAt.UTC().Format("2006-01-02"), "/console/privacy")
		}
	}
	slices.SortStableFunc(v.Timeline, func(x, y timelineEntry) int { return y.At.Compare(x.At) })
	others, err := a.sdk.CRM.Contacts().List(ctx, crm.ContactFilter{}, crm.ListOptions{Limit: 200})
	if err != nil {
		return v, err
	}
	for _, o := range others.Items {
		if o.ID != c.ID {
			v.Others = append(v.Others, o)
		}
	}
	return v, nil
}

func (a *app) consoleContact(w http.ResponseWriter, r *http.Request, p *page) error {
	_, err := a.loadContact(r, p)
	return err
}

// formVersion reads a form's version field: the record's version the
// page showed, so that a change made meanwhile is not overwritten.
func formVersion(r *http.Request) (int64, error) {
	ver, err := strconv.ParseInt(r.FormValue("version"), 10, 64)
	if err != nil || ver < 1 {
		return 0, errInvalid(fieldProblem{Field: "version", Problem: "required: reload the page"})
	}
	return ver, nil
}

func (a *app) consoleEditContact(w http.ResponseWriter, r *http.Request, p *page) error {
	v, err := a.loadContact(r, p)
	if err != nil {
		return err
	}
	ver, err := formVersion(r)
	if err != nil {
		return err
	}
	// The form's fields change; the rest (UTM, birthday, preferences…) stays.
	in := v.Contact.ContactInput
	f := contactForm(r)
	in.FirstName, in.LastName, in.Email, in.Phone, in.Stage, in.Tags = f.FirstName, f.LastName, f.Email, f.Phone, f.Stage, f.Tags
	if _, err := a.sdk.CRM.Contacts().Update(r.Context(), v.Contact.ID, ver, in); err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/contacts/"+v.Contact.ID, "Saved.")
}

func (a *app) consoleDeleteContact(w http.ResponseWriter, r *http.Request, p *page) error {
	v, err := a.loadContact(r, p)
	if err != nil {
		return err
	}
	if err := confirmed(r); err != nil {
		return err
	}
	if err := a.sdk.CRM.Contacts().Delete(r.Context(), v.Contact.ID); err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/contacts", "Deleted "+p.Title+".")
}

func (a *app) consoleMergeContact(w http.ResponseWriter, r *http.Request, p *page) error {
	v, err := a.loadContact(r, p)
	if err != nil {
		return err
	}
	if err := confirmed(r); err != nil {
		return err
	}
	dup := r.FormValue("duplicate")
	if !slices.ContainsFunc(v.Others, func(c crm.Contact) bool { return c.ID == dup }) {
		return errInvalid(fieldProblem{Field: "duplicate", Problem: "choose another contact"})
	}
	if _, err := a.sdk.CRM.Contacts().Merge(r.Context(), v.Contact.ID, dup); err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/contacts/"+v.Contact.ID, "Merged the duplicate into "+p.Title+".")
}

func (a *app) consoleAddNote(w http.ResponseWriter, r *http.Request, p *page) error {
	v, err := a.loadContact(r, p)
	if err != nil {
		return err
	}
	body := strings.TrimSpace(r.FormValue("body"))
	if body == "" {
		return errInvalid(fieldProblem{Field: "body", Problem: "required"})
	}
	if _, err := a.sdk.CRM.Notes().Create(r.Context(), crm.NoteInput{ContactID: v.Contact.ID, Body: body}); err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/contacts/"+v.Contact.ID, "Note added.")
}

// taskForm reads a task's title and due date (a day, due at its end, UTC).
func taskForm(r *http.Request) (crm.TaskInput, error) {
	t := crm.TaskInput{Title: strings.TrimSpace(r.FormValue("title")), Status: crm.TaskOpen}
	var v validator
	v.check(t.Title != "", "title", "required")
	if d := r.FormValue("due"); d != "" {
		day, err := time.Parse("2006-01-02", d)
		v.check(err == nil, "due", "a date such as 2026-12-24")
		t.DueAt = day.Add(24*time.Hour - time.Second)
	}
	return t, v.err()
}

func (a *app) consoleAddContactTask(w http.ResponseWriter, r *http.Request, p *page) error {
	v, err := a.loadContact(r, p)
	if err != nil {
		return err
	}
	t, err := taskForm(r)
	if err != nil {
		return err
	}
	t.ContactID = v.Contact.ID
	if _, err := a.sdk.CRM.Tasks().Create(r.Context(), t); err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/contacts/"+v.Contact.ID, "Task added.")
}

func (a *app) consoleLogActivity(w http.ResponseWriter, r *http.Request, p *page) error {
	v, err := a.loadContact(r, p)
	if err != nil {
		return err
	}
	ac := crm.ActivityInput{Kind: crm.ActivityKind(r.FormValue("kind")), Subject: strings.TrimSpace(r.FormValue("subject")),
		ContactID: v.Contact.ID, OccurredAt: a.now()}
	if ac.Subject == "" {
		return errInvalid(fieldProblem{Field: "subject", Problem: "required"})
	}
	if ac.Kind != crm.ActivityMeeting {
		ac.Direction = crm.Outbound
	}
	if _, err := a.sdk.CRM.Activities().Create(r.Context(), ac); err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/contacts/"+v.Contact.ID, "Logged.")
}

func (a *app) consoleConsent(w http.ResponseWriter, r *http.Request, p *page) error {
	v, err := a.loadContact(r, p)
	if err != nil {
		return err
	}
	ch := crm.ConsentChange{ContactID: v.Contact.ID, Channel: crm.Channel(r.FormValue("channel")),
		Purpose: crm.Purpose(r.FormValue("purpose")), Source: strings.TrimSpace(r.FormValue("source"))}
	switch r.FormValue("action") {
	case "grant":
		_, err = a.sdk.CRM.Consents().Grant(r.Context(), ch)
	case "withdraw":
		_, err = a.sdk.CRM.Consents().Withdraw(r.Context(), ch)
	default:
		err = errInvalid(fieldProblem{Field: "action", Problem: "grant or withdraw"})
	}
	if err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/contacts/"+v.Contact.ID, "Consent recorded.")
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
	return a.seeOther(w, r, "/console/privacy", "Recorded the "+string(kind)+" request for "+p.Title+", due "+req.DueAt.UTC().Format("2006-01-02")+": verify the person's identity to go on.")
}

type taskRow struct {
	Task    crm.Task
	Overdue bool
}

type tasksView struct {
	Tasks []taskRow
	All   bool
	names map[string]string
}

// ContactName names a task's contact.
func (v *tasksView) ContactName(id string) string { return cmp.Or(v.names[id], "a contact") }

// consoleTasks lists open tasks, soonest due first (done ones on request).
func (a *app) consoleTasks(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Tasks"
	v := &tasksView{All: r.URL.Query().Get("all") == "1", names: map[string]string{}}
	p.Data = v
	f := crm.TaskFilter{Status: crm.TaskOpen}
	if v.All {
		f.Status = ""
	}
	list, err := a.sdk.CRM.Tasks().List(r.Context(), f, crm.ListOptions{Limit: 200})
	if err != nil {
		return err
	}
	now := a.now()
	for _, t := range list.Items {
		v.Tasks = append(v.Tasks, taskRow{Task: t, Overdue: t.Status == crm.TaskOpen && !t.DueAt.IsZero() && t.DueAt.Before(now)})
		if id := t.ContactID; id != "" && v.names[id] == "" {
			if c, err := a.sdk.CRM.Contacts().Get(r.Context(), id); err == nil {
				v.names[id] = contactName(c)
			}
		}
	}
	slices.SortStableFunc(v.Tasks, func(x, y taskRow) int {
		xd, yd := x.Task.DueAt, y.Task.DueAt
		switch {
		case xd.IsZero() && yd.IsZero():
			return 0
		case xd.IsZero():
			return 1
		case yd.IsZero():
			return -1
		}
		return xd.Compare(yd)
	})
	return nil
}

// dueTasks returns the open tasks due within a week (or overdue).
func (a *app) dueTasks(ctx context.Context) ([]crm.Task, error) {
	list, err := a.sdk.CRM.Tasks().List(ctx, crm.TaskFilter{Status: crm.TaskOpen, DueBefore: a.now().Add(7 * 24 * time.Hour)}, crm.ListOptions{Limit: 20})
	return list.Items, err
}

func (a *app) consoleCreateTask(w http.ResponseWriter, r *http.Request, p *page) error {
	if err := a.consoleTasks(w, r, p); err != nil {
		return err
	}
	t, err := taskForm(r)
	if err != nil {
		return err
	}
	if _, err := a.sdk.CRM.Tasks().Create(r.Context(), t); err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/tasks", "Task added.")
}

func (a *app) consoleTaskDone(w http.ResponseWriter, r *http.Request, p *page) error {
	id, ver, err := a.recordForm(w, r, p, a.consoleTasks, "task")
	if err != nil {
		return err
	}
	t, err := a.sdk.CRM.Tasks().Get(r.Context(), id)
	if err != nil {
		return err
	}
	in := t.TaskInput
	in.Status = crm.TaskDone
	if _, err := a.sdk.CRM.Tasks().Update(r.Context(), t.ID, ver, in); err != nil {
		return err
	}
	return a.seeOther(w, r, "/console/tasks", "Done: "+t.Title+".")
}

// inboxRow is a conversation titled by its contact.
type inboxRow struct {
	Conversation crm.Conversation
	Contact      *crm.Contact
	Title        string
	Account      string
}

// conversationTitle names a conversation by its contact, or says who it is
// with when no contact is linked yet (never by the raw platform id).
func conversationTitle(c *crm.Contact, cv crm.Conversation) string {
	if c != nil {
		return contactName(*c)
	}
	return "Unknown " + channelLabel(cv.Channel) + " sender"
}

func channelLabel(ch crm.Channel) string {
	switch ch {
	case crm.ChannelMessenger:
		return "Messenger"
	case crm.ChannelInstagram:
		return "Instagram"
	}
	return string(ch)
}

// conversationRows titles conversations by their contacts and names the
// accounts they came through.
func (a *app) conversationRows(ctx context.Context, convs []crm.Conversation) ([]inboxRow, error) {
	contacts := map[string]*crm.Contact{}
	accounts := map[string]string{}
	conns, err := a.connections(ctx, social.ConnectionFilter{})
	if err != nil {
		return nil, err
	}
	for _, c := range conns {
		accounts[c.AccountID] = cmp.Or(c.DisplayName, c.AccountID)
	}
	rows := make([]inboxRow, 0, len(convs))
	for _, cv := range convs {
		row := inboxRow{Conversation: cv, Account: cmp.Or(accounts[cv.AccountID], cv.AccountID)}
		if id := cv.ContactID; id != "" {
			if _, ok := contacts[id]; !ok {
				c, err := a.sdk.CRM.Contacts().Get(ctx, id)
				if err == nil {
					contacts[id] = &c
				} else {
					contacts[id] = nil
				}
			}
			row.Contact = contacts[id]
		}
		row.Title = conversationTitle(row.Contact, cv)
		rows = append(rows, row)
	}
	return rows, nil
}

func (a *app) consoleInbox(w http.ResponseWriter, r *http.Request, p *page) error {
	p.Title = "Inbox"
	data := map[string]any{"PageConnected": false}
	p.Data = data
	o, err := listOptions(r)
	if err != nil {
		return err
	}
	list, err := a.sdk.CRM.Conversations().List(r.Context(), crm.ConversationFilter{}, o)
	if err != nil {
		return err
	}
	rows, err := a.conversationRows(r.Context(), list.Items)
	data["Conversations"], data["Next"] = rows, list.NextCursor
	if err != nil {
		return err
	}
	// The sandbox's form and the empty inbox's advice depend on whether a
	// Facebook account (its Pages, their Instagram accounts) is connected
	// to receive messages.
	conns, err := a.connections(r.Context(), social.ConnectionFilter{Platform: meta.Platform, Status: social.StatusActive})
	data["PageConnected"] = len(conns) > 0
	return err
}

type conversationView struct {
	Conversation crm.Conversation
	Contact      *crm.Contact
	Title        string
	Messages     []crm.Message
	// Contacts are offered for linking an unlinked conversation.
	Contacts []crm.Contact
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
	p.Data = v
	rows, err := a.conversationRows(r.Context(), []crm.Conversation{conv})
	if err != nil {
		return v, err
	}
	v.Contact, v.Title = rows[0].Contact, rows[0].Title
	p.Title = v.Title
	if v.Contact == nil {
		list, err := a.sdk.CRM.Contacts().List(r.Context(), crm.ContactFilter{}, crm.ListOptions{Limit: 200})
		if err != nil {
			return v, err
		}
		v.Contacts = list.Items
	}
	msgs, err := a.sdk.CRM.Conversations().Messages(r.Context(), id, crm.ListOptions{Limit: 100})
	// Oldest first on the page, like a chat.
	for i := len(msgs.Items) - 1; i >= 0; i-- {
		v.Messages = append(v.Messages, msgs.Items[i])
	}
	return v, err
}

func (a *app) consoleConversation(w http.ResponseWriter, r *http.Request, p *page) error {
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
	return a.seeOther(w, r, "/console/inbox/"+v.Conversation.ID, "Sent.")
}

// consoleLinkConversation links a conversation to a contact: one picked,
// or a new one made from the names typed.
func (a *app) consoleLinkConversation(w http.ResponseWriter, r *http.Request, p *page) error {
	v, err := a.loadConversation(r, p)
	if err != nil {
		return err
	}
	ver, err := formVersion(r)
	if err != nil {
		return err
	}
	contactID, created := r.FormValue("contact_id"), false
	if contactID == "" {
		in := crm.ContactInput{FirstName: strings.TrimSpace(r.FormValue("first_name")), LastName: strings.TrimSpace(r.FormValue("last_name")),
			Source: string(v.Conversation.Channel)}
		if in.FirstName == "" && in.LastName == "" {
			return errInvalid(fieldProblem{Field: "first_name", Problem: "pick a contact, or name the new one"})
		}
		c, err := a.sdk.CRM.Contacts().Create(r.Context(), in)
		if err != nil {
			return err
		}
		contactID, created = c.ID, true
	} else if !slices.ContainsFunc(v.Contacts, func(c crm.Contact) bool { return c.ID == contactID }) {
		return errInvalid(fieldProblem{Field: "contact_id", Problem: "choose one of the contacts listed"})
	}
	if _, err := a.sdk.CRM.Conversations().LinkContact(r.Context(), v.Conversation.ID, contactID, ver); err != nil {
		// A refused link (a change made meanwhile) leaves no contact
		// behind that nothing links to.
		if created {
			if derr := a.sdk.CRM.Contacts().Delete(context.WithoutCancel(r.Context()), contactID); derr != nil {
				err = errors.Join(err, derr)
			}
		}
		return err
	}
	return a.seeOther(w, r, "/console/inbox/"+v.Conversation.ID, "Linked.")
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
	return a.seeOther(w, r, "/console/inbox", "A message arrived from the sandbox.")
}

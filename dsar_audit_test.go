package socialcrm_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/inbox"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
	"github.com/socialcrm/socialcrm/internal/leakscan"
	"github.com/socialcrm/socialcrm/internal/testkit"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
	"github.com/socialcrm/socialcrm/tiktok"
	"github.com/socialcrm/socialcrm/tiktok/tiktoktest"
	"github.com/socialcrm/socialcrm/vault"
)

// The audit below plants one person everywhere the SDK stores data, only
// through the public ways data gets in, and asks for her by each
// identifier she could give.

const auditRedirect = "https://crm.example/callback"

// auditWorld is one SDK on one database, with the platform emulators: a
// TikTok app with its creators, and a Meta app with, for each round of the
// audit, a Page (and its Instagram account) and its admin, and the people
// who connect their own Facebook accounts.
type auditWorld struct {
	t       *testing.T
	db      *dbtest.DB
	sdk     *socialcrm.SDK
	clk     *fakeclock.Clock
	storage string
	tt      *tiktoktest.Server
	ttCfg   tiktok.Config
	ttProv  *tiktok.Provider
	fb      *metatest.Server
	fbCfg   meta.Config
	fbProv  *meta.Provider
	hook    string
	pageID  string
	igID    string
	adminFB string
}

// auditPerson is what the audit planted about one person in one tenant.
type auditPerson struct {
	tag                                 string
	email, phone, psid, userRef, igsid  string
	openID, fbID                        string
	contacts, convs, conns              []string
	memberID, apiKeyID                  string
	crm, tiktok, meta, member, billKept []string // canaries by what reaches them
}

func (p *auditPerson) v(label string) string { return "Zq" + p.tag + label + "Qz" }

// all returns every canary of p.
func (p *auditPerson) all() []string {
	return slices.Concat(p.crm, p.tiktok, p.meta, p.member)
}

// newAuditWorld opens the SDK on db with the platform emulators of every
// round of the audit: per round, a Page with its Instagram account and its
// admin, and the TikTok and Facebook accounts of the people, each creator
// with one video. The platforms' providers are the SDK's (Config.Providers).
func newAuditWorld(t *testing.T, db *dbtest.DB, people [][]*auditPerson) *auditWorld {
	t.Helper()
	w := &auditWorld{t: t, db: db, clk: fakeclock.New(), storage: t.TempDir()}
	ttOpts := []tiktoktest.Option{tiktoktest.WithClock(w.clk.Now), tiktoktest.WithApp(tiktoktest.App{ClientKey: "ck", ClientSecret: "cs",
		RedirectURIs: []string{auditRedirect}, Scopes: []string{"user.info.basic", "user.info.profile", "user.info.stats", "video.list"}})}
	fbOpts := []metatest.Option{metatest.WithClock(w.clk.Now),
		metatest.WithApp(metatest.App{ID: "1001", Secret: "app-secret", Name: "CRM", RedirectURIs: []string{auditRedirect}, VerifyToken: "verify"})}
	for r, pp := range people {
		rw := w.round(t, r)
		fbOpts = append(fbOpts, metatest.WithUser(metatest.User{ID: rw.adminFB, Name: "Page Admin"}),
			metatest.WithPage(metatest.Page{ID: rw.pageID, Name: "Shop", Tasks: map[string][]string{rw.adminFB: metatest.AllTasks()}}),
			metatest.WithInstagramAccount(metatest.InstagramAccount{ID: rw.igID, PageID: rw.pageID, Username: "shop"}))
		for _, p := range pp {
			if p.tag != pp[0].tag && p.openID == pp[0].openID {
				continue // her namesake: the same accounts
			}
			ttOpts = append(ttOpts, tiktoktest.WithUser(tiktoktest.User{OpenID: p.openID, DisplayName: p.v("TtName"),
				Username: strings.ToLower(p.v("TtUser")), BioDescription: p.v("TtBio"), FollowerCount: 10}))
			fbOpts = append(fbOpts, metatest.WithUser(metatest.User{ID: p.fbID, Name: p.v("FbName")}))
		}
	}
	w.tt = tiktoktest.Start(t, ttOpts...)
	video := 0
	for _, pp := range people {
		for _, p := range pp {
			if p.tag != pp[0].tag && p.openID == pp[0].openID {
				continue
			}
			video++
			require.NoError(t, w.tt.AddVideo(p.openID, tiktoktest.Video{ID: fmt.Sprintf("7%018d", video), CreateTime: w.clk.Now().Add(-time.Hour),
				Title: p.v("TtTitle"), VideoDescription: p.v("TtDesc"), ShareURL: "https://www.tiktok.com/@x/video/" + p.v("TtShare"), ViewCount: 10}))
		}
	}
	w.ttCfg = tiktok.Config{ClientKey: "ck", ClientSecret: "cs", RedirectURL: auditRedirect, BaseURL: w.tt.BaseURL(), AuthorizeURL: w.tt.AuthorizeURL()}
	var err error
	w.ttProv, err = tiktok.NewProvider(w.ttCfg, tiktok.WithHTTPClient(w.tt.Client()), tiktok.WithClock(w.clk.Now))
	require.NoError(t, err)
	w.fb = metatest.Start(t, fbOpts...)
	w.fbCfg = meta.Config{AppID: "1001", AppSecret: vault.NewSecret([]byte("app-secret")), RedirectURL: auditRedirect,
		Version: w.fb.Version(), GraphURL: w.fb.GraphURL(), DialogURL: w.fb.DialogURL()}
	w.fbProv, err = meta.NewProvider(w.fbCfg, meta.WithHTTPClient(w.fb.Client()), meta.WithClock(w.clk.Now))
	require.NoError(t, err)

	st, err := crm.NewDirStorage(w.storage)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	w.sdk, err = socialcrm.Open(context.Background(), socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t), Now: w.clk.Now,
		Attachments: st, PhoneRegion: "US", Providers: []social.Provider{w.ttProv, w.fbProv}})
	require.NoError(t, err)
	in, err := w.sdk.MetaInbox()
	require.NoError(t, err)
	wh, err := meta.NewWebhook(meta.WebhookConfig{AppSecret: vault.NewSecret([]byte("app-secret")), VerifyToken: vault.NewSecret([]byte("verify"))},
		w.sdk.Social, in.Handle)
	require.NoError(t, err)
	hook := httptest.NewServer(wh)
	t.Cleanup(hook.Close)
	w.hook = hook.URL
	require.NoError(t, w.fb.VerifyWebhook(t.Context(), "1001", w.hook))
	return w
}

// round returns w as round r of the audit sees it, in test t: its Page,
// Instagram account and Page admin.
func (w *auditWorld) round(t *testing.T, r int) *auditWorld {
	c := *w
	c.t, c.pageID, c.igID, c.adminFB = t, fmt.Sprintf("55%02d", r), fmt.Sprintf("1784150000000%02d", r), fmt.Sprintf("66%02d", r)
	return &c
}

// connectTikTok connects creator openID in ctx's tenant and syncs her
// profile, videos and raw answers.
func (w *auditWorld) connectTikTok(ctx context.Context, openID string) string {
	t := w.t
	flow, err := w.sdk.Social.NewFlow(w.ttProv, social.FlowConfig{Features: []string{"profile", "stats", "video.read"}, Purposes: []string{"analytics"}})
	require.NoError(t, err)
	authURL, err := flow.Begin(ctx)
	require.NoError(t, err)
	cb, err := w.tt.Consent(authURL, openID, tiktoktest.ConsentOptions{})
	require.NoError(t, err)
	u, err := url.Parse(cb)
	require.NoError(t, err)
	c, err := flow.Complete(ctx, u.Query())
	require.NoError(t, err)
	sess, err := w.sdk.Social.Session(ctx, c.ID, w.ttProv)
	require.NoError(t, err)
	client, err := tiktok.New(w.ttCfg, tiktok.WithHTTPClient(w.tt.Client()), tiktok.WithClock(w.clk.Now), tiktok.WithSession(sess), tiktok.WithRawResponses())
	require.NoError(t, err)
	res, _, err := client.Sync(ctx)
	require.NoError(t, err)
	require.Len(t, res.Media, 1)
	return c.ID
}

// connectFacebook runs Facebook Login as user (profile only) in ctx's
// tenant and syncs the profile.
func (w *auditWorld) connectFacebook(ctx context.Context, user string, features ...string) social.Connection {
	t := w.t
	flow, err := w.sdk.Social.NewFlow(w.fbProv, social.FlowConfig{Purposes: []string{"analytics"}, Features: append([]string{meta.FeatureProfile}, features...)})
	require.NoError(t, err)
	authURL, err := flow.Begin(ctx)
	require.NoError(t, err)
	cb, err := w.fb.Consent(authURL, metatest.Consent{UserID: user})
	require.NoError(t, err)
	c, err := flow.Complete(ctx, cb.Query())
	require.NoError(t, err)
	return c
}

// connectPage connects the tenant's Page and Instagram account through
// the admin's login, for the inbox.
func (w *auditWorld) connectPage(ctx context.Context) {
	t := w.t
	admin := w.connectFacebook(ctx, w.adminFB, meta.FeaturePages, meta.FeatureInstagram, meta.FeatureMessaging)
	sess, err := w.sdk.Social.Session(ctx, admin.ID, w.fbProv)
	require.NoError(t, err)
	pcs, err := w.fbProv.ConnectPages(ctx, sess)
	require.NoError(t, err)
	require.Len(t, pcs, 1)
	require.NoError(t, pcs[0].Err)
	require.NotNil(t, pcs[0].Instagram)
}

// instagramMessage delivers an Instagram direct message from igsid, signed.
func (w *auditWorld) instagramMessage(igsid, mid, text string) {
	t := w.t
	body := []byte(`{"object":"instagram","entry":[{"id":"` + w.igID + `","time":1764000000000,"messaging":[` +
		`{"sender":{"id":"` + igsid + `"},"recipient":{"id":"` + w.igID + `"},"timestamp":1764000000000,"message":{"mid":"` + mid + `","text":"` + text + `"}}]}]}`)
	req, err := http.NewRequest(http.MethodPost, w.hook, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set(meta.SignatureHeader, metatest.SignPayload("app-secret", body))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// seedAuditPerson plants p in every table of ctx's tenant through the
// public API: contacts (one created, one a duplicate by phone written
// nationally, the first updated by a CSV import with odd headers),
// notes, a task, an activity, a deal, a consent, a custom field value,
// an attachment with bytes, invoices whose recipient is her (by contact,
// and by e-mail alone), a member account with her e-mail address, and
// Messenger, user_ref and Instagram conversations delivered by webhook and
// linked to her contacts. With tiktok, her TikTok creator account is
// connected and synced; with w.fb, her Facebook account.
func seedAuditPerson(t *testing.T, w *auditWorld, ctx context.Context, p *auditPerson, withMeta bool) {
	t.Helper()
	s := w.sdk.CRM
	v := p.v
	c1, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: v("OldFirst"), LastName: v("OldLast"), Email: p.email, Phone: p.phone,
		UTM:         crm.UTM{Source: v("UtmS"), Medium: v("UtmM"), Campaign: v("UtmC"), Term: v("UtmT"), Content: v("UtmO")},
		Preferences: map[string]string{"ring": v("Pref")}, Tags: []string{v("Tag")}, Birthday: crm.Birthday{Year: 1990, Month: 2, Day: 3}})
	require.NoError(t, err)
	// A CSV with the usual spellings of the headers, her e-mail address in
	// another case and her number written nationally: an update of her
	// contact, not a new one — and sent again, nothing changes.
	d := strings.TrimPrefix(p.phone, "+1")
	csvText := "First Name,Last Name,E-mail Address,Phone Number,Labels\n" +
		v("First") + "," + v("Last") + ", " + strings.ToUpper(p.email) + " ,(" + d[:3] + ") " + d[3:6] + "-" + d[6:] + "," + v("Tag") + ";" + v("CsvTag") + "\n"
	for i, want := range []int{1, 0} {
		rep, err := s.Contacts().ImportCSV(ctx, strings.NewReader(csvText), crm.ImportOptions{})
		require.NoError(t, err)
		require.Zero(t, rep.Created, "import %d: %+v", i, rep)
		require.Empty(t, rep.Errors, "import %d", i)
		require.Equal(t, want, rep.Updated, "import %d: %+v", i, rep)
	}
	got, err := s.Contacts().Get(ctx, c1.ID)
	require.NoError(t, err)
	require.Equal(t, v("First"), got.FirstName)
	c2, err := s.Contacts().Create(ctx, crm.ContactInput{FirstName: v("DupFirst"), Phone: "(" + d[:3] + ") " + d[3:6] + "-" + d[6:]}, crm.AllowDuplicate())
	require.NoError(t, err)
	p.contacts = []string{c1.ID, c2.ID}
	p.crm = append(p.crm, p.email, p.phone, v("First"), v("Last"), v("UtmS"), v("UtmM"), v("UtmC"), v("UtmT"), v("UtmO"), v("Pref"),
		v("Tag"), v("CsvTag"), v("DupFirst"))

	for i, c := range p.contacts {
		_, err = s.Notes().Create(ctx, crm.NoteInput{Body: v(fmt.Sprint("Note", i)), ContactID: c})
		require.NoError(t, err)
		p.crm = append(p.crm, v(fmt.Sprint("Note", i)))
	}
	_, err = s.Tasks().Create(ctx, crm.TaskInput{Title: v("TaskT"), Description: v("TaskD"), ContactID: c2.ID})
	require.NoError(t, err)
	_, err = s.Activities().Create(ctx, crm.ActivityInput{Kind: crm.ActivityCall, Direction: crm.Outbound, ContactID: c1.ID,
		Subject: v("ActS"), Body: v("ActB"), OccurredAt: w.clk.Now()})
	require.NoError(t, err)
	pls, err := s.Pipelines().List(ctx, crm.PipelineFilter{}, crm.ListOptions{})
	require.NoError(t, err)
	_, err = s.Deals().Create(ctx, crm.DealInput{PipelineID: pls.Items[0].ID, Title: v("Deal"), ContactID: c1.ID})
	require.NoError(t, err)
	_, err = s.Consents().Grant(ctx, crm.ConsentChange{ContactID: c2.ID, Channel: crm.ChannelSMS, Purpose: crm.PurposeMarketing, Source: v("Consent")})
	require.NoError(t, err)
	_, err = s.Fields().Set(ctx, "contact", c1.ID, map[string]any{"size": v("Custom")})
	require.NoError(t, err)
	_, err = s.Attachments().Attach(ctx, crm.AttachmentInput{OwnerKind: "contact", OwnerID: c2.ID, FileName: v("File") + ".txt",
		ContentType: "text/plain"}, strings.NewReader("bytes "+v("Bytes")))
	require.NoError(t, err)
	p.crm = append(p.crm, v("TaskT"), v("TaskD"), v("ActS"), v("ActB"), v("Deal"), v("Consent"), v("Custom"), v("File"), v("Bytes"))

	// Invoices to her: one linked to her contact, one sent to her e-mail
	// address alone. The bill-to name and address are kept with the
	// invoice for its legal period.
	client, err := s.Clients().Create(ctx, crm.ClientInput{Name: "Client of " + p.tag})
	require.NoError(t, err)
	_, err = s.Invoices().Create(ctx, crm.InvoiceInput{Number: "INV-" + p.tag + "-1", ClientID: client.ID, Currency: "EUR",
		Lines:     []crm.LineItem{{Description: "ring", Quantity: 1, UnitPrice: 1000}},
		BillTo:    crm.BillTo{Name: v("BillName"), Address: v("BillAddr")},
		Recipient: &crm.Recipient{ContactID: c1.ID, Email: "billing." + p.email, Phone: p.phone}})
	require.NoError(t, err)
	_, err = s.Invoices().Create(ctx, crm.InvoiceInput{Number: "INV-" + p.tag + "-2", ClientID: client.ID, Currency: "EUR",
		Lines: []crm.LineItem{{Description: "repair", Quantity: 1, UnitPrice: 500}}, BillTo: crm.BillTo{Name: v("BillName2")},
		Recipient: &crm.Recipient{Email: p.email}})
	require.NoError(t, err)
	p.crm = append(p.crm, "billing."+p.email, v("BillName"), v("BillAddr"))
	p.billKept = []string{v("BillName"), v("BillAddr")}
	p.crm = append(p.crm, v("BillName2"))

	// Her messages, by webhook: Messenger by PSID (with an attachment),
	// by user_ref from the website's chat plugin, and Instagram.
	if withMeta {
		_, err = w.fb.SendWebhook(t.Context(), "1001", w.hook,
			metatest.Event{PageID: w.pageID, PSID: p.psid, Message: &metatest.EventMessage{Text: v("Msg"),
				Attachments: []metatest.Attachment{{Type: "image", URL: "https://cdn.example/" + v("AttUrl")}}}},
			metatest.Event{PageID: w.pageID, UserRef: p.userRef, Message: &metatest.EventMessage{Text: v("RefMsg")}})
		require.NoError(t, err)
		w.instagramMessage(p.igsid, "mid-ig-"+p.tag, v("IgMsg"))
		for key, contact := range map[crm.ConversationKey]string{
			inbox.Key(w.pageID, p.psid):                                           c1.ID,
			inbox.UserRefKey(w.pageID, p.userRef):                                 c2.ID,
			{Channel: crm.ChannelInstagram, AccountID: w.igID, ThreadID: p.igsid}: c2.ID,
		} {
			conv, err := s.Conversations().Find(ctx, key)
			require.NoError(t, err, "%+v", key)
			_, err = s.Conversations().LinkContact(ctx, conv.ID, contact, conv.Version)
			require.NoError(t, err)
			p.convs = append(p.convs, conv.ID)
		}
		p.crm = append(p.crm, p.psid, p.userRef, p.igsid, v("Msg"), v("AttUrl"), v("RefMsg"), v("IgMsg"))

		// Her own Facebook account, connected (an app-scoped user id).
		fb := w.connectFacebook(ctx, p.fbID)
		sess, err := w.sdk.Social.Session(ctx, fb.ID, w.fbProv)
		require.NoError(t, err)
		mc, err := meta.New(w.fbCfg, meta.WithHTTPClient(w.fb.Client()), meta.WithClock(w.clk.Now), meta.WithSession(sess), meta.WithRawResponses())
		require.NoError(t, err)
		_, _, err = mc.Sync(ctx)
		require.NoError(t, err)
		p.conns = append(p.conns, fb.ID)
		p.meta = append(p.meta, v("FbName"))
	}

	// Her member account (she works for the tenant too).
	m, err := w.sdk.Tenants.AddMember(ctx, tenancy.NewMember{Email: p.email, Name: v("MemberName"), Role: tenancy.RoleAdmin})
	require.NoError(t, err)
	_, key, err := w.sdk.Tenants.CreateAPIKey(tenancy.WithPrincipal(context.Background(), m.Principal()), v("KeyName"), tenancy.RoleStaff)
	require.NoError(t, err)
	p.memberID, p.apiKeyID = m.ID, key.ID
	p.member = append(p.member, v("MemberName"))

	// Her TikTok creator account.
	p.conns = append(p.conns, w.connectTikTok(ctx, p.openID))
	p.tiktok = append(p.tiktok, v("TtName"), v("TtBio"), v("TtTitle"), v("TtDesc"), v("TtShare"))
}

// TestDSARAuditEveryTable is the privacy audit: for each identifier a
// person would give, one request exports every value planted about her
// through the public API — every category, her duplicate, her messages
// received by webhook, her platform accounts, her files' bytes — and none
// of a control person's in the same tenant nor of her namesake's in
// another; one erasure leaves no row in any table that names her records
// and no blind index of her e-mail address; the receipt counts the rows
// that went; the namesake and the control keep everything. Before any
// request, no planted value is in plaintext in any table of the
// database, its files or the attachment storage.
func TestDSARAuditEveryTable(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		type kind struct {
			name    string
			subject func(p *auditPerson) map[string]string
			reaches func(p *auditPerson) []string // the canaries the identifier leads to
		}
		crmAndMember := func(p *auditPerson) []string { return slices.Concat(p.crm, p.member) }
		crmOnly := func(p *auditPerson) []string { return p.crm }
		kinds := []kind{
			{"email", func(p *auditPerson) map[string]string {
				return map[string]string{crm.SubjectEmail: "  " + strings.ToUpper(p.email) + " "}
			}, crmAndMember},
			{"phone_national", func(p *auditPerson) map[string]string {
				d := strings.TrimPrefix(p.phone, "+1")
				return map[string]string{crm.SubjectPhone: d[:3] + "." + d[3:6] + "." + d[6:]}
			}, crmOnly},
			{"phone_international", func(p *auditPerson) map[string]string {
				d := strings.TrimPrefix(p.phone, "+1")
				return map[string]string{crm.SubjectPhone: "+1 " + d[:3] + "-" + d[3:6] + " " + d[6:]}
			}, crmOnly},
			{"contact_id_of_duplicate", func(p *auditPerson) map[string]string { return map[string]string{crm.SubjectContact: p.contacts[1]} }, crmOnly},
			{"psid", func(p *auditPerson) map[string]string { return map[string]string{crm.SubjectThread: p.psid} }, crmOnly},
			{"instagram_scoped_id", func(p *auditPerson) map[string]string { return map[string]string{crm.SubjectThread: p.igsid} }, crmOnly},
			{"user_ref", func(p *auditPerson) map[string]string { return map[string]string{inbox.SubjectUserRef: p.userRef} }, crmOnly},
			{"open_id", func(p *auditPerson) map[string]string { return map[string]string{social.SubjectOpenID: p.openID} },
				func(p *auditPerson) []string { return p.tiktok }},
			{"meta_app_scoped_id", func(p *auditPerson) map[string]string { return map[string]string{social.SubjectAccount: p.fbID} },
				func(p *auditPerson) []string { return p.meta }},
		}
		people := make([][]*auditPerson, len(kinds))
		for round := range kinds {
			ann := &auditPerson{tag: fmt.Sprintf("ann%d", round), email: fmt.Sprintf("ann.%d@example.com", round), phone: fmt.Sprintf("+1415555%04d", round),
				psid: fmt.Sprintf("71000000000000%02d", round), userRef: fmt.Sprintf("ref-ann-%d", round), igsid: fmt.Sprintf("IGSIDann%d", round),
				openID: fmt.Sprintf("open-ann-%d", round), fbID: fmt.Sprintf("7300%02d", round)}
			bob := &auditPerson{tag: fmt.Sprintf("bob%d", round), email: fmt.Sprintf("bob.%d@example.com", round), phone: fmt.Sprintf("+1415556%04d", round),
				psid: fmt.Sprintf("72000000000000%02d", round), userRef: fmt.Sprintf("ref-bob-%d", round), igsid: fmt.Sprintf("IGSIDbob%d", round),
				openID: fmt.Sprintf("open-bob-%d", round), fbID: fmt.Sprintf("7400%02d", round)}
			// Her namesake in another tenant: the same e-mail address,
			// phone number and TikTok account, other records.
			annB := &auditPerson{tag: fmt.Sprintf("annb%d", round), email: ann.email, phone: ann.phone, psid: ann.psid, userRef: ann.userRef,
				igsid: ann.igsid, openID: ann.openID, fbID: ann.fbID}
			people[round] = []*auditPerson{ann, bob, annB}
		}
		world := newAuditWorld(t, db, people)
		sdk, dir := world.sdk, world.storage
		for round, k := range kinds {
			t.Run(k.name, func(t *testing.T) {
				w := world.round(t, round)
				ann, bob, annB := people[round][0], people[round][1], people[round][2]
				a := dsarTenant(t, sdk, fmt.Sprintf("audit-a%d", round))
				b := dsarTenant(t, sdk, fmt.Sprintf("audit-b%d", round))
				w.connectPage(a)
				seedAuditPerson(t, w, a, ann, true)
				seedAuditPerson(t, w, a, bob, true)
				seedAuditPerson(t, w, b, annB, false)
				// annB's TikTok values are ann's: the same creator account.
				annB.tiktok = ann.tiktok

				// At rest: no planted value in plaintext anywhere, save the
				// member's sign-in e-mail address and the platform account
				// keys, which the data map declares in clear.
				if round == 0 {
					planted := slices.Concat(ann.all(), bob.all(), annB.crm, annB.member,
						[]string{ann.phone, bob.phone, ann.psid, bob.psid, ann.userRef, ann.igsid})
					hits, err := leakscan.Tables(context.Background(), db.Admin(t), planted)
					require.NoError(t, err)
					for _, h := range hits {
						if h.Where == tenancy.TableMembers+".email" || h.Where == social.TableConnections+".account_id" {
							continue
						}
						t.Errorf("plaintext at rest: %s", h)
					}
					hits, err = leakscan.Files(planted, dir)
					require.NoError(t, err)
					require.Empty(t, hits, "plaintext in the attachment storage")
					if dumped := pgDump(t, db); dumped != nil {
						for _, h := range leakscan.Bytes("pg_dump", dumped, slices.DeleteFunc(slices.Clone(planted), func(s string) bool {
							return strings.Contains(s, "@") // the member table's sign-in names
						})) {
							t.Errorf("plaintext in pg_dump: %s", h)
						}
					}
					if db.Name == "sqlite" {
						hits, err = leakscan.Files(slices.DeleteFunc(slices.Clone(planted), func(s string) bool {
							return strings.Contains(s, "@") // the member table's sign-in names
						}), db.Path, db.Path+"-wal")
						require.NoError(t, err)
						require.Empty(t, hits, "plaintext in the SQLite file or its WAL")
					}
				}

				want := k.reaches(ann)
				text, names, m := exportOf(t, sdk, a, k.subject(ann))
				require.Equal(t, retention.OutcomeDataFound, m.Outcome)
				assert.ElementsMatch(t, want, found(text, want), "the export holds every value the identifier leads to (%d): %v", len(want), names)
				require.Empty(t, found(text, bob.all()), "nothing of the control person")
				namesake := slices.DeleteFunc(slices.Concat(annB.crm, annB.member), func(s string) bool { return slices.Contains(ann.all(), s) })
				require.Empty(t, found(text, namesake), "nothing of her namesake in the other tenant")
				if slices.Contains(want, ann.v("Bytes")) {
					require.True(t, slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "crm.attachment/") }), "%v", names)
				}

				tables := dsarTables(t, sdk)
				dumpB, rowsB := dump(t, sdk, b, tables)
				revokes := func() int {
					n := len(w.tt.RequestsTo(tiktoktest.RevokePath))
					for _, r := range w.fb.Requests() {
						if r.Method == http.MethodDelete && strings.HasSuffix(r.Path, "/permissions") {
							n++
						}
					}
					return n
				}
				revoked := revokes()
				eraseCounted(t, sdk, a, tables, k.subject(ann))
				if len(k.reaches(ann)) > 0 && (k.reaches(ann)[0] == ann.v("TtName") || k.reaches(ann)[0] == ann.v("FbName")) {
					require.Equal(t, revoked+1, revokes(), "erasing her connection revokes its authorization at the platform")
				} else {
					require.Equal(t, revoked, revokes(), "no connection of hers was erased")
				}

				// Nothing of hers is left to find by any identifier.
				gone := slices.DeleteFunc(slices.Clone(want), func(s string) bool {
					// The invoices keep their bill-to; a member account not
					// reached (by a phone number, a PSID) keeps its address.
					return slices.Contains(ann.billKept, s) || s == ann.email && !slices.Contains(want, ann.member[0])
				})
				for _, k2 := range kinds {
					text, _, _ := exportOf(t, sdk, a, k2.subject(ann))
					assert.Empty(t, found(text, gone), "after the erasure, by %s", k2.name)
				}
				// No row in any table names her erased records, and no
				// blind index of her e-mail address is left.
				var ids []string
				if slices.Contains(want, ann.email) {
					ids = slices.Concat(ann.contacts, ann.convs)
					ix, err := sdk.Vault.Index(a, ann.email, "email")
					require.NoError(t, err)
					ids = append(ids, ix)
					if db.Name == "sqlite" {
						// secure_delete: the erased rows' bytes are gone
						// from the file, not just unlinked.
						_, err := db.DB.ExecContext(t.Context(), "PRAGMA wal_checkpoint(TRUNCATE)")
						require.NoError(t, err)
						hits, err := leakscan.Files([]string{ix}, db.Path, db.Path+"-wal")
						require.NoError(t, err)
						require.Empty(t, hits, "her e-mail address's blind index lingers in the SQLite file")
					}
				}
				if slices.Contains(want, ann.member[0]) {
					ids = append(ids, ann.memberID, ann.apiKeyID) // her account and its API key
				}
				if slices.Contains(want, ann.v("TtName")) {
					ids = append(ids, ann.conns[len(ann.conns)-1])
				}
				if slices.Contains(want, ann.v("FbName")) {
					ids = append(ids, ann.conns[0])
				}
				hits, err := leakscan.Tables(context.Background(), db.Admin(t), ids)
				require.NoError(t, err)
				for _, h := range hits {
					if strings.HasPrefix(h.Where, tenancy.TableAuditLog+".") {
						continue // the audit log names records by id, by design
					}
					t.Errorf("a trace of an erased record: %s", h)
				}

				// The control person and the namesake keep everything.
				text, _, _ = exportOf(t, sdk, a, map[string]string{crm.SubjectEmail: bob.email, social.SubjectOpenID: bob.openID, social.SubjectAccount: bob.fbID})
				require.ElementsMatch(t, bob.all(), found(text, bob.all()), "the control person is untouched")
				dumpBAfter, rowsBAfter := dump(t, sdk, b, tables)
				require.Equal(t, rowsB, rowsBAfter, "the other tenant is untouched")
				require.Equal(t, dumpB, dumpBAfter, "the other tenant is untouched")
				text, _, _ = exportOf(t, sdk, b, map[string]string{crm.SubjectEmail: annB.email, social.SubjectOpenID: annB.openID})
				all := slices.Concat(annB.crm, annB.member, annB.tiktok)
				require.ElementsMatch(t, all, found(text, all), "her namesake in the other tenant is untouched")
			})
		}
	}, migrated)
}

// pgDump returns the output of pg_dump (data only) of db's PostgreSQL test
// schema, run as the administrator of SOCIALCRM_TEST_POSTGRES; nil on
// SQLite, or when pg_dump is not installed (logged).
func pgDump(t *testing.T, db *dbtest.DB) []byte {
	t.Helper()
	if db.Name != "postgres" {
		return nil
	}
	bin, err := exec.LookPath("pg_dump")
	if err != nil {
		t.Log("pg_dump not installed: the dump is not scanned")
		return nil
	}
	var where struct {
		DB     string `bun:"db"`
		Schema string `bun:"schema"`
	}
	require.NoError(t, db.Admin(t).NewRaw("SELECT current_database() AS db, current_schema() AS schema").Scan(t.Context(), &where))
	u, err := url.Parse(os.Getenv(dbtest.EnvPostgres))
	require.NoError(t, err)
	u.Path = "/" + where.DB
	out, err := exec.CommandContext(t.Context(), bin, "--data-only", "--schema="+where.Schema, u.String()).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("pg_dump: %v: %s", err, ee.Stderr)
	}
	require.NoError(t, err)
	require.Contains(t, string(out), "socialcrm_crm_contacts", "the dump holds the tables")
	return out
}

// TestOpenRefusesSQLiteWithoutSecureDelete: a host's own SQLite handle
// whose connections would leave erased rows in the file's free pages is
// refused with ErrInsecureDelete; with the pragma on, it is accepted.
func TestOpenRefusesSQLiteWithoutSecureDelete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "host.db")
	// A migrated file (a copy of dbtest's template), so that the second
	// Open has nothing to migrate: the refusal is what this test is about.
	require.NoError(t, dbtest.SQLiteFile(path, migrated))
	open := func(dsn string) error {
		sqldb, err := sql.Open(sqliteshim.ShimName, dsn)
		require.NoError(t, err)
		db := bun.NewDB(sqldb, sqlitedialect.New())
		t.Cleanup(func() { db.Close() })
		_, err = socialcrm.Open(t.Context(), socialcrm.Config{DB: db, KEK: testkit.NewKEK(t)})
		return err
	}
	require.ErrorIs(t, open("file:"+path+"?_pragma=busy_timeout(10000)"), socialcrm.ErrInsecureDelete)
	require.NoError(t, open("file:"+path+"?_pragma=busy_timeout(10000)&_pragma=secure_delete(ON)"))
}

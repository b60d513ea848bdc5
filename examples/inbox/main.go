// Command inbox is a vertical example: a Messenger inbox CRM built on
// socialcrm. A shop connects its Facebook Page through Facebook Login,
// receives its customers' Messenger messages through Meta's signed webhook
// into crm conversations, answers them through the Send API within
// Messenger's 24-hour window, and sees each reply's delivery and read
// status follow Meta's webhooks.
//
//	go run ./examples/inbox
//
// It runs on a throw-away SQLite file (-db names a SQLite file or a
// postgres:// URL) against the in-process Meta emulator (sandbox: the
// emulator plays the customers and Meta's webhook deliveries, on a
// simulated clock), serves the webhook on a loopback HTTP server, and exits.
// sandbox.go holds what only the emulated run needs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/examples/internal/demo"
	"github.com/socialcrm/socialcrm/inbox"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
)

// options is what run needs; main fills it, the test too.
type options struct {
	DB  *bun.DB
	KEK tink.AEAD
	Sim *sandbox // the emulated Meta, its customers and the clock
	Out io.Writer
}

// report is what run did, for the test.
type report struct {
	sdk      *socialcrm.SDK
	owner    tenancy.Principal
	Statuses []crm.DeliveryStatus // the reply's, after the send, the delivery and the read webhooks
	Refused  error                // the send outside the window
	Forged   int                  // the HTTP status a forged delivery got
}

func run(ctx context.Context, o options) (*report, error) {
	if err := socialcrm.Migrate(ctx, o.DB); err != nil {
		return nil, err
	}
	// One database role does everything in this example, which Open allows
	// for development only; production runs two (see the README).
	sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: o.DB, AllowPrivilegedRole: true, KEK: o.KEK, Now: o.Sim.clock.Now})
	if err != nil {
		return nil, err
	}
	_, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Bloom Florists",
		Owner: tenancy.NewMember{Email: "owner@bloom.example", Name: "Bea"}})
	if err != nil {
		return nil, err
	}
	rep := &report{sdk: sdk, owner: owner.Principal()}
	tctx := tenancy.WithPrincipal(ctx, owner.Principal())
	if _, err := sdk.Vault.EnsureKey(tctx); err != nil {
		return nil, err
	}

	// 1. Connect the Page: Facebook Login for messaging, then the Page's
	// own connection (its token) from the user's.
	page, err := connectPage(tctx, sdk, o.Sim)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "Connected the Page %q (%s) for messaging\n", page.DisplayName, page.AccountID)

	// 2. The webhook: signature checked, each event handled once, stored by
	// the Inbox as crm conversations of every tenant that connected the Page.
	in, err := sdk.MetaInbox()
	if err != nil {
		return nil, err
	}
	wh, err := meta.NewWebhook(meta.WebhookConfig{AppSecret: o.Sim.metaCfg.AppSecret, VerifyToken: o.Sim.verifyToken},
		sdk.Social, in.Handle, meta.WithIdempotentHandler())
	if err != nil {
		return nil, err
	}
	callback, stop, err := serve(wh)
	if err != nil {
		return nil, err
	}
	defer stop()
	if err := o.Sim.meta.VerifyWebhook(ctx, sandboxMetaApp, callback); err != nil {
		return nil, fmt.Errorf("webhook verification: %w", err)
	}
	fmt.Fprintf(o.Out, "Webhook listening on %s, verified by Meta\n", callback)

	// 3. Customers write to the Page; Meta delivers each message signed
	// (and one of them twice, as it does when it retries).
	if err := o.Sim.customersWrite(ctx, callback); err != nil {
		return nil, err
	}
	// A delivery whose signature does not match the app secret is refused
	// before anything is read from it.
	if rep.Forged, err = o.Sim.forge(ctx, callback); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "A forged delivery (wrong signature) was answered %d and stored nothing\n", rep.Forged)
	if err := showInbox(tctx, sdk, o.Out, "\nInbox"); err != nil {
		return nil, err
	}

	// 4. Reply to Léa within the window, and follow the reply's status as
	// Meta reports its delivery and reading.
	client, err := pageClient(tctx, sdk, o.Sim, page)
	if err != nil {
		return nil, err
	}
	sent, _, err := in.Send(tctx, client, page.AccountID, meta.SendRequest{PSID: psidLea,
		MessagingType: meta.MessagingResponse, Text: "Yes! The blue vase is in stock; we can hold it for you until Saturday."})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "\nReplied to Léa (mid %s): %s\n", sent.MessageID, sent.Stored.Status)
	status := func(step string) error {
		m, err := findMessage(tctx, sdk, page.AccountID, psidLea, sent.MessageID)
		if err != nil {
			return err
		}
		rep.Statuses = append(rep.Statuses, m.Status)
		if step != "" {
			fmt.Fprintf(o.Out, "  after the %s webhook: %s\n", step, m.Status)
		}
		return nil
	}
	if err := status(""); err != nil {
		return nil, err
	}
	for _, step := range []string{"delivery", "read"} {
		if err := o.Sim.receipt(ctx, callback, psidLea, sent.MessageID, step); err != nil {
			return nil, err
		}
		if err := status(step); err != nil {
			return nil, err
		}
	}

	// 5. A day later, a reply to Tom is refused before anything is sent:
	// his last message is older than Messenger's 24-hour window.
	o.Sim.clock.Advance(25 * time.Hour)
	_, _, rep.Refused = in.Send(tctx, client, page.AccountID, meta.SendRequest{PSID: psidTom,
		MessagingType: meta.MessagingResponse, Text: "Sorry for the late answer: yes, on Sundays too."})
	var we *meta.WindowError
	if !errors.As(rep.Refused, &we) {
		return nil, fmt.Errorf("expected a window error, got %v", rep.Refused)
	}
	fmt.Fprintf(o.Out, "\n25 hours later, the reply to Tom is refused, nothing sent: %v\n", rep.Refused)
	return rep, showInbox(tctx, sdk, o.Out, "\nInbox")
}

// connectPage runs Facebook Login for the messaging feature and connects
// the Page the user manages.
func connectPage(ctx context.Context, sdk *socialcrm.SDK, sim *sandbox) (social.Connection, error) {
	flow, err := sdk.Social.NewFlow(sim.metaProv, social.FlowConfig{Features: []string{meta.FeatureMessaging},
		Purposes: []string{"customer messaging"}})
	if err != nil {
		return social.Connection{}, err
	}
	dialog, err := flow.Begin(ctx)
	if err != nil {
		return social.Connection{}, err
	}
	redirect, err := sim.meta.Consent(dialog, metatest.Consent{UserID: sandboxFBUser}) // the user logs in and consents
	if err != nil {
		return social.Connection{}, err
	}
	user, err := flow.Complete(ctx, redirect.Query())
	if err != nil {
		return social.Connection{}, err
	}
	sess, err := sdk.Social.Session(ctx, user.ID, sim.metaProv)
	if err != nil {
		return social.Connection{}, err
	}
	pages, err := sim.metaProv.ConnectPages(ctx, sess)
	if err != nil {
		return social.Connection{}, err
	}
	if len(pages) != 1 || pages[0].Err != nil {
		return social.Connection{}, fmt.Errorf("expected the shop's Page, got %+v", pages)
	}
	return pages[0].Connection, nil
}

// pageClient is a Graph API client acting as the Page (the inbox keeps
// its replies in crm).
func pageClient(ctx context.Context, sdk *socialcrm.SDK, sim *sandbox, page social.Connection) (*meta.Client, error) {
	sess, err := sdk.Social.Session(ctx, page.ID, sim.metaProv)
	if err != nil {
		return nil, err
	}
	return meta.New(sim.metaCfg, meta.WithSession(sess),
		meta.WithHTTPClient(sim.meta.Client()), meta.WithClock(sim.clock.Now))
}

// serve serves h at /webhooks/meta on a loopback port.
func serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/webhooks/meta", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // Serve returns ErrServerClosed after Shutdown
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	return "http://" + ln.Addr().String() + "/webhooks/meta", stop, nil
}

// showInbox prints the conversation list, latest first, with each
// conversation's messages.
func showInbox(ctx context.Context, sdk *socialcrm.SDK, out io.Writer, title string) error {
	convs, err := sdk.CRM.Conversations().List(ctx, crm.ConversationFilter{Channel: crm.ChannelMessenger}, crm.ListOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s (%d conversations):\n", title, len(convs.Items))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, c := range convs.Items {
		fmt.Fprintf(tw, "  %s, last message %s\n", name(c.ThreadID), c.LastMessageAt.Format(time.DateTime))
		msgs, err := sdk.CRM.Conversations().Messages(ctx, c.ID, crm.ListOptions{})
		if err != nil {
			return err
		}
		for _, m := range slices.Backward(msgs.Items) { // oldest first
			text := m.Text
			for _, a := range m.Attachments {
				text += fmt.Sprintf(" [%s %s]", a.Type, a.URL)
			}
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", m.SentAt.Format(time.TimeOnly), m.Direction, m.Status, text)
		}
	}
	return tw.Flush()
}

// findMessage finds a message of the conversation with the person by its
// mid.
func findMessage(ctx context.Context, sdk *socialcrm.SDK, pageID, psid, mid string) (crm.Message, error) {
	conv, err := sdk.CRM.Conversations().Find(ctx, inbox.Key(pageID, psid))
	if err != nil {
		return crm.Message{}, err
	}
	for m, err := range crm.All(ctx, crm.ListOptions{}, func(ctx context.Context, o crm.ListOptions) (crm.Page[crm.Message], error) {
		return sdk.CRM.Conversations().Messages(ctx, conv.ID, o)
	}) {
		if err != nil {
			return crm.Message{}, err
		}
		if m.ExternalID == mid {
			return m, nil
		}
	}
	return crm.Message{}, fmt.Errorf("message %s: %w", mid, crm.ErrNotFound)
}

func main() {
	if err := mainErr(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "inbox:", err)
		os.Exit(1)
	}
}

func mainErr(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("inbox", flag.ContinueOnError)
	dsn := fs.String("db", "", "SQLite file or postgres:// URL (default: a throw-away SQLite file)")
	kekFile := fs.String("kek", "inbox.keyset.json", "local key-encryption-key file, used with -db")
	if err := fs.Parse(args); err != nil {
		return err
	}
	db, kek, done, err := demo.Open(*dsn, *kekFile, "inbox")
	if err != nil {
		return err
	}
	defer done()
	sim, err := startSandbox(time.Now().UTC().Truncate(time.Millisecond)) // Meta's timestamps are in milliseconds
	if err != nil {
		return err
	}
	defer sim.close()
	fmt.Fprintln(out, "Meta: the in-process emulator (sandbox)")
	_, err = run(ctx, options{DB: db, KEK: kek, Sim: sim, Out: out})
	return err
}

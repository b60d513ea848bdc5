package crm_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
)

// recorder is a Notifier that remembers what it was handed and can be
// told to fail for some contacts.
type recorder struct {
	mu   sync.Mutex
	got  []crm.Notification
	fail map[string]bool
}

func (r *recorder) Notify(_ context.Context, n crm.Notification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail[n.Contact.ID] {
		return errors.New("gateway down")
	}
	r.got = append(r.got, n)
	return nil
}

func (r *recorder) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, n := range r.got {
		out = append(out, n.Contact.FirstName)
	}
	slices.Sort(out)
	return out
}

func TestConsentHistory(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		c, err := e.store.Contacts().Create(e.A, crm.ContactInput{FirstName: "Ada", Email: "ada@example.com"})
		require.NoError(t, err)
		consents := e.store.Consents()
		ch := crm.ConsentChange{ContactID: c.ID, Channel: crm.ChannelEmail, Purpose: crm.PurposeMarketing, Source: "signup form"}
		g, err := consents.Grant(e.A, ch)
		require.NoError(t, err)
		require.True(t, g.Granted)
		e.clock.Advance(time.Hour)
		ch.Source = "unsubscribe link"
		w, err := consents.Withdraw(e.A, ch)
		require.NoError(t, err)
		require.False(t, w.Granted)
		require.Equal(t, g.ID, w.ID)
		require.EqualValues(t, 2, w.Version)
		ok, err := consents.Allowed(e.A, c.ID, crm.ChannelEmail, crm.PurposeMarketing)
		require.NoError(t, err)
		require.False(t, ok)

		h, err := whole(consents.History(e.A, c.ID, crm.ListOptions{}))
		require.NoError(t, err)
		require.Len(t, h, 2)
		require.Equal(t, crm.ActionGranted, h[0].Action)
		require.Equal(t, "signup form", h[0].Source)
		require.Equal(t, crm.ActionWithdrawn, h[1].Action)
		require.Equal(t, "unsubscribe link", h[1].Source)
		require.True(t, h[1].At.Equal(e.clock.Now()))

		_, err = consents.Grant(e.A, crm.ConsentChange{ContactID: c.ID, Channel: crm.ChannelRCS, Purpose: "spam"})
		var verr *crm.ValidationError
		require.ErrorAs(t, err, &verr)
		require.True(t, verr.Has("channel", "oneof") && verr.Has("purpose", "oneof") && verr.Has("source", "required"), "%v", err)
		// Another tenant cannot record consent for A's contact nor read it.
		_, err = consents.Grant(e.B, crm.ConsentChange{ContactID: c.ID, Channel: crm.ChannelEmail, Purpose: crm.PurposeMarketing, Source: "x"})
		require.ErrorAs(t, err, &verr)
		require.True(t, verr.Has("contact_id", "exists"))
		hb, err := whole(consents.History(e.B, c.ID, crm.ListOptions{}))
		require.NoError(t, err)
		require.Empty(t, hb)
	})
}

func TestSchedulerNeverSelectsWithoutConsent(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		today := e.clock.Now() // 23 November
		bday := crm.Birthday{Month: int(today.Month()), Day: today.Day()}
		consents := e.store.Consents()
		mk := func(ctx context.Context, name string, b crm.Birthday, grants ...crm.ConsentChange) crm.Contact {
			t.Helper()
			c, err := e.store.Contacts().Create(ctx, crm.ContactInput{FirstName: name, Email: name + "@example.com", Phone: "+14155550100", Birthday: b}, crm.AllowDuplicate()) // one shared number
			require.NoError(t, err)
			for _, g := range grants {
				g.ContactID, g.Source = c.ID, "test"
				_, err := consents.Grant(ctx, g)
				require.NoError(t, err)
			}
			return c
		}
		emailBday := crm.ConsentChange{Channel: crm.ChannelEmail, Purpose: crm.PurposeBirthday}
		mk(e.A, "granted", bday, emailBday)
		withdrawn := mk(e.A, "withdrawn", bday, emailBday)
		_, err := consents.Withdraw(e.A, crm.ConsentChange{ContactID: withdrawn.ID, Channel: crm.ChannelEmail, Purpose: crm.PurposeBirthday, Source: "reply STOP"})
		require.NoError(t, err)
		regranted := mk(e.A, "regranted", bday, emailBday)
		_, err = consents.Withdraw(e.A, crm.ConsentChange{ContactID: regranted.ID, Channel: crm.ChannelEmail, Purpose: crm.PurposeBirthday, Source: "x"})
		require.NoError(t, err)
		_, err = consents.Grant(e.A, crm.ConsentChange{ContactID: regranted.ID, Channel: crm.ChannelEmail, Purpose: crm.PurposeBirthday, Source: "x"})
		require.NoError(t, err)
		mk(e.A, "otherchannel", bday, crm.ConsentChange{Channel: crm.ChannelSMS, Purpose: crm.PurposeBirthday})
		mk(e.A, "otherpurpose", bday, crm.ConsentChange{Channel: crm.ChannelEmail, Purpose: crm.PurposeMarketing})
		mk(e.A, "none", bday)
		mk(e.A, "otherday", crm.Birthday{Month: 1, Day: 2}, emailBday)
		mk(e.B, "othertenant", bday, emailBday)
		noEmail, err := e.store.Contacts().Create(e.A, crm.ContactInput{FirstName: "noemail", Phone: "+14155550101", Birthday: bday})
		require.NoError(t, err)
		_, err = consents.Grant(e.A, crm.ConsentChange{ContactID: noEmail.ID, Channel: crm.ChannelEmail, Purpose: crm.PurposeBirthday, Source: "x"})
		require.NoError(t, err)

		rec := &recorder{}
		sc, err := crm.NewScheduler(e.store, rec, crm.WithBatchSize(2))
		require.NoError(t, err)
		// Due pages: one contact a page here, then the last page.
		first, err := sc.Due(e.A, sc.Birthdays(crm.ChannelEmail), crm.ListOptions{Limit: 1})
		require.NoError(t, err)
		require.Len(t, first.Items, 1)
		require.NotEmpty(t, first.NextCursor)
		second, err := sc.Due(e.A, sc.Birthdays(crm.ChannelEmail), crm.ListOptions{Limit: 1, Cursor: first.NextCursor})
		require.NoError(t, err)
		require.Len(t, second.Items, 1)
		var names []string
		for _, c := range append(first.Items, second.Items...) {
			names = append(names, c.FirstName)
		}
		require.ElementsMatch(t, []string{"granted", "regranted"}, names)
		require.Empty(t, second.NextCursor, "the second page is the last")
		_, err = sc.Due(e.A, sc.Birthdays(crm.ChannelEmail), crm.ListOptions{Cursor: "bogus"})
		var verr *crm.ValidationError
		require.ErrorAs(t, err, &verr)

		n, err := sc.Run(e.A, sc.Birthdays(crm.ChannelEmail))
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.Equal(t, []string{"granted", "regranted"}, rec.names())
		require.Equal(t, "granted@example.com", rec.got[0].Contact.Email, "the notifier gets the opened address")
		// A second run the same day greets nobody again.
		n, err = sc.Run(e.A, sc.Birthdays(crm.ChannelEmail))
		require.NoError(t, err)
		require.Zero(t, n)

		// SMS birthday greetings reach only the SMS consent.
		rec.got = nil
		n, err = sc.Run(e.A, sc.Birthdays(crm.ChannelSMS))
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Equal(t, []string{"otherchannel"}, rec.names())

		// A marketing campaign reaches only marketing consent.
		rec.got = nil
		n, err = sc.Run(e.A, crm.Audience{Channel: crm.ChannelEmail, Purpose: crm.PurposeMarketing, Key: "campaign:winter"})
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Equal(t, []string{"otherpurpose"}, rec.names())

		// Consent withdrawn after a grant: the next campaign skips it.
		p, err := e.store.Contacts().List(e.A, crm.ContactFilter{NamePrefix: "otherpurpose"}, crm.ListOptions{})
		require.NoError(t, err)
		_, err = consents.Withdraw(e.A, crm.ConsentChange{ContactID: p.Items[0].ID, Channel: crm.ChannelEmail, Purpose: crm.PurposeMarketing, Source: "x"})
		require.NoError(t, err)
		due, err := sc.Due(e.A, crm.Audience{Channel: crm.ChannelEmail, Purpose: crm.PurposeMarketing, Key: "campaign:spring"}, crm.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, due.Items)
	})
}

func TestSchedulerRetriesFailedNotifications(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.clock.Set(time.Date(2027, 2, 28, 8, 0, 0, 0, time.UTC))
		leap, err := e.store.Contacts().Create(e.A, crm.ContactInput{FirstName: "Leap", Phone: "+14155550100", Birthday: crm.Birthday{Year: 2000, Month: 2, Day: 29}})
		require.NoError(t, err)
		_, err = e.store.Consents().Grant(e.A, crm.ConsentChange{ContactID: leap.ID, Channel: crm.ChannelWhatsApp, Purpose: crm.PurposeBirthday, Source: "x"})
		require.NoError(t, err)

		rec := &recorder{fail: map[string]bool{leap.ID: true}}
		sc, err := crm.NewScheduler(e.store, rec)
		require.NoError(t, err)
		n, err := sc.Run(e.A, sc.Birthdays(crm.ChannelWhatsApp))
		require.Error(t, err)
		require.Zero(t, n)
		rec.fail = nil
		n, err = sc.Run(e.A, sc.Birthdays(crm.ChannelWhatsApp))
		require.NoError(t, err)
		require.Equal(t, 1, n, "29 February birthdays are greeted on 28 February of a common year")
	})
}

func TestLogNotifierLogsNoIdentifiers(t *testing.T) {
	var buf bytes.Buffer
	l := crm.LogNotifier{Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	c := crm.Contact{ContactInput: crm.ContactInput{FirstName: "Ada", Email: "ada@example.com", Phone: "+14155550100"}}
	c.ID = "c1"
	require.NoError(t, l.Notify(context.Background(), crm.Notification{Contact: c, Channel: crm.ChannelEmail, Purpose: crm.PurposeBirthday, Key: "birthday:2026"}))
	out := buf.String()
	require.Contains(t, out, "contact_id=c1")
	require.NotContains(t, out, "ada@example.com")
	require.NotContains(t, out, "4155550100")
	require.NoError(t, crm.LogNotifier{}.Notify(context.Background(), crm.Notification{}))

	_, err := crm.NewScheduler(nil, l)
	require.ErrorIs(t, err, crm.ErrConfig)
}

package inbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/inbox"
	"github.com/socialcrm/socialcrm/internal/sqldb"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/social"
	"github.com/socialcrm/socialcrm/tenancy"
)

// mixedEvents are a delivery as Meta batches them: messages from several
// people, an echo of the Page's reply, and delivery and read watermarks
// that cover the echo.
func mixedEvents(t0 time.Time) []metatest.Event {
	var evs []metatest.Event
	for i := range 6 {
		ev := metatest.TextMessage(pageID, fmt.Sprintf("90%02d", i%3), fmt.Sprintf("Brot %d?", i))
		ev.Time = t0.Add(time.Duration(i) * time.Second)
		evs = append(evs, ev)
	}
	return append(evs,
		metatest.Event{PageID: pageID, PSID: "9000", Time: t0.Add(10 * time.Second), Message: &metatest.EventMessage{Text: "Ja!", IsEcho: true}},
		metatest.Event{PageID: pageID, PSID: "9000", Time: t0.Add(12 * time.Second), Delivery: &metatest.EventDelivery{Watermark: t0.Add(10 * time.Second)}},
		metatest.Event{PageID: pageID, PSID: "9000", Time: t0.Add(13 * time.Second), Read: &metatest.EventRead{Watermark: t0.Add(10 * time.Second)}})
}

// TestReplicasStoreADeliveryOnce: Meta's retries of one delivery reaching
// two replicas (two SDKs on two handles on one database) at the same time
// store each message once, in one conversation per person, with the
// echo's status taken from the watermarks, and record each event once —
// or, with the inbox declared idempotent, record none.
func TestReplicasStoreADeliveryOnce(t *testing.T) {
	eachWorldAndMode(t, func(t *testing.T, w *world) {
		w.connectPage(w.ctx, messaging)
		other := w.replica()
		t0 := w.clk.Now().Add(-time.Minute)
		d := w.deliver(mixedEvents(t0)...)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			dc := *d // Resend records the status on its Delivery
			if i%2 == 1 {
				dc.URL = other
			}
			wg.Go(func() { errs <- dc.Resend(t.Context()) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		for i := range 3 {
			msgs := w.messages(w.ctx, inbox.Key(pageID, fmt.Sprintf("90%02d", i)))
			want := 2
			if i == 0 {
				want = 3 // and the echo
			}
			require.Len(t, msgs, want, "person %d", i)
			require.Equal(t, fmt.Sprintf("Brot %d?", i), msgs[0].Text)
		}
		echo := w.messages(w.ctx, inbox.Key(pageID, "9000"))[2]
		require.Equal(t, crm.Outbound, echo.Direction)
		require.Equal(t, crm.StatusRead, echo.Status)
		p, err := w.sdk.CRM.Conversations().List(w.ctx, crm.ConversationFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, p.Items, 3)
		n, err := w.db.NewSelect().TableExpr(social.TableDeliveries).Count(t.Context())
		require.NoError(t, err)
		if w.records {
			require.EqualValues(t, 9, n, "each event recorded once")
		} else {
			require.Zero(t, n, "an idempotent handler needs no records")
		}
	})
}

// TestDeliveryLandsInThePagesTenants: a delivery's events are stored in
// every tenant that connected the Page, in no other, and no more in a
// tenant once it disconnected the Page; events of a Page nobody connected
// are dropped while the rest of the delivery is stored. The account index
// says which connections are live (routing reads no connection); where it
// does not know (rows written before it recorded it), the connection's
// status decides. A tenant that connects the Page again receives again.
func TestDeliveryLandsInThePagesTenants(t *testing.T) {
	eachWorld(t, func(t *testing.T, w *world) {
		b, c := w.tenant("mill"), w.tenant("dairy")
		w.connectPage(w.ctx, messaging)
		w.connectPage(b, messaging)
		// One delivery, two entries: the Page's and one of a Page no
		// tenant connected.
		at := w.clk.Now().UnixMilli()
		body := fmt.Appendf(nil, `{"object":"page","entry":[`+
			`{"id":%q,"time":%d,"messaging":[{"sender":{"id":%q},"recipient":{"id":%q},"timestamp":%d,"message":{"mid":"m_both","text":"to both"}}]},`+
			`{"id":"3999","time":%d,"messaging":[{"sender":{"id":%q},"recipient":{"id":"3999"},"timestamp":%d,"message":{"mid":"m_nobody","text":"to nobody"}}]}]}`,
			pageID, at, psid, pageID, at, at, psid, at)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, w.hook, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set(meta.SignatureHeader, metatest.SignPayload(appSecret, body))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		for _, ctx := range []context.Context{w.ctx, b} {
			msgs := w.messages(ctx, inbox.Key(pageID, psid))
			require.Len(t, msgs, 1)
			require.Equal(t, "to both", msgs[0].Text)
		}
		for _, ctx := range []context.Context{w.ctx, b, c} {
			_, err := w.sdk.CRM.Conversations().Find(ctx, inbox.Key("3999", psid))
			require.ErrorIs(t, err, crm.ErrNotFound)
		}
		p, err := w.sdk.CRM.Conversations().List(c, crm.ConversationFilter{}, crm.ListOptions{})
		require.NoError(t, err)
		require.Empty(t, p.Items, "a tenant that connected nothing receives nothing")

		// B disconnects the Page: what follows lands in A only.
		ts, err := w.sdk.Social.AccountTenants(t.Context(), meta.Platform, pageID)
		require.NoError(t, err)
		require.Len(t, ts, 2)
		for _, at := range ts {
			if at.TenantID == mustTenant(t, b) {
				_, err := w.sdk.Social.Disconnect(b, at.ConnectionID, w.prov)
				require.NoError(t, err)
			}
		}
		w.deliver(metatest.TextMessage(pageID, psid, "to A"))
		require.Len(t, w.messages(w.ctx, inbox.Key(pageID, psid)), 2)
		require.Len(t, w.messages(b, inbox.Key(pageID, psid)), 1)
		live := func() map[string]bool {
			ts, err := w.sdk.Social.AccountTenants(t.Context(), meta.Platform, pageID)
			require.NoError(t, err)
			out := map[string]bool{}
			for _, at := range ts {
				out[at.TenantID] = at.Live
			}
			return out
		}
		require.Equal(t, map[string]bool{mustTenant(t, w.ctx): true, mustTenant(t, b): false}, live())

		// Index rows that do not know: the connections' status decides.
		_, err = w.db.Owner.NewUpdate().TableExpr(social.TableAccounts).Set("live = NULL").Where("TRUE").Exec(t.Context())
		require.NoError(t, err)
		require.Equal(t, map[string]bool{mustTenant(t, w.ctx): false, mustTenant(t, b): false}, live())
		w.deliver(metatest.TextMessage(pageID, psid, "to A again"))
		require.Len(t, w.messages(w.ctx, inbox.Key(pageID, psid)), 3)
		require.Len(t, w.messages(b, inbox.Key(pageID, psid)), 1)

		// B connects the Page again: it receives again.
		w.connectPage(b, messaging)
		require.True(t, live()[mustTenant(t, b)])
		w.deliver(metatest.TextMessage(pageID, psid, "to both again"))
		require.Len(t, w.messages(w.ctx, inbox.Key(pageID, psid)), 4)
		require.Len(t, w.messages(b, inbox.Key(pageID, psid)), 2)
	})
}

// TestFailedDeliveryStoresNothingInAnyTenant: a delivery to a Page two
// tenants connected whose handling fails after both tenants' events were
// stored leaves nothing in either tenant and no delivery record; the
// redelivery stores it in both, once. With the inbox declared idempotent
// (no transaction), what was stored before the failure stays, and the
// redeliveries store nothing twice.
func TestFailedDeliveryStoresNothingInAnyTenant(t *testing.T) {
	eachWorldAndMode(t, func(t *testing.T, w *world) {
		b := w.tenant("mill")
		w.connectPage(w.ctx, messaging)
		w.connectPage(b, messaging)
		fail := true
		u := w.serve(func(ctx context.Context, tx bun.IDB, evs []*meta.Event) error {
			if err := w.in.Handle(ctx, tx, evs); err != nil {
				return err
			}
			if fail {
				fail = false
				return errors.New("failed after storing both tenants' events")
			}
			return nil
		})
		d, err := w.srv.SendWebhook(t.Context(), appID, u, mixedEvents(w.clk.Now().Add(-time.Minute))...)
		var cbErr *metatest.CallbackError
		require.ErrorAs(t, err, &cbErr)
		require.Equal(t, http.StatusInternalServerError, cbErr.StatusCode)
		n, err := w.db.NewSelect().TableExpr(social.TableDeliveries).Count(t.Context())
		require.NoError(t, err)
		require.Zero(t, n)
		for _, ctx := range []context.Context{w.ctx, b} {
			p, err := w.sdk.CRM.Conversations().List(ctx, crm.ConversationFilter{}, crm.ListOptions{})
			require.NoError(t, err)
			if w.records {
				require.Empty(t, p.Items)
			} else {
				require.Len(t, p.Items, 3, "stored before the failure, without a transaction")
			}
		}
		require.NoError(t, d.Resend(t.Context()))
		require.NoError(t, d.Resend(t.Context()))
		for _, ctx := range []context.Context{w.ctx, b} {
			require.Len(t, w.messages(ctx, inbox.Key(pageID, "9000")), 3)
		}
	})
}

func mustTenant(t *testing.T, ctx context.Context) string {
	t.Helper()
	p, ok := tenancy.FromContext(ctx)
	require.True(t, ok)
	return p.TenantID
}

// TestRoutedDeliveryIsOneRoundTrip: once a Page's tenants are looked up
// (the first delivery), a delivery to it is routed by the routes the
// inbox keeps and stored with one statement that checks them: on
// PostgreSQL one round trip in all, where looking the routes up again
// cost a second. A tenant that connects the Page afterwards receives the
// next delivery: the kept routes no longer hold, so that delivery is
// routed again.
func TestRoutedDeliveryIsOneRoundTrip(t *testing.T) {
	eachWorld(t, func(t *testing.T, w *world) {
		w.connectPage(w.ctx, messaging)
		// The first delivery looks the routes up, the second prepares the
		// statement that checks them (once per connection).
		w.deliver(metatest.TextMessage(pageID, psid, "first"))
		w.deliver(metatest.TextMessage(pageID, psid, "second"))
		for i := range 4 {
			before, _ := sqldb.RoundTrips(w.db.DB.DB)
			w.deliver(metatest.TextMessage(pageID, psid, fmt.Sprintf("routed %d", i)))
			after, _ := sqldb.RoundTrips(w.db.DB.DB)
			if w.db.Name == "postgres" {
				require.EqualValues(t, 1, after-before, "round trips of delivery %d", i)
			}
		}
		require.Len(t, w.messages(w.ctx, inbox.Key(pageID, psid)), 6)

		b := w.tenant("mill")
		w.connectPage(b, messaging)
		w.deliver(metatest.TextMessage(pageID, psid, "to both"))
		require.Len(t, w.messages(w.ctx, inbox.Key(pageID, psid)), 7)
		msgs := w.messages(b, inbox.Key(pageID, psid))
		require.Len(t, msgs, 1)
		require.Equal(t, "to both", msgs[0].Text)
	})
}

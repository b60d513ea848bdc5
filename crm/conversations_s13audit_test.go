package crm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/retention"
	"github.com/socialcrm/socialcrm/vault"
)

// s13Key is one Messenger thread: the same Page id and PSID are used in
// both tenants.
var s13Key = crm.ConversationKey{Channel: crm.ChannelMessenger, AccountID: "page-s13-shared", ThreadID: "psid-s13-canary-7731"}

func s13Delivery(mid, text string, at time.Time) crm.Batch {
	return crm.Batch{Messages: []crm.NewMessage{{Conversation: s13Key, Direction: crm.Inbound, ExternalID: mid, Text: text, SentAt: at}},
		Watermarks: []crm.Watermarks{{Conversation: s13Key, Read: at}}}
}

// s13Texts returns the texts of the context tenant's messages in the
// conversation of s13Key, sorted; nil when it has none.
func s13Texts(t *testing.T, ctx context.Context, e *env) (string, []string) {
	t.Helper()
	c, err := e.store.Conversations().Find(ctx, s13Key)
	if errors.Is(err, crm.ErrNotFound) {
		return "", nil
	}
	require.NoError(t, err)
	ms, err := whole(e.store.Conversations().Messages(ctx, c.ID, crm.ListOptions{Limit: 50}))
	require.NoError(t, err)
	var out []string
	for _, m := range ms {
		out = append(out, m.Text)
	}
	slices.Sort(out)
	return c.ID, out
}

// TestS13AuditIngestTenantWalls: two tenants receive the same Page's
// messages from the same PSID, with the same message ids. The Store
// remembers the conversations it stored into and keeps the statement
// text per tenant; neither lets a delivery of one tenant reach, reuse or
// reveal the other's conversation — when both exist, when one tenant's
// conversation is erased, and when one tenant's key is destroyed while
// the Store still remembers its conversation.
func TestS13AuditIngestTenantWalls(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		convs := e.store.Conversations()
		at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
		deliver := func(ctx context.Context, mid, text string, at time.Time) {
			t.Helper()
			res, err := convs.Ingest(ctx, s13Delivery(mid, text, at))
			require.NoError(t, err)
			require.Equal(t, int64(1), res.Stored, "%s stored once in its tenant", mid)
		}
		// The second delivery of each tenant is the one that travels
		// without the sealed thread id on PostgreSQL (a remembered
		// conversation).
		deliver(e.A, "mid-1", "alpha one", at)
		deliver(e.B, "mid-1", "beta one", at.Add(time.Minute))
		deliver(e.A, "mid-2", "alpha two", at.Add(2*time.Minute))
		deliver(e.B, "mid-2", "beta two", at.Add(3*time.Minute))
		aID, aTexts := s13Texts(t, e.A, e)
		bID, bTexts := s13Texts(t, e.B, e)
		require.NotEqual(t, aID, bID)
		require.Equal(t, []string{"alpha one", "alpha two"}, aTexts)
		require.Equal(t, []string{"beta one", "beta two"}, bTexts)
		a, err := convs.Find(e.A, s13Key)
		require.NoError(t, err)
		require.Equal(t, at.Add(2*time.Minute), a.LastMessageAt.UTC(), "A's last message time is A's own, not B's later one")

		// B's export derives B's exact last message time from B's
		// messages alone: A's conversation of the same key has a later one.
		deliver(e.A, "mid-late", "alpha late", at.Add(50*time.Minute))
		files := subjectExport(t, e, e.B, e.store.Categories(), retention.KindAccess, map[string]string{crm.SubjectConversation: bID})
		var rows []map[string]any
		require.NoError(t, json.Unmarshal([]byte(files["crm.conversation.json"]), &rows))
		require.Len(t, rows, 1)
		got, err := time.Parse(time.RFC3339Nano, rows[0]["last_message_at"].(string))
		require.NoError(t, err)
		require.Equal(t, at.Add(3*time.Minute), got.UTC(), "B's export")
		require.NotContains(t, files["crm.message.json"], "alpha")
		require.Equal(t, 2, strings.Count(files["crm.message.json"], "beta"))
		// A's export by B's conversation id finds nothing.
		files = subjectExport(t, e, e.A, e.store.Categories(), retention.KindAccess, map[string]string{crm.SubjectConversation: bID})
		for name, f := range files {
			require.NotContains(t, f, "beta", name)
		}

		// A's conversation is erased (a data-subject erasure by
		// conversation); B's next delivery goes on in B's conversation,
		// and A's next opens a new one holding only the new message.
		eng, err := retention.New(e.db.DB, retention.WithClock(e.clock.Now))
		require.NoError(t, err)
		require.NoError(t, eng.Register(e.store.Categories()...))
		r := request(t, e.A, eng, retention.KindErasure, map[string]string{crm.SubjectConversation: aID})
		_, err = eng.Erase(e.A, r.ID)
		require.NoError(t, err)
		_, aTexts = s13Texts(t, e.A, e)
		require.Nil(t, aTexts)
		deliver(e.B, "mid-3", "beta three", at.Add(4*time.Minute))
		bID2, bTexts := s13Texts(t, e.B, e)
		require.Equal(t, bID, bID2)
		require.Equal(t, []string{"beta one", "beta three", "beta two"}, bTexts)
		_, aTexts = s13Texts(t, e.A, e)
		require.Nil(t, aTexts, "B's delivery opened nothing in A")
		deliver(e.A, "mid-3", "alpha three", at.Add(5*time.Minute))
		aID2, aTexts := s13Texts(t, e.A, e)
		require.NotEqual(t, aID, aID2)
		require.Equal(t, []string{"alpha three"}, aTexts)

		// A's key is destroyed while the Store remembers A's conversation:
		// A's delivery fails (a typed error naming nothing of the
		// message), nothing is stored, and B is untouched.
		require.NoError(t, e.vault.DestroyKey(e.A))
		_, err = convs.Ingest(e.A, s13Delivery("mid-4", "alpha canary text 5521", at.Add(6*time.Minute)))
		require.ErrorIs(t, err, vault.ErrKeyDestroyed)
		for _, canary := range []string{s13Key.ThreadID, "alpha canary text 5521", "mid-4"} {
			require.NotContains(t, err.Error(), canary)
		}
		n := countRows(t, e, e.A, crm.TableMessages)
		require.Equal(t, 1, n, "nothing of the refused delivery is stored")
		deliver(e.B, "mid-4", "beta four", at.Add(7*time.Minute))
		_, bTexts = s13Texts(t, e.B, e)
		require.Equal(t, []string{"beta four", "beta one", "beta three", "beta two"}, bTexts)
	})
}

// TestS13AuditDeliveryDuringErasure: deliveries into a conversation go on
// while a data-subject erasure of it runs. Every delivery succeeds (none
// fails on the conversation removed under it), and afterwards no message
// is left without its conversation: each stored message lives in a
// conversation that exists (one a later delivery opened again), and the
// erased conversation's messages are all gone.
func TestS13AuditDeliveryDuringErasure(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		convs := e.store.Conversations()
		at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
		// Messages over several deliveries and hours.
		for i := range 12 {
			b := s13Delivery(fmt.Sprintf("pre-%02d", i), "before", at.Add(time.Duration(i)*25*time.Minute))
			b.Watermarks = nil // a moving watermark writes the conversation's row, and its time
			res, err := convs.Ingest(e.A, b)
			require.NoError(t, err)
			require.Equal(t, int64(1), res.Stored)
		}
		c, err := convs.Find(e.A, s13Key)
		require.NoError(t, err)
		exact := at.Add(11 * 25 * time.Minute)
		require.Equal(t, exact, c.LastMessageAt.UTC(), "the exact last message time")
		// The export before the erasure gives it too, although on
		// PostgreSQL the stored time is the last hour's first message's.
		var stored time.Time
		require.NoError(t, e.db.Admin(t).NewRaw("SELECT last_message_at FROM "+crm.TableConversations+" WHERE id = ?", c.ID).Scan(context.Background(), &stored))
		if e.db.Name == "postgres" {
			require.Equal(t, at.Add(10*25*time.Minute), stored.UTC(), "the stored time lags (else the export's check proves nothing)")
		}
		files := subjectExport(t, e, e.A, e.store.Categories(), retention.KindAccess, map[string]string{crm.SubjectConversation: c.ID})
		var rows []map[string]any
		require.NoError(t, json.Unmarshal([]byte(files["crm.conversation.json"]), &rows))
		require.Len(t, rows, 1)
		got, err := time.Parse(time.RFC3339Nano, rows[0]["last_message_at"].(string))
		require.NoError(t, err)
		require.Equal(t, exact, got.UTC(), "the export's last_message_at")
		require.Equal(t, 12, strings.Count(files["crm.message.json"], `"before"`), "the export holds every message")

		eng, err := retention.New(e.db.DB, retention.WithClock(e.clock.Now), retention.WithBatchSize(3))
		require.NoError(t, err)
		require.NoError(t, eng.Register(e.store.Categories()...))
		r := request(t, e.A, eng, retention.KindErasure, map[string]string{crm.SubjectConversation: c.ID})

		var wg sync.WaitGroup
		var mu sync.Mutex
		var failures []error
		var done atomic.Int32
		stop, first := make(chan struct{}), make(chan struct{})
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := convs.Ingest(e.A, s13Delivery(fmt.Sprintf("during-%03d", i), "during", at.Add(6*time.Hour+time.Duration(i)*time.Second)))
				if err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
				}
				if done.Add(1) == 1 {
					close(first)
				}
				if i >= 400 {
					return
				}
			}
		})
		<-first // the deliveries are under way
		_, eraseErr := eng.Erase(e.A, r.ID)
		during := done.Load()
		close(stop)
		wg.Wait()
		require.NoError(t, eraseErr)
		require.Empty(t, failures, "deliveries during the erasure")
		t.Logf("%d deliveries ended before the erasure did", during)

		// No message without its conversation, none of the erased one's.
		var orphans, ofErased int
		ctx := context.Background()
		require.NoError(t, e.db.Admin(t).NewRaw("SELECT count(*) FROM "+crm.TableMessages+" AS m WHERE NOT EXISTS (SELECT 1 FROM "+
			crm.TableConversations+" AS c WHERE c.tenant_id = m.tenant_id AND c.id = m.conversation_id)").Scan(ctx, &orphans))
		require.Zero(t, orphans, "messages left without their conversation")
		require.NoError(t, e.db.Admin(t).NewRaw("SELECT count(*) FROM "+crm.TableMessages+" WHERE conversation_id = ?", c.ID).Scan(ctx, &ofErased))
		require.Zero(t, ofErased, "messages of the erased conversation")
		var before int
		require.NoError(t, e.db.Admin(t).NewRaw("SELECT count(*) FROM "+crm.TableMessages+" WHERE external_id LIKE 'pre-%'").Scan(ctx, &before))
		require.Zero(t, before, "every message stored before the erasure is gone")
		var gone int
		require.NoError(t, e.db.Admin(t).NewRaw("SELECT count(*) FROM "+crm.TableConversations+" WHERE id = ?", c.ID).Scan(ctx, &gone))
		require.Zero(t, gone)
	})
}

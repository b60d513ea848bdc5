package meta_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/socialcrm/socialcrm/inbox"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/meta/metatest"
	"github.com/socialcrm/socialcrm/vault"
)

// Webhook ingestion benchmark: 10,000 events in deliveries of 100, as
// Meta batches them — messages from 500 people, each person's messages
// followed by delivery and read watermarks — verified, parsed, deduped
// and stored into crm on SQLite, against a handler that only verifies the
// signature and decodes the JSON. Each iteration gets fresh mids, so
// nothing is skipped as a duplicate. scripts/bench prints the ratio and
// the events/s figure.
const (
	benchEvents      = 10_000
	benchPerDelivery = 100
	benchPeople      = 500
)

type benchDelivery struct {
	body []byte
	sig  string
}

// benchDeliveries builds iteration it's signed deliveries, from the
// benchPeople senders numbered from first on.
func benchDeliveries(it, first int, start time.Time) []benchDelivery {
	out := make([]benchDelivery, 0, benchEvents/benchPerDelivery)
	for d := 0; d < benchEvents/benchPerDelivery; d++ {
		events := make([]map[string]any, 0, benchPerDelivery)
		for i := 0; i < benchPerDelivery; i++ {
			n := d*benchPerDelivery + i
			at := start.Add(time.Duration(n) * time.Millisecond)
			ev := map[string]any{
				"sender":    map[string]any{"id": fmt.Sprintf("9%05d", first+n%benchPeople)},
				"recipient": map[string]any{"id": pageID},
				"timestamp": at.UnixMilli(),
			}
			switch n % 10 {
			case 8:
				ev["delivery"] = map[string]any{"watermark": at.UnixMilli()}
			case 9:
				ev["read"] = map[string]any{"watermark": at.UnixMilli()}
			default:
				ev["message"] = map[string]any{"mid": fmt.Sprintf("m_%d_%d", it, n), "text": "Hallo, ist das Roggenbrot da? äöå"}
			}
			events = append(events, ev)
		}
		body, _ := json.Marshal(map[string]any{"object": "page", "entry": []any{
			map[string]any{"id": pageID, "time": start.UnixMilli(), "messaging": events}}})
		out = append(out, benchDelivery{body: body, sig: metatest.SignPayload(appSecret, body)})
	}
	return out
}

func runBenchWebhook(b *testing.B, h http.Handler) {
	b.Helper()
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	for it := 0; b.Loop(); it++ {
		b.StopTimer()
		ds := benchDeliveries(it, 0, start.Add(time.Duration(it)*time.Hour))
		b.StartTimer()
		for _, d := range ds {
			req := httptest.NewRequest(http.MethodPost, "/meta/webhook", bytes.NewReader(d.body))
			req.Header.Set(meta.SignatureHeader, d.sig)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("delivery answered %d", rec.Code)
			}
		}
	}
	b.ReportMetric(float64(benchEvents)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkMessengerWebhook(b *testing.B) {
	runBenchWebhook(b, newWorld(b, dbtest.SQLite(b, worldSetup)).inboxWebhook())
}

// inboxWebhook connects the user's Pages in w's tenant and returns the
// webhook that stores their events through inbox, as the benchmarks
// measure it.
func (w *world) inboxWebhook() *meta.Webhook {
	w.t.Helper()
	w.connectPages(w.connect(userID, messagingFeatures))
	in, err := inbox.New(w.store, w.crm)
	require.NoError(w.t, err)
	wh, err := meta.NewWebhook(webhookConfig(), w.store, in.Handle, meta.WithIdempotentHandler())
	require.NoError(w.t, err)
	return wh
}

// BenchmarkMessengerVerifyOnly is the baseline: read the body, check the
// signature, decode the JSON — nothing typed, deduped or stored.
func BenchmarkMessengerVerifyOnly(b *testing.B) {
	secret := vault.NewSecret([]byte(appSecret))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || meta.VerifySignature(r.Header.Get(meta.SignatureHeader), body, secret) != nil {
			http.Error(w, "bad", http.StatusUnauthorized)
			return
		}
		var v map[string]any
		if json.Unmarshal(body, &v) != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	runBenchWebhook(b, h)
}

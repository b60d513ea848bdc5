package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/internal/leakscan"
)

// TestS9AuditServerKeepsNoPlaintext is an auditor's pass over the example
// server: a person's values go in through every door a user has — the
// contacts API (with a duplicate), a note, a CSV import (one row it
// cannot take), a Messenger message, a look-up by e-mail address in the
// query string, a failed sign-in with a wrong password, data-subject
// requests by phone number, e-mail address and PSID — and then no table
// of the server's database (listed from the catalog: socialcrm's, the
// server's sessions and sign-in attempts, River's), neither the SQLite
// file, its write-ahead log nor its shared-memory index, no log line (at
// debug level), no span attribute and no /metrics sample holds one of
// them in clear. The erasure by e-mail address leaves none of her
// contacts; the control person keeps hers.
func TestS9AuditServerKeepsNoPlaintext(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	spans := tracetest.NewSpanRecorder()
	var dbPath string
	a := startTestApp(t, slog.New(requestLogHandler{slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})}), func(cfg *config) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		cfg.traces = tp
		dbPath = cfg.DSN
	})
	c := newClient(t, a.URL)
	su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Shop", "email": "o@shop.example", "name": "O", "password": "long enough password"}, 201)
	c.token = str(su, "session", "access_token")
	tenantID := str(su, "tenant", "id")

	canaries := []string{
		"ZqAnnFirst", "ZqAnnLast", "zq.ann.audit@example.com", "+15557650123", "ZqAnnDupFirst", "ZqAnnNote",
		"ZqImportFirst", "zq.import@example.com", "ZqImportBadRow", "psid-zq-ann", "ZqAnnMessage",
		"ZqWrongPassword", "zq.nobody@example.com",
	}
	ct := c.call("POST", "/v1/contacts", map[string]any{"first_name": "ZqAnnFirst", "last_name": "ZqAnnLast", "email": "zq.ann.audit@example.com", "phone": "+15557650123"}, 201)
	c.call("POST", "/v1/contacts?allow_duplicate=true", map[string]any{"first_name": "ZqAnnDupFirst", "email": "ZQ.ANN.AUDIT@example.com"}, 201)
	c.call("POST", "/v1/notes", map[string]any{"contact_id": str(ct, "contact", "id"), "body": "ZqAnnNote"}, 201)
	c.call("POST", "/v1/contacts", map[string]any{"first_name": "Control", "email": "control@example.com"}, 201)
	resp, raw := c.do("POST", "/v1/contacts/import", "text/csv", strings.NewReader("First Name,Email Address\nZqImportFirst,zq.import@example.com\nZqImportBadRow,not-an-e-mail-ZqImportBadRow\n"))
	require.Less(t, resp.StatusCode, 500, "%s", raw)
	c.call("POST", "/v1/connections/meta/start", nil, 200) // an OAuth state left unused
	ms := c.call("POST", "/v1/connections/meta/start", nil, 200)
	c.call("POST", "/v1/connections/meta/complete", map[string]string{"callback_url": c.consentMeta(str(ms, "authorize_url"), "sandbox-fb-user")}, 201)
	c.call("POST", "/v1/sandbox/meta/message", map[string]string{"psid": "psid-zq-ann", "text": "ZqAnnMessage"}, 204)
	require.Len(t, c.call("GET", "/v1/contacts?email=zq.ann.audit@example.com", nil, 200)["items"], 2)
	anon := newClient(t, a.URL)
	anon.call("POST", "/v1/login", map[string]string{"tenant_id": tenantID, "email": "o@shop.example", "password": "ZqWrongPassword"}, 401)
	anon.call("POST", "/v1/login", map[string]string{"tenant_id": tenantID, "email": "zq.nobody@example.com", "password": "ZqWrongPassword"}, 401)

	// Her export by phone number finds her values: the scans below look
	// for values that are there to be found.
	id := c.privacyRequest("access", map[string]string{"phone": "(555) 765-0123"})
	resp, zipped := c.do("GET", "/v1/privacy/requests/"+id+"/export", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", zipped)
	text, _ := unzipText(t, zipped)
	for _, v := range []string{"ZqAnnFirst", "ZqAnnLast", "zq.ann.audit@example.com", "ZqAnnDupFirst", "ZqAnnNote"} {
		require.Contains(t, text, v)
	}

	scan := func(when string) {
		t.Helper()
		db, err := socialcrm.OpenDB(dbPath) // a handle of its own, as a reader of the file would
		require.NoError(t, err)
		defer db.Close()
		hits, err := leakscan.Tables(context.Background(), db, canaries)
		require.NoError(t, err)
		for _, h := range hits {
			t.Errorf("%s: plaintext in the database: %s", when, h)
		}
		hits, err = leakscan.Files(canaries, dbPath, dbPath+"-wal", dbPath+"-shm")
		require.NoError(t, err)
		for _, h := range hits {
			t.Errorf("%s: plaintext in the SQLite files: %s", when, h)
		}
		for _, h := range leakscan.Bytes("log", []byte(logs.String()), canaries) {
			t.Errorf("%s: plaintext in the server's log: %s", when, h)
		}
		for _, s := range spans.Ended() {
			for _, kv := range s.Attributes() {
				for _, h := range leakscan.Bytes("span "+s.Name()+" "+string(kv.Key), []byte(kv.Value.Emit()), canaries) {
					t.Errorf("%s: plaintext in a span: %s", when, h)
				}
			}
			for _, ev := range s.Events() {
				for _, kv := range ev.Attributes {
					for _, h := range leakscan.Bytes("span event "+s.Name()+" "+string(kv.Key), []byte(kv.Value.Emit()), canaries) {
						t.Errorf("%s: plaintext in a span event: %s", when, h)
					}
				}
			}
		}
		mresp, err := http.Get(a.URL + "/metrics")
		require.NoError(t, err)
		metrics, err := io.ReadAll(mresp.Body)
		mresp.Body.Close()
		require.NoError(t, err)
		for _, h := range leakscan.Bytes("/metrics", metrics, canaries) {
			t.Errorf("%s: plaintext in the metrics: %s", when, h)
		}
	}
	scan("seeded")
	require.NotEmpty(t, spans.Ended(), "spans were recorded")
	require.NotEmpty(t, logs.String(), "log lines were written")

	for _, subject := range []map[string]string{{"email": " ZQ.Ann.Audit@Example.com "}, {"thread_id": "psid-zq-ann"}} {
		id := c.privacyRequest("erasure", subject)
		rc := c.call("POST", "/v1/privacy/requests/"+id+"/erase", nil, 200)
		require.Equal(t, "data_found", str(rc, "receipt", "outcome"), "%v", rc)
	}
	id = c.privacyRequest("erasure", map[string]string{"email": "zq.nobody@example.com"})
	rc := c.call("POST", "/v1/privacy/requests/"+id+"/erase", nil, 200)
	require.Equal(t, "no_data_found", str(rc, "receipt", "outcome"))
	require.Empty(t, c.call("GET", "/v1/contacts?email=zq.ann.audit@example.com", nil, 200)["items"], "both of her contacts are erased")
	require.Len(t, c.call("GET", "/v1/contacts?email=control@example.com", nil, 200)["items"], 1, "the control person is kept")
	scan("erased")
	if _, err := os.Stat(dbPath); err != nil {
		t.Fatalf("the scans read the server's database file: %v", err)
	}
}

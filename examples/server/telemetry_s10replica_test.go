package main

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/socialcrm/socialcrm/internal/dbtest"
)

// spanText is everything a span records, as text: its name, status,
// attributes, events with theirs, links with theirs, and its resource.
func spanText(s sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	b.WriteString(s.Name() + "\n" + s.Status().Description + "\n")
	for _, kv := range s.Attributes() {
		b.WriteString(string(kv.Key) + "=" + kv.Value.Emit() + "\n")
	}
	for _, e := range s.Events() {
		b.WriteString(e.Name + "\n")
		for _, kv := range e.Attributes {
			b.WriteString(string(kv.Key) + "=" + kv.Value.Emit() + "\n")
		}
	}
	for _, l := range s.Links() {
		for _, kv := range l.Attributes {
			b.WriteString(string(kv.Key) + "=" + kv.Value.Emit() + "\n")
		}
	}
	for _, kv := range s.Resource().Attributes() {
		b.WriteString(string(kv.Key) + "=" + kv.Value.Emit() + "\n")
	}
	return b.String()
}

// TestServerTelemetryCanariesS10 drives the server through its routes
// with planted personal data, credentials and OAuth values — in bodies,
// in query strings (searches, OAuth callbacks as the browser brings them
// back) — and scans every span, every log line and the /metrics page for
// them. Each log line written while serving a request carries its request
// id, and /metrics parses as Prometheus text exposition.
func TestServerTelemetryCanariesS10(t *testing.T) {
	run := func(t *testing.T, args ...string) {
		spans := tracetest.NewSpanRecorder()
		var logs lockedBuffer
		a := newObservedApp(t, spans, &logs, args...)
		c := patientClient(t, a)
		const (
			email    = "zq.s10.canary@example.org"
			name     = "Zqsmithcanary"
			password = "zq s10 canary password"
			phone    = "+14155550173"
			first    = "Zqannacanary"
			last     = "Zqlastcanary"
			cEmail   = "zq.contact.s10@example.org"
			psid     = "zq-psid-s10-9137"
			text     = "zq canary message about my ring size"
		)
		su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Canary", "email": email, "name": name, "password": password}, 201)
		c.token = str(su, "session", "access_token")
		refresh := str(su, "session", "refresh_token")
		canaries := []string{email, name, password, phone, strings.TrimPrefix(phone, "+"), first, last, cEmail, psid, text, c.token}
		if refresh != "" {
			canaries = append(canaries, refresh)
		}
		c.call("POST", "/v1/login", map[string]string{"tenant_id": str(su, "tenant", "id"), "email": email, "password": password}, 200)
		c.call("POST", "/v1/login", map[string]string{"tenant_id": str(su, "tenant", "id"), "email": email, "password": password + "x"}, 401)
		ct := c.call("POST", "/v1/contacts", map[string]any{"first_name": first, "last_name": last, "email": cEmail, "phone": phone}, 201)
		contactID := str(ct, "contact", "id")
		// Searches put personal data in the query string.
		c.call("GET", "/v1/contacts?email="+url.QueryEscape(cEmail), nil, 200)
		c.call("GET", "/v1/contacts?phone="+url.QueryEscape(phone), nil, 200)
		c.call("GET", "/v1/contacts?name_prefix="+url.QueryEscape(first[:6]), nil, 200)
		consoleGet(t, a, c.token, "", "/console/contacts?q="+url.QueryEscape(cEmail))
		// Bad input carrying personal data.
		c.call("POST", "/v1/contacts", map[string]any{"first_name": first, "email": "not-an-email " + cEmail}, 400)

		// OAuth: the callback as the browser brings it back to the console
		// (code and state in the query string), and through the API.
		st := c.call("POST", "/v1/connections/tiktok/start", nil, 200)
		cb := c.consent(str(st, "authorize_url"), sandboxCreator)
		canaries = append(canaries, mustQuery(t, cb, "code"), mustQuery(t, cb, "state"))
		u, err := url.Parse(cb)
		require.NoError(t, err)
		status, _ := consoleGet(t, a, c.token, "", u.RequestURI())
		require.Equal(t, http.StatusSeeOther, status)
		st = c.call("POST", "/v1/connections/tiktok/start", nil, 200)
		cb = c.consent(str(st, "authorize_url"), sandboxBrand)
		canaries = append(canaries, mustQuery(t, cb, "code"), mustQuery(t, cb, "state"))
		c.call("POST", "/v1/connections/tiktok/complete", map[string]string{"callback_url": cb}, 201)
		ms := c.call("POST", "/v1/connections/meta/start", nil, 200)
		mcb := c.consentMeta(str(ms, "authorize_url"), sandboxFBUser)
		canaries = append(canaries, mustQuery(t, mcb, "code"), mustQuery(t, mcb, "state"))
		c.call("POST", "/v1/connections/meta/complete", map[string]string{"callback_url": mcb}, 201)
		// Messenger: a message in, a reply out.
		c.call("POST", "/v1/sandbox/meta/message", map[string]string{"psid": psid, "text": text}, 204)
		convs := c.call("GET", "/v1/conversations", nil, 200)["items"].([]any)
		require.NotEmpty(t, convs)
		c.call("POST", "/v1/conversations/"+convs[0].(map[string]any)["id"].(string)+"/reply", map[string]string{"text": text + " reply"}, 201)
		// A data-subject request by e-mail.
		c.call("POST", "/v1/privacy/requests", map[string]any{"kind": "access", "subject": map[string]string{"email": cEmail}}, 201)
		c.call("GET", "/v1/contacts/"+contactID, nil, 200)

		resp, err := http.Get(a.URL + "/metrics")
		require.NoError(t, err)
		metrics, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		parser := expfmt.NewTextParser(model.LegacyValidation)
		families, err := parser.TextToMetricFamilies(strings.NewReader(string(metrics)))
		require.NoError(t, err, "/metrics is Prometheus text exposition")
		require.NotEmpty(t, families)

		ended := spans.Ended()
		kinds := map[string]bool{}
		for _, s := range ended {
			kinds[s.SpanKind().String()] = true
			txt := spanText(s)
			for _, cn := range canaries {
				require.NotContains(t, txt, cn, "span %q", s.Name())
			}
		}
		require.True(t, kinds["server"] && kinds["client"], "server spans and platform client spans: %v", kinds)
		for _, cn := range canaries {
			require.NotContains(t, logs.String(), cn, "the log")
			require.NotContains(t, string(metrics), cn, "/metrics")
		}
		for _, l := range logLines(t, logs.String()) {
			if _, inRequest := l["trace_id"]; inRequest {
				require.NotEmpty(t, l["request_id"], "a log line written while serving a request: %v", l)
			}
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		run(t)
	})
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv(dbtest.EnvPostgres) == "" {
			t.Skip("set SOCIALCRM_TEST_POSTGRES to run the PostgreSQL half (CI does)")
		}
		t.Parallel()
		db := dbtest.Postgres(t)
		run(t, "-db", db.DSN(), "-owner-db", db.OwnerDSN())
	})
}

// TestConsoleErrorPagesNameRequestIDS10: a console page that answers an
// error shows the request's id (the X-Request-Id header's), as the API's
// error bodies do, for the user to quote.
func TestConsoleErrorPagesNameRequestIDS10(t *testing.T) {
	eachDB(t, func(t *testing.T, a *testApp) {
		c := patientClient(t, a)
		su := c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Pages", "email": "p@pages.example", "name": "P", "password": "long enough password"}, 201)
		check := func(req *http.Request, want int) {
			t.Helper()
			resp, err := noRedirect().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, want, resp.StatusCode, "%s", body)
			id := resp.Header.Get(headerRequestID)
			require.NotEmpty(t, id)
			require.Contains(t, string(body), id, "the error page names the request id")
		}
		req, err := http.NewRequest("POST", a.URL+"/console/login", strings.NewReader(url.Values{"email": {"p@pages.example"}, "password": {"wrong password"}}.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		check(req, http.StatusUnauthorized)
		req, err = http.NewRequest("GET", a.URL+"/console/contacts/01a24e06-4588-7652-96ed-3e4a1c98d513", nil)
		require.NoError(t, err)
		req.AddCookie(&http.Cookie{Name: cookieAccess, Value: str(su, "session", "access_token")})
		check(req, http.StatusNotFound)
	})
}

package socialcrm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/socialcrm/socialcrm"
	"github.com/socialcrm/socialcrm/crm"
	"github.com/socialcrm/socialcrm/inbox"
	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/internal/fakeclock"
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

// recorder is an in-memory trace and metric pipeline.
type recorder struct {
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

func newRecorder(t testing.TB) *recorder {
	r := &recorder{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	r.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(r.spans))
	r.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.reader))
	t.Cleanup(func() {
		_ = r.tp.Shutdown(context.Background())
		_ = r.mp.Shutdown(context.Background())
	})
	return r
}

func (r *recorder) metrics(t testing.TB) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.reader.Collect(context.Background(), &rm))
	return rm
}

// texts returns every text the recorder holds, each labelled by where it
// is: span names, attributes, events, status descriptions, links; metric
// names, descriptions and each data point's attributes.
func (r *recorder) texts(t testing.TB) [][2]string {
	t.Helper()
	var out [][2]string
	attrs := func(where string, kvs []attribute.KeyValue) {
		for _, kv := range kvs {
			out = append(out, [2]string{where, string(kv.Key) + "=" + kv.Value.Emit()})
		}
	}
	for _, s := range r.spans.Ended() {
		where := "span " + s.Name()
		out = append(out, [2]string{where, s.Name()}, [2]string{where + " status", s.Status().Description})
		attrs(where, s.Attributes())
		for _, e := range s.Events() {
			out = append(out, [2]string{where + " event", e.Name})
			attrs(where+" event "+e.Name, e.Attributes)
		}
		for _, l := range s.Links() {
			attrs(where+" link", l.Attributes)
		}
		attrs(where+" resource", s.Resource().Attributes())
	}
	rm := r.metrics(t)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			where := "metric " + m.Name
			out = append(out, [2]string{where, m.Name + " " + m.Description + " " + m.Unit})
			for _, set := range pointAttributes(m.Data) {
				attrs(where, set.ToSlice())
			}
		}
	}
	return out
}

// pointAttributes returns the attribute sets of every data point.
func pointAttributes(data metricdata.Aggregation) []attribute.Set {
	var sets []attribute.Set
	switch d := data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			sets = append(sets, p.Attributes)
		}
	case metricdata.Sum[float64]:
		for _, p := range d.DataPoints {
			sets = append(sets, p.Attributes)
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			sets = append(sets, p.Attributes)
		}
	case metricdata.Gauge[float64]:
		for _, p := range d.DataPoints {
			sets = append(sets, p.Attributes)
		}
	case metricdata.Histogram[int64]:
		for _, p := range d.DataPoints {
			sets = append(sets, p.Attributes)
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			sets = append(sets, p.Attributes)
		}
	}
	return sets
}

// wire sits beneath the instrumented transport and collects every secret
// that crosses the wire in either direction: tokens, codes, verifiers,
// proofs and client secrets, in queries, form bodies, JSON answers and
// Authorization headers. Each becomes a canary.
type wire struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen map[string]bool
}

var wireKeys = []string{"access_token", "refresh_token", "appsecret_proof", "client_secret", "code", "code_verifier",
	"fb_exchange_token", "token", "input_token"}

func (w *wire) client(hc *http.Client) *http.Client {
	out := *hc
	w.next = hc.Transport
	if w.next == nil {
		w.next = http.DefaultTransport
	}
	out.Transport = w
	return &out
}

func (w *wire) keep(v string) {
	if len(v) >= 8 {
		w.mu.Lock()
		w.seen[v] = true
		w.mu.Unlock()
	}
}

func (w *wire) values(vs url.Values) {
	for _, k := range wireKeys {
		for _, v := range vs[k] {
			w.keep(v)
		}
	}
}

func (w *wire) RoundTrip(r *http.Request) (*http.Response, error) {
	w.values(r.URL.Query())
	if a := r.Header.Get("Authorization"); a != "" {
		_, tok, _ := strings.Cut(a, " ")
		w.keep(tok)
	}
	if r.Body != nil && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		if vs, err := url.ParseQuery(string(b)); err == nil {
			w.values(vs)
		}
	}
	res, err := w.next.RoundTrip(r)
	if err != nil {
		return res, err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(b))
	var answer map[string]any
	if json.Unmarshal(b, &answer) == nil {
		if d, ok := answer["data"].(map[string]any); ok {
			answer = d // TikTok wraps some answers
		}
		for _, k := range wireKeys {
			if s, ok := answer[k].(string); ok {
				w.keep(s)
			}
		}
	}
	return res, nil
}

func (w *wire) secrets() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for v := range w.seen {
		out = append(out, v)
	}
	return out
}

// Canaries planted on the main paths.
const (
	telFirstName = "Zqtelfirst"
	telLastName  = "Zqtellast"
	telEmail     = "zq.telemetry.canary@example.com"
	telPhone     = "+14155550199"
	telPSID      = "7319000000000042"
	telInbound   = "CANARY-inbound-message-text"
	telReply     = "CANARY-reply-message-text"
	telPost      = "CANARY-page-post-text"
	telTTName    = "CANARY-tel-tiktok-name"
	telOpenID    = "open-CANARY-tel-1"
	telFBUser    = "7317731700000001"
	telFBName    = "CANARY-tel-fb-name"
	telVerify    = "CANARY-verify-token-secret"
	telAppSecret = "CANARY-app-secret"
	telTTSecret  = "CANARY-tt-client-secret"
)

// TestTelemetryCarriesNoPersonalData runs the SDK's main paths with an
// in-memory trace and metric pipeline — contact create, get and search;
// TikTok connect (code exchange), sync and token refresh; Facebook Login,
// Page connection and publishing; a Messenger webhook delivery stored in
// the inbox and a reply through the Send API; a data-subject export and
// erasure by e-mail — and scans every span name, attribute, event, status
// and link, and every metric name and data point attribute, for the
// planted names, e-mail, phone, PSID, message texts, the app secrets and
// every token, code and proof that crossed the wire. It also checks that
// the spans are there: database queries with their SQL text but without
// any value (not even the tenant id), the platform calls without a query
// string, and a webhook request's database spans under its server span.
func TestTelemetryCarriesNoPersonalData(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		rec := newRecorder(t)
		clk := fakeclock.New()
		clk.Set(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t), Now: clk.Now,
			TracerProvider: rec.tp, MeterProvider: rec.mp})
		require.NoError(t, err)
		tenant, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Acme",
			Owner: tenancy.NewMember{Email: "ada@acme.example", Name: "Ada"}})
		require.NoError(t, err)
		ctx = tenancy.WithPrincipal(ctx, owner.Principal())
		secrets := &wire{seen: map[string]bool{}}

		// Contacts: create, get, search by e-mail and by name.
		c, err := sdk.CRM.Contacts().Create(ctx, crm.ContactInput{FirstName: telFirstName, LastName: telLastName, Email: telEmail, Phone: telPhone})
		require.NoError(t, err)
		got, err := sdk.CRM.Contacts().Get(ctx, c.ID)
		require.NoError(t, err)
		require.Equal(t, telEmail, got.Email)
		for _, f := range []crm.ContactFilter{{Email: telEmail}, {NamePrefix: telFirstName[:6]}, {Phone: telPhone}} {
			page, err := sdk.CRM.Contacts().List(ctx, f, crm.ListOptions{})
			require.NoError(t, err)
			require.Len(t, page.Items, 1, "search %+v", f)
		}

		// TikTok: connect, sync, refresh after the access token expired.
		const redirect = "https://crm.example/callback"
		tt := tiktoktest.Start(t, tiktoktest.WithClock(clk.Now),
			tiktoktest.WithApp(tiktoktest.App{ClientKey: "ck", ClientSecret: telTTSecret, RedirectURIs: []string{redirect},
				Scopes: []string{"user.info.basic", "user.info.profile", "user.info.stats", "video.list"}}),
			tiktoktest.WithUser(tiktoktest.User{OpenID: telOpenID, DisplayName: telTTName, FollowerCount: 10}))
		ttCfg := tiktok.Config{ClientKey: "ck", ClientSecret: telTTSecret, RedirectURL: redirect, BaseURL: tt.BaseURL(), AuthorizeURL: tt.AuthorizeURL()}
		ttOpts := []tiktok.Option{tiktok.WithTelemetry(rec.tp, rec.mp), tiktok.WithHTTPClient(secrets.client(tt.Client())), tiktok.WithClock(clk.Now)}
		ttProv, err := tiktok.NewProvider(ttCfg, ttOpts...)
		require.NoError(t, err)
		flow, err := sdk.Social.NewFlow(ttProv, social.FlowConfig{Features: []string{"profile", "stats", "video.read"}, Purposes: []string{"analytics"}})
		require.NoError(t, err)
		authURL, err := flow.Begin(ctx)
		require.NoError(t, err)
		cb, err := tt.Consent(authURL, telOpenID, tiktoktest.ConsentOptions{})
		require.NoError(t, err)
		cbURL, err := url.Parse(cb)
		require.NoError(t, err)
		ttConn, err := flow.Complete(ctx, cbURL.Query())
		require.NoError(t, err)
		ttSync := func() {
			sess, err := sdk.Social.Session(ctx, ttConn.ID, ttProv)
			require.NoError(t, err)
			client, err := tiktok.New(ttCfg, append(ttOpts, tiktok.WithSession(sess))...)
			require.NoError(t, err)
			_, _, err = client.Sync(ctx)
			require.NoError(t, err)
		}
		ttSync()
		before := len(tt.RequestsTo("/v2/oauth/token/"))
		clk.Advance(tiktoktest.DefaultAccessTokenLifetime + time.Minute)
		ttSync()
		require.Greater(t, len(tt.RequestsTo("/v2/oauth/token/")), before, "the second sync refreshed the token")

		// Meta: Facebook Login, the Page, a post, a Messenger conversation.
		fb := metatest.Start(t, metatest.WithClock(clk.Now),
			metatest.WithApp(metatest.App{ID: "1001", Secret: telAppSecret, Name: "CRM", RedirectURIs: []string{redirect}, VerifyToken: telVerify}),
			metatest.WithUser(metatest.User{ID: telFBUser, Name: telFBName}),
			metatest.WithPage(metatest.Page{ID: fbPageID, Name: "Acme Page", Tasks: map[string][]string{telFBUser: metatest.AllTasks()}}))
		fbCfg := meta.Config{AppID: "1001", AppSecret: vault.NewSecret([]byte(telAppSecret)), RedirectURL: redirect,
			Version: fb.Version(), GraphURL: fb.GraphURL(), DialogURL: fb.DialogURL()}
		fbOpts := []meta.Option{meta.WithHTTPClient(secrets.client(fb.Client())), meta.WithTelemetry(rec.tp, rec.mp), meta.WithClock(clk.Now)}
		fbProv, err := meta.NewProvider(fbCfg, fbOpts...)
		require.NoError(t, err)
		mflow, err := sdk.Social.NewFlow(fbProv, social.FlowConfig{Purposes: []string{"publishing"},
			Features: []string{meta.FeatureProfile, meta.FeaturePages, meta.FeaturePagesPublish, meta.FeatureMessaging}})
		require.NoError(t, err)
		authURL, err = mflow.Begin(ctx)
		require.NoError(t, err)
		mcb, err := fb.Consent(authURL, metatest.Consent{UserID: telFBUser})
		require.NoError(t, err)
		user, err := mflow.Complete(ctx, mcb.Query())
		require.NoError(t, err)
		sess, err := sdk.Social.Session(ctx, user.ID, fbProv)
		require.NoError(t, err)
		pcs, err := fbProv.ConnectPages(ctx, sess)
		require.NoError(t, err)
		require.Len(t, pcs, 1)
		require.NoError(t, pcs[0].Err)
		psess, err := sdk.Social.Session(ctx, pcs[0].Connection.ID, fbProv)
		require.NoError(t, err)
		page, err := meta.New(fbCfg, append(fbOpts, meta.WithSession(psess))...)
		require.NoError(t, err)
		_, _, err = page.Pages.Publish(ctx, fbPageID, meta.PostRequest{Message: telPost})
		require.NoError(t, err)

		in, err := sdk.MetaInbox()
		require.NoError(t, err)
		wh, err := meta.NewWebhook(meta.WebhookConfig{AppSecret: vault.NewSecret([]byte(telAppSecret)), VerifyToken: vault.NewSecret([]byte(telVerify))},
			sdk.Social, in.Handle)
		require.NoError(t, err)
		hook := httptest.NewServer(otelhttp.NewHandler(wh, "webhook", otelhttp.WithTracerProvider(rec.tp), otelhttp.WithMeterProvider(rec.mp)))
		t.Cleanup(hook.Close)
		require.NoError(t, fb.VerifyWebhook(ctx, "1001", hook.URL))
		_, err = fb.SendWebhook(ctx, "1001", hook.URL, metatest.TextMessage(fbPageID, telPSID, telInbound))
		require.NoError(t, err)
		conv, err := sdk.CRM.Conversations().Find(ctx, inbox.Key(fbPageID, telPSID))
		require.NoError(t, err)
		msgs, err := sdk.CRM.Conversations().Messages(ctx, conv.ID, crm.ListOptions{})
		require.NoError(t, err)
		require.Len(t, msgs.Items, 1)
		require.Equal(t, telInbound, msgs.Items[0].Text)
		_, _, err = in.Send(ctx, page, fbPageID, meta.SendRequest{PSID: telPSID, MessagingType: meta.MessagingResponse, Text: telReply})
		require.NoError(t, err)

		// A data-subject request by e-mail: export, then erasure.
		text, _, _ := exportOf(t, sdk, ctx, map[string]string{"email": telEmail})
		require.Contains(t, text, telLastName)
		erase := submitVerified(t, sdk, ctx, retention.KindErasure, map[string]string{"email": telEmail})
		_, err = sdk.Retention.Erase(ctx, erase.ID)
		require.NoError(t, err)
		_, err = sdk.CRM.Contacts().Get(ctx, c.ID)
		require.Error(t, err, "erased")

		canaries := append([]string{telFirstName, telLastName, telEmail, telPhone, strings.TrimPrefix(telPhone, "+"), telPSID, telInbound,
			telReply, telPost, telTTName, telOpenID, telFBUser, telFBName, telVerify, telAppSecret, telTTSecret}, secrets.secrets()...)
		require.Greater(t, len(secrets.secrets()), 6, "the wire saw the codes, tokens and proofs: %d", len(secrets.secrets()))
		texts := rec.texts(t)
		require.Greater(t, len(texts), 1000, "texts scanned")
		for _, wt := range texts {
			for _, c := range canaries {
				if strings.Contains(wt[1], c) {
					t.Errorf("%q in %s: %s", c, wt[0], wt[1])
				}
			}
		}

		// The spans are there, and shaped as promised.
		var dbSpans, statements, httpSpans int
		spans := rec.spans.Ended()
		byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
		for _, s := range spans {
			byID[s.SpanContext().SpanID()] = s
		}
		var webhookQueries int
		for _, s := range spans {
			if os.Getenv("DEBUG_SPANS") != "" {
				pn := ""
				if p, ok := byID[s.Parent().SpanID()]; ok {
					pn = p.Name()
				}
				t.Logf("span %q kind %v parent %q", s.Name(), s.SpanKind(), pn)
			}
			for _, kv := range s.Attributes() {
				switch kv.Key {
				case "db.statement":
					dbSpans++
					st := kv.Value.AsString()
					require.NotContains(t, st, tenant.ID, "a value in the SQL text: %s", st)
					require.NotContains(t, st, c.ID, "a value in the SQL text: %s", st)
					if strings.Contains(st, "?") || strings.Contains(st, "$1") {
						statements++
					}
					for p := s.Parent(); p.IsValid(); {
						ps, ok := byID[p.SpanID()]
						if !ok {
							break
						}
						if ps.SpanKind() == trace.SpanKindServer {
							webhookQueries++
						}
						p = ps.Parent()
					}
				case "url.full":
					httpSpans++
					u := kv.Value.AsString()
					require.NotContains(t, u, "?", "a query string in a span: %s", u)
				}
			}
		}
		require.Greater(t, dbSpans, 50, "database spans")
		require.Greater(t, statements, 10, "statements with placeholders")
		require.Greater(t, httpSpans, 10, "platform client spans")
		require.Greater(t, webhookQueries, 0, "the webhook's queries are children of its server span")
		names := map[string]bool{}
		for _, sm := range rec.metrics(t).ScopeMetrics {
			for _, m := range sm.Metrics {
				names[m.Name] = true
			}
		}
		for _, m := range []string{"go.sql.query_timing", "http.client.request.duration", "http.server.request.duration", "go.sql.connections_open"} {
			require.True(t, names[m], "metric %s recorded; have %v", m, names)
		}
	}, migrated)
}

// TestTelemetryOffByDefault: with no providers given, the SDK and the
// platform clients record nothing — not even through the global providers,
// which this test sets to recording ones.
func TestTelemetryOffByDefault(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		ctx := context.Background()
		rec := newRecorder(t)
		prevT, prevM := otel.GetTracerProvider(), otel.GetMeterProvider()
		otel.SetTracerProvider(rec.tp)
		otel.SetMeterProvider(rec.mp)
		t.Cleanup(func() { otel.SetTracerProvider(prevT); otel.SetMeterProvider(prevM) })

		clk := fakeclock.New()
		sdk, err := socialcrm.Open(ctx, socialcrm.Config{DB: db.DB, Owner: db.Owner, KEK: testkit.NewKEK(t), Now: clk.Now})
		require.NoError(t, err)
		_, owner, err := sdk.Tenants.CreateTenant(ctx, tenancy.SignUp{TenantName: "Acme",
			Owner: tenancy.NewMember{Email: "ada@acme.example", Name: "Ada"}})
		require.NoError(t, err)
		ctx = tenancy.WithPrincipal(ctx, owner.Principal())
		c, err := sdk.CRM.Contacts().Create(ctx, crm.ContactInput{FirstName: "Ann", Email: "ann@example.com"})
		require.NoError(t, err)
		_, err = sdk.CRM.Contacts().Get(ctx, c.ID)
		require.NoError(t, err)

		const redirect = "https://crm.example/callback"
		tt := tiktoktest.Start(t, tiktoktest.WithClock(clk.Now),
			tiktoktest.WithApp(tiktoktest.App{ClientKey: "ck", ClientSecret: "cs", RedirectURIs: []string{redirect},
				Scopes: []string{"user.info.basic", "user.info.profile", "user.info.stats", "video.list"}}),
			tiktoktest.WithUser(tiktoktest.User{OpenID: "open-1", DisplayName: "Ann"}))
		prov, err := tiktok.NewProvider(tiktok.Config{ClientKey: "ck", ClientSecret: "cs", RedirectURL: redirect, BaseURL: tt.BaseURL(),
			AuthorizeURL: tt.AuthorizeURL()}, tiktok.WithHTTPClient(tt.Client()), tiktok.WithClock(clk.Now))
		require.NoError(t, err)
		flow, err := sdk.Social.NewFlow(prov, social.FlowConfig{Features: []string{"profile"}, Purposes: []string{"analytics"}})
		require.NoError(t, err)
		authURL, err := flow.Begin(ctx)
		require.NoError(t, err)
		cb, err := tt.Consent(authURL, "open-1", tiktoktest.ConsentOptions{})
		require.NoError(t, err)
		cbURL, err := url.Parse(cb)
		require.NoError(t, err)
		_, err = flow.Complete(ctx, cbURL.Query())
		require.NoError(t, err)
		require.NotEmpty(t, tt.RequestsTo("/v2/oauth/token/"), "the flow called the platform")

		require.Empty(t, rec.spans.Ended(), "spans recorded without providers")
		rm := rec.metrics(t)
		for _, sm := range rm.ScopeMetrics {
			require.Empty(t, sm.Metrics, "metrics recorded without providers (scope %s)", sm.Scope.Name)
		}
	}, migrated)
}

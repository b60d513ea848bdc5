// Package telemetry is the OpenTelemetry plumbing of socialcrm: it wires
// the well-kept instrumentation libraries (otelhttp for the platform
// clients, bunotel for the database) to the providers a host passes, and
// nothing at all when it passes none — never the global providers.
//
// What it records carries no secret and no personal data: outgoing
// requests are shown to otelhttp without their query (access_token,
// appsecret_proof, client_secret, ids) and with every path segment that
// holds a digit replaced by ":id" (Page, user and PSID ids), while the
// request sent keeps its real URL; no trace context is sent to the
// platforms; database spans carry the SQL without its values (bunotel's
// default, which the root package's tests check).
package telemetry

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/extra/bunotel"
	"github.com/uptrace/opentelemetry-go-extra/otelsql"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Providers are the tracer and meter providers a host passed. A nil one
// records nothing of its kind.
type Providers struct {
	Tracer trace.TracerProvider
	Meter  metric.MeterProvider
}

// Enabled reports whether p records anything.
func (p Providers) Enabled() bool { return p.Tracer != nil || p.Meter != nil }

// Or returns p with the nil providers replaced by no-op ones, so that
// instrumentation libraries never fall back to the global providers.
func (p Providers) Or() (trace.TracerProvider, metric.MeterProvider) {
	tp, mp := p.Tracer, p.Meter
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	return tp, mp
}

// HTTPClient returns hc (nil: http.DefaultClient) unchanged when p records
// nothing, else a copy whose transport is traced and measured by otelhttp
// through p, with URLs sanitized as the package documentation says.
func HTTPClient(hc *http.Client, p Providers) *http.Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	if !p.Enabled() {
		return hc
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	tp, mp := p.Or()
	out := *hc
	out.Transport = hideURL{next: otelhttp.NewTransport(restoreURL{next: base},
		otelhttp.WithTracerProvider(tp), otelhttp.WithMeterProvider(mp),
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return r.Method + " " + r.URL.Host + r.URL.Path
		}))}
	return &out
}

// realURL carries a request's real URL past otelhttp, from hideURL to
// restoreURL, in the context of that one outgoing request.
type realURL struct{}

// hideURL shows the next transport (otelhttp) the request with its URL
// sanitized (SanitizeURL); restoreURL puts the real one back.
type hideURL struct{ next http.RoundTripper }

func (t hideURL) RoundTrip(r *http.Request) (*http.Response, error) {
	shown := r.Clone(context.WithValue(r.Context(), realURL{}, r.URL))
	shown.URL = SanitizeURL(r.URL)
	res, err := t.next.RoundTrip(shown)
	if res != nil {
		res.Request = r
	}
	return res, err
}

type restoreURL struct{ next http.RoundTripper }

func (t restoreURL) RoundTrip(r *http.Request) (*http.Response, error) {
	u, ok := r.Context().Value(realURL{}).(*url.URL)
	if !ok {
		return t.next.RoundTrip(r)
	}
	sent := r.Clone(r.Context())
	sent.URL = u
	return t.next.RoundTrip(sent)
}

// SanitizeURL returns u without user info, query or fragment, and with
// every path segment that holds a digit (other than an API version such as
// "v21.0" or "v2") replaced by ":id".
func SanitizeURL(u *url.URL) *url.URL {
	out := &url.URL{Scheme: u.Scheme, Host: u.Host, Path: SanitizePath(u.Path)}
	return out
}

// SanitizePath replaces each segment of p that holds a digit, other than
// an API version, by ":id".
func SanitizePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if strings.ContainsAny(s, "0123456789") && !isVersion(s) {
			segs[i] = ":id"
		}
	}
	return strings.Join(segs, "/")
}

// isVersion reports whether s reads like "v2" or "v21.0".
func isVersion(s string) bool {
	if len(s) < 2 || s[0] != 'v' {
		return false
	}
	for _, c := range s[1:] {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

// QueryHook returns bunotel's query hook recording through p: one client
// span per query named by its operation, with db.statement the query
// without its values (bunotel leaves formatting off by default; it stays
// off), and the go.sql.query_timing histogram. Nil when p records nothing.
//
// The hook is returned without bunotel's Init, which would report the
// connection pool's statistics to the global meter provider: DBStats does
// that through p instead.
func QueryHook(p Providers) bun.QueryHook {
	if !p.Enabled() {
		return nil
	}
	tp, mp := p.Or()
	return queryHook{bunotel.NewQueryHook(bunotel.WithTracerProvider(tp), bunotel.WithMeterProvider(mp),
		bunotel.WithFormattedQueries(false))}
}

// queryHook is bunotel's hook without its Init.
type queryHook struct{ h *bunotel.QueryHook }

func (q queryHook) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	return q.h.BeforeQuery(ctx, e)
}

func (q queryHook) AfterQuery(ctx context.Context, e *bun.QueryEvent) { q.h.AfterQuery(ctx, e) }

// DBStats reports db's connection-pool statistics (go.sql.connections_*)
// through p's meter provider; nothing when p has none.
func DBStats(db *bun.DB, p Providers) {
	if p.Meter == nil {
		return
	}
	otelsql.ReportDBStatsMetrics(db.DB, otelsql.WithMeterProvider(p.Meter),
		otelsql.WithAttributes(dbSystem(db)))
}

func dbSystem(db *bun.DB) attribute.KeyValue {
	return attribute.String("db.system", db.Dialect().Name().String())
}

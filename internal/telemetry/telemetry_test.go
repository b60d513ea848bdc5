package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/socialcrm/socialcrm/internal/telemetry"
)

func TestSanitizePath(t *testing.T) {
	for in, want := range map[string]string{
		"/v21.0/1234567890/feed":   "/v21.0/:id/feed",
		"/v2/user/info/":           "/v2/user/info/",
		"/v21.0/me/accounts":       "/v21.0/me/accounts",
		"/v21.0/17841400000000001": "/v21.0/:id",
		"/v21.0/t_abc1/messages":   "/v21.0/:id/messages",
		"/video/v3x/":              "/video/:id/",
		"":                         "",
	} {
		if got := telemetry.SanitizePath(in); got != want {
			t.Errorf("SanitizePath(%q) returned %q, want %q", in, got, want)
		}
	}
}

// TestHTTPClient: the server receives the real URL, the span shows the
// sanitized one, no trace context leaves the process even when a global
// propagator is set, and a client without providers is returned as is.
func TestHTTPClient(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	defer otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())

	plain := srv.Client()
	require.Same(t, plain, telemetry.HTTPClient(plain, telemetry.Providers{}))

	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	hc := telemetry.HTTPClient(plain, telemetry.Providers{Tracer: tp})
	require.NotSame(t, plain, hc)
	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v21.0/4242/feed?access_token=SECRET-TOKEN&fields=message", nil)
	require.NoError(t, err)
	res, err := hc.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	parent.End()
	require.Equal(t, "SECRET-TOKEN", got.URL.Query().Get("access_token"), "the request sent keeps its URL")
	require.Equal(t, "/v21.0/4242/feed", got.URL.Path)
	require.Empty(t, got.Header.Get("Traceparent"), "no trace context sent to a platform")
	require.Equal(t, req.URL.String(), res.Request.URL.String(), "the response names the request as sent")

	ended := spans.Ended()
	require.Len(t, ended, 2)
	span := ended[0]
	u, _ := url.Parse(srv.URL)
	require.Equal(t, "GET "+u.Host+"/v21.0/:id/feed", span.Name())
	require.Equal(t, parent.SpanContext().SpanID(), span.Parent().SpanID())
	for _, kv := range span.Attributes() {
		if kv.Key == "url.full" {
			require.Equal(t, srv.URL+"/v21.0/:id/feed", kv.Value.AsString())
		}
	}
}

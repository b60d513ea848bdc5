package main

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// newObservedApp is newTestApp with its log lines kept in logs and, when
// spans is not nil, its spans recorded there.
func newObservedApp(t *testing.T, spans *tracetest.SpanRecorder, logs io.Writer, args ...string) *testApp {
	t.Helper()
	return startTestApp(t, slog.New(requestLogHandler{slog.NewJSONHandler(logs, nil)}), func(cfg *config) {
		if spans != nil {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
			t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
			cfg.traces = tp
		}
	}, args...)
}

// logLines parses the JSON log lines.
func logLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		out = append(out, m)
	}
	return out
}

// TestRequestIDAndMetrics: every answer carries an X-Request-Id — the
// caller's when well formed, a new one otherwise — error bodies name it,
// and the request's log line carries it; /metrics then serves the
// requests' metrics.
func TestRequestIDAndMetrics(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	a := newObservedApp(t, nil, &logs)
	get := func(id string) (*http.Response, map[string]map[string]any) {
		req, err := http.NewRequest("GET", a.URL+"/v1/me", nil)
		require.NoError(t, err)
		if id != "" {
			req.Header.Set(headerRequestID, id)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		var body map[string]map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return resp, body
	}

	resp, body := get("")
	generated := resp.Header.Get(headerRequestID)
	require.Regexp(t, "^[0-9a-f]{32}$", generated)
	require.Equal(t, generated, body["error"]["request_id"])
	require.Equal(t, "unauthorized", body["error"]["code"])

	resp, body = get("edge-7f3a.42:1")
	require.Equal(t, "edge-7f3a.42:1", resp.Header.Get(headerRequestID), "a well-formed incoming id is honoured")
	require.Equal(t, "edge-7f3a.42:1", body["error"]["request_id"])

	for _, bad := range []string{"a b", strings.Repeat("x", 129), "<script>", "id\"quote"} {
		resp, body = get(bad)
		id := resp.Header.Get(headerRequestID)
		require.Regexp(t, "^[0-9a-f]{32}$", id, "a malformed incoming id %q is replaced", bad)
		require.Equal(t, id, body["error"]["request_id"])
	}

	require.Equal(t, "", errUnauthorized.RequestID, "the shared error value is not changed")
	var seen map[string]bool = map[string]bool{}
	for _, l := range logLines(t, logs.String()) {
		if l["msg"] == "request" {
			id, _ := l["request_id"].(string)
			require.NotEmpty(t, id, "a request log line without its id: %v", l)
			seen[id] = true
		}
	}
	require.True(t, seen[generated], "the log line of the first request carries its generated id")
	require.True(t, seen["edge-7f3a.42:1"], "the log line carries the incoming id")

	// After these requests, /metrics answers in the Prometheus text format
	// with the HTTP server's and the database's metrics.
	resp, err := http.Get(a.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	text := string(b)
	require.Contains(t, text, "# TYPE http_server_request_duration_seconds histogram")
	require.Contains(t, text, `http_server_request_duration_seconds_count{http_request_method="GET"`)
	require.Contains(t, text, "go_sql_query_timing", "the SDK's database metrics")
	require.Contains(t, text, `service_name="socialcrm-example-server"`)
}

// TestMetricsOwnListener: with -metrics-addr, /metrics is served on its
// own listener and not on the API's.
func TestMetricsOwnListener(t *testing.T) {
	t.Parallel()
	tel, err := newTelemetry(t.Context(), nil)
	require.NoError(t, err)
	defer tel.close(t.Context())
	a := &app{cfg: config{MetricsAddr: "127.0.0.1:0"}, mux: http.NewServeMux(), tel: tel}
	a.metricsRoute()
	require.Empty(t, a.routes, "not on the API listener")
	api := httptest.NewServer(a.mux)
	defer api.Close()
	resp, err := http.Get(api.URL + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	stop, err := a.serveMetrics(addr, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer stop()
	resp, err = http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestServerTraces: a request makes a server span named by its route, its
// database queries are spans beneath it (parent links up to the server
// span, within one trace), its log line names the trace, and no span
// carries the request's personal data or password.
func TestServerTraces(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewSpanRecorder()
	var logs lockedBuffer
	a := newObservedApp(t, spans, &logs)
	c := newClient(t, a.URL)
	const email, name, password = "zq.trace.owner@example.com", "Zqtraceowner", "zq secret password 1"
	c.call("POST", "/v1/signup", map[string]any{"tenant_name": "Traced", "email": email, "name": name, "password": password}, 201)

	ended := spans.Ended()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var server sdktrace.ReadOnlySpan
	for _, s := range ended {
		byID[s.SpanContext().SpanID()] = s
		if s.SpanKind() == trace.SpanKindServer && s.Name() == "POST /v1/signup" {
			server = s
		}
	}
	require.NotNil(t, server, "a server span named by the route")
	var queries int
	for _, s := range ended {
		isQuery := false
		for _, kv := range s.Attributes() {
			if kv.Key == "db.statement" {
				isQuery = true
			}
			for _, secret := range []string{email, name, password} {
				require.NotContains(t, kv.Value.Emit(), secret, "span %s attribute %s", s.Name(), kv.Key)
			}
		}
		if !isQuery {
			continue
		}
		for p := s.Parent(); p.IsValid(); {
			ps, ok := byID[p.SpanID()]
			if !ok {
				break
			}
			if ps.SpanContext().SpanID() == server.SpanContext().SpanID() {
				require.Equal(t, server.SpanContext().TraceID(), s.SpanContext().TraceID())
				queries++
				break
			}
			p = ps.Parent()
		}
	}
	require.Greater(t, queries, 3, "the sign-up's queries are spans beneath its server span")

	var found bool
	for _, l := range logLines(t, logs.String()) {
		if l["msg"] == "request" && l["path"] == "/v1/signup" {
			found = true
			require.Equal(t, server.SpanContext().TraceID().String(), l["trace_id"], "the log line names the trace")
			require.NotEmpty(t, l["request_id"])
		}
	}
	require.True(t, found, "the sign-up's log line")
}

// withoutRequestID returns an error answer without its request id, which
// differs from one request to the next.
func withoutRequestID(answer map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range answer {
		if e, ok := v.(map[string]any); ok && k == "error" {
			inner := map[string]any{}
			for ek, ev := range e {
				if ek != "request_id" {
					inner[ek] = ev
				}
			}
			v = inner
		}
		out[k] = v
	}
	return out
}

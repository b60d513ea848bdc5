package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/socialcrm/socialcrm/meta"
	"github.com/socialcrm/socialcrm/tiktok"
)

// telemetry is the server's OpenTelemetry: a meter provider that always
// feeds the Prometheus-format /metrics endpoint (and OTLP when
// configured), and a tracer provider when traces are exported (OTLP) or a
// test passes one. The SDK, the platform clients, River and the HTTP
// server record through them; with no tracer provider no span is made.
type telemetry struct {
	tp       trace.TracerProvider
	mp       metric.MeterProvider
	metrics  http.Handler
	shutdown []func(context.Context) error
}

// otlpConfigured reports whether the standard OTLP environment names an
// endpoint for signal ("TRACES" or "METRICS").
func otlpConfigured(signal string) bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
}

// newTelemetry builds the providers. tp, when not nil, is used for traces
// (tests pass an in-memory one); otherwise traces are exported over OTLP
// (HTTP/protobuf, configured by the standard OTEL_EXPORTER_OTLP_*
// variables) when an endpoint is set, and not recorded at all when none
// is. Metrics are always served at /metrics; over OTLP too when an
// endpoint is set.
func newTelemetry(ctx context.Context, tp trace.TracerProvider) (_ *telemetry, err error) {
	t := &telemetry{tp: tp}
	defer func() {
		if err != nil {
			_ = t.close(context.Background())
		}
	}()
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName("socialcrm-example-server")))
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	prom, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	t.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(prom)}
	if otlpConfigured("METRICS") {
		exp, err := otlpmetrichttp.New(ctx)
		if err != nil {
			return nil, err
		}
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
	}
	mp := sdkmetric.NewMeterProvider(mopts...)
	t.mp = mp
	t.shutdown = append(t.shutdown, mp.Shutdown)
	if t.tp == nil && otlpConfigured("TRACES") {
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, err
		}
		stp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp))
		t.tp = stp
		t.shutdown = append(t.shutdown, stp.Shutdown)
	}
	return t, nil
}

// close flushes and stops what newTelemetry started.
func (t *telemetry) close(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	t.shutdown = nil
	return errors.Join(errs...)
}

// handler wraps the server's handler with otelhttp: a server span per
// request named by its method and route pattern (http.route), continuing
// a trace context the caller sent (W3C traceparent), and the
// http.server.* metrics. Paths carry ids (UUIDs), never personal data;
// otelhttp records neither the query string nor headers nor bodies.
func (t *telemetry) handler(next http.Handler) http.Handler {
	opts := []otelhttp.Option{otelhttp.WithMeterProvider(t.mp), otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method })}
	if t.tp != nil {
		opts = append(opts, otelhttp.WithTracerProvider(t.tp))
	} else {
		opts = append(opts, otelhttp.WithTracerProvider(tracenoop.NewTracerProvider()))
	}
	return otelhttp.NewHandler(next, "http", opts...)
}

// routeNamed renames the request's server span after the route pattern the
// mux matched ("GET /v1/contacts/{id}"), once the mux has set it.
func routeNamed(mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		if r.Pattern != "" {
			trace.SpanFromContext(r.Context()).SetName(r.Pattern)
		}
	})
}

// instrument makes the platform providers and clients record through t.
func (p *platforms) instrument(t *telemetry) error {
	p.metaOpts = append(p.metaOpts, meta.WithTelemetry(t.tp, t.mp))
	p.tiktokOpts = append(p.tiktokOpts, tiktok.WithTelemetry(t.tp, t.mp))
	var err error
	if p.metaProv, err = meta.NewProvider(p.metaCfg, p.metaOpts...); err != nil {
		return err
	}
	p.tiktokProv, err = tiktok.NewProvider(p.tiktokCfg, p.tiktokOpts...)
	return err
}

// metricsRoute serves /metrics on the API listener, unless -metrics-addr
// gives it a listener of its own.
func (a *app) metricsRoute() {
	if a.cfg.MetricsAddr != "" {
		return
	}
	a.mux.Handle("GET /metrics", a.tel.metrics)
	a.routes = append(a.routes, route{Method: "GET", Path: "/metrics"})
}

// serveMetrics serves /metrics alone on addr (-metrics-addr) and returns
// the function that stops it.
func (a *app) serveMetrics(addr string, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.tel.metrics)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("metrics", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

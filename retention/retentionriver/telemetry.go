package retentionriver

import (
	"github.com/riverqueue/river/rivertype"
	"github.com/riverqueue/rivercontrib/otelriver"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Telemetry returns River's OpenTelemetry middleware (rivercontrib's
// otelriver) recording through tp and mp, for river.Config.Middleware: a
// span per job inserted and worked (named river.work/<kind>) and River's
// job counts and durations, attributed by kind, queue, attempt and status
// — never the job's arguments (which carry only tenant and request ids
// anyway). A nil provider records nothing of its kind (never the global
// one); with both nil, Telemetry returns nil: add nothing.
//
//	var mw []rivertype.Middleware
//	if t := retentionriver.Telemetry(tp, mp); t != nil {
//		mw = append(mw, t)
//	}
//	client, err := river.NewClient(driver, &river.Config{Middleware: mw, …})
func Telemetry(tp trace.TracerProvider, mp metric.MeterProvider) rivertype.Middleware {
	if tp == nil && mp == nil {
		return nil
	}
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	return otelriver.NewMiddleware(&otelriver.MiddlewareConfig{TracerProvider: tp, MeterProvider: mp,
		EnableWorkSpanJobKindSuffix: true, DurationUnit: "s"})
}

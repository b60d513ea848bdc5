package socialcrm

import (
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/socialcrm/socialcrm/internal/telemetry"
)

// Instrument makes db record OpenTelemetry spans and metrics through tp and
// mp with bun's instrumentation (bunotel): one client span per query, named
// by its operation and carrying the SQL text without its values, and the
// go.sql.query_timing histogram by operation and table; with mp, the
// connection pool's go.sql.connections_* gauges. Either provider may be
// nil (nothing of that kind is recorded); with both nil Instrument does
// nothing. Open calls it for Config.DB with Config.TracerProvider and
// Config.MeterProvider; call it once per handle, before the handle is
// shared between goroutines (bun adds query hooks without a lock).
//
// The platform clients take their own providers: meta.WithTelemetry,
// tiktok.WithTelemetry, social.OAuth2Config's TracerProvider and
// MeterProvider; the River integration takes retentionriver.Telemetry.
func Instrument(db *bun.DB, tp trace.TracerProvider, mp metric.MeterProvider) {
	p := telemetry.Providers{Tracer: tp, Meter: mp}
	h := telemetry.QueryHook(p)
	if h == nil {
		return
	}
	db.AddQueryHook(h)
	telemetry.DBStats(db, p)
}

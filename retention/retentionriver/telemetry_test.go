package retentionriver_test

import (
	"context"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/socialcrm/socialcrm/internal/dbtest"
	"github.com/socialcrm/socialcrm/retention/retentionriver"
)

// TestTelemetry: with Telemetry's middleware a worked job makes a span
// named by its kind and counts in river.work_count; its arguments appear
// in no attribute. Without providers there is no middleware.
func TestTelemetry(t *testing.T) {
	require.Nil(t, retentionriver.Telemetry(nil, nil))
	dbtest.Each(t, func(t *testing.T, db *dbtest.DB) {
		spans := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		workers := river.NewWorkers()
		require.NoError(t, retentionriver.AddMaintenance(workers, func(context.Context) error { return nil }))
		cfg := &river.Config{
			Queues:     map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
			Workers:    workers,
			TestOnly:   true,
			Middleware: []rivertype.Middleware{retentionriver.Telemetry(tp, mp)},
		}
		insert, events := startRiver(t, db, cfg)
		insert(retentionriver.MaintainArgs{}, nil)
		require.Equal(t, river.EventKindJobCompleted, await(t, events, retentionriver.KindMaintain).Kind)
		require.NoError(t, tp.ForceFlush(t.Context()))

		var work, insertSpan bool
		for _, s := range spans.Ended() {
			switch s.Name() {
			case "river.work/" + retentionriver.KindMaintain:
				work = true
			case "river.insert_many":
				insertSpan = true
			}
		}
		require.True(t, work, "a work span named by the job's kind")
		require.True(t, insertSpan, "an insert span")
		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(t.Context(), &rm))
		var counted bool
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name == "river.work_count" {
					counted = true
				}
			}
		}
		require.True(t, counted, "river.work_count")
	}, setup)
}

package socialcrm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/socialcrm/socialcrm"
)

// A handle instrumented with Instrument records one span per query, with
// the SQL text and without its values. Open does the same for Config.DB
// when Config.TracerProvider or Config.MeterProvider is set.
func ExampleInstrument() {
	dir, err := os.MkdirTemp("", "socialcrm-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	db, err := socialcrm.OpenDB(filepath.Join(dir, "example.db"))
	if err != nil {
		panic(err)
	}
	defer db.Close()

	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	socialcrm.Instrument(db, tp, nil) // a MeterProvider would add the query timings

	var n int
	if err := db.NewRaw("SELECT ? + 1", 41).Scan(context.Background(), &n); err != nil {
		panic(err)
	}
	span := spans.Ended()[0]
	for _, kv := range span.Attributes() {
		if kv.Key == "db.statement" {
			fmt.Println(n, span.Name(), kv.Value.AsString())
		}
	}
	// Output: 42 SELECT SELECT ? + 1
}

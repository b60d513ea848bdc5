package meta_test

import (
	"fmt"
	"net/url"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/socialcrm/socialcrm/meta"
)

// Trace a client's Graph API calls: each is a client span named by its
// method, host and path, ids replaced by ":id", without the query string
// that carries the access token and appsecret_proof.
func ExampleWithTelemetry() {
	w := newExampleWorld()
	defer w.close()
	_, pages := w.connect(meta.FeaturePagesPublish)
	sess, err := w.store.Session(w.ctx, pages[0].Connection.ID, w.prov)
	if err != nil {
		panic(err)
	}
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	client, err := meta.New(w.cfg, meta.WithSession(sess), meta.WithHTTPClient(w.srv.Client()),
		meta.WithTelemetry(tp, nil)) // a MeterProvider adds http.client.request.duration
	if err != nil {
		panic(err)
	}
	if _, _, err := client.Pages.Publish(w.ctx, "3001", meta.PostRequest{Message: "Fresh bread"}); err != nil {
		panic(err)
	}
	for _, s := range spans.Ended() {
		for _, kv := range s.Attributes() {
			if kv.Key == "url.full" {
				u, err := url.Parse(kv.Value.AsString())
				if err != nil {
					panic(err)
				}
				fmt.Println(s.SpanKind(), strings.TrimPrefix(u.Path, "/"+w.srv.Version()), u.RawQuery == "")
			}
		}
	}
	// Output: client /:id/feed true
}
